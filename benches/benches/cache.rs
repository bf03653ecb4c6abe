//! shardis-cache benchmarks against a real redis-server (one standalone node in ring mode,
//! started by shardis-testkit), in one run:
//!
//! - the hit path of `Cache::get_or_load` beside a raw client `GET` plus the same envelope
//!   decode and freshness check (target: within 10%);
//! - the stampede: 1,000 concurrent requests for a cold key, loads with no protection (each
//!   caller `GET`s, loads, `SET`s), in-process single-flight, and the fill lock across 4 cache
//!   instances with their own clients (standing in for 4 processes).
//!
//! Run: `cargo bench -p shardis-benches --bench cache`
//!
//! Criterion reports each operation; a table is printed at the end: µs per hit (best of 3
//! interleaved timed loops of the same closures, sequential callers) and loader calls per
//! stampede.

use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use criterion::Criterion;
use redis::AsyncCommands;
use serde::{Deserialize, Serialize};
use shardis::RingNode;
use shardis_cache::{Cache, FillLock};
use tokio::runtime::Runtime;

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Product {
    id: u64,
    name: String,
    description: String,
    price_cents: i64,
    tags: Vec<String>,
}

fn product(id: u64) -> Product {
    Product {
        id,
        name: format!("product {id}"),
        description: "a sturdy widget for every household, in three colours".into(),
        price_cents: 1999,
        tags: vec!["home".into(), "garden".into(), "sale".into()],
    }
}

struct Env {
    rt: Runtime,
    _node: shardis_testkit::Standalone,
    client: shardis::Client,
}

fn env() -> Env {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let (node, client) = rt.block_on(async {
        let node = shardis_testkit::Standalone::start(1)
            .await
            .expect("redis-server (install redis-server)");
        let client = shardis::Client::builder()
            .ring([RingNode::new("a", node.nodes()[0].addr(), 1)])
            .build()
            .await
            .expect("client");
        (node, client)
    });
    Env {
        rt,
        _node: node,
        client,
    }
}

/// A raw GET plus the same envelope decode and freshness check the cache does.
async fn raw_hit(client: &shardis::Client, key: &str) -> Option<Product> {
    match client.send(redis::cmd("GET").arg(key)).await {
        Ok(redis::Value::BulkString(bytes)) => {
            let (meta, value) = shardis_cache::decode::<Product>(&bytes).ok()?;
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis() as u64)
                .unwrap_or(0);
            (now < meta.soft_expiry_ms).then_some(value).flatten()
        }
        _ => None,
    }
}

async fn cache_hit(cache: &Cache<Product>) -> Product {
    cache
        .get_or_load(&42u64, || async { Ok::<_, std::io::Error>(product(42)) })
        .await
        .expect("hit")
}

fn time_loop(n: usize, mut f: impl FnMut()) -> f64 {
    let start = Instant::now();
    for _ in 0..n {
        f();
    }
    start.elapsed().as_secs_f64() * 1e6 / n as f64
}

const STAMPEDE: usize = 1000;
const LOAD_TIME: Duration = Duration::from_millis(20);

async fn stampede_none(client: &shardis::Client, key: String, loads: &Arc<AtomicUsize>) {
    let calls = (0..STAMPEDE).map(|_| {
        let (mut c, key, loads) = (client.clone(), key.clone(), loads.clone());
        tokio::spawn(async move {
            let hit: Option<Vec<u8>> = c.get(&key).await.expect("GET");
            if hit.is_none() {
                loads.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(LOAD_TIME).await;
                let bytes = serde_json::to_vec(&product(1)).expect("json");
                let _: () = c.set_ex(&key, bytes, 60).await.expect("SET");
            }
        })
    });
    futures::future::join_all(calls).await;
}

async fn stampede_cache(caches: &[Cache<Product>], id: u64, loads: &Arc<AtomicUsize>) {
    let per = STAMPEDE / caches.len();
    let calls = caches.iter().flat_map(|cache| {
        (0..per).map(move |_| {
            let (cache, loads) = (cache.clone(), loads.clone());
            tokio::spawn(async move {
                cache
                    .get_or_load(&id, move || async move {
                        loads.fetch_add(1, Ordering::Relaxed);
                        tokio::time::sleep(LOAD_TIME).await;
                        Ok::<_, std::io::Error>(product(id))
                    })
                    .await
                    .expect("value")
            })
        })
    });
    futures::future::join_all(calls).await;
}

/// `CACHE_BENCH_PROFILE=raw|cache` (and `CACHE_BENCH_N`, default 20,000): run only that hit
/// loop and exit, for a profiler (`perf record`, `valgrind --tool=callgrind`: instructions per
/// call are the difference of two runs of different N over the difference of N).
fn profile_only(env: &Env, cache: &Cache<Product>, key: &str) -> bool {
    let Ok(mode) = std::env::var("CACHE_BENCH_PROFILE") else {
        return false;
    };
    let n: usize = std::env::var("CACHE_BENCH_N")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(20_000);
    let took = match mode.as_str() {
        "raw" => time_loop(n, || {
            black_box(env.rt.block_on(raw_hit(&env.client, key)));
        }),
        _ => time_loop(n, || {
            black_box(env.rt.block_on(cache_hit(cache)));
        }),
    };
    println!("{mode}: {n} calls, {took:.2} µs per call");
    true
}

