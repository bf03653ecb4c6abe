//! The one error type of the client: what happened, and where (node, slot, attempts).

use std::time::Duration;

use shardis_slots::TopologyError;

/// Everything that can go wrong in a shardis call.
///
/// Each variant names what happened and where, so a log line is enough to act on. Server
/// replies that are ordinary command errors (`WRONGTYPE`, `ERR ...`) are not errors of the
/// client: they come back as [`redis::Value::ServerError`] through the
/// [`redis::aio::ConnectionLike`] interface, exactly as from a single Redis.
///
/// ```
/// let err = shardis::Error::Config("no deployment mode chosen".into());
/// assert_eq!(err.to_string(), "invalid configuration: no deployment mode chosen");
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The builder was given settings that cannot work.
    #[error("invalid configuration: {0}")]
    Config(String),

    /// No seed node answered with a usable topology.
    #[error("no seed answered with a usable cluster topology (seeds: {}); errors: {}", seeds.join(", "), errors.join("; "))]
    NoSeedReachable {
        /// The seed addresses that were tried.
        seeds: Vec<String>,
        /// What each seed answered or why it could not be reached.
        errors: Vec<String>,
    },

    /// Primary+replicas or Sentinel mode: no node could be confirmed as the primary (no node
    /// said it is one, no sentinel named one that agreed, or none answered).
    #[error("no primary found from {from}; errors: {}", errors.join("; "))]
    NoPrimary {
        /// Where the primary was looked for: the nodes, or the master name and sentinels.
        from: String,
        /// What each node or sentinel answered, or why it could not be reached.
        errors: Vec<String>,
    },

    /// A node could not be reached, or the connection broke while the command was in flight.
    #[error("node {node} unreachable{}: {message}", slot_suffix(*slot))]
    Connection {
        /// The node's address.
        node: String,
        /// The slot the command was for, if any.
        slot: Option<u16>,
        /// What the connection layer said.
        message: String,
    },

    /// A node refused the client's credentials at the connection handshake (`NOAUTH`,
    /// `WRONGPASS`, `NOPERM`, or a failed `AUTH`): set them on the
    /// [`Builder`](crate::Builder) with `username` / `password`. Never contains the password.
    #[error("node {node} refused the credentials{}: {message}", user.as_ref().map(|u| format!(" of user {u:?}")).unwrap_or_default())]
    Auth {
        /// The node's address.
        node: String,
        /// The ACL user the client authenticated as, if one was set.
        user: Option<String>,
        /// What the server said.
        message: String,
    },

    /// A TLS connection to `node` could not be set up: the handshake failed (the server's
    /// certificate is not trusted or not valid for the name, the server refused the client's
    /// certificate, or the peer does not speak TLS) or the TLS settings could not be used.
    #[error("TLS with {node} failed: {message}")]
    Tls {
        /// The node's address (and the name its certificate was checked against).
        node: String,
        /// Why, as rustls or the server said it.
        message: String,
    },

    /// The command's deadline passed before it succeeded.
    #[error("deadline of {deadline:?} exceeded after {attempts} attempt(s){}{}; last: {last}", slot_suffix(*slot), node_suffix(node))]
    Timeout {
        /// The configured per-command deadline.
        deadline: Duration,
        /// How many times the command was sent or tried.
        attempts: u32,
        /// The slot the command was for, if any.
        slot: Option<u16>,
        /// The last node tried, if any.
        node: Option<String>,
        /// The last server reply or failure seen.
        last: String,
    },

    /// The command was redirected (`MOVED`/`ASK`) more times than the redirect budget allows.
    #[error(
        "redirect budget of {budget} exhausted for slot {slot} (last node {node}); last reply: {last_reply}"
    )]
    TooManyRedirects {
        /// The configured budget.
        budget: u32,
        /// The slot being chased.
        slot: u16,
        /// The node that sent the last redirect.
        node: String,
        /// The last server reply.
        last_reply: String,
    },

    /// The keys of a command that cannot be split hash to different slots.
    #[error(
        "{command}: keys hash to different slots ({slots:?}); use a hash tag such as {{user1}} to keep them together"
    )]
    CrossSlot {
        /// The command name.
        command: String,
        /// The distinct slots seen (at most a few are listed).
        slots: Vec<u16>,
    },

    /// No node owns this slot in the current topology, and a refresh did not find one.
    #[error("slot {slot} has no owner in the cluster topology")]
    SlotUnassigned {
        /// The slot.
        slot: u16,
    },

    /// A topology reply could not be used.
    #[error("topology from {node}: {source}")]
    Topology {
        /// The node that sent it.
        node: String,
        /// What was wrong with it.
        #[source]
        source: TopologyError,
    },

    /// A ring node is marked down and the fail-fast policy is in force.
    #[error("node {node} is down (fail-fast policy)")]
    NodeDown {
        /// The node's name.
        node: String,
    },

    /// The node's circuit breaker is open, or its ramp admits no more now (the
    /// [`DownPolicy::FailFast`](crate::DownPolicy) policy): the command was not sent. The
    /// breaker probes the node with a `PING` in about `retry_in` (or, while traffic ramps back
    /// after a probe, admits more then).
    #[error(
        "node {node}: circuit breaker open, command not sent; next probe or ramp step in {retry_in:?}"
    )]
    CircuitOpen {
        /// The node's address (or ring name).
        node: String,
        /// About how long until the breaker lets commands through again.
        retry_in: Duration,
    },

    /// Too many commands are already waiting for this node to recover
    /// ([`Builder::max_waiting_per_node`](crate::Builder::max_waiting_per_node)): the command
    /// was not sent and did not wait.
    #[error("node {node} is down and {waiting} commands already wait for it; command not sent")]
    Overloaded {
        /// The node's address (or ring name).
        node: String,
        /// How many commands were waiting (the configured bound).
        waiting: usize,
    },

    /// The command cannot be sent through shardis (e.g. blocking subscribe on a shared connection).
    #[error("{command} is not supported by shardis: {reason}")]
    Unsupported {
        /// The command name.
        command: String,
        /// Why.
        reason: &'static str,
    },

    /// A transaction (atomic pipeline) was discarded by the server before it ran, because
    /// some of its commands were refused when queued (`EXECABORT`); nothing of it ran.
    #[error("Transaction aborted: {detail}")]
    TransactionAborted {
        /// What the server said: each refused command's index in the transaction and why.
        detail: String,
    },

    /// The slot of a [`DedicatedConnection`](crate::DedicatedConnection)'s key moved to
    /// another node while the connection was in use (a reshard or a failover): its `WATCH`
    /// no longer guards anything. Open a new dedicated connection and start again.
    #[error(
        "the slot moved away from {node} while its dedicated connection was in use ({reply}); open a new one and start again"
    )]
    SlotMoved {
        /// The node the connection is to.
        node: String,
        /// The redirect the node sent.
        reply: String,
    },

    /// [`Client::transaction`](crate::Client::transaction) found its watched keys changed on
    /// every attempt.
    #[error("transaction gave up after {attempts} attempts: its watched keys changed each time")]
    TransactionConflict {
        /// How many times the transaction ran.
        attempts: u32,
    },

    /// A command sent to every shard (`FLUSHALL`, `SCRIPT LOAD`, `DBSIZE`, ...) failed on some
    /// of them: the reply would not be the whole keyspace's, so there is none. Names the nodes
    /// that failed (and why) and those that succeeded (the command ran there).
    #[error("{command} failed on {} node(s): {}; it succeeded on: [{}]", failed.len(), failed.join("; "), succeeded.join(", "))]
    PartialFailure {
        /// The command name.
        command: String,
        /// `node: why` for each node that failed.
        failed: Vec<String>,
        /// The nodes where it ran.
        succeeded: Vec<String>,
    },

    /// A node refused to subscribe (`NOPERM` for an ACL, `CROSSSLOT`, or a `MOVED` that a
    /// topology refresh did not settle within the deadline).
    #[error("{command} refused by {node}: {reply}")]
    SubscribeRefused {
        /// The node.
        node: String,
        /// `SUBSCRIBE`, `PSUBSCRIBE` or `SSUBSCRIBE`.
        command: String,
        /// What the server said.
        reply: String,
    },

    /// A node refused `CLIENT TRACKING` for an invalidation stream (a server older than
    /// Redis 6, a proxy, an ACL without `client`, overlapping prefixes): invalidations from it
    /// cannot be had, so an in-process tier fed by them must stay off.
    #[error("CLIENT TRACKING refused by {node}: {reply}")]
    TrackingRefused {
        /// The node.
        node: String,
        /// What the server said.
        reply: String,
    },

    /// The server's reply had an unexpected shape.
    #[error("unexpected reply from {node}: {message}")]
    Protocol {
        /// The node.
        node: String,
        /// What was unexpected.
        message: String,
    },
}

