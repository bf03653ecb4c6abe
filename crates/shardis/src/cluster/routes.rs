//! One immutable routing snapshot: the slot map plus the node handles of every shard.
//!
//! Callers load it from an `ArcSwap` (an atomic load, no lock), route, and drop it. A MOVED
//! reply or a refresh builds a new snapshot and swaps it in; commands in flight keep the one
//! they loaded.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use shardis_slots::SlotMap;

use crate::config::ReadFrom;
use crate::pool::{NodeConn, Pool};

/// A shard's nodes.
pub(crate) struct ShardNodes {
    /// `None` when the topology knows the primary only as `?` (unknown endpoint).
    pub primary: Option<Arc<NodeConn>>,
    pub replicas: Vec<Arc<NodeConn>>,
    next_replica: AtomicUsize,
}

/// The routing snapshot.
pub(crate) struct Routes {
    pub map: SlotMap,
    pub shards: Vec<ShardNodes>,
}

impl Routes {
    /// Builds the snapshot for `map`, reusing the pool's nodes (and their open connections).
    pub fn new(map: SlotMap, pool: &Pool) -> Self {
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
        Routes { map, shards }
    }

    /// The node that should serve `slot`: its primary, or for reads a replica per `read_from`.
    /// `None` when no node owns the slot or its owner's address is unknown.
    pub fn node_for(&self, slot: u16, read: bool, read_from: ReadFrom) -> Option<Arc<NodeConn>> {
        let shard = &self.shards[self.map.shard_index(slot)?];
        if read && read_from != ReadFrom::Primary && !shard.replicas.is_empty() {
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

    /// Every distinct primary with a known address.
    pub fn primaries(&self) -> Vec<Arc<NodeConn>> {
        self.shards
            .iter()
            .filter_map(|s| s.primary.clone())
            .collect()
    }

    /// Every node with a known address.
    pub fn all_nodes(&self) -> Vec<Arc<NodeConn>> {
        self.shards
            .iter()
            .flat_map(|s| s.primary.iter().chain(s.replicas.iter()).cloned())
            .collect()
    }
}
