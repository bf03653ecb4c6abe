//! The [`Builder`]: every setting of a [`Client`](crate::Client), for both deployment modes,
//! in one place, and the checks that refuse what cannot work before anything connects.

use std::time::Duration;

use crate::error::{Error, Result};
use crate::net::BreakerOptions;
use crate::ring_router::{HealthPolicy, RebalanceOptions, RingConfig, RingNode, RingPlacement};
use crate::settings::{DownPolicy, ReadFrom, Secret, Settings};

/// The deployment the client talks to.
#[derive(Clone, Debug)]
pub(crate) enum Mode {
    Cluster {
        seeds: Vec<String>,
    },
    Ring(RingConfig),
    /// One primary with replicas, without Redis Cluster (given, or from Sentinel).
    Replicated(crate::replicated::Source),
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
    /// What connection URLs said (seeds given as URLs).
    pub(crate) from_urls: crate::url::FromUrls,
    /// Sentinel mode: the sentinels' own credentials.
    pub(crate) sentinel_auth: crate::replicated::SentinelAuth,
    /// TLS as given to [`Builder::tls`]; resolved (files read, config built) by `build`.
    pub(crate) tls: Option<crate::tls::TlsOptions>,
}

impl Builder {
    /// Redis Cluster mode: the client loads the slot map from any of these seeds
    /// (`host:port`, IPv6 as `[::1]:7000` or `::1:7000`, or connection URLs as
    /// [`cluster_urls`](Builder::cluster_urls) takes them) and follows the cluster from there.
    pub fn cluster<I, S>(mut self, seeds: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let seeds: Vec<String> = seeds.into_iter().map(Into::into).collect();
        if seeds.iter().any(|s| crate::url::is_url(s)) {
            return self.cluster_urls(seeds);
        }
        self.mode = Some(Mode::Cluster { seeds });
        self
    }

    // ---- connection URLs ----