fn slot_suffix(slot: Option<u16>) -> String {
    slot.map(|s| format!(" (slot {s})")).unwrap_or_default()
}

fn node_suffix(node: &Option<String>) -> String {
    node.as_ref()
        .map(|n| format!(" (node {n})"))
        .unwrap_or_default()
}

impl Error {
    /// A node could not be reached, or its connection broke (no slot: ring mode, fan-outs).
    pub(crate) fn connection(node: &str, message: impl Into<String>) -> Error {
        Error::Connection {
            node: node.to_string(),
            slot: None,
            message: message.into(),
        }
    }

    /// The deadline passed; `last` is what the last attempt saw (empty: none completed).
    pub(crate) fn timeout(
        deadline: Duration,
        attempts: u32,
        slot: Option<u16>,
        node: Option<&str>,
        last: &str,
    ) -> Error {
        Error::Timeout {
            deadline,
            attempts,
            slot,
            node: node.map(str::to_string),
            last: if last.is_empty() {
                "no attempt completed".into()
            } else {
                last.to_string()
            },
        }
    }

    /// One node (a ring node, by name) sent no reply within `limit`.
    pub(crate) fn node_timeout(limit: Duration, node: &str) -> Error {
        Error::timeout(limit, 1, None, Some(node), "no reply")
    }

