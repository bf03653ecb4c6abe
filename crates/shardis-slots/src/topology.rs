//! The validated, normalised cluster layout: shards, their nodes, their slots.

use std::cmp::Ordering;
use std::collections::HashMap;

use crate::error::TopologyError;
use crate::node::{Identity, Node, Role};
use crate::range::SlotRange;
use crate::slot::SLOT_COUNT;

/// A primary, its replicas and the slot ranges it owns.
///
/// ```
/// use shardis_slots::{Endpoint, Node, Shard, SlotRange};
/// let s = Shard {
///     primary: Node::primary(Endpoint::new("10.0.0.1", 6379)),
///     replicas: vec![Node::replica(Endpoint::new("10.0.0.2", 6379))],
///     slots: vec![SlotRange::new(0, 8191).unwrap()],
/// };
/// assert_eq!(s.slot_count(), 8192);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Shard {
    /// The node owning the slots. Its endpoint may be `None` (unknown); a
    /// replica is never promoted in its place by this crate.
    pub primary: Node,
    /// Replicas, sorted canonically by [`Topology::new`].
    pub replicas: Vec<Node>,
    /// Owned ranges; sorted and merged by [`Topology::new`].
    pub slots: Vec<SlotRange>,
}

impl Shard {
    /// Number of slots this shard owns.
    ///
    /// ```
    /// # use shardis_slots::{Endpoint, Node, Shard, SlotRange};
    /// let s = Shard { primary: Node::primary(Endpoint::new("h", 1)), replicas: vec![],
    ///     slots: vec![SlotRange::new(0, 9).unwrap(), SlotRange::new(20, 20).unwrap()] };
    /// assert_eq!(s.slot_count(), 11);
    /// ```
    pub fn slot_count(&self) -> usize {
        self.slots.iter().map(SlotRange::len).sum()
    }
}

/// A validated cluster layout.
///
/// Invariants (enforced by [`Topology::new`]): every range is within
/// 0..=16383; no two ranges overlap (across all shards); every shard owns at
/// least one range; every `Some` endpoint has a non-empty host and a non-zero
/// port. Normal form: each shard's ranges sorted and adjacent ones merged,
/// replicas sorted by identity (id, else endpoint) and deduplicated, shards
/// sorted by first slot, primary/replica `role` set from position. Two views
/// of the same cluster therefore compare equal after normalisation, whatever
/// order the server listed them in.
///
/// Two shards may not share a primary (same id, or same endpoint when the id
/// is unknown).
///
/// An empty topology (no shards) is valid: it is the "nothing known yet" map.
/// The reply parsers never produce it (they return
/// [`TopologyError::NoSlots`]).
///
/// ```
/// use shardis_slots::{Endpoint, Node, Shard, SlotRange, Topology};
/// let shard = |host: &str, a, b| Shard {
///     primary: Node::primary(Endpoint::new(host, 6379)),
///     replicas: vec![],
///     slots: vec![SlotRange::new(a, b).unwrap()],
/// };
/// let t = Topology::new(vec![shard("b", 8192, 16383), shard("a", 0, 8191)]).unwrap();
/// assert!(t.is_complete());
/// assert_eq!(t.shards()[0].primary.endpoint.as_ref().unwrap().host, "a");
/// assert_eq!(t.shard_index_for_slot(9000), Some(1));
/// assert!(Topology::new(vec![shard("a", 0, 10), shard("b", 10, 20)]).is_err());
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Topology {
    shards: Vec<Shard>,
    /// Every range with its shard index, sorted by start (for binary search).
    index: Vec<(SlotRange, usize)>,
    covered: usize,
}

