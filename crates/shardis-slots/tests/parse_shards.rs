//! CLUSTER SHARDS over the live fixtures (checklist §7(b)) and hand-built
//! malformed replies.

mod common;

use common::*;
use proptest::prelude::*;
use redis::Value;
use shardis_slots::{Endpoint, Health, TopologyError, parse_cluster_shards, parse_cluster_slots};

fn parse(name: &str) -> shardis_slots::Topology {
    let t = parse_cluster_shards(&reply(name), &asked()).unwrap_or_else(|e| panic!("{name}: {e}"));
    check_invariants(&t);
    t
}

/// A RESP2 flattened map.
fn flat(fields: &[(&str, Value)]) -> Value {
    arr(fields.iter().flat_map(|(k, v)| [s(k), v.clone()]).collect())
}

fn node(id: &str, port: i64, role: &str) -> Vec<(&'static str, Value)> {
    vec![
        ("id", s(id)),
        ("port", i(port)),
        ("ip", s("10.0.0.1")),
        ("endpoint", s("10.0.0.1")),
        ("role", s(role)),
        ("replication-offset", i(1)),
        ("health", s("online")),
    ]
}

fn shard(slots: &[i64], nodes: Vec<Value>) -> Value {
    flat(&[
        ("slots", arr(slots.iter().map(|&n| i(n)).collect())),
        ("nodes", arr(nodes)),
    ])
}

fn one(slots: &[i64], nodes: Vec<Value>) -> Result<shardis_slots::Topology, TopologyError> {
    parse_cluster_shards(&arr(vec![shard(slots, nodes)]), &asked())
}

