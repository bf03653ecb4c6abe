//! The coherent in-process tier (L1) over a primary with replicas (`Builder::replicated`), the
//! reader's reads served by the replicas (`ReadFrom::Replica`), against real redis-server
//! processes: a write through another client stops the reader's L1 from serving the old
//! value, also when the replicas lag behind the primary; killing its tracking connections (`CLIENT KILL ID`) empties L1 (counted) and no
//! stale read follows; after a promotion L1 follows writes on the new primary. The same in
//! Sentinel mode (`Builder::sentinel`) through a failover the sentinels carry out.
//!
//! Why replica reads stay coherent: every node that can serve a read has its own tracking
//! connection, and a replica reports a change when it applies it. A read from a lagging
//! replica may fill L1 with the value it still has, but that replica's own invalidation
//! removes it when the write reaches it (or refuses the fill, if it comes first): L1 is
//! never older than the replica reads it stands for.

use std::time::{Duration, Instant};

use shardis::ReadFrom;
use shardis_cache::{Cache, L1Options};
use shardis_testkit::{Replication, Sentinels};

mod support;

use support::{read, until, until_local, write};

async fn client(set: &Replication, read_from: ReadFrom) -> shardis::Client {
    let addrs = set.addrs();
    shardis::Client::builder()
        .replicated(addrs[0].clone(), addrs[1..].to_vec())
        .read_from(read_from)
        .build()
        .await
        .expect("client")
}

fn cache(client: shardis::Client, l1: bool) -> Cache<u64> {
    let builder = Cache::<u64>::builder(client)
        .namespace("l1rep")
        .ttl(Duration::from_secs(600))
        .early_refresh(None);
    let builder = if l1 {
        // A TTL longer than the test: only invalidations make the reader see new values.
        builder.l1(L1Options {
            ttl: Duration::from_secs(600),
            ..L1Options::default()
        })
    } else {
        builder
    };
    builder.build().expect("cache")
}

