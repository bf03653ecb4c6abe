//! The coherent in-process tier (L1) of shardis-cache against a real redis-server (one
//! standalone node in ring mode, started by shardis-testkit):
//!
//! - **the L1 hit cost** (target: under 200 ns): `get_or_load` and `get` of a key L1 holds,
//!   polled once (`now_or_never`: the cost an async caller pays, without a runtime hop), also
//!   with hot ids on (`Builder::hot_ids`: every read passes the detector's sampler), and
//!   through `Runtime::block_on` for comparison;
//! - **a Zipf(1.1) read workload with 1% writes** over 10,000 ids: the same operation sequence
//!   with L1 on and off; reads through one cache, writes (write-through) through another cache
//!   on its own client, standing in for another process, so every write reaches the reader as
//!   an invalidation. Reported: the L1 hit ratio, the commands Redis executed
//!   (`total_commands_processed`) per run and the share saved, and the wall time.
//!
//! Run: `cargo bench -p shardis-benches --bench cache_l1`

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::Criterion;
use futures::FutureExt;
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand_distr::{Distribution, Zipf};
use shardis::RingNode;
use shardis_cache::{Cache, HotIds, L1Options, Source};
use tokio::runtime::Runtime;

const IDS: u64 = 10_000;

/// The floor with L1's hasher: moka alone, keyed like L1, hashed with foldhash.
type FoldMoka =
    moka::sync::Cache<String, std::sync::Arc<(u64, u64, Option<u64>)>, foldhash::fast::RandomState>;
const OPS: usize = 200_000;
const WRITE_SHARE: f64 = 0.01;

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

async fn client(addr: &str) -> shardis::Client {
    shardis::Client::builder()
        .ring([RingNode::new("a", addr, 1)])
        .build()
        .await
        .expect("client")
}

fn cache(client: shardis::Client, namespace: &str, l1: bool) -> Cache<u64> {
    let b = Cache::<u64>::builder(client)
        .namespace(namespace)
        .ttl(Duration::from_secs(3600))
        .early_refresh(None);
    let b = if l1 {
        b.l1(L1Options {
            max_entries: 100_000,
            ttl: Duration::from_secs(60),
            backplane: true,
        })
    } else {
        b
    };
    b.build().expect("cache")
}

async fn commands_processed(client: &shardis::Client) -> u64 {
    let info = match client
        .send(redis::cmd("INFO").arg("stats"))
        .await
        .expect("INFO")
    {
        redis::Value::BulkString(b) => String::from_utf8_lossy(&b).into_owned(),
        redis::Value::VerbatimString { text, .. } => text,
        other => panic!("INFO: {other:?}"),
    };
    info.lines()
        .find_map(|l| l.strip_prefix("total_commands_processed:"))
        .and_then(|v| v.trim().parse().ok())
        .expect("total_commands_processed")
}

