//! SLOTS, SHARDS and NODES of one live snapshot agree on slot → primary, and
//! (ids being present in all three) on the fingerprint.

mod common;

use common::*;
use shardis_slots::{parse_cluster_nodes, parse_cluster_shards, parse_cluster_slots};

#[test]
fn three_formats_same_slot_to_primary_map() {
    for (slots, shards, nodes) in [
        ("slots_resp2", "shards_resp2", "nodes"),
        ("slots_resp2_split", "shards_resp2_split", "nodes_split"),
        (
            "slots_resp2_with_failed",
            "shards_resp2_with_failed",
            "nodes_with_failed",
        ),
        (
            "single_partial_slots",
            "single_partial_shards",
            "single_partial_nodes",
        ),
    ] {
        let a = parse_cluster_slots(&reply(slots), &asked()).unwrap();
        let b = parse_cluster_shards(&reply(shards), &asked()).unwrap();
        let c = parse_cluster_nodes(&reply(nodes), &asked()).unwrap();
        let map = primary_map(&a);
        assert!(map.iter().filter(|m| m.is_some()).count() > 0);
        assert_eq!(map, primary_map(&b), "{slots} vs {shards}");
        assert_eq!(map, primary_map(&c), "{slots} vs {nodes}");
        assert_eq!(a.fingerprint(), b.fingerprint(), "{slots} vs {shards}");
        assert_eq!(a.fingerprint(), c.fingerprint(), "{slots} vs {nodes}");
    }
}

#[test]
fn ipv6_slots_and_nodes_agree() {
    let a = parse_cluster_slots(&reply("ipv6_slots_resp2"), &asked()).unwrap();
    let c = parse_cluster_nodes(&reply("ipv6_nodes"), &asked()).unwrap();
    assert_eq!(primary_map(&a), primary_map(&c));
}

#[test]
fn endpoint_styles_agree_after_normalisation() {
    // Same snapshot seen with ip / hostname / unknown-endpoint preference.
    let views: Vec<_> = [
        "slots_resp2_split",
        "slots_resp2_hostname_meta",
        "slots_resp3_pref_hostname",
        "slots_resp2_pref_unknown",
    ]
    .iter()
    .map(|n| parse_cluster_slots(&reply(n), &asked()).unwrap())
    .collect();
    for v in &views[1..] {
        assert_eq!(v.fingerprint(), views[0].fingerprint());
    }
}
