//! Write-behind: [`Cache::write_behind`] stores a value in the cache at once and appends the
//! change to a Redis Stream; a [`WriteBehind`] flusher drains the streams to your [`Sink`]
//! (the database), in batches, at least once, in order per key.
//!
//! # Layout
//! The changes of a namespace are spread over [`partitions`](WriteBehindConfig::partitions)
//! streams `{<namespace>:wb:<p>}` (each its own hash tag, so they spread over the shards); a
//! key's partition is a stable hash (FNV-1a) of its id, so the changes of one key are in one
//! stream, in the order they were appended. Beside each stream, under its hash tag: its lease
//! (`…:owner`) and its dead-letter stream (`…:dead`).
//!
//! # What a write does, and why in this order
//! 1. **Append to the stream** (one script: check the backlog bound, `XADD`). This is the
//!    commit point: once it succeeded the change reaches the sink, whatever happens next.
//! 2. Optionally **`WAIT`** for replicas (on a dedicated connection, see
//!    [`Durability`]).
//! 3. **Store in the cache** (one script on the value key: only if no newer change of the key
//!    is stored there, comparing stream entry ids; bumps the key's version like a
//!    write-through so no fill that began earlier can overwrite it).
//!
//! The stream and the value key have different hash tags (the value key's is the id's, which
//! `get_or_load` needs), so no single script can do both in cluster mode. Stream first: a crash
//! between 1 and 3 leaves a change the sink gets and the cache does not show (the cache keeps
//! its previous value until the TTL or the next write), and the writer saw no
//! acknowledgement. The other order would leave a value readers see that the database never
//! gets. If step 3 fails, the key is invalidated instead and [`Error::Queued`] says so.
//!
//! # Guarantees
//! - **At least once to the sink**: an entry is acknowledged (`XACK` + `XDEL`, one script)
//!   only after the sink returned `Ok` for a batch holding it (or after it was moved to the
//!   dead-letter stream). A flusher that dies leaves its entries pending; another takes the
//!   partition when the lease runs out and claims them (`XAUTOCLAIM`) once idle for
//!   [`claim_idle`](WriteBehindBuilder::claim_idle), before it reads anything newer.
//! - **In order per key**: one flusher owns a partition at a time (a lease renewed while it
//!   works), delivers the changes of one key in stream order, and coalesces a key's changes
//!   within a batch into its last value ([`Change::writes`] says how many it stands for).
//!   A flusher that loses its lease stops; only a process stalled past both the lease and the
//!   claim idle time can deliver an older value after a newer one.
//! - **Nothing acknowledged is lost**: past the backlog bound a writer waits or gets
//!   [`Error::Backpressure`] ([`Backpressure`]); nothing is dropped or trimmed.
//! - **Poison entries**: a key whose change the sink refuses
//!   [`max_tries`](WriteBehindBuilder::max_tries) times, alone, while the sink accepts other
//!   keys, is moved to the dead-letter stream with the error (read it with
//!   [`WriteBehind::dead_letters`]). While the sink refuses everything (an outage) nothing is
//!   dead-lettered: the flusher backs off and the backlog grows into backpressure.

mod flusher;
mod scripts;

use std::fmt::Display;
use std::sync::Arc;
use std::time::{Duration, Instant};

use redis::aio::ConnectionLike;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tracing::Instrument;

use crate::cache::{Cache, Inner, Keys};
use crate::error::{Error, Result};

pub use flusher::{
    Change, DeadLetter, ShutdownReport, Sink, WriteBehind, WriteBehindBuilder, WriteBehindStats,
};

/// What a writer does when its partition's backlog is at the bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backpressure {
    /// Wait (retrying with a short backoff) up to this long for room, then fail with
    /// [`Error::Backpressure`].
    Wait(Duration),
    /// Fail at once with [`Error::Backpressure`].
    Fail,
}

/// Wait for replicas before a write-behind write is acknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Durability {
    /// Replicas that must have the change (`WAIT <replicas> <timeout>`).
    pub replicas: u32,
    /// How long `WAIT` may take.
    pub timeout: Duration,
}

/// Write-behind settings shared by writers and flushers: every process of a namespace must use
/// the same number of partitions. Set with [`Builder::write_behind`](crate::Builder::write_behind).
///
/// ```
/// use std::time::Duration;
/// use shardis_cache::{Backpressure, WriteBehindConfig};
/// let config = WriteBehindConfig {
///     partitions: 16,
///     max_backlog: 200_000,
///     on_full: Backpressure::Wait(Duration::from_secs(2)),
///     ..WriteBehindConfig::default()
/// };
/// # let _ = config;
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WriteBehindConfig {
    /// Streams the changes are spread over (default 8; 1 to 1024). Each is one hash tag, so
    /// in cluster mode each lives on one shard and is drained by one flusher at a time.
    pub partitions: u32,
    /// Changes not yet acknowledged by the sink, over all partitions (default 100,000; 0: no
    /// bound). Each partition holds at most `ceil(max_backlog / partitions)`.
    pub max_backlog: u64,
    /// What a writer does past the bound (default: wait up to 5 s).
    pub on_full: Backpressure,
    /// Wait for replicas before acknowledging a write (default: none).
    pub durability: Option<Durability>,
}

