//! Arbitrary text → `parse_cluster_nodes_text`; on success the topology
//! invariants hold and the `SlotMap` agrees with it for every slot.
#![no_main]

use libfuzzer_sys::fuzz_target;
use shardis_slots::{Endpoint, SLOT_COUNT, SlotMap, Topology, parse_cluster_nodes_text};

fuzz_target!(|data: &[u8]| {
    // NODES is text; invalid UTF-8 is rejected by `parse_cluster_nodes` before
    // reaching the text parser, so only lossless text is interesting here.
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    for asked in [Endpoint::new("127.0.0.1", 32001), Endpoint::new("", 1)] {
        if let Ok(t) = parse_cluster_nodes_text(text, &asked) {
            check(&t);
        }
    }
});

fn check(t: &Topology) {
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
