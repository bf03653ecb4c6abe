//! Sending to one node: the down check, timeouts, health bookkeeping, and how a command
//! bridges a membership change while keys move (move before touch).

use std::future::Future;
use std::sync::Arc;

use redis::{Cmd, Pipeline, RedisResult, Value};

use super::placement::Member;
use super::{RingRouter, Snapshot, rebalance};
use crate::engine::{Keys, Request, request};
use crate::error::{Error, Result};
use crate::net::{Connection, was_not_sent};

impl RingRouter {
    /// Runs `send` on a connection to `member`. A node marked down fails at once with
    /// [`Error::NodeDown`]; under [`DownPolicy::FailFast`](crate::DownPolicy::FailFast) the
    /// node's circuit breaker is asked next (refused at once with [`Error::CircuitOpen`] while
    /// it is open; admitted along its ramp after a probe). Connection failures and timeouts
    /// count against the node's health and its breaker, once per connection.
    /// With `limit`, the exchange is also bounded by a timer (one reply is already bounded by
    /// the connection's stall watchdog, which closes a node that owes replies and sends none).
    async fn on_member<T, F>(
        &self,
        member: &Member,
        limit: Option<std::time::Duration>,
        send: impl Fn(Arc<Connection>) -> F,
    ) -> Result<T>
    where
        F: Future<Output = RedisResult<T>>,
    {
        if member.health.is_down() {
            return Err(Error::NodeDown {
                node: member.name().to_string(),
            });
        }
        // A closed, quiet breaker is one atomic load; probing one is rare (boxed, as every
        // rare path: see `engine` on future sizes).
        if member.server.breaker_shut() {
            Box::pin(member.server.admit()).await?;
        }
        // The common case, an open connection, without a future to poll.
        let ready = member.server.ready_connection();
        let opened = match ready {
            Some(conn) => Ok(conn),
            None => Box::pin(member.server.connection()).await,
        };
        let conn = match opened {
            Ok(conn) => conn,
            Err(e) => {
                // A refused or failed connect is evidence of a dead node (unlike a stall):
                // every caller it fails counts, so a dead node is marked down at once.
                self.on_failure(member);
                return Err(e);
            }
        };
        let mut used = conn.clone();
        let outcome = match limit {
            None => Ok(send(conn).await),
            Some(limit) => Box::pin(tokio::time::timeout(limit, send(conn))).await,
        };
        // The connection closed before the command was written (the server closed it): the
        // node may be fine; the pool opens a fresh connection, and the command goes there once.
        let outcome = match outcome {
            Ok(Err(e)) if was_not_sent(&e) => {
                let conn = Box::pin(member.server.connection()).await?;
                used = conn.clone();
                Box::pin(async {
                    match limit {
                        None => Ok(send(conn).await),
                        Some(limit) => tokio::time::timeout(limit, send(conn)).await,
                    }
                })
                .await
            }
            other => other,
        };
        match outcome {
            Ok(Ok(value)) => {
                self.on_success(member);
                member.server.record_success();
                Ok(value)
            }
            Ok(Err(e)) if e.is_timeout() => {
                member.server.discard();
                Err(self.timeout_failure(member, &used))
            }
            Ok(Err(e)) => Err(self.io_failure(member, &used, e.to_string())),
            Err(_) => Err(self.timeout_failure(member, &used)),
        }
    }

    /// Sends `cmd` to `member`.
    pub(crate) async fn send(&self, member: &Member, cmd: &Cmd) -> Result<Value> {
        self.on_member(member, None, |conn| async move { conn.send(cmd).await })
            .await
    }

