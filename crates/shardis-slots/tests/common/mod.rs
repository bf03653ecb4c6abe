//! Shared by the integration tests: fixtures (embedded at compile time, so
//! tests never read outside the crate), invariants and a `Value` strategy.
#![allow(dead_code)] // each test binary uses a different subset

use proptest::prelude::*;
use redis::Value;
use shardis_slots::{Endpoint, SLOT_COUNT, SlotMap, Topology};

macro_rules! vectors {
    ($($name:literal),* $(,)?) => {
        /// Raw bytes of a fixture by file stem.
        pub fn raw(name: &str) -> &'static [u8] {
            match name {
                $($name => include_bytes!(concat!("../vectors/", $name, ".bin")),)*
                other => panic!("no vector {other}"),
            }
        }
    };
}

vectors!(
    "fresh_get_foo",
    "fresh_myid",
    "fresh_nodes",
    "fresh_shards",
    "fresh_slots",
    "hello_plus_slots_resp3",
    "ipv6_moved",
    "ipv6_nodes",
    "ipv6_slots_resp2",
    "nodes",
    "nodes_from_replica",
    "nodes_split",
    "nodes_with_failed",
    "shards_resp2",
    "shards_resp2_pref_hostname",
    "shards_resp2_pref_unknown",
    "shards_resp2_split",
    "shards_resp2_with_failed",
    "shards_resp3",
    "single_partial_get_foo",
    "single_partial_info",
    "single_partial_nodes",
    "single_partial_shards",
    "single_partial_slots",
    "slots_resp2",
    "slots_resp2_hostname_meta",
    "slots_resp2_pref_hostname",
    "slots_resp2_pref_unknown",
    "slots_resp2_split",
    "slots_resp2_with_failed",
    "slots_resp3_hostname_meta",
    "slots_resp3_pref_hostname",
    "slots_resp3_pref_unknown",
);

/// The command reply in a fixture. RESP3 captures start with the `HELLO 3`
/// map; the reply is the second value on the stream.
pub fn reply(name: &str) -> Value {
    let mut parser = redis::Parser::new();
    let mut input = raw(name);
    let first = parser.parse_value(&mut input).expect("first value");
    if matches!(first, Value::Map(_)) && (name.contains("resp3")) {
        parser.parse_value(&mut input).expect("reply after HELLO")
    } else {
        first
    }
}

/// The node the captures were taken from (127.0.0.1:32001 cluster).
pub fn asked() -> Endpoint {
    Endpoint::new("127.0.0.1", 32001)
}

pub fn ep(host: &str, port: u16) -> Endpoint {
    Endpoint::new(host, port)
}

/// Slot → primary endpoint for all 16384 slots.
pub fn primary_map(t: &Topology) -> Vec<Option<Option<Endpoint>>> {
    let map = SlotMap::new(t.clone());
    (0..SLOT_COUNT as u16)
        .map(|s| map.shard(s).map(|sh| sh.primary.endpoint.clone()))
        .collect()
}

/// `(start, end, primary port)` per range, in slot order: a compact shape check.
pub fn layout(t: &Topology) -> Vec<(u16, u16, Option<u16>)> {
    t.ranges()
        .map(|(r, i)| {
            (
                r.start,
                r.end,
                t.shards()[i].primary.endpoint.as_ref().map(|e| e.port),
            )
        })
        .collect()
}

/// Replica ports of each shard, in shard order.
pub fn replica_ports(t: &Topology) -> Vec<Vec<Option<u16>>> {
    t.shards()
        .iter()
        .map(|s| {
            s.replicas
                .iter()
                .map(|r| r.endpoint.as_ref().map(|e| e.port))
                .collect()
        })
        .collect()
}

/// The invariants every parser result must satisfy (also checked by the
/// fuzz targets).
pub fn check_invariants(t: &Topology) {
    let mut prev_end: Option<u16> = None;
    let mut covered = 0;
    for (r, i) in t.ranges() {
        assert!(r.start <= r.end && r.end < SLOT_COUNT as u16, "{r:?}");
        if let Some(p) = prev_end {
            assert!(r.start > p, "overlap/unsorted at {r:?}");
        }
        prev_end = Some(r.end);
        covered += r.len();
        assert!(i < t.shards().len());
    }
    assert_eq!(covered, t.covered_slots());
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

/// Arbitrary `redis::Value` trees, biased towards topology-like shapes
/// (small ints, slot-ish and port-ish numbers, short strings).
pub fn arb_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Nil),
        Just(Value::Okay),
        any::<i64>().prop_map(Value::Int),
        (-2i64..17000).prop_map(Value::Int),
        (0i64..70000).prop_map(Value::Int),
        prop::sample::select(vec![
            "",
            "?",
            "ip",
            "hostname",
            "slots",
            "nodes",
            "id",
            "port",
            "tls-port",
            "endpoint",
            "role",
            "health",
            "master",
            "replica",
            "online",
            "fail",
            "127.0.0.1",
            "::1",
            "5",
        ])
        .prop_map(|s| Value::BulkString(s.as_bytes().to_vec())),
        prop::collection::vec(any::<u8>(), 0..12).prop_map(Value::BulkString),
        "[a-z0-9:.?]{0,8}".prop_map(Value::SimpleString),
        any::<bool>().prop_map(Value::Boolean),
        any::<f64>().prop_map(Value::Double),
    ];
    leaf.prop_recursive(5, 96, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
            prop::collection::vec((inner.clone(), inner.clone()), 0..5).prop_map(Value::Map),
            prop::collection::vec(inner, 0..4).prop_map(Value::Set),
        ]
    })
}

pub fn s(x: &str) -> Value {
    Value::BulkString(x.as_bytes().to_vec())
}
pub fn i(n: i64) -> Value {
    Value::Int(n)
}
pub fn arr(items: Vec<Value>) -> Value {
    Value::Array(items)
}
