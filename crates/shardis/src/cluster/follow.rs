//! The thin I/O shell around [`super::redirect::decide`]: route one request, send it, ask the
//! policy what the outcome means, and carry the decision out (patch the map, refresh, back
//! off, count), all within the redirect budget and the command's deadline.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use redis::Value;
use tokio::time::Instant;

use super::ClusterRouter;
use super::redirect::{self, Attempt, Decision, Failure, Next, Outcome, Step, Wait};
use super::slots::SlotRoutes;
use crate::engine::{Request, Target, request};
use crate::error::Error;
use crate::net::{
    Connection, Dedicated, NO_STALL_WATCHDOG, Node, WaitGuard, stall_detected_within, was_not_sent,
};
use crate::settings::DownPolicy;

/// The connection one attempt uses: the node's shared one, or a dedicated one.
enum Conn<'d> {
    Shared(Arc<Connection>),
    Dedicated(&'d mut Dedicated),
}

impl Conn<'_> {
    fn get(&self) -> Option<&Connection> {
        match self {
            Conn::Shared(conn) => Some(conn),
            Conn::Dedicated(dedicated) => dedicated.connection(),
        }
    }
}

/// What the last failed attempt said, kept for the error; nothing is allocated while all goes
/// well.
struct Trail {
    last: String,
    node: Option<Arc<Node>>,
}

/// Runs `request` against the owner of `target`, following the cluster; `span` (made by the
/// caller, `Router::execute`) records the node that answered and the number of attempts.
///
/// The common case is here, in few lines: a first attempt on an open connection to a node
/// whose breaker is quiet, answered with a reply that is not an error. Everything else (no
/// connection yet, a breaker, a deadline shorter than the stall watchdog, a blocking command,
/// any error or redirect) continues in [`follow_on`], boxed: this runs hundreds of thousands
/// of times a second, and the loop's code, inline, evicted its callers' from the instruction
/// cache (callgrind's cache simulation: twice the instruction-cache misses per command).
pub(crate) async fn follow(
    router: &ClusterRouter,
    request: Request<'_>,
    target: Target<'_, u16>,
    span: &tracing::Span,
) -> Result<Value, Error> {
    let started = Instant::now();
    let settings = &router.settings;
    // The connection's own stall watchdog bounds the reply within the deadline: no timer.
    let untimed = !request.is_blocking()
        && settings.deadline > stall_detected_within(settings.response_timeout);
    if untimed
        && let Some(node) = route(&router.routes.load(), target)
        && !node.breaker_shut()
    {
        let read = plain_read(request, target);
        let ready = if read {
            node.ready_read_connection()
        } else {
            node.ready_connection()
        };
        if let Some(conn) = ready {
            let sent = if read {
                send_read(&node, &conn, request, false).await
            } else {
                request::send(&conn, request, false).await
            };
            return match sent {
                Ok(value) if !matches!(value, Value::ServerError(_)) => {
                    node.record_success();
                    answered(span, &node, 1);
                    Ok(value)
                }
                sent => {
                    let first = Some(First { node, conn, sent });
                    Box::pin(follow_on(router, request, target, span, started, first)).await
                }
            };
        }
    }
    Box::pin(follow_on(router, request, target, span, started, None)).await
}

/// A first attempt [`follow`] made and could not finish.
struct First {
    node: Arc<Node>,
    conn: Arc<Connection>,
    sent: redis::RedisResult<Value>,
}

/// Whether `request` is a plain read: it passes over a connection held up by replies the node
/// owes (writes held by `CLIENT PAUSE WRITE`), never waiting behind other callers' writes.
fn plain_read(request: Request<'_>, target: Target<'_, u16>) -> bool {
    matches!(target, Target::Keyed { read: true, .. }) && matches!(request, Request::Cmd(_))
}

/// Records on the command's span where it was answered.
fn answered(span: &tracing::Span, node: &Node, attempts: u32) {
    if !span.is_disabled() {
        span.record("node", node.label());
        span.record("attempts", attempts);
    }
}

/// What a send's result means for the policy; the reply is kept in `reply` (moved to the
/// caller, not cloned, when it is the answer).
fn outcome_of<'r>(
    sent: redis::RedisResult<Value>,
    node: &Node,
    conn: &Connection,
    trail: &mut Trail,
    reply: &'r mut Option<Value>,
) -> Outcome<'r> {
    match sent {
        Err(e) if was_not_sent(&e) => {
            trail.last = e.to_string();
            Outcome::NotSent
        }
        Err(e) => {
            trail.last = e.to_string();
            node.connection_failed(conn);
            Outcome::Lost {
                broken: e.is_io_error() || e.is_connection_dropped() || e.is_unrecoverable_error(),
            }
        }
        Ok(value) => {
            node.record_success();
            Outcome::Reply(&*reply.insert(value))
        }
    }
}

