//! What a router is asked to run ([`Request`]), where ([`Target`]), and how a request is
//! written to one connection ([`send`]): the same for every router.

use std::time::Duration;

use redis::{Cmd, Pipeline, Value};

use crate::net::Connection;

/// What is sent: one command, a blocking command (on a dedicated connection of its own), or a
/// transaction (`MULTI` … `EXEC`) that must run on one node.
#[derive(Clone, Copy)]
pub(crate) enum Request<'a> {
    Cmd(&'a Cmd),
    /// Runs on a dedicated connection, never retried once sent, bounded by `wait` (its own
    /// timeout plus a margin; `None`: it may wait forever) instead of the client's deadline.
    Blocking {
        cmd: &'a Cmd,
        wait: Option<Duration>,
    },
    Transaction(&'a Pipeline),
}

impl Request<'_> {
    /// Whether it needs a connection of its own.
    pub fn is_blocking(&self) -> bool {
        matches!(self, Request::Blocking { .. })
    }

    /// How long it may take: the client's `deadline`, or a blocking command's own wait
    /// (`None`: no limit).
    pub fn deadline(&self, deadline: Duration) -> Option<Duration> {
        match self {
            Request::Blocking { wait, .. } => *wait,
            Request::Cmd(_) | Request::Transaction(_) => Some(deadline),
        }
    }
}

/// A request's keys, for a ring's rebalance hooks: the list itself, or where they are among the
/// command's arguments. Built as a list only when a ring needs them (keys moving), not for
/// every command; `At` names the command, not its argument list, so that a command's future
/// need not keep the list (see `engine` on future sizes).
#[derive(Clone, Copy)]
pub(crate) enum Keys<'a> {
    List(&'a [&'a [u8]]),
    At { cmd: &'a Cmd, indices: &'a [usize] },
}

impl<'a> Keys<'a> {
    /// The keys, in order.
    pub fn iter(self) -> impl Iterator<Item = &'a [u8]> + Send + 'a {
        let (list, at): (&'a [&'a [u8]], _) = match self {
            Keys::List(list) => (list, None),
            Keys::At { cmd, indices } => (&[], Some((crate::command::args_of(cmd), indices))),
        };
        list.iter().copied().chain(
            at.into_iter().flat_map(|(args, indices)| {
                indices.iter().filter_map(move |&i| args.get(i).copied())
            }),
        )
    }
}

impl std::fmt::Debug for Keys<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.iter().map(String::from_utf8_lossy))
            .finish()
    }
}

/// Where a request goes before any redirect.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Target<'a, S> {
    /// The node of `shard`; `keys` are the request's keys (for the ring's rebalance hooks).
    /// `read`: it only reads (a replica may serve it, and it may be retried after a failure).
    /// `fresh`: it must see writes the caller made just before (a pipeline's read after its
    /// own write): the primary serves it even under a replica `ReadFrom`.
    Keyed {
        shard: S,
        read: bool,
        fresh: bool,
        keys: Keys<'a>,
    },
    /// Any primary / live node (keyless commands). Never retried once sent.
    Any,
}

impl<S: Copy> Target<'_, S> {
    /// Whether the request may be sent again after a failure that may have left it run.
    pub fn retry_safe(&self) -> bool {
        matches!(self, Target::Keyed { read: true, .. })
    }

    pub fn shard(&self) -> Option<S> {
        match self {
            Target::Keyed { shard, .. } => Some(*shard),
            Target::Any => None,
        }
    }
}

/// Replies that abort a transaction when a queued command gets them, and say it went to the
/// wrong node or too early: the redirect (cluster), or `READONLY` (a primary demoted since
/// the routes were learned) or `LOADING`, not the `EXEC` reply, decides what happens next.
/// `EXEC` discards such a transaction, so nothing of it ran and it may be sent again.
fn aborts_transaction(value: &Value) -> bool {
    matches!(value, Value::ServerError(e)
        if matches!(e.code(), "MOVED" | "ASK" | "TRYAGAIN" | "CLUSTERDOWN" | "READONLY" | "LOADING"))
}

