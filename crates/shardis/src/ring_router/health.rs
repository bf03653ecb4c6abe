//! Node health: failures seen on live traffic and by a background `PING` heartbeat mark a node
//! down after K in a row; the policy decides what "down" means (fail fast, or eject from the
//! ring until a probe succeeds after the retry timeout).

use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::Instant;

use redis::Value;

use super::placement::{Member, RingTable};
use super::{HealthPolicy, RingRouter, Snapshot};
use crate::net::Connection;
use crate::settings::DownPolicy;

impl RingRouter {
    /// Counts a failure of `member`; the K-th in a row marks it down — except under the
    /// ring's fail-fast policy with [`DownPolicy::FailFast`]: there the node's circuit
    /// breaker alone decides, so a failing node's commands get [`Error::CircuitOpen`] in
    /// ring mode as in cluster mode (one vocabulary), and it comes back through the breaker's
    /// probe and ramp.
    ///
    /// [`Error::CircuitOpen`]: crate::Error::CircuitOpen
    pub(crate) fn on_failure(&self, member: &Member) {
        if member.node.sentinel
            && let Some(shards) = &self.sentinel
        {
            // Its primary may have moved: ask the sentinels (coalesced, rate-limited).
            shards.recheck.request();
        }
        let failures = member.health.failures.fetch_add(1, Ordering::Relaxed) + 1;
        if failures >= self.config.failure_limit
            && !member.health.is_down()
            && !self.breaker_decides()
        {
            self.mark_down(member);
        }
    }

    /// Whether the breaker, not the ring's health, fails a down node's commands.
    pub(crate) fn breaker_decides(&self) -> bool {
        self.config.health == HealthPolicy::FailFast
            && self.settings.down_policy == DownPolicy::FailFast
    }

    /// A success clears the failure count (read first: no write on the common path).
    pub(crate) fn on_success(&self, member: &Member) {
        if member.health.failures.load(Ordering::Relaxed) != 0 {
            member.health.failures.store(0, Ordering::Relaxed);
        }
    }

    /// Marks `member` down; under the eject policy, also takes it out of the live ring, so its
    /// keys go to the next node clockwise and no other key moves.
    pub(crate) fn mark_down(&self, member: &Member) {
        let _write = self.write.lock();
        if member.health.down.swap(true, Ordering::Relaxed) {
            return;
        }
        *member.health.down_since.lock() = Some(Instant::now());
        match self.config.health {
            HealthPolicy::FailFast => {
                tracing::warn!(node = member.name(), addr = %member.node.addr, "ring node down; its keys fail fast");
                metrics::counter!("shardis_ring_node_down_total", "node" => member.name().to_string())
                    .increment(1);
            }
            HealthPolicy::Eject { .. } => {
                self.counters.ejections.fetch_add(1, Ordering::Relaxed);
                metrics::counter!("shardis_ring_ejections_total", "node" => member.name().to_string())
                    .increment(1);
                tracing::warn!(node = member.name(), addr = %member.node.addr, "ring node ejected; its keys go to the next node");
                self.rebuild_live();
            }
        }
    }

    /// Marks `member` up again; under the eject policy, puts it back in the live ring, which
    /// then equals the ring before the ejection, so every key maps where it did.
    /// Returns whether it was down.
    pub(crate) fn readmit(&self, member: &Member) -> bool {
        let _write = self.write.lock();
        if !member.health.down.swap(false, Ordering::Relaxed) {
            return false;
        }
        member.health.failures.store(0, Ordering::Relaxed);
        let down_for = member
            .health
            .down_since
            .lock()
            .take()
            .map(|since| since.elapsed());
        self.counters.readmissions.fetch_add(1, Ordering::Relaxed);
        metrics::counter!("shardis_ring_readmissions_total", "node" => member.name().to_string())
            .increment(1);
        tracing::info!(
            node = member.name(),
            ?down_for,
            "ring node back; re-admitted"
        );
        if matches!(self.config.health, HealthPolicy::Eject { .. }) {
            self.rebuild_live();
        }
        // Under DownPolicy::FailFast its traffic comes back along the breaker's ramp, not all
        // at once (as for a promoted replica in cluster mode). Ring commands do not wait, so
        // under DownPolicy::Wait there is no backlog to release.
        if self.settings.down_policy == DownPolicy::FailFast {
            member.server.start_ramp();
        }
        true
    }

