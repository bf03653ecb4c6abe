//! Client settings and the builder that checks them.

use std::fmt;
use std::time::Duration;

use crate::error::{Error, Result};

/// Where reads go in cluster mode. Writes always go to primaries.
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

    pub(crate) fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// Settings shared by both deployment modes. Defaults are in [`Builder`].
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
    pub reconnect_backoff_max: Duration,
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
            reconnect_backoff_max: Duration::from_millis(500),
        }
    }
}

/// The deployment the client talks to.
#[derive(Clone, Debug)]
pub(crate) enum Mode {
    Cluster { seeds: Vec<String> },
    Ring(crate::ring_client::RingConfig),
}

/// Builds a [`Client`](crate::Client). Start with [`Client::builder`](crate::Client::builder),
/// choose a deployment mode, adjust settings, then `build().await`.
///
/// Defaults: connect timeout 1 s, response timeout 1 s, per-command deadline 5 s, redirect
/// budget 5, topology refresh every 30 s (and on demand, at most every 100 ms), reads from
/// primaries, one pipelined connection per node.
///
/// ```no_run
/// # async fn run() -> Result<(), shardis::Error> {
/// use std::time::Duration;
/// let client = shardis::Client::builder()
///     .cluster(["127.0.0.1:7000", "127.0.0.1:7001"])
///     .read_from(shardis::ReadFrom::PreferReplica)
///     .deadline(Duration::from_secs(2))
///     .build()
///     .await?;
/// # Ok(()) }
/// ```
#[derive(Clone, Debug, Default)]
#[must_use]
pub struct Builder {
    pub(crate) mode: Option<Mode>,
    pub(crate) settings: Settings,
    pub(crate) hot: Option<crate::hot::HotKeyOptions>,
}

impl Builder {
    /// Redis Cluster mode: the client loads the slot map from any of these seeds
    /// (`host:port`, IPv6 as `[::1]:7000` or `::1:7000`) and follows the cluster from there.
    pub fn cluster<I, S>(mut self, seeds: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.mode = Some(Mode::Cluster {
            seeds: seeds.into_iter().map(Into::into).collect(),
        });
        self
    }

    /// Where reads go (cluster mode). Default [`ReadFrom::Primary`].
    pub fn read_from(mut self, read_from: ReadFrom) -> Self {
        self.settings.read_from = read_from;
        self
    }

    /// How long to wait for a TCP connection and handshake. Default 1 s.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.settings.connect_timeout = timeout;
        self
    }

    /// How long to wait for one reply from one node. Default 1 s.
    pub fn response_timeout(mut self, timeout: Duration) -> Self {
        self.settings.response_timeout = timeout;
        self
    }

    /// The most a command may take, all redirects, retries and backoff included. Default 5 s.
    pub fn deadline(mut self, deadline: Duration) -> Self {
        self.settings.deadline = deadline;
        self
    }

    /// How many `MOVED`/`ASK` redirects one command may follow. Default 5.
    pub fn redirect_budget(mut self, budget: u32) -> Self {
        self.settings.redirect_budget = budget;
        self
    }

    /// How often the topology is reloaded in the background. Default 30 s.
    pub fn refresh_interval(mut self, interval: Duration) -> Self {
        self.settings.refresh_interval = interval;
        self
    }

    /// The least time between two topology reloads, however many are asked for. Default 100 ms.
    pub fn refresh_min_interval(mut self, interval: Duration) -> Self {
        self.settings.refresh_min_interval = interval;
        self
    }

    /// How many nodes a topology refresh asks before it votes. Default 3.
    pub fn refresh_fanout(mut self, nodes: usize) -> Self {
        self.settings.refresh_fanout = nodes;
        self
    }

    /// Pipelined connections per node, used round-robin. Default 1.
    pub fn connections_per_node(mut self, connections: usize) -> Self {
        self.settings.connections_per_node = connections;
        self
    }

    /// Spreads the reads of hot keys over copies on distinct shards (both modes); see
    /// [`HotKeyOptions`](crate::HotKeyOptions). Off unless set.
    pub fn hot_keys(mut self, options: crate::hot::HotKeyOptions) -> Self {
        self.hot = Some(options);
        self
    }

    /// ACL user name for `AUTH`.
    pub fn username(mut self, username: impl Into<String>) -> Self {
        self.settings.username = Some(username.into());
        self
    }

    /// Password for `AUTH`; never shown in `Debug`, logs or errors.
    pub fn password(mut self, password: impl Into<String>) -> Self {
        self.settings.password = Some(Secret::new(password));
        self
    }

    pub(crate) fn validate(&self) -> Result<()> {
        let s = &self.settings;
        let positive = [
            ("connect_timeout", s.connect_timeout),
            ("response_timeout", s.response_timeout),
            ("deadline", s.deadline),
            ("refresh_interval", s.refresh_interval),
        ];
        for (name, value) in positive {
            if value.is_zero() {
                return Err(Error::Config(format!("{name} must be greater than zero")));
            }
        }
        if s.connections_per_node == 0 {
            return Err(Error::Config(
                "connections_per_node must be at least 1".into(),
            ));
        }
        if let Some(hot) = &self.hot {
            hot.validate().map_err(Error::Config)?;
        }
        if s.refresh_fanout == 0 {
            return Err(Error::Config("refresh_fanout must be at least 1".into()));
        }
        match &self.mode {
            None => Err(Error::Config(
                "choose a deployment mode with .cluster(seeds) or .ring(nodes)".into(),
            )),
            Some(Mode::Cluster { seeds }) if seeds.is_empty() => Err(Error::Config(
                "cluster mode needs at least one seed address".into(),
            )),
            Some(Mode::Cluster { .. }) => Ok(()),
            Some(Mode::Ring(config)) => config.validate(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_never_shows_in_debug() {
        let builder = Builder::default()
            .cluster(["127.0.0.1:1"])
            .password("s3cr3t-pw");
        let shown = format!("{builder:?}");
        assert!(!shown.contains("s3cr3t-pw"), "{shown}");
        assert!(shown.contains("Secret(***)"));
    }

    #[test]
    fn rejects_settings_that_cannot_work() {
        assert!(matches!(
            Builder::default().validate(),
            Err(Error::Config(_))
        ));
        let empty: [&str; 0] = [];
        assert!(matches!(
            Builder::default().cluster(empty).validate(),
            Err(Error::Config(_))
        ));
        let zero = Builder::default().cluster(["a:1"]).deadline(Duration::ZERO);
        assert!(matches!(zero.validate(), Err(Error::Config(m)) if m.contains("deadline")));
        let none = Builder::default().cluster(["a:1"]).connections_per_node(0);
        assert!(matches!(none.validate(), Err(Error::Config(_))));
        assert!(Builder::default().cluster(["a:1"]).validate().is_ok());
    }
}
