//! shardis-cache (its in-process tier L1 off and on) against its peers on the same local
//! redis-server, in one run: `amalgam-cache` (a FusionCache port) with Redis as its L2, L1 off
//! and on, and the `cached`
//! crate's `AsyncRedisCache` used cache-aside (get, on a miss load and set).
//!
//! Workloads:
//! - **hit-heavy**: `c` tasks, each calling get-or-load in a loop on keys drawn uniformly from
//!   `--keys` pre-filled keys (so ~100% hits); ops/s over `--duration`.
//! - **stampede**: 1,000 concurrent get-or-loads of one cold key whose load takes 20 ms;
//!   loader calls and time until every caller has its value.
//!
//! Run: `cargo run --release --manifest-path benches/cache-peers/Cargo.toml -- --duration 3s`

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use amalgam::provider::{
    DistributedCache, DistributedSerializer, JsonSerializer, RedisDistributedCache,
};
use cached::ConcurrentCachedAsync;
use clap::Parser;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use shardis::RingNode;

#[derive(Parser, Debug)]
struct Args {
    /// Seconds per hit-heavy cell (e.g. 3s).
    #[arg(long, default_value = "3s", value_parser = parse_secs)]
    duration: Duration,
    /// Concurrent tasks in the hit-heavy workload.
    #[arg(long, short = 'c', default_value_t = 64)]
    concurrency: usize,
    /// Keys in the hit-heavy workload.
    #[arg(long, default_value_t = 1000)]
    keys: u64,
    /// Rounds (cells interleaved; the median is reported).
    #[arg(long, default_value_t = 3)]
    rounds: usize,
}

fn parse_secs(s: &str) -> Result<Duration, String> {
    s.trim_end_matches('s')
        .parse::<f64>()
        .map(Duration::from_secs_f64)
        .map_err(|e| e.to_string())
}

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

type Err = Box<dyn std::error::Error + Send + Sync>;

#[derive(Clone)]
enum System {
    Shardis(shardis_cache::Cache<Product>),
    Amalgam(amalgam::Cache<Product>),
    Cached(cached::AsyncRedisCache<u64, Product>),
}

impl System {
    /// Get-or-load of `id` whose load takes `load` and bumps `loads`.
    async fn get_or_load(
        &self,
        id: u64,
        load: Duration,
        loads: &Arc<AtomicUsize>,
    ) -> Result<Product, Err> {
        let loads = loads.clone();
        match self {
            System::Shardis(c) => Ok(c
                .get_or_load(&id, move || async move {
                    loads.fetch_add(1, Ordering::Relaxed);
                    if !load.is_zero() {
                        tokio::time::sleep(load).await;
                    }
                    Ok::<_, std::io::Error>(product(id))
                })
                .await?),
            System::Amalgam(c) => Ok(c
                .get_or_set(
                    id.to_string(),
                    amalgam::source::factory(move |ctx| async move {
                        loads.fetch_add(1, Ordering::Relaxed);
                        if !load.is_zero() {
                            tokio::time::sleep(load).await;
                        }
                        Ok::<_, amalgam::FactoryError>(ctx.value(product(id)))
                    }),
                )
                .await?),
            System::Cached(c) => {
                if let Some(v) = c.async_cache_get(&id).await? {
                    return Ok(v);
                }
                loads.fetch_add(1, Ordering::Relaxed);
                if !load.is_zero() {
                    tokio::time::sleep(load).await;
                }
                let v = product(id);
                c.async_cache_set(id, v.clone()).await?;
                Ok(v)
            }
        }
    }
}