    /// Sends `request` (a command or a transaction) to `member`.
    pub(crate) async fn send_request(
        &self,
        member: &Member,
        request: Request<'_>,
    ) -> Result<Value> {
        match request {
            Request::Cmd(cmd) => self.send(member, cmd).await,
            Request::Blocking { cmd, wait } => {
                Box::pin(self.send_blocking(member, cmd, wait)).await
            }
            Request::Transaction(_) => {
                let limit = Some(self.settings.deadline);
                Box::pin(self.on_member(member, limit, |conn| async move {
                    request::send(&conn, request, false).await
                }))
                .await
            }
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
        let limit = Some(self.settings.deadline);
        self.on_member(member, limit, |conn| async move {
            conn.send_pipeline(pipeline, offset, count).await
        })
        .await
    }

    /// A blocking command on a dedicated connection of its own, bounded by its own `wait`.
    /// It never counts against the node's health: a long wait is what it asked for.
    async fn send_blocking(
        &self,
        member: &Member,
        cmd: &Cmd,
        wait: Option<std::time::Duration>,
    ) -> Result<Value> {
        if member.health.is_down() {
            return Err(Error::NodeDown {
                node: member.name().to_string(),
            });
        }
        let mut dedicated = member.server.dedicated().await?;
        let Some(conn) = dedicated.connection() else {
            return Err(Error::connection(member.server.label(), "no connection"));
        };
        let reply = match wait {
            Some(wait) => tokio::time::timeout(wait, conn.send(cmd))
                .await
                .map_err(|_| Error::node_timeout(wait, member.name()))?,
            None => conn.send(cmd).await,
        };
        let reply = reply.map_err(|e| Error::connection(member.server.label(), e.to_string()))?;
        dedicated.mark_clean();
        Ok(reply)
    }

    /// A broken connection: the next caller opens a fresh one. It counts as one failure of
    /// the node however many commands were waiting on it.
    fn io_failure(&self, member: &Member, conn: &Connection, message: String) -> Error {
        member.server.discard();
        if conn.claim_failure() {
            self.connection_failed(member);
        }
        Error::connection(member.server.label(), message)
    }

    /// No reply in time: one failure per connection (a stall that fails thirty waiters at
    /// once is one failure, not thirty).
    fn timeout_failure(&self, member: &Member, conn: &Connection) -> Error {
        if conn.claim_failure() {
            self.connection_failed(member);
        }
        Error::node_timeout(self.settings.response_timeout, member.name())
    }

    /// A connection of `member` broke or stalled (claimed once): one failure for the ring's
    /// health and one for the node's breaker.
    pub(crate) fn connection_failed(&self, member: &Member) {
        self.on_failure(member);
        member.server.record_failure();
    }

    /// Before any command (a read or a write) or a pipeline touches keys whose owner changed,
    /// moves them from their old owners now, so every command sees one owner holding the
    /// latest value: a read of any kind (`GET`, `EXISTS`, `TTL`, `TYPE`, ...) answers as the
    /// new owner will, an `INCR` is not lost, a `DEL` is not undone by a later move. Returns
    /// how many keys were found on an old owner. Failures are logged, never returned: the
    /// command itself decides the caller's reply.
    pub(crate) async fn move_before_touch(&self, snap: &Snapshot, keys: Keys<'_>) -> u64 {
        let mut found = 0;
        for key in keys.iter() {
            let owner = snap.live.owner(key);
            for old in snap.previous_owners(key, owner) {
                match rebalance::move_key(self, key, &old, owner).await {
                    Ok(rebalance::Outcome::Moved | rebalance::Outcome::KeptNewer) => found += 1,
                    Ok(rebalance::Outcome::Gone) => {}
                    Err(e) => {
                        tracing::debug!(node = old.name(), error = %e, "move before touch failed");
                    }
                }
            }
        }
        found
    }

    /// Start-up check: `PING` every node. Fail-fast refuses to start with a node that does
    /// not answer (a wrong address would otherwise fail a share of all keys for good); eject
    /// starts with it ejected, unless no node answers at all.
    pub(crate) async fn check_at_start(&self, members: &[Arc<Member>]) -> Result<()> {
        let pings = members.iter().map(|m| async move {
            let ping = self.send(m, &redis::cmd("PING")).await;
            (m.clone(), ping)
        });
        // A Redis Cluster node would answer only the keys of its own slots: refuse it here
        // rather than serve MOVED replies as values.
        let infos = members.iter().map(|m| async move {
            let mut info = redis::cmd("INFO");
            info.arg("cluster");
            match self.send(m, &info).await {
                Ok(Value::BulkString(text)) => (
                    m.clone(),
                    text.windows(17).any(|w| w == b"cluster_enabled:1"),
                ),
                Ok(Value::VerbatimString { text, .. }) => {
                    (m.clone(), text.contains("cluster_enabled:1"))
                }
                _ => (m.clone(), false),
            }
        });
        for (member, clustered) in futures::future::join_all(infos).await {
            if clustered {
                return Err(Error::Config(format!(
                    "ring node {:?} at {} is a Redis Cluster node: use Client::builder().cluster([...]) \
                     for a cluster, or point the ring at standalone nodes",
                    member.name(),
                    member.node.addr
                )));
            }
        }
        let results = futures::future::join_all(pings).await;
        let mut down = Vec::new();
        // A refused TLS handshake or credentials is said as such, not as "unreachable".
        let mut typed = None;
        for (member, result) in results {
            let failure = match result {
                Ok(Value::ServerError(e)) => e.to_string(),
                Ok(_) => continue,
                Err(e @ (Error::Tls { .. } | Error::Auth { .. })) => {
                    let failure = e.to_string();
                    typed.get_or_insert(e);
                    failure
                }
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
            if let Some(e) = typed {
                return Err(e);
            }
            let (first, _) = &down[0];
            return Err(Error::connection(
                &first.node.addr,
                format!("ring node(s) unreachable at start-up: {}", describe(&down)),
            ));
        }
        for (member, failure) in &down {
            tracing::warn!(node = member.name(), %failure, "ring node unreachable at start-up; starting it ejected");
            self.mark_down(member);
        }
        Ok(())
    }
}
