//! One immutable routing snapshot of cluster mode: the slot map plus the node handles of every
//! shard.
//!
//! Callers load it from an `ArcSwap` (an atomic load, no lock), route, and drop it. A MOVED
//! reply or a refresh builds a new snapshot and swaps it in; commands in flight keep the one
//! they loaded.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use shardis_slots::{SlotMap, key_slot};

use crate::engine::View;
use crate::error::Error;
use crate::net::{Node, Pool};
use crate::settings::ReadFrom;

/// A shard's nodes.
pub(crate) struct ShardNodes {
    /// `None` when the topology knows the primary only as `?` (unknown endpoint).
    pub primary: Option<Arc<Node>>,
    pub replicas: Vec<Arc<Node>>,
    next_replica: AtomicUsize,
}

/// The routing snapshot.
pub(crate) struct SlotRoutes {
    pub map: SlotMap,
    pub shards: Vec<ShardNodes>,
    read_from: ReadFrom,
    /// Round-robin position for keyless commands.
    next_primary: AtomicUsize,
}

impl SlotRoutes {
    /// Builds the snapshot for `map`, reusing the pool's nodes (and their open connections).
    pub fn new(map: SlotMap, pool: &Pool, read_from: ReadFrom) -> Self {
        let shards = map
            .topology()
            .shards()
            .iter()
            .map(|shard| ShardNodes {
                primary: shard.primary.endpoint.as_ref().map(|e| pool.node(e)),
                replicas: shard
                    .replicas
                    .iter()
                    .filter_map(|r| r.endpoint.as_ref())
                    .map(|e| pool.node(e))
                    .collect(),
                next_replica: AtomicUsize::new(0),
            })
            .collect();
        SlotRoutes {
            map,
            shards,
            read_from,
            next_primary: AtomicUsize::new(0),
        }
    }

    /// A snapshot with no slots: only used until the first topology is loaded.
    pub(crate) fn empty(read_from: ReadFrom) -> Self {
        SlotRoutes {
            map: SlotMap::new(shardis_slots::Topology::empty()),
            shards: Vec::new(),
            read_from,
            next_primary: AtomicUsize::new(0),
        }
    }

    /// The node that should serve `slot`: its primary, or for reads a replica per the
    /// client's [`ReadFrom`]. `None` when no node owns the slot or its owner's address is
    /// unknown.
    pub fn node_for(&self, slot: u16, read: bool) -> Option<Arc<Node>> {
        let shard = &self.shards[self.map.shard_index(slot)?];
        if read && self.read_from != ReadFrom::Primary && !shard.replicas.is_empty() {
            let n = shard.replicas.len();
            let start = shard.next_replica.fetch_add(1, Ordering::Relaxed);
            // Round-robin over the healthy replicas; fall back to the primary when none is.
            for i in 0..n {
                let replica = &shard.replicas[(start + i) % n];
                if replica.is_healthy() {
                    return Some(replica.clone());
                }
            }
        }
        shard.primary.clone()
    }

    /// The next primary in turn, for a keyless command.
    pub fn next_primary(&self) -> Option<Arc<Node>> {
        let primaries: Vec<&Arc<Node>> = self
            .shards
            .iter()
            .filter_map(|s| s.primary.as_ref())
            .collect();
        if primaries.is_empty() {
            return None;
        }
        let turn = self.next_primary.fetch_add(1, Ordering::Relaxed);
        Some(primaries[turn % primaries.len()].clone())
    }

    /// Every distinct primary with a known address.
    pub fn primaries(&self) -> Vec<Arc<Node>> {
        self.shards
            .iter()
            .filter_map(|s| s.primary.clone())
            .collect()
    }

    /// Every node with a known address.
    pub fn all_nodes(&self) -> Vec<Arc<Node>> {
        self.shards
            .iter()
            .flat_map(|s| s.primary.iter().chain(s.replicas.iter()).cloned())
            .collect()
    }
}

impl View for Arc<SlotRoutes> {
    type Shard = u16;
    type Node = Arc<Node>;

    fn shard_of(&self, key: &[u8]) -> u16 {
        key_slot(key)
    }

    fn node_of(&self, slot: u16, read: bool) -> Option<Arc<Node>> {
        self.node_for(slot, read)
    }

    fn fan_out_nodes(&self, replicas: bool) -> Vec<Arc<Node>> {
        if replicas {
            self.all_nodes()
        } else {
            self.primaries()
        }
    }

    fn node_label(&self, node: &Arc<Node>) -> String {
        node.label().to_string()
    }

    fn server(&self, node: &Arc<Node>) -> Option<Arc<Node>> {
        Some(node.clone())
    }

    fn epoch(&self) -> u64 {
        self.map.topology().fingerprint()
    }

    fn spread_error(&self, command: &str, a: u16, b: u16) -> Error {
        Error::CrossSlot {
            command: command.to_string(),
            slots: vec![a, b],
        }
    }
}

impl crate::hot::CopyPlacement for SlotRoutes {
    fn shards(&self) -> usize {
        self.shards.len()
    }

    fn copy_names(&self, key: &[u8], n: usize) -> Vec<Vec<u8>> {
        shardis_hotkey::cluster_copies(key, n, |slot| self.map.shard_index(slot))
    }
}
