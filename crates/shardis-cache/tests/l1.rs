//! The coherent in-process tier (L1) against real redis-server clusters: values served without
//! Redis, dropped when another client writes, and — when the invalidation path breaks (a
//! tracking connection killed, a failover, a reshard) — never served beyond the bound.
//!
//! The bound asserted: a read that *begins* more than the L1 TTL after a write was
//! acknowledged never returns the older value (the guarantee whatever fails); the largest
//! staleness seen is printed. The two-process measurement is `l1_fleet.rs`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use redis::AsyncCommands;
use shardis_cache::{Cache, L1Options, Source};
use shardis_testkit::{Cluster, FailoverMode};

const L1_TTL: Duration = Duration::from_secs(3);

async fn cluster(replicas: usize) -> Cluster {
    Cluster::builder()
        .primaries(3)
        .replicas_per_primary(replicas)
        .start()
        .await
        .expect("cluster")
}

async fn client(cluster: &Cluster) -> shardis::Client {
    shardis::Client::builder()
        .cluster(cluster.seeds())
        .build()
        .await
        .expect("client")
}

fn cache(client: shardis::Client, l1: bool) -> Cache<u64> {
    let builder = Cache::<u64>::builder(client)
        .namespace("l1test")
        .ttl(Duration::from_secs(600))
        .early_refresh(None);
    let builder = if l1 {
        builder.l1(L1Options {
            max_entries: 10_000,
            ttl: L1_TTL,
            backplane: true,
        })
    } else {
        builder
    };
    builder.build().expect("cache")
}

async fn until(what: &str, mut ok: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !ok().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn write(cache: &Cache<u64>, id: &str, v: u64) {
    cache
        .set_through(id, v, |_| async { Ok::<_, std::io::Error>(()) })
        .await
        .expect("write");
}

async fn read(cache: &Cache<u64>, id: &str) -> (u64, Source) {
    let f = cache
        .fetch(id, || async { Ok::<_, std::io::Error>(Some(0u64)) })
        .await
        .expect("read");
    (f.value.unwrap_or(0), f.source)
}

/// Reads until the value comes from L1.
async fn until_local(cache: &Cache<u64>, id: &str) -> u64 {
    let mut got = 0;
    until("an L1 hit", async || {
        let (v, source) = read(cache, id).await;
        got = v;
        source == Source::Local
    })
    .await;
    got
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn l1_serves_without_redis_and_drops_what_another_client_wrote() {
    let cluster = cluster(0).await;
    let reader = cache(client(&cluster).await, true);
    let writer = cache(client(&cluster).await, false);
    until("the feed", async || reader.l1_active()).await;

    write(&writer, "k", 1).await;
    assert_eq!(until_local(&reader, "k").await, 1);
    let hits = reader.stats().l1_hits;
    for _ in 0..100 {
        assert_eq!(read(&reader, "k").await, (1, Source::Local));
    }
    assert_eq!(reader.stats().l1_hits, hits + 100);

    // Another client writes: the reader's next reads turn to the new value, and once the
    // invalidation arrived no read returns the old one.
    for v in 2..50u64 {
        let seen = reader.stats().l1_invalidations;
        write(&writer, "k", v).await;
        until("the new value", async || read(&reader, "k").await.0 == v).await;
        assert!(reader.stats().l1_invalidations > seen);
        assert_eq!(until_local(&reader, "k").await, v);
    }

    // Own writes drop the entry at once.
    write(&reader, "k", 100).await;
    assert_eq!(read(&reader, "k").await.0, 100);
    reader.invalidate("k").await.expect("invalidate");
    assert_eq!(
        read(&reader, "k").await.0,
        0,
        "the loader's value after invalidate"
    );

    // The backplane: an invalidation published by another process (for a change that did not
    // go through Redis) drops the entry; the next read goes to Redis.
    assert_eq!(until_local(&reader, "k").await, 0);
    let seen = reader.stats().l1_invalidations;
    assert!(writer.publish_invalidation("k").await.expect("publish") >= 1);
    until("the backplane message", async || {
        reader.stats().l1_invalidations > seen
    })
    .await;
    assert_eq!(read(&reader, "k").await, (0, Source::Hit));

    // invalidate_all elsewhere: the namespace version key is tracked too.
    write(&writer, "k", 7).await;
    assert_eq!(until_local(&reader, "k").await, 7);
    writer.invalidate_all().await.expect("invalidate_all");
    until("the namespace change", async || {
        read(&reader, "k").await.0 == 0
    })
    .await;
}
