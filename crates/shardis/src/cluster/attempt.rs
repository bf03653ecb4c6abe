//! One attempt of a cluster command past [`follow`](super::follow::follow)'s first: find the
//! node (where a redirect said, else the slot's owner), pass its breaker, get a connection,
//! send. It ends with what the attempt came to, for the policy to decide on
//! ([`super::redirect::decide`]), never with a decision of its own; the loop in
//! `follow_on` carries the decision out.

use std::sync::Arc;

use redis::Value;
use tokio::time::Instant;
use tokio::time::error::Elapsed;

use super::follow::{Course, plain_read, route, send_read};
use super::redirect::Outcome;
use crate::engine::request;
use crate::error::Error;
use crate::net::{Connection, Dedicated, Node, stall_detected_within, was_not_sent};

/// What one attempt came to, when it did not end the command.
pub(super) enum Tried<'r> {
    /// The request went to `node`, or could not be sent there: the policy decides.
    Sent {
        node: Arc<Node>,
        outcome: Outcome<'r>,
    },
    /// Nothing could be sent: there was no owner, or the node's ramp had no room. It has waited
    /// for what it lacked (a fresh map, the ramp's next step); route again.
    Again,
}

/// The connection one attempt uses: the node's shared one, or a blocking command's own (no
/// stall watchdog: the deadline bounds it), returned clean only once it got its reply.
enum Conn {
    Shared(Arc<Connection>),
    Dedicated(Dedicated),
}

impl Conn {
    fn get(&self) -> Option<&Connection> {
        match self {
            Conn::Shared(conn) => Some(conn),
            Conn::Dedicated(dedicated) => dedicated.connection(),
        }
    }
}

/// What the last failed attempt said, kept for the error; nothing is allocated while all goes
/// well.
pub(super) struct Trail {
    pub(super) last: String,
    pub(super) node: Option<Arc<Node>>,
}

/// What a send's result means for the policy; the reply is kept in `reply` (moved to the
/// caller, not cloned, when it is the answer).
pub(super) fn outcome_of<'r>(
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