impl Topology {
    /// Validates and normalises `shards` (see the type docs for the rules).
    ///
    /// ```
    /// # use shardis_slots::{Endpoint, Node, Shard, SlotRange, Topology, TopologyError};
    /// let bad = Shard { primary: Node::primary(Endpoint::new("h", 1)), replicas: vec![], slots: vec![] };
    /// assert_eq!(Topology::new(vec![bad]), Err(TopologyError::ShardWithoutSlots { shard: 0 }));
    /// ```
    pub fn new(mut shards: Vec<Shard>) -> Result<Topology, TopologyError> {
        let mut index = Vec::new();
        let mut primaries = HashMap::new();
        for (i, shard) in shards.iter().enumerate() {
            let identity = shard.primary.identity();
            if identity != Identity::Unknown
                && let Some(first) = primaries.insert(identity, i)
            {
                return Err(TopologyError::DuplicatePrimary {
                    node: identity.to_string(),
                    first,
                    second: i,
                });
            }
            if shard.slots.is_empty() {
                return Err(TopologyError::ShardWithoutSlots { shard: i });
            }
            for node in std::iter::once(&shard.primary).chain(&shard.replicas) {
                if let Some(ep) = node.endpoint.as_ref().filter(|ep| !ep.is_usable()) {
                    return Err(TopologyError::BadEndpoint {
                        shard: i,
                        endpoint: ep.to_string(),
                    });
                }
            }
            for r in &shard.slots {
                if r.start > r.end {
                    return Err(TopologyError::InvertedRange {
                        path: format!("shard[{i}]"),
                        start: r.start,
                        end: r.end,
                    });
                }
                if !r.is_valid() {
                    return Err(TopologyError::SlotOutOfRange {
                        path: format!("shard[{i}]"),
                        value: i64::from(r.end),
                    });
                }
                index.push((*r, i));
            }
        }
        index.sort_unstable();
        for pair in index.windows(2) {
            if pair[0].0.end >= pair[1].0.start {
                return Err(TopologyError::OverlappingRanges {
                    a: pair[0].0,
                    b: pair[1].0,
                });
            }
        }

        for shard in &mut shards {
            normalise_shard(shard);
        }
        // Ranges are disjoint, so first slots are distinct: a total order.
        shards.sort_by_key(|s| s.slots[0].start);

        let mut index = Vec::with_capacity(index.len());
        for (i, shard) in shards.iter().enumerate() {
            index.extend(shard.slots.iter().map(|r| (*r, i)));
        }
        index.sort_unstable();
        let covered = index.iter().map(|(r, _)| r.len()).sum();
        Ok(Topology {
            shards,
            index,
            covered,
        })
    }

    /// The empty topology (no shards, no slots).
    ///
    /// ```
    /// assert_eq!(shardis_slots::Topology::empty().covered_slots(), 0);
    /// ```
    pub fn empty() -> Topology {
        Topology::default()
    }

    /// The shards in normal form (sorted by first slot).
    ///
    /// ```
    /// assert!(shardis_slots::Topology::empty().shards().is_empty());
    /// ```
    pub fn shards(&self) -> &[Shard] {
        &self.shards
    }

    /// Consumes the topology, returning its (normalised) shards.
    ///
    /// ```
    /// assert!(shardis_slots::Topology::empty().into_shards().is_empty());
    /// ```
    pub fn into_shards(self) -> Vec<Shard> {
        self.shards
    }

