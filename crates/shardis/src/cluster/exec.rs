//! Sending one request to the node that owns its slot, and following the cluster's answers:
//! `MOVED` (patch the map, retry at once), `ASK` (`ASKING` + the request written back-to-back),
//! `TRYAGAIN`/`CLUSTERDOWN`/`LOADING`/`MASTERDOWN` (bounded backoff), `READONLY` (refresh,
//! retry), all within the redirect budget and the command's deadline.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use redis::{Cmd, Pipeline, Value};
use shardis_slots::{Endpoint, RedirectKind, parse_redirect_parts};
use tokio::time::Instant;

use super::ClusterState;
use super::routes::Routes;
use crate::error::Error;
use crate::pool::{Connection, NodeConn, stall_detected_within};

/// What is sent: one command, or a transaction (`MULTI` … `EXEC`) that must run on one node.
#[derive(Clone, Copy)]
pub(crate) enum Request<'a> {
    Cmd(&'a Cmd),
    Transaction(&'a Pipeline),
}

/// Where a request goes before any redirect.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Target {
    /// The owner of this slot (a replica when `read` and replica reads are on).
    Slot { slot: u16, read: bool },
    /// Any primary (keyless commands).
    AnyPrimary,
}

impl Target {
    fn slot(self) -> Option<u16> {
        match self {
            Target::Slot { slot, .. } => Some(slot),
            Target::AnyPrimary => None,
        }
    }
}

/// The server error code of a reply, if it is one.
fn error_code(value: &Value) -> Option<(&str, &str)> {
    match value {
        Value::ServerError(e) => Some((e.code(), e.details().unwrap_or(""))),
        _ => None,
    }
}

/// Sends the request on `conn`; returns the reply that decides what happens next, and the
/// reply to hand to the caller (they differ for transactions: a `MOVED` on a queued command
/// decides, the `EXEC` reply is what the caller gets).
async fn send(conn: &Connection, request: Request<'_>, asking: bool) -> redis::RedisResult<Value> {
    match request {
        Request::Cmd(cmd) if !asking => conn.send(cmd).await,
        Request::Cmd(cmd) => {
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
            let mut replies = conn.send_pipeline(&pipe, 0, pipe.len()).await?;
            // A redirect on a queued command aborts the transaction: report the redirect.
            let queued = replies
                .get(skip + 1..replies.len().saturating_sub(1))
                .unwrap_or(&[]);
            if let Some(redirect) = queued.iter().find(|v| {
                matches!(error_code(v), Some((c, _)) if matches!(c, "MOVED" | "ASK" | "TRYAGAIN" | "CLUSTERDOWN"))
            }) {
                return Ok(redirect.clone());
            }
            Ok(replies.pop().unwrap_or(Value::Nil))
        }
    }
}

/// Waits before the next try: 5 ms doubling to 200 ms, never past the deadline. `false` when
/// the deadline leaves no time.
async fn backoff(attempt: u32, deadline: Instant) -> bool {
    let wait = Duration::from_millis(5u64 << attempt.min(6)).min(Duration::from_millis(200));
    let until = Instant::now() + wait;
    if until >= deadline {
        return false;
    }
    tokio::time::sleep_until(until).await;
    true
}

/// Runs `request` against the owner of `target`, following the cluster, inside a debug-level
/// span that records the slot, the node that answered and the number of attempts.
pub(crate) async fn execute(
    state: &ClusterState,
    request: Request<'_>,
    target: Target,
    retry_safe: bool,
) -> Result<Value, Error> {
    use tracing::Instrument;
    let span = tracing::debug_span!(
        "shardis.command",
        slot = target.slot(),
        node = tracing::field::Empty,
        attempts = tracing::field::Empty
    );
    if span.is_disabled() {
        // Nobody listens: skip entering and leaving the span on every poll.
        return follow(state, request, target, retry_safe, &span).await;
    }
    follow(state, request, target, retry_safe, &span)
        .instrument(span.clone())
        .await
}

