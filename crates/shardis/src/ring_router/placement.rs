//! Which node owns a key: the two ring kinds behind one small enum, and the immutable routing
//! table (ring + the node each ring index stands for) that snapshots are made of.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Instant;

use shardis_ring::hash::hash_tag;
use shardis_ring::{KetamaRing, KetamaServer, Ring, RingError};
use shardis_slots::Endpoint;

use super::config::{RingConfig, RingNode, RingPlacement};
use crate::error::{Error, Result};
use crate::net::Node;

/// Health of one node, shared by every routing table the node appears in, so that ejecting
/// or re-admitting it never loses its failure count.
#[derive(Debug, Default)]
pub(crate) struct Health {
    /// Consecutive failures; reset by any success.
    pub failures: AtomicU32,
    /// Marked down (fail-fast) or ejected (eject policy).
    pub down: AtomicBool,
    pub down_since: parking_lot::Mutex<Option<Instant>>,
}

impl Health {
    pub fn is_down(&self) -> bool {
        self.down.load(Ordering::Relaxed)
    }
}

/// A ring member: its configuration, its connections and its health.
pub(crate) struct Member {
    pub node: RingNode,
    pub server: Arc<Node>,
    pub health: Arc<Health>,
}

impl Member {
    pub fn name(&self) -> &str {
        &self.node.name
    }
}

/// The two ring kinds, answering one question: which ring index owns this key.
pub(crate) enum RingKind {
    /// Native ring; the hash tag is applied here (the native ring hashes whole keys).
    Native { ring: Ring, tag: Option<[u8; 2]> },
    /// Ketama ring; it applies the hash tag itself, as twemproxy does.
    Ketama(KetamaRing),
}

impl RingKind {
    fn build(config: &RingConfig, nodes: &[&RingNode]) -> Result<Self> {
        let ring_err = |e: RingError| Error::Config(format!("ring: {e}"));
        let tag = config.hash_tag;
        match config.placement {
            RingPlacement::Native => {
                let ring = Ring::new(nodes.iter().map(|n| (n.name.clone(), n.weight)))
                    .map_err(ring_err)?;
                Ok(RingKind::Native { ring, tag })
            }
            RingPlacement::Ketama(flavor) => {
                let mut builder = KetamaRing::builder(flavor);
                if let Some(hash) = config.key_hash {
                    builder = builder.key_hash(hash);
                }
                if let Some(tag) = tag {
                    builder = builder.hash_tag(tag);
                }
                let ring = builder
                    .servers(nodes.iter().map(|n| ketama_server(n)))
                    .build()
                    .map_err(ring_err)?;
                Ok(RingKind::Ketama(ring))
            }
        }
    }

    /// The ring index owning `key`.
    #[inline]
    fn index(&self, key: &[u8]) -> usize {
        match self {
            RingKind::Native { ring, tag } => {
                let hashed = match tag {
                    Some(tag) => hash_tag(key, *tag),
                    None => key,
                };
                ring.get_index(hashed)
            }
            RingKind::Ketama(ring) => ring.get_index(key),
        }
    }

    /// The ring index of node `name`.
    fn index_of(&self, name: &str, members: &[Arc<Member>]) -> Option<usize> {
        match self {
            RingKind::Native { ring, .. } => ring.index_of(name),
            // Ketama keeps configuration order, which is the member order.
            RingKind::Ketama(_) => members.iter().position(|m| m.name() == name),
        }
    }
}

/// The ketama server for a node. The ring hashes the node's name, never its real address.
/// A name of the form `host:port` stands for a server without an explicit name, whose hashed
/// name each flavor derives from `host` and `port` (for libmemcached and twemproxy: `host`
/// alone on port 11211, else `host:port`); any other name is twemproxy's explicit server name
/// (and, for libmemcached and spymemcached, a host on port 11211).
fn ketama_server(node: &RingNode) -> KetamaServer {
    match Endpoint::parse(&node.name) {
        Ok(at) if !at.host.is_empty() && !at.host.contains(':') => {
            KetamaServer::new(at.host, at.port, node.weight)
        }
        _ => KetamaServer::new(node.name.clone(), 11211, node.weight).with_name(node.name.clone()),
    }
}

/// An immutable routing table: a ring and, for each ring index, the member it stands for.
pub(crate) struct RingTable {
    kind: RingKind,
    /// Aligned with the ring's indices.
    members: Vec<Arc<Member>>,
}

