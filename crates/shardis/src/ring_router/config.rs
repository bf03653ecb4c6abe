//! Ring-mode configuration: the nodes, how keys are placed, what happens when a node fails,
//! and how keys move after a membership change. The builder methods are in
//! [`Builder`](crate::Builder), with every other one.

use std::collections::HashSet;
use std::time::Duration;

use shardis_ring::{KetamaFlavor, KeyHash};
use shardis_slots::Endpoint;

use crate::error::{Error, Result};

/// One standalone Redis node of a ring: a unique name (what the ring hashes), the address the
/// client connects to, and a weight (a node of weight 2 gets twice the keys of weight 1).
///
/// The name and the address are independent, so a node can move to a new address without
/// moving any key, and a ketama ring can keep the names an existing twemproxy or libmemcached
/// fleet hashes (see [`RingPlacement::Ketama`]).
///
/// ```
/// let node = shardis::RingNode::new("cache-a", "10.0.0.1:6379", 1);
/// assert_eq!(node.name(), "cache-a");
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RingNode {
    pub(crate) name: String,
    pub(crate) addr: String,
    pub(crate) weight: u32,
    /// Its address is the master `name` of the ring's sentinels
    /// ([`Builder::ring_sentinels`](crate::Builder::ring_sentinels)).
    pub(crate) sentinel: bool,
}

impl RingNode {
    /// A node called `name` at `addr` (`host:port`) with `weight` (at least 1).
    pub fn new(name: impl Into<String>, addr: impl Into<String>, weight: u32) -> Self {
        RingNode {
            name: name.into(),
            addr: addr.into(),
            weight,
            sentinel: false,
        }
    }

    /// A node whose address Redis Sentinel gives: the primary of the master `master_name`
    /// that the ring's sentinels ([`Builder::ring_sentinels`](crate::Builder::ring_sentinels))
    /// watch. The ring hashes the master name, so a failover moves no key: the client asks
    /// the sentinels at start, follows their `+switch-master` announcements and asks again
    /// when the node fails.
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), shardis::Error> {
    /// use shardis::RingNode;
    /// let client = shardis::Client::builder()
    ///     .ring([RingNode::sentinel("cache-a", 1), RingNode::sentinel("cache-b", 1)])
    ///     .ring_sentinels(["10.0.0.1:26379", "10.0.0.2:26379", "10.0.0.3:26379"])
    ///     .build()
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub fn sentinel(master_name: impl Into<String>, weight: u32) -> Self {
        RingNode {
            name: master_name.into(),
            addr: String::new(),
            weight,
            sentinel: true,
        }
    }

    /// A node named after its address, with weight 1.
    ///
    /// ```
    /// let node = shardis::RingNode::at("127.0.0.1:6379");
    /// assert_eq!((node.name(), node.weight()), ("127.0.0.1:6379", 1));
    /// ```
    pub fn at(addr: impl Into<String>) -> Self {
        let addr = addr.into();
        RingNode::new(addr.clone(), addr, 1)
    }

    /// The node's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The address the client connects to (empty for a [`RingNode::sentinel`] node until
    /// the sentinels named it).
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// The node's weight.
    pub fn weight(&self) -> u32 {
        self.weight
    }
}

/// How keys are placed on the ring.
///
/// ```
/// use shardis::{RingPlacement, ring::KetamaFlavor};
/// assert_eq!(RingPlacement::default(), RingPlacement::Native);
/// let _compatible = RingPlacement::Ketama(KetamaFlavor::Twemproxy);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum RingPlacement {
    /// shardis' own ring: xxh3-64, 160 points per unit of weight, lookups in O(1).
    #[default]
    Native,
    /// MD5-point ketama, bit for bit as the given implementation places keys, to share a
    /// fleet with it. The key hash is the flavor's default (`fnv1a_64` for twemproxy, MD5
    /// otherwise) unless [`Builder::ring_key_hash`](crate::Builder::ring_key_hash) names
    /// another: set it to the pool's `hash:`.
    ///
    /// The node name is what that implementation hashes:
    /// - [`KetamaFlavor::Twemproxy`]: the server's name in `nutcracker.yml`; for a server
    ///   without a name, its `host:port` as written there ([`RingNode::at`]), which is hashed
    ///   as twemproxy does: `host` alone when the port is 11211, else `host:port`.
    /// - [`KetamaFlavor::Libmemcached`] and [`KetamaFlavor::Spymemcached`]: `host` or
    ///   `host:port` as configured there (port 11211 when omitted).
    ///
    /// ```
    /// use shardis::{RingNode, RingPlacement, ring::{KetamaFlavor, KeyHash}};
    ///
    /// // nutcracker.yml: `hash: md5`, `hash_tag: "{}"`, servers
    /// // `10.0.0.1:6379:1 cache-a` and `10.0.0.2:6379:1` (unnamed).
    /// let builder = shardis::Client::builder()
    ///     .ring([
    ///         RingNode::new("cache-a", "10.0.0.1:6379", 1),
    ///         RingNode::at("10.0.0.2:6379"),
    ///     ])
    ///     .ring_placement(RingPlacement::Ketama(KetamaFlavor::Twemproxy))
    ///     .ring_key_hash(KeyHash::Md5)
    ///     .ring_hash_tag(*b"{}");
    /// ```
    Ketama(KetamaFlavor),
}

