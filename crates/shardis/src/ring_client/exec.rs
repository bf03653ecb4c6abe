//! Sending to one node: the down check, timeouts, health bookkeeping, and the two ways a
//! command bridges a membership change while keys move (read fallback, move before touch).

use std::sync::Arc;

use redis::{Cmd, Pipeline, Value};

use super::placement::Member;
use super::{RingState, Snapshot, rebalance};
use crate::error::{Error, Result};

/// A reply that means "nothing here": nil, or an empty collection.
pub(crate) fn is_miss(value: &Value) -> bool {
    match value {
        Value::Nil => true,
        Value::Array(items) | Value::Set(items) => items.is_empty(),
        Value::Map(items) => items.is_empty(),
        _ => false,
    }
}

impl RingState {
    /// Sends `cmd` to `member`. A node marked down fails at once with [`Error::NodeDown`];
    /// connection failures and timeouts count against the node's health.
    pub(crate) async fn send(&self, member: &Member, cmd: &Cmd) -> Result<Value> {
        if member.health.is_down() {
            return Err(Error::NodeDown {
                node: member.name().to_string(),
            });
        }
        let conn = match member.conn.connection().await {
            Ok(conn) => conn,
            Err(e) => {
                self.on_failure(member);
                return Err(e);
            }
        };
        // No timer per command: the connection closes itself, failing every waiter, when
        // the node owes replies and sends none for the response timeout.
        match conn.send(cmd).await {
            Ok(value) => {
                self.on_success(member);
                Ok(value)
            }
            Err(e) if e.is_timeout() => {
                member.conn.discard();
                Err(self.timeout_failure(member))
            }
            Err(e) => Err(self.io_failure(member, e.to_string())),
        }
    }

    /// Sends a pipeline (`offset`/`count` as in `send_packed_commands`) to `member`.
    pub(crate) async fn send_pipeline(
        &self,
        member: &Member,
        pipeline: &Pipeline,
        offset: usize,
        count: usize,
    ) -> Result<Vec<Value>> {
        if member.health.is_down() {
            return Err(Error::NodeDown {
                node: member.name().to_string(),
            });
        }
        let conn = match member.conn.connection().await {
            Ok(conn) => conn,
            Err(e) => {
                self.on_failure(member);
                return Err(e);
            }
        };
        let send = conn.send_pipeline(pipeline, offset, count);
        match tokio::time::timeout(self.settings.deadline, send).await {
            Ok(Ok(values)) => {
                self.on_success(member);
                Ok(values)
            }
            Ok(Err(e)) => Err(self.io_failure(member, e.to_string())),
            Err(_) => Err(self.timeout_failure(member)),
        }
    }

    fn io_failure(&self, member: &Member, message: String) -> Error {
        // A broken connection: the next caller opens a fresh one.
        member.conn.discard();
        self.on_failure(member);
        Error::Connection {
            node: member.conn.label().to_string(),
            slot: None,
            message,
        }
    }

    fn timeout_failure(&self, member: &Member) -> Error {
        self.on_failure(member);
        Error::Timeout {
            deadline: self.settings.response_timeout,
            attempts: 1,
            slot: None,
            node: Some(member.conn.label().to_string()),
            last: "no reply".into(),
        }
    }

    /// A one-key read while keys move: ask the new owner; if it has nothing, ask the old
    /// owners (newest ring first); if they have nothing either, ask the new owner once more,
    /// because the rebalancer may have moved the key between the first two reads (it restores
    /// on the new owner before it deletes on the old one, so the third read then sees it).
    pub(crate) async fn read_with_fallback(
        &self,
        snap: &Snapshot,
        owner: &Arc<Member>,
        cmd: &Cmd,
        key: &[u8],
    ) -> Result<Value> {
        let first = self.send(owner, cmd).await?;
        let previous = snap.previous_owners(key, owner);
        if !is_miss(&first) || previous.is_empty() {
            return Ok(first);
        }
        for old in &previous {
            // The old owner is a best effort: its failure must not fail a read the new owner
            // answered.
            if let Ok(value) = self.send(old, cmd).await
                && !is_miss(&value)
                && !matches!(value, Value::ServerError(_))
            {
                self.counters
                    .fallback_hits
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                metrics::counter!("shardis_ring_fallback_hits_total").increment(1);
                return Ok(value);
            }
        }
        self.send(owner, cmd).await
    }

    /// Before a write (or a pipeline) touches keys whose owner changed, moves them from their
    /// old owners now, so the write applies to the latest value (an `INCR` is not lost, a
    /// `DEL` is not undone by a later move). Failures are logged, never returned: the write
    /// itself decides the caller's reply.
    pub(crate) async fn move_before_touch(&self, snap: &Snapshot, keys: &[&[u8]]) {
        for key in keys {
            let owner = snap.live.owner(key);
            for old in snap.previous_owners(key, owner) {
                if let Err(e) = rebalance::move_key(self, key, &old, owner).await {
                    tracing::debug!(node = old.name(), error = %e, "move before write failed");
                }
            }
        }
    }

    /// Start-up check: `PING` every node. Fail-fast refuses to start with a node that does
    /// not answer (a wrong address would otherwise fail a share of all keys for good); eject
    /// starts with it ejected, unless no node answers at all.
    pub(crate) async fn check_at_start(&self, members: &[Arc<Member>]) -> Result<()> {
        let pings = members.iter().map(|m| async move {
            let ping = self.send(m, &redis::cmd("PING")).await;
            (m.clone(), ping)
        });
        let results = futures::future::join_all(pings).await;
        let mut down = Vec::new();
        for (member, result) in results {
            let failure = match result {
                Ok(Value::ServerError(e)) => e.to_string(),
                Ok(_) => continue,
                Err(e) => e.to_string(),
            };
            down.push((member, failure));
        }
        if down.is_empty() {
            return Ok(());
        }
        let describe = |list: &[(Arc<Member>, String)]| {
            list.iter()
                .map(|(m, f)| format!("{} ({}): {f}", m.name(), m.node.addr))
                .collect::<Vec<_>>()
                .join("; ")
        };
        let eject = matches!(self.config.health, super::HealthPolicy::Eject { .. });
        if !eject || down.len() == members.len() {
            let (first, _) = &down[0];
            return Err(Error::Connection {
                node: first.node.addr.clone(),
                slot: None,
                message: format!("ring node(s) unreachable at start-up: {}", describe(&down)),
            });
        }
        for (member, failure) in &down {
            tracing::warn!(node = member.name(), %failure, "ring node unreachable at start-up; starting it ejected");
            self.mark_down(member);
        }
        Ok(())
    }
}
