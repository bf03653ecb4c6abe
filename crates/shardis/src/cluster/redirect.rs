//! The retry decision of cluster mode, as a pure function: given what one attempt came to
//! (a reply, or an I/O outcome) and where the command stands (attempts, redirects, whether it
//! may run twice, time left), what happens next. No socket, no clock, no map: the shell in
//! [`super::follow`] carries the decision out, and the unit tests below drive it from raw
//! RESP bytes.

use std::time::Duration;

use redis::Value;
use shardis_slots::{Endpoint, RedirectKind, parse_redirect_parts};

/// What one attempt came to.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Outcome<'a> {
    /// The node replied (an error reply included).
    Reply(&'a Value),
    /// No connection could be had: nothing was sent.
    NotSent,
    /// The connection failed after the request was written: it may have run. `broken`: the
    /// connection is unusable (reset, closed, timed out) and must be replaced.
    Lost { broken: bool },
}

/// Where the command stands when the outcome arrives.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Attempt {
    /// 1 for the first try.
    pub number: u32,
    /// Redirects followed so far.
    pub redirects: u32,
    /// The most redirects allowed.
    pub budget: u32,
    /// Whether the request may run twice (reads): only then is a lost request sent again.
    pub retry_safe: bool,
    /// Time until the command's deadline.
    pub time_left: Duration,
}

/// Where the next attempt goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Next {
    /// Wherever the (possibly refreshed) map says.
    Route,
    /// `MOVED`: the slot lives at `to` now; patch the map and go there.
    Moved { slot: u16, to: Endpoint },
    /// `ASK`: this once, `to` with `ASKING` first.
    Ask { to: Endpoint },
}

/// What happens before the next attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Wait {
    /// Nothing: go at once.
    None,
    /// Sleep this long.
    Backoff(Duration),
    /// Wait for a topology refresh to complete (bounded by the deadline).
    Refresh,
}

/// Why the command fails.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Failure {
    /// More redirects than the budget allows.
    TooManyRedirects,
    /// A redirect that does not parse.
    Malformed(String),
    /// The request was lost after it was written and may not run twice.
    Lost,
    /// The deadline leaves no time for the next attempt.
    Deadline,
}

/// The next step.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Step {
    /// Hand the reply to the caller.
    Reply,
    /// Try again.
    Retry { next: Next, wait: Wait },
    /// Give up.
    Fail(Failure),
}

/// A decision: the step, and the side effects the shell carries out whatever the step.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Decision {
    pub step: Step,
    /// Ask for a topology refresh (without waiting).
    pub refresh: bool,
    /// Drop the node's connections: the one used is broken.
    pub discard: bool,
    /// The retry counted in `shardis_retries_total{reason}`, if any.
    pub retry_reason: Option<&'static str>,
}

impl Decision {
    fn step(step: Step) -> Self {
        Decision {
            step,
            refresh: false,
            discard: false,
            retry_reason: None,
        }
    }
}

/// The wait before attempt `number + 1` after a transient failure: 5 ms doubling to 200 ms.
pub(crate) fn backoff(number: u32) -> Duration {
    Duration::from_millis(5u64 << number.min(6)).min(Duration::from_millis(200))
}

/// Whether `outcome` is the caller's answer whatever the attempt: a reply that is not an error.
/// [`decide`] answers [`Step::Reply`] with no side effect for every such outcome; asking this
/// first lets the shell skip building an [`Attempt`] (a clock read) on the common path.
pub(crate) fn is_final(outcome: &Outcome<'_>) -> bool {
    matches!(outcome, Outcome::Reply(reply) if !matches!(reply, Value::ServerError(_)))
}