fn main() {
    let env = env();
    let client = env.client.clone();
    let cache = Cache::<Product>::builder(client.clone())
        .namespace("bench")
        .ttl(Duration::from_secs(3600))
        .build()
        .expect("cache");
    env.rt.block_on(cache_hit(&cache));
    let key = "{bench:0:42}:v";
    assert!(env.rt.block_on(raw_hit(&client, key)).is_some());
    if profile_only(&env, &cache, key) {
        return;
    }

    let mut c = Criterion::default().configure_from_args();
    {
        let mut group = c.benchmark_group("hit");
        group.bench_function("raw GET + decode", |b| {
            b.iter(|| black_box(env.rt.block_on(raw_hit(&client, key))))
        });
        group.bench_function("get_or_load", |b| {
            b.iter(|| black_box(env.rt.block_on(cache_hit(&cache))))
        });
        group.finish();
    }

    // Stampede modes: one Cache (single-flight), or 4 caches over 4 clients with the fill lock.
    let single = vec![cache.clone()];
    let fleet: Vec<Cache<Product>> = (0..4)
        .map(|_| {
            let client = env.rt.block_on(async {
                shardis::Client::builder()
                    .ring([RingNode::new("a", env._node.nodes()[0].addr(), 1)])
                    .build()
                    .await
                    .expect("client")
            });
            Cache::<Product>::builder(client)
                .namespace("bench-fleet")
                .ttl(Duration::from_secs(3600))
                .fill_lock(FillLock::default())
                .build()
                .expect("cache")
        })
        .collect();
    let unlocked_fleet: Vec<Cache<Product>> = (0..4)
        .map(|_| {
            let client = env.rt.block_on(async {
                shardis::Client::builder()
                    .ring([RingNode::new("a", env._node.nodes()[0].addr(), 1)])
                    .build()
                    .await
                    .expect("client")
            });
            Cache::<Product>::builder(client)
                .namespace("bench-fleet-unlocked")
                .ttl(Duration::from_secs(3600))
                .build()
                .expect("cache")
        })
        .collect();
    let next = AtomicUsize::new(1_000_000);
    let mut stampedes: Vec<(&str, Arc<AtomicUsize>, Arc<AtomicUsize>)> = Vec::new();
    {
        let mut group = c.benchmark_group("stampede of 1000 on a cold key");
        group.sample_size(10);
        let modes: [(&str, usize); 4] = [
            ("no protection", 0),
            ("single-flight (1 process)", 1),
            ("single-flight only (4 processes)", 2),
            ("fill lock (4 processes)", 3),
        ];
        for (name, mode) in modes {
            let loads = Arc::new(AtomicUsize::new(0));
            let runs = Arc::new(AtomicUsize::new(0));
            group.bench_function(name, |b| {
                b.iter(|| {
                    let id = next.fetch_add(1, Ordering::Relaxed) as u64;
                    runs.fetch_add(1, Ordering::Relaxed);
                    env.rt.block_on(async {
                        match mode {
                            0 => stampede_none(&client, format!("bench:none:{id}"), &loads).await,
                            1 => stampede_cache(&single, id, &loads).await,
                            2 => stampede_cache(&unlocked_fleet, id, &loads).await,
                            _ => stampede_cache(&fleet, id, &loads).await,
                        }
                    })
                })
            });
            stampedes.push((name, loads, runs));
        }
        group.finish();
    }
    c.final_summary();

    // The table: interleaved timed loops, best of 3.
    let n = 20_000;
    let (mut raw, mut cached) = (f64::MAX, f64::MAX);
    for _ in 0..3 {
        raw = raw.min(time_loop(n, || {
            black_box(env.rt.block_on(raw_hit(&client, key)));
        }));
        cached = cached.min(time_loop(n, || {
            black_box(env.rt.block_on(cache_hit(&cache)));
        }));
    }
    println!("\n| hit path (sequential, one caller) | µs per call | vs raw |");
    println!("|---|---|---|");
    println!("| raw client GET + envelope decode | {raw:.2} | 1.00 |");
    println!(
        "| `Cache::get_or_load` | {cached:.2} | {:.2} |",
        cached / raw
    );
    println!(
        "\n| stampede: 1,000 concurrent requests, cold key, 20 ms load | loader calls per stampede |"
    );
    println!("|---|---|");
    for (name, loads, runs) in &stampedes {
        let runs = runs.load(Ordering::Relaxed).max(1);
        println!(
            "| {name} | {:.1} |",
            loads.load(Ordering::Relaxed) as f64 / runs as f64
        );
    }
}