    /// Every range with the index of its shard, in slot order.
    ///
    /// ```
    /// assert_eq!(shardis_slots::Topology::empty().ranges().count(), 0);
    /// ```
    pub fn ranges(&self) -> impl ExactSizeIterator<Item = (SlotRange, usize)> + '_ {
        self.index.iter().copied()
    }

    /// Number of slots that have an owner.
    ///
    /// ```
    /// assert_eq!(shardis_slots::Topology::empty().covered_slots(), 0);
    /// ```
    pub fn covered_slots(&self) -> usize {
        self.covered
    }

    /// Whether all 16384 slots have an owner.
    ///
    /// ```
    /// assert!(!shardis_slots::Topology::empty().is_complete());
    /// ```
    pub fn is_complete(&self) -> bool {
        self.covered == SLOT_COUNT
    }

    /// The shard owning `slot` (binary search, O(log ranges)); `None` for an
    /// unassigned slot or `slot > 16383`. [`SlotMap`](crate::SlotMap) is the
    /// O(1) version.
    ///
    /// ```
    /// assert_eq!(shardis_slots::Topology::empty().shard_index_for_slot(0), None);
    /// ```
    pub fn shard_index_for_slot(&self, slot: u16) -> Option<usize> {
        let after = self.index.partition_point(|(r, _)| r.start <= slot);
        let (range, shard) = self.index.get(after.checked_sub(1)?)?;
        range.contains(slot).then_some(*shard)
    }

    /// A 64-bit digest of the layout that ignores presentation: ranges, each
    /// primary's identity (node id when present, else endpoint) and the sorted
    /// replica identities. Health, `ip`/`hostname` metadata and the endpoint of
    /// nodes that have an id do not enter it, so views from nodes with different
    /// `cluster-preferred-endpoint-type` agree. Stable across processes and
    /// Rust versions (FNV-1a), so it can be logged and compared.
    ///
    /// ```
    /// use shardis_slots::{Endpoint, Node, Shard, SlotRange, Topology};
    /// let view = |host: &str| Topology::new(vec![Shard {
    ///     primary: Node::primary(Endpoint::new(host, 1)).with_id("n1"),
    ///     replicas: vec![],
    ///     slots: vec![SlotRange::new(0, 16383).unwrap()],
    /// }]).unwrap();
    /// assert_eq!(view("127.0.0.1").fingerprint(), view("node1.test").fingerprint());
    /// ```
    pub fn fingerprint(&self) -> u64 {
        let mut h = Fnv::new();
        for shard in &self.shards {
            h.byte(b'S');
            for r in &shard.slots {
                h.bytes(&r.start.to_be_bytes());
                h.bytes(&r.end.to_be_bytes());
            }
            h.identity(shard.primary.identity());
            for replica in &shard.replicas {
                h.byte(b'r');
                h.identity(replica.identity());
            }
        }
        h.0
    }
}

fn normalise_shard(shard: &mut Shard) {
    shard.slots.sort_unstable();
    // Merge adjacent runs (overlaps were rejected before): a primary that
    // regains the slot between two of its runs is one range again.
    let mut merged: Vec<SlotRange> = Vec::with_capacity(shard.slots.len());
    for r in shard.slots.drain(..) {
        match merged.last_mut() {
            Some(last) if u32::from(last.end) + 1 == u32::from(r.start) => last.end = r.end,
            _ => merged.push(r),
        }
    }
    shard.slots = merged;

    shard.primary.role = Role::Primary;
    for replica in &mut shard.replicas {
        replica.role = Role::Replica;
    }
    shard.replicas.sort_by(compare_nodes);
    shard.replicas.dedup_by(|a, b| {
        (a.identity() == b.identity() && a.identity() != Identity::Unknown) || a == b
    });
}

/// Canonical node order: identity first, then the remaining fields so that
/// nodes with equal identity still sort deterministically.
fn compare_nodes(a: &Node, b: &Node) -> Ordering {
    a.identity()
        .cmp(&b.identity())
        .then_with(|| a.endpoint.cmp(&b.endpoint))
        .then_with(|| a.ip.cmp(&b.ip))
        .then_with(|| a.hostname.cmp(&b.hostname))
        .then_with(|| (a.health as u8).cmp(&(b.health as u8)))
}

/// FNV-1a, 64 bit: tiny, deterministic, good enough to tell views apart.
struct Fnv(u64);

impl Fnv {
    fn new() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
    fn byte(&mut self, b: u8) {
        self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
    }
    fn bytes(&mut self, bs: &[u8]) {
        bs.iter().for_each(|&b| self.byte(b));
    }
    fn str(&mut self, s: &str) {
        // Length prefix: ("ab","c") and ("a","bc") must differ.
        self.bytes(&(s.len() as u64).to_be_bytes());
        self.bytes(s.as_bytes());
    }
    fn identity(&mut self, id: Identity<'_>) {
        match id {
            Identity::Id(id) => {
                self.byte(b'i');
                self.str(id);
            }
            Identity::Endpoint(ep) => {
                self.byte(b'e');
                self.str(&ep.host);
                self.bytes(&ep.port.to_be_bytes());
            }
            Identity::Unknown => self.byte(b'?'),
        }
    }
}
