//! The invariants every topology a parser accepts must hold, shared by the fuzz targets.

use shardis_slots::{SLOT_COUNT, SlotMap, Topology};

/// Ranges within 0..16383, sorted and non-overlapping, never an empty map, usable endpoints,
/// and the O(1) `SlotMap` agreeing with the topology for every slot.
pub fn check(t: &Topology) {
    let mut prev_end: Option<u16> = None;
    let mut covered = 0;
    for (r, i) in t.ranges() {
        assert!(r.start <= r.end && usize::from(r.end) < SLOT_COUNT, "{r:?}");
        assert!(
            prev_end.is_none_or(|p| r.start > p),
            "unsorted/overlapping at {r:?}"
        );
        prev_end = Some(r.end);
        covered += r.len();
        assert!(i < t.shards().len());
    }
    assert_eq!(covered, t.covered_slots());
    assert!(covered > 0, "parsers never return an empty map");
    for s in t.shards() {
        assert!(!s.slots.is_empty());
        for n in std::iter::once(&s.primary).chain(&s.replicas) {
            if let Some(e) = &n.endpoint {
                assert!(!e.host.is_empty() && e.port > 0, "{e:?}");
            }
        }
    }
    let map = SlotMap::new(t.clone());
    for slot in 0..SLOT_COUNT as u16 {
        assert_eq!(
            map.shard_index(slot),
            t.shard_index_for_slot(slot),
            "slot {slot}"
        );
    }
}
