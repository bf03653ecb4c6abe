//! Online rebalancing: after a membership change, `SCAN` the nodes of the previous rings and
//! move every key whose owner changed to its new owner, rate-limited, while routing still
//! knows the previous rings (every command, read or write, moves its keys first).
//!
//! One key moves as: `PTTL`+`DUMP` on the old owner, `RESTORE key ttl payload` (without
//! `REPLACE`) on the new one, `UNLINK` on the old one. A key already on the new owner was
//! written there after the change and is newer: `RESTORE` refuses it (`BUSYKEY`) and only the
//! old copy is deleted. The restore always comes before the delete, so the key is never absent
//! from both owners. A per-key lock (striped) keeps the mover and a move-on-write of the same key
//! from interleaving within this process.
//!
//! Only a key the scanned node *owned* in a previous ring is moved. A key found on a node that
//! never owned it there is a leftover (a stand-in's copy from an ejection, a key a cancelled
//! rebalance left behind): it is older than whatever its owner holds or deliberately deleted,
//! so it is removed, never restored (restoring it would bring back a deleted key).

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use redis::Value;

use super::RingRouter;
use super::config::RebalanceOptions;
use super::placement::Member;
use crate::error::{Error, Result};

/// What became of one key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Restored on the new owner and deleted on the old one.
    Moved,
    /// The new owner already had a (newer) value; the old copy was deleted.
    KeptNewer,
    /// Gone from the old owner (expired, deleted, or moved already).
    Gone,
}

/// Moves `key` from `from` to `to` (see the module docs).
pub(crate) async fn move_key(
    state: &RingRouter,
    key: &[u8],
    from: &Member,
    to: &Member,
) -> Result<Outcome> {
    let _key = state.key_lock(key).lock().await;
    let mut read = redis::pipe();
    read.cmd("PTTL").arg(key).cmd("DUMP").arg(key);
    let values = state.send_pipeline(from, &read, 0, 2).await?;
    let (ttl, payload) = match values.as_slice() {
        [Value::Int(ttl), Value::BulkString(payload)] if *ttl != -2 => (*ttl, payload),
        [_, Value::Nil] | [Value::Int(-2), _] => return Ok(Outcome::Gone),
        other => {
            return Err(Error::Protocol {
                node: from.server.label().to_string(),
                message: format!("PTTL/DUMP replied {other:?}"),
            });
        }
    };
    // PTTL -1: no expiry (RESTORE ttl 0); a TTL that just reached 0 must not become "none".
    let ttl = if ttl < 0 { 0 } else { ttl.max(1) };
    let mut restore = redis::cmd("RESTORE");
    restore.arg(key).arg(ttl).arg(payload.as_slice());
    let outcome = match state.send(to, &restore).await? {
        Value::ServerError(e) if e.code() == "BUSYKEY" => Outcome::KeptNewer,
        Value::ServerError(e) => {
            return Err(Error::Protocol {
                node: to.server.label().to_string(),
                message: format!("RESTORE: {e}"),
            });
        }
        _ => Outcome::Moved,
    };
    let mut unlink = redis::cmd("UNLINK");
    unlink.arg(key);
    state.send(from, &unlink).await?;
    if outcome == Outcome::Moved {
        state.counters.keys_moved.fetch_add(1, Ordering::Relaxed);
        metrics::counter!("shardis_ring_rebalance_keys_moved_total").increment(1);
    }
    Ok(outcome)
}

/// How far a rebalance has come.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RebalanceProgress {
    /// Keys seen by `SCAN` on the old owners.
    pub scanned: u64,
    /// Keys moved to their new owner.
    pub moved: u64,
    /// Keys already present (newer) on their new owner: only the old copy was deleted.
    pub kept_newer: u64,
    /// Keys that could not be moved (their new or old owner failed).
    pub failed: u64,
    /// Leftovers removed: keys found on a node that did not own them in the previous ring
    /// (a stand-in's copy kept after an ejection ended), removed instead of moved.
    pub leftovers_removed: u64,
    /// Old owners scanned completely.
    pub nodes_done: usize,
    /// Old owners to scan.
    pub nodes_total: usize,
}

/// What a finished rebalance did.
#[derive(Clone, Copy, Debug, PartialEq)]
#[non_exhaustive]
pub struct RebalanceReport {
    /// The final counts.
    pub progress: RebalanceProgress,
    /// Stopped early by [`RebalanceHandle::cancel`] or by a newer membership change.
    pub cancelled: bool,
    /// Wall time from start to end.
    pub duration: Duration,
}

