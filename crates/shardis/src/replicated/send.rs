//! The thin I/O shell around [`super::retry::decide`]: route one request (the primary, or a
//! replica for a read), send it, ask the policy what the outcome means, and carry the decision
//! out (rediscover, back off, count), within the command's deadline.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use redis::{Cmd, Pipeline, Value};
use tokio::time::Instant;

use super::ReplicatedRouter;
use super::retry::{self, Attempt, Failure, Outcome, Step, Wait};
use crate::engine::{BatchFailed, Request, Target, request};
use crate::error::{Error, Result};
use crate::net::{NO_STALL_WATCHDOG, Node, WaitGuard, stall_detected_within, was_not_sent};
use crate::settings::DownPolicy;

/// Runs `request` on the node `target` reads from or writes to, following promotions.
pub(super) async fn execute(
    router: &ReplicatedRouter,
    request: Request<'_>,
    target: Target<'_, super::OneShard>,
) -> Result<Value> {
    let settings = &router.settings;
    let limit = request.deadline(settings.deadline);
    let deadline = Instant::now() + limit.unwrap_or(NO_STALL_WATCHDOG);
    // Only plain reads may go to a replica: a transaction or a blocking command writes, or
    // must see the primary's latest state.
    let mut read = matches!(request, Request::Cmd(_))
        && matches!(
            target,
            Target::Keyed {
                read: true,
                fresh: false,
                ..
            }
        );
    let fail_fast = settings.down_policy == DownPolicy::FailFast;
    let mut attempts = 0u32;
    let mut last = String::new();
    let mut waiting: Option<WaitGuard> = None;
    let timeout = |attempts, node: &Node, last: &str| {
        Error::timeout(
            limit.unwrap_or(NO_STALL_WATCHDOG),
            attempts,
            None,
            Some(node.label()),
            last,
        )
    };
    loop {
        attempts += 1;
        let node = router.routes.load().node_for(read);
        if waiting
            .as_ref()
            .is_some_and(|w| !Arc::ptr_eq(w.node(), &node))
        {
            waiting = None;
        }
        // A closed, quiet breaker is one atomic load; anything else is rare (boxed: see
        // `engine` on future sizes).
        if fail_fast && node.breaker_shut() {
            match Box::pin(tokio::time::timeout_at(deadline, node.admit())).await {
                Ok(Ok(())) => {}
                Ok(Err(refused)) => {
                    router.rediscovery.request();
                    return Err(refused);
                }
                Err(_) => return Err(timeout(attempts, &node, &last)),
            }
        }
        // One reply is already bounded by the connection's stall watchdog (and a connect by
        // the connect timeout): a timer is only needed when the deadline comes first.
        let sending = attempt(&node, request);
        let sent = if !request.is_blocking()
            && deadline.saturating_duration_since(Instant::now())
                > stall_detected_within(settings.response_timeout) + settings.connect_timeout
        {
            sending.await
        } else {
            let Ok(sent) = Box::pin(tokio::time::timeout_at(deadline, sending)).await else {
                return Err(timeout(attempts, &node, &last));
            };
            sent
        };
        let outcome = match &sent {
            Sent::Reply(value) => Outcome::Reply(value),
            Sent::Unsent(why) => {
                last.clone_from(why);
                Outcome::NotSent
            }
            Sent::Lost { why, broken } => {
                last.clone_from(why);
                Outcome::Lost { broken: *broken }
            }
        };
        let decision = retry::decide(
            outcome,
            Attempt {
                number: attempts,
                retry_safe: target.retry_safe(),
                time_left: deadline.saturating_duration_since(Instant::now()),
            },
        );
        if let Outcome::Reply(Value::ServerError(e)) = outcome
            && decision.step != Step::Reply
        {
            last = format!("{} {}", e.code(), e.details().unwrap_or(""));
        }
        if decision.discard {
            node.discard();
        }
        if decision.rediscover {
            router.rediscovery.request();
        }
        if let Some(reason) = decision.retry_reason {
            router.stats.retries.fetch_add(1, Ordering::Relaxed);
            metrics::counter!("shardis_retries_total", "reason" => reason).increment(1);
        }
        match decision.step {
            Step::Reply => {
                return Ok(match sent {
                    Sent::Reply(value) => value,
                    _ => Value::Nil,
                });
            }
            Step::Fail(Failure::Lost) => {
                return Err(Error::connection(node.label(), last));
            }
            Step::Fail(Failure::Deadline) => return Err(timeout(attempts, &node, &last)),
            Step::Retry(wait) => {
                // A replica that failed a read (loading after a resync, its primary lost, its
                // connection gone) is not asked again: the primary serves the retry.
                read = false;
                if !matches!(sent, Sent::Reply(_)) && waiting.is_none() {
                    // It waits for this node to come back (or for a new primary): within
                    // the bound, else it fails now.
                    waiting = Some(node.try_wait()?);
                }
                Box::pin(async {
                    match wait {
                        Wait::Backoff(wait) => tokio::time::sleep(wait).await,
                        Wait::Rediscovery => router.rediscovery.request_and_wait(deadline).await,
                    }
                })
                .await;
            }
        }
    }
}