/// The rest of [`follow`]: every attempt after `first` (or from the first, when `first` is
/// `None`), within the redirect budget and the deadline counted from `started`.
async fn follow_on(
    router: &ClusterRouter,
    request: Request<'_>,
    target: Target<'_, u16>,
    span: &tracing::Span,
    started: Instant,
    mut first: Option<First>,
) -> Result<Value, Error> {
    let settings = &router.settings;
    let limit = request.deadline(settings.deadline);
    let deadline = started + limit.unwrap_or(NO_STALL_WATCHDOG);
    let slot = target.shard();
    let mut attempts = 0u32;
    let mut redirects = 0u32;
    let mut next: Option<(Arc<Node>, bool)> = None;
    let mut trail = Trail {
        last: String::new(),
        node: None,
    };
    // This command's place among those waiting for a node, taken at its first wait (a node
    // that failed it, or a ramp that had no room for it) and kept until it ends: a command
    // that waited for a dead primary and then waits for its successor's ramp holds one place,
    // so a backlog never counts twice and the bound holds across the failover.
    let mut waiting: Option<WaitGuard> = None;
    let fail_fast = settings.down_policy == DownPolicy::FailFast;
    let timeout = |attempts, trail: &Trail| {
        Error::timeout(
            limit.unwrap_or(NO_STALL_WATCHDOG),
            attempts,
            slot,
            trail.node.as_ref().map(|n| n.label()),
            &trail.last,
        )
    };
    loop {
        attempts += 1;
        // The reply, moved to the caller (not cloned) when it is the answer.
        let mut reply: Option<Value> = None;
        let (node, outcome) = if let Some(First { node, conn, sent }) = first.take() {
            let outcome = outcome_of(sent, &node, &conn, &mut trail, &mut reply);
            (node, outcome)
        } else {
            let (node, asking) = match next.take() {
                Some(redirect) => redirect,
                None => match route(&router.routes.load(), target) {
                    Some(node) => (node, false),
                    None => {
                        // No known owner: ask for a fresh map once, then give up with a clear error.
                        trail.last = format!("no owner for slot {slot:?}");
                        if attempts > 2 || Instant::now() >= deadline {
                            return Err(match slot {
                                Some(slot) => Error::SlotUnassigned { slot },
                                None => timeout(attempts, &trail),
                            });
                        }
                        Box::pin(router.refresher.request_and_wait(deadline)).await;
                        continue;
                    }
                },
            };

            // An open breaker refuses at once; one caller probes when it is due. A ramping one
            // admits its fraction.
            // A closed, quiet breaker (the common case) is one atomic load: no future, no timer.
            let admitted = if node.breaker_shut() {
                Box::pin(tokio::time::timeout_at(deadline, node.admit())).await
            } else {
                Ok(Ok(()))
            };
            match admitted {
                Ok(Ok(())) => {}
                Ok(Err(refused)) if fail_fast => {
                    // Its slots may have a new owner by now: look (coalesced, rate-limited).
                    router.refresher.request();
                    return Err(refused);
                }
                Ok(Err(refused)) => {
                    // Wait policy, node ramping: wait for the next step among the node's waiting
                    // commands (bounded), then route again. The ramp never fails a command that
                    // may wait: one whose turn would leave it less than a response timeout before
                    // its deadline is sent now.
                    let retry_in = match &refused {
                        Error::CircuitOpen { retry_in, .. } => *retry_in,
                        _ => return Err(refused),
                    };
                    let wake = Instant::now() + retry_in;
                    if wake + settings.response_timeout < deadline {
                        if waiting.is_none() {
                            waiting = Some(node.try_wait()?);
                        }
                        trail.last = refused.to_string();
                        Box::pin(tokio::time::sleep_until(wake)).await;
                        continue;
                    }
                }
                Err(_) => {
                    trail.node = Some(node);
                    return Err(timeout(attempts, &trail));
                }
            }

            // A blocking command gets a connection of its own (no stall watchdog: the deadline
            // below bounds it), returned clean only once it got its reply.
            let mut dedicated = None;
            let read = plain_read(request, target);
            let ready = if request.is_blocking() {
                None
            } else if read {
                node.ready_read_connection()
            } else {
                node.ready_connection()
            };
            let opened = match ready {
                Some(conn) => Ok(Ok(Conn::Shared(conn))),
                None if request.is_blocking() => {
                    match Box::pin(tokio::time::timeout_at(deadline, node.dedicated())).await {
                        Ok(Ok(conn)) => Ok(Ok(Conn::Dedicated(dedicated.insert(conn)))),
                        Ok(Err(e)) => Ok(Err(e)),
                        Err(elapsed) => Err(elapsed),
                    }
                }
                None if read => Box::pin(tokio::time::timeout_at(deadline, node.read_connection()))
                    .await
                    .map(|r| r.map(Conn::Shared)),
                None => Box::pin(tokio::time::timeout_at(deadline, node.connection()))
                    .await
                    .map(|r| r.map(Conn::Shared)),
            };
            let outcome = match opened {
                Err(_) => {
                    trail.node = Some(node);
                    return Err(timeout(attempts, &trail));
                }
                Ok(Err(e)) => {
                    trail.last = e.to_string();
                    Outcome::NotSent
                }
                Ok(Ok(conn)) => {
                    let Some(conn) = conn.get() else {
                        return Err(Error::connection(node.label(), "no connection"));
                    };
                    let sending = async {
                        if read {
                            send_read(&node, conn, request, asking).await
                        } else {
                            request::send(conn, request, asking).await
                        }
                    };
                    // The connection's own stall watchdog already bounds one reply: a second
                    // timer is only needed when the deadline comes first.
                    let time_left = deadline.saturating_duration_since(Instant::now());
                    let sent = if !request.is_blocking()
                        && time_left > stall_detected_within(settings.response_timeout)
                    {
                        Ok(sending.await)
                    } else {
                        Box::pin(tokio::time::timeout_at(deadline, sending)).await
                    };
                    match sent {
                        Err(_) => {
                            trail.node = Some(node);
                            return Err(timeout(attempts, &trail));
                        }
                        Ok(sent) => {
                            let clean = sent.is_ok();
                            let outcome = outcome_of(sent, &node, conn, &mut trail, &mut reply);
                            if clean && let Some(dedicated) = dedicated.as_mut() {
                                dedicated.mark_clean();
                            }
                            outcome
                        }
                    }
                }
            };
            (node, outcome)
        };

        if redirect::is_final(&outcome) {
            answered(span, &node, attempts);
            return Ok(reply.take().unwrap_or(Value::Nil));
        }
        let attempt = Attempt {
            number: attempts,
            redirects,
            budget: settings.redirect_budget,
            retry_safe: target.retry_safe(),
            time_left: deadline.saturating_duration_since(Instant::now()),
        };
        let decision = redirect::decide(outcome, attempt, &node.endpoint);
        if let Outcome::Reply(Value::ServerError(e)) = outcome
            && decision.step != Step::Reply
        {
            trail.last = format!("{} {}", e.code(), e.details().unwrap_or(""));
        }
        side_effects(router, &node, &decision);
        match decision.step {
            Step::Reply => {
                answered(span, &node, attempts);
                return Ok(reply.take().unwrap_or(Value::Nil));
            }
            Step::Fail(failure) => return Err(fail(router, failure, slot, &node, attempts, trail)),
            Step::Retry { next: to, wait } => {
                let wait_kind = wait;
                let same_route = matches!(to, Next::Route);
                match to {
                    Next::Route => {}
                    Next::Moved { slot, to } => {
                        redirects += 1;
                        router.stats.moved.fetch_add(1, Ordering::Relaxed);
                        metrics::counter!("shardis_redirects_total", "kind" => "moved")
                            .increment(1);
                        patch_moved(router, slot, &to);
                        next = Some((router.pool.node(&to), false));
                    }
                    Next::Ask { to } => {
                        redirects += 1;
                        router.stats.ask.fetch_add(1, Ordering::Relaxed);
                        metrics::counter!("shardis_redirects_total", "kind" => "ask").increment(1);
                        next = Some((router.pool.node(&to), true));
                    }
                }
                if matches!(outcome, Outcome::NotSent | Outcome::Lost { .. })
                    && same_route
                    && waiting.is_none()
                {
                    // It waits for this node to come back (or for its replacement): within
                    // the bound, else it fails now.
                    waiting = Some(node.try_wait()?);
                }
                // Under fail-fast, the breaker opening ends the wait: the next attempt is
                // refused at once instead of after the backoff.
                Box::pin(async {
                    let opened = node.breaker_opened();
                    let wait = async {
                        match wait {
                            Wait::None => {}
                            Wait::Backoff(wait) => tokio::time::sleep(wait).await,
                            Wait::Refresh => router.refresher.request_and_wait(deadline).await,
                        }
                    };
                    if fail_fast && !matches!(wait_kind, Wait::None) {
                        tokio::select! {
                            () = wait => {}
                            () = opened => {}
                        }
                    } else {
                        wait.await;
                    }
                })
                .await;
                trail.node = Some(node);
            }
        }
    }
}

