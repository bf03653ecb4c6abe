//! Raw RESP bytes → `redis::parse_redis_value` → the three topology parsers.
//! On success every invariant of a `Topology` must hold, the O(1) `SlotMap`
//! must agree with the binary-search lookup, and re-encoding the result as a
//! CLUSTER SLOTS reply must parse back to the same slot → primary map.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "invariants.rs"]
mod invariants;
use invariants::check;
use redis::Value;
use shardis_slots::{
    Endpoint, Topology, parse_cluster_nodes, parse_cluster_shards, parse_cluster_slots,
};

fuzz_target!(|data: &[u8]| {
    // Fixtures may hold a HELLO map before the reply: try every value on the stream.
    let mut parser = redis::Parser::new();
    let mut input = data;
    for _ in 0..2 {
        let Ok(value) = parser.parse_value(&mut input) else {
            return;
        };
        let asked = Endpoint::new("127.0.0.1", 32001);
        for parse in [
            parse_cluster_slots,
            parse_cluster_shards,
            parse_cluster_nodes,
        ] {
            if let Ok(t) = parse(&value, &asked) {
                check(&t);
                roundtrip(&t, &asked);
            }
        }
    }
});

/// Re-encode as CLUSTER SLOTS (RESP2 shape) and parse again.
fn roundtrip(t: &Topology, asked: &Endpoint) {
    let bulk = |s: &str| Value::BulkString(s.as_bytes().to_vec());
    let node = |n: &shardis_slots::Node| {
        let (host, port) = match &n.endpoint {
            Some(e) => (e.host.as_str(), i64::from(e.port)),
            None => ("?", 1), // "?" without ip metadata: unknown again
        };
        let mut meta = Vec::new();
        if let Some(h) = &n.hostname {
            meta.extend([bulk("hostname"), bulk(h)]);
        }
        let id = n.id.as_deref().map_or(Value::Nil, bulk);
        Value::Array(vec![bulk(host), Value::Int(port), id, Value::Array(meta)])
    };
    let ranges = t
        .ranges()
        .map(|(r, i)| {
            let s = &t.shards()[i];
            let mut v = vec![
                Value::Int(r.start.into()),
                Value::Int(r.end.into()),
                node(&s.primary),
            ];
            v.extend(s.replicas.iter().map(node));
            Value::Array(v)
        })
        .collect();
    let again = parse_cluster_slots(&Value::Array(ranges), asked).expect("re-encoded map parses");
    let owner = |t: &Topology| -> Vec<_> {
        t.ranges()
            .map(|(r, i)| {
                (
                    r,
                    t.shards()[i].primary.endpoint.clone(),
                    t.shards()[i].primary.id.clone(),
                )
            })
            .collect()
    };
    assert_eq!(owner(t), owner(&again));
}
