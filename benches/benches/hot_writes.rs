//! One celebrity key, 64 writers through one client: writes per second with hot-key spreading
//! on the key (declared hot, copies on every shard) beside spreading off (no hot-key layer), in
//! the same run, on a 3-primary cluster and on a 3-node ring started by the testkit.
//!
//! Run: `cargo bench -p shardis-benches --bench hot_writes`
//!
//! Each cell runs `ROUNDS` times for `CELL` each, alternating on/off so drift hits both; the
//! table gives the median writes/s of each cell and their ratio. Issue 12 asks on/off >= 0.5.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use shardis::{HotKeyOptions, RingNode};
use shardis_testkit::{Cluster, Standalone};

const WRITERS: usize = 64;
const CELL: Duration = Duration::from_secs(2);
const ROUNDS: usize = 3;

/// Writes/s of `WRITERS` tasks doing `SET celebrity <n>` through `client` for `CELL`.
async fn writes_per_second(client: &shardis::Client) -> f64 {
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let tasks: Vec<_> = (0..WRITERS)
        .map(|t| {
            let client = client.clone();
            let (stop, done) = (stop.clone(), done.clone());
            tokio::spawn(async move {
                let mut n = t as u64;
                while !stop.load(Ordering::Relaxed) {
                    let mut set = redis::cmd("SET");
                    set.arg("celebrity").arg(n);
                    if client.send(&set).await.is_ok() {
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                    n += WRITERS as u64;
                }
            })
        })
        .collect();
    // Warm up (connections, copies), then count.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let start_count = done.load(Ordering::Relaxed);
    let started = Instant::now();
    tokio::time::sleep(CELL).await;
    let count = done.load(Ordering::Relaxed) - start_count;
    let elapsed = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        let _ = t.await;
    }
    count as f64 / elapsed.as_secs_f64()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

async fn compare(mode: &str, build: impl AsyncFn(Option<HotKeyOptions>) -> shardis::Client) {
    let off = build(None).await;
    let on = build(Some(HotKeyOptions::default().declare_hot("celebrity"))).await;
    let (mut offs, mut ons) = (Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        offs.push(writes_per_second(&off).await);
        ons.push(writes_per_second(&on).await);
    }
    let (off, on) = (median(offs), median(ons));
    println!(
        "{mode:<8} {WRITERS} writers, one key   off {off:>10.0}/s   on {on:>10.0}/s   on/off {:.2}",
        on / off
    );
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` runs this too: keep that quick.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let cluster = Cluster::builder()
            .primaries(3)
            .replicas_per_primary(0)
            .start()
            .await
            .expect("cluster");
        compare("cluster", async |hot| {
            let mut b = shardis::Client::builder().cluster(cluster.seeds());
            if let Some(hot) = hot {
                b = b.hot_keys(hot);
            }
            b.build().await.expect("client")
        })
        .await;
        drop(cluster);
        let nodes = Standalone::start(3).await.expect("3 nodes");
        compare("ring", async |hot| {
            let ring = nodes
                .nodes()
                .iter()
                .enumerate()
                .map(|(i, n)| RingNode::new(format!("n{i}"), n.addr(), 1));
            let mut b = shardis::Client::builder().ring(ring);
            if let Some(hot) = hot {
                b = b.hot_keys(hot);
            }
            b.build().await.expect("client")
        })
        .await;
    });
}