async fn follow(
    state: &ClusterState,
    request: Request<'_>,
    target: Target,
    retry_safe: bool,
    span: &tracing::Span,
) -> Result<Value, Error> {
    let settings = &state.settings;
    let started = Instant::now();
    let deadline = started + settings.deadline;
    let slot = target.slot();
    let mut attempts = 0u32;
    let mut redirects = 0u32;
    let mut next: Option<(Arc<NodeConn>, bool)> = None;
    // What went wrong last, kept for the error; nothing is allocated while all goes well.
    let mut last = String::new();
    // The node of the last failed attempt, for the timeout error.
    let mut last_node: Option<Arc<NodeConn>> = None;
    let timeout = |attempts, node: Option<&NodeConn>, last: &str| Error::Timeout {
        deadline: settings.deadline,
        attempts,
        slot,
        node: node.map(|n| n.label().to_string()),
        last: if last.is_empty() {
            "no attempt completed".into()
        } else {
            last.to_string()
        },
    };

    loop {
        attempts += 1;
        let (node, asking) = match next.take() {
            Some(redirect) => redirect,
            None => match route(&state.routes.load(), target, settings.read_from) {
                Some(node) => (node, false),
                None => {
                    // No known owner: ask for a fresh map once, then give up with a clear error.
                    last = format!("no owner for slot {slot:?}");
                    if attempts > 2 || Instant::now() >= deadline {
                        return Err(match slot {
                            Some(slot) => Error::SlotUnassigned { slot },
                            None => timeout(attempts, last_node.as_deref(), &last),
                        });
                    }
                    state.refresher.request_and_wait(deadline).await;
                    continue;
                }
            },
        };

        let ready = node.open_connection();
        let was_open = ready.is_some();
        let opened = match ready {
            Some(conn) => Ok(Ok(conn)),
            None => tokio::time::timeout_at(deadline, node.connection()).await,
        };
        let conn = match opened {
            Err(_) => return Err(timeout(attempts, Some(&node), &last)),
            Ok(Err(e)) => {
                // Not sent, so always safe to retry: the topology may have moved on.
                last = e.to_string();
                state.refresher.request();
                if !backoff(attempts, deadline).await {
                    return Err(timeout(attempts, Some(&node), &last));
                }
                last_node = Some(node);
                continue;
            }
            Ok(Ok(conn)) => conn,
        };

        // Clock reads are a visible share of a command's cost: a first attempt that found
        // its connection open reuses the start time.
        let sent_at = if attempts == 1 && was_open {
            started
        } else {
            Instant::now()
        };
        // The connection's own response timeout already bounds one reply: a second timer is
        // only needed when the deadline comes first.
        let sending = send(&conn, request, asking);
        let outcome = if deadline.saturating_duration_since(sent_at)
            > stall_detected_within(settings.response_timeout)
        {
            Ok(sending.await)
        } else {
            tokio::time::timeout_at(deadline, sending).await
        };
        let reply = match outcome {
            Err(_) => return Err(timeout(attempts, Some(&node), &last)),
            Ok(Err(e)) => {
                last = e.to_string();
                if e.is_io_error() || e.is_connection_dropped() || e.is_unrecoverable_error() {
                    node.discard();
                    state.refresher.request();
                }
                if !retry_safe {
                    // The request may have run: retrying a write could apply it twice.
                    return Err(Error::Connection {
                        node: node.label().to_string(),
                        slot,
                        message: last,
                    });
                }
                if !backoff(attempts, deadline).await {
                    return Err(timeout(attempts, Some(&node), &last));
                }
                last_node = Some(node);
                continue;
            }
            Ok(Ok(reply)) => reply,
        };

        let Some((code, detail)) = error_code(&reply) else {
            if !span.is_disabled() {
                span.record("node", node.label());
                span.record("attempts", attempts);
            }
            return Ok(reply);
        };
        match code {
            "MOVED" | "ASK" => {
                redirects += 1;
                last = format!("{code} {detail}");
                if redirects > settings.redirect_budget {
                    return Err(Error::TooManyRedirects {
                        budget: settings.redirect_budget,
                        slot: slot.unwrap_or_default(),
                        node: node.label().to_string(),
                        last_reply: last,
                    });
                }
                let redirect = match parse_redirect_parts(code, detail) {
                    Ok(r) => r,
                    Err(e) => {
                        return Err(Error::Protocol {
                            node: node.label().to_string(),
                            message: format!("{last}: {e}"),
                        });
                    }
                };
                let Some(endpoint) = redirect.resolve(&node.endpoint) else {
                    // `?:port`: the server does not know the address; the refresh will.
                    state.refresher.request_and_wait(deadline).await;
                    last_node = Some(node);
                    continue;
                };
                if redirect.kind == RedirectKind::Moved {
                    state.stats.moved.fetch_add(1, Ordering::Relaxed);
                    metrics::counter!("shardis_redirects_total", "kind" => "moved").increment(1);
                    patch_moved(state, redirect.slot, &endpoint);
                    state.refresher.request();
                    next = Some((state.pool.node(&endpoint), false));
                } else {
                    state.stats.ask.fetch_add(1, Ordering::Relaxed);
                    metrics::counter!("shardis_redirects_total", "kind" => "ask").increment(1);
                    next = Some((state.pool.node(&endpoint), true));
                }
            }
            "TRYAGAIN" | "LOADING" | "MASTERDOWN" | "CLUSTERDOWN" => {
                last = format!("{code} {detail}");
                state.stats.retries.fetch_add(1, Ordering::Relaxed);
                metrics::counter!("shardis_retries_total", "reason" => code_label(code))
                    .increment(1);
                if code == "CLUSTERDOWN" || code == "MASTERDOWN" {
                    state.refresher.request();
                }
                if !backoff(attempts, deadline).await {
                    return Err(timeout(attempts, Some(&node), &last));
                }
            }
            "READONLY" => {
                // A write reached a node that was demoted: the map is stale.
                last = format!("{code} {detail}");
                state.stats.retries.fetch_add(1, Ordering::Relaxed);
                metrics::counter!("shardis_retries_total", "reason" => "readonly").increment(1);
                state.refresher.request_and_wait(deadline).await;
            }
            _ => return Ok(reply),
        }
        last_node = Some(node);
    }
}