/// What the client does when a node stops answering.
///
/// A node is *down* after [`failure_limit`](crate::Builder::ring_failure_limit) consecutive
/// failures, seen by the heartbeat (`PING`) or by live traffic.
///
/// ```
/// use std::time::Duration;
/// use shardis::HealthPolicy;
/// assert_eq!(HealthPolicy::default(), HealthPolicy::FailFast);
/// let _twemproxy_like = HealthPolicy::Eject { retry_timeout: Duration::from_secs(30) };
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum HealthPolicy {
    /// Commands for a down node fail at once with [`Error::NodeDown`]; no key moves. The
    /// node is back as soon as a heartbeat `PING` succeeds. Every node must answer at
    /// start-up.
    ///
    /// With [`DownPolicy::FailFast`](crate::DownPolicy::FailFast) the node's circuit breaker
    /// replaces this marking: a failing node's commands get
    /// [`Error::CircuitOpen`](crate::Error::CircuitOpen) (naming the node and when it probes),
    /// as in cluster mode, and traffic comes back through the breaker's `PING` probe and ramp.
    /// (Under [`Eject`](Self::Eject) the breaker works beside the ejection: it fails the node's
    /// commands fast until the node is ejected, and ramps its traffic back after it is
    /// re-admitted. Ejection stays a decision of its own, because it moves keys and, on
    /// re-admission, empties the node.)
    #[default]
    FailFast,
    /// twemproxy's `auto_eject_hosts`: a down node leaves the ring and its keys go to the next
    /// node clockwise (as misses that refill); after `retry_timeout`, once a `PING` succeeds,
    /// it is re-admitted and every key maps where it did before. A node unreachable at
    /// start-up starts ejected.
    ///
    /// **Never back in time.** What the node held before it was ejected is older than what its
    /// stand-ins served meanwhile, so it is emptied (`FLUSHDB`) before it is re-admitted: its
    /// keys read as misses and refill (a node that cannot be emptied stays ejected). Once the
    /// commands routed before the re-admission have ended (the deadline), the copies the
    /// stand-ins kept are removed, and a later rebalance removes, never restores, a key found on
    /// a node that did not own it. So a read never returns a value older than a write this
    /// client saw acknowledged, nor a key it saw deleted. The guarantee is per client: clients
    /// that disagree about which nodes are ejected write to different nodes, as with any
    /// client-side ring. A ring node must therefore hold only this ring's keys.
    Eject {
        /// How long an ejected node stays out before it is probed again.
        retry_timeout: Duration,
    },
}

/// Online rebalancing after a membership change: keys whose owner changed are moved
/// (`DUMP`/`PTTL` → `RESTORE` without `REPLACE` → `UNLINK` on the old owner), at most
/// `keys_per_second`, while reads that miss on the new owner fall back to the old one.
///
/// ```
/// let options = shardis::RebalanceOptions::new().keys_per_second(20_000).scan_count(500);
/// assert_eq!(options.rate(), 20_000);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RebalanceOptions {
    pub(crate) keys_per_second: u32,
    pub(crate) scan_count: u32,
    pub(crate) concurrency: usize,
}

impl Default for RebalanceOptions {
    fn default() -> Self {
        RebalanceOptions {
            keys_per_second: 10_000,
            scan_count: 200,
            concurrency: 16,
        }
    }
}

impl RebalanceOptions {
    /// Defaults: 10,000 keys per second, `SCAN ... COUNT 200`, 16 keys in flight.
    pub fn new() -> Self {
        Self::default()
    }

    /// The most keys moved per second (at least 1).
    pub fn keys_per_second(mut self, rate: u32) -> Self {
        self.keys_per_second = rate;
        self
    }

    /// The `COUNT` hint of each `SCAN` of an old owner.
    pub fn scan_count(mut self, count: u32) -> Self {
        self.scan_count = count;
        self
    }

    /// How many keys are moved at once.
    pub fn concurrency(mut self, keys: usize) -> Self {
        self.concurrency = keys;
        self
    }

