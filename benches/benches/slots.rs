//! shardis-slots micro-benchmarks: key → slot, slot → shard, and parsing large
//! topology replies.
//!
//! Run: `CARGO_TARGET_DIR=/work/targets/slots cargo bench -p shardis-benches --bench slots`

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use redis::Value;
use shardis_slots::{Endpoint, SlotMap, key_slot, parse_cluster_shards, parse_cluster_slots};

const SHARDS: usize = 500;
const KEYS: usize = 1024;

/// Keys of 16..=40 printable bytes; with `tag`, a `{user:NNNN}` tag is embedded.
fn keys(tag: bool) -> Vec<Vec<u8>> {
    let mut rng = StdRng::seed_from_u64(7);
    (0..KEYS)
        .map(|_| {
            let len = rng.random_range(16..=40);
            let mut k: Vec<u8> = (0..len).map(|_| rng.random_range(b'a'..=b'z')).collect();
            if tag {
                let t = format!("{{user:{:04}}}", rng.random_range(0..10_000));
                let at = rng.random_range(0..=len - t.len());
                k[at..at + t.len()].copy_from_slice(t.as_bytes());
            }
            k
        })
        .collect()
}

fn bulk(s: &str) -> Value {
    Value::BulkString(s.as_bytes().to_vec())
}

/// Slot ranges splitting 0..16384 into `n` near-equal runs (~33 slots for 500).
fn ranges(n: usize) -> Vec<(i64, i64)> {
    (0..n)
        .map(|i| ((i * 16384 / n) as i64, (((i + 1) * 16384 / n) - 1) as i64))
        .collect()
}

fn node_id(i: usize) -> String {
    format!("{i:040x}")
}

/// A RESP2 CLUSTER SHARDS reply: `n` shards, primary + 1 replica each.
fn shards_reply(n: usize) -> Value {
    let node = |i: usize, port: i64, role: &str| {
        Value::Array(vec![
            bulk("id"),
            bulk(&node_id(i)),
            bulk("port"),
            Value::Int(port),
            bulk("ip"),
            bulk("10.0.0.1"),
            bulk("endpoint"),
            bulk("10.0.0.1"),
            bulk("role"),
            bulk(role),
            bulk("replication-offset"),
            Value::Int(12345),
            bulk("health"),
            bulk("online"),
        ])
    };
    Value::Array(
        ranges(n)
            .into_iter()
            .enumerate()
            .map(|(i, (a, b))| {
                Value::Array(vec![
                    bulk("slots"),
                    Value::Array(vec![Value::Int(a), Value::Int(b)]),
                    bulk("nodes"),
                    Value::Array(vec![
                        node(2 * i, 10_000 + i as i64, "master"),
                        node(2 * i + 1, 20_000 + i as i64, "replica"),
                    ]),
                ])
            })
            .collect(),
    )
}

/// A RESP2 CLUSTER SLOTS reply: `n` ranges, primary + 1 replica each.
fn slots_reply(n: usize) -> Value {
    let node = |i: usize, port: i64| {
        Value::Array(vec![
            bulk("10.0.0.1"),
            Value::Int(port),
            bulk(&node_id(i)),
            Value::Array(vec![]),
        ])
    };
    Value::Array(
        ranges(n)
            .into_iter()
            .enumerate()
            .map(|(i, (a, b))| {
                Value::Array(vec![
                    Value::Int(a),
                    Value::Int(b),
                    node(2 * i, 10_000 + i as i64),
                    node(2 * i + 1, 20_000 + i as i64),
                ])
            })
            .collect(),
    )
}

fn bench_key_slot(c: &mut Criterion) {
    let mut g = c.benchmark_group("key_slot");
    g.throughput(Throughput::Elements(KEYS as u64));
    for (name, tag) in [("plain_16_40B", false), ("tagged_16_40B", true)] {
        let keys = keys(tag);
        g.bench_function(name, |b| {
            b.iter(|| {
                for k in &keys {
                    black_box(key_slot(black_box(k)));
                }
            })
        });
    }
    g.finish();
}

fn bench_lookup(c: &mut Criterion) {
    let asked = Endpoint::new("10.0.0.1", 10_000);
    let topology = parse_cluster_shards(&shards_reply(SHARDS), &asked).expect("valid reply");
    let map = SlotMap::new(topology.clone());
    let mut rng = StdRng::seed_from_u64(9);
    let slots: Vec<u16> = (0..KEYS).map(|_| rng.random_range(0..16384)).collect();
    let mut g = c.benchmark_group("slot_lookup_500_shards");
    g.throughput(Throughput::Elements(KEYS as u64));
    g.bench_function("SlotMap::shard_index", |b| {
        b.iter(|| {
            for &s in &slots {
                black_box(map.shard_index(black_box(s)));
            }
        })
    });
    g.bench_function("Topology::shard_index_for_slot", |b| {
        b.iter(|| {
            for &s in &slots {
                black_box(topology.shard_index_for_slot(black_box(s)));
            }
        })
    });
    g.bench_function("SlotMap::new", |b| {
        b.iter(|| SlotMap::new(black_box(topology.clone())))
    });
    g.finish();
}

fn bench_parse(c: &mut Criterion) {
    let asked = Endpoint::new("10.0.0.1", 10_000);
    let shards = shards_reply(SHARDS);
    let slots = slots_reply(SHARDS);
    let mut g = c.benchmark_group("parse_500");
    g.bench_function("cluster_shards", |b| {
        b.iter(|| parse_cluster_shards(black_box(&shards), &asked).expect("valid"))
    });
    g.bench_function("cluster_slots", |b| {
        b.iter(|| parse_cluster_slots(black_box(&slots), &asked).expect("valid"))
    });
    g.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3))
        .sample_size(50)
}

criterion_group! {
    name = benches;
    config = config();
    targets = bench_key_slot, bench_lookup, bench_parse
}
criterion_main!(benches);