/// What one attempt came to, owning the reply.
enum Sent {
    Reply(Value),
    Unsent(String),
    Lost { why: String, broken: bool },
}

/// One attempt on `node`: a shared connection, or a dedicated one for a blocking command.
async fn attempt(node: &Arc<Node>, request: Request<'_>) -> Sent {
    let mut dedicated = None;
    let shared = if request.is_blocking() {
        match Box::pin(node.dedicated()).await {
            Ok(conn) => {
                dedicated = Some(conn);
                None
            }
            Err(e) => return Sent::Unsent(e.to_string()),
        }
    } else {
        match node.ready_connection() {
            Some(conn) => Some(conn),
            None => match Box::pin(node.connection()).await {
                Ok(conn) => Some(conn),
                Err(e) => return Sent::Unsent(e.to_string()),
            },
        }
    };
    let conn = match (&shared, &dedicated) {
        (Some(conn), _) => Some(&**conn),
        (None, Some(dedicated)) => dedicated.connection(),
        (None, None) => None,
    };
    let Some(conn) = conn else {
        return Sent::Unsent("no connection".into());
    };
    match request::send(conn, request, false).await {
        Ok(value) => {
            node.record_success();
            if let Some(dedicated) = dedicated.as_mut() {
                dedicated.mark_clean();
            }
            Sent::Reply(value)
        }
        Err(e) if was_not_sent(&e) => Sent::Unsent(e.to_string()),
        Err(e) => {
            node.connection_failed(conn);
            Sent::Lost {
                why: e.to_string(),
                broken: e.is_io_error() || e.is_connection_dropped() || e.is_unrecoverable_error(),
            }
        }
    }
}

/// A per-node pipeline (see [`crate::engine::Router::execute_batch`]).
pub(super) async fn batch(
    router: &ReplicatedRouter,
    node: &Arc<Node>,
    pipe: &Pipeline,
) -> std::result::Result<Vec<Value>, BatchFailed> {
    if let Err(refused) = node.admit().await {
        router.rediscovery.request();
        return Err(BatchFailed::unsent(refused));
    }
    let conn = match node.ready_connection() {
        Some(conn) => conn,
        None => node.connection().await.map_err(|e| {
            router.rediscovery.request();
            BatchFailed::unsent(e)
        })?,
    };
    let deadline = router.settings.deadline;
    match tokio::time::timeout(deadline, conn.send_pipeline(pipe, 0, pipe.len())).await {
        Ok(Ok(values)) => {
            node.record_success();
            Ok(values)
        }
        Ok(Err(e)) if was_not_sent(&e) => Err(BatchFailed::unsent(Error::connection(
            node.label(),
            e.to_string(),
        ))),
        Ok(Err(e)) => {
            node.connection_failed(&conn);
            node.discard();
            router.rediscovery.request();
            Err(Error::connection(node.label(), e.to_string()).into())
        }
        Err(_) => Err(Error::timeout(deadline, 1, None, Some(node.label()), "no reply").into()),
    }
}

/// `cmd` sent to `node` once (a fan-out part), bounded by the deadline.
pub(super) async fn once(router: &ReplicatedRouter, node: &Arc<Node>, cmd: &Cmd) -> Result<Value> {
    let deadline = router.settings.deadline;
    let exchange = async {
        let conn = node.connection().await?;
        conn.send(cmd).await.map_err(|e| {
            node.discard();
            router.rediscovery.request();
            Error::connection(node.label(), e.to_string())
        })
    };
    tokio::time::timeout(deadline, exchange)
        .await
        .unwrap_or_else(|_| {
            Err(Error::timeout(
                deadline,
                1,
                None,
                Some(node.label()),
                "no reply",
            ))
        })
}
