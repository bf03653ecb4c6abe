//! Write-behind against a real redis-server (ring mode over one standalone node): what a writer
//! and a sink can rely on. Counts, not timings, are asserted.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use shardis::RingNode;
use shardis_cache::{
    Backpressure, Cache, Change, Durability, Error, WriteBehind, WriteBehindConfig,
};
use shardis_testkit::Standalone;

async fn standalone() -> (Standalone, shardis::Client) {
    let node = Standalone::start(1).await.expect("standalone node");
    let client = shardis::Client::builder()
        .ring([RingNode::new("a", node.nodes()[0].addr(), 1)])
        .build()
        .await
        .expect("ring client");
    (node, client)
}

fn cache(client: &shardis::Client, config: WriteBehindConfig) -> Cache<u64> {
    Cache::<u64>::builder(client.clone())
        .namespace("wb")
        .ttl(Duration::from_secs(60))
        .write_behind(config)
        .build()
        .expect("cache")
}

/// What a test sink got: every change in order of arrival.
#[derive(Clone, Default)]
struct Got(Arc<Mutex<Vec<Change<u64>>>>);

impl Got {
    fn writes(&self) -> HashMap<String, u64> {
        let mut out = HashMap::new();
        for c in self.0.lock().iter() {
            *out.entry(c.id.clone()).or_default() += u64::from(c.writes);
        }
        out
    }
    fn last(&self) -> HashMap<String, u64> {
        self.0
            .lock()
            .iter()
            .map(|c| (c.id.clone(), c.value))
            .collect()
    }
    fn values(&self) -> Vec<u64> {
        self.0.lock().iter().map(|c| c.value).collect()
    }
}

