//! SlotMap lookups and the MOVED patch; Topology validation and normal form.

mod common;

use common::*;
use shardis_slots::{
    Endpoint, Node, SLOT_COUNT, Shard, SlotMap, SlotRange, Topology, TopologyError,
    parse_cluster_slots,
};

fn shard(host: &str, ranges: &[(u16, u16)]) -> Shard {
    Shard {
        primary: Node::primary(Endpoint::new(host, 7000)).with_id(host),
        replicas: vec![Node::replica(Endpoint::new(host, 7100))],
        slots: ranges
            .iter()
            .map(|&(a, b)| SlotRange { start: a, end: b })
            .collect(),
    }
}

fn three() -> SlotMap {
    SlotMap::new(
        Topology::new(vec![
            shard("a", &[(0, 5460)]),
            shard("b", &[(5461, 10922)]),
            shard("c", &[(10923, 16383)]),
        ])
        .unwrap(),
    )
}

fn owner(map: &SlotMap, slot: u16) -> Option<String> {
    map.shard(slot)
        .map(|s| s.primary.endpoint.as_ref().unwrap().host.clone())
}

fn ranges_of(map: &SlotMap, host: &str) -> Vec<(u16, u16)> {
    let sh = map
        .topology()
        .shards()
        .iter()
        .find(|s| s.primary.endpoint.as_ref().unwrap().host == host)
        .unwrap();
    sh.slots.iter().map(|r| (r.start, r.end)).collect()
}

#[test]
fn lookup_matches_topology_for_every_slot() {
    let t = parse_cluster_slots(&reply("slots_resp2_split"), &asked()).unwrap();
    check_invariants(&t);
    let map = SlotMap::new(t.clone());
    assert_eq!(map.topology(), &t);
    for slot in 0..SLOT_COUNT as u16 {
        assert_eq!(map.shard_index(slot), t.shard_index_for_slot(slot));
    }
    assert_eq!(map.shard_index(16384), None);
    assert_eq!(map.shard_index(u16::MAX), None);
}

#[test]
fn moved_splits_a_range_in_the_middle() {
    let moved = three().with_slot_moved(3000, &Endpoint::new("c", 7000));
    check_invariants(moved.topology());
    assert_eq!(ranges_of(&moved, "a"), [(0, 2999), (3001, 5460)]);
    assert_eq!(ranges_of(&moved, "c"), [(3000, 3000), (10923, 16383)]);
    assert_eq!(owner(&moved, 3000).as_deref(), Some("c"));
    assert_eq!(moved.topology().shards().len(), 3);
    assert_eq!(
        moved.shard(3000).unwrap().replicas.len(),
        1,
        "joins the existing shard with its replicas"
    );
}

#[test]
fn moved_at_range_edges_merges_with_neighbour() {
    let m = three().with_slot_moved(5460, &Endpoint::new("b", 7000));
    assert_eq!(ranges_of(&m, "a"), [(0, 5459)]);
    assert_eq!(ranges_of(&m, "b"), [(5460, 10922)], "adjacent runs merged");
    let m = m.with_slot_moved(0, &Endpoint::new("c", 7000));
    assert_eq!(ranges_of(&m, "a"), [(1, 5459)]);
    assert_eq!(ranges_of(&m, "c"), [(0, 0), (10923, 16383)]);
    let m = m.with_slot_moved(16383, &Endpoint::new("a", 7000));
    assert_eq!(ranges_of(&m, "a"), [(1, 5459), (16383, 16383)]);
    check_invariants(m.topology());
}

#[test]
fn moved_back_restores_the_original_map() {
    let orig = three();
    let back = orig
        .with_slot_moved(3000, &Endpoint::new("c", 7000))
        .with_slot_moved(3000, &Endpoint::new("a", 7000));
    assert_eq!(back, orig);
    assert_eq!(back.topology().fingerprint(), orig.topology().fingerprint());
}

#[test]
fn moved_to_a_new_endpoint_creates_a_primary_only_shard() {
    let new = Endpoint::new("d", 7000);
    let m = three().with_slot_moved(12182, &new);
    check_invariants(m.topology());
    let sh = m.shard(12182).unwrap();
    assert_eq!(sh.primary.endpoint.as_ref(), Some(&new));
    assert_eq!(sh.primary.id, None);
    assert!(sh.replicas.is_empty());
    assert_eq!(m.topology().shards().len(), 4);
    assert_eq!(owner(&m, 12181).as_deref(), Some("c"));
    assert_eq!(owner(&m, 12183).as_deref(), Some("c"));
}

#[test]
fn moved_last_slot_of_a_shard_drops_that_shard() {
    let t = Topology::new(vec![shard("a", &[(0, 99)]), shard("b", &[(100, 100)])]).unwrap();
    let m = SlotMap::new(t).with_slot_moved(100, &Endpoint::new("a", 7000));
    assert_eq!(m.topology().shards().len(), 1);
    assert_eq!(ranges_of(&m, "a"), [(0, 100)]);
}

