//! Hot keys on real servers. Load is measured by the servers (per-node deltas of
//! `keyspace_hits + keyspace_misses` after `CONFIG RESETSTAT`), never by the client.

use std::time::{Duration, Instant};

use redis::AsyncCommands;
use shardis::{HotKeyOptions, slots::key_slot};
use shardis_testkit::Cluster;

/// Per-node reads served since the last reset, as the servers count them.
async fn loads(cluster: &Cluster) -> Vec<u64> {
    let mut out = Vec::new();
    for node in cluster.primaries().await.unwrap() {
        let stats = cluster.info(&node, "stats").await.unwrap();
        let n = |k: &str| {
            stats
                .get(k)
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0)
        };
        out.push(n("keyspace_hits") + n("keyspace_misses"));
    }
    out
}

async fn reset(cluster: &Cluster) {
    for node in cluster.primaries().await.unwrap() {
        cluster.config_resetstat(&node).await.unwrap();
    }
}

fn max_over_mean(loads: &[u64]) -> f64 {
    let mean = loads.iter().sum::<u64>() as f64 / loads.len() as f64;
    *loads.iter().max().unwrap() as f64 / mean
}

/// `reads` GETs from 16 tasks: half of them of `celebrity`, half spread over `others` keys.
async fn celebrity_load(client: &shardis::Client, reads: usize, others: usize) {
    let tasks = (0..16).map(|t| {
        let mut c = client.clone();
        async move {
            for i in 0..reads / 16 {
                let key = if i % 2 == 0 {
                    "celebrity".to_string()
                } else {
                    format!("k:{}", (i * 16 + t) % others)
                };
                let _: Option<String> = c.get(&key).await.expect("read");
            }
        }
    });
    futures::future::join_all(tasks).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_celebrity_key_is_spread_over_every_shard() {
    let cluster = Cluster::builder()
        .primaries(3)
        .replicas_per_primary(0)
        .start()
        .await
        .expect("cluster");
    let mut plain = shardis_tests::client(cluster.seeds()).await;
    let _: () = plain.set("celebrity", "famous").await.unwrap();
    let pairs: Vec<(String, String)> = (0..3000)
        .map(|i| (format!("k:{i}"), "v".to_string()))
        .collect();
    let _: () = plain.mset(&pairs).await.unwrap();

    // Without spreading, the celebrity's shard serves more than half of all reads.
    reset(&cluster).await;
    celebrity_load(&plain, 20_000, 3000).await;
    let before = loads(&cluster).await;
    let total: u64 = before.iter().sum();
    assert!(
        *before.iter().max().unwrap() * 2 > total,
        "baseline {before:?}"
    );

    let spread = shardis::Client::builder()
        .cluster(cluster.seeds())
        .hot_keys(HotKeyOptions::default())
        .build()
        .await
        .unwrap();
    let started = Instant::now();
    while !spread.hot_keys().iter().any(|h| h.key == b"celebrity") {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "never detected"
        );
        celebrity_load(&spread, 1600, 3000).await;
    }
    let detection = started.elapsed();
    celebrity_load(&spread, 1600, 3000).await; // fill the copies
    reset(&cluster).await;
    celebrity_load(&spread, 20_000, 3000).await;
    let after = loads(&cluster).await;
    let ratio = max_over_mean(&after);
    eprintln!(
        "celebrity: baseline {before:?} ({:.2}), spread {after:?} ({ratio:.3}), detected after {detection:?}",
        max_over_mean(&before)
    );
    assert!(
        ratio <= 1.10,
        "max/mean {ratio:.3} with spreading: {after:?}"
    );
    assert!(spread.stats().hot_copy_reads > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_are_read_back_at_once_and_other_clients_converge_within_the_copy_ttl() {
    let cluster = Cluster::builder()
        .primaries(3)
        .replicas_per_primary(0)
        .start()
        .await
        .expect("cluster");
    let copy_ttl = Duration::from_millis(500);
    let options = HotKeyOptions::default()
        .declare_hot("hot:item")
        .copy_ttl(copy_ttl);
    let build = || {
        shardis::Client::builder()
            .cluster(cluster.seeds())
            .hot_keys(options.clone())
            .build()
    };
    let mut writer = build().await.unwrap();
    let mut other = build().await.unwrap();

    for v in 0..200 {
        let _: () = writer.set("hot:item", v).await.unwrap();
        // The writer's own reads, from any copy, see the acknowledged value.
        for _ in 0..3 {
            let got: i64 = writer.get("hot:item").await.unwrap();
            assert_eq!(got, v, "read-your-writes through a copy");
        }
        let _: Option<i64> = other.get("hot:item").await.unwrap();
    }
    let written_at = Instant::now();
    loop {
        let got: Option<i64> = other.get("hot:item").await.unwrap();
        if got == Some(199) {
            break;
        }
        assert!(
            written_at.elapsed() <= copy_ttl + Duration::from_millis(300),
            "another client still reads {got:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    // A delete: the writer reads it back at once, another client within the copy TTL, and
    // then no copy of the key is left on any node (the writer's deleted, the other's expired).
    for _ in 0..6 {
        let _: Option<i64> = other.get("hot:item").await.unwrap(); // refill its copies
    }
    let _: () = writer.del("hot:item").await.unwrap();
    let deleted_at = Instant::now();
    let gone: Option<i64> = writer.get("hot:item").await.unwrap();
    assert_eq!(gone, None);
    loop {
        let got: Option<i64> = other.get("hot:item").await.unwrap();
        if got.is_none() {
            break;
        }
        assert!(
            deleted_at.elapsed() <= copy_ttl + Duration::from_millis(300),
            "another client still reads {got:?} after the delete"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(
        (deleted_at + copy_ttl + Duration::from_millis(100))
            .saturating_duration_since(Instant::now()),
    )
    .await;
    for primary in cluster.primaries().await.unwrap() {
        let left = keys_on(&cluster, &primary, "hot:item*").await;
        assert!(left.is_empty(), "left on {}: {left:?}", primary.addr());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_clients_write_their_own_copies() {
    // The mechanism behind read-your-writes across a fleet: a syncer of another client holding
    // an older value can never overwrite this client's copies, because they are not its names.
    let cluster = Cluster::builder()
        .primaries(3)
        .replicas_per_primary(0)
        .start()
        .await
        .expect("cluster");
    let options = HotKeyOptions::default().declare_hot("hot:two");
    let build = || {
        shardis::Client::builder()
            .cluster(cluster.seeds())
            .hot_keys(options.clone())
            .build()
    };
    let mut a = build().await.unwrap();
    let mut b = build().await.unwrap();
    let _: () = a.set("hot:two", "v").await.unwrap();
    let mut copies = Vec::new();
    for _ in 0..200 {
        let _: String = a.get("hot:two").await.unwrap();
        let _: String = b.get("hot:two").await.unwrap();
        copies.clear();
        for primary in cluster.primaries().await.unwrap() {
            copies.extend(keys_on(&cluster, &primary, "hot:two#hk*").await);
        }
        if copies.len() >= 4 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // 3 shards: each client has 2 copies besides the canonical key, and no name is shared.
    copies.sort();
    copies.dedup();
    assert_eq!(copies.len(), 4, "copies: {copies:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_near_cache_serves_hot_reads_in_process_and_drops_on_own_writes() {
    let cluster = Cluster::builder()
        .primaries(3)
        .replicas_per_primary(0)
        .start()
        .await
        .expect("cluster");
    let mut client = shardis::Client::builder()
        .cluster(cluster.seeds())
        .hot_keys(
            HotKeyOptions::default()
                .declare_hot("hot:near")
                .near_cache(Duration::from_secs(1), 100),
        )
        .build()
        .await
        .unwrap();
    let _: () = client.set("hot:near", "v1").await.unwrap();
    reset(&cluster).await;
    for _ in 0..1000 {
        let v: String = client.get("hot:near").await.unwrap();
        assert_eq!(v, "v1");
    }
    let served: u64 = loads(&cluster).await.iter().sum();
    assert!(served <= 100, "servers saw {served} of 1000 hot reads");
    assert!(client.stats().near_cache_hits >= 900);
    let _: () = client.set("hot:near", "v2").await.unwrap();
    let v: String = client.get("hot:near").await.unwrap();
    assert_eq!(v, "v2", "own write visible to the next read");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_near_cache_with_tracking_drops_what_another_client_wrote() {
    let cluster = Cluster::builder()
        .primaries(3)
        .replicas_per_primary(0)
        .start()
        .await
        .expect("cluster");
    let options = HotKeyOptions::default()
        .declare_hot("hot:tracked")
        // A TTL far longer than the test: only an invalidation can end a value's life.
        .near_cache(Duration::from_secs(600), 100);
    let build = |options: Option<HotKeyOptions>| {
        let seeds = cluster.seeds();
        async move {
            let mut b = shardis::Client::builder().cluster(seeds);
            if let Some(options) = options {
                b = b.hot_keys(options);
            }
            b.build().await.unwrap()
        }
    };
    let mut tracked = build(Some(options.clone().near_cache_tracking(["hot:"]))).await;
    let mut ttl_only = build(Some(options)).await;
    let mut other = build(None).await;
    let _: () = other.set("hot:tracked", "v1").await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    for client in [&mut tracked, &mut ttl_only] {
        // Until the value is served from the near cache (the tracked one waits for its
        // invalidation stream to be complete first).
        let hits = client.stats().near_cache_hits;
        while client.stats().near_cache_hits < hits + 10 {
            let v: String = client.get("hot:tracked").await.unwrap();
            assert_eq!(v, "v1");
            assert!(Instant::now() < deadline, "no near-cache hits");
        }
    }
    for round in 2..20 {
        let value = format!("v{round}");
        let _: () = other.set("hot:tracked", &value).await.unwrap();
        // The tracking client turns to the new value (copies included) once the invalidation
        // arrives — far within the 600 s TTL; the TTL-only one keeps serving what it had.
        let mut in_a_row = 0;
        while in_a_row < 20 {
            let v: String = tracked.get("hot:tracked").await.unwrap();
            in_a_row = if v == value { in_a_row + 1 } else { 0 };
            assert!(
                Instant::now() < deadline,
                "the change never reached the near cache"
            );
        }
        let v: String = ttl_only.get("hot:tracked").await.unwrap();
        assert_eq!(v, "v1", "the control: a TTL-only near cache is not told");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copies_follow_a_slot_migration() {
    let cluster = Cluster::builder()
        .primaries(3)
        .replicas_per_primary(0)
        .start()
        .await
        .expect("cluster");
    let mut client = shardis::Client::builder()
        .cluster(cluster.seeds())
        .hot_keys(HotKeyOptions::default().declare_hot("hot:moving"))
        .build()
        .await
        .unwrap();
    let _: () = client.set("hot:moving", "x").await.unwrap();
    for _ in 0..30 {
        let v: String = client.get("hot:moving").await.unwrap();
        assert_eq!(v, "x");
    }
    // Move the slot of one copy to the canonical key's shard: two names now share a shard.
    // Copy names are the client's own (salted): find one on another primary.
    let canonical_owner = cluster
        .node_for_slot(key_slot(b"hot:moving"))
        .await
        .unwrap();
    let mut copy = None;
    for primary in cluster.primaries().await.unwrap() {
        if primary.port == canonical_owner.port {
            continue;
        }
        let found = keys_on(&cluster, &primary, "hot:moving#hk*").await;
        copy = copy.or(found.into_iter().next());
    }
    let copy = copy.expect("a copy on another primary");
    cluster
        .migrate_slot(key_slot(&copy), &canonical_owner)
        .await
        .expect("migrate a copy's slot");

    for _ in 0..60 {
        let v: String = client
            .get("hot:moving")
            .await
            .expect("reads keep succeeding");
        assert_eq!(v, "x");
    }
    // The client now places copies on distinct shards of the new map, and they are there.
    // Copy names are the client's own (salted), so look for them: every primary other than
    // the canonical key's holds a filled copy.
    for primary in cluster.primaries().await.unwrap() {
        if primary.port == canonical_owner.port {
            continue;
        }
        let copies = keys_on(&cluster, &primary, "hot:moving#hk*").await;
        let mut conn = cluster.connection(&primary).await.unwrap();
        let mut filled = false;
        for copy in &copies {
            let v: Option<String> = redis::cmd("GET")
                .arg(copy.as_slice())
                .query_async(&mut conn)
                .await
                .unwrap();
            filled |= v.as_deref() == Some("x");
        }
        assert!(
            filled,
            "a filled copy on {} after the migration (found {copies:?})",
            primary.addr()
        );
    }
}

/// The keys matching `pattern` on `node`.
async fn keys_on(cluster: &Cluster, node: &shardis_testkit::Node, pattern: &str) -> Vec<Vec<u8>> {
    let mut conn = cluster.connection(node).await.unwrap();
    redis::cmd("KEYS")
        .arg(pattern)
        .query_async(&mut conn)
        .await
        .unwrap()
}