fn code_label(code: &str) -> &'static str {
    match code {
        "TRYAGAIN" => "tryagain",
        "LOADING" => "loading",
        "MASTERDOWN" => "masterdown",
        _ => "clusterdown",
    }
}

fn route(routes: &Routes, target: Target, read_from: crate::ReadFrom) -> Option<Arc<NodeConn>> {
    match target {
        Target::Slot { slot, read } => routes.node_for(slot, read, read_from),
        Target::AnyPrimary => {
            let primaries = routes.primaries();
            if primaries.is_empty() {
                return None;
            }
            // Spread keyless commands over the primaries.
            let i = rand_index(primaries.len());
            Some(primaries[i].clone())
        }
    }
}

fn rand_index(n: usize) -> usize {
    use std::sync::atomic::AtomicUsize;
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed) % n
}

/// A MOVED says where one slot lives now: swap in a snapshot with just that slot patched, so
/// the next commands for it go straight there while the full refresh runs.
fn patch_moved(state: &ClusterState, slot: u16, endpoint: &Endpoint) {
    state.routes.rcu(|routes| {
        let already = routes
            .map
            .shard(slot)
            .and_then(|s| s.primary.endpoint.as_ref())
            .is_some_and(|e| e == endpoint);
        if already {
            return routes.clone();
        }
        Arc::new(Routes::new(
            routes.map.with_slot_moved(slot, endpoint),
            &state.pool,
        ))
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::test_support::fake_node;
    use crate::config::Settings;
    use shardis_slots::{Node, Shard, SlotMap, SlotRange, Topology};

    #[tokio::test]
    async fn a_redirect_loop_ends_at_the_budget_with_the_last_reply() {
        // A node that owns every slot but answers every GET with MOVED to itself.
        let node = fake_node(|command, port| {
            if command.contains("GET") {
                format!("-MOVED 866 127.0.0.1:{port}\r\n")
            } else {
                "+OK\r\n".to_string()
            }
        })
        .await;
        let topology = Topology::new(vec![Shard {
            primary: Node::primary(node.clone()),
            replicas: vec![],
            slots: vec![SlotRange::new(0, 16383).unwrap()],
        }])
        .unwrap();
        let state = ClusterState::new(Arc::new(Settings::default()), vec![node]);
        state
            .routes
            .store(Arc::new(Routes::new(SlotMap::new(topology), &state.pool)));

        let mut get = redis::cmd("GET");
        get.arg("hello");
        let err = execute(
            &state,
            Request::Cmd(&get),
            Target::Slot {
                slot: 866,
                read: true,
            },
            true,
        )
        .await
        .expect_err("the loop must end");
        match err {
            Error::TooManyRedirects {
                budget,
                slot,
                last_reply,
                ..
            } => {
                assert_eq!((budget, slot), (5, 866));
                assert!(
                    last_reply.starts_with("MOVED 866 127.0.0.1:"),
                    "{last_reply}"
                );
            }
            other => panic!("expected TooManyRedirects, got {other}"),
        }
        assert_eq!(state.stats.snapshot().moved, 5);
    }
}