    /// The configured rate, in keys per second.
    pub fn rate(&self) -> u32 {
        self.keys_per_second
    }
}

/// The ring-mode settings collected by the builder.
#[derive(Clone, Debug)]
pub(crate) struct RingConfig {
    pub nodes: Vec<RingNode>,
    pub placement: RingPlacement,
    /// The ketama key hash; `None` is the flavor's default.
    pub key_hash: Option<KeyHash>,
    pub hash_tag: Option<[u8; 2]>,
    pub health: HealthPolicy,
    pub failure_limit: u32,
    pub heartbeat_interval: Duration,
    pub rebalance: Option<RebalanceOptions>,
    /// The sentinels that name the addresses of [`RingNode::sentinel`] nodes.
    pub sentinels: Vec<String>,
    pub sentinel_auth: crate::replicated::SentinelAuth,
}

impl RingConfig {
    pub(crate) fn new(nodes: Vec<RingNode>) -> Self {
        RingConfig {
            nodes,
            placement: RingPlacement::Native,
            key_hash: None,
            hash_tag: None,
            health: HealthPolicy::FailFast,
            // twemproxy's server_failure_limit default.
            failure_limit: 2,
            heartbeat_interval: Duration::from_secs(1),
            rebalance: None,
            sentinels: Vec::new(),
            sentinel_auth: Default::default(),
        }
    }

    /// Rejects what cannot work, naming the offending node.
    pub fn validate(&self) -> Result<()> {
        if self.nodes.is_empty() {
            return Err(Error::Config("ring mode needs at least one node".into()));
        }
        validate_nodes(&self.nodes)?;
        if let Some(node) = self.nodes.iter().find(|n| n.sentinel)
            && self.sentinels.is_empty()
        {
            return Err(Error::Config(format!(
                "ring node {:?} is named by Sentinel: give the sentinels' addresses with \
                 .ring_sentinels([...])",
                node.name
            )));
        }
        for sentinel in &self.sentinels {
            Endpoint::parse(sentinel).map_err(|e| {
                Error::Config(format!("sentinel {sentinel:?} is not host:port: {e}"))
            })?;
        }
        self.sentinel_auth.validate()?;
        if let (Some(hash), RingPlacement::Native) = (self.key_hash, self.placement) {
            return Err(Error::Config(format!(
                "ring_key_hash({hash}) applies to ketama placement only: add \
                 .ring_placement(RingPlacement::Ketama(KetamaFlavor::Twemproxy)), or remove it \
                 (the native ring always hashes keys with xxh3)"
            )));
        }
        if self.failure_limit == 0 {
            return Err(Error::Config(
                "ring_failure_limit must be at least 1".into(),
            ));
        }
        if self.heartbeat_interval.is_zero() {
            return Err(Error::Config(
                "heartbeat_interval must be greater than zero".into(),
            ));
        }
        if let HealthPolicy::Eject { retry_timeout } = self.health
            && retry_timeout.is_zero()
        {
            return Err(Error::Config(
                "the eject policy's retry_timeout must be greater than zero".into(),
            ));
        }
        if let Some(r) = &self.rebalance
            && (r.keys_per_second == 0 || r.scan_count == 0 || r.concurrency == 0)
        {
            return Err(Error::Config(
                "rebalance keys_per_second, scan_count and concurrency must be at least 1".into(),
            ));
        }
        Ok(())
    }
}

/// Unique names, unique addresses that parse, weights of at least 1.
pub(crate) fn validate_nodes(nodes: &[RingNode]) -> Result<()> {
    let mut names = HashSet::new();
    let mut addrs = HashSet::new();
    for node in nodes {
        if node.name.is_empty() {
            return Err(Error::Config(format!(
                "ring node at {} has an empty name",
                node.addr
            )));
        }
        if node.weight == 0 {
            return Err(Error::Config(format!(
                "ring node {:?} has weight 0; remove it instead",
                node.name
            )));
        }
        if !names.insert(node.name.as_str()) {
            return Err(Error::Config(format!(
                "duplicate ring node name {:?}",
                node.name
            )));
        }
        if node.sentinel && node.addr.is_empty() {
            // Named by the sentinels at start.
            continue;
        }
        let endpoint = parse_addr(node)?;
        if !addrs.insert(endpoint) {
            return Err(Error::Config(format!(
                "ring node {:?}: address {} is used by another node",
                node.name, node.addr
            )));
        }
    }
    Ok(())
}

pub(crate) fn parse_addr(node: &RingNode) -> Result<Endpoint> {
    Endpoint::parse(&node.addr).map_err(|e| {
        Error::Config(format!(
            "ring node {:?}: address {:?} is not host:port: {e}",
            node.name, node.addr
        ))
    })
}