impl Default for WriteBehindConfig {
    fn default() -> Self {
        WriteBehindConfig {
            partitions: 8,
            max_backlog: 100_000,
            on_full: Backpressure::Wait(Duration::from_secs(5)),
            durability: None,
        }
    }
}

impl WriteBehindConfig {
    pub(crate) fn validate(&self) -> Result<()> {
        if !(1..=1024).contains(&self.partitions) {
            return Err(Error::Config(format!(
                "write-behind partitions {} not in 1..=1024",
                self.partitions
            )));
        }
        if let Some(d) = self.durability
            && d.replicas == 0
        {
            return Err(Error::Config(
                "write-behind durability needs at least 1 replica".into(),
            ));
        }
        Ok(())
    }

    /// The bound of one partition (0: none).
    pub(crate) fn partition_bound(&self) -> u64 {
        if self.max_backlog == 0 {
            0
        } else {
            self.max_backlog.div_ceil(u64::from(self.partitions))
        }
    }
}

/// A write-behind write that was acknowledged: the change is in its partition's stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Queued {
    /// The partition (stream) it went to.
    pub partition: u32,
    /// Its stream entry id.
    pub entry: String,
    /// The partition's backlog right after the append.
    pub backlog: u64,
}

/// The partition of `id` among `partitions`: FNV-1a 64 of its bytes, stable across processes
/// and versions.
pub fn partition_of(id: &str, partitions: u32) -> u32 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in id.as_bytes() {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    (h % u64::from(partitions.max(1))) as u32
}

/// The Redis keys of one partition.
#[derive(Debug, Clone)]
pub(crate) struct PartitionKeys {
    pub(crate) stream: String,
    pub(crate) lease: String,
    pub(crate) dead: String,
}

impl PartitionKeys {
    pub(crate) fn new(namespace: &str, partition: u32) -> PartitionKeys {
        let stream = format!("{{{namespace}:wb:{partition}}}");
        PartitionKeys {
            lease: format!("{stream}:owner"),
            dead: format!("{stream}:dead"),
            stream,
        }
    }
}

/// The consumer group of every namespace's streams.
pub(crate) const GROUP: &str = "shardis-write-behind";

impl<V> Cache<V>
where
    V: Serialize + DeserializeOwned + Clone + Send + Sync + 'static,
{
    /// Write-behind: stores `value` as the cache's value of `id` at once (so `get`,
    /// `get_or_load` see it) and queues the change for the sink, which a [`WriteBehind`]
    /// flusher (in this process or another) delivers at least once, in order per key.
    ///
    /// `Ok` means the change is in its partition's stream (and, with [`Durability`], on the
    /// replicas): it will reach the sink. Errors:
    /// - [`Error::Backpressure`]: the partition's backlog is at the bound (after waiting, with
    ///   [`Backpressure::Wait`]); nothing was queued or stored.
    /// - [`Error::NotReplicated`]: queued, but fewer replicas than asked confirmed it in time.
    /// - [`Error::Queued`]: queued (it will reach the sink), but the cache could not be
    ///   updated; it says whether the key was invalidated instead.
    /// - [`Error::Redis`] / [`Error::Server`]: the append failed; the change may or may not
    ///   have been queued (a write that was sent is never retried), so retry it: the sink may
    ///   then see it twice, as with any at-least-once delivery.
    ///
    /// ```no_run
    /// # async fn run(cache: shardis_cache::Cache<u64>) -> Result<(), shardis_cache::Error> {
    /// // A page-view counter: the cache has the running value at once, the database gets it
    /// // in batches (several increments of one page coalesced into the last value).
    /// let views = cache.get("page:7").await?.unwrap_or(0);
    /// cache.write_behind("page:7", views + 1).await?;
    /// # Ok(()) }
    /// ```
    pub async fn write_behind<K: Display + ?Sized>(&self, id: &K, value: V) -> Result<Queued> {
        let id = id.to_string();
        let span = tracing::debug_span!(
            "shardis_cache.write_behind",
            namespace = %self.inner.cfg.namespace,
            id = %id,
            partition = tracing::field::Empty,
        );
        let result = self
            .write_behind_inner(&id, value)
            .instrument(span.clone())
            .await;
        if let Ok(q) = &result {
            span.record("partition", q.partition);
        }
        result
    }

    async fn write_behind_inner(&self, id: &str, value: V) -> Result<Queued> {
        let inner = &self.inner;
        let wb = inner.cfg.write_behind;
        let partition = partition_of(id, wb.partitions);
        let pkeys = PartitionKeys::new(&inner.cfg.namespace, partition);
        let (fresh, hard) = inner.ttls(false);
        let bytes = inner.envelope(Some(&value), fresh, 0)?;
        // With durability, the append and WAIT run on one dedicated connection: WAIT counts
        // the replicas that have every write this connection made.
        let (entry, backlog, replicated) = match wb.durability {
            Some(d) => {
                let mut conn = inner.client.dedicated(&pkeys.stream).await?;
                let (entry, backlog) = inner
                    .append(&mut conn, &pkeys, partition, id, &bytes)
                    .await?;
                let replicated = inner.wait_replicas(&mut conn, d).await;
                (entry, backlog, replicated)
            }
            None => {
                let mut client = inner.client.clone();
                let (entry, backlog) = inner
                    .append(&mut client, &pkeys, partition, id, &bytes)
                    .await?;
                (entry, backlog, Ok(()))
            }
        };
        inner.m.wb_appended.inc();
        let queued = Queued {
            partition,
            entry,
            backlog,
        };
        inner.store_written(id, &queued.entry, &bytes, hard).await?;
        replicated.map(|()| queued)
    }
}

