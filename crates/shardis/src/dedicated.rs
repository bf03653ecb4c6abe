//! Dedicated connections: one exclusive connection to the node of a key, for what must not run
//! on a shared connection — `WATCH`/`MULTI`/`EXEC` with reads in between, a write followed by
//! `WAIT` on the same connection, a long blocking read — and [`Client::transaction`], the
//! optimistic-transaction helper built on it.

use std::time::Duration;

use redis::aio::ConnectionLike;
use redis::{Cmd, Pipeline, RedisFuture, Value};

use crate::Client;
use crate::command::{self, class, table};
use crate::error::{Error, Result};
use crate::net::Dedicated;

/// An exclusive connection to the node that serves one key (its slot's primary in cluster mode,
/// its ring node in ring mode), from [`Client::dedicated`].
///
/// It is a [`redis::aio::ConnectionLike`]: use it with [`redis::AsyncCommands`] and
/// [`redis::pipe`]. Every command must keep to the key's slot (cluster) or node (ring); a
/// command for another shard is refused with [`Error::CrossSlot`] (or [`Error::Unsupported`]
/// in ring mode) before it is sent. If the slot moves while the connection is in use, the
/// command fails with [`Error::SlotMoved`] instead of being followed: a `WATCH` on the old node
/// would no longer guard anything.
///
/// Dropped, it goes back to a small per-node pool only if it is clean (no `WATCH` or `MULTI`
/// left open, no reply outstanding); otherwise it is closed.
///
/// ```no_run
/// # async fn run(client: shardis::Client) -> Result<(), Box<dyn std::error::Error>> {
/// use redis::AsyncCommands;
/// let mut conn = client.dedicated("{order:7}:status").await?;
/// let _: () = conn.set("{order:7}:status", "paid").await?;
/// // Wait until one replica has this connection's write.
/// let replicas: i64 = redis::cmd("WAIT").arg(1).arg(500).query_async(&mut conn).await?;
/// # Ok(()) }
/// ```
pub struct DedicatedConnection {
    conn: Dedicated,
    client: Client,
    /// The key the connection is bound to; every command must share its shard.
    key: Vec<u8>,
    node: String,
    watching: bool,
    in_multi: bool,
}

impl std::fmt::Debug for DedicatedConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DedicatedConnection")
            .field("node", &self.node)
            .field("key", &String::from_utf8_lossy(&self.key))
            .finish_non_exhaustive()
    }
}

/// Commands a dedicated connection runs that the shared ones refuse: they only change this
/// connection's state, which is tracked and cleared before reuse.
fn allowed_here(name: &str) -> bool {
    matches!(
        name,
        "WATCH" | "UNWATCH" | "MULTI" | "EXEC" | "DISCARD" | "WAIT" | "WAITAOF"
    )
}

impl DedicatedConnection {
    pub(crate) fn new(conn: Dedicated, client: Client, key: &[u8], node: String) -> Self {
        DedicatedConnection {
            conn,
            client,
            key: key.to_vec(),
            node,
            watching: false,
            in_multi: false,
        }
    }

    /// The address of the node this connection is to.
    pub fn node(&self) -> &str {
        &self.node
    }

    /// Refuses what this connection must not run, before anything is sent.
    fn check(&self, cmd: &Cmd) -> Result<()> {
        let args = command::args_of(cmd);
        let name = command::name_of(&args);
        if let class::Class::Refused { alternative } = class::class_of(&name, &args)
            && !allowed_here(&name)
        {
            return Err(Error::Unsupported {
                command: name.to_string(),
                reason: alternative,
            });
        }
        if let Some(spec) = table::lookup(&name) {
            for i in spec.key_indices(&args) {
                if !self.client.same_shard(&self.key, args[i]) {
                    return Err(self.client.spread_error(&name, &self.key, args[i]));
                }
            }
        }
        Ok(())
    }

    /// Tracks the connection state a command leaves (for reuse) and reads a redirect as the
    /// slot having moved.
    fn after(&mut self, cmd: &Cmd, reply: &Value) -> Result<()> {
        let args = command::args_of(cmd);
        match &*command::name_of(&args) {
            "WATCH" => self.watching = true,
            "MULTI" => self.in_multi = true,
            "EXEC" | "DISCARD" => {
                self.in_multi = false;
                self.watching = false;
            }
            "UNWATCH" => self.watching = false,
            _ => {}
        }
        self.moved(reply)
    }

    /// A redirect means the slot moved away: the connection no longer serves the key.
    fn moved(&self, reply: &Value) -> Result<()> {
        match reply {
            Value::ServerError(e) if matches!(e.code(), "MOVED" | "ASK") => Err(Error::SlotMoved {
                node: self.node.clone(),
                reply: format!("{} {}", e.code(), e.details().unwrap_or("")),
            }),
            _ => Ok(()),
        }
    }

    async fn send(&mut self, cmd: &Cmd) -> Result<Value> {
        self.check(cmd)?;
        let Some(conn) = self.conn.connection() else {
            return Err(Error::connection(&self.node, "connection closed"));
        };
        let reply = conn
            .send(cmd)
            .await
            .map_err(|e| Error::connection(&self.node, e.to_string()))?;
        self.after(cmd, &reply)?;
        self.settle();
        Ok(reply)
    }

    async fn send_pipeline(
        &mut self,
        pipeline: &Pipeline,
        offset: usize,
        count: usize,
    ) -> Result<Vec<Value>> {
        for cmd in pipeline.cmd_iter() {
            self.check(cmd)?;
        }
        let Some(conn) = self.conn.connection() else {
            return Err(Error::connection(&self.node, "connection closed"));
        };
        let replies = conn
            .send_pipeline(pipeline, offset, count)
            .await
            .map_err(|e| Error::connection(&self.node, e.to_string()))?;
        if pipeline.is_transaction() {
            // MULTI … EXEC ran whole: whatever was watched is released.
            self.in_multi = false;
            self.watching = false;
            for reply in &replies {
                self.moved(reply)?;
            }
        } else {
            for (cmd, reply) in pipeline.cmd_iter().zip(&replies) {
                self.after(cmd, reply)?;
            }
        }
        self.settle();
        Ok(replies)
    }

    /// Marks the connection reusable when it holds no state.
    fn settle(&mut self) {
        if !self.watching && !self.in_multi {
            self.conn.mark_clean();
        } else {
            self.conn.mark_dirty();
        }
    }
}

impl ConnectionLike for DedicatedConnection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        Box::pin(async move {
            // Until the reply is in, the connection owes it: never reused.
            self.conn.mark_dirty();
            self.send(cmd).await.map_err(Into::into)
        })
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        Box::pin(async move {
            self.conn.mark_dirty();
            self.send_pipeline(pipeline, offset, count)
                .await
                .map_err(Into::into)
        })
    }

    fn get_db(&self) -> i64 {
        0
    }
}

/// How many times [`Client::transaction`] runs its closure before it gives up.
pub(crate) const TRANSACTION_ATTEMPTS: u32 = 32;

/// A short pause between attempts of a contended transaction, growing with each.
pub(crate) fn transaction_backoff(attempt: u32) -> Duration {
    Duration::from_millis(u64::from(attempt.min(8)))
}
