//! The thin I/O shell around [`super::redirect::decide`]: route one request, send it, ask the
//! policy what the outcome means, and carry the decision out (patch the map, refresh, back
//! off, count), all within the redirect budget and the command's deadline. [`follow`] makes
//! the first attempt when it is the common case; `follow_on` loops over the rest, one
//! attempt ([`super::attempt`]) and one decision at a time.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use redis::Value;
use tokio::time::Instant;

use super::ClusterRouter;
use super::attempt::{Trail, Tried, outcome_of};
use super::redirect::{self, Attempt, Decision, Failure, Next, Outcome, Step, Wait};
use super::slots::SlotRoutes;
use crate::engine::{Request, Target, request};
use crate::error::Error;
use crate::net::{Connection, NO_STALL_WATCHDOG, Node, WaitGuard, stall_detected_within};
use crate::settings::DownPolicy;

/// Runs `request` against the owner of `target`, following the cluster; its span (when a
/// subscriber listens at debug level) records the node that answered and the number of
/// attempts.
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
) -> Result<Value, Error> {
    let started = Instant::now();
    let span = tracing::debug_span!(
        "shardis.command",
        slot = target.shard(),
        node = tracing::field::Empty,
        attempts = tracing::field::Empty
    );
    if !span.is_disabled() {
        // A subscriber listens at debug level: the whole course inside the span, boxed.
        use tracing::Instrument;
        return Box::pin(async move {
            follow_on(router, request, target, &span, started, None)
                .instrument(span.clone())
                .await
        })
        .await;
    }
    // Nobody listens: recording on a disabled span does nothing, so the shared empty one
    // stands in for it, and no span is kept in this future.
    drop(span);
    static NONE: tracing::Span = tracing::Span::none();
    let span = &NONE;
    let settings = &router.settings;
    // The connection's own stall watchdog bounds the reply within the deadline: no timer.
    let untimed = !request.is_blocking()
        && settings.deadline > stall_detected_within(settings.response_timeout);
    // The map's guard is dropped here, not held across the send: a guard kept by every
    // command in flight would use up arc-swap's per-thread slots and weigh on this future.
    let node = untimed
        .then(|| route(&router.routes.load(), target))
        .flatten();
    if let Some(node) = node
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
pub(super) fn plain_read(request: Request<'_>, target: Target<'_, u16>) -> bool {
    matches!(target, Target::Keyed { read: true, .. }) && matches!(request, Request::Cmd(_))
}

/// Records on the command's span where it was answered.
fn answered(span: &tracing::Span, node: &Node, attempts: u32) {
    if !span.is_disabled() {
        span.record("node", node.label());
        span.record("attempts", attempts);
    }
}

/// One command's course through the cluster in [`follow_on`]: what it is, until when it may
/// run, and what its attempts so far left behind.
pub(super) struct Course<'a> {
    pub(super) router: &'a ClusterRouter,
    pub(super) request: Request<'a>,
    pub(super) target: Target<'a, u16>,
    pub(super) slot: Option<u16>,
    /// The command's own time limit (`None`: a blocking command that may wait forever).
    limit: Option<Duration>,
    pub(super) deadline: Instant,
    pub(super) fail_fast: bool,
    /// Attempts begun, the one under way included.
    pub(super) attempts: u32,
    /// Redirects followed.
    redirects: u32,
    /// Where a redirect sends the next attempt, and whether `ASKING` goes first.
    pub(super) next: Option<(Arc<Node>, bool)>,
    pub(super) trail: Trail,
    /// This command's place among those waiting for a node, taken at its first wait (a node
    /// that failed it, or a ramp that had no room for it) and kept until it ends: a command
    /// that waited for a dead primary and then waits for its successor's ramp holds one place,
    /// so a backlog never counts twice and the bound holds across the failover.
    pub(super) waiting: Option<WaitGuard>,
}

