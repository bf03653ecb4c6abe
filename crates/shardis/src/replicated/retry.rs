//! The retry decision of primary+replicas mode, as a pure function: what one attempt came to,
//! and where the command stands, decide what happens next. The shell in [`super::send`]
//! carries it out.
//!
//! Unlike a cluster there are no redirects: a failed primary is replaced by a promotion the
//! client learns by asking the nodes (`ROLE`) or the sentinels again — a *rediscovery*.

use std::time::Duration;

use redis::Value;

pub(crate) use crate::cluster::redirect::{Outcome, backoff};

/// Where the command stands when the outcome arrives.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Attempt {
    /// 1 for the first try.
    pub number: u32,
    /// Whether the request may run twice (reads): only then is a lost request sent again.
    pub retry_safe: bool,
    /// Time until the command's deadline.
    pub time_left: Duration,
}

/// What happens before the next attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Wait {
    /// Sleep this long.
    Backoff(Duration),
    /// Wait for a rediscovery to complete (bounded by the deadline).
    Rediscovery,
}

/// Why the command fails.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Failure {
    /// The request was lost after it was written and may not run twice.
    Lost,
    /// The deadline leaves no time for the next attempt.
    Deadline,
}

/// The next step.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Step {
    Reply,
    Retry(Wait),
    Fail(Failure),
}

/// A decision: the step, and what the shell does whatever the step.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Decision {
    pub step: Step,
    /// Ask for a rediscovery of the primary (without waiting).
    pub rediscover: bool,
    /// Drop the node's connections: the one used is broken.
    pub discard: bool,
    /// The retry counted in `shardis_retries_total{reason}`, if any.
    pub retry_reason: Option<&'static str>,
}

/// Decides what follows `outcome` of `attempt`.
pub(crate) fn decide(outcome: Outcome<'_>, attempt: Attempt) -> Decision {
    let after_backoff = |rediscover: bool, reason: Option<&'static str>| {
        let wait = backoff(attempt.number);
        Decision {
            step: if wait >= attempt.time_left {
                Step::Fail(Failure::Deadline)
            } else {
                Step::Retry(Wait::Backoff(wait))
            },
            rediscover,
            discard: false,
            retry_reason: reason,
        }
    };
    let reply = match outcome {
        // Nothing was sent: safe to send again, and the node may be gone for good.
        Outcome::NotSent => return after_backoff(true, None),
        Outcome::Lost { broken } => {
            let mut decision = if attempt.retry_safe {
                after_backoff(true, None)
            } else {
                // It may have run: a write is never sent twice.
                Decision {
                    step: Step::Fail(Failure::Lost),
                    rediscover: true,
                    discard: false,
                    retry_reason: None,
                }
            };
            decision.discard = broken;
            return decision;
        }
        Outcome::Reply(reply) => reply,
    };
    let Value::ServerError(error) = reply else {
        return Decision {
            step: Step::Reply,
            rediscover: false,
            discard: false,
            retry_reason: None,
        };
    };
    match error.code() {
        // A write reached a node that was demoted: it did not run. Go where the new primary
        // is, once it is known.
        "READONLY" => Decision {
            step: if attempt.time_left.is_zero() {
                Step::Fail(Failure::Deadline)
            } else {
                Step::Retry(Wait::Rediscovery)
            },
            rediscover: true,
            discard: false,
            retry_reason: Some("readonly"),
        },
        // A node loading its data set (restarted, or a replica resyncing after a promotion),
        // or a replica that lost its primary and serves no stale data: it did not run.
        "LOADING" => after_backoff(true, Some("loading")),
        "MASTERDOWN" => after_backoff(true, Some("masterdown")),
        _ => Decision {
            step: Step::Reply,
            rediscover: false,
            discard: false,
            retry_reason: None,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attempt(number: u32, retry_safe: bool) -> Attempt {
        Attempt {
            number,
            retry_safe,
            time_left: Duration::from_secs(5),
        }
    }

    fn on_reply(bytes: &[u8], attempt: Attempt) -> Decision {
        let reply = redis::parse_redis_value(bytes).expect("valid RESP");
        decide(Outcome::Reply(&reply), attempt)
    }

    #[test]
    fn replies_and_command_errors_go_to_the_caller() {
        for bytes in [
            &b"+OK\r\n"[..],
            b"$-1\r\n",
            b"-WRONGTYPE Operation against a key holding the wrong kind of value\r\n",
            b"-ERR unknown command\r\n",
            // A standalone node never redirects; if one did, it would be its reply.
            b"-MOVED 1 127.0.0.1:1\r\n",
        ] {
            let d = on_reply(bytes, attempt(1, false));
            assert_eq!(d.step, Step::Reply, "{}", String::from_utf8_lossy(bytes));
            assert!(!d.rediscover);
        }
    }

    #[test]
    fn a_write_on_a_demoted_primary_waits_for_the_new_one() {
        let d = on_reply(
            b"-READONLY You can't write against a read only replica.\r\n",
            attempt(1, false),
        );
        assert_eq!(d.step, Step::Retry(Wait::Rediscovery));
        assert!(d.rediscover);
        assert_eq!(d.retry_reason, Some("readonly"));
    }

    #[test]
    fn loading_and_masterdown_back_off_and_look_again() {
        for (bytes, reason) in [
            (
                &b"-LOADING Redis is loading the dataset in memory\r\n"[..],
                "loading",
            ),
            (b"-MASTERDOWN Link with MASTER is down\r\n", "masterdown"),
        ] {
            let d = on_reply(bytes, attempt(2, false));
            assert_eq!(d.step, Step::Retry(Wait::Backoff(backoff(2))));
            assert!(d.rediscover);
            assert_eq!(d.retry_reason, Some(reason));
        }
    }

    #[test]
    fn unsent_requests_are_retried_lost_writes_never() {
        for retry_safe in [false, true] {
            let d = decide(Outcome::NotSent, attempt(1, retry_safe));
            assert!(matches!(d.step, Step::Retry(Wait::Backoff(_))));
            assert!(d.rediscover);
        }
        let d = decide(Outcome::Lost { broken: true }, attempt(1, false));
        assert_eq!(d.step, Step::Fail(Failure::Lost));
        assert!(d.discard && d.rediscover);
        let d = decide(Outcome::Lost { broken: true }, attempt(1, true));
        assert!(matches!(d.step, Step::Retry(Wait::Backoff(_))));
        assert!(d.discard);
    }

    #[test]
    fn no_retry_past_the_deadline() {
        let mut late = attempt(4, true);
        late.time_left = Duration::from_millis(1);
        assert_eq!(
            decide(Outcome::NotSent, late).step,
            Step::Fail(Failure::Deadline)
        );
        late.time_left = Duration::ZERO;
        assert_eq!(
            on_reply(b"-READONLY no\r\n", late).step,
            Step::Fail(Failure::Deadline)
        );
    }
}