/// Sends `request` on `conn` (after `ASKING`, written in the same unit, when `asking`) and
/// returns the reply that decides what happens next: the command's reply; for a transaction
/// the `EXEC` reply, or the redirect that one of its queued commands got.
pub(crate) async fn send(
    conn: &Connection,
    request: Request<'_>,
    asking: bool,
) -> redis::RedisResult<Value> {
    match request {
        Request::Cmd(cmd) | Request::Blocking { cmd, .. } if !asking => conn.send(cmd).await,
        // Boxed: rarer, and larger (see `engine` on future sizes).
        _ => Box::pin(send_framed(conn, request, asking)).await,
    }
}

/// [`send`] of what needs more than the command itself: `ASKING` first, or a transaction.
async fn send_framed(
    conn: &Connection,
    request: Request<'_>,
    asking: bool,
) -> redis::RedisResult<Value> {
    match request {
        Request::Cmd(cmd) | Request::Blocking { cmd, .. } => {
            // ASKING and the command as one write: nothing from another task can slip in
            // between on this shared connection and consume the one-shot ASKING flag.
            let mut pipe = redis::pipe();
            pipe.cmd("ASKING").add_command(cmd.clone());
            let mut replies = conn.send_pipeline(&pipe, 1, 1).await?;
            Ok(replies.pop().unwrap_or(Value::Nil))
        }
        Request::Transaction(tx) => {
            let mut pipe = redis::pipe();
            if asking {
                pipe.cmd("ASKING");
            }
            pipe.cmd("MULTI");
            for cmd in tx.cmd_iter() {
                pipe.add_command(cmd.clone());
            }
            pipe.cmd("EXEC");
            let skip = usize::from(asking);
            let replies = conn.send_pipeline(&pipe, 0, pipe.len()).await?;
            let queued = replies
                .get(skip + 1..replies.len().saturating_sub(1))
                .unwrap_or(&[]);
            if let Some(redirect) = queued.iter().find(|v| aborts_transaction(v)) {
                return Ok(redirect.clone());
            }
            let exec = replies.last().cloned().unwrap_or(Value::Nil);
            match &exec {
                Value::ServerError(e) if e.code() == "EXECABORT" => Ok(exec_abort(queued)),
                _ => Ok(exec),
            }
        }
    }
}

/// The reply of a transaction discarded at queue time: `EXECABORT`, naming each command that
/// was refused (its index in the transaction) and why, as redis-rs reports an aborted
/// transaction on a plain connection.
fn exec_abort(queued: &[Value]) -> Value {
    let failed: Vec<String> = queued
        .iter()
        .enumerate()
        .filter_map(|(i, v)| match v {
            Value::ServerError(e) => Some(format!(
                "{i}: {}{}",
                e.code(),
                e.details().map(|d| format!(" {d}")).unwrap_or_default()
            )),
            _ => None,
        })
        .collect();
    let text = format!(
        "-EXECABORT Transaction discarded because of previous errors: [{}]\r\n",
        failed.join("; ").replace(['\r', '\n'], " ")
    );
    redis::parse_redis_value(text.as_bytes()).unwrap_or(Value::Nil)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_aborted_transaction_names_each_refused_command() {
        let queued = vec![
            Value::SimpleString("QUEUED".into()),
            redis::parse_redis_value(b"-ERR wrong number of arguments for 'set' command\r\n")
                .expect("error reply"),
        ];
        let Value::ServerError(e) = exec_abort(&queued) else {
            panic!("an error reply")
        };
        assert_eq!(e.code(), "EXECABORT");
        let details = e.details().unwrap_or_default();
        assert!(
            details.contains("[1: ERR wrong number of arguments"),
            "{details}"
        );
    }
}