/// The rest of [`follow`]: every attempt after `first` (or from the first, when `first` is
/// `None`), within the redirect budget and the deadline counted from `started`. Each turn is
/// one attempt ([`Course::attempt`]), the policy's decision on what it came to
/// ([`Course::decide`]), and that decision carried out.
async fn follow_on(
    router: &ClusterRouter,
    request: Request<'_>,
    target: Target<'_, u16>,
    span: &tracing::Span,
    started: Instant,
    mut first: Option<First>,
) -> Result<Value, Error> {
    let mut course = Course::new(router, request, target, started);
    loop {
        course.attempts += 1;
        // The reply, moved to the caller (not cloned) when it is the answer.
        let mut reply: Option<Value> = None;
        let (node, outcome) = match first.take() {
            Some(First { node, conn, sent }) => {
                let outcome = outcome_of(sent, &node, &conn, &mut course.trail, &mut reply);
                (node, outcome)
            }
            None => match course.attempt(&mut reply).await? {
                Tried::Sent { node, outcome } => (node, outcome),
                Tried::Again => continue,
            },
        };
        if redirect::is_final(&outcome) {
            answered(span, &node, course.attempts);
            return Ok(reply.take().unwrap_or(Value::Nil));
        }
        let unanswered = matches!(outcome, Outcome::NotSent | Outcome::Lost { .. });
        match course.decide(&node, outcome).step {
            Step::Reply => {
                answered(span, &node, course.attempts);
                return Ok(reply.take().unwrap_or(Value::Nil));
            }
            Step::Fail(failure) => return Err(course.fail(failure, &node)),
            Step::Retry { next, wait } => course.retry(node, unanswered, next, wait).await?,
        }
    }
}

impl<'a> Course<'a> {
    fn new(
        router: &'a ClusterRouter,
        request: Request<'a>,
        target: Target<'a, u16>,
        started: Instant,
    ) -> Self {
        let settings = &router.settings;
        let limit = request.deadline(settings.deadline);
        Course {
            router,
            request,
            target,
            slot: target.shard(),
            limit,
            deadline: started + limit.unwrap_or(NO_STALL_WATCHDOG),
            fail_fast: settings.down_policy == DownPolicy::FailFast,
            attempts: 0,
            redirects: 0,
            next: None,
            trail: Trail {
                last: String::new(),
                node: None,
            },
            waiting: None,
        }
    }

    /// The command ran out of time; the trail says what it saw last.
    pub(super) fn timeout(&self) -> Error {
        Error::timeout(
            self.limit.unwrap_or(NO_STALL_WATCHDOG),
            self.attempts,
            self.slot,
            self.trail.node.as_ref().map(|n| n.label()),
            &self.trail.last,
        )
    }

    /// The command ran out of time waiting on `node`.
    pub(super) fn timed_out_on(&mut self, node: Arc<Node>) -> Error {
        self.trail.node = Some(node);
        self.timeout()
    }

    /// What the policy says `outcome`, from `node`, means, with the side effects every decision
    /// may ask for carried out.
    fn decide(&mut self, node: &Node, outcome: Outcome<'_>) -> Decision {
        let attempt = Attempt {
            number: self.attempts,
            redirects: self.redirects,
            budget: self.router.settings.redirect_budget,
            retry_safe: self.target.retry_safe(),
            time_left: self.deadline.saturating_duration_since(Instant::now()),
        };
        let decision = redirect::decide(outcome, attempt, &node.endpoint);
        if let Outcome::Reply(Value::ServerError(e)) = outcome
            && decision.step != Step::Reply
        {
            self.trail.last = format!("{} {}", e.code(), e.details().unwrap_or(""));
        }
        side_effects(self.router, node, &decision);
        decision
    }

    /// Carries out a retry after an attempt on `node` (`unanswered`: it got no reply): counts
    /// and follows a redirect, takes the command's place among those waiting for a node that
    /// failed it, and waits as the policy says.
    async fn retry(
        &mut self,
        node: Arc<Node>,
        unanswered: bool,
        to: Next,
        wait: Wait,
    ) -> Result<(), Error> {
        let router = self.router;
        let same_route = matches!(to, Next::Route);
        match to {
            Next::Route => {}
            Next::Moved { slot, to } => {
                self.redirects += 1;
                router.stats.moved.fetch_add(1, Ordering::Relaxed);
                metrics::counter!("shardis_redirects_total", "kind" => "moved").increment(1);
                patch_moved(router, slot, &to);
                self.next = Some((router.pool.node(&to), false));
            }
            Next::Ask { to } => {
                self.redirects += 1;
                router.stats.ask.fetch_add(1, Ordering::Relaxed);
                metrics::counter!("shardis_redirects_total", "kind" => "ask").increment(1);
                self.next = Some((router.pool.node(&to), true));
            }
        }
        if unanswered && same_route && self.waiting.is_none() {
            // It waits for this node to come back (or for its replacement): within the bound,
            // else it fails now.
            self.waiting = Some(node.try_wait()?);
        }
        // Under fail-fast, the breaker opening ends the wait: the next attempt is refused at
        // once instead of after the backoff.
        let (fail_fast, deadline) = (self.fail_fast, self.deadline);
        Box::pin(async {
            let opened = node.breaker_opened();
            let waited = async {
                match wait {
                    Wait::None => {}
                    Wait::Backoff(wait) => tokio::time::sleep(wait).await,
                    Wait::Refresh => router.refresher.request_and_wait(deadline).await,
                }
            };
            if fail_fast && !matches!(wait, Wait::None) {
                tokio::select! {
                    () = waited => {}
                    () = opened => {}
                }
            } else {
                waited.await;
            }
        })
        .await;
        self.trail.node = Some(node);
        Ok(())
    }