impl Course<'_> {
    /// One attempt: route, breaker, connection, send. A reply lands in `reply`; `Err` ends the
    /// command (the breaker refused it, the deadline passed, the slot has no owner).
    pub(super) async fn attempt<'r>(
        &mut self,
        reply: &'r mut Option<Value>,
    ) -> Result<Tried<'r>, Error> {
        let Some((node, asking)) = self.destination().await? else {
            return Ok(Tried::Again);
        };
        if !self.admit(&node).await? {
            return Ok(Tried::Again);
        }
        self.send(node, asking, reply).await
    }

    /// Where this attempt goes, and whether `ASKING` goes first: where a redirect said, else
    /// the slot's owner in the map. With no owner it asks for a fresh map and waits for it
    /// (`None`: route again), then gives up with a clear error.
    async fn destination(&mut self) -> Result<Option<(Arc<Node>, bool)>, Error> {
        if let Some(redirect) = self.next.take() {
            return Ok(Some(redirect));
        }
        if let Some(node) = route(&self.router.routes.load(), self.target) {
            return Ok(Some((node, false)));
        }
        self.trail.last = format!("no owner for slot {:?}", self.slot);
        if self.attempts > 2 || Instant::now() >= self.deadline {
            return Err(match self.slot {
                Some(slot) => Error::SlotUnassigned { slot },
                None => self.timeout(),
            });
        }
        Box::pin(self.router.refresher.request_and_wait(self.deadline)).await;
        Ok(None)
    }

    /// Asks `node`'s breaker. An open breaker refuses at once (one caller probes when it is
    /// due); a ramping one admits its fraction. `false`: the ramp had no room, and the command
    /// waited for its next step among the node's waiting commands (bounded); route again.
    async fn admit(&mut self, node: &Arc<Node>) -> Result<bool, Error> {
        // A closed, quiet breaker (the common case) is one atomic load: no future, no timer.
        if !node.breaker_shut() {
            return Ok(true);
        }
        let refused = match Box::pin(tokio::time::timeout_at(self.deadline, node.admit())).await {
            Ok(Ok(())) => return Ok(true),
            Ok(Err(refused)) => refused,
            Err(_) => return Err(self.timed_out_on(node.clone())),
        };
        if self.fail_fast {
            // Its slots may have a new owner by now: look (coalesced, rate-limited).
            self.router.refresher.request();
            return Err(refused);
        }
        let retry_in = match &refused {
            Error::CircuitOpen { retry_in, .. } => *retry_in,
            _ => return Err(refused),
        };
        // The ramp never fails a command that may wait: one whose turn would leave it less
        // than a response timeout before its deadline is sent now.
        let wake = Instant::now() + retry_in;
        if wake + self.router.settings.response_timeout >= self.deadline {
            return Ok(true);
        }
        if self.waiting.is_none() {
            self.waiting = Some(node.try_wait()?);
        }
        self.trail.last = refused.to_string();
        Box::pin(tokio::time::sleep_until(wake)).await;
        Ok(false)
    }

    /// Sends the request to `node` over a connection [`Course::open`] gives, within the
    /// deadline.
    async fn send<'r>(
        &mut self,
        node: Arc<Node>,
        asking: bool,
        reply: &'r mut Option<Value>,
    ) -> Result<Tried<'r>, Error> {
        let request = self.request;
        let read = plain_read(request, self.target);
        let mut conn = match self.open(&node, read).await {
            Ok(Ok(conn)) => conn,
            Ok(Err(e)) => {
                self.trail.last = e.to_string();
                let outcome = Outcome::NotSent;
                return Ok(Tried::Sent { node, outcome });
            }
            Err(_) => return Err(self.timed_out_on(node)),
        };
        let Some(connection) = conn.get() else {
            return Err(Error::connection(node.label(), "no connection"));
        };
        let sending = async {
            if read {
                send_read(&node, connection, request, asking).await
            } else {
                request::send(connection, request, asking).await
            }
        };
        // The connection's own stall watchdog already bounds one reply: a second timer is
        // only needed when the deadline comes first.
        let time_left = self.deadline.saturating_duration_since(Instant::now());
        let sent = if !request.is_blocking()
            && time_left > stall_detected_within(self.router.settings.response_timeout)
        {
            Ok(sending.await)
        } else {
            Box::pin(tokio::time::timeout_at(self.deadline, sending)).await
        };
        let Ok(sent) = sent else {
            return Err(self.timed_out_on(node));
        };
        let clean = sent.is_ok();
        let outcome = outcome_of(sent, &node, connection, &mut self.trail, reply);
        if clean && let Conn::Dedicated(dedicated) = &mut conn {
            dedicated.mark_clean();
        }
        Ok(Tried::Sent { node, outcome })
    }

    /// A connection to `node`: an open one at once; else one opened within the deadline (a
    /// blocking command always gets a dedicated one). `Err`: the deadline passed first.
    async fn open(&self, node: &Arc<Node>, read: bool) -> Result<Result<Conn, Error>, Elapsed> {
        let blocking = self.request.is_blocking();
        let ready = if blocking {
            None
        } else if read {
            node.ready_read_connection()
        } else {
            node.ready_connection()
        };
        let deadline = self.deadline;
        match ready {
            Some(conn) => Ok(Ok(Conn::Shared(conn))),
            None if blocking => Box::pin(tokio::time::timeout_at(deadline, node.dedicated()))
                .await
                .map(|r| r.map(Conn::Dedicated)),
            None if read => Box::pin(tokio::time::timeout_at(deadline, node.read_connection()))
                .await
                .map(|r| r.map(Conn::Shared)),
            None => Box::pin(tokio::time::timeout_at(deadline, node.connection()))
                .await
                .map(|r| r.map(Conn::Shared)),
        }
    }
}
