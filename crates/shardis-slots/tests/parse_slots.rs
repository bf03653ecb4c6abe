//! CLUSTER SLOTS over the live 7.0.15 fixtures (checklist §7(b)) and
//! hand-built malformed replies.

mod common;

use common::*;
use redis::Value;
use shardis_slots::{Endpoint, Health, SlotMap, TopologyError, parse_cluster_slots};

fn parse(name: &str) -> shardis_slots::Topology {
    let t = parse_cluster_slots(&reply(name), &asked()).unwrap_or_else(|e| panic!("{name}: {e}"));
    check_invariants(&t);
    t
}

const DEFAULT: [(u16, u16, Option<u16>); 3] = [
    (0, 5460, Some(32001)),
    (5461, 10922, Some(32002)),
    (10923, 16383, Some(32003)),
];
const SPLIT: [(u16, u16, Option<u16>); 5] = [
    (0, 5460, Some(32001)),
    (5461, 10922, Some(32002)),
    (10923, 12181, Some(32003)),
    (12182, 12182, Some(32001)),
    (12183, 16383, Some(32003)),
];

#[test]
fn resp2_default_three_ranges_one_replica_each() {
    let t = parse("slots_resp2");
    assert_eq!(layout(&t), DEFAULT);
    assert_eq!(
        replica_ports(&t),
        [[Some(32006)], [Some(32004)], [Some(32005)]]
    );
    assert!(t.is_complete());
    for shard in t.shards() {
        let id = shard.primary.id.as_deref().unwrap();
        assert_eq!(id.len(), 40, "4-element node carries the id");
        assert_eq!(
            shard.primary.health,
            Health::Unknown,
            "SLOTS carries no health"
        );
        assert_eq!(shard.primary.hostname, None, "metadata *0 is empty");
    }
}

#[test]
fn resp3_default_same_map_as_resp2() {
    // `hello_plus_slots_resp3` holds the HELLO map first; `reply` skips it.
    let t3 = parse("hello_plus_slots_resp3");
    assert_eq!(t3, parse("slots_resp2"));
}

#[test]
fn hostname_metadata_resp2_and_resp3() {
    for name in ["slots_resp2_hostname_meta", "slots_resp3_hostname_meta"] {
        let t = parse(name);
        assert_eq!(layout(&t), SPLIT, "{name}");
        let node3 = &t.shards()[2].primary;
        assert_eq!(
            node3.endpoint,
            Some(ep("127.0.0.1", 32003)),
            "ip preference keeps the ip"
        );
        assert_eq!(node3.hostname.as_deref(), Some("node3.test"), "{name}");
        assert_eq!(t.shards()[0].primary.hostname, None);
    }
    assert_eq!(
        parse("slots_resp2_hostname_meta"),
        parse("slots_resp3_hostname_meta")
    );
}

#[test]
fn hostname_preference_uses_hostname_and_ip_for_question_mark() {
    for name in ["slots_resp2_pref_hostname", "slots_resp3_pref_hostname"] {
        let t = parse(name);
        assert_eq!(layout(&t), SPLIT, "{name}");
        assert_eq!(
            t.shards()[2].primary.endpoint,
            Some(ep("node3.test", 32003))
        );
        // `?` endpoints carry `ip` metadata: that is where to connect.
        assert_eq!(t.shards()[0].primary.endpoint, Some(ep("127.0.0.1", 32001)));
        assert_eq!(
            t.shards()[0].replicas[0].endpoint,
            Some(ep("127.0.0.1", 32006))
        );
        assert_eq!(
            t.shards()[0].primary.hostname,
            None,
            "`?` is not a hostname"
        );
    }
    assert_eq!(
        parse("slots_resp2_pref_hostname"),
        parse("slots_resp3_pref_hostname")
    );
}

fn node(endpoint: Value, port: i64, id: &str, meta: Vec<Value>) -> Value {
    arr(vec![endpoint, i(port), s(id), arr(meta)])
}

#[test]
fn question_mark_primary_without_ip_is_kept_unknown_never_promoted() {
    let reply = arr(vec![arr(vec![
        i(0),
        i(16383),
        node(s("?"), 7000, "p", vec![]),
        node(s("10.0.0.2"), 7001, "r", vec![]),
    ])]);
    let t = parse_cluster_slots(&reply, &asked()).unwrap();
    check_invariants(&t);
    let shard = &t.shards()[0];
    assert_eq!(shard.primary.id.as_deref(), Some("p"));
    assert_eq!(shard.primary.endpoint, None);
    assert_eq!(shard.replicas.len(), 1);
    assert_eq!(shard.replicas[0].endpoint, Some(ep("10.0.0.2", 7001)));
    assert_eq!(SlotMap::new(t).shard(5).unwrap().primary.endpoint, None);
}

#[test]
fn every_node_unknown_keeps_range() {
    let reply = arr(vec![arr(vec![
        i(0),
        i(10),
        node(s("?"), 7000, "p", vec![]),
        node(s("?"), 7001, "r", vec![]),
    ])]);
    let t = parse_cluster_slots(&reply, &asked()).unwrap();
    assert_eq!(t.covered_slots(), 11);
    assert!(
        t.shards()[0].primary.endpoint.is_none() && t.shards()[0].replicas[0].endpoint.is_none()
    );
}