async fn until(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn backlog(client: &shardis::Client, partitions: u32) -> i64 {
    let mut total = 0;
    for p in 0..partitions {
        let stream = format!("{{wb:wb:{p}}}");
        if let Ok(redis::Value::Int(n)) = client.send(redis::cmd("XLEN").arg(stream)).await {
            total += n;
        }
    }
    total
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_is_read_at_once_and_reaches_the_sink_coalesced_in_order() {
    let (_node, client) = standalone().await;
    let config = WriteBehindConfig {
        partitions: 4,
        ..WriteBehindConfig::default()
    };
    let cache = cache(&client, config);
    // Queued before any flusher runs: 10 keys x 20 writes, values increasing per key.
    for n in 0..200u64 {
        cache
            .write_behind(&format!("k{}", n % 10), n)
            .await
            .expect("write");
    }
    // The cache has each key's last value at once.
    for j in 0..10u64 {
        let v = cache
            .get_or_load(&format!("k{j}"), || async {
                Err::<u64, _>("must not load")
            })
            .await
            .expect("cached");
        assert_eq!(v, 190 + j);
    }
    let got = Got::default();
    let sink_got = got.clone();
    let flusher = WriteBehind::builder(&cache, move |batch: Vec<Change<u64>>| {
        let got = sink_got.clone();
        async move {
            got.0.lock().extend(batch);
            Ok::<_, std::io::Error>(())
        }
    })
    .start()
    .await
    .expect("flusher");
    until("every write flushed", || flusher.stats().flushed == 200).await;
    let writes = got.writes();
    let last = got.last();
    for j in 0..10u64 {
        let k = format!("k{j}");
        assert_eq!(writes.get(&k), Some(&20), "{k}: every write accounted for");
        assert_eq!(last.get(&k), Some(&(190 + j)), "{k}: last value");
    }
    // Coalesced: fewer changes than writes (at most one per key per batch).
    assert!(got.0.lock().len() < 200);
    // Per key, the sink saw values in write order.
    let mut seen: HashMap<String, u64> = HashMap::new();
    for c in got.0.lock().iter() {
        if let Some(prev) = seen.insert(c.id.clone(), c.value) {
            assert!(prev < c.value, "{}: {prev} then {}", c.id, c.value);
        }
    }
    assert_eq!(backlog(&client, 4).await, 0);
    let report = flusher.shutdown(Duration::from_secs(5)).await;
    assert_eq!(report.left_pending, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writers_of_one_key_leave_cache_and_sink_agreeing() {
    let (_node, client) = standalone().await;
    let cache = cache(&client, WriteBehindConfig::default());
    let got = Got::default();
    let sink_got = got.clone();
    let flusher = WriteBehind::builder(&cache, move |batch: Vec<Change<u64>>| {
        let got = sink_got.clone();
        async move {
            got.0.lock().extend(batch);
            Ok::<_, std::io::Error>(())
        }
    })
    .start()
    .await
    .expect("flusher");
    let writers = (0..8u64).map(|t| {
        let cache = cache.clone();
        tokio::spawn(async move {
            for i in 0..50u64 {
                cache
                    .write_behind("shared", t * 1000 + i)
                    .await
                    .expect("write");
            }
        })
    });
    futures::future::join_all(writers).await;
    until("every write flushed", || flusher.stats().flushed == 400).await;
    let in_cache = cache.get("shared").await.expect("get").expect("cached");
    assert_eq!(
        got.last().get("shared"),
        Some(&in_cache),
        "the sink's last value is the cache's"
    );
    assert_eq!(got.writes().get("shared"), Some(&400));
    flusher.shutdown(Duration::from_secs(5)).await;
}

/// A tiny bound and a slow sink: writers are refused (Fail) or wait (Wait); every write that
/// was acknowledged reaches the sink, none that was refused does, and the backlog never
/// exceeds its bound.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_backlog_is_backpressure_never_loss() {
    let (_node, client) = standalone().await;
    let bound = 4u64; // 2 partitions x 2
    let slow_sink = |got: Got| {
        move |batch: Vec<Change<u64>>| {
            let got = got.clone();
            async move {
                tokio::time::sleep(Duration::from_millis(30)).await;
                got.0.lock().extend(batch);
                Ok::<_, std::io::Error>(())
            }
        }
    };

    // Fail: refused writes get the typed error at once.
    let failing = cache(
        &client,
        WriteBehindConfig {
            partitions: 2,
            max_backlog: bound,
            on_full: Backpressure::Fail,
            durability: None,
        },
    );
    let got = Got::default();
    let flusher = WriteBehind::builder(&failing, slow_sink(got.clone()))
        .batch_size(1)
        .poll_interval(Duration::from_millis(5))
        .start()
        .await
        .expect("flusher");
    let mut accepted = Vec::new();
    let mut refused = Vec::new();
    for n in 0..200u64 {
        match failing.write_behind(&format!("k{}", n % 50), n).await {
            Ok(q) => {
                assert!(
                    q.backlog <= bound / 2,
                    "partition backlog {} over its bound",
                    q.backlog
                );
                accepted.push(n);
            }
            Err(Error::Backpressure {
                backlog, bound: b, ..
            }) => {
                assert_eq!(b, bound / 2);
                assert!(backlog >= b);
                refused.push(n);
            }
            Err(e) => panic!("write {n}: {e}"),
        }
    }
    assert!(
        !refused.is_empty(),
        "a tiny bound with a slow sink must refuse some writes"
    );
    assert_eq!(failing.stats().wb_backpressure_errors, refused.len() as u64);
    until("every accepted write flushed", || {
        flusher.stats().flushed == accepted.len() as u64
    })
    .await;
    flusher.shutdown(Duration::from_secs(5)).await;
    let mut delivered = got.values();
    delivered.sort_unstable();
    // batch_size 1 and distinct values: exactly the accepted writes, nothing refused.
    assert_eq!(
        delivered, accepted,
        "the sink got exactly the acknowledged writes"
    );
    eprintln!(
        "Fail policy: {} accepted, {} refused",
        accepted.len(),
        refused.len()
    );

    // Wait: writers wait for room; every write succeeds and reaches the sink.
    let waiting = Cache::<u64>::builder(client.clone())
        .namespace("wb2")
        .write_behind(WriteBehindConfig {
            partitions: 2,
            max_backlog: bound,
            on_full: Backpressure::Wait(Duration::from_secs(30)),
            durability: None,
        })
        .build()
        .expect("cache");
    let got = Got::default();
    let flusher = WriteBehind::builder(&waiting, slow_sink(got.clone()))
        .batch_size(1)
        .poll_interval(Duration::from_millis(5))
        .start()
        .await
        .expect("flusher");
    let writers = (0..4u64).map(|t| {
        let waiting = waiting.clone();
        tokio::spawn(async move {
            for i in 0..15u64 {
                waiting
                    .write_behind(&format!("k{t}"), t * 100 + i)
                    .await
                    .expect("a waiting writer gets room");
            }
        })
    });
    futures::future::join_all(writers).await;
    assert!(waiting.stats().wb_backpressure_waits > 0, "writers waited");
    until("every write flushed", || flusher.stats().flushed == 60).await;
    let writes = got.writes();
    for t in 0..4u64 {
        assert_eq!(writes.get(&format!("k{t}")), Some(&15));
        assert_eq!(got.last().get(&format!("k{t}")), Some(&(t * 100 + 14)));
    }
    flusher.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poison_change_goes_to_the_dead_letters_and_an_outage_dead_letters_nothing() {
    let (_node, client) = standalone().await;
    let cache = cache(
        &client,
        WriteBehindConfig {
            partitions: 1,
            ..WriteBehindConfig::default()
        },
    );
    let down = Arc::new(AtomicBool::new(true));
    let calls = Arc::new(AtomicU64::new(0));
    let got = Got::default();
    let (sink_got, sink_down, sink_calls) = (got.clone(), down.clone(), calls.clone());
    let sink = move |batch: Vec<Change<u64>>| {
        let (got, down, calls) = (sink_got.clone(), sink_down.clone(), sink_calls.clone());
        async move {
            calls.fetch_add(1, Ordering::SeqCst);
            if down.load(Ordering::SeqCst) {
                return Err("database unreachable".to_string());
            }
            if batch.iter().any(|c| c.id == "poison") {
                return Err("constraint violation".to_string());
            }
            got.0.lock().extend(batch);
            Ok(())
        }
    };
    for n in 0..20u64 {
        cache
            .write_behind(&format!("k{n}"), n)
            .await
            .expect("write");
    }
    cache.write_behind("poison", 666).await.expect("write");
    let flusher = WriteBehind::builder(&cache, sink)
        .max_tries(3)
        .retry_backoff(Duration::from_millis(5), Duration::from_millis(20))
        .poll_interval(Duration::from_millis(5))
        .start()
        .await
        .expect("flusher");
    // An outage: the sink refuses everything for a while. Nothing is dead-lettered.
    until("several refused calls", || {
        calls.load(Ordering::SeqCst) >= 20
    })
    .await;
    assert_eq!(
        flusher.stats().dead_lettered,
        0,
        "an outage dead-letters nothing"
    );
    assert_eq!(flusher.stats().flushed, 0);
    down.store(false, Ordering::SeqCst);
    // Back up: every good change is delivered; the poison one goes to the dead letters.
    until("the good changes flushed", || flusher.stats().flushed == 20).await;
    until("the poison change dead-lettered", || {
        flusher.stats().dead_lettered == 1
    })
    .await;
    assert_eq!(got.writes().len(), 20);
    assert!(!got.writes().contains_key("poison"));
    let dead = WriteBehind::dead_letters(&cache, 0, None, 10)
        .await
        .expect("dead letters");
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].id, "poison");
    assert_eq!(dead[0].error, "constraint violation");
    assert!(dead[0].tries >= 3);
    let (_, value) = shardis_cache::decode::<u64>(&dead[0].envelope).expect("envelope");
    assert_eq!(value, Some(666));
    assert_eq!(backlog(&client, 1).await, 0, "nothing left in the stream");
    flusher.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_flushes_and_hands_the_partitions_over_at_once() {
    let (_node, client) = standalone().await;
    let cache = cache(&client, WriteBehindConfig::default());
    let got = Got::default();
    let sink = |got: Got| {
        move |batch: Vec<Change<u64>>| {
            let got = got.clone();
            async move {
                got.0.lock().extend(batch);
                Ok::<_, std::io::Error>(())
            }
        }
    };
    let first = WriteBehind::builder(&cache, sink(got.clone()))
        .lease_ttl(Duration::from_secs(60))
        .start()
        .await
        .expect("flusher");
    until("all partitions owned", || {
        first.stats().owned_partitions == 8
    })
    .await;
    for n in 0..500u64 {
        cache
            .write_behind(&format!("k{n}"), n)
            .await
            .expect("write");
    }
    let report = first.shutdown(Duration::from_secs(10)).await;
    assert_eq!(report.left_pending, 0);
    assert_eq!(report.aborted, 0);
    assert_eq!(
        got.writes().len(),
        500,
        "shutdown flushed everything queued"
    );
    // Its leases (60 s) were given up: a new flusher takes every partition now.
    let second = WriteBehind::builder(&cache, sink(got.clone()))
        .lease_ttl(Duration::from_secs(60))
        .start()
        .await
        .expect("flusher");
    until("partitions taken over", || {
        second.stats().owned_partitions == 8
    })
    .await;
    cache.write_behind("after", 1).await.expect("write");
    until("the new flusher delivers", || second.stats().flushed == 1).await;
    second.shutdown(Duration::from_secs(5)).await;
}

/// Durability on a node without replicas: WAIT cannot be satisfied, the writer is told, and
/// the change is still queued (and the cache updated).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn durability_reports_missing_replicas_and_keeps_the_change() {
    let (_node, client) = standalone().await;
    let cache = cache(
        &client,
        WriteBehindConfig {
            durability: Some(Durability {
                replicas: 1,
                timeout: Duration::from_millis(50),
            }),
            ..WriteBehindConfig::default()
        },
    );
    match cache.write_behind("k", 7).await {
        Err(Error::NotReplicated { wanted: 1, got: 0 }) => {}
        other => panic!("expected NotReplicated, got {other:?}"),
    }
    assert_eq!(cache.get("k").await.expect("get"), Some(7));
    assert_eq!(backlog(&client, 8).await, 1, "the change is queued");
}

#[test]
fn partitions_are_stable() {
    // FNV-1a 64: the same id maps to the same partition in every process and version.
    assert_eq!(
        shardis_cache::partition_of("", 8),
        (0xcbf2_9ce4_8422_2325u64 % 8) as u32
    );
    let p = shardis_cache::partition_of("user:42", 16);
    assert_eq!(p, shardis_cache::partition_of("user:42", 16));
    assert!(p < 16);
    assert_eq!(shardis_cache::partition_of("x", 1), 0);
}
