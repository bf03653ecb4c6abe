//! Hot keys stay consistent with this client's writes (issue 12, findings 6 and 7), in cluster
//! mode and in ring mode: every write path (single, pipelined, transactional, split) reaches
//! the copies, a write whose caller gave up still does, the near cache never keeps a value
//! read before a write that completed after the read began, copies from an earlier hot period
//! are not served after a write made while the key was cool, and near-cache hits yield to the
//! scheduler.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use redis::AsyncCommands;
use shardis::hotkey::DetectorConfig;
use shardis::slots::key_slot;
use shardis::{HotKeyOptions, RingNode};
use shardis_testkit::{Cluster, Node, Standalone};

/// A 3-primary cluster or a 3-node ring.
enum Deployment {
    Cluster(Cluster),
    Ring(Standalone),
}

impl Deployment {
    async fn start(ring: bool) -> Deployment {
        if ring {
            Deployment::Ring(Standalone::start(3).await.expect("3 standalone nodes"))
        } else {
            Deployment::Cluster(
                Cluster::builder()
                    .primaries(3)
                    .replicas_per_primary(0)
                    .start()
                    .await
                    .expect("cluster"),
            )
        }
    }

    async fn client(&self, options: HotKeyOptions) -> shardis::Client {
        let builder = shardis::Client::builder().hot_keys(options);
        let builder = match self {
            Deployment::Cluster(c) => builder.cluster(c.seeds()),
            Deployment::Ring(s) => builder.ring(
                s.nodes()
                    .iter()
                    .enumerate()
                    .map(|(i, n)| RingNode::new(format!("n{i}"), n.addr(), 1)),
            ),
        };
        builder.build().await.expect("client")
    }

    /// The node that holds `key` itself (not its copies).
    async fn owner(&self, client: &shardis::Client, key: &str) -> Node {
        match self {
            Deployment::Cluster(c) => c.node_for_slot(key_slot(key.as_bytes())).await.unwrap(),
            Deployment::Ring(s) => {
                let name = client.ring_node_for(key.as_bytes()).expect("ring mode");
                let i: usize = name[1..].parse().unwrap();
                s.nodes()[i].clone()
            }
        }
    }

    fn pause(&self, node: &Node) {
        match self {
            Deployment::Cluster(c) => c.pause(node).unwrap(),
            Deployment::Ring(s) => s.pause(node).unwrap(),
        }
    }

    fn resume(&self, node: &Node) {
        match self {
            Deployment::Cluster(c) => c.resume(node).unwrap(),
            Deployment::Ring(s) => s.resume(node).unwrap(),
        }
    }

    /// `GET key` straight from its owner, bypassing shardis.
    async fn direct_get(&self, client: &shardis::Client, key: &str) -> Option<String> {
        let owner = self.owner(client, key).await;
        let mut conn = owner.connection().await.unwrap();
        conn.get(key).await.unwrap()
    }
}

fn declared(key: &str) -> HotKeyOptions {
    HotKeyOptions::default().declare_hot(key)
}

/// `n` GETs of `key`; returns those that were not `expected`.
async fn stale_reads(
    client: &mut shardis::Client,
    key: &str,
    expected: Option<&str>,
    n: usize,
) -> Vec<Option<String>> {
    let mut wrong = Vec::new();
    for _ in 0..n {
        let got: Option<String> = client.get(key).await.expect("GET");
        if got.as_deref() != expected {
            wrong.push(got);
        }
    }
    wrong
}

/// Reads `key` often enough that every copy is filled.
async fn fill_copies(client: &mut shardis::Client, key: &str, expected: &str) {
    let wrong = stale_reads(client, key, Some(expected), 30).await;
    assert!(wrong.is_empty(), "before any write: {wrong:?}");
}