#[test]
fn moved_into_a_gap_and_no_ops() {
    let t = Topology::new(vec![shard("a", &[(0, 99)])]).unwrap();
    let map = SlotMap::new(t);
    let m = map.with_slot_moved(500, &Endpoint::new("a", 7000));
    assert_eq!(ranges_of(&m, "a"), [(0, 99), (500, 500)]);
    assert_eq!(
        map.with_slot_moved(5, &Endpoint::new("a", 7000)),
        map,
        "already the owner"
    );
    assert_eq!(
        map.with_slot_moved(16384, &Endpoint::new("b", 7000)),
        map,
        "bad slot"
    );
    assert_eq!(
        map.with_slot_moved(5, &Endpoint::new("", 7000)),
        map,
        "unusable endpoint"
    );
    assert_eq!(
        map.with_slot_moved(5, &Endpoint::new("b", 0)),
        map,
        "unusable endpoint"
    );
}

#[test]
fn moved_matches_primary_by_ip_when_map_uses_hostnames() {
    let t = parse_cluster_slots(&reply("slots_resp2_pref_hostname"), &asked()).unwrap();
    let m = SlotMap::new(t);
    // The map says node3.test:32003 (ip 127.0.0.1 in metadata); a MOVED from an
    // ip-preference node names it by IP.
    let moved = m.with_slot_moved(0, &Endpoint::new("127.0.0.1", 32003));
    assert_eq!(
        moved.topology().shards().len(),
        3,
        "no duplicate shard created"
    );
    assert_eq!(
        moved.shard(0).unwrap().primary.endpoint,
        Some(Endpoint::new("node3.test", 32003))
    );
}

#[test]
fn topology_validation() {
    let bad = |shards| Topology::new(shards).unwrap_err();
    assert!(matches!(
        bad(vec![shard("a", &[(5, 4)])]),
        TopologyError::InvertedRange { .. }
    ));
    assert!(matches!(
        bad(vec![shard("a", &[(0, 16384)])]),
        TopologyError::SlotOutOfRange { .. }
    ));
    assert!(matches!(
        bad(vec![shard("a", &[(0, 10), (10, 20)])]),
        TopologyError::OverlappingRanges { .. }
    ));
    assert!(matches!(
        bad(vec![shard("a", &[(0, 10)]), shard("b", &[(3, 4)])]),
        TopologyError::OverlappingRanges { .. }
    ));
    assert_eq!(
        bad(vec![shard("a", &[])]),
        TopologyError::ShardWithoutSlots { shard: 0 }
    );
    let mut s = shard("a", &[(0, 1)]);
    s.replicas[0].endpoint = Some(Endpoint::new("", 1));
    assert!(matches!(
        bad(vec![s]),
        TopologyError::BadEndpoint { shard: 0, .. }
    ));
    assert_eq!(Topology::new(vec![]).unwrap(), Topology::empty());
    let e = bad(vec![shard("a", &[(0, 1)]), shard("a", &[(5, 6)])]);
    assert_eq!(
        e,
        TopologyError::DuplicatePrimary {
            node: "a".into(),
            first: 0,
            second: 1
        }
    );
    let no_id = |r: &[(u16, u16)]| {
        let mut s = shard("e", r);
        s.primary.id = None;
        s
    };
    assert!(matches!(
        bad(vec![no_id(&[(0, 1)]), no_id(&[(5, 6)])]),
        TopologyError::DuplicatePrimary { .. }
    ));
}

#[test]
fn topology_normal_form() {
    let mut s = shard("a", &[(200, 300), (0, 99), (100, 150)]);
    s.replicas = vec![
        Node::replica(Endpoint::new("z", 1)).with_id("z"),
        Node::primary(Endpoint::new("y", 1)).with_id("y"),
        Node::replica(Endpoint::new("z2", 1)).with_id("z"),
    ];
    let t = Topology::new(vec![shard("b", &[(1000, 2000)]), s]).unwrap();
    let first = &t.shards()[0];
    assert_eq!(
        first.slots,
        [
            SlotRange::new(0, 150).unwrap(),
            SlotRange::new(200, 300).unwrap()
        ]
    );
    let ids: Vec<_> = first
        .replicas
        .iter()
        .map(|r| r.id.as_deref().unwrap())
        .collect();
    assert_eq!(ids, ["y", "z"], "sorted by id, duplicates removed");
    assert!(
        first
            .replicas
            .iter()
            .all(|r| r.role == shardis_slots::Role::Replica)
    );
    assert_eq!(t.covered_slots(), 151 + 101 + 1001);
    assert_eq!(t.shard_index_for_slot(175), None);
    assert_eq!(t.shard_index_for_slot(1500), Some(1));
}
