//! A cluster node as one of the topology replies describes it.

use crate::endpoint::Endpoint;

/// Whether a node serves a shard's slots or replicates them.
///
/// ```
/// assert_ne!(shardis_slots::Role::Primary, shardis_slots::Role::Replica);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    /// Owns the shard's slots and accepts writes.
    Primary,
    /// Replicates a primary; serves reads after `READONLY`.
    Replica,
}

/// Node health as reported by the answering node.
///
/// Only CLUSTER SHARDS (`health` field) and CLUSTER NODES (`fail`/`fail?`
/// flags) carry health. CLUSTER SLOTS does not, so its nodes are `Unknown`;
/// note that SLOTS already hides failed and unsynced replicas. Treat `Failed`
/// and `Loading` as unusable and everything else as usable.
///
/// ```
/// use shardis_slots::Health;
/// assert!(Health::Unknown.is_usable() && !Health::Failed.is_usable());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Health {
    /// SHARDS `online`, or NODES without a fail flag.
    Online,
    /// SHARDS `fail` (or the documented `failed`), or the NODES `fail` flag.
    Failed,
    /// SHARDS `loading`: the replica is loading its dataset.
    Loading,
    /// Not reported (SLOTS), suspected only (NODES `fail?`), or an unknown
    /// SHARDS value (tolerated for forward compatibility).
    Unknown,
}

impl Health {
    /// `false` for `Failed` and `Loading`.
    ///
    /// ```
    /// assert!(!shardis_slots::Health::Loading.is_usable());
    /// ```
    pub fn is_usable(self) -> bool {
        !matches!(self, Health::Failed | Health::Loading)
    }
}

/// One node of a shard.
///
/// `endpoint` is where to connect, in the answering node's preferred form
/// (IP, or hostname under `cluster-preferred-endpoint-type hostname`; the
/// same form MOVED uses). It is `None` when the address is unknown (`"?"` with
/// no usable `ip` metadata, port 0, `noaddr`): such a node is unusable, and a
/// primary without endpoint is never replaced by one of its replicas.
///
/// ```
/// use shardis_slots::{Endpoint, Node};
/// let n = Node::primary(Endpoint::new("127.0.0.1", 7000));
/// assert!(n.id.is_none() && n.endpoint.is_some());
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Node {
    /// The 40-hex-digit node id, if the reply carries one.
    pub id: Option<String>,
    /// Where to connect; `None` = unknown endpoint (unusable).
    pub endpoint: Option<Endpoint>,
    /// The node's IP, when the reply gives it separately (metadata `ip`,
    /// SHARDS `ip`, the NODES address). Never empty.
    pub ip: Option<String>,
    /// The announced hostname, if any. Never empty and never `"?"`.
    pub hostname: Option<String>,
    /// Primary or replica.
    pub role: Role,
    /// Health as reported.
    pub health: Health,
}

impl Node {
    /// A primary known only by endpoint (no id, health `Unknown`).
    ///
    /// ```
    /// let n = shardis_slots::Node::primary(shardis_slots::Endpoint::new("h", 1));
    /// assert_eq!(n.role, shardis_slots::Role::Primary);
    /// ```
    pub fn primary(endpoint: Endpoint) -> Node {
        Node {
            id: None,
            endpoint: Some(endpoint),
            ip: None,
            hostname: None,
            role: Role::Primary,
            health: Health::Unknown,
        }
    }

    /// A replica known only by endpoint (no id, health `Unknown`).
    ///
    /// ```
    /// let n = shardis_slots::Node::replica(shardis_slots::Endpoint::new("h", 2));
    /// assert_eq!(n.role, shardis_slots::Role::Replica);
    /// ```
    pub fn replica(endpoint: Endpoint) -> Node {
        Node {
            role: Role::Replica,
            ..Node::primary(endpoint)
        }
    }

    /// Sets the node id (builder style).
    ///
    /// ```
    /// let n = shardis_slots::Node::primary(shardis_slots::Endpoint::new("h", 1)).with_id("abc");
    /// assert_eq!(n.id.as_deref(), Some("abc"));
    /// ```
    pub fn with_id(mut self, id: impl Into<String>) -> Node {
        self.id = Some(id.into());
        self
    }

    /// Whether `endpoint` addresses this node: its endpoint, or its `ip` /
    /// `hostname` with the endpoint's port (a MOVED may name the node in a
    /// different style than the map was built with).
    ///
    /// ```
    /// use shardis_slots::{Endpoint, Node};
    /// let mut n = Node::primary(Endpoint::new("node3.test", 32003));
    /// n.ip = Some("127.0.0.1".into());
    /// assert!(n.answers_to(&Endpoint::new("127.0.0.1", 32003)));
    /// assert!(!n.answers_to(&Endpoint::new("127.0.0.1", 32004)));
    /// ```
    pub fn answers_to(&self, endpoint: &Endpoint) -> bool {
        let Some(own) = &self.endpoint else {
            return false;
        };
        own.port == endpoint.port
            && (own.host == endpoint.host
                || self.ip.as_deref() == Some(endpoint.host.as_str())
                || self.hostname.as_deref() == Some(endpoint.host.as_str()))
    }

    /// The identity used for consensus and grouping: the id when known, else
    /// the endpoint (so views differing only in endpoint style agree).
    pub(crate) fn identity(&self) -> Identity<'_> {
        match (&self.id, &self.endpoint) {
            (Some(id), _) => Identity::Id(id),
            (None, Some(ep)) => Identity::Endpoint(ep),
            (None, None) => Identity::Unknown,
        }
    }
}

/// See [`Node::identity`]. Ordered so that replica lists sort canonically.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum Identity<'a> {
    Id(&'a str),
    Endpoint(&'a Endpoint),
    Unknown,
}

impl std::fmt::Display for Identity<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Identity::Id(id) => f.write_str(id),
            Identity::Endpoint(ep) => write!(f, "{ep}"),
            Identity::Unknown => f.write_str("?"),
        }
    }
}