/// Every tracking connection of the set, killed; how many.
async fn kill_tracking(set: &Replication) -> usize {
    let mut killed = 0;
    for node in set.nodes() {
        let mut conn = set.connection(node).await.expect("connection");
        killed += support::kill_tracking_on(&mut conn)
            .await
            .expect("CLIENT KILL");
    }
    killed
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn l1_over_replicas_follows_writes_and_a_lost_tracking_connection_empties_it() {
    let set = Replication::builder()
        .replicas(2)
        .start()
        .await
        .expect("replication");
    let primary = set.primary().await.expect("primary");
    let reader = cache(client(&set, ReadFrom::Replica).await, true);
    let writer = cache(client(&set, ReadFrom::Primary).await, false);
    until("the feed", async || reader.l1_active()).await;

    // Writes through the other client: the reader turns to each new value (its reads come
    // from the replicas), and L1 serves it.
    write(&writer, "k", 1).await;
    until_local(&reader, "k", 1).await;
    for v in 2..30u64 {
        let seen = reader.stats().l1_invalidations;
        write(&writer, "k", v).await;
        until("the new value", async || read(&reader, "k").await.0 == v).await;
        assert!(reader.stats().l1_invalidations > seen);
        until_local(&reader, "k", v).await;
        // Once every replica applied the write, nothing older is served.
        set.wait_caught_up(&primary).await.expect("caught up");
        for _ in 0..20 {
            assert_eq!(read(&reader, "k").await.0, v);
        }
    }

    // A lagging replica: `CLIENT PAUSE WRITE` on the replicas holds their replication stream
    // (reads go on). After the primary acknowledged a write, the reader's reads — and so its
    // L1 — stand for what the replicas serve, the old value; once they apply the write they
    // report it, and L1 turns to the new value. With an L1 TTL longer than the test, only
    // the replicas' own invalidations can do that.
    for node in &set.nodes()[1..] {
        let mut conn = set.connection(node).await.expect("connection");
        let _: () = redis::cmd("CLIENT")
            .arg("PAUSE")
            .arg(10_000)
            .arg("WRITE")
            .query_async(&mut conn)
            .await
            .expect("CLIENT PAUSE");
    }
    write(&writer, "k", 50).await;
    until_local(&reader, "k", 29).await;
    for node in &set.nodes()[1..] {
        let mut conn = set.connection(node).await.expect("connection");
        let _: () = redis::cmd("CLIENT")
            .arg("UNPAUSE")
            .query_async(&mut conn)
            .await
            .expect("CLIENT UNPAUSE");
    }
    until_local(&reader, "k", 50).await;
    set.wait_caught_up(&primary).await.expect("caught up");
    for _ in 0..20 {
        assert_eq!(read(&reader, "k").await.0, 50);
    }

    // The reader's Redis reads were the replicas'.
    let mut replica_gets = 0;
    for node in &set.nodes()[1..] {
        let stats = set.commandstats(node).await.expect("commandstats");
        replica_gets += stats.get("get").copied().unwrap_or(0);
    }
    assert!(replica_gets > 0, "no GET reached a replica");

    // The tracking connections are killed: L1 is emptied at once (counted), and once the
    // flush was seen a write elsewhere is never hidden by the old value.
    let flushes = reader.stats().l1_flushes;
    assert!(
        kill_tracking(&set).await >= 3,
        "a tracking connection per node"
    );
    until("the flush", async || reader.stats().l1_flushes > flushes).await;
    write(&writer, "k", 100).await;
    set.wait_caught_up(&primary).await.expect("caught up");
    for _ in 0..50 {
        assert_eq!(
            read(&reader, "k").await.0,
            100,
            "a stale read after the flush"
        );
    }
    until("the feed back", async || reader.l1_active()).await;
    until_local(&reader, "k", 100).await;

    // A promotion: the reader follows the new primary's writes.
    let promoted = set.nodes()[1].clone();
    set.promote(&promoted).await.expect("promote");
    for v in 200..205u64 {
        write(&writer, "k", v).await;
        until("the value written on the new primary", async || {
            read(&reader, "k").await.0 == v
        })
        .await;
        until_local(&reader, "k", v).await;
    }
}

/// A write that may meet the failover window: retried until acknowledged (60 s at most).
async fn write_through_failover(cache: &Cache<u64>, id: &str, v: u64) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match cache
            .set_through(id, v, |_| async { Ok::<_, std::io::Error>(()) })
            .await
        {
            Ok(()) => return,
            Err(e) => assert!(Instant::now() < deadline, "write of {v}: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn l1_in_sentinel_mode_follows_writes_through_a_failover() {
    let set = Replication::builder()
        .replicas(2)
        .timeout(Duration::from_secs(120))
        .start()
        .await
        .expect("replication");
    let sentinels = Sentinels::builder()
        .timeout(Duration::from_secs(120))
        .start(&set)
        .await
        .expect("sentinels");
    let sentinel_client = async |read_from| {
        shardis::Client::builder()
            .sentinel(sentinels.master_name(), sentinels.addrs())
            .read_from(read_from)
            .build()
            .await
            .expect("client")
    };
    let reader = cache(sentinel_client(ReadFrom::PreferReplica).await, true);
    let writer = cache(sentinel_client(ReadFrom::Primary).await, false);
    until("the feed", async || reader.l1_active()).await;
    for v in 1..5u64 {
        write(&writer, "k", v).await;
        until_local(&reader, "k", v).await;
    }

    let old = set.primary().await.expect("primary");
    sentinels.failover().await.expect("failover");
    let new = sentinels
        .wait_for_new_primary(&set, &old)
        .await
        .expect("a new primary");
    for v in 10..15u64 {
        write_through_failover(&writer, "k", v).await;
        until_local(&reader, "k", v).await;
        set.wait_caught_up(&new).await.expect("caught up");
        for _ in 0..20 {
            assert_eq!(
                read(&reader, "k").await.0,
                v,
                "an old value after the failover"
            );
        }
    }
}