/// State shared by a running rebalance, its handle and the membership lock.
#[derive(Debug)]
pub(crate) struct Shared {
    cancel: AtomicBool,
    /// Cancelled by a newer membership change, which keeps the previous rings.
    pub superseded: AtomicBool,
    wake: tokio::sync::Notify,
    finished: tokio::sync::watch::Sender<bool>,
    scanned: AtomicU64,
    moved: AtomicU64,
    kept: AtomicU64,
    failed: AtomicU64,
    leftovers: AtomicU64,
    nodes_done: AtomicUsize,
    nodes_total: usize,
}

impl Shared {
    pub fn cancel(&self) {
        self.cancel.store(true, Ordering::Relaxed);
        self.wake.notify_waiters();
    }

    fn cancelled(&self) -> bool {
        self.cancel.load(Ordering::Relaxed)
    }

    /// Waits until the task has stopped and settled the snapshot.
    pub async fn stopped(&self) {
        let mut rx = self.finished.subscribe();
        let _ = rx.wait_for(|done| *done).await;
    }

    fn progress(&self) -> RebalanceProgress {
        RebalanceProgress {
            scanned: self.scanned.load(Ordering::Relaxed),
            moved: self.moved.load(Ordering::Relaxed),
            kept_newer: self.kept.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
            leftovers_removed: self.leftovers.load(Ordering::Relaxed),
            nodes_done: self.nodes_done.load(Ordering::Relaxed),
            nodes_total: self.nodes_total,
        }
    }
}

/// A running rebalance: await it, cancel it, or watch its progress. Dropping the handle
/// lets it run to the end.
///
/// ```no_run
/// # async fn run(client: shardis::Client) -> Result<(), shardis::Error> {
/// let change = client.add_node(shardis::RingNode::new("e", "10.0.0.5:6379", 1)).await?;
/// if let Some(rebalance) = change.rebalance {
///     println!("{:?}", rebalance.progress());
///     let report = rebalance.wait().await?;
///     println!("moved {} keys in {:?}", report.progress.moved, report.duration);
/// }
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct RebalanceHandle {
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<Result<RebalanceReport>>,
}

impl RebalanceHandle {
    /// Waits for the end; the report, or the first error of an old owner that could not be
    /// scanned (the other old owners are still scanned and their keys moved).
    pub async fn wait(self) -> Result<RebalanceReport> {
        match self.task.await {
            Ok(result) => result,
            Err(e) => Err(Error::Protocol {
                node: "rebalance".into(),
                message: format!("the rebalance task stopped: {e}"),
            }),
        }
    }

    /// Stops moving keys after the current batch. Keys not moved yet stay on their old owner
    /// and read as misses from then on (the previous ring is dropped).
    pub fn cancel(&self) {
        self.shared.cancel();
    }

    /// Counts so far.
    pub fn progress(&self) -> RebalanceProgress {
        self.shared.progress()
    }
}

/// Starts moving the keys of `sources` whose owner is no longer that node.
pub(crate) fn start(
    state: &Arc<RingRouter>,
    epoch: u64,
    sources: Vec<Arc<Member>>,
    options: RebalanceOptions,
) -> (RebalanceHandle, Arc<Shared>) {
    let (finished, _) = tokio::sync::watch::channel(false);
    let shared = Arc::new(Shared {
        cancel: AtomicBool::new(false),
        superseded: AtomicBool::new(false),
        wake: tokio::sync::Notify::new(),
        finished,
        scanned: AtomicU64::new(0),
        moved: AtomicU64::new(0),
        kept: AtomicU64::new(0),
        failed: AtomicU64::new(0),
        leftovers: AtomicU64::new(0),
        nodes_done: AtomicUsize::new(0),
        nodes_total: sources.len(),
    });
    let task = tokio::spawn(run(
        Arc::downgrade(state),
        shared.clone(),
        epoch,
        sources,
        options,
    ));
    (
        RebalanceHandle {
            shared: shared.clone(),
            task,
        },
        shared,
    )
}