impl RingTable {
    /// A table over `members` (any order); fails on what the ring rejects.
    pub fn build(config: &RingConfig, members: Vec<Arc<Member>>) -> Result<RingTable> {
        let nodes: Vec<&RingNode> = members.iter().map(|m| &m.node).collect();
        let ring = RingKind::build(config, &nodes)?;
        let mut aligned: Vec<Option<Arc<Member>>> = vec![None; members.len()];
        for member in &members {
            if let Some(i) = ring.index_of(member.name(), &members)
                && let Some(slot) = aligned.get_mut(i)
            {
                *slot = Some(member.clone());
            }
        }
        let members: Option<Vec<Arc<Member>>> = aligned.into_iter().collect();
        let members = members.ok_or_else(|| {
            Error::Config("ring: a node is missing from the ring it was built into".into())
        })?;
        Ok(RingTable {
            kind: ring,
            members,
        })
    }

    /// The member that owns `key`.
    #[inline]
    pub fn owner(&self, key: &[u8]) -> &Arc<Member> {
        &self.members[self.owner_index(key)]
    }

    /// The index (in [`RingTable::members`]) of the member that owns `key`.
    #[inline]
    pub fn owner_index(&self, key: &[u8]) -> usize {
        // The ring only returns indices of its own nodes, all of which are in `members`.
        self.kind.index(key).min(self.members.len() - 1)
    }

    /// Every member, in ring order.
    pub fn members(&self) -> &[Arc<Member>] {
        &self.members
    }

    pub fn member(&self, name: &str) -> Option<&Arc<Member>> {
        self.members.iter().find(|m| m.name() == name)
    }

    /// The exact fraction of the key space whose owner differs between `self` and `next`.
    pub fn moved_fraction(&self, next: &RingTable) -> f64 {
        match (&self.kind, &next.kind) {
            (RingKind::Native { ring: a, .. }, RingKind::Native { ring: b, .. }) => {
                shardis_ring::moved_fraction(a, b)
            }
            (RingKind::Ketama(a), RingKind::Ketama(b)) => KetamaRing::moved_fraction(a, b),
            _ => 1.0,
        }
    }

    /// The exact share of the key space owned by `name` (0 when absent).
    pub fn share(&self, name: &str) -> f64 {
        match &self.kind {
            RingKind::Native { ring, .. } => ring.share(name).unwrap_or(0.0),
            RingKind::Ketama(ring) => {
                let Some(i) = self.members.iter().position(|m| m.name() == name) else {
                    return 0.0;
                };
                let arcs = ring.arc_lengths();
                arcs.get(i).map_or(0.0, |&a| a as f64 / (1u64 << 32) as f64)
            }
        }
    }
}

impl crate::hot::CopyPlacement for RingTable {
    fn shards(&self) -> usize {
        self.members.len()
    }

    fn copy_names(&self, key: &[u8], n: usize, salt: u32) -> Vec<Vec<u8>> {
        shardis_hotkey::salted_copies(key, n, salt, |name| Some(self.owner_index(name)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ketama_names_follow_the_flavor_rules() {
        use shardis_ring::KetamaFlavor;
        let s = ketama_server(&RingNode::new("10.0.1.1", "127.0.0.1:7000", 600));
        assert_eq!((s.host.as_str(), s.port), ("10.0.1.1", 11211));
        assert_eq!(KetamaFlavor::Libmemcached.server_name(&s), "10.0.1.1");
        let s = ketama_server(&RingNode::new("10.0.1.1:6379", "127.0.0.1:7000", 1));
        assert_eq!(KetamaFlavor::Libmemcached.server_name(&s), "10.0.1.1:6379");
        assert_eq!(KetamaFlavor::Spymemcached.server_name(&s), "/10.0.1.1:6379");
        let s = ketama_server(&RingNode::new("cache-1", "127.0.0.1:7000", 1));
        assert_eq!(KetamaFlavor::Twemproxy.server_name(&s), "cache-1");
        // A twemproxy server without a name: `host` alone on 11211 (as a real nutcracker
        // hashes it; see shardis-ring's tests/vectors/twemproxy/port_11211.tsv).
        let s = ketama_server(&RingNode::at("10.0.0.1:11211"));
        assert_eq!(KetamaFlavor::Twemproxy.server_name(&s), "10.0.0.1");
        let s = ketama_server(&RingNode::at("10.0.0.1:6379"));
        assert_eq!(KetamaFlavor::Twemproxy.server_name(&s), "10.0.0.1:6379");
    }
}
