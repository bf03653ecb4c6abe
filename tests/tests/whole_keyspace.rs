//! The sharded keyspace answers like one Redis: commands about the whole keyspace reach every
//! shard and combine their replies, SCAN walks every node, scripts load everywhere, bare WAIT
//! is refused, and pipelines keep the order of commands on a common key. Cluster mode, ring
//! mode, and primary+replicas mode with reads on the replicas (whole-keyspace commands and the
//! scan go to the primary, so they see every write before them).

use std::collections::HashSet;
use std::time::Duration;

use futures::StreamExt;
use redis::{AsyncCommands, Value};
use shardis::{Client, Error, HealthPolicy, ReadFrom, ScanOptions};
use shardis_testkit::{Cluster, Replication, Standalone};

const KEYS: usize = 300;

enum Deployment {
    Cluster(Cluster),
    Ring(Standalone),
    Replicated(Replication),
}

impl Deployment {
    fn addrs(&self) -> Vec<String> {
        match self {
            Deployment::Cluster(c) => c.seeds(),
            Deployment::Ring(f) => f.nodes().iter().map(|n| n.addr()).collect(),
            Deployment::Replicated(r) => r.nodes().iter().map(|n| n.addr()).collect(),
        }
    }
}

async fn deployments() -> Vec<(&'static str, Deployment, Client)> {
    let cluster = Cluster::builder()
        .primaries(3)
        .replicas_per_primary(1)
        .start()
        .await
        .expect("cluster");
    let cluster_client = Client::builder()
        .cluster(cluster.seeds())
        .build()
        .await
        .expect("cluster client");
    let fleet = Standalone::start(3).await.expect("fleet");
    let ring_client = Client::builder()
        .ring(shardis_tests::ring_nodes(&fleet))
        .ring_health(HealthPolicy::FailFast)
        .build()
        .await
        .expect("ring client");
    let set = Replication::builder()
        .replicas(2)
        .start()
        .await
        .expect("primary and replicas");
    let replicated_client = Client::builder()
        .replicated(
            set.nodes()[0].addr(),
            set.nodes()[1..].iter().map(|n| n.addr()),
        )
        .read_from(ReadFrom::Replica)
        .build()
        .await
        .expect("primary+replicas client");
    vec![
        ("cluster", Deployment::Cluster(cluster), cluster_client),
        ("ring", Deployment::Ring(fleet), ring_client),
        ("replicated", Deployment::Replicated(set), replicated_client),
    ]
}

