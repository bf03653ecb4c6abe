//! O(1) slot → shard lookup over a [`Topology`].

use std::fmt;

use crate::endpoint::Endpoint;
use crate::node::Node;
use crate::range::SlotRange;
use crate::slot::SLOT_COUNT;
use crate::topology::{Shard, Topology};

/// Marks an unassigned slot in the table. Shard indices are < 16384 (every
/// shard owns at least one slot), so this can never be a real index.
const UNOWNED: u16 = u16::MAX;

/// A [`Topology`] plus a 16384-entry table of shard indices (32 KiB), so a
/// lookup is one bounds-checked load.
///
/// ```
/// use shardis_slots::{key_slot, Endpoint, Node, Shard, SlotMap, SlotRange, Topology};
/// let t = Topology::new(vec![Shard {
///     primary: Node::primary(Endpoint::new("10.0.0.1", 6379)),
///     replicas: vec![],
///     slots: vec![SlotRange::new(0, 12999).unwrap()],
/// }]).unwrap();
/// let map = SlotMap::new(t);
/// assert_eq!(map.shard_index(key_slot(b"foo")), Some(0)); // slot 12182
/// assert_eq!(map.shard_index(13000), None);                // a gap: no owner
/// ```
#[derive(Clone)]
pub struct SlotMap {
    topology: Topology,
    table: Box<[u16]>,
}

impl SlotMap {
    /// Builds the lookup table for `topology`.
    ///
    /// ```
    /// let map = shardis_slots::SlotMap::new(shardis_slots::Topology::empty());
    /// assert!(map.shard(0).is_none());
    /// ```
    pub fn new(topology: Topology) -> SlotMap {
        let mut table = vec![UNOWNED; SLOT_COUNT].into_boxed_slice();
        for (range, shard) in topology.ranges() {
            // Topology guarantees end <= 16383 and shard < 16384.
            let idx = u16::try_from(shard).unwrap_or(UNOWNED);
            table[usize::from(range.start)..=usize::from(range.end)].fill(idx);
        }
        SlotMap { topology, table }
    }

    /// The topology the table was built from.
    ///
    /// ```
    /// let map = shardis_slots::SlotMap::new(shardis_slots::Topology::empty());
    /// assert_eq!(map.topology().covered_slots(), 0);
    /// ```
    pub fn topology(&self) -> &Topology {
        &self.topology
    }

    /// Index (into `topology().shards()`) of the shard owning `slot`; `None`
    /// for an unassigned slot or `slot > 16383`. Never the "nearest" range.
    ///
    /// ```
    /// let map = shardis_slots::SlotMap::new(shardis_slots::Topology::empty());
    /// assert_eq!(map.shard_index(16384), None);
    /// ```
    #[inline]
    pub fn shard_index(&self, slot: u16) -> Option<usize> {
        match self.table.get(usize::from(slot)) {
            Some(&idx) if idx != UNOWNED => Some(usize::from(idx)),
            _ => None,
        }
    }

    /// The shard owning `slot`, if any.
    ///
    /// ```
    /// let map = shardis_slots::SlotMap::new(shardis_slots::Topology::empty());
    /// assert!(map.shard(5).is_none());
    /// ```
    #[inline]
    pub fn shard(&self, slot: u16) -> Option<&Shard> {
        self.shard_index(slot)
            .and_then(|i| self.topology.shards().get(i))
    }

    /// What a `MOVED <slot> <endpoint>` tells us: `slot` now belongs to the
    /// primary at `endpoint`. Returns the patched map:
    ///
    /// - if some shard's primary answers to `endpoint` (its endpoint, or its
    ///   `ip`/`hostname` with that port), the slot joins that shard;
    /// - otherwise a new primary-only shard (no id, health `Unknown`) is
    ///   created for it;
    /// - the previous owner loses the slot (its range is split); a shard left
    ///   without slots is dropped; adjacent ranges of the new owner merge.
    ///
    /// The map is returned unchanged when the slot already belongs to that
    /// primary, when `slot > 16383`, or when `endpoint` is unusable (empty
    /// host or port 0). The spec still recommends a full refresh after a
    /// MOVED (several slots probably moved); this patch keeps routing correct
    /// meanwhile.
    ///
    /// ```
    /// use shardis_slots::{Endpoint, Node, Shard, SlotMap, SlotRange, Topology};
    /// let a = Endpoint::new("10.0.0.1", 6379);
    /// let map = SlotMap::new(Topology::new(vec![Shard {
    ///     primary: Node::primary(a.clone()), replicas: vec![],
    ///     slots: vec![SlotRange::new(0, 16383).unwrap()],
    /// }]).unwrap());
    /// let b = Endpoint::new("10.0.0.2", 6379);
    /// let moved = map.with_slot_moved(100, &b);
    /// assert_eq!(moved.shard(100).unwrap().primary.endpoint.as_ref(), Some(&b));
    /// assert_eq!(moved.shard(99).unwrap().primary.endpoint.as_ref(), Some(&a));
    /// assert_eq!(moved.topology().shards().len(), 2);
    /// ```
    pub fn with_slot_moved(&self, slot: u16, endpoint: &Endpoint) -> SlotMap {
        let Some(single) = SlotRange::single(slot) else {
            return self.clone();
        };
        if !endpoint.is_usable() {
            return self.clone();
        }
        let shards = self.topology.shards();
        let target = shards.iter().position(|s| s.primary.answers_to(endpoint));
        let current = self.shard_index(slot);
        if target.is_some() && target == current {
            return self.clone();
        }

        let mut shards = shards.to_vec();
        if let Some(cur) = current {
            shards[cur].slots = split_out(&shards[cur].slots, slot);
        }
        match target {
            Some(t) => shards[t].slots.push(single),
            None => shards.push(Shard {
                primary: Node::primary(endpoint.clone()),
                replicas: Vec::new(),
                slots: vec![single],
            }),
        }
        shards.retain(|s| !s.slots.is_empty());
        // Cannot fail: we only moved one slot between disjoint sets and the
        // endpoint is usable. Fall back to the old map rather than panic.
        match Topology::new(shards) {
            Ok(t) => SlotMap::new(t),
            Err(_) => self.clone(),
        }
    }
}

/// `ranges` without `slot` (splitting the range that contains it).
fn split_out(ranges: &[SlotRange], slot: u16) -> Vec<SlotRange> {
    let mut out = Vec::with_capacity(ranges.len() + 1);
    for r in ranges {
        if !r.contains(slot) {
            out.push(*r);
            continue;
        }
        if r.start < slot {
            out.push(SlotRange {
                start: r.start,
                end: slot - 1,
            });
        }
        if slot < r.end {
            out.push(SlotRange {
                start: slot + 1,
                end: r.end,
            });
        }
    }
    out
}

impl fmt::Debug for SlotMap {
    // The table is derived data; printing 16384 entries helps nobody.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SlotMap")
            .field("topology", &self.topology)
            .finish_non_exhaustive()
    }
}

impl PartialEq for SlotMap {
    fn eq(&self, other: &Self) -> bool {
        self.topology == other.topology
    }
}

impl Eq for SlotMap {}

impl From<Topology> for SlotMap {
    fn from(topology: Topology) -> Self {
        SlotMap::new(topology)
    }
}