    /// A reply of the wrong shape from `node`.
    pub(crate) fn protocol(node: &str, message: impl Into<String>) -> Error {
        Error::Protocol {
            node: node.to_string(),
            message: message.into(),
        }
    }

    /// A short, stable label for metrics (`errors_total{kind=...}`).
    pub fn kind_label(&self) -> &'static str {
        match self {
            Error::Config(_) => "config",
            Error::NoSeedReachable { .. } => "no_seed",
            Error::NoPrimary { .. } => "no_primary",
            Error::Connection { .. } => "connection",
            Error::Auth { .. } => "auth",
            Error::Tls { .. } => "tls",
            Error::Timeout { .. } => "timeout",
            Error::TooManyRedirects { .. } => "redirects",
            Error::CrossSlot { .. } => "cross_slot",
            Error::SlotUnassigned { .. } => "slot_unassigned",
            Error::Topology { .. } => "topology",
            Error::NodeDown { .. } => "node_down",
            Error::CircuitOpen { .. } => "circuit_open",
            Error::Overloaded { .. } => "overloaded",
            Error::Unsupported { .. } => "unsupported",
            Error::TransactionAborted { .. } => "transaction_aborted",
            Error::SlotMoved { .. } => "slot_moved",
            Error::TransactionConflict { .. } => "transaction_conflict",
            Error::PartialFailure { .. } => "partial_failure",
            Error::SubscribeRefused { .. } => "subscribe_refused",
            Error::TrackingRefused { .. } => "tracking_refused",
            Error::Protocol { .. } => "protocol",
        }
    }
}

/// Carries a shardis error through the `redis` crate's error type, for callers that use
/// [`redis::AsyncCommands`] or [`redis::pipe`]. Every shardis error travels as the source of an
/// `std::io::Error` inside the `RedisError` (so [`Error::from_redis`] gets it back); its kind
/// says what it is (`TimedOut` for a deadline, `ConnectionRefused` for an unreachable or down
/// node, `InvalidInput` for what the client refused before sending, `InvalidData` for a reply
/// of the wrong shape); the text is the shardis error's. An aborted transaction is the one
/// exception: it comes back as redis-rs reports one (`ExecAbort`, "Transaction aborted" and
/// each refused command's index).
impl From<Error> for redis::RedisError {
    fn from(err: Error) -> Self {
        use std::io::ErrorKind as Io;
        let kind = match &err {
            Error::Timeout { .. } => Io::TimedOut,
            Error::Connection { .. }
            | Error::NoSeedReachable { .. }
            | Error::NoPrimary { .. }
            | Error::NodeDown { .. }
            | Error::CircuitOpen { .. }
            | Error::Overloaded { .. }
            | Error::Auth { .. }
            | Error::Tls { .. } => Io::ConnectionRefused,
            Error::Protocol { .. } | Error::Topology { .. } => Io::InvalidData,
            Error::TransactionAborted { detail } => {
                return (
                    redis::ErrorKind::Server(redis::ServerErrorKind::ExecAbort),
                    "Transaction aborted",
                    detail.clone(),
                )
                    .into();
            }
            _ => Io::InvalidInput,
        };
        std::io::Error::new(kind, err).into()
    }
}

impl Error {
    /// The shardis error a [`redis::RedisError`] carries, when it came from shardis (through
    /// [`redis::AsyncCommands`] or [`redis::pipe`]); `None` for errors of other origins.
    ///
    /// ```
    /// let refused = shardis::Error::Unsupported { command: "MULTI".into(), reason: "use a pipeline" };
    /// let through_redis: redis::RedisError = refused.into();
    /// match shardis::Error::from_redis(&through_redis) {
    ///     Some(shardis::Error::Unsupported { command, .. }) => assert_eq!(command, "MULTI"),
    ///     other => panic!("{other:?}"),
    /// }
    /// ```
    pub fn from_redis(err: &redis::RedisError) -> Option<&Error> {
        io_error_of(err)?.get_ref()?.downcast_ref::<Error>()
    }
}

/// The `std::io::Error` a `RedisError` was made from, if any.
pub(crate) fn io_error_of(err: &redis::RedisError) -> Option<&std::io::Error> {
    use std::error::Error as _;
    let source = err.source()?;
    // redis-rs keeps the io::Error behind an Arc.
    match source.downcast_ref::<std::sync::Arc<dyn std::error::Error + Send + Sync>>() {
        Some(arc) => arc.downcast_ref::<std::io::Error>(),
        None => source.downcast_ref::<std::io::Error>(),
    }
}

/// Short form for results of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
