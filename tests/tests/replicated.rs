//! Primary + replicas without cluster mode: writes reach the primary, reads the replicas under
//! `ReadFrom::PreferReplica` (as their own `INFO commandstats` show), whole-keyspace commands the
//! primary only; every client feature works on the one shard; a promotion by hand is followed.

use std::collections::HashMap;
use std::time::Duration;

use futures::StreamExt;
use redis::AsyncCommands;
use shardis::ReadFrom;
use shardis_testkit::{Node, Replication};

fn calls(stats: &HashMap<String, u64>, command: &str) -> u64 {
    stats.get(command).copied().unwrap_or(0)
}

/// `WAIT` on the primary until every replica has its writes: `WAIT` counts the replicas that
/// have this connection's last write, so the connection writes (and removes) a key first.
async fn wait_replicated(set: &Replication, primary: &Node, replicas: i64) {
    let mut conn = set.connection(primary).await.expect("connection");
    let _: () = conn.set("wait:mark", 1).await.expect("mark");
    let _: () = conn.del("wait:mark").await.expect("unmark");
    let acked: i64 = redis::cmd("WAIT")
        .arg(replicas)
        .arg(10_000)
        .query_async(&mut conn)
        .await
        .expect("WAIT");
    assert_eq!(acked, replicas, "replicas caught up");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_reach_replicas_writes_and_whole_keyspace_commands_the_primary() {
    let set = Replication::builder()
        .replicas(2)
        .start()
        .await
        .expect("set");
    let (primary, replicas) = (set.nodes()[0].clone(), set.nodes()[1..].to_vec());
    let mut client = shardis::Client::builder()
        .replicated(primary.addr(), replicas.iter().map(Node::addr))
        .read_from(ReadFrom::PreferReplica)
        .build()
        .await
        .expect("client");
    let replication = client.replication().expect("replicated mode");
    assert_eq!(replication.primary, primary.addr());
    assert_eq!(replication.replicas.len(), 2);

    for i in 0..200 {
        let _: () = client.set(format!("k:{i}"), i).await.expect("write");
    }
    wait_replicated(&set, &primary, 2).await;
    for node in set.nodes() {
        set.config_resetstat(node).await.expect("reset");
    }
    for i in 0..200 {
        let v: Option<i64> = client.get(format!("k:{i}")).await.expect("read");
        assert_eq!(v, Some(i));
    }
    let values: Vec<Option<i64>> = client.mget(&["k:1", "k:2", "nope"]).await.expect("mget");
    assert_eq!(values, vec![Some(1), Some(2), None]);
    for i in 0..50 {
        let _: () = client.set(format!("w:{i}"), i).await.expect("write");
    }
    let size: i64 = redis::cmd("DBSIZE")
        .query_async(&mut client)
        .await
        .expect("dbsize");
    assert_eq!(size, 250, "the primary's whole keyspace");
    let keys: Vec<String> = client.keys("w:*").await.expect("keys");
    assert_eq!(keys.len(), 50);

    let on_primary = set.commandstats(&primary).await.expect("stats");
    assert_eq!(calls(&on_primary, "get"), 0, "the primary served reads");
    assert_eq!(calls(&on_primary, "mget"), 0, "the primary served reads");
    assert_eq!(calls(&on_primary, "set"), 50, "writes go to the primary");
    assert_eq!(calls(&on_primary, "dbsize"), 1);
    assert_eq!(calls(&on_primary, "keys"), 1);
    let mut replica_gets = 0;
    for replica in &replicas {
        let stats = set.commandstats(replica).await.expect("stats");
        assert!(
            calls(&stats, "get") > 0,
            "{} served no reads",
            replica.addr()
        );
        assert_eq!(calls(&stats, "dbsize") + calls(&stats, "keys"), 0);
        replica_gets += calls(&stats, "get");
    }
    assert_eq!(replica_gets, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transactions_scripts_blocking_pubsub_and_scan_work_on_the_one_shard() {
    let set = Replication::builder()
        .replicas(1)
        .start()
        .await
        .expect("set");
    let (primary, replica) = (set.nodes()[0].clone(), set.nodes()[1].clone());
    // Given the replica as "primary": the roles are checked, the real primary is used.
    let mut client = shardis::Client::builder()
        .replicated(replica.addr(), [primary.addr()])
        .read_from(ReadFrom::PreferReplica)
        .build()
        .await
        .expect("client");
    let replication = client.replication().expect("replicated mode");
    assert_eq!(replication.primary, primary.addr());
    assert_eq!(replication.replicas, vec![replica.addr()]);

    // Keys of no common hash tag share a transaction: one shard.
    let (a, b): (i64, i64) = redis::pipe()
        .atomic()
        .incr("tx:a", 1)
        .incr("tx:b", 2)
        .query_async(&mut client)
        .await
        .expect("MULTI/EXEC");
    assert_eq!((a, b), (1, 2));
    let total: i64 = client
        .transaction(&["tx:a", "tx:b"], async |conn, mut pipe| {
            let a: i64 = conn.get("tx:a").await?;
            let b: i64 = conn.get("tx:b").await?;
            pipe.set("tx:sum", a + b).ignore().get("tx:sum");
            let done: Option<(i64,)> = pipe.query_async(conn).await?;
            Ok(done.map(|(v,)| v))
        })
        .await
        .expect("WATCH transaction");
    assert_eq!(total, 3);
    let script = redis::Script::new("return redis.call('INCRBY', KEYS[1], ARGV[1])");
    let n: i64 = script
        .key("s:1")
        .arg(5)
        .invoke_async(&mut client)
        .await
        .expect("script");
    assert_eq!(n, 5);

    // A blocking pop waits on the primary for a push.
    let popper = {
        let client = client.clone();
        tokio::spawn(async move {
            client
                .send(redis::cmd("BLPOP").arg("q").arg(10))
                .await
                .expect("BLPOP")
        })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    let _: () = client.rpush("q", "job").await.expect("push");
    let popped = popper.await.expect("task");
    assert_eq!(
        redis::from_redis_value::<(String, String)>(popped).expect("reply"),
        ("q".to_string(), "job".to_string())
    );

    let mut news = client.subscribe(["news"]).await.expect("subscribe");
    let receivers: i64 = redis::cmd("PUBLISH")
        .arg("news")
        .arg("hello")
        .query_async(&mut client)
        .await
        .expect("publish");
    assert_eq!(receivers, 1);
    let message = tokio::time::timeout(Duration::from_secs(10), news.next())
        .await
        .expect("a message in time")
        .expect("a message");
    assert_eq!(message.payload(), b"hello");

    let mut keys: Vec<Vec<u8>> = client
        .scan(shardis::ScanOptions::new().pattern("tx:*"))
        .map(|k| k.expect("key"))
        .collect()
        .await;
    keys.sort();
    assert_eq!(
        keys,
        vec![b"tx:a".to_vec(), b"tx:b".to_vec(), b"tx:sum".to_vec()]
    );

    // Fan-outs: every node, or the primary alone; the rest of the API says what it is for.
    let everywhere = client
        .on_all_nodes(&redis::cmd("PING"))
        .await
        .expect("fan-out");
    assert_eq!(everywhere.len(), 2);
    let primaries = client
        .on_all_primaries(&redis::cmd("PING"))
        .await
        .expect("fan-out");
    assert_eq!(primaries.len(), 1);
    assert_eq!(primaries[0].0, primary.addr());
    let before = client.stats().refreshes;
    client
        .refresh_topology()
        .await
        .expect("rediscovery on demand");
    let stats = client.stats();
    assert!(
        stats.refreshes > before,
        "a rediscovery is counted: {stats:?}"
    );
    assert_eq!(stats.refresh_failures, 0, "{stats:?}");
    assert!(client.topology().shards().is_empty());
    assert!(client.ring_status().is_none());
    let not_a_ring = client
        .add_node(shardis::RingNode::at("127.0.0.1:1"))
        .await
        .expect_err("no ring");
    assert!(not_a_ring.to_string().contains("ring-mode"), "{not_a_ring}");

    let refused = shardis::Client::builder()
        .replicated(primary.addr(), [replica.addr()])
        .hot_keys(shardis::HotKeyOptions::default())
        .build()
        .await
        .expect_err("hot-key copies need shards");
    assert!(refused.to_string().contains("PreferReplica"), "{refused}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_promotion_by_hand_is_followed_by_writes_reads_and_subscriptions() {
    let set = Replication::builder()
        .replicas(2)
        .start()
        .await
        .expect("set");
    let (old, next) = (set.nodes()[0].clone(), set.nodes()[1].clone());
    let mut client = shardis::Client::builder()
        .replicated(old.addr(), set.nodes()[1..].iter().map(Node::addr))
        .read_from(ReadFrom::PreferReplica)
        .build()
        .await
        .expect("client");
    for i in 0..100 {
        let _: () = client.set(format!("p:{i}"), i).await.expect("write");
    }
    let mut news = client.subscribe(["news"]).await.expect("subscribe");
    wait_replicated(&set, &old, 2).await;

    set.promote(&next).await.expect("promotion");

    // A transaction reaches the demoted primary first: its queued write is refused
    // (READONLY), so EXEC discards it; nothing ran, and it runs again on the new primary.
    let (incremented,): (i64,) = redis::pipe()
        .atomic()
        .set("p:tx", 1)
        .ignore()
        .incr("p:tx", 1)
        .query_async(&mut client)
        .await
        .expect("a transaction right after the promotion");
    assert_eq!(incremented, 2, "it ran once");

    // The next writes find the new primary too: no write fails.
    for i in 0..100 {
        let _: () = client
            .set(format!("p:{i}"), i + 1000)
            .await
            .expect("write after the promotion");
    }
    let replication = client.replication().expect("replicated mode");
    assert_eq!(replication.primary, next.addr());
    assert_eq!(replication.primary_changes, 1);
    // The READONLY retry and the rediscovery that found the new primary, counted.
    let stats = client.stats();
    assert!(
        stats.retries >= 1 && stats.refreshes >= 1,
        "counted: {stats:?}"
    );
    assert!(
        replication.replicas.contains(&old.addr()),
        "the demoted primary serves reads: {replication:?}"
    );
    let mut on_new = set.connection(&next).await.expect("connection");
    for i in 0..100 {
        let v: i64 = on_new.get(format!("p:{i}")).await.expect("read");
        assert_eq!(v, i + 1000, "the write reached the new primary");
    }
    wait_replicated(&set, &next, 2).await;
    for i in 0..100 {
        let v: i64 = client.get(format!("p:{i}")).await.expect("read");
        assert_eq!(v, i + 1000);
    }

    // The subscription moved to the new primary, where PUBLISH now goes.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let _: i64 = redis::cmd("PUBLISH")
            .arg("news")
            .arg("after")
            .query_async(&mut client)
            .await
            .expect("publish");
        match tokio::time::timeout(Duration::from_millis(500), news.next()).await {
            Ok(Some(message)) => {
                assert_eq!(message.payload(), b"after");
                break;
            }
            Ok(None) => panic!("the subscription ended"),
            Err(_) => assert!(
                tokio::time::Instant::now() < deadline,
                "no message through the new primary"
            ),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_that_lost_its_primary_serves_no_read_the_primary_does() {
    let set = Replication::builder()
        .replicas(1)
        .start()
        .await
        .expect("set");
    let (primary, replica) = (set.nodes()[0].clone(), set.nodes()[1].clone());
    let mut client = shardis::Client::builder()
        .replicated(primary.addr(), [replica.addr()])
        .read_from(ReadFrom::Replica)
        .build()
        .await
        .expect("client");
    for i in 0..50 {
        let _: () = client.set(format!("s:{i}"), i).await.expect("write");
    }
    wait_replicated(&set, &primary, 1).await;
    // The replica now follows a primary that does not exist, and refuses stale reads
    // (`MASTERDOWN`): no read may fail (the primary serves the retry, then the replica is
    // dropped from the read set).
    let mut conn = set.connection(&replica).await.expect("connection");
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("replica-serve-stale-data")
        .arg("no")
        .query_async(&mut conn)
        .await
        .expect("config");
    let _: () = redis::cmd("REPLICAOF")
        .arg("127.0.0.1")
        .arg(1)
        .query_async(&mut conn)
        .await
        .expect("replicaof");
    for i in 0..50 {
        let v: Option<i64> = client.get(format!("s:{i}")).await.expect("read");
        assert_eq!(v, Some(i));
    }
    let replication = client.replication().expect("replicated mode");
    assert!(
        replication.replicas.is_empty(),
        "a node replicating another primary serves no reads: {replication:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_promotion_of_a_node_the_client_never_knew_is_followed() {
    let set = Replication::builder()
        .replicas(2)
        .start()
        .await
        .expect("set");
    let (primary, replica, stranger) = (
        set.nodes()[0].clone(),
        set.nodes()[1].clone(),
        set.nodes()[2].clone(),
    );
    // The third node leaves: the client is given, and its primary reports, two nodes only
    // (as a client given a managed service's endpoints never hears of the nodes behind them).
    let mut conn = set.connection(&stranger).await.expect("connection");
    let _: () = redis::cmd("REPLICAOF")
        .arg("NO")
        .arg("ONE")
        .query_async(&mut conn)
        .await
        .expect("detach");
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let info = set.info(&primary, "replication").await.expect("info");
        if info.get("connected_slaves").map(String::as_str) == Some("1") {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the node never left");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut client = shardis::Client::builder()
        .replicated(primary.addr(), [replica.addr()])
        .build()
        .await
        .expect("client");
    assert_eq!(
        client.replication().expect("mode").replicas,
        vec![replica.addr()]
    );

    // An operator promotes it: the old primary and its replica now replicate it.
    set.promote(&stranger).await.expect("promotion");
    for i in 0..20 {
        let _: () = client
            .set(format!("x:{i}"), i)
            .await
            .expect("write after the promotion");
    }
    let replication = client.replication().expect("mode");
    assert_eq!(replication.primary, stranger.addr());
    let mut on_new = set.connection(&stranger).await.expect("connection");
    let v: i64 = on_new.get("x:19").await.expect("read");
    assert_eq!(v, 19);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scan_across_a_promotion_returns_every_key() {
    let set = Replication::builder()
        .replicas(2)
        .start()
        .await
        .expect("set");
    let (old, next) = (set.nodes()[0].clone(), set.nodes()[1].clone());
    let mut client = shardis::Client::builder()
        .replicated(old.addr(), set.nodes()[1..].iter().map(Node::addr))
        .read_from(ReadFrom::Replica)
        .build()
        .await
        .expect("client");
    const KEYS: usize = 300;
    for i in 0..KEYS {
        let _: () = client.set(format!("s:{i}"), i).await.expect("write");
    }
    // Scanned on the primary: every key written before is seen, whatever the replicas have.
    let all: std::collections::HashSet<Vec<u8>> = client
        .scan(shardis::ScanOptions::new().count(10))
        .map(|k| k.expect("scan"))
        .collect()
        .await;
    assert_eq!(all.len(), KEYS, "a scan right after the writes");

    // A promotion half-way through a scan: the keys present throughout are all returned.
    wait_replicated(&set, &old, 2).await;
    let mut scan = Box::pin(client.scan(shardis::ScanOptions::new().count(10)));
    let mut seen = std::collections::HashSet::new();
    while seen.len() < KEYS / 3 {
        let key = scan.next().await.expect("a key").expect("scan");
        seen.insert(key);
    }
    set.promote(&next).await.expect("promotion");
    // A write finds the new primary (the scan alone may not notice the promotion).
    let _: () = client
        .set("s:0", 0)
        .await
        .expect("write after the promotion");
    while let Some(key) = scan.next().await {
        seen.insert(key.expect("scan after the promotion"));
    }
    let missing: Vec<usize> = (0..KEYS)
        .filter(|i| !seen.contains(format!("s:{i}").as_bytes()))
        .collect();
    assert!(missing.is_empty(), "keys the scan missed: {missing:?}");
    assert_eq!(
        client.replication().expect("replicated").primary,
        next.addr()
    );
}
