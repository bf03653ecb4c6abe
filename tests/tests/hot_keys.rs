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

    // A delete removes every copy: nothing of the key is left on any node.
    let names = shardis::hotkey::cluster_copies(b"hot:item", 3, |slot| {
        let topology = writer.topology();
        topology
            .shards()
            .iter()
            .position(|s| s.slots.iter().any(|r| r.contains(slot)))
    });
    assert_eq!(names.len(), 3);
    for _ in 0..6 {
        let _: Option<i64> = other.get("hot:item").await.unwrap(); // refill copies
    }
    let _: () = writer.del("hot:item").await.unwrap();
    for name in &names {
        let owner = cluster.node_for_slot(key_slot(name)).await.unwrap();
        let mut conn = cluster.connection(&owner).await.unwrap();
        let exists: i64 = redis::cmd("EXISTS")
            .arg(name.as_slice())
            .query_async(&mut conn)
            .await
            .unwrap();
        assert_eq!(
            exists,
            0,
            "{} survived the delete",
            String::from_utf8_lossy(name)
        );
    }
    let gone: Option<i64> = writer.get("hot:item").await.unwrap();
    assert_eq!(gone, None);
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
    let shard_of = |topology: &shardis::slots::Topology, slot: u16| {
        topology
            .shards()
            .iter()
            .position(|s| s.slots.iter().any(|r| r.contains(slot)))
    };
    let before = client.topology();
    let names = shardis::hotkey::cluster_copies(b"hot:moving", 3, |s| shard_of(&before, s));
    let canonical_owner = cluster
        .node_for_slot(key_slot(b"hot:moving"))
        .await
        .unwrap();
    cluster
        .migrate_slot(key_slot(&names[1]), &canonical_owner)
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
    let after = client.topology();
    let names = shardis::hotkey::cluster_copies(b"hot:moving", 3, |s| shard_of(&after, s));
    let mut owners = Vec::new();
    for name in &names {
        let owner = cluster.node_for_slot(key_slot(name)).await.unwrap();
        let mut conn = cluster.connection(&owner).await.unwrap();
        let exists: i64 = redis::cmd("EXISTS")
            .arg(name.as_slice())
            .query_async(&mut conn)
            .await
            .unwrap();
        assert_eq!(
            exists,
            1,
            "copy {} filled on {}",
            String::from_utf8_lossy(name),
            owner.addr()
        );
        owners.push(owner.port);
    }
    owners.sort_unstable();
    owners.dedup();
    assert_eq!(
        owners.len(),
        3,
        "copies on distinct shards after the migration"
    );
}
