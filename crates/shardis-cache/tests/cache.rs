//! shardis-cache against real redis-server processes (a 3-primary cluster or a standalone
//! node in ring mode). Counts, not timings, are asserted.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use futures::future::join_all;
use redis::AsyncCommands;
use shardis::RingNode;
use shardis_cache::{Cache, Codec, Compression, Error, RedisDown, Source, WarmOptions};
use shardis_testkit::{Cluster, Standalone};
use tokio::sync::{Notify, oneshot};

async fn cluster() -> (Cluster, shardis::Client) {
    let cluster = Cluster::builder()
        .primaries(3)
        .replicas_per_primary(0)
        .start()
        .await
        .expect("cluster");
    let client = shardis::Client::builder()
        .cluster(cluster.seeds())
        .build()
        .await
        .expect("cluster client");
    (cluster, client)
}

async fn ring_client(node: &Standalone) -> shardis::Client {
    shardis::Client::builder()
        .ring([RingNode::new("a", node.nodes()[0].addr(), 1)])
        .build()
        .await
        .expect("ring client")
}

async fn standalone() -> (Standalone, shardis::Client) {
    let node = Standalone::start(1).await.expect("standalone node");
    let client = ring_client(&node).await;
    (node, client)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_thousand_concurrent_cold_misses_make_one_load_in_cluster_mode() {
    let (_cluster, client) = cluster().await;
    let cache = Cache::<String>::builder(client)
        .namespace("product")
        .ttl(Duration::from_secs(60))
        .build()
        .expect("cache");
    let loads = Arc::new(AtomicUsize::new(0));
    let calls = (0..1000).map(|_| {
        let cache = cache.clone();
        let loads = loads.clone();
        tokio::spawn(async move {
            cache
                .get_or_load("42", move || async move {
                    loads.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    Ok::<_, std::io::Error>("widget".to_string())
                })
                .await
        })
    });
    let results = join_all(calls).await;
    for r in results {
        assert_eq!(r.expect("task").expect("value"), "widget");
    }
    assert_eq!(loads.load(Ordering::SeqCst), 1, "loader calls");
    assert_eq!(cache.stats().loads, 1);
    // And it is stored: the next call is a hit without a load.
    let f = cache
        .fetch("42", || async { Err::<Option<String>, _>("must not load") })
        .await
        .expect("hit");
    assert_eq!(
        (f.value.as_deref(), f.source),
        (Some("widget"), Source::Hit)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_load_reaches_every_waiter_and_dropping_the_first_does_not_cancel() {
    let (_node, client) = standalone().await;
    let cache = Cache::<String>::builder(client)
        .namespace("sf")
        .build()
        .expect("cache");

    // One failing load shared by 100 callers.
    let loads = Arc::new(AtomicUsize::new(0));
    let calls = (0..100).map(|_| {
        let cache = cache.clone();
        let loads = loads.clone();
        tokio::spawn(async move {
            cache
                .get_or_load("bad", move || async move {
                    loads.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    Err::<String, _>(std::io::Error::other("db down"))
                })
                .await
        })
    });
    for r in join_all(calls).await {
        let e = r.expect("task").expect_err("the load failed");
        assert!(matches!(e, Error::Load(_)), "{e:?}");
        assert!(e.to_string().contains("db down"), "{e}");
    }
    assert_eq!(loads.load(Ordering::SeqCst), 1);

    // The first caller is dropped mid-load; the second still gets the value.
    let (release_tx, release_rx) = oneshot::channel::<()>();
    let started = Arc::new(Notify::new());
    let loads = Arc::new(AtomicUsize::new(0));
    let first = {
        let cache = cache.clone();
        let started = started.clone();
        let loads = loads.clone();
        tokio::spawn(async move {
            cache
                .get_or_load("slow", move || async move {
                    loads.fetch_add(1, Ordering::SeqCst);
                    started.notify_one();
                    let _ = release_rx.await;
                    Ok::<_, std::io::Error>("done".to_string())
                })
                .await
        })
    };
    started.notified().await;
    let second = {
        let cache = cache.clone();
        let loads = loads.clone();
        tokio::spawn(async move {
            cache
                .fetch("slow", move || async move {
                    loads.fetch_add(1, Ordering::SeqCst);
                    Ok::<_, std::io::Error>(Some("second loader".to_string()))
                })
                .await
        })
    };
    // Let the second caller reach the flight, then drop the first.
    while cache.stats().misses < 3 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    first.abort();
    assert!(first.await.is_err(), "the first caller was cancelled");
    let _ = release_tx.send(());
    let f = second.await.expect("task").expect("value");
    assert_eq!(
        (f.value.as_deref(), f.source),
        (Some("done"), Source::Joined)
    );
    assert_eq!(loads.load(Ordering::SeqCst), 1);
}

/// The seed's race, scripted: a slow reader loads the old row; the row is updated and the key
/// invalidated (from another process); the slow reader then tries to store. Two caches over
/// two clients stand in for two processes.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_fill_that_began_before_an_invalidation_is_never_stored_or_served_after_it() {
    let (cluster, client_a) = cluster().await;
    let client_b = shardis::Client::builder()
        .cluster(cluster.seeds())
        .build()
        .await
        .expect("second client");
    let build = |client| {
        Cache::<String>::builder(client)
            .namespace("row")
            .ttl(Duration::from_secs(60))
            .early_refresh(None)
            .build()
            .expect("cache")
    };
    let (cache_a, cache_b) = (build(client_a.clone()), build(client_b));
    let db = Arc::new(parking_lot::Mutex::new("old".to_string()));
    let loads = Arc::new(AtomicUsize::new(0));
    let loader = |db: Arc<parking_lot::Mutex<String>>, loads: Arc<AtomicUsize>| {
        move || async move {
            loads.fetch_add(1, Ordering::SeqCst);
            Ok::<_, std::io::Error>(db.lock().clone())
        }
    };

    // S, in process B: reads the old row, then stalls before storing.
    let (read_tx, read_rx) = oneshot::channel::<()>();
    let (go_tx, go_rx) = oneshot::channel::<()>();
    let slow = {
        let (cache, db, loads) = (cache_b.clone(), db.clone(), loads.clone());
        tokio::spawn(async move {
            cache
                .get_or_load("7", move || async move {
                    loads.fetch_add(1, Ordering::SeqCst);
                    let row = db.lock().clone();
                    let _ = read_tx.send(());
                    let _ = go_rx.await;
                    Ok::<_, std::io::Error>(row)
                })
                .await
        })
    };
    read_rx.await.expect("slow reader read the row");
    let join = |cache: Cache<String>| {
        let (db, loads) = (db.clone(), loads.clone());
        tokio::spawn(async move { cache.fetch("7", loader_opt(db, loads)).await })
    };
    fn loader_opt(
        db: Arc<parking_lot::Mutex<String>>,
        loads: Arc<AtomicUsize>,
    ) -> impl FnOnce() -> futures::future::BoxFuture<'static, Result<Option<String>, std::io::Error>>
    + Send
    + 'static {
        use futures::FutureExt;
        move || {
            async move {
                loads.fetch_add(1, Ordering::SeqCst);
                Ok(Some(db.lock().clone()))
            }
            .boxed()
        }
    }
    // J1 joins S's fill before the update.
    let j1 = join(cache_b.clone());
    while cache_b.stats().misses < 2 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    tokio::time::sleep(Duration::from_millis(50)).await;

    // The row is updated, then the key invalidated, from process A.
    *db.lock() = "new".to_string();
    cache_a.invalidate("7").await.expect("invalidate");

    // J2, in process B, starts after the invalidation (and finds S's fill still running).
    let j2 = join(cache_b.clone());
    while cache_b.stats().misses < 3 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    // C, in process A, after the invalidation: loads and stores the new row.
    let c = cache_a
        .get_or_load("7", loader(db.clone(), loads.clone()))
        .await
        .expect("C");
    assert_eq!(c, "new");

    // S now tries to store the old row.
    go_tx.send(()).expect("release S");
    let s = slow.await.expect("task").expect("S");
    let j1 = j1.await.expect("task").expect("J1");
    let j2 = j2.await.expect("task").expect("J2");
    assert_eq!(
        j2.value.as_deref(),
        Some("new"),
        "J2 began after the invalidation"
    );
    assert_eq!(
        j1.value.as_deref(),
        Some("new"),
        "J1 retried after the rejected fill"
    );
    assert_eq!(
        s, "new",
        "S found the newer value instead of its own rejected one"
    );
    assert_eq!(
        cache_b.stats().lease_rejections,
        1,
        "S's store was rejected"
    );

    // What Redis holds is the new row, read raw.
    let mut raw = client_a.clone();
    let bytes: Vec<u8> = raw.get("{row:0:7}:v").await.expect("raw GET");
    let (_, v) = shardis_cache::decode::<String>(&bytes).expect("envelope");
    assert_eq!(v.as_deref(), Some("new"));
    for cache in [&cache_a, &cache_b] {
        let f = cache
            .fetch("7", || async { Err::<Option<String>, _>("must not load") })
            .await
            .expect("hit");
        assert_eq!((f.value.as_deref(), f.source), (Some("new"), Source::Hit));
    }
    // S's load and C's; J1 and J2 read C's value.
    assert_eq!(loads.load(Ordering::SeqCst), 2);

    // Same process: a caller that starts after invalidate() does not join the older fill.
    *db.lock() = "v1".to_string();
    let (read_tx, read_rx) = oneshot::channel::<()>();
    let (go_tx, go_rx) = oneshot::channel::<()>();
    let slow = {
        let (cache, db) = (cache_a.clone(), db.clone());
        tokio::spawn(async move {
            cache
                .get_or_load("8", move || async move {
                    let row = db.lock().clone();
                    let _ = read_tx.send(());
                    let _ = go_rx.await;
                    Ok::<_, std::io::Error>(row)
                })
                .await
        })
    };
    read_rx.await.expect("read");
    *db.lock() = "v2".to_string();
    cache_a.invalidate("8").await.expect("invalidate");
    let after = cache_a
        .get_or_load("8", loader(db.clone(), loads.clone()))
        .await
        .expect("after");
    assert_eq!(after, "v2");
    go_tx.send(()).expect("release");
    assert_eq!(slow.await.expect("task").expect("slow"), "v2");
    let stored = cache_a.get("8").await.expect("get");
    assert_eq!(stored.as_deref(), Some("v2"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn under_constant_load_no_caller_waits_after_the_first_fill() {
    let (_node, client) = standalone().await;
    let cache = Cache::<u64>::builder(client)
        .namespace("hot")
        .ttl(Duration::from_secs(2))
        .stale_for(Duration::from_secs(2))
        .build()
        .expect("cache");
    let loads2 = Arc::new(AtomicUsize::new(0));
    let first = cache
        .fetch("k", {
            let l = loads2.clone();
            move || async move {
                l.fetch_add(1, Ordering::SeqCst);
                Ok::<_, std::io::Error>(Some(0u64))
            }
        })
        .await
        .expect("first fill");
    assert!(matches!(first.source, Source::Hit | Source::Loaded));
    let loads = Arc::new(AtomicUsize::new(0));
    let end = Instant::now() + Duration::from_secs(10);
    let waited = Arc::new(AtomicUsize::new(0));
    let stale = Arc::new(AtomicUsize::new(0));
    let calls = Arc::new(AtomicUsize::new(0));
    let workers = (0..8).map(|_| {
        let (cache, loads, waited, stale, calls) = (
            cache.clone(),
            loads.clone(),
            waited.clone(),
            stale.clone(),
            calls.clone(),
        );
        tokio::spawn(async move {
            while Instant::now() < end {
                let loads = loads.clone();
                let f = cache
                    .fetch("k", move || async move {
                        loads.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        Ok::<_, std::io::Error>(Some(1u64))
                    })
                    .await
                    .expect("value");
                calls.fetch_add(1, Ordering::Relaxed);
                match f.source {
                    Source::Hit => {}
                    Source::Stale => {
                        stale.fetch_add(1, Ordering::Relaxed);
                    }
                    _ => {
                        waited.fetch_add(1, Ordering::Relaxed);
                    }
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
    });
    for w in join_all(workers).await {
        w.expect("worker");
    }
    let loads = loads.load(Ordering::SeqCst) + loads2.load(Ordering::SeqCst);
    let stats = cache.stats();
    eprintln!(
        "{} calls, {loads} loads, {} stale, {} early refreshes, {} background refreshes",
        calls.load(Ordering::Relaxed),
        stale.load(Ordering::Relaxed),
        stats.early_refreshes,
        stats.background_refreshes
    );
    assert_eq!(
        waited.load(Ordering::Relaxed),
        0,
        "callers that waited for a load"
    );
    // 10 s of a 2 s TTL: 5 periods; loads at most twice that, and the value was refreshed.
    assert!(loads <= 10, "{loads} loads");
    assert!(loads >= 4, "{loads} loads: the value was not kept fresh");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fail_safe_serves_stale_until_the_maximum_staleness_then_the_error() {
    let (_node, client) = standalone().await;
    let cache = Cache::<String>::builder(client)
        .namespace("fs")
        .ttl(Duration::from_millis(1000))
        .stale_for(Duration::from_millis(2000))
        .failsafe_throttle(Duration::from_millis(200))
        .early_refresh(None)
        .build()
        .expect("cache");
    let v1 = cache
        .get_or_load("p", || async { Ok::<_, std::io::Error>("v1".to_string()) })
        .await
        .expect("fill");
    assert_eq!(v1, "v1");
    // From now on the loader fails for 5 s.
    let filled = Instant::now();
    let fail_until = filled + Duration::from_secs(5);
    let failures = Arc::new(AtomicUsize::new(0));
    // Phases: 0 = v1 served (fresh or stale), 1 = the error, 2 = the recovered value.
    let mut phases: Vec<(u8, Duration)> = Vec::new();
    let mut stale_seen = 0;
    while filled.elapsed() < Duration::from_millis(6500) {
        let failures = failures.clone();
        let r = cache
            .fetch("p", move || async move {
                if Instant::now() < fail_until {
                    failures.fetch_add(1, Ordering::SeqCst);
                    Err(std::io::Error::other("db down"))
                } else {
                    Ok(Some("v2".to_string()))
                }
            })
            .await;
        let at = filled.elapsed();
        let phase = match &r {
            Ok(f) if f.value.as_deref() == Some("v1") => {
                if f.source == Source::Stale {
                    stale_seen += 1;
                }
                0
            }
            Err(Error::Load(_)) => 1,
            Ok(f) if f.value.as_deref() == Some("v2") => 2,
            other => panic!("unexpected {other:?} at {at:?}"),
        };
        if phases.last().map(|p| p.0) != Some(phase) {
            phases.push((phase, at));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    eprintln!("phases (phase, first seen at): {phases:?}; stale served {stale_seen}");
    let order: Vec<u8> = phases.iter().map(|p| p.0).collect();
    assert_eq!(
        order,
        vec![0, 1, 2],
        "stale value, then the error, then recovery"
    );
    assert!(stale_seen > 0, "the stale value was served");
    // The error came only once the maximum staleness (ttl + stale_for = 3 s) had passed.
    assert!(phases[1].1 >= Duration::from_millis(2900), "{phases:?}");
    assert!(failures.load(Ordering::SeqCst) > 0);
    assert!(cache.stats().stale_served >= stale_seen);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_value_corrupted_behind_the_cache_is_a_miss_a_reload_and_one_decode_failure() {
    let (node, client) = standalone().await;
    let recorder = metrics_util::debugging::DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let cache = metrics::with_local_recorder(&recorder, || {
        Cache::<Vec<u32>>::builder(client.clone())
            .namespace("corrupt")
            .codec(Codec::MessagePack)
            .compression(Compression::lz4_above(8))
            .build()
            .expect("cache")
    });
    let loads = Arc::new(AtomicUsize::new(0));
    let load = |loads: Arc<AtomicUsize>, v: u32| {
        move || async move {
            loads.fetch_add(1, Ordering::SeqCst);
            Ok::<_, std::io::Error>(vec![v; 100])
        }
    };
    assert_eq!(
        cache
            .get_or_load("x", load(loads.clone(), 1))
            .await
            .expect("fill"),
        vec![1; 100]
    );
    // Overwrite it directly on the node, with bytes of another writer.
    let mut direct = node.connection(&node.nodes()[0]).await.expect("direct");
    let _: () = direct
        .set("{corrupt:0:x}:v", br#"{"not":"an envelope"}"#.as_slice())
        .await
        .expect("SET");
    let f = cache
        .fetch("x", move || {
            let l = load(loads.clone(), 2);
            async move { l().await.map(Some) }
        })
        .await
        .expect("reload");
    assert_eq!((f.value, f.source), (Some(vec![2; 100]), Source::Loaded));
    assert_eq!(cache.stats().loads, 2);
    assert_eq!(cache.stats().decode_failures, 1);
    let decode_failures: u64 = snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .filter(|(key, ..)| key.key().name() == "shardis_cache_decode_failures_total")
        .map(|(.., value)| match value {
            metrics_util::debugging::DebugValue::Counter(c) => c,
            _ => 0,
        })
        .sum();
    assert_eq!(decode_failures, 1, "decode-failure metric");
    // The reload replaced the garbage with a valid, compressed envelope.
    let bytes: Vec<u8> = direct.get("{corrupt:0:x}:v").await.expect("GET");
    let meta = shardis_cache::meta(&bytes).expect("envelope");
    assert!(meta.compressed);
    assert_eq!(meta.codec, Codec::MessagePack);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn negative_caching_namespace_invalidation_batches_write_through_and_warming() {
    let (_node, client) = standalone().await;
    let cache = Cache::<String>::builder(client)
        .namespace("cat")
        .ttl(Duration::from_secs(60))
        .negative_ttl(Duration::from_secs(60))
        .build()
        .expect("cache");
    let loads = Arc::new(AtomicUsize::new(0));
    let counted = |loads: &Arc<AtomicUsize>, v: Option<&str>| {
        let loads = loads.clone();
        let v = v.map(str::to_string);
        move || async move {
            loads.fetch_add(1, Ordering::SeqCst);
            Ok::<_, std::io::Error>(v)
        }
    };

    // Negative caching: one load, then cached not-found.
    assert_eq!(
        cache
            .get_or_load_optional("missing", counted(&loads, None))
            .await
            .expect("none"),
        None
    );
    assert_eq!(
        cache
            .get_or_load_optional("missing", counted(&loads, Some("x")))
            .await
            .expect("none"),
        None
    );
    let e = cache
        .get_or_load("missing", || async {
            Ok::<_, std::io::Error>("y".to_string())
        })
        .await
        .expect_err("cached not-found");
    assert!(matches!(e, Error::NotFound));
    assert_eq!(loads.load(Ordering::SeqCst), 1);
    assert_eq!(cache.stats().negative_hits, 2);

    // Namespace invalidation: every key misses once.
    cache
        .get_or_load_optional("a", counted(&loads, Some("a1")))
        .await
        .expect("a");
    assert_eq!(cache.invalidate_all().await.expect("invalidate_all"), 1);
    assert_eq!(
        cache
            .get_or_load_optional("a", counted(&loads, Some("a2")))
            .await
            .expect("a"),
        Some("a2".to_string())
    );
    assert_eq!(
        cache
            .get_or_load_optional("missing", counted(&loads, Some("found")))
            .await
            .expect("m"),
        Some("found".to_string())
    );
    assert_eq!(loads.load(Ordering::SeqCst), 4);

    // Batch: three of ten cached; one loader call for exactly the other seven.
    for id in [0u32, 4, 9] {
        cache
            .get_or_load(&id, move || async move {
                Ok::<_, std::io::Error>(format!("v{id}"))
            })
            .await
            .expect("prefill");
    }
    let ids: Vec<u32> = (0..10).collect();
    let asked = Arc::new(parking_lot::Mutex::new(Vec::new()));
    let got = cache
        .get_many_or_load(&ids, |missing: Vec<u32>| {
            let asked = asked.clone();
            async move {
                asked.lock().push(missing.clone());
                Ok::<_, std::io::Error>(
                    missing
                        .into_iter()
                        .filter(|id| *id != 7)
                        .map(|id| (id, format!("v{id}")))
                        .collect::<HashMap<_, _>>(),
                )
            }
        })
        .await
        .expect("batch");
    let expected: Vec<Option<String>> = (0..10)
        .map(|id| (id != 7).then(|| format!("v{id}")))
        .collect();
    assert_eq!(got, expected);
    assert_eq!(*asked.lock(), vec![vec![1, 2, 3, 5, 6, 7, 8]]);
    let again = cache
        .get_many_or_load(&ids, |_: Vec<u32>| async {
            Err::<HashMap<u32, String>, _>("must not load")
        })
        .await
        .expect("all cached, 7 as not-found");
    assert_eq!(again, expected);

    // Write-through: the database first, then the cache; a later read needs no load.
    let saved = Arc::new(parking_lot::Mutex::new(None));
    cache
        .set_through("session", "s1".to_string(), |v| {
            let saved = saved.clone();
            async move {
                *saved.lock() = Some(v);
                Ok::<_, std::io::Error>(())
            }
        })
        .await
        .expect("set_through");
    assert_eq!(saved.lock().as_deref(), Some("s1"));
    assert_eq!(
        cache.get("session").await.expect("get").as_deref(),
        Some("s1")
    );
    let e = cache
        .set_through("session", "s2".to_string(), |_| async {
            Err::<(), _>(std::io::Error::other("constraint"))
        })
        .await
        .expect_err("save failed");
    assert!(matches!(e, Error::Load(_)));
    assert_eq!(
        cache.get("session").await.expect("get").as_deref(),
        Some("s1")
    );

    // Warming: 250 ids in batches of 50, progress after each.
    let progress = Arc::new(parking_lot::Mutex::new(Vec::new()));
    let report = cache
        .warm(
            (1000u32..1250).collect(),
            |batch: Vec<u32>| async move {
                Ok::<_, std::io::Error>(
                    batch
                        .into_iter()
                        .map(|id| (id, format!("w{id}")))
                        .collect::<HashMap<_, _>>(),
                )
            },
            WarmOptions {
                batch_size: Some(50),
                rate_per_sec: Some(2_000.0),
                progress: Some({
                    let progress = progress.clone();
                    Arc::new(move |p| progress.lock().push(p.done))
                }),
            },
        )
        .await
        .expect("warm");
    assert_eq!(report.stored, 250);
    assert_eq!(report.failed_batches, 0);
    assert_eq!(*progress.lock(), vec![50, 100, 150, 200, 250]);
    assert_eq!(cache.stats().warmed, 250);
    let warmed = cache
        .get_many_or_load(&(1000u32..1250).collect::<Vec<_>>(), |_: Vec<u32>| async {
            Err::<HashMap<u32, String>, _>("must not load")
        })
        .await
        .expect("warm hits");
    assert!(warmed.iter().all(Option::is_some));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_redis_down_the_loader_serves_once_per_key_or_the_error_when_configured() {
    let node = Standalone::start(1).await.expect("node");
    let client = shardis::Client::builder()
        .ring([RingNode::new("a", node.nodes()[0].addr(), 1)])
        .deadline(Duration::from_millis(500))
        .build()
        .await
        .expect("client");
    let degrade = Cache::<String>::builder(client.clone())
        .namespace("down")
        .build()
        .expect("cache");
    let fail = Cache::<String>::builder(client)
        .namespace("down")
        .on_redis_error(RedisDown::Fail)
        .build()
        .expect("cache");
    // Learn the namespace version while Redis is up, then kill it.
    assert_eq!(degrade.get("k").await.expect("up"), None);
    node.kill(&node.nodes()[0]).expect("kill");
    let loads = Arc::new(AtomicUsize::new(0));
    let calls = (0..50).map(|_| {
        let (cache, loads) = (degrade.clone(), loads.clone());
        tokio::spawn(async move {
            cache
                .fetch("k", move || async move {
                    loads.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    Ok::<_, std::io::Error>(Some("from db".to_string()))
                })
                .await
        })
    });
    for r in join_all(calls).await {
        let f = r.expect("task").expect("degraded value");
        assert_eq!(f.value.as_deref(), Some("from db"));
        assert!(
            matches!(f.source, Source::Degraded | Source::Joined),
            "{:?}",
            f.source
        );
    }
    assert_eq!(loads.load(Ordering::SeqCst), 1, "one load for 50 callers");
    assert!(degrade.stats().redis_errors >= 1);
    let e = fail
        .get_or_load("k", || async { Ok::<_, std::io::Error>("x".to_string()) })
        .await
        .expect_err("Redis is down");
    assert!(matches!(e, Error::Redis(_)), "{e:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ring_mode_over_three_nodes_without_hash_tags_fills_and_invalidates() {
    let nodes = Standalone::start(3).await.expect("3 standalone nodes");
    let client = shardis::Client::builder()
        .ring(
            nodes
                .nodes()
                .iter()
                .enumerate()
                .map(|(i, n)| RingNode::new(format!("n{i}"), n.addr(), 1)),
        )
        .build()
        .await
        .expect("ring client");
    let cache = Cache::<String>::builder(client)
        .namespace("ring3")
        .fill_lock(shardis_cache::FillLock::default())
        .build()
        .expect("cache");
    let loads = Arc::new(AtomicUsize::new(0));
    for round in 0..2 {
        for id in 0..50u32 {
            let loads = loads.clone();
            let v = cache
                .get_or_load(&id, move || async move {
                    loads.fetch_add(1, Ordering::SeqCst);
                    Ok::<_, std::io::Error>(format!("v{id}"))
                })
                .await
                .expect("value");
            assert_eq!(v, format!("v{id}"), "round {round}");
        }
    }
    assert_eq!(loads.load(Ordering::SeqCst), 50, "second round all hits");
    for id in 0..50u32 {
        cache.invalidate(&id).await.expect("invalidate");
        assert_eq!(cache.get(&id).await.expect("get"), None);
    }
    // The keys are spread over the nodes.
    let mut holding = 0;
    for n in nodes.nodes() {
        if nodes.dbsize(n).await.expect("DBSIZE") > 0 {
            holding += 1;
        }
    }
    assert!(holding >= 2, "{holding} nodes hold keys");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_hot_key_copies_an_invalidation_still_reaches_every_reader() {
    let (_cluster, plain) = cluster().await;
    let client = shardis::Client::builder()
        .cluster(_cluster.seeds())
        .hot_keys(shardis::HotKeyOptions::default().declare_hot_prefix("{hotns:"))
        .build()
        .await
        .expect("client with hot keys");
    let cache = Cache::<String>::builder(client.clone())
        .namespace("hotns")
        .early_refresh(None)
        .build()
        .expect("cache");
    let loads = Arc::new(AtomicUsize::new(0));
    let load = |loads: &Arc<AtomicUsize>, v: &'static str| {
        let loads = loads.clone();
        move || async move {
            loads.fetch_add(1, Ordering::SeqCst);
            Ok::<_, std::io::Error>(v.to_string())
        }
    };
    assert_eq!(
        cache
            .get_or_load("celebrity", load(&loads, "v1"))
            .await
            .expect("fill"),
        "v1"
    );
    for _ in 0..200 {
        assert_eq!(
            cache
                .get_or_load("celebrity", load(&loads, "x"))
                .await
                .expect("hit"),
            "v1"
        );
    }
    assert_eq!(loads.load(Ordering::SeqCst), 1);
    let copy_reads = client.stats().hot_copy_reads;
    assert!(copy_reads > 0, "reads were spread over copies");
    cache.invalidate("celebrity").await.expect("invalidate");
    for _ in 0..50 {
        assert_eq!(
            cache
                .get_or_load("celebrity", load(&loads, "v2"))
                .await
                .expect("reload"),
            "v2"
        );
    }
    assert_eq!(
        loads.load(Ordering::SeqCst),
        2,
        "one reload after the invalidation"
    );
    // The canonical key holds v2 (read without the hot-key layer).
    let mut plain = plain;
    let bytes: Vec<u8> = plain.get("{hotns:0:celebrity}:v").await.expect("GET");
    let (_, v) = shardis_cache::decode::<String>(&bytes).expect("envelope");
    assert_eq!(v.as_deref(), Some("v2"));
}