async fn run(
    state: Weak<RingRouter>,
    shared: Arc<Shared>,
    epoch: u64,
    sources: Vec<Arc<Member>>,
    options: RebalanceOptions,
) -> Result<RebalanceReport> {
    let started = Instant::now();
    tracing::info!(nodes = sources.len(), epoch, "ring rebalance started");
    let mut result = Ok(());
    for source in &sources {
        if shared.cancelled() {
            break;
        }
        // One old owner that cannot be scanned (e.g. ejected) must not keep the others' keys
        // from moving: go on, and report its error at the end.
        match scan_node(&state, &shared, source, &options, started).await {
            Ok(()) => {
                shared.nodes_done.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => {
                tracing::warn!(node = source.name(), error = %e, "ring rebalance could not scan a node");
                if result.is_ok() {
                    result = Err(e);
                }
            }
        }
    }
    if let Some(state) = state.upgrade()
        && !shared.superseded.load(Ordering::Relaxed)
    {
        state.finish_rebalance(epoch);
    }
    let report = RebalanceReport {
        progress: shared.progress(),
        cancelled: shared.cancelled(),
        duration: started.elapsed(),
    };
    tracing::info!(?report, "ring rebalance finished");
    shared.finished.send_replace(true);
    result.map(|()| report)
}

/// Scans `source` and moves its keys that now belong elsewhere.
async fn scan_node(
    state: &Weak<RingRouter>,
    shared: &Shared,
    source: &Arc<Member>,
    options: &RebalanceOptions,
    started: Instant,
) -> Result<()> {
    let mut cursor = String::from("0");
    loop {
        if shared.cancelled() {
            return Ok(());
        }
        let Some(state) = state.upgrade() else {
            return Ok(());
        };
        let (next, keys) = scan_page(&state, source, &cursor, options.scan_count).await?;
        shared
            .scanned
            .fetch_add(keys.len() as u64, Ordering::Relaxed);
        let snap = state.snapshot.load_full();
        let mut moving: Vec<(Vec<u8>, Arc<Member>)> = Vec::new();
        let mut leftovers = Vec::new();
        for key in keys {
            let owner = snap.members.owner(&key);
            if owner.name() == source.name() {
                continue;
            }
            let owned_before = snap
                .previous
                .iter()
                .any(|ring| ring.owner(&key).name() == source.name());
            if owned_before {
                moving.push((key, owner.clone()));
            } else if !snap.belongs_on(&key, source.name()) {
                leftovers.push(key);
            }
        }
        match state.unlink(source, &leftovers).await {
            Ok(n) => {
                shared.leftovers.fetch_add(n, Ordering::Relaxed);
            }
            Err(e) => {
                tracing::debug!(node = source.name(), error = %e, "could not remove leftovers");
            }
        }
        // Bounded concurrency in waves: the pipelined node connections coalesce each wave.
        for wave in moving.chunks(options.concurrency) {
            let moves = wave
                .iter()
                .map(|(key, owner)| move_key(&state, key, source, owner));
            for outcome in futures::future::join_all(moves).await {
                let counter = match outcome {
                    Ok(Outcome::Moved) => &shared.moved,
                    Ok(Outcome::KeptNewer) => &shared.kept,
                    Ok(Outcome::Gone) => continue,
                    Err(_) => &shared.failed,
                };
                counter.fetch_add(1, Ordering::Relaxed);
            }
        }
        metrics::gauge!("shardis_ring_rebalance_moved")
            .set(shared.moved.load(Ordering::Relaxed) as f64);
        // Rate limit: never ahead of `keys_per_second` since the start.
        let done = shared.moved.load(Ordering::Relaxed) + shared.kept.load(Ordering::Relaxed);
        let due =
            started + Duration::from_secs_f64(done as f64 / f64::from(options.keys_per_second));
        drop(state);
        if due > Instant::now() {
            tokio::select! {
                () = tokio::time::sleep_until(due.into()) => {}
                () = shared.wake.notified() => {}
            }
        }
        if next == "0" {
            return Ok(());
        }
        cursor = next;
    }
}

/// One `SCAN cursor COUNT count` of `node`: the next cursor and the keys.
pub(super) async fn scan_page(
    state: &RingRouter,
    node: &Member,
    cursor: &str,
    count: u32,
) -> Result<(String, Vec<Vec<u8>>)> {
    let mut scan = redis::cmd("SCAN");
    scan.arg(cursor).arg("COUNT").arg(count);
    let reply = state.send(node, &scan).await?;
    parse_scan(&reply)
        .ok_or_else(|| Error::protocol(node.server.label(), format!("SCAN replied {reply:?}")))
}

/// `[cursor, [key, ...]]`.
fn parse_scan(reply: &Value) -> Option<(String, Vec<Vec<u8>>)> {
    let Value::Array(parts) = reply else {
        return None;
    };
    let [cursor, Value::Array(keys)] = parts.as_slice() else {
        return None;
    };
    let cursor = match cursor {
        Value::BulkString(b) => String::from_utf8(b.clone()).ok()?,
        Value::SimpleString(s) => s.clone(),
        _ => return None,
    };
    let keys = keys
        .iter()
        .map(|k| match k {
            Value::BulkString(b) => Some(b.clone()),
            _ => None,
        })
        .collect::<Option<Vec<_>>>()?;
    Some((cursor, keys))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_scan_replies() {
        let reply = Value::Array(vec![
            Value::BulkString(b"17".to_vec()),
            Value::Array(vec![Value::BulkString(b"a".to_vec())]),
        ]);
        assert_eq!(parse_scan(&reply), Some(("17".into(), vec![b"a".to_vec()])));
        assert_eq!(parse_scan(&Value::Nil), None);
    }
}