async fn every_write_path_reaches_the_copies(ring: bool) {
    let d = Deployment::start(ring).await;
    let mut client = d.client(declared("hk")).await;

    let _: () = client.set("hk", "v1").await.unwrap();
    fill_copies(&mut client, "hk", "v1").await;
    let () = redis::pipe()
        .set("hk", "v2")
        .ignore()
        .query_async(&mut client)
        .await
        .unwrap();
    let wrong = stale_reads(&mut client, "hk", Some("v2"), 30).await;
    assert!(wrong.is_empty(), "after a pipelined SET: {wrong:?}");

    let () = redis::pipe()
        .atomic()
        .del("hk")
        .ignore()
        .query_async(&mut client)
        .await
        .unwrap();
    let wrong = stale_reads(&mut client, "hk", None, 30).await;
    assert!(wrong.is_empty(), "after a transactional DEL: {wrong:?}");

    // Split commands: MSET / DEL over keys on several shards.
    let others: Vec<String> = (0..8).map(|i| format!("other:{i}")).collect();
    let mut pairs: Vec<(String, String)> = others.iter().map(|k| (k.clone(), "x".into())).collect();
    pairs.push(("hk".into(), "v3".into()));
    if ring {
        // A ring spreads no multi-key command: one write at a time.
        for (k, v) in &pairs {
            let _: () = client.set(k, v).await.unwrap();
        }
    } else {
        let _: () = client.mset(&pairs).await.unwrap();
    }
    let wrong = stale_reads(&mut client, "hk", Some("v3"), 30).await;
    assert!(wrong.is_empty(), "after MSET: {wrong:?}");
    let _: () = client.set("hk", "41").await.unwrap();
    fill_copies(&mut client, "hk", "41").await;
    let _: i64 = client.incr("hk", 1).await.unwrap();
    let wrong = stale_reads(&mut client, "hk", Some("42"), 30).await;
    assert!(wrong.is_empty(), "after INCR: {wrong:?}");
    if !ring {
        let mut keys = others.clone();
        keys.push("hk".into());
        let _: () = client.del(&keys).await.unwrap();
        let wrong = stale_reads(&mut client, "hk", None, 30).await;
        assert!(wrong.is_empty(), "after a split DEL: {wrong:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_every_write_path_reaches_the_copies() {
    every_write_path_reaches_the_copies(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ring_every_write_path_reaches_the_copies() {
    every_write_path_reaches_the_copies(true).await;
}

/// A SET whose caller gives up while the key's owner is paused still applies when the owner
/// resumes; from then on no read of this client returns the old value from a copy.
async fn a_write_whose_caller_gave_up_still_reaches_the_copies(ring: bool) {
    let d = Deployment::start(ring).await;
    let mut client = d.client(declared("hk")).await;
    let _: () = client.set("hk", "v1").await.unwrap();
    fill_copies(&mut client, "hk", "v1").await;

    let owner = d.owner(&client, "hk").await;
    d.pause(&owner);
    let mut writer = client.clone();
    let gave_up = tokio::time::timeout(
        Duration::from_millis(200),
        writer.set::<_, _, ()>("hk", "v2"),
    )
    .await;
    d.resume(&owner);
    assert!(gave_up.is_err(), "the SET was to be cut short: {gave_up:?}");

    // The server applies the SET it had buffered.
    let started = Instant::now();
    while d.direct_get(&client, "hk").await.as_deref() != Some("v2") {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "SET never applied"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let wrong = stale_reads(&mut client, "hk", Some("v2"), 30).await;
    assert!(
        wrong.is_empty(),
        "{} of 30 reads after the write applied were stale: {wrong:?}",
        wrong.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_a_write_whose_caller_gave_up_still_reaches_the_copies() {
    a_write_whose_caller_gave_up_still_reaches_the_copies(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ring_a_write_whose_caller_gave_up_still_reaches_the_copies() {
    a_write_whose_caller_gave_up_still_reaches_the_copies(true).await;
}

/// One writer does `SET i; GET` 500 times while 8 tasks read the same hot key: the writer's
/// read after its acknowledged `SET i` returns `i`, with or without the near cache.
async fn own_writes_are_read_back_under_concurrent_readers(ring: bool, near: bool) {
    let d = Deployment::start(ring).await;
    let mut options = declared("hk");
    if near {
        options = options.near_cache(Duration::from_secs(1), 100);
    }
    let mut client = d.client(options).await;
    let _: () = client.set("hk", 0).await.unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = (0..8)
        .map(|_| {
            let mut c = client.clone();
            let stop = stop.clone();
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let _: Option<i64> = c.get("hk").await.expect("reader GET");
                }
            })
        })
        .collect();
    let mut stale = Vec::new();
    for i in 1..=500i64 {
        let _: () = client.set("hk", i).await.unwrap();
        let got: Option<i64> = client.get("hk").await.unwrap();
        if got != Some(i) {
            stale.push((i, got));
        }
    }
    stop.store(true, Ordering::Relaxed);
    for r in readers {
        r.await.unwrap();
    }
    assert!(
        stale.is_empty(),
        "{} of 500 reads after an acknowledged SET returned an older value, e.g. {:?}",
        stale.len(),
        &stale[..stale.len().min(5)]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_own_writes_are_read_back_under_concurrent_readers_near_cache() {
    own_writes_are_read_back_under_concurrent_readers(false, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ring_own_writes_are_read_back_under_concurrent_readers_near_cache() {
    own_writes_are_read_back_under_concurrent_readers(true, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_own_writes_are_read_back_under_concurrent_readers() {
    own_writes_are_read_back_under_concurrent_readers(false, false).await;
}

/// 64 tasks on one celebrity key, writes from the same client: each task `INCR`s (the reply
/// is its place in the server's order) and then reads; a read below the task's own last
/// acknowledged `INCR` is older than its own write.
async fn sixty_four_tasks_never_read_older_than_their_own_write(ring: bool, near: bool) {
    let d = Deployment::start(ring).await;
    let mut options = declared("celebrity");
    if near {
        options = options.near_cache(Duration::from_secs(1), 100);
    }
    let mut client = d.client(options).await;
    let _: () = client.set("celebrity", 0).await.unwrap();
    let reads = Arc::new(AtomicU64::new(0));
    let tasks: Vec<_> = (0..64)
        .map(|t| {
            let mut c = client.clone();
            let reads = reads.clone();
            tokio::spawn(async move {
                let mut own = 0i64;
                let mut older = Vec::new();
                for round in 0..150 {
                    // One write in four rounds per task; every round reads.
                    if (round + t) % 4 == 0 {
                        own = c.incr("celebrity", 1).await.expect("INCR");
                    }
                    let got: i64 = c.get("celebrity").await.expect("GET");
                    reads.fetch_add(1, Ordering::Relaxed);
                    if got < own {
                        older.push((own, got));
                    }
                }
                older
            })
        })
        .collect();
    let mut older = Vec::new();
    for t in tasks {
        older.extend(t.await.unwrap());
    }
    let reads = reads.load(Ordering::Relaxed);
    assert!(
        older.is_empty(),
        "{} of {reads} reads were older than the reader's own acknowledged write, e.g. {:?}",
        older.len(),
        &older[..older.len().min(5)]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_sixty_four_tasks_never_read_older_than_their_own_write() {
    sixty_four_tasks_never_read_older_than_their_own_write(false, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_sixty_four_tasks_never_read_older_than_their_own_write_near_cache() {
    sixty_four_tasks_never_read_older_than_their_own_write(false, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ring_sixty_four_tasks_never_read_older_than_their_own_write() {
    sixty_four_tasks_never_read_older_than_their_own_write(true, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ring_sixty_four_tasks_never_read_older_than_their_own_write_near_cache() {
    sixty_four_tasks_never_read_older_than_their_own_write(true, true).await;
}

/// Detected, not declared: hot after a burst of reads, cool soon after they stop.
fn detected() -> HotKeyOptions {
    HotKeyOptions::default()
        .detector(
            DetectorConfig::default()
                .with_sample_every(1)
                .with_window(Duration::from_millis(200))
                .with_cool_after(Duration::from_millis(300)),
        )
        .tick(Duration::from_millis(20))
        .copy_ttl(Duration::from_secs(10))
}

fn is_hot(client: &shardis::Client, key: &str) -> bool {
    client.hot_keys().iter().any(|h| h.key == key.as_bytes())
}

/// Reads `key` (and `others` keys in between) until `hot` says it is (not) hot; every read
/// of `key` must return `expected`.
async fn read_until(
    client: &mut shardis::Client,
    key: &str,
    key_share: usize,
    hot: bool,
    expected: &str,
) -> Vec<Option<String>> {
    let started = Instant::now();
    let mut wrong = Vec::new();
    let mut i = 0usize;
    while is_hot(client, key) != hot {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{key} never became {}",
            if hot { "hot" } else { "cool" }
        );
        i += 1;
        if i % 100 < key_share {
            let got: Option<String> = client.get(key).await.unwrap();
            if got.as_deref() != Some(expected) {
                wrong.push(got);
            }
        } else {
            let _: Option<String> = client.get(format!("cold:{}", i % 5000)).await.unwrap();
        }
    }
    wrong
}

async fn copies_of_an_earlier_hot_period_are_not_served_after_a_cool_write(ring: bool) {
    let d = Deployment::start(ring).await;
    let mut client = d.client(detected()).await;
    let _: () = client.set("trend", "v1").await.unwrap();
    read_until(&mut client, "trend", 50, true, "v1").await;
    fill_copies(&mut client, "trend", "v1").await;
    // The copies are written in the background: on a loaded machine 30 reads can all come
    // before they are, so read on (every read still checked) until one is served from a copy.
    let started = Instant::now();
    while client.stats().hot_copy_reads == 0 {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "no read was served from a copy"
        );
        let wrong = stale_reads(&mut client, "trend", Some("v1"), 10).await;
        assert!(wrong.is_empty(), "before any write: {wrong:?}");
    }
    // Cool down: other keys only.
    read_until(&mut client, "trend", 0, false, "v1").await;
    let _: () = client.set("trend", "v2").await.unwrap();
    // Hot again: every read, before and after it heats, sees v2.
    let mut wrong = read_until(&mut client, "trend", 50, true, "v2").await;
    wrong.extend(stale_reads(&mut client, "trend", Some("v2"), 60).await);
    assert!(
        wrong.is_empty(),
        "{} reads after the cool write returned {:?}",
        wrong.len(),
        &wrong[..wrong.len().min(5)]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_copies_of_an_earlier_hot_period_are_not_served_after_a_cool_write() {
    copies_of_an_earlier_hot_period_are_not_served_after_a_cool_write(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ring_copies_of_an_earlier_hot_period_are_not_served_after_a_cool_write() {
    copies_of_an_earlier_hot_period_are_not_served_after_a_cool_write(true).await;
}

/// A loop of near-cache hits on a one-thread runtime lets another task run (tokio's
/// cooperative budget), instead of starving it until the loop ends.
#[test]
fn near_cache_hits_yield_to_the_scheduler() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let d = Deployment::start(false).await;
        let mut client = d
            .client(declared("hk").near_cache(Duration::from_secs(60), 10))
            .await;
        let _: () = client.set("hk", "v").await.unwrap();
        let _: String = client.get("hk").await.unwrap();
        let ran = Arc::new(AtomicBool::new(false));
        let flag = ran.clone();
        tokio::spawn(async move { flag.store(true, Ordering::Relaxed) });
        let mut ran_during_the_loop = false;
        for _ in 0..10_000 {
            let v: String = client.get("hk").await.unwrap();
            assert_eq!(v, "v");
            if ran.load(Ordering::Relaxed) {
                ran_during_the_loop = true;
                break;
            }
        }
        assert!(ran_during_the_loop, "10,000 near-cache hits never yielded");
        assert!(client.stats().near_cache_hits > 100);
    });
}
