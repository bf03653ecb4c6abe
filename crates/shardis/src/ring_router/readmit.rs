//! Re-admitting an ejected node without going back in time (eject policy).
//!
//! While a node is ejected its keys are read and written on stand-ins (the next node
//! clockwise). What the node itself holds is older: the values from before its ejection, plus
//! writes that reached it late (a command that timed out during a stall and ran when the stall
//! ended). Serving any of it again would go back in time: a value overwritten on the stand-in,
//! a key deleted there, a counter incremented there.
//!
//! Reconciling key by key cannot be made exact: a delete leaves nothing on the stand-in to copy
//! back, a key may expire or be evicted there, and other client processes write too. So the
//! node is emptied (`FLUSHDB`) before it is routed to again: its keys read as misses and
//! refill, which a cache allows; nothing older than what the stand-ins served comes back. A node
//! that was ejected because it died and restarted empty loses nothing by it.
//!
//! The stand-ins' copies are then removed (once every command routed before the re-admission
//! has ended: they are bounded by the deadline), so a later ejection of the same node never
//! serves them and a later rebalance never restores them over the owner
//! ([`Snapshot::belongs_on`](super::Snapshot::belongs_on) is the one rule for both).

use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};

use redis::Value;

use super::RingRouter;
use super::placement::Member;
use super::rebalance::scan_page;
use crate::error::{Error, Result};

/// Keys asked for by each `SCAN` of a stand-in.
const SCAN_COUNT: u32 = 500;

impl RingRouter {
    /// Empties `member`, puts it back in the ring, and later removes its keys' copies from the
    /// stand-ins. Returns false (it stays ejected, and is tried again) when it could not be
    /// emptied.
    pub(crate) async fn readmit_ejected(self: &Arc<Self>, member: &Arc<Member>) -> bool {
        if let Err(e) = self.flush(member).await {
            tracing::error!(
                node = member.name(),
                error = %e,
                "ejected ring node answers but could not be emptied; it stays ejected, \
                 as serving what it held before would go back in time"
            );
            return false;
        }
        if self.readmit(member) {
            tokio::spawn(remove_copies_later(
                Arc::downgrade(self),
                member.name().to_string(),
            ));
        }
        true
    }

    /// `FLUSHDB` on `member`, bypassing the down check (it is still ejected), bounded by the
    /// connect and response timeouts.
    async fn flush(&self, member: &Member) -> Result<()> {
        let limit = self.settings.connect_timeout + self.settings.response_timeout;
        let label = member.server.label();
        let flush = async {
            let conn = member.server.connection().await?;
            conn.send(&redis::cmd("FLUSHDB"))
                .await
                .map_err(|e| Error::connection(label, e.to_string()))
        };
        match tokio::time::timeout(limit, flush).await {
            Ok(Ok(Value::Okay | Value::SimpleString(_))) => Ok(()),
            Ok(Ok(other)) => Err(Error::protocol(label, format!("FLUSHDB replied {other:?}"))),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(Error::node_timeout(limit, member.name())),
        }
    }

    /// Removes from `member` every key it holds that [`belongs_on`](super::Snapshot::belongs_on)
    /// says it must not; how many were removed.
    async fn remove_leftovers(&self, member: &Member) -> Result<u64> {
        let mut cursor = String::from("0");
        let mut removed = 0;
        loop {
            let (next, keys) = scan_page(self, member, &cursor, SCAN_COUNT).await?;
            let snap = self.snapshot.load_full();
            let stale: Vec<Vec<u8>> = keys
                .into_iter()
                .filter(|k| !snap.belongs_on(k, member.name()))
                .collect();
            removed += self.unlink(member, &stale).await?;
            if next == "0" {
                return Ok(removed);
            }
            cursor = next;
        }
    }

    /// `UNLINK`s `keys` (leftovers) on `member`; how many it removed.
    pub(crate) async fn unlink(&self, member: &Member, keys: &[Vec<u8>]) -> Result<u64> {
        if keys.is_empty() {
            return Ok(0);
        }
        let mut unlink = redis::cmd("UNLINK");
        for key in keys {
            unlink.arg(key.as_slice());
        }
        let removed = match self.send(member, &unlink).await? {
            Value::Int(n) => u64::try_from(n).unwrap_or(0),
            other => {
                return Err(Error::protocol(
                    member.server.label(),
                    format!("UNLINK replied {other:?}"),
                ));
            }
        };
        self.counters
            .leftovers_removed
            .fetch_add(removed, Ordering::Relaxed);
        metrics::counter!("shardis_ring_leftovers_removed_total").increment(removed);
        Ok(removed)
    }
}

/// Once every command routed before `readmitted` came back has ended (the deadline), removes
/// the copies of its keys that the other nodes kept while standing in for it.
async fn remove_copies_later(state: Weak<RingRouter>, readmitted: String) {
    let Some(deadline) = state.upgrade().map(|s| s.settings.deadline) else {
        return;
    };
    tokio::time::sleep(deadline).await;
    let Some(state) = state.upgrade() else {
        return;
    };
    let snap = state.snapshot.load_full();
    let mut removed = 0;
    for member in snap.live.members() {
        if member.name() == readmitted {
            continue;
        }
        match state.remove_leftovers(member).await {
            Ok(n) => removed += n,
            Err(e) => tracing::warn!(
                node = member.name(),
                error = %e,
                "could not remove stand-in copies from a ring node; a later rebalance removes them"
            ),
        }
    }
    tracing::info!(
        node = readmitted,
        removed,
        "stand-in copies removed after re-admission"
    );
}
