//! One immutable routing snapshot of cluster mode: the slot map plus the node handles of every
//! shard.
//!
//! Callers load it from an `ArcSwap` (an atomic load, no lock), route, and drop it. A MOVED
//! reply or a refresh builds a new snapshot and swaps it in; commands in flight keep the one
//! they loaded.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use shardis_slots::{Endpoint, SlotMap, key_slot};

use crate::engine::{Shards, View};
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

/// A slot owner learned from a MOVED reply, numbered in the order they were learned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Move {
    pub slot: u16,
    pub to: Endpoint,
    pub seq: u64,
}

/// The routing snapshot.
pub(crate) struct SlotRoutes {
    pub map: SlotMap,
    pub shards: Vec<ShardNodes>,
    read_from: ReadFrom,
    /// Round-robin position for keyless commands.
    next_primary: AtomicUsize,
    /// MOVED patches not yet confirmed by a refresh that started after them (one per slot).
    pub moves: Vec<Move>,
    /// The number of the last MOVED patch ever applied (0: none).
    pub last_move: u64,
    /// The config epoch the map was chosen at, when the nodes reported one.
    pub epoch: Option<u64>,
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
            moves: Vec::new(),
            last_move: 0,
            epoch: None,
        }
    }

    /// These routes with a MOVED of `slot` to `to` applied and recorded.
    pub fn with_move(&self, slot: u16, to: &Endpoint, pool: &Pool) -> SlotRoutes {
        let seq = self.last_move + 1;
        let mut moves: Vec<Move> = self
            .moves
            .iter()
            .filter(|m| m.slot != slot)
            .cloned()
            .collect();
        moves.push(Move {
            slot,
            to: to.clone(),
            seq,
        });
        let mut routes = SlotRoutes::new(self.map.with_slot_moved(slot, to), pool, self.read_from);
        routes.moves = moves;
        routes.last_move = seq;
        routes.epoch = self.epoch;
        routes
    }

    /// The routes a refresh that started when the last MOVED was number `since` installs:
    /// its `loaded` map, with every MOVED learned after `since` kept on top (the refresh's
    /// views may predate them), at `epoch`.
    pub fn refreshed(
        &self,
        loaded: &SlotMap,
        since: u64,
        epoch: Option<u64>,
        pool: &Pool,
    ) -> SlotRoutes {
        let newer: Vec<Move> = self
            .moves
            .iter()
            .filter(|m| m.seq > since)
            .cloned()
            .collect();
        let mut routes = SlotRoutes::new(keep_newer_moves(loaded, &newer), pool, self.read_from);
        routes.moves = newer;
        routes.last_move = self.last_move;
        routes.epoch = epoch.or(self.epoch);
        routes
    }

    /// A snapshot with no slots: only used until the first topology is loaded.
    pub(crate) fn empty(read_from: ReadFrom) -> Self {
        SlotRoutes {
            map: SlotMap::new(shardis_slots::Topology::empty()),
            shards: Vec::new(),
            read_from,
            next_primary: AtomicUsize::new(0),
            moves: Vec::new(),
            last_move: 0,
            epoch: None,
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
        // No list built per command: count, then take the one in turn.
        let primaries = || self.shards.iter().filter_map(|s| s.primary.as_ref());
        let count = primaries().count();
        if count == 0 {
            return None;
        }
        let turn = self.next_primary.fetch_add(1, Ordering::Relaxed);
        primaries().nth(turn % count).cloned()
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

/// `map` with each of `moves` applied in order: a slot owner learned from a MOVED after a
/// refresh began is newer than what that refresh loaded.
pub(crate) fn keep_newer_moves(map: &SlotMap, moves: &[Move]) -> SlotMap {
    let mut map = map.clone();
    for m in moves {
        let owner = map.shard(m.slot).and_then(|s| s.primary.endpoint.as_ref());
        if owner != Some(&m.to) {
            map = map.with_slot_moved(m.slot, &m.to);
        }
    }
    map
}

/// A cluster's key → shard: the key's slot, whatever the map says, so one command needs no
/// reference to the slot map (see [`Shards`]).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Slots;

impl Shards for Slots {
    type Shard = u16;

    fn shard_of(&self, key: &[u8]) -> u16 {
        key_slot(key)
    }

    fn spread_error(&self, command: &str, a: u16, b: u16) -> Error {
        Error::CrossSlot {
            command: command.to_string(),
            slots: vec![a, b],
        }
    }
}

impl Shards for Arc<SlotRoutes> {
    type Shard = u16;

    fn shard_of(&self, key: &[u8]) -> u16 {
        Slots.shard_of(key)
    }

    fn spread_error(&self, command: &str, a: u16, b: u16) -> Error {
        Slots.spread_error(command, a, b)
    }
}

impl View for Arc<SlotRoutes> {
    type Node = Arc<Node>;

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
}

impl crate::hot::CopyPlacement for SlotRoutes {
    fn shards(&self) -> usize {
        self.shards.len()
    }

    fn copy_names(&self, key: &[u8], n: usize, salt: u32) -> Vec<Vec<u8>> {
        shardis_hotkey::salted_copies(key, n, salt, |name| self.map.shard_index(key_slot(name)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shardis_slots::{Node, Shard, SlotRange, Topology};

    fn one_owner(endpoint: &Endpoint) -> SlotMap {
        SlotMap::new(
            Topology::new(vec![Shard {
                primary: Node::primary(endpoint.clone()),
                replicas: vec![],
                slots: vec![SlotRange::new(0, 16383).unwrap()],
            }])
            .unwrap(),
        )
    }

    #[test]
    fn moves_learned_after_a_refresh_began_stay_on_top_of_it() {
        let (a, b, c) = (
            Endpoint::new("10.0.0.1", 1),
            Endpoint::new("10.0.0.2", 1),
            Endpoint::new("10.0.0.3", 1),
        );
        let pool = Pool::new(std::sync::Arc::new(crate::settings::Settings::default()));
        let routes = SlotRoutes::new(one_owner(&a), &pool, ReadFrom::Primary)
            .with_move(1, &b, &pool) // before the refresh began
            .with_move(2, &b, &pool);
        let since = routes.last_move;
        let routes = routes.with_move(3, &c, &pool).with_move(2, &c, &pool); // during it
        // The refresh loaded a map where a still owns everything.
        let next = routes.refreshed(&one_owner(&a), since, Some(4), &pool);
        let owner =
            |r: &SlotRoutes, slot| r.map.shard(slot).and_then(|s| s.primary.endpoint.clone());
        assert_eq!(
            owner(&next, 1),
            Some(a.clone()),
            "older than the refresh: refreshed"
        );
        assert_eq!(owner(&next, 2), Some(c.clone()), "newer MOVED kept");
        assert_eq!(owner(&next, 3), Some(c.clone()), "newer MOVED kept");
        assert_eq!(owner(&next, 4), Some(a.clone()));
        assert_eq!(next.moves.len(), 2);
        assert_eq!((next.last_move, next.epoch), (routes.last_move, Some(4)));
        // The next refresh, begun after every MOVED, decides alone.
        let later = next.refreshed(&one_owner(&a), next.last_move, None, &pool);
        assert_eq!(owner(&later, 2), Some(a));
        assert!(later.moves.is_empty());
        assert_eq!(
            later.epoch,
            Some(4),
            "an unknown epoch keeps the last known one"
        );
    }
}