    /// The error the command ends with, on `node`.
    fn fail(self, failure: Failure, node: &Node) -> Error {
        let settings = &self.router.settings;
        match failure {
            Failure::TooManyRedirects => Error::TooManyRedirects {
                budget: settings.redirect_budget,
                slot: self.slot.unwrap_or_default(),
                node: node.label().to_string(),
                last_reply: self.trail.last,
            },
            Failure::Malformed(message) => Error::protocol(node.label(), message),
            Failure::Lost => Error::Connection {
                node: node.label().to_string(),
                slot: self.slot,
                message: self.trail.last,
            },
            // The command's own limit (a blocking command's wait), as every other timeout
            // of this loop names it.
            Failure::Deadline => Error::timeout(
                self.limit.unwrap_or(NO_STALL_WATCHDOG),
                self.attempts,
                self.slot,
                Some(node.label()),
                &self.trail.last,
            ),
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

/// Sends a read. If the node holds the connection's replies while the read waits (writes
/// under `CLIENT PAUSE WRITE`, a slow script), the connection's watchdog releases it and it
/// goes over the node's spare connection, which carries no writes. A caller's read after its
/// own write returned cannot overtake that write: the write was answered first.
pub(super) async fn send_read(
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

pub(super) fn route(routes: &SlotRoutes, target: Target<'_, u16>) -> Option<Arc<Node>> {
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

    /// The target of a command on the key `hello` (slot 866).
    fn key_hello(read: bool) -> Target<'static, u16> {
        Target::Keyed {
            shard: 866,
            read,
            fresh: false,
            keys: crate::engine::Keys::List(&[b"hello"]),
        }
    }

    /// A router whose map gives every slot to `node`.
    fn router_owning_every_slot(node: shardis_slots::Endpoint) -> ClusterRouter {
        let topology = Topology::new(vec![Shard {
            primary: shardis_slots::Node::primary(node.clone()),
            replicas: vec![],
            slots: vec![SlotRange::new(0, 16383).unwrap()],
        }])
        .unwrap();
        let state = ClusterRouter::new(Arc::new(Settings::default()), vec![node]);
        state.install(SlotMap::new(topology));
        state
    }

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
        let state = router_owning_every_slot(node);

        let mut get = redis::cmd("GET");
        get.arg("hello");
        let err = follow(&state, Request::Cmd(&get), key_hello(true))
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

    /// A blocking command bounded by its own wait (300 ms), answered `TRYAGAIN` until its
    /// next backoff no longer fits: the timeout it fails with names its own limit, as the
    /// other timeout paths of the same loop (and the primary+replicas router) do.
    #[tokio::test]
    async fn a_blocking_command_out_of_time_names_its_own_limit() {
        let (node, _fake) = fake_node(|command, _| {
            if command.contains("BLPOP") {
                "-TRYAGAIN Multiple keys request during rehashing of slot\r\n".to_string()
            } else {
                "+OK\r\n".to_string()
            }
        })
        .await;
        let state = router_owning_every_slot(node);
        let mut blpop = redis::cmd("BLPOP");
        blpop.arg("hello").arg(0.1);
        let wait = std::time::Duration::from_millis(300);
        let err = follow(
            &state,
            Request::Blocking {
                cmd: &blpop,
                wait: Some(wait),
            },
            key_hello(false),
        )
        .await
        .expect_err("TRYAGAIN until the deadline");
        match err {
            Error::Timeout { deadline, last, .. } => {
                assert!(last.starts_with("TRYAGAIN"), "{last}");
                assert_eq!(deadline, wait, "the command's own limit");
            }
            other => panic!("expected Timeout, got {other}"),
        }
    }
}