#[test]
fn unknown_endpoint_preference_null_means_asked_host() {
    let asked = Endpoint::new("asked.test", 32001);
    for name in ["slots_resp2_pref_unknown", "slots_resp3_pref_unknown"] {
        let t = parse_cluster_slots(&reply(name), &asked).unwrap();
        check_invariants(&t);
        assert_eq!(layout(&t), SPLIT, "{name}");
        for shard in t.shards() {
            let p = shard.primary.endpoint.as_ref().unwrap();
            assert_eq!(
                p.host, "asked.test",
                "{name}: NULL endpoint → the answering host"
            );
            assert_eq!(
                shard.primary.ip.as_deref(),
                Some("127.0.0.1"),
                "metadata ip kept"
            );
        }
        assert_eq!(
            t.shards()[2].primary.hostname.as_deref(),
            Some("node3.test")
        );
    }
}

#[test]
fn empty_string_endpoint_means_asked_host() {
    let asked = Endpoint::new("asked.test", 32007);
    let t = parse_cluster_slots(&reply("single_partial_slots"), &asked).unwrap();
    assert_eq!(
        t.shards()[0].primary.endpoint,
        Some(ep("asked.test", 32007))
    );
    assert_eq!(t.shards()[0].primary.ip, None, "\"\" is not an ip");
}

#[test]
fn ranges_without_replicas_and_non_contiguous_ranges_of_one_primary() {
    let t = parse("single_partial_slots");
    assert_eq!(t.shards().len(), 1, "0-100 and 200-300 belong to one shard");
    assert_eq!(t.shards()[0].slots.len(), 2);
    assert!(t.shards()[0].replicas.is_empty());
    assert_eq!(t.covered_slots(), 202);
}

#[test]
fn single_slot_range_splits_neighbour() {
    let t = parse("slots_resp2_split");
    assert_eq!(layout(&t), SPLIT);
    assert_eq!(
        t.shards().len(),
        3,
        "32001 owns 0-5460 and 12182: one shard"
    );
    let map = SlotMap::new(t);
    let port = |slot| {
        map.shard(slot)
            .unwrap()
            .primary
            .endpoint
            .as_ref()
            .unwrap()
            .port
    };
    assert_eq!(
        (port(12181), port(12182), port(12183)),
        (32003, 32001, 32003)
    );
}

#[test]
fn gaps_have_no_owner() {
    let map = SlotMap::new(parse("single_partial_slots"));
    assert!(map.shard(100).is_some() && map.shard(200).is_some());
    for slot in [101, 150, 199, 301, 16383] {
        assert_eq!(map.shard_index(slot), None, "slot {slot}");
    }
}

#[test]
fn fresh_node_star_zero_is_no_slots() {
    assert_eq!(
        parse_cluster_slots(&reply("fresh_slots"), &asked()),
        Err(TopologyError::NoSlots)
    );
}

#[test]
fn ipv6_endpoint_unbracketed_internally() {
    let t = parse("ipv6_slots_resp2");
    let p = t.shards()[0].primary.endpoint.clone().unwrap();
    assert_eq!(p.host, "::1");
    assert_eq!(p.to_string(), "[::1]:32011");
}

#[test]
fn legacy_node_forms_and_extra_elements() {
    let reply = arr(vec![
        arr(vec![i(0), i(99), arr(vec![s("10.0.0.1"), i(7000)])]),
        arr(vec![
            i(100),
            i(199),
            arr(vec![s("10.0.0.2"), i(7001), s("id2")]),
        ]),
        arr(vec![
            i(200),
            i(299),
            arr(vec![
                s("10.0.0.3"),
                i(7002),
                s("id3"),
                arr(vec![]),
                s("extra"),
                i(5),
            ]),
            arr(vec![s("10.0.0.4"), i(7003), Value::Nil]),
        ]),
    ]);
    let t = parse_cluster_slots(&reply, &asked()).unwrap();
    check_invariants(&t);
    let sh = t.shards();
    assert_eq!(
        (sh[0].primary.id.as_deref(), sh[1].primary.id.as_deref()),
        (None, Some("id2"))
    );
    assert_eq!(sh[2].primary.endpoint, Some(ep("10.0.0.3", 7002)));
    assert_eq!(sh[2].replicas[0].id, None, "NULL id tolerated");
}

#[test]
fn failed_primary_gone_after_failover() {
    let t = parse("slots_resp2_with_failed");
    assert_eq!(
        layout(&t)[1],
        (5461, 10922, Some(32004)),
        "new primary, 3-element range"
    );
    assert!(t.shards()[1].replicas.is_empty());
    let ports: Vec<u16> = t
        .shards()
        .iter()
        .flat_map(|s| std::iter::once(&s.primary).chain(&s.replicas))
        .map(|n| n.endpoint.as_ref().unwrap().port)
        .collect();
    assert!(!ports.contains(&32002), "the dead master is absent");
}

#[test]
fn port_zero_makes_node_unusable_not_an_error() {
    let reply = arr(vec![arr(vec![
        i(0),
        i(5),
        node(s("10.0.0.1"), 0, "p", vec![]),
    ])]);
    let t = parse_cluster_slots(&reply, &asked()).unwrap();
    assert_eq!(t.shards()[0].primary.endpoint, None);
}

#[test]
fn wildcard_endpoint_means_asked_host() {
    let reply = arr(vec![arr(vec![
        i(0),
        i(5),
        node(s("0.0.0.0"), 7000, "p", vec![]),
    ])]);
    let t = parse_cluster_slots(&reply, &asked()).unwrap();
    assert_eq!(t.shards()[0].primary.endpoint, Some(ep("127.0.0.1", 7000)));
}