/// What every decision may ask for, whatever comes next.
fn side_effects(router: &ClusterRouter, node: &Node, decision: &Decision) {
    if decision.discard {
        node.discard();
    }
    if decision.refresh {
        router.refresher.request();
    }
    if let Some(reason) = decision.retry_reason {
        router.stats.retries.fetch_add(1, Ordering::Relaxed);
        metrics::counter!("shardis_retries_total", "reason" => reason).increment(1);
    }
}

fn fail(
    router: &ClusterRouter,
    failure: Failure,
    slot: Option<u16>,
    node: &Node,
    attempts: u32,
    trail: Trail,
) -> Error {
    let settings = &router.settings;
    match failure {
        Failure::TooManyRedirects => Error::TooManyRedirects {
            budget: settings.redirect_budget,
            slot: slot.unwrap_or_default(),
            node: node.label().to_string(),
            last_reply: trail.last,
        },
        Failure::Malformed(message) => Error::protocol(node.label(), message),
        Failure::Lost => Error::Connection {
            node: node.label().to_string(),
            slot,
            message: trail.last,
        },
        Failure::Deadline => Error::timeout(
            settings.deadline,
            attempts,
            slot,
            Some(node.label()),
            &trail.last,
        ),
    }
}

/// Sends a read. If the node holds the connection's replies while the read waits (writes
/// under `CLIENT PAUSE WRITE`, a slow script), the connection's watchdog releases it and it
/// goes over the node's spare connection, which carries no writes. A caller's read after its
/// own write returned cannot overtake that write: the write was answered first.
async fn send_read(
    node: &Node,
    conn: &Connection,
    request: Request<'_>,
    asking: bool,
) -> redis::RedisResult<Value> {
    let Request::Cmd(cmd) = request else {
        return request::send(conn, request, asking).await;
    };
    if asking {
        return request::send(conn, request, asking).await;
    }
    if let Some(reply) = conn.send_read(cmd).await {
        return reply;
    }
    // Boxed: rare (see `engine` on future sizes).
    Box::pin(async {
        match node.spare_connection().await {
            Ok(spare) if !std::ptr::eq(&*spare, conn) => spare.send(cmd).await,
            // No other connection: like a lost reply, which a read may retry.
            _ => Err(redis::RedisError::from(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!(
                    "{} holds this connection's replies and no spare connection could be opened",
                    node.label()
                ),
            ))),
        }
    })
    .await
}