    /// Redis Cluster mode from connection URLs
    /// (`redis://[[user][:password]@]host[:port][/0][?protocol=resp2]`; see
    /// [`ConnectionUrl`](crate::ConnectionUrl)): each URL's `host:port` is a seed, and the
    /// user and password they carry (all the same, or in one URL only) are used for `AUTH`,
    /// as [`username`](Builder::username) and [`password`](Builder::password) would.
    ///
    /// `rediss://` URLs turn TLS on with the default [`TlsOptions`](crate::TlsOptions) (and
    /// `rediss://...#insecure` with no certificate checks) unless [`tls`](Builder::tls) was
    /// given, which wins.
    ///
    /// `build` refuses, with [`Error::Config`] saying why: a URL that does not parse (the
    /// message never shows the password), URLs with different credentials, a user without
    /// a password, a database other than 0, and a mix of `redis://` and `rediss://`.
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), shardis::Error> {
    /// let client = shardis::Client::builder()
    ///     .cluster_urls(["redis://cache-app:s3cret@10.0.0.1:7000", "redis://10.0.0.2:7000"])
    ///     .build()
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub fn cluster_urls<I, S>(mut self, urls: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let mut from_urls = crate::url::FromUrls::default();
        let seeds = from_urls.take(urls.into_iter().map(Into::into).collect());
        if let Ok(Some((username, password))) = from_urls.credentials() {
            self.settings.username = username;
            self.settings.password = Some(password);
        }
        self.from_urls = from_urls;
        self.mode = Some(Mode::Cluster { seeds });
        self
    }

    // ---- primary + replicas, Sentinel: see `replicated/` ----

    /// Primary + replicas mode, without Redis Cluster: writes go to the primary, reads as
    /// [`read_from`](Builder::read_from) says (only read-only commands ever go to a replica),
    /// and whole-keyspace commands (`KEYS`, `DBSIZE`, `FLUSHALL`, ...) to the primary. Every
    /// node's role is checked with `ROLE` (`INFO replication` where `ROLE` is refused) at
    /// start — if `primary` is not the primary, the client uses the node that is — and again
    /// after a connection failure, a `READONLY`, `LOADING` or `MASTERDOWN` reply, so a
    /// promotion is followed: the new primary is found among the known nodes and the
    /// replicas they report. A write that may have run is never sent twice; a read a replica
    /// failed is retried on the primary.
    ///
    /// A managed service's primary endpoint and reader endpoint fit as they are (a reader
    /// endpoint is a replica address):
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), shardis::Error> {
    /// let client = shardis::Client::builder()
    ///     .replicated(
    ///         "my-cache.xxxxxx.ng.0001.use1.cache.amazonaws.com:6379",
    ///         ["my-cache-ro.xxxxxx.ng.0001.use1.cache.amazonaws.com:6379"],
    ///     )
    ///     .read_from(shardis::ReadFrom::PreferReplica)
    ///     .build()
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub fn replicated<I, S>(mut self, primary: impl Into<String>, replicas: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.mode = Some(Mode::Replicated(crate::replicated::Source::Nodes {
            primary: primary.into(),
            replicas: replicas.into_iter().map(Into::into).collect(),
        }));
        self
    }

    /// Redis Sentinel mode: the primary and replicas of the master `master_name`, as the
    /// sentinels at `sentinels` (`host:port`) report them, checked with `ROLE` on the node
    /// they name. The client follows `+switch-master` announcements (subscribed on every
    /// sentinel) and asks again after a connection failure or a `READONLY` reply; routing is
    /// then as in [`replicated`](Builder::replicated). Sentinels' credentials are their own:
    /// [`sentinel_password`](Builder::sentinel_password); [`password`](Builder::password)
    /// is for the data nodes.
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), shardis::Error> {
    /// let client = shardis::Client::builder()
    ///     .sentinel("mymaster", ["10.0.0.1:26379", "10.0.0.2:26379", "10.0.0.3:26379"])
    ///     .sentinel_password("sentinel-secret")
    ///     .password("data-secret")
    ///     .read_from(shardis::ReadFrom::PreferReplica)
    ///     .build()
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub fn sentinel<I, S>(mut self, master_name: impl Into<String>, sentinels: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.mode = Some(Mode::Replicated(crate::replicated::Source::Sentinel {
            name: master_name.into(),
            sentinels: sentinels.into_iter().map(Into::into).collect(),
            auth: Default::default(),
        }));
        self
    }

    /// ACL user name for `AUTH` to the sentinels (Sentinel mode).
    pub fn sentinel_username(mut self, username: impl Into<String>) -> Self {
        self.sentinel_auth.username = Some(username.into());
        self
    }

    /// Password for `AUTH` to the sentinels (Sentinel mode: their `requirepass`); never
    /// shown in `Debug`, logs or errors.
    pub fn sentinel_password(mut self, password: impl Into<String>) -> Self {
        self.sentinel_auth.password = Some(Secret::new(password));
        self
    }

    /// Where reads go (cluster, primary+replicas and Sentinel modes). Default
    /// [`ReadFrom::Primary`].
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

    /// Turns TCP keepalive on for every connection, probing after `idle` without traffic, so
    /// a peer that vanished (a dead node, a dropped NAT or load-balancer entry) is noticed on
    /// an idle connection, not by the next command. Off by default (the OS default).
    pub fn tcp_keepalive(mut self, idle: Duration) -> Self {
        self.settings.tcp_keepalive = Some(idle);
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

    /// Asks `provider` for the credentials of every new connection (rotating tokens); wins
    /// over [`username`](Builder::username) and [`password`](Builder::password), which must
    /// then not be given. See [`CredentialsProvider`](crate::CredentialsProvider).
    pub fn credentials_provider(
        mut self,
        provider: impl crate::credentials::CredentialsProvider,
    ) -> Self {
        self.settings.credentials_provider =
            Some(crate::credentials::Provider(std::sync::Arc::new(provider)));
        self
    }

    /// Speaks TLS to every node (both modes); see [`TlsOptions`](crate::TlsOptions) for the
    /// roots, client certificates and which name each node's certificate must carry.
    /// `rediss://` seeds turn TLS on by themselves.
    pub fn tls(mut self, options: crate::tls::TlsOptions) -> Self {
        self.tls = Some(options);
        self
    }

    // ---- when a node is down (both modes) ----

    /// What a command does when its node is down: wait for it (or, in cluster mode, for the
    /// replica that takes over) up to the deadline, or fail fast through the node's circuit
    /// breaker. Default [`DownPolicy::Wait`].
    ///
    /// ```
    /// use std::time::Duration;
    /// use shardis::{BreakerOptions, DownPolicy};
    /// let builder = shardis::Client::builder()
    ///     .cluster(["127.0.0.1:7000"])
    ///     .node_down_policy(DownPolicy::FailFast)
    ///     .circuit_breaker(BreakerOptions::new().consecutive_failures(2))
    ///     .max_waiting_per_node(256);
    /// ```
    pub fn node_down_policy(mut self, policy: DownPolicy) -> Self {
        self.settings.down_policy = policy;
        self
    }

    /// The most commands that may wait at once for one node to recover (under either
    /// [`DownPolicy`]); past it, a new command for that node fails at once with
    /// [`Error::Overloaded`]. Default 1024.
    pub fn max_waiting_per_node(mut self, commands: usize) -> Self {
        self.settings.max_waiting_per_node = commands;
        self
    }

    /// How each node's circuit breaker opens, probes and ramps traffic back (used under
    /// [`DownPolicy::FailFast`]). Default [`BreakerOptions::new`].
    pub fn circuit_breaker(mut self, options: BreakerOptions) -> Self {
        self.settings.breaker = options;
        self
    }

    /// How long a connection may owe replies without sending any before reads pass it over
    /// (default 50 ms): a read then goes over another connection to the same node (opening
    /// one spare connection per node if every other one is held up), so reads are not stuck
    /// behind writes the server holds (`CLIENT PAUSE WRITE`, a slow script).
    ///
    /// Ordering: every call returns only once its command was answered, so a caller's read
    /// issued after its own write returned sees that write, whichever connection it takes.
    /// Commands a caller has in flight at once (not awaited one by one) were never ordered;
    /// a pipeline or transaction stays on one connection, in order. A write whose caller got
    /// an error (a timeout) may still run later: a read may or may not see it.
    ///
    /// ```
    /// use std::time::Duration;
    /// let builder = shardis::Client::builder()
    ///     .cluster(["127.0.0.1:7000"])
    ///     .stalled_read_bypass(Duration::from_millis(100));
    /// ```
    pub fn stalled_read_bypass(mut self, after: Duration) -> Self {
        self.settings.read_bypass_after = after;
        self
    }

    // ---- ring mode ----

    /// Ring mode: shard keys over these standalone Redis nodes with a consistent-hash ring
    /// (no Redis Cluster needed). Defaults: native placement, no hash tag, fail-fast health
    /// policy with a `PING` heartbeat every second and 2 failures to mark a node down, no
    /// online rebalancing.
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), shardis::Error> {
    /// use shardis::RingNode;
    /// let client = shardis::Client::builder()
    ///     .ring([
    ///         RingNode::new("cache-a", "10.0.0.1:6379", 1),
    ///         RingNode::new("cache-b", "10.0.0.2:6379", 2),
    ///     ])
    ///     .ring_hash_tag(*b"{}")
    ///     .build()
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub fn ring(mut self, nodes: impl IntoIterator<Item = RingNode>) -> Self {
        let nodes: Vec<RingNode> = nodes.into_iter().collect();
        if !matches!(self.mode, Some(Mode::Ring(_))) {
            self.mode = Some(Mode::Ring(RingConfig::new(Vec::new())));
        }
        self.with_ring(|c| c.nodes = nodes)
    }

    /// How keys are placed (ring mode). Default [`RingPlacement::Native`].
    pub fn ring_placement(self, placement: RingPlacement) -> Self {
        self.with_ring(|c| c.placement = placement)
    }

    /// The key hash of ketama placement (ring mode): twemproxy's `hash:` setting, e.g.
    /// [`KeyHash::Md5`](shardis_ring::KeyHash::Md5). Default: the flavor's (`fnv1a_64` for
    /// twemproxy, MD5 for libmemcached and spymemcached). Refused by `build` with the native
    /// placement, which always hashes with xxh3. See [`RingPlacement::Ketama`].
    ///
    /// ```
    /// use shardis::{RingNode, RingPlacement, ring::{KetamaFlavor, KeyHash}};
    /// let hash: KeyHash = "murmur".parse()?; // as written in nutcracker.yml
    /// let builder = shardis::Client::builder()
    ///     .ring([RingNode::at("10.0.0.1:6379"), RingNode::at("10.0.0.2:6379")])
    ///     .ring_placement(RingPlacement::Ketama(KetamaFlavor::Twemproxy))
    ///     .ring_key_hash(hash);
    /// # Ok::<(), shardis::ring::RingError>(())
    /// ```
    pub fn ring_key_hash(self, hash: shardis_ring::KeyHash) -> Self {
        self.with_ring(|c| c.key_hash = Some(hash))
    }

    /// twemproxy's `hash_tag` (ring mode): when a key holds `tag[0]` and later `tag[1]` with
    /// something between, only that part is hashed, so `user:{42}:a` and `user:{42}:b` share a
    /// node.
    pub fn ring_hash_tag(self, tag: [u8; 2]) -> Self {
        self.with_ring(|c| c.hash_tag = Some(tag))
    }

    /// The sentinels that name the addresses of [`RingNode::sentinel`] nodes (ring mode);
    /// their credentials are [`sentinel_password`](Builder::sentinel_password) and
    /// [`sentinel_username`](Builder::sentinel_username).
    pub fn ring_sentinels<I, S>(self, sentinels: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let sentinels: Vec<String> = sentinels.into_iter().map(Into::into).collect();
        self.with_ring(|c| c.sentinels = sentinels)
    }

    /// What happens when a node fails (ring mode). Default [`HealthPolicy::FailFast`].
    pub fn ring_health(self, policy: HealthPolicy) -> Self {
        self.with_ring(|c| c.health = policy)
    }

    /// Consecutive failures (heartbeat or traffic) that mark a node down (ring mode).
    /// Default 2, as twemproxy's `server_failure_limit`.
    pub fn ring_failure_limit(self, failures: u32) -> Self {
        self.with_ring(|c| c.failure_limit = failures)
    }

    /// How often every node is sent a `PING` (ring mode). Default 1 s.
    pub fn heartbeat_interval(self, interval: Duration) -> Self {
        self.with_ring(|c| c.heartbeat_interval = interval)
    }

    /// Move keys online after each membership change (ring mode); see [`RebalanceOptions`].
    /// Off by default: keys then simply miss on their new owner and refill.
    pub fn ring_rebalance(self, options: RebalanceOptions) -> Self {
        self.with_ring(|c| c.rebalance = Some(options))
    }

    /// Ring settings given before `.ring(nodes)` are kept: they apply to an empty ring that
    /// `.ring(nodes)` then fills. Given in cluster mode, they are ignored by `build`.
    fn with_ring(mut self, f: impl FnOnce(&mut RingConfig)) -> Self {
        match &mut self.mode {
            Some(Mode::Ring(config)) => f(config),
            Some(Mode::Cluster { .. } | Mode::Replicated(_)) => {}
            None => {
                let mut config = RingConfig::new(Vec::new());
                f(&mut config);
                self.mode = Some(Mode::Ring(config));
            }
        }
        self
    }

    /// Connects and returns the client: in cluster mode, loads the slot map from the first
    /// seeds that answer and starts the background topology refresher; in ring mode, sends
    /// every node a `PING` (see [`HealthPolicy`] for a node that does not answer) and starts
    /// the heartbeat.
    ///
    /// Fails with [`Error::NoSeedReachable`] (naming every seed and what it said) when no seed
    /// gives a usable topology within the connect timeout.
    pub async fn build(self) -> Result<crate::Client> {
        crate::Client::from_builder(self).await
    }

    /// Validates, then resolves what needs resolving before connecting (TLS: files read,
    /// rustls config built, the seed name for nodes announced by IP).
    pub(crate) fn resolved(mut self) -> Result<Self> {
        self.validate()?;
        let tls = match self.tls.take() {
            Some(options) => Some(options),
            None => self.from_urls.tls()?,
        };
        if let Some(options) = tls {
            let seed_name = match &self.mode {
                Some(Mode::Cluster { seeds }) => {
                    let hosts: Vec<String> = seeds
                        .iter()
                        .filter_map(|seed| shardis_slots::Endpoint::parse(seed).ok())
                        .map(|endpoint| endpoint.host)
                        .collect();
                    crate::tls::seed_name(hosts.iter().map(String::as_str))
                }
                _ => None,
            };
            self.settings.tls = Some(options.resolve(seed_name)?);
        }
        Ok(self)
    }

    pub(crate) fn validate(&self) -> Result<()> {
        let s = &self.settings;
        let positive = [
            ("connect_timeout", s.connect_timeout),
            ("response_timeout", s.response_timeout),
            ("deadline", s.deadline),
            ("refresh_interval", s.refresh_interval),
            ("stalled_read_bypass", s.read_bypass_after),
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
        s.breaker.validate().map_err(Error::Config)?;
        if s.refresh_fanout == 0 {
            return Err(Error::Config("refresh_fanout must be at least 1".into()));
        }
        self.from_urls.check()?;
        if s.credentials_provider.is_some() && s.password.is_some() {
            return Err(Error::Config(
                "both a password and a credentials provider were given: the provider's \
                 credentials would win; give only one"
                    .into(),
            ));
        }
        if let (Some(user), None) = (&s.username, &s.password) {
            return Err(Error::Config(crate::url::username_without_password(user)));
        }
        match &self.mode {
            None => Err(Error::Config(
                "choose a deployment mode with .cluster(seeds), .ring(nodes), \
                 .replicated(primary, replicas) or .sentinel(master, sentinels)"
                    .into(),
            )),
            Some(Mode::Cluster { seeds }) if seeds.is_empty() => Err(Error::Config(
                "cluster mode needs at least one seed address".into(),
            )),
            Some(Mode::Cluster { .. }) => Ok(()),
            Some(Mode::Ring(_)) if s.read_from != ReadFrom::Primary => Err(Error::Config(
                "read_from chooses replicas of Redis Cluster shards; a ring's nodes are \
                 standalone primaries: leave read_from at ReadFrom::Primary in ring mode"
                    .into(),
            )),
            Some(Mode::Ring(config)) => {
                let mut config = config.clone();
                config.sentinel_auth = self.sentinel_auth.clone();
                config.validate()
            }
            Some(Mode::Replicated(_)) if self.hot.is_some() => Err(Error::Config(
                "hot-key copies spread reads over shards, and a primary with replicas is one \
                 shard: spread reads over the replicas with read_from(ReadFrom::PreferReplica)"
                    .into(),
            )),
            Some(Mode::Replicated(source)) => {
                if !matches!(source, crate::replicated::Source::Sentinel { .. })
                    && (self.sentinel_auth.username.is_some()
                        || self.sentinel_auth.password.is_some())
                {
                    return Err(Error::Config(
                        "sentinel credentials are for sentinel mode (.sentinel(master, sentinels))"
                            .into(),
                    ));
                }
                self.sentinel_auth.validate()?;
                source.validate()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ring_router::{HealthPolicy, RebalanceOptions, RingNode};

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
    fn seeds_may_be_urls_and_their_credentials_are_used() {
        let b = Builder::default().cluster(["redis://app:pw%21@127.0.0.1:7000", "127.0.0.1:7001"]);
        assert!(b.validate().is_ok(), "{:?}", b.validate());
        assert!(
            matches!(&b.mode, Some(Mode::Cluster { seeds }) if seeds == &["127.0.0.1:7000", "127.0.0.1:7001"])
        );
        assert_eq!(b.settings.username.as_deref(), Some("app"));
        assert_eq!(
            b.settings.password.as_ref().map(Secret::expose),
            Some("pw!")
        );
        let shown = format!("{b:?}");
        assert!(!shown.contains("pw!"), "{shown}");
        let b = Builder::default().cluster_urls(["redis://[::1]:7000/0?protocol=resp2"]);
        assert!(b.validate().is_ok());
        assert!(matches!(&b.mode, Some(Mode::Cluster { seeds }) if seeds == &["[::1]:7000"]));
    }

    #[test]
    fn refuses_urls_it_cannot_honour_with_a_sentence() {
        let err = |b: Builder| match b.validate() {
            Err(Error::Config(message)) => message,
            other => panic!("expected a config error, got {other:?}"),
        };
        let tls = Builder::default().cluster(["rediss://:tok3n@cache.example.com:6379"]);
        assert!(tls.validate().is_ok());
        let mixed = err(Builder::default().cluster([
            "rediss://:tok3n@cache.example.com:6379",
            "redis://:tok3n@cache.example.com:6380",
        ]));
        assert!(
            mixed.contains("rediss://") && !mixed.contains("tok3n"),
            "{mixed}"
        );
        let user = err(Builder::default().cluster(["redis://app@127.0.0.1:7000"]));
        assert!(
            user.contains("without a password") && user.contains("give both"),
            "{user}"
        );
        let user = err(Builder::default()
            .cluster(["127.0.0.1:7000"])
            .username("app"));
        assert!(user.contains("without a password"), "{user}");
        let db = err(Builder::default().cluster(["redis://127.0.0.1:7000/2"]));
        assert!(db.contains("database 2"), "{db}");
        let two = err(Builder::default().cluster(["redis://:a@h:1", "redis://:b@h:2"]));
        assert!(two.contains("different credentials"), "{two}");
        let bad = err(Builder::default().cluster(["redis://:hunter2@h:1?retries=3"]));
        assert!(
            bad.contains("unknown option") && !bad.contains("hunter2"),
            "{bad}"
        );
    }

    #[test]
    fn tls_from_urls_or_options_and_the_seed_name_for_ip_nodes() {
        let names = |b: Builder| b.resolved().unwrap().settings.tls.unwrap().names;
        // Nodes announced by IP are checked against the first seed given by name.
        let named = names(
            Builder::default()
                .cluster(["10.0.0.9:6379", "clustercfg.cache.example.com:6379"])
                .tls(crate::TlsOptions::new()),
        );
        assert_eq!(
            named.seed_name.as_deref(),
            Some("clustercfg.cache.example.com")
        );
        let off = names(
            Builder::default()
                .cluster(["clustercfg.cache.example.com:6379"])
                .tls(crate::TlsOptions::new().verify_ip_nodes_as_seed(false)),
        );
        assert_eq!(off.seed_name, None);
        // rediss:// turns TLS on by itself; redis:// leaves it off.
        let url = Builder::default().cluster(["rediss://:t@cache.example.com:6379"]);
        assert!(url.resolved().unwrap().settings.tls.is_some());
        let plain = Builder::default().cluster(["redis://:t@cache.example.com:6379"]);
        assert!(plain.resolved().unwrap().settings.tls.is_none());
        // Ring nodes are checked against their own hosts.
        let ring = names(
            Builder::default()
                .ring([RingNode::at("cache-a.example.com:6379")])
                .tls(crate::TlsOptions::new()),
        );
        assert_eq!(ring.seed_name, None);
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

    #[test]
    fn replicated_and_sentinel_settings_are_checked_before_connecting() {
        let err = |b: Builder| match b.validate() {
            Err(Error::Config(message)) => message,
            other => panic!("expected a config error, got {other:?}"),
        };
        let none: [&str; 0] = [];
        assert!(
            Builder::default()
                .replicated("127.0.0.1:6379", ["127.0.0.1:6380"])
                .read_from(ReadFrom::PreferReplica)
                .validate()
                .is_ok()
        );
        assert!(err(Builder::default().replicated("no-port", none)).contains("not host:port"));
        assert!(err(Builder::default().sentinel("m", none)).contains("at least one sentinel"));
        assert!(err(Builder::default().sentinel("", ["127.0.0.1:26379"])).contains("empty"));
        let user = Builder::default()
            .sentinel("m", ["127.0.0.1:26379"])
            .sentinel_username("watcher");
        assert!(err(user).contains("without a password"));
        let misplaced = Builder::default()
            .replicated("127.0.0.1:6379", none)
            .sentinel_password("pw");
        assert!(err(misplaced).contains("sentinel mode"));
        let hot = Builder::default()
            .replicated("127.0.0.1:6379", none)
            .hot_keys(crate::HotKeyOptions::default());
        assert!(err(hot).contains("one shard"));
        let ring = Builder::default().ring([RingNode::sentinel("cache-a", 1)]);
        assert!(err(ring).contains("ring_sentinels"));
        let ring = Builder::default()
            .ring([
                RingNode::sentinel("cache-a", 1),
                RingNode::sentinel("cache-b", 1),
            ])
            .ring_sentinels(["127.0.0.1:26379"]);
        assert!(ring.validate().is_ok());
        let shown = format!(
            "{:?}",
            Builder::default()
                .sentinel("m", ["127.0.0.1:26379"])
                .sentinel_password("s3nt1nel")
        );
        assert!(!shown.contains("s3nt1nel"), "{shown}");
    }

    fn ring_config(builder: &Builder) -> &RingConfig {
        match &builder.mode {
            Some(Mode::Ring(config)) => config,
            other => panic!("not ring mode: {other:?}"),
        }
    }

    #[test]
    fn settings_given_before_or_after_the_nodes_are_kept() {
        let builder = Builder::default()
            .ring_hash_tag(*b"{}")
            .ring([RingNode::at("127.0.0.1:7000")])
            .ring_failure_limit(5);
        let config = ring_config(&builder);
        assert_eq!(config.hash_tag, Some(*b"{}"));
        assert_eq!(config.failure_limit, 5);
        assert_eq!(config.nodes.len(), 1);
        assert!(builder.validate().is_ok());
    }

    #[test]
    fn rejects_what_cannot_work() {
        let err = |builder: Builder| match builder.validate() {
            Err(Error::Config(message)) => message,
            other => panic!("expected a config error, got {other:?}"),
        };
        let none: [RingNode; 0] = [];
        assert!(err(Builder::default().ring(none)).contains("at least one node"));
        let dup = [
            RingNode::new("a", "127.0.0.1:1", 1),
            RingNode::new("a", "127.0.0.1:2", 1),
        ];
        assert!(err(Builder::default().ring(dup)).contains("duplicate"));
        let same_addr = [
            RingNode::new("a", "127.0.0.1:1", 1),
            RingNode::new("b", "127.0.0.1:1", 1),
        ];
        assert!(err(Builder::default().ring(same_addr)).contains("used by another node"));
        let zero = [RingNode::new("a", "127.0.0.1:1", 0)];
        assert!(err(Builder::default().ring(zero)).contains("weight 0"));
        let one = || Builder::default().ring([RingNode::at("127.0.0.1:1")]);
        assert!(err(one().heartbeat_interval(Duration::ZERO)).contains("heartbeat"));
        let eject = HealthPolicy::Eject {
            retry_timeout: Duration::ZERO,
        };
        assert!(err(one().ring_health(eject)).contains("retry_timeout"));
        let rebalance = RebalanceOptions::new().keys_per_second(0);
        assert!(err(one().ring_rebalance(rebalance)).contains("keys_per_second"));
        let native = one().ring_key_hash(shardis_ring::KeyHash::Md5);
        assert!(err(native).contains("ketama placement only"));
        let ketama = one()
            .ring_placement(RingPlacement::Ketama(shardis_ring::KetamaFlavor::Twemproxy))
            .ring_key_hash(shardis_ring::KeyHash::Md5);
        assert!(ketama.validate().is_ok());
    }
}
