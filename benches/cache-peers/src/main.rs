//! shardis-cache (its in-process tier L1 off and on) against its peers on the same local
//! redis-server, in one run: `amalgam-cache` (a FusionCache port) with Redis as its L2, L1 off
//! and on, and the `cached`
//! crate's `AsyncRedisCache` used cache-aside (get, on a miss load and set).
//!
//! Workloads:
//! - **hit-heavy**: `c` tasks, each calling get-or-load in a loop on keys drawn uniformly from
//!   `--keys` pre-filled keys (so ~100% hits); ops/s over `--duration`. Every call hands the
//!   caller its own `Product`. Each task counts its own operations and reads the clock every
//!   64 of them (a shared counter or a clock read per operation would cap the in-memory cells
//!   for every system alike). A last row, no cache at all (a clone out of a `HashMap`), is
//!   the floor of the workload: no in-process tier can go below it.
//! - **stampede**: 1,000 concurrent get-or-loads of one cold key whose load takes 20 ms;
//!   loader calls and time until every caller has its value.
//!
//! Each hit-heavy cell also reports the CPU spent per operation by this process (the cache and
//! its client, plus the load loop every system shares) and by redis-server (its own `INFO cpu`),
//! so a cell bound by the one server shows as such.
//!
//! Run: `cargo run --release --manifest-path benches/cache-peers/Cargo.toml -- --duration 3s`

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
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
    /// Run only the system of this name (as in the table, e.g. `"shardis-cache L1 on"`);
    /// repeatable.
    #[arg(long)]
    only: Vec<String>,
}

/// CPU time (user + system) of this process so far, from `/proc/self/stat` (clock ticks,
/// usually 10 ms: fine over seconds-long cells).
fn own_cpu() -> Duration {
    let ticks = std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|stat| {
            // Fields after the command name's closing parenthesis; utime and stime are 14 and 15.
            let mut f = stat[stat.rfind(')')? + 1..].split_whitespace().skip(11);
            Some(f.next()?.parse::<u64>().ok()? + f.next()?.parse::<u64>().ok()?)
        });
    // The kernel's USER_HZ, 100 on every Linux this runs on.
    Duration::from_millis(ticks.unwrap_or(0) * 10)
}