async fn wait_active(cache: &Cache<u64>) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !cache.l1_active() {
        assert!(
            Instant::now() < deadline,
            "the L1 feed never became complete"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

struct Run {
    reads: u64,
    l1_hits: u64,
    commands: u64,
    seconds: f64,
}

/// The operation sequence: (id, write?) drawn once from a seeded Zipf(1.1).
fn sequence() -> Vec<(u64, bool)> {
    let mut rng = StdRng::seed_from_u64(11);
    let zipf = Zipf::new(IDS as f64, 1.1).expect("zipf");
    (0..OPS)
        .map(|_| {
            let id = zipf.sample(&mut rng) as u64;
            (id, rand::Rng::random_bool(&mut rng, WRITE_SHARE))
        })
        .collect()
}

async fn zipf_run(addr: &str, namespace: &str, l1: bool, ops: &[(u64, bool)]) -> Run {
    let reader = cache(client(addr).await, namespace, l1);
    let writer = cache(client(addr).await, namespace, false);
    if l1 {
        wait_active(&reader).await;
    }
    let probe = client(addr).await;
    let before = commands_processed(&probe).await;
    let start = Instant::now();
    let mut reads = 0;
    for (n, &(id, write)) in ops.iter().enumerate() {
        if write {
            writer
                .set_through(&id, n as u64, |_| async { Ok::<_, std::io::Error>(()) })
                .await
                .expect("write");
        } else {
            reads += 1;
            black_box(
                reader
                    .get_or_load(&id, move || async move { Ok::<_, std::io::Error>(id) })
                    .await
                    .expect("read"),
            );
        }
    }
    let seconds = start.elapsed().as_secs_f64();
    let commands = commands_processed(&probe).await - before;
    Run {
        reads,
        l1_hits: reader.stats().l1_hits,
        commands,
        seconds,
    }
}

/// `c` once L1 is active and serves id 42.
async fn l1_holding_42(c: Cache<u64>) -> Cache<u64> {
    wait_active(&c).await;
    c.get_or_load(&42u64, || async { Ok::<_, std::io::Error>(42u64) })
        .await
        .expect("fill");
    // The fill may race its own store's invalidation: read until L1 serves it.
    loop {
        let f = c
            .fetch(&42u64, || async { Ok::<_, std::io::Error>(Some(42u64)) })
            .await
            .expect("read");
        if f.source == Source::Local {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    c
}

fn main() {
    let rt = runtime();
    let node = rt
        .block_on(shardis_testkit::Standalone::start(1))
        .expect("redis-server (install redis-server)");
    let addr = node.nodes()[0].addr();

    // --- The hit cost ---
    let l1 = rt
        .block_on(async { l1_holding_42(cache(client(&addr).await, "bench-l1-hit", true)).await });
    // The same with hot ids on: every read also passes the detector's sampler.
    let l1_hot = rt.block_on(async {
        let c = Cache::<u64>::builder(client(&addr).await)
            .namespace("bench-l1-hot")
            .ttl(Duration::from_secs(3600))
            .early_refresh(None)
            .l1(L1Options {
                max_entries: 100_000,
                ttl: Duration::from_secs(60),
                backplane: true,
            })
            .hot_ids(HotIds::default())
            .build()
            .expect("cache");
        l1_holding_42(c).await
    });
    let hit = |c: &Cache<u64>| {
        c.get_or_load(&42u64, || async { Ok::<_, std::io::Error>(42u64) })
            .now_or_never()
            .expect("an L1 hit completes at once")
            .expect("hit")
    };
    // The hit path may start the namespace version's background refresh (a task): poll it
    // inside the runtime's context, as an async caller would.
    let _context = rt.enter();
    assert_eq!(hit(&l1), 42);
    let mut c = Criterion::default().configure_from_args();
    {
        let mut group = c.benchmark_group("l1 hit");
        group.bench_function("get_or_load (polled once)", |b| {
            b.iter(|| black_box(hit(&l1)))
        });
        group.bench_function("get_or_load, hot ids on (polled once)", |b| {
            b.iter(|| black_box(hit(&l1_hot)))
        });
        group.bench_function("get (polled once)", |b| {
            b.iter(|| {
                black_box(
                    l1.get(&42u64)
                        .now_or_never()
                        .expect("at once")
                        .expect("hit"),
                )
            })
        });
        // The floor: moka's own lookup of the same kind of entry, nothing else.
        let moka: moka::sync::Cache<String, std::sync::Arc<(u64, u64, Option<u64>)>> =
            moka::sync::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(Duration::from_secs(60))
                .build();
        moka.insert("42".to_string(), std::sync::Arc::new((0, 0, Some(42))));
        group.bench_function("moka::sync::Cache::get alone (reference)", |b| {
            b.iter(|| black_box(moka.get("42")))
        });
        let moka_fold: FoldMoka = moka::sync::Cache::builder()
            .max_capacity(100_000)
            .time_to_live(Duration::from_secs(60))
            .build_with_hasher(foldhash::fast::RandomState::default());
        moka_fold.insert("42".to_string(), std::sync::Arc::new((0, 0, Some(42))));
        group.bench_function("moka::sync::Cache::get alone, foldhash (reference)", |b| {
            b.iter(|| black_box(moka_fold.get("42")))
        });
        // A store that keeps no per-read order or log (CLOCK-like eviction), for comparison:
        // what an L1 hit could cost on it (it has no TTL of its own; L1 would check one).
        let quick: quick_cache::sync::Cache<String, std::sync::Arc<(u64, u64, Option<u64>)>> =
            quick_cache::sync::Cache::new(100_000);
        quick.insert("42".to_string(), std::sync::Arc::new((0, 0, Some(42))));
        group.bench_function("quick_cache::sync::Cache::get alone (reference)", |b| {
            b.iter(|| black_box(quick.get("42")))
        });
        group.bench_function("get_or_load (Runtime::block_on)", |b| {
            b.iter(|| {
                black_box(
                    rt.block_on(
                        l1.get_or_load(&42u64, || async { Ok::<_, std::io::Error>(42u64) }),
                    ),
                )
            })
        });
        group.finish();
    }
    c.final_summary();
    let hits_before = l1.stats().l1_hits;
    let n = 1_000_000;
    let mut best = f64::MAX;
    for _ in 0..3 {
        let start = Instant::now();
        for _ in 0..n {
            black_box(hit(&l1));
        }
        best = best.min(start.elapsed().as_secs_f64() * 1e9 / n as f64);
    }
    assert_eq!(
        l1.stats().l1_hits - hits_before,
        3 * n as u64,
        "every call an L1 hit"
    );

    // --- Zipf(1.1), 1% writes ---
    let ops = sequence();
    let off = rt.block_on(zipf_run(&addr, "bench-zipf-off", false, &ops));
    let on = rt.block_on(zipf_run(&addr, "bench-zipf-on", true, &ops));
    println!("\n| L1 hit (get_or_load, polled once; best of 3 x 1M) | ns per call |");
    println!("|---|---|");
    println!("| shardis-cache L1 | {best:.0} |");
    println!(
        "\n| Zipf(1.1) over {IDS} ids, {OPS} ops, {:.0}% writes (another client) | L1 hit ratio | Redis commands | per op | wall time |",
        WRITE_SHARE * 100.0
    );
    println!("|---|---|---|---|---|");
    for (name, run) in [("L1 off", &off), ("L1 on", &on)] {
        println!(
            "| {name} | {:.1}% | {} | {:.2} | {:.2} s |",
            100.0 * run.l1_hits as f64 / run.reads.max(1) as f64,
            run.commands,
            run.commands as f64 / OPS as f64,
            run.seconds
        );
    }
    println!(
        "\nRedis traffic saved by L1: {:.1}% of the commands; wall time {:.1}x shorter",
        100.0 * (1.0 - on.commands as f64 / off.commands.max(1) as f64),
        off.seconds / on.seconds
    );
}