async fn build(name: &str, addr: &str, namespace: &str) -> Result<System, Err> {
    let url = format!("redis://{addr}/");
    Ok(match name {
        "shardis-cache" | "shardis-cache L1 on" => {
            let client = shardis::Client::builder()
                .ring([RingNode::new("a", addr, 1)])
                .build()
                .await?;
            let mut builder = shardis_cache::Cache::builder(client)
                .namespace(namespace)
                .ttl(Duration::from_secs(3600));
            let l1 = name.ends_with("L1 on");
            if l1 {
                builder = builder.l1(shardis_cache::L1Options {
                    max_entries: 100_000,
                    ttl: Duration::from_secs(3600),
                    backplane: true,
                });
            }
            let cache = builder.build()?;
            let deadline = Instant::now() + Duration::from_secs(30);
            while l1 && !cache.l1_active() {
                if Instant::now() > deadline {
                    return Err("the L1 invalidation feed never became complete".into());
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            System::Shardis(cache)
        }
        "amalgam L1 off" | "amalgam L1 on" => {
            let l2 = RedisDistributedCache::connect(url).await?;
            let mut options = amalgam::EntryOptions::new(Duration::from_secs(3600));
            if name == "amalgam L1 off" {
                options = options.with_skip_memory(true, true);
            }
            System::Amalgam(
                amalgam::Cache::<Product>::builder()
                    .distributed(Arc::new(l2) as Arc<dyn DistributedCache>)
                    .serializer(Arc::new(JsonSerializer) as Arc<dyn DistributedSerializer<Product>>)
                    .default_options(options)
                    .instance_id(namespace)
                    .try_build()?,
            )
        }
        _ => System::Cached(
            cached::AsyncRedisCache::builder(namespace.to_string())
                .connection_string(&url)
                .ttl(Duration::from_secs(3600))
                .build()
                .await?,
        ),
    })
}

const SYSTEMS: [&str; 5] = [
    "shardis-cache",
    "shardis-cache L1 on",
    "amalgam L1 off",
    "amalgam L1 on",
    "cached AsyncRedisCache",
];

async fn hit_heavy(sys: &System, args: &Args) -> Result<f64, Err> {
    let loads = Arc::new(AtomicUsize::new(0));
    for id in 0..args.keys {
        sys.get_or_load(id, Duration::ZERO, &loads).await?;
    }
    let ops = Arc::new(AtomicU64::new(0));
    let end = Instant::now() + args.duration;
    let tasks = (0..args.concurrency).map(|_| {
        let (sys, ops, loads, keys) = (sys.clone(), ops.clone(), loads.clone(), args.keys);
        tokio::spawn(async move {
            let mut rng = StdRng::from_rng(&mut rand::rng());
            while Instant::now() < end {
                let id = rng.random_range(0..keys);
                if sys.get_or_load(id, Duration::ZERO, &loads).await.is_ok() {
                    ops.fetch_add(1, Ordering::Relaxed);
                }
            }
        })
    });
    let started = Instant::now();
    futures::future::join_all(tasks).await;
    Ok(ops.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64())
}

async fn stampede(sys: &System, id: u64) -> (usize, Duration, usize) {
    let loads = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let calls = (0..1000).map(|_| {
        let (sys, loads) = (sys.clone(), loads.clone());
        tokio::spawn(async move {
            sys.get_or_load(id, Duration::from_millis(20), &loads)
                .await
                .is_ok()
        })
    });
    let ok = futures::future::join_all(calls)
        .await
        .into_iter()
        .filter(|r| matches!(r, Ok(true)))
        .count();
    (loads.load(Ordering::Relaxed), started.elapsed(), ok)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

#[tokio::main]
async fn main() -> Result<(), Err> {
    let args = Args::parse();
    let node = shardis_testkit::Standalone::start(1).await?;
    let addr = node.nodes()[0].addr();
    let mut systems = Vec::new();
    for (i, name) in SYSTEMS.iter().enumerate() {
        systems.push((*name, build(name, &addr, &format!("peers{i}")).await?));
    }
    let mut ops: Vec<Vec<f64>> = vec![Vec::new(); systems.len()];
    for round in 0..args.rounds.max(1) {
        for k in 0..systems.len() {
            let k = (k + round) % systems.len();
            let r = hit_heavy(&systems[k].1, &args).await?;
            eprintln!("round {round}: {} {r:.0} ops/s", systems[k].0);
            ops[k].push(r);
        }
    }
    let base = median(ops[0].clone());
    let base_l1 = median(ops[1].clone());
    println!(
        "\nhit-heavy: {} tasks, {} keys, {:?} per cell, median of {} rounds\n",
        args.concurrency, args.keys, args.duration, args.rounds
    );
    println!("| cache | ops/s | shardis-cache vs it | shardis-cache L1 on vs it |");
    println!("|---|---|---|---|");
    for (k, (name, _)) in systems.iter().enumerate() {
        let m = median(ops[k].clone());
        println!("| {name} | {m:.0} | {:.2}x | {:.2}x |", base / m, base_l1 / m);
    }
    println!("\nstampede: 1,000 concurrent get-or-loads of a cold key, 20 ms load, one process\n");
    println!("| cache | loader calls | time to serve all | callers served |");
    println!("|---|---|---|---|");
    for (k, (name, sys)) in systems.iter().enumerate() {
        let (loads, took, ok) = stampede(sys, 1_000_000 + k as u64).await;
        println!(
            "| {name} | {loads} | {:.1} ms | {ok} |",
            took.as_secs_f64() * 1e3
        );
    }
    Ok(())
}
