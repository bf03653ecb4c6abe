//! Ring-mode configuration: the nodes, how keys are placed, what happens when a node fails,
//! and how keys move after a membership change. The builder methods live here too, so the
//! whole ring surface of [`Builder`](crate::Builder) is in one place.

use std::collections::HashSet;
use std::time::Duration;

use shardis_ring::KetamaFlavor;
use shardis_slots::Endpoint;

use crate::config::Mode;
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
}

impl RingNode {
    /// A node called `name` at `addr` (`host:port`) with `weight` (at least 1).
    pub fn new(name: impl Into<String>, addr: impl Into<String>, weight: u32) -> Self {
        RingNode {
            name: name.into(),
            addr: addr.into(),
            weight,
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

    /// The address the client connects to.
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
    /// MD5 ketama, bit for bit as the given implementation places keys, to share a fleet
    /// with it. The node name is what that implementation hashes: for
    /// [`KetamaFlavor::Twemproxy`] the server's name in `nutcracker.yml` (or `host:port` when
    /// it has none); for [`KetamaFlavor::Libmemcached`] and [`KetamaFlavor::Spymemcached`]
    /// `host` or `host:port` as configured there (port 11211 when omitted).
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
    #[default]
    FailFast,
    /// twemproxy's `auto_eject_hosts`: a down node leaves the ring and its keys go to the next
    /// node clockwise (as misses that refill); after `retry_timeout`, once a `PING` succeeds,
    /// it is re-admitted and every key maps where it did before. A node unreachable at
    /// start-up starts ejected.
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
    pub hash_tag: Option<[u8; 2]>,
    pub health: HealthPolicy,
    pub failure_limit: u32,
    pub heartbeat_interval: Duration,
    pub rebalance: Option<RebalanceOptions>,
}

impl RingConfig {
    fn new(nodes: Vec<RingNode>) -> Self {
        RingConfig {
            nodes,
            placement: RingPlacement::Native,
            hash_tag: None,
            health: HealthPolicy::FailFast,
            // twemproxy's server_failure_limit default.
            failure_limit: 2,
            heartbeat_interval: Duration::from_secs(1),
            rebalance: None,
        }
    }

    /// Rejects what cannot work, naming the offending node.
    pub fn validate(&self) -> Result<()> {
        if self.nodes.is_empty() {
            return Err(Error::Config("ring mode needs at least one node".into()));
        }
        validate_nodes(&self.nodes)?;
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

impl crate::Builder {
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

    /// twemproxy's `hash_tag` (ring mode): when a key holds `tag[0]` and later `tag[1]` with
    /// something between, only that part is hashed, so `user:{42}:a` and `user:{42}:b` share a
    /// node.
    pub fn ring_hash_tag(self, tag: [u8; 2]) -> Self {
        self.with_ring(|c| c.hash_tag = Some(tag))
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
            Some(Mode::Cluster { .. }) => {}
            None => {
                let mut config = RingConfig::new(Vec::new());
                f(&mut config);
                self.mode = Some(Mode::Ring(config));
            }
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Builder;

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
    }
}