/// Each primary's own DBSIZE, asked directly.
async fn sizes(deployment: &Deployment) -> Vec<i64> {
    let mut out = Vec::new();
    for addr in deployment.addrs() {
        let mut direct = redis::Client::open(format!("redis://{addr}/"))
            .expect("url")
            .get_multiplexed_async_connection()
            .await
            .expect("direct");
        let role: Vec<Value> = redis::cmd("ROLE")
            .query_async(&mut direct)
            .await
            .expect("ROLE");
        if role.first() == Some(&Value::BulkString(b"master".to_vec())) {
            out.push(
                redis::cmd("DBSIZE")
                    .query_async(&mut direct)
                    .await
                    .expect("DBSIZE"),
            );
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyless_commands_answer_for_the_whole_keyspace() {
    for (mode, deployment, mut client) in deployments().await {
        for i in 0..KEYS {
            let _: () = client.set(format!("scan:{i}"), i).await.expect("SET");
        }
        let _: () = client.set("other", 1).await.expect("SET");

        // 1. KEYS, DBSIZE.
        let keys: Vec<String> = client.keys("scan:*").await.expect("KEYS");
        let keys: HashSet<String> = keys.into_iter().collect();
        assert_eq!(keys.len(), KEYS, "{mode}: KEYS covers every shard");
        let size: i64 = redis::cmd("DBSIZE")
            .query_async(&mut client)
            .await
            .expect("DBSIZE");
        assert_eq!(size, KEYS as i64 + 1, "{mode}: DBSIZE sums the shards");

        // 2. SCAN over every node; SCAN as a command is refused.
        let scanned: HashSet<Vec<u8>> = client
            .scan(ScanOptions::new().pattern("scan:*").count(50))
            .map(|k| k.expect("scan"))
            .collect()
            .await;
        assert_eq!(scanned.len(), KEYS, "{mode}: the scan stream saw every key");
        let err = client
            .scan_match::<_, String>("scan:*")
            .await
            .err()
            .expect("SCAN refused");
        assert!(
            matches!(Error::from_redis(&err), Some(Error::Unsupported { reason, .. }) if reason.contains("Client::scan")),
            "{mode}: {err}"
        );

        // 3. Scripts work on every node, right after SCRIPT FLUSH.
        let _: () = redis::cmd("SCRIPT")
            .arg("FLUSH")
            .query_async(&mut client)
            .await
            .expect("SCRIPT FLUSH");
        let script = redis::Script::new("return redis.call('GET', KEYS[1])");
        for i in 0..9 {
            let value: i64 = script
                .key(format!("scan:{i}"))
                .invoke_async(&mut client)
                .await
                .unwrap_or_else(|e| panic!("{mode}: script on scan:{i}: {e}"));
            assert_eq!(value, i as i64);
        }

        // 4. Bare WAIT is refused and names the way to do it.
        let err = client
            .send(redis::cmd("WAIT").arg(1).arg(100))
            .await
            .expect_err("WAIT");
        assert!(
            matches!(&err, Error::Unsupported { reason, .. } if reason.contains("dedicated")),
            "{err}"
        );

        // FLUSHALL empties every primary, not one of them.
        let _: () = redis::cmd("FLUSHALL")
            .query_async(&mut client)
            .await
            .expect("FLUSHALL");
        assert!(
            sizes(&deployment).await.iter().all(|&n| n == 0),
            "{mode}: every primary flushed: {:?}",
            sizes(&deployment).await
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_then_wait_on_a_dedicated_connection_counts_that_write() {
    let cluster = Cluster::builder()
        .primaries(3)
        .replicas_per_primary(1)
        .start()
        .await
        .expect("cluster");
    let client = Client::builder()
        .cluster(cluster.seeds())
        .build()
        .await
        .expect("client");
    let mut conn = client.dedicated("{w}key").await.expect("dedicated");
    let _: () = conn.set("{w}key", 1).await.expect("SET");
    let acked: i64 = redis::cmd("WAIT")
        .arg(1)
        .arg(2000)
        .query_async(&mut conn)
        .await
        .expect("WAIT");
    assert_eq!(acked, 1, "the key's replica acknowledged the write");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelines_keep_the_order_of_commands_on_a_common_key() {
    for (mode, _deployment, mut client) in deployments().await {
        let _: () = client
            .mset(&[("pa", "old"), ("pb", "old")])
            .await
            .expect("MSET");
        // 5. A split MSET, then a GET of one of its keys.
        let (_, a): ((), String) = redis::pipe()
            .mset(&[("pa", "new"), ("pb", "new")])
            .get("pa")
            .query_async(&mut client)
            .await
            .expect("pipeline");
        assert_eq!(a, "new", "{mode}: GET after MSET in one pipeline");
        // SET a; DEL a b (split); SET a: a exists at the end. (Read in the same pipeline: a
        // later read on a replica is not promised the write.)
        let (a,): (Option<i64>,) = redis::pipe()
            .set("pa", 0)
            .ignore()
            .del(&["pa", "pb"])
            .ignore()
            .set("pa", 1)
            .ignore()
            .get("pa")
            .query_async(&mut client)
            .await
            .expect("pipeline");
        assert_eq!(a, Some(1), "{mode}: the last SET wins");
        // A keyless whole-keyspace command inside a pipeline is whole too.
        let (_, size): ((), i64) = redis::pipe()
            .set("pc", 1)
            .cmd("DBSIZE")
            .query_async(&mut client)
            .await
            .expect("pipeline");
        assert_eq!(size, 2, "{mode}: pa and pc");
        // ... and refused inside a transaction, which runs on one shard.
        let err = redis::pipe()
            .atomic()
            .set("{t}a", 1)
            .cmd("FLUSHALL")
            .query_async::<Value>(&mut client)
            .await
            .expect_err("refused");
        assert!(
            matches!(Error::from_redis(&err), Some(Error::Unsupported { .. })),
            "{mode}: {err}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partial_failure_names_the_nodes_that_failed_and_succeeded() {
    let fleet = Standalone::start(3).await.expect("fleet");
    let client = Client::builder()
        .ring(shardis_tests::ring_nodes(&fleet))
        .ring_health(HealthPolicy::FailFast)
        .connect_timeout(Duration::from_millis(300))
        .response_timeout(Duration::from_millis(500))
        .build()
        .await
        .expect("ring client");
    fleet.kill(&fleet.nodes()[1]).expect("kill");
    let err = client
        .send(&redis::cmd("FLUSHALL"))
        .await
        .expect_err("partial");
    match err {
        Error::PartialFailure {
            command,
            failed,
            succeeded,
        } => {
            assert_eq!(command, "FLUSHALL");
            assert_eq!(failed.len(), 1, "{failed:?}");
            assert!(failed[0].contains(&fleet.nodes()[1].addr()), "{failed:?}");
            assert_eq!(succeeded.len(), 2);
        }
        other => panic!("expected a partial failure, got {other}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scan_across_a_reshard_returns_every_key_present_throughout() {
    let cluster = Cluster::builder()
        .primaries(3)
        .replicas_per_primary(0)
        .start()
        .await
        .expect("cluster");
    let mut client = Client::builder()
        .cluster(cluster.seeds())
        .refresh_interval(Duration::from_millis(200))
        .build()
        .await
        .expect("client");
    for i in 0..KEYS {
        let _: () = client.set(format!("scan:{i}"), i).await.expect("SET");
    }
    // The scan walks primaries in topology order: move slots from the last one (not scanned
    // yet) to the first one (scanned already) while the scan is on the first.
    let topology = client.topology();
    let endpoint = |i: usize| topology.shards()[i].primary.endpoint.clone();
    let (first, last) = (endpoint(0), endpoint(topology.shards().len() - 1));
    let owner_of = |slot: u16| {
        topology
            .shards()
            .iter()
            .find(|s| s.slots.iter().any(|r| r.start <= slot && slot <= r.end))
            .and_then(|s| s.primary.endpoint.clone())
    };
    let mut moving: Vec<u16> = (0..KEYS)
        .map(|i| shardis::slots::key_slot(format!("scan:{i}").as_bytes()))
        .filter(|&slot| owner_of(slot) == last)
        .collect();
    moving.sort_unstable();
    moving.dedup();
    moving.truncate(10);
    let primaries = cluster.primaries().await.expect("primaries");
    let target = primaries
        .iter()
        .find(|p| Some(p.addr()) == first.as_ref().map(|e| e.to_string()))
        .expect("the first primary")
        .clone();

    let mut stream = client.scan(ScanOptions::new().pattern("scan:*").count(5));
    let mut seen: HashSet<Vec<u8>> = HashSet::new();
    for _ in 0..20 {
        seen.insert(stream.next().await.expect("a key").expect("scan"));
    }
    for &slot in &moving {
        cluster.migrate_slot(slot, &target).await.expect("reshard");
    }
    while let Some(key) = stream.next().await {
        seen.insert(key.expect("scan"));
    }
    assert!(!moving.is_empty());
    assert_eq!(
        seen.len(),
        KEYS,
        "every key present for the whole scan is returned, though {} slots moved to a node \
         already scanned",
        moving.len()
    );
}