impl<V> Inner<V>
where
    V: Serialize + DeserializeOwned + Clone + Send + Sync + 'static,
{
    /// Appends under the bound, waiting for room as the policy says.
    async fn append<C: ConnectionLike + Send>(
        &self,
        conn: &mut C,
        pkeys: &PartitionKeys,
        partition: u32,
        id: &str,
        bytes: &[u8],
    ) -> Result<(String, u64)> {
        let wb = self.cfg.write_behind;
        let bound = wb.partition_bound();
        let cmd = scripts::append(&pkeys.stream, bound, id, bytes);
        let started = Instant::now();
        let mut pause = Duration::from_millis(1);
        let mut waited = false;
        loop {
            let reply = conn.req_packed_command(&cmd).await?;
            let (entry, backlog) = scripts::parse_append(reply)?;
            if let Some(entry) = entry {
                return Ok((entry, backlog));
            }
            let limit = match wb.on_full {
                Backpressure::Fail => Duration::ZERO,
                Backpressure::Wait(limit) => limit,
            };
            let elapsed = started.elapsed();
            if elapsed >= limit {
                self.m.wb_backpressure_errors.inc();
                tracing::debug!(partition, backlog, bound, "write-behind backlog full");
                return Err(Error::Backpressure {
                    partition,
                    backlog,
                    bound,
                    waited: elapsed,
                });
            }
            if !waited {
                waited = true;
                self.m.wb_backpressure_waits.inc();
            }
            tokio::time::sleep(pause.min(limit - elapsed)).await;
            pause = (pause * 2).min(Duration::from_millis(50));
        }
    }

    /// `WAIT` on the connection that made the append.
    async fn wait_replicas<C: ConnectionLike + Send>(
        &self,
        conn: &mut C,
        d: Durability,
    ) -> Result<()> {
        let mut wait = redis::cmd("WAIT");
        wait.arg(d.replicas).arg(d.timeout.as_millis() as u64);
        let got = match conn.req_packed_command(&wait).await? {
            redis::Value::Int(n) => u32::try_from(n).unwrap_or(0),
            other => return Err(Error::Reply(format!("WAIT: {other:?}"))),
        };
        if got < d.replicas {
            self.m.wb_not_replicated.inc();
            return Err(Error::NotReplicated {
                wanted: d.replicas,
                got,
            });
        }
        Ok(())
    }

    /// Step 3 of a write: the cache store (retried, then invalidation, within the write
    /// deadline).
    async fn store_written(
        self: &Arc<Self>,
        id: &str,
        entry: &str,
        bytes: &[u8],
        hard: u64,
    ) -> Result<()> {
        let deadline = Instant::now() + self.cfg.write_deadline;
        let mut pause = Duration::from_millis(10);
        let mut last_error = String::new();
        let mut keys: Option<Keys> = None;
        for _ in 0..3 {
            match self.ns_version().await {
                Ok(v) => {
                    let k = Keys::new(&self.cfg.namespace, v, id);
                    self.forget_flight(&k);
                    let cmd = scripts::store(
                        &k.value,
                        &k.version(),
                        &k.lock(),
                        &k.write_behind(),
                        entry,
                        bytes,
                        hard,
                        self.cfg.lease_ttl.as_millis() as u64,
                    );
                    match self.eval(&cmd).await {
                        Ok(_) => {
                            self.forget_flight(&k);
                            return Ok(());
                        }
                        Err(e) => last_error = e.to_string(),
                    }
                    keys = Some(k);
                }
                Err(e) => last_error = e.to_string(),
            }
            self.m.redis_errors.inc();
            if Instant::now() + pause >= deadline {
                break;
            }
            tokio::time::sleep(pause).await;
            pause *= 2;
        }
        tracing::warn!(error = %last_error, "write-behind: queued, but the cache write failed; invalidating");
        let mut invalidated = false;
        while let Some(k) = &keys {
            if self.invalidate_keys(k).await.is_ok() {
                invalidated = true;
                break;
            }
            if Instant::now() + pause >= deadline {
                break;
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_millis(200));
        }
        Err(Error::Queued {
            cache_write: last_error,
            invalidated,
        })
    }
}