/// CPU time redis-server says it has used (`INFO cpu`: used_cpu_user + used_cpu_sys).
async fn server_cpu(probe: &shardis::Client) -> Result<Duration, Err> {
    let info = match probe.send(redis::cmd("INFO").arg("cpu")).await? {
        redis::Value::BulkString(b) => String::from_utf8_lossy(&b).into_owned(),
        redis::Value::VerbatimString { text, .. } => text,
        other => return Err(format!("INFO cpu: {other:?}").into()),
    };
    let field = |name: &str| {
        info.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    Ok(Duration::from_secs_f64(
        field("used_cpu_user:") + field("used_cpu_sys:"),
    ))
}

/// One hit-heavy cell: ops/s and the CPU µs per operation of this process and of the server.
#[derive(Clone, Copy)]
struct Cell {
    ops: f64,
    client_us: f64,
    server_us: f64,
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
    /// No cache: a clone out of a read-only map filled beforehand. What the workload itself
    /// costs (the harness's loop and handing each caller its own `Product`), the floor under
    /// any in-process tier.
    Floor(Arc<std::collections::HashMap<u64, Product>>),
}

impl System {
    /// Get-or-load of `id` whose load takes `load` and bumps `loads`. `key` is the caller's
    /// buffer for a system whose keys are strings (amalgam): formatted without allocating.
    async fn get_or_load(
        &self,
        id: u64,
        load: Duration,
        loads: &'static AtomicUsize,
        key: &mut String,
    ) -> Result<Product, Err> {
        match self {
            System::Floor(map) => match map.get(&id) {
                Some(v) => Ok(v.clone()),
                None => {
                    loads.fetch_add(1, Ordering::Relaxed);
                    Err(format!("no product {id} in the floor's map").into())
                }
            },
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
                    {
                        use std::fmt::Write;
                        key.clear();
                        write!(key, "{id}")?;
                        key.as_str()
                    },
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

async fn build(name: &str, addr: &str, namespace: &str, keys: u64) -> Result<System, Err> {
    let url = format!("redis://{addr}/");
    Ok(match name {
        FLOOR => System::Floor(Arc::new((0..keys).map(|id| (id, product(id))).collect())),
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

const FLOOR: &str = "no cache: a clone from a HashMap (floor)";

const SYSTEMS: [&str; 6] = [
    "shardis-cache",
    "shardis-cache L1 on",
    "amalgam L1 off",
    "amalgam L1 on",
    "cached AsyncRedisCache",
    FLOOR,
];

/// A loader-call counter that every loader closure can hold without reference counting (one
/// shared `Arc` cloned per call would be a contended atomic in every system's hit path).
fn counter() -> &'static AtomicUsize {
    Box::leak(Box::new(AtomicUsize::new(0)))
}

/// Operations between two looks at the clock in a hit-heavy task.
const CLOCK_EVERY: u64 = 64;

async fn hit_heavy(sys: &System, args: &Args, probe: &shardis::Client) -> Result<Cell, Err> {
    let loads = counter();
    let mut key = String::new();
    for id in 0..args.keys {
        sys.get_or_load(id, Duration::ZERO, loads, &mut key).await?;
    }
    let end = Instant::now() + args.duration;
    let (cpu_before, server_before) = (own_cpu(), server_cpu(probe).await?);
    // Each task counts its own operations (summed at the end) and reads the clock every
    // CLOCK_EVERY of them: a shared counter and a clock read per operation are costs of the
    // harness, the same for every system, that would cap the in-memory cells.
    let tasks = (0..args.concurrency).map(|_| {
        let (sys, keys) = (sys.clone(), args.keys);
        tokio::spawn(async move {
            let mut rng = StdRng::from_rng(&mut rand::rng());
            let mut key = String::new();
            let mut ops = 0u64;
            let mut n = 0u64;
            loop {
                if n.is_multiple_of(CLOCK_EVERY) && Instant::now() >= end {
                    break ops;
                }
                n += 1;
                let id = rng.random_range(0..keys);
                if sys
                    .get_or_load(id, Duration::ZERO, loads, &mut key)
                    .await
                    .is_ok()
                {
                    ops += 1;
                }
            }
        })
    });
    let started = Instant::now();
    let done: u64 = futures::future::join_all(tasks)
        .await
        .into_iter()
        .map(|r| r.unwrap_or(0))
        .sum();
    let elapsed = started.elapsed().as_secs_f64();
    let (cpu, server) = (
        own_cpu().saturating_sub(cpu_before),
        server_cpu(probe).await?.saturating_sub(server_before),
    );
    let done = done.max(1) as f64;
    Ok(Cell {
        ops: done / elapsed,
        client_us: cpu.as_secs_f64() * 1e6 / done,
        server_us: server.as_secs_f64() * 1e6 / done,
    })
}

async fn stampede(sys: &System, id: u64) -> (usize, Duration, usize) {
    let loads = counter();
    let started = Instant::now();
    let calls = (0..1000).map(|_| {
        let sys = sys.clone();
        tokio::spawn(async move {
            sys.get_or_load(id, Duration::from_millis(20), loads, &mut String::new())
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

/// The cell of median ops/s.
fn median(mut v: Vec<Cell>) -> Cell {
    v.sort_by(|a, b| a.ops.total_cmp(&b.ops));
    v[v.len() / 2]
}

#[tokio::main]
async fn main() -> Result<(), Err> {
    let args = Args::parse();
    let node = shardis_testkit::Standalone::start(1).await?;
    let addr = node.nodes()[0].addr();
    let probe = shardis::Client::builder()
        .ring([RingNode::new("a", &addr, 1)])
        .build()
        .await?;
    let mut systems = Vec::new();
    for (i, name) in SYSTEMS.iter().enumerate() {
        if args.only.is_empty() || args.only.iter().any(|o| o == name) {
            systems.push((
                *name,
                build(name, &addr, &format!("peers{i}"), args.keys).await?,
            ));
        }
    }
    let mut cells: Vec<Vec<Cell>> = vec![Vec::new(); systems.len()];
    for round in 0..args.rounds.max(1) {
        for k in 0..systems.len() {
            let k = (k + round) % systems.len();
            let r = hit_heavy(&systems[k].1, &args, &probe).await?;
            eprintln!("round {round}: {} {:.0} ops/s", systems[k].0, r.ops);
            cells[k].push(r);
        }
    }
    let of = |name: &str| {
        systems
            .iter()
            .position(|(n, _)| *n == name)
            .map(|k| median(cells[k].clone()).ops)
    };
    let (base, base_l1) = (of("shardis-cache"), of("shardis-cache L1 on"));
    let ratio = |b: Option<f64>, m: f64| b.map_or("-".to_string(), |b| format!("{:.2}x", b / m));
    println!(
        "\nhit-heavy: {} tasks, {} keys, {:?} per cell, median of {} rounds\n",
        args.concurrency, args.keys, args.duration, args.rounds
    );
    println!(
        "| cache | ops/s | CPU µs/op, this process | CPU µs/op, redis-server | shardis-cache vs it | shardis-cache L1 on vs it |"
    );
    println!("|---|---|---|---|---|---|");
    for (k, (name, _)) in systems.iter().enumerate() {
        let m = median(cells[k].clone());
        println!(
            "| {name} | {:.0} | {:.2} | {:.2} | {} | {} |",
            m.ops,
            m.client_us,
            m.server_us,
            ratio(base, m.ops),
            ratio(base_l1, m.ops)
        );
    }
    println!("\nstampede: 1,000 concurrent get-or-loads of a cold key, 20 ms load, one process\n");
    println!("| cache | loader calls | time to serve all | callers served |");
    println!("|---|---|---|---|");
    for (k, (name, sys)) in systems.iter().enumerate() {
        if matches!(sys, System::Floor(_)) {
            continue;
        }
        let (loads, took, ok) = stampede(sys, 1_000_000 + k as u64).await;
        println!(
            "| {name} | {loads} | {:.1} ms | {ok} |",
            took.as_secs_f64() * 1e3
        );
    }
    Ok(())
}