fn without(mut fields: Vec<(&'static str, Value)>, key: &str) -> Vec<(&'static str, Value)> {
    fields.retain(|(k, _)| *k != key);
    fields
}

#[test]
fn resp2_and_resp3_default_cluster() {
    let t2 = parse("shards_resp2");
    let t3 = parse("shards_resp3");
    assert_eq!(
        t2, t3,
        "RESP3 maps and RESP2 flat arrays give the same topology"
    );
    assert_eq!(
        layout(&t2),
        [
            (0, 5460, Some(32001)),
            (5461, 10922, Some(32002)),
            (10923, 16383, Some(32003))
        ]
    );
    assert_eq!(
        replica_ports(&t2),
        [[Some(32006)], [Some(32004)], [Some(32005)]]
    );
    assert!(
        t2.shards()
            .iter()
            .all(|s| s.primary.health == Health::Online)
    );
}

#[test]
fn unsorted_shard_order_is_normalised() {
    // The capture lists 0-5460, 10923-16383, 5461-10922.
    let Value::Array(shards) = reply("shards_resp2") else {
        panic!()
    };
    assert_eq!(shards.len(), 3);
    let t = parse("shards_resp2");
    let starts: Vec<u16> = t.shards().iter().map(|s| s.slots[0].start).collect();
    assert_eq!(starts, [0, 5461, 10923]);
}

#[test]
fn split_slot_pairs() {
    let t = parse("shards_resp2_split");
    assert_eq!(
        t.shards()[2].slots.len(),
        2,
        "flat pairs 10923,12181,12183,16383"
    );
    assert_eq!(t.shard_index_for_slot(12182), Some(0));
}

#[test]
fn slotless_failed_master_shard_is_skipped() {
    let t = parse("shards_resp2_with_failed");
    assert_eq!(
        t.shards().len(),
        3,
        "4 shards in the reply, the dead one owns nothing"
    );
    assert!(t.is_complete());
    let Value::Array(raw) = reply("shards_resp2_with_failed") else {
        panic!()
    };
    assert_eq!(raw.len(), 4);
}

#[test]
fn fresh_node_only_slotless_shard_is_no_slots() {
    assert_eq!(
        parse_cluster_shards(&reply("fresh_shards"), &asked()),
        Err(TopologyError::NoSlots)
    );
}

#[test]
fn unknown_endpoint_empty_string_means_asked_host() {
    let asked = Endpoint::new("asked.test", 1);
    let t = parse_cluster_shards(&reply("shards_resp2_pref_unknown"), &asked).unwrap();
    for sh in t.shards() {
        assert_eq!(sh.primary.endpoint.as_ref().unwrap().host, "asked.test");
        assert_eq!(sh.primary.ip.as_deref(), Some("127.0.0.1"));
    }
    assert_eq!(
        t.shards()[2].primary.hostname.as_deref(),
        Some("node3.test")
    );
    // The isolated node: `ip` and `endpoint` both "".
    let t = parse_cluster_shards(&reply("single_partial_shards"), &asked).unwrap();
    assert_eq!(
        t.shards()[0].primary.endpoint,
        Some(ep("asked.test", 32007))
    );
    assert_eq!(t.covered_slots(), 202);
}

#[test]
fn hostname_preference_question_mark_uses_ip() {
    let t = parse("shards_resp2_pref_hostname");
    assert_eq!(
        t.shards()[2].primary.endpoint,
        Some(ep("node3.test", 32003))
    );
    assert_eq!(
        t.shards()[2].primary.hostname.as_deref(),
        Some("node3.test")
    );
    assert_eq!(
        t.shards()[2].replicas[0].endpoint,
        Some(ep("127.0.0.1", 32005)),
        "`?` → ip"
    );
}

#[test]
fn health_values_and_documented_failed() {
    for (text, health) in [
        ("online", Health::Online),
        ("fail", Health::Failed),
        ("failed", Health::Failed),
        ("loading", Health::Loading),
        ("future-state", Health::Unknown),
    ] {
        let mut replica = node("r", 7001, "replica");
        replica.retain(|(k, _)| *k != "health");
        replica.push(("health", s(text)));
        let t = one(
            &[0, 10],
            vec![flat(&node("p", 7000, "master")), flat(&replica)],
        )
        .unwrap();
        assert_eq!(t.shards()[0].replicas[0].health, health, "{text}");
    }
}

#[test]
fn tls_port_without_port_and_string_slots() {
    let mut n = without(node("p", 7000, "master"), "port");
    n.push(("tls-port", i(7400)));
    let legacy = flat(&[
        ("slots", arr(vec![s("0"), s("99")])),
        ("nodes", arr(vec![flat(&n)])),
    ]);
    let t = parse_cluster_shards(&arr(vec![legacy]), &asked()).unwrap();
    assert_eq!(t.shards()[0].primary.endpoint, Some(ep("10.0.0.1", 7400)));
    assert_eq!(t.covered_slots(), 100);
    // Both present: the plain port wins.
    let mut both = node("p", 7000, "master");
    both.push(("tls-port", i(7400)));
    let t = one(&[0, 0], vec![flat(&both)]).unwrap();
    assert_eq!(t.shards()[0].primary.endpoint.as_ref().unwrap().port, 7000);
}

#[test]
fn resp3_map_shard_with_primary_not_first() {
    let map = |fields: &[(&str, Value)]| {
        Value::Map(fields.iter().map(|(k, v)| (s(k), v.clone())).collect())
    };
    let sh = map(&[
        ("slots", arr(vec![i(0), i(16383)])),
        (
            "nodes",
            arr(vec![
                map(&node("r", 7001, "replica")),
                map(&node("p", 7000, "master")),
            ]),
        ),
    ]);
    let t = parse_cluster_shards(&arr(vec![sh]), &asked()).unwrap();
    assert_eq!(t.shards()[0].primary.id.as_deref(), Some("p"));
}

#[test]
fn reject_odd_slots_inverted_and_out_of_range() {
    let nodes = || vec![flat(&node("p", 7000, "master"))];
    assert!(matches!(
        one(&[0, 10, 20], nodes()),
        Err(TopologyError::OddLength { len: 3, .. })
    ));
    assert!(matches!(
        one(&[10, 5], nodes()),
        Err(TopologyError::InvertedRange {
            start: 10,
            end: 5,
            ..
        })
    ));
    assert!(matches!(
        one(&[0, 16384], nodes()),
        Err(TopologyError::SlotOutOfRange { value: 16384, .. })
    ));
    assert!(matches!(
        one(&[-1, 5], nodes()),
        Err(TopologyError::SlotOutOfRange { value: -1, .. })
    ));
    let bad = flat(&[("slots", arr(vec![s("x"), i(3)])), ("nodes", arr(nodes()))]);
    assert!(parse_cluster_shards(&arr(vec![bad]), &asked()).is_err());
}

#[test]
fn reject_missing_fields() {
    for field in ["id", "ip", "port", "role"] {
        let e = one(
            &[0, 10],
            vec![flat(&without(node("p", 7000, "master"), field))],
        )
        .unwrap_err();
        assert!(
            matches!(e, TopologyError::MissingField { field: f, ref path } if f == field && path == "shard[0].nodes[0]"),
            "{field}: {e}"
        );
    }
    let e = parse_cluster_shards(
        &arr(vec![flat(&[("slots", arr(vec![i(0), i(1)]))])]),
        &asked(),
    )
    .unwrap_err();
    assert!(matches!(
        e,
        TopologyError::MissingField { field: "nodes", .. }
    ));
}

#[test]
fn reject_bad_nodes_lists() {
    assert!(matches!(
        one(&[0, 10], vec![]),
        Err(TopologyError::PrimaryCount { found: 0, .. })
    ));
    let two = vec![flat(&node("a", 1, "master")), flat(&node("b", 2, "master"))];
    assert!(matches!(
        one(&[0, 10], two),
        Err(TopologyError::PrimaryCount { found: 2, .. })
    ));
    let mut weird = without(node("a", 1, "master"), "role");
    weird.push(("role", s("arbiter")));
    assert!(matches!(
        one(&[0, 10], vec![flat(&weird)]),
        Err(TopologyError::UnknownValue { .. })
    ));
    let mut dup = node("a", 1, "master");
    dup.push(("port", i(2)));
    assert!(matches!(
        one(&[0, 10], vec![flat(&dup)]),
        Err(TopologyError::DuplicateField { .. })
    ));
    let odd = arr(vec![s("id")]);
    assert!(matches!(
        one(&[0, 10], vec![odd]),
        Err(TopologyError::OddLength { .. })
    ));
    let mut badport = without(node("a", 1, "master"), "port");
    badport.push(("port", i(70000)));
    assert!(matches!(
        one(&[0, 10], vec![flat(&badport)]),
        Err(TopologyError::BadPort { .. })
    ));
}

#[test]
fn reject_same_primary_in_two_shards() {
    let a = shard(&[0, 100], vec![flat(&node("a", 1, "master"))]);
    let b = shard(&[200, 300], vec![flat(&node("a", 1, "master"))]);
    assert!(matches!(
        parse_cluster_shards(&arr(vec![a, b]), &asked()),
        Err(TopologyError::DuplicatePrimary { .. })
    ));
}

#[test]
fn reject_overlap_between_shards() {
    let a = shard(&[0, 100], vec![flat(&node("a", 1, "master"))]);
    let b = shard(&[100, 200], vec![flat(&node("b", 2, "master"))]);
    assert!(matches!(
        parse_cluster_shards(&arr(vec![a, b]), &asked()),
        Err(TopologyError::OverlappingRanges { .. })
    ));
}

#[test]
fn same_map_as_slots_for_every_snapshot() {
    for (slots, shards) in [
        ("slots_resp2", "shards_resp2"),
        ("slots_resp2_split", "shards_resp2_split"),
        ("slots_resp2_with_failed", "shards_resp2_with_failed"),
        ("single_partial_slots", "single_partial_shards"),
    ] {
        let a = parse_cluster_slots(&reply(slots), &asked()).unwrap();
        assert_eq!(
            primary_map(&a),
            primary_map(&parse(shards)),
            "{slots} vs {shards}"
        );
        assert_eq!(
            a.fingerprint(),
            parse(shards).fingerprint(),
            "{slots} vs {shards}"
        );
    }
}

proptest! {
    #[test]
    fn never_panics_on_arbitrary_values(v in arb_value()) {
        if let Ok(t) = parse_cluster_shards(&v, &asked()) {
            check_invariants(&t);
        }
    }

    #[test]
    fn never_panics_on_shards_shaped_values(
        shards in prop::collection::vec((prop::collection::vec(-1i64..16400, 0..5),
            prop::collection::vec(prop::collection::vec((prop::sample::select(vec![
                "id", "port", "tls-port", "ip", "endpoint", "hostname", "role", "health"]), arb_value()), 0..9), 0..3)), 0..4)
    ) {
        let v = arr(shards.into_iter().map(|(slots, nodes)| {
            shard(&slots, nodes.into_iter().map(|n| flat(&n)).collect())
        }).collect());
        if let Ok(t) = parse_cluster_shards(&v, &asked()) {
            check_invariants(&t);
        }
    }
}