    /// Rebuilds the live ring from the members that are not down. Call with `write` held.
    pub(crate) fn rebuild_live(&self) {
        let snap = self.snapshot.load_full();
        let live = self.live_routing(&snap.members);
        self.snapshot.store(Arc::new(Snapshot {
            members: snap.members.clone(),
            live,
            previous: snap.previous.clone(),
            epoch: snap.epoch,
        }));
    }

    /// `members` without ejected nodes. With every node ejected there is nothing better than
    /// the full ring: commands then fail with `NodeDown`.
    pub(crate) fn live_routing(&self, members: &Arc<RingTable>) -> Arc<RingTable> {
        if !matches!(self.config.health, HealthPolicy::Eject { .. }) {
            return members.clone();
        }
        let up: Vec<Arc<Member>> = members
            .members()
            .iter()
            .filter(|m| !m.health.is_down())
            .cloned()
            .collect();
        if up.len() == members.members().len() || up.is_empty() {
            return members.clone();
        }
        match RingTable::build(&self.config, up) {
            Ok(live) => Arc::new(live),
            Err(e) => {
                tracing::error!(error = %e, "could not build the ring without ejected nodes");
                members.clone()
            }
        }
    }

    /// One heartbeat round: `PING` every member (a down one only once it may come back).
    async fn heartbeat_round(self: &Arc<Self>) {
        let snap = self.snapshot.load_full();
        let probes = snap.members.members().iter().map(|member| async move {
            if member.health.is_down() {
                if let HealthPolicy::Eject { retry_timeout } = self.config.health {
                    let since = *member.health.down_since.lock();
                    if since.is_some_and(|s| s.elapsed() < retry_timeout) {
                        return;
                    }
                }
                if !self.probe(member).await {
                    return;
                }
                // Ejected: its keys were served by stand-ins meanwhile, so what it holds is
                // older than what they served (see `readmit.rs`).
                if matches!(self.config.health, HealthPolicy::Eject { .. }) {
                    self.readmit_ejected(member).await;
                } else {
                    self.readmit(member);
                }
            } else {
                match self.probe_once(member).await {
                    Ok(()) => self.on_success(member),
                    // A connection that already failed callers counted once.
                    Err(Some(conn)) if !conn.claim_failure() => {}
                    Err(_) => self.connection_failed(member),
                }
            }
        });
        futures::future::join_all(probes).await;
    }

    /// `PING` bypassing the down check, bounded by the connect and response timeouts.
    async fn probe(&self, member: &Member) -> bool {
        self.probe_once(member).await.is_ok()
    }

    /// `PING` as [`Self::probe`]; on failure, the connection it used, if it had one.
    async fn probe_once(&self, member: &Member) -> Result<(), Option<Arc<Connection>>> {
        let limit = self.settings.connect_timeout + self.settings.response_timeout;
        let mut used = None;
        let ping = async {
            let conn = member.server.connection().await.ok()?;
            used = Some(conn.clone());
            conn.send(&redis::cmd("PING")).await.ok()
        };
        match tokio::time::timeout(limit, ping).await {
            Ok(Some(Value::SimpleString(_) | Value::Okay | Value::BulkString(_))) => Ok(()),
            Ok(_) | Err(_) => {
                member.server.discard();
                Err(used)
            }
        }
    }
}

/// The heartbeat task: runs until the last client clone is dropped.
pub(crate) async fn heartbeat(state: Weak<RingRouter>) {
    loop {
        let interval = match state.upgrade() {
            Some(s) => s.config.heartbeat_interval,
            None => return,
        };
        tokio::time::sleep(interval).await;
        let Some(state) = state.upgrade() else {
            return;
        };
        if state.closed.load(Ordering::Relaxed) {
            return;
        }
        state.heartbeat_round().await;
    }
}