/// Decides what follows `outcome` of `attempt`, sent to `from`.
pub(crate) fn decide(outcome: Outcome<'_>, attempt: Attempt, from: &Endpoint) -> Decision {
    let after_backoff = |refresh: bool, reason: Option<&'static str>| {
        let wait = backoff(attempt.number);
        let step = if wait >= attempt.time_left {
            Step::Fail(Failure::Deadline)
        } else {
            Step::Retry {
                next: Next::Route,
                wait: Wait::Backoff(wait),
            }
        };
        Decision {
            step,
            refresh,
            discard: false,
            retry_reason: reason,
        }
    };
    let reply = match outcome {
        // Nothing was sent: always safe to try again, and the topology may have moved on.
        Outcome::NotSent => return after_backoff(true, None),
        Outcome::Lost { broken } => {
            let mut decision = if attempt.retry_safe {
                after_backoff(broken, None)
            } else {
                // It may have run: running a write twice could apply it twice.
                Decision::step(Step::Fail(Failure::Lost))
            };
            decision.refresh = broken;
            decision.discard = broken;
            return decision;
        }
        Outcome::Reply(reply) => reply,
    };
    let Value::ServerError(error) = reply else {
        return Decision::step(Step::Reply);
    };
    let code = error.code();
    match code {
        "MOVED" | "ASK" => {
            if attempt.redirects + 1 > attempt.budget {
                return Decision::step(Step::Fail(Failure::TooManyRedirects));
            }
            let detail = error.details().unwrap_or("");
            let redirect = match parse_redirect_parts(code, detail) {
                Ok(redirect) => redirect,
                Err(e) => {
                    return Decision::step(Step::Fail(Failure::Malformed(format!(
                        "{code} {detail}: {e}"
                    ))));
                }
            };
            let Some(to) = redirect.resolve(from) else {
                // `?:port`: the server does not know the address; a refresh will.
                return Decision::step(Step::Retry {
                    next: Next::Route,
                    wait: Wait::Refresh,
                });
            };
            let (next, refresh) = match redirect.kind {
                RedirectKind::Moved => (
                    Next::Moved {
                        slot: redirect.slot,
                        to,
                    },
                    true,
                ),
                RedirectKind::Ask => (Next::Ask { to }, false),
            };
            Decision {
                step: Step::Retry {
                    next,
                    wait: Wait::None,
                },
                refresh,
                discard: false,
                retry_reason: None,
            }
        }
        "TRYAGAIN" => after_backoff(false, Some("tryagain")),
        "LOADING" => after_backoff(false, Some("loading")),
        "MASTERDOWN" => after_backoff(true, Some("masterdown")),
        "CLUSTERDOWN" => after_backoff(true, Some("clusterdown")),
        // A write reached a node that was demoted: the map is stale.
        "READONLY" => Decision {
            step: Step::Retry {
                next: Next::Route,
                wait: Wait::Refresh,
            },
            refresh: false,
            discard: false,
            retry_reason: Some("readonly"),
        },
        _ => Decision::step(Step::Reply),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(bytes: &[u8]) -> Value {
        redis::parse_redis_value(bytes).expect("valid RESP")
    }

    fn from() -> Endpoint {
        Endpoint::new("10.0.0.1", 7000)
    }

    fn attempt(number: u32, redirects: u32, retry_safe: bool) -> Attempt {
        Attempt {
            number,
            redirects,
            budget: 5,
            retry_safe,
            time_left: Duration::from_secs(5),
        }
    }

    fn on_reply(bytes: &[u8], attempt: Attempt) -> Decision {
        decide(Outcome::Reply(&parse(bytes)), attempt, &from())
    }

    #[test]
    fn ordinary_replies_and_command_errors_go_to_the_caller() {
        for bytes in [
            &b"+OK\r\n"[..],
            b"$5\r\nhello\r\n",
            b"*2\r\n:1\r\n$-1\r\n",
            b"-WRONGTYPE Operation against a key holding the wrong kind of value\r\n",
            b"-ERR unknown command 'FOO'\r\n",
            b"-NOSCRIPT No matching script\r\n",
        ] {
            let d = on_reply(bytes, attempt(1, 0, false));
            assert_eq!(d.step, Step::Reply, "{}", String::from_utf8_lossy(bytes));
            assert!(!d.refresh && !d.discard);
        }
    }

    #[test]
    fn a_final_outcome_is_one_decide_answers_with_the_reply_and_nothing_else() {
        // The shell's shortcut must never skip a decision that would have done something.
        for bytes in [
            &b"+OK\r\n"[..],
            b"$5\r\nhello\r\n",
            b"$-1\r\n",
            b"*2\r\n:1\r\n$-1\r\n",
            b"*1\r\n-MOVED 1 10.0.0.2:7000\r\n",
            b"-MOVED 3999 127.0.0.1:6381\r\n",
            b"-ASK 1 127.0.0.1:6381\r\n",
            b"-TRYAGAIN later\r\n",
            b"-CLUSTERDOWN down\r\n",
            b"-WRONGTYPE Operation against a key holding the wrong kind of value\r\n",
        ] {
            let value = parse(bytes);
            let outcome = Outcome::Reply(&value);
            if is_final(&outcome) {
                let d = decide(outcome, attempt(3, 4, false), &from());
                assert_eq!(d.step, Step::Reply, "{}", String::from_utf8_lossy(bytes));
                assert!(!d.refresh && !d.discard && d.retry_reason.is_none());
            }
        }
        assert!(is_final(&Outcome::Reply(&parse(b":1\r\n"))));
        assert!(!is_final(&Outcome::Reply(&parse(b"-MOVED 1 :6390\r\n"))));
        assert!(!is_final(&Outcome::NotSent));
        assert!(!is_final(&Outcome::Lost { broken: false }));
    }

    #[test]
    fn moved_patches_and_retries_at_once_and_asks_for_a_refresh() {
        let d = on_reply(b"-MOVED 3999 127.0.0.1:6381\r\n", attempt(1, 0, false));
        assert_eq!(
            d.step,
            Step::Retry {
                next: Next::Moved {
                    slot: 3999,
                    to: Endpoint::new("127.0.0.1", 6381)
                },
                wait: Wait::None
            }
        );
        assert!(d.refresh);
        // An empty host means the node that sent the redirect.
        let d = on_reply(b"-MOVED 1 :6390\r\n", attempt(1, 0, false));
        assert!(
            matches!(d.step, Step::Retry { next: Next::Moved { to, .. }, .. } if to == Endpoint::new("10.0.0.1", 6390))
        );
    }

    #[test]
    fn ask_retries_once_there_without_patching() {
        let d = on_reply(b"-ASK 3999 127.0.0.1:6381\r\n", attempt(2, 1, true));
        assert_eq!(
            d.step,
            Step::Retry {
                next: Next::Ask {
                    to: Endpoint::new("127.0.0.1", 6381)
                },
                wait: Wait::None
            }
        );
        assert!(!d.refresh);
    }

    #[test]
    fn an_unknown_address_waits_for_a_refresh() {
        let d = on_reply(b"-MOVED 12 ?:6381\r\n", attempt(1, 0, true));
        assert_eq!(
            d.step,
            Step::Retry {
                next: Next::Route,
                wait: Wait::Refresh
            }
        );
    }

    #[test]
    fn the_redirect_budget_ends_a_loop() {
        let d = on_reply(b"-MOVED 1 127.0.0.1:6381\r\n", attempt(6, 5, true));
        assert_eq!(d.step, Step::Fail(Failure::TooManyRedirects));
        let d = on_reply(b"-MOVED 1 127.0.0.1:6381\r\n", attempt(5, 4, true));
        assert!(matches!(d.step, Step::Retry { .. }));
    }

    #[test]
    fn a_malformed_redirect_fails_clearly() {
        let d = on_reply(b"-MOVED banana\r\n", attempt(1, 0, true));
        assert!(matches!(d.step, Step::Fail(Failure::Malformed(m)) if m.contains("banana")));
    }

    #[test]
    fn transient_cluster_states_back_off_then_retry() {
        for (bytes, reason, refresh) in [
            (
                &b"-TRYAGAIN Multiple keys request during rehashing of slot\r\n"[..],
                "tryagain",
                false,
            ),
            (
                b"-LOADING Redis is loading the dataset in memory\r\n",
                "loading",
                false,
            ),
            (
                b"-MASTERDOWN Link with MASTER is down\r\n",
                "masterdown",
                true,
            ),
            (b"-CLUSTERDOWN The cluster is down\r\n", "clusterdown", true),
        ] {
            let d = on_reply(bytes, attempt(1, 0, false));
            assert_eq!(
                d.step,
                Step::Retry {
                    next: Next::Route,
                    wait: Wait::Backoff(backoff(1))
                }
            );
            assert_eq!((d.retry_reason, d.refresh), (Some(reason), refresh));
        }
        // Backoff grows and is capped.
        assert!(backoff(1) < backoff(2));
        assert_eq!(backoff(30), Duration::from_millis(200));
    }

    #[test]
    fn readonly_waits_for_a_fresh_map() {
        let d = on_reply(
            b"-READONLY You can't write against a read only replica.\r\n",
            attempt(1, 0, false),
        );
        assert_eq!(
            d.step,
            Step::Retry {
                next: Next::Route,
                wait: Wait::Refresh
            }
        );
        assert_eq!(d.retry_reason, Some("readonly"));
    }

    #[test]
    fn an_unsent_request_is_always_retried() {
        for retry_safe in [false, true] {
            let d = decide(Outcome::NotSent, attempt(1, 0, retry_safe), &from());
            assert!(matches!(
                d.step,
                Step::Retry {
                    wait: Wait::Backoff(_),
                    ..
                }
            ));
            assert!(d.refresh);
        }
    }

    #[test]
    fn a_lost_write_is_never_sent_again_a_lost_read_is() {
        let d = decide(
            Outcome::Lost { broken: true },
            attempt(1, 0, false),
            &from(),
        );
        assert_eq!(d.step, Step::Fail(Failure::Lost));
        assert!(
            d.discard && d.refresh,
            "the broken connection is dropped anyway"
        );
        let d = decide(Outcome::Lost { broken: true }, attempt(1, 0, true), &from());
        assert!(matches!(
            d.step,
            Step::Retry {
                wait: Wait::Backoff(_),
                ..
            }
        ));
        assert!(d.discard);
    }

    #[test]
    fn no_retry_past_the_deadline() {
        let mut late = attempt(3, 0, true);
        late.time_left = Duration::from_millis(1);
        assert_eq!(
            on_reply(b"-TRYAGAIN later\r\n", late).step,
            Step::Fail(Failure::Deadline)
        );
        assert_eq!(
            decide(Outcome::NotSent, late, &from()).step,
            Step::Fail(Failure::Deadline)
        );
    }
}
