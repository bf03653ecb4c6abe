//! The coherent in-process tier (L1) against real redis-server processes, in one process with
//! two clients: values served without Redis, dropped when the other client writes (cluster and
//! ring mode), by the backplane, by `invalidate_all` elsewhere and by `FLUSHALL`; a frozen node
//! (SIGSTOP) turns L1 off through the heartbeat. The
//! two-process measurements, the killed tracking connections, the failover and the reshard
//! are in `l1_fleet.rs`.

use std::time::Duration;

use shardis::RingNode;
use shardis_cache::{Cache, L1Options, Source};
use shardis_testkit::{Cluster, Standalone};

mod support;

use support::{read, until, until_local, write};

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn l1_serves_without_redis_and_drops_what_another_client_wrote() {
    let cluster = cluster(0).await;
    let reader = cache(client(&cluster).await, true);
    let writer = cache(client(&cluster).await, false);
    until("the feed", async || reader.l1_active()).await;

    write(&writer, "k", 1).await;
    until_local(&reader, "k", 1).await;
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
        until_local(&reader, "k", v).await;
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
    until_local(&reader, "k", 0).await;
    let seen = reader.stats().l1_invalidations;
    assert!(writer.publish_invalidation("k").await.expect("publish") >= 1);
    until("the backplane message", async || {
        reader.stats().l1_invalidations > seen
    })
    .await;
    assert_eq!(read(&reader, "k").await, (0, Source::Hit));

    // invalidate_all elsewhere: the namespace version key is tracked too.
    write(&writer, "k", 7).await;
    until_local(&reader, "k", 7).await;
    writer.invalidate_all().await.expect("invalidate_all");
    until("the namespace change", async || {
        read(&reader, "k").await.0 == 0
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn l1_in_ring_mode_follows_writes_and_a_flushall_empties_it() {
    let nodes = Standalone::start(2).await.expect("nodes");
    let ring = || async {
        shardis::Client::builder()
            .ring(
                nodes
                    .nodes()
                    .iter()
                    .enumerate()
                    .map(|(i, n)| RingNode::new(format!("n{i}"), n.addr(), 1)),
            )
            .build()
            .await
            .expect("ring client")
    };
    let reader = cache(ring().await, true);
    let writer = cache(ring().await, false);
    until("the feed", async || reader.l1_active()).await;
    for id in ["a", "b", "c", "d"] {
        write(&writer, id, 1).await;
        until_local(&reader, id, 1).await;
        write(&writer, id, 2).await;
        until("the new value", async || read(&reader, id).await.0 == 2).await;
    }
    until_local(&reader, "a", 2).await;
    let flushes = reader.stats().l1_flushes;
    let mut direct = nodes
        .connection(&nodes.nodes()[0])
        .await
        .expect("connection");
    let _: () = redis::cmd("FLUSHALL")
        .query_async(&mut direct)
        .await
        .expect("FLUSHALL");
    until("the flush", async || reader.stats().l1_flushes > flushes).await;
    // Whatever node held "a", L1 was emptied: the next read goes to Redis.
    assert_ne!(read(&reader, "a").await.1, Source::Local);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_node_turns_l1_off_until_it_answers_again() {
    let cluster = cluster(0).await;
    let reader = cache(client(&cluster).await, true);
    let writer = cache(client(&cluster).await, false);
    until("the feed", async || reader.l1_active()).await;
    write(&writer, "k", 1).await;
    until_local(&reader, "k", 1).await;
    let flushes = reader.stats().l1_flushes;
    // Frozen (SIGSTOP), not closed: only the heartbeat can tell its invalidations stopped.
    let node = cluster.primaries().await.expect("primaries").remove(0);
    cluster.pause(&node).expect("pause");
    until("L1 off", async || !reader.l1_active()).await;
    assert!(reader.stats().l1_flushes > flushes);
    cluster.resume(&node).expect("resume");
    until("the feed back", async || reader.l1_active()).await;
    write(&writer, "k", 2).await;
    until_local(&reader, "k", 2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_process_warms_its_l1_with_the_fleets_hot_ids() {
    let cluster = cluster(0).await;
    let fleet = cache(client(&cluster).await, false);
    for (i, id) in ["a", "b", "c", "d"].into_iter().enumerate() {
        write(&fleet, id, i as u64 + 1).await;
    }
    assert_eq!(
        fleet
            .publish_hot([("a", 100.0), ("b", 50.0), ("c", 10.0), ("d", 1.0)])
            .await
            .expect("publish"),
        4
    );
    // Another detector adds to the same set: "d" overtakes "b".
    fleet.publish_hot([("d", 60.0)]).await.expect("publish");

    let starting = cache(client(&cluster).await, true);
    until("the feed", async || starting.l1_active()).await;
    assert_eq!(starting.warm_l1(2).await.expect("warm"), 2);
    // The first reads of the top 2 are local; the others go to Redis.
    assert_eq!(read(&starting, "a").await, (1, Source::Local));
    assert_eq!(read(&starting, "d").await, (4, Source::Local));
    assert_eq!(read(&starting, "b").await, (2, Source::Hit));
}
