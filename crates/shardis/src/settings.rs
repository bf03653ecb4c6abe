//! Settings shared by both deployment modes, and the types they are made of.

use std::fmt;
use std::time::Duration;

/// Where reads go in cluster, primary+replicas and Sentinel modes (only read-only commands ever go
/// to a replica). Writes always go to primaries.
///
/// Replication is asynchronous, so under a replica `ReadFrom` the client promises this much:
///
/// - a read sent on its own sees what its replica has applied, which may be older than the
///   caller's own last write: read-your-writes across separate calls is **not** guaranteed
///   (read from the primary, or `WAIT` on a [dedicated connection](crate::Client::dedicated)
///   until the replicas acknowledged the write);
/// - within one call the commands see each other, as on one Redis: a pipeline's reads of a
///   shard (a slot, or the one shard of primary+replicas mode) that the same pipeline writes go
///   to the primary with its writes; transactions, scripts that may write (`EVAL`, `FCALL`),
///   blocking commands, [`Client::transaction`](crate::Client::transaction) and dedicated
///   connections always use the primary;
/// - whole-keyspace commands (`KEYS`, `DBSIZE`, `RANDOMKEY`, ...) and
///   [`Client::scan`](crate::Client::scan) ask the primaries, so they miss no key written
///   before them;
/// - a read a replica fails (loading, its primary lost, its connection lost) is retried on the
///   primary.
///
/// Once the replicas have caught up, every reply equals one Redis's; the conformance suite
/// (`tests/tests/conformance.rs`, mode `replica-reads`) checks exactly that.
///
/// ```
/// use shardis::ReadFrom;
/// assert_eq!(ReadFrom::default(), ReadFrom::Primary);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ReadFrom {
    /// Every command goes to the slot's primary.
    #[default]
    Primary,
    /// Reads go to a replica of the slot's shard (round-robin) when one is healthy, else to
    /// the primary.
    PreferReplica,
    /// Reads go to a replica (round-robin); the primary serves them only when no replica of
    /// the shard is healthy.
    Replica,
}

/// What a command does when the node it must go to is down (both modes), chosen with
/// [`Builder::node_down_policy`](crate::Builder::node_down_policy). Under either policy at
/// most [`max_waiting_per_node`](crate::Builder::max_waiting_per_node) commands wait for
/// one node; past that, new ones fail at once with [`Error::Overloaded`](crate::Error::Overloaded).
///
/// ```
/// use shardis::DownPolicy;
/// assert_eq!(DownPolicy::default(), DownPolicy::Wait);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DownPolicy {
    /// Retry until the node (or, in cluster mode, the replica that takes over) answers, up to
    /// the command's deadline. Suits short outages such as a manual failover. A replica that
    /// takes over from a primary that failed gets its traffic along the breaker's ramp (see
    /// [`BreakerOptions::ramp`](crate::BreakerOptions::ramp)): the commands that waited are
    /// released a step at a time, each waiting (among the node's bounded waiting commands) for
    /// its turn; one whose turn would leave it less than a response timeout before its deadline
    /// is sent at once rather than failed, so choose ramp steps well under the deadline.
    #[default]
    Wait,
    /// Fail fast through the node's circuit breaker (see
    /// [`BreakerOptions`](crate::BreakerOptions)): once it opens, commands for that node fail
    /// at once with [`Error::CircuitOpen`](crate::Error::CircuitOpen) until a `PING` probe is
    /// answered, then traffic comes back along the breaker's ramp. The same in ring mode, where
    /// it replaces [`HealthPolicy::FailFast`](crate::HealthPolicy::FailFast)'s `NodeDown` and
    /// works beside [`HealthPolicy::Eject`](crate::HealthPolicy::Eject).
    FailFast,
}

/// A password: kept out of `Debug`, logs and errors.
///
/// ```
/// let secret = shardis::Secret::new("hunter2");
/// assert_eq!(format!("{secret:?}"), "Secret(***)");
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The secret itself, for the code that must send it (`AUTH`); never log it.
    ///
    /// ```
    /// assert_eq!(shardis::Secret::new("hunter2").expose(), "hunter2");
    /// ```
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// Settings shared by both deployment modes. Defaults are in [`Builder`](crate::Builder).
#[derive(Clone, Debug)]
pub(crate) struct Settings {
    pub connect_timeout: Duration,
    pub response_timeout: Duration,
    pub deadline: Duration,
    pub redirect_budget: u32,
    pub refresh_interval: Duration,
    pub refresh_min_interval: Duration,
    pub refresh_fanout: usize,
    pub read_from: ReadFrom,
    pub connections_per_node: usize,
    pub username: Option<String>,
    pub password: Option<Secret>,
    /// Asked for credentials on every new connection; wins over `username`/`password`.
    pub credentials_provider: Option<crate::credentials::Provider>,
    /// TLS on every connection when set (resolved by the builder before connecting).
    pub tls: Option<crate::tls::TlsSettings>,
    pub reconnect_backoff_max: Duration,
    /// TCP keepalive idle time on every connection; `None`: the OS default (off).
    pub tcp_keepalive: Option<Duration>,
    pub down_policy: DownPolicy,
    pub max_waiting_per_node: usize,
    pub breaker: crate::net::BreakerOptions,
    /// A read passes over a connection whose node owes replies and sent none for this long.
    pub read_bypass_after: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            connect_timeout: Duration::from_secs(1),
            response_timeout: Duration::from_secs(1),
            deadline: Duration::from_secs(5),
            redirect_budget: 5,
            refresh_interval: Duration::from_secs(30),
            refresh_min_interval: Duration::from_millis(100),
            refresh_fanout: 3,
            read_from: ReadFrom::Primary,
            connections_per_node: 1,
            username: None,
            password: None,
            credentials_provider: None,
            tls: None,
            reconnect_backoff_max: Duration::from_millis(500),
            tcp_keepalive: None,
            down_policy: DownPolicy::Wait,
            max_waiting_per_node: 1024,
            breaker: crate::net::BreakerOptions::default(),
            read_bypass_after: Duration::from_millis(50),
        }
    }
}