fn route(routes: &SlotRoutes, target: Target<'_, u16>) -> Option<Arc<Node>> {
    match target {
        Target::Keyed {
            shard, read, fresh, ..
        } => routes.node_for(shard, read && !fresh),
        Target::Any => routes.next_primary(),
    }
}

/// A MOVED says where one slot lives now: swap in a snapshot with just that slot patched, so
/// the next commands for it go straight there while the full refresh runs. The patch is
/// numbered, so a refresh that began before it keeps it (see `SlotRoutes::refreshed`).
pub(crate) fn patch_moved(router: &ClusterRouter, slot: u16, endpoint: &shardis_slots::Endpoint) {
    router.routes.rcu(|routes| {
        let already = routes
            .map
            .shard(slot)
            .and_then(|s| s.primary.endpoint.as_ref())
            .is_some_and(|e| e == endpoint);
        if already {
            return routes.clone();
        }
        Arc::new(routes.with_move(slot, endpoint, &router.pool))
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::test_support::fake_node;
    use crate::settings::Settings;
    use shardis_slots::{Shard, SlotMap, SlotRange, Topology};

    #[tokio::test]
    async fn a_redirect_loop_ends_at_the_budget_with_the_last_reply() {
        // A node that owns every slot but answers every GET with MOVED to itself.
        let (node, _fake) = fake_node(|command, port| {
            if command.contains("GET") {
                format!("-MOVED 866 127.0.0.1:{port}\r\n")
            } else {
                "+OK\r\n".to_string()
            }
        })
        .await;
        let topology = Topology::new(vec![Shard {
            primary: shardis_slots::Node::primary(node.clone()),
            replicas: vec![],
            slots: vec![SlotRange::new(0, 16383).unwrap()],
        }])
        .unwrap();
        let state = ClusterRouter::new(Arc::new(Settings::default()), vec![node]);
        state.install(SlotMap::new(topology));

        let mut get = redis::cmd("GET");
        get.arg("hello");
        let err = follow(
            &state,
            Request::Cmd(&get),
            Target::Keyed {
                shard: 866,
                read: true,
                fresh: false,
                keys: crate::engine::Keys::List(&[b"hello"]),
            },
            &tracing::Span::none(),
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
