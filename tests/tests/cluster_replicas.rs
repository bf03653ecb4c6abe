//! Replica reads: with `ReadFrom::Replica` the replicas serve the reads (as their own
//! `INFO commandstats` show) and the primaries serve none; writes still go to primaries.

use redis::AsyncCommands;
use shardis::ReadFrom;
use shardis_testkit::Cluster;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replica_reads_are_served_by_replicas() {
    let cluster = Cluster::builder()
        .primaries(3)
        .replicas_per_primary(1)
        .start()
        .await
        .expect("cluster");
    let mut client = shardis::Client::builder()
        .cluster(cluster.seeds())
        .read_from(ReadFrom::Replica)
        .build()
        .await
        .expect("client");
    for i in 0..300 {
        let _: () = client
            .set(format!("r:{i}"), i)
            .await
            .expect("write goes to a primary");
    }
    // Every primary waits until its replica has acknowledged the writes.
    for primary in cluster.primaries().await.unwrap() {
        let mut conn = cluster.connection(&primary).await.unwrap();
        let acked: i64 = redis::cmd("WAIT")
            .arg(1)
            .arg(5000)
            .query_async(&mut conn)
            .await
            .unwrap();
        assert_eq!(acked, 1, "replica of {} caught up", primary.addr());
    }
    for node in cluster.nodes() {
        cluster.config_resetstat(node).await.expect("reset stats");
    }
    for i in 0..300 {
        let v: Option<i64> = client.get(format!("r:{i}")).await.expect("replica read");
        assert_eq!(v, Some(i));
    }
    let count =
        |stats: &std::collections::HashMap<String, u64>| stats.get("get").copied().unwrap_or(0);
    let mut replica_gets = 0;
    for replica in cluster.replicas().await.unwrap() {
        let n = count(&cluster.commandstats(&replica).await.unwrap());
        assert!(n > 0, "replica {} served no reads", replica.addr());
        replica_gets += n;
    }
    for primary in cluster.primaries().await.unwrap() {
        assert_eq!(
            count(&cluster.commandstats(&primary).await.unwrap()),
            0,
            "primary {} served reads",
            primary.addr()
        );
    }
    assert_eq!(replica_gets, 300);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_fall_back_to_the_primary_when_no_replica_is_healthy() {
    let cluster = Cluster::builder()
        .primaries(3)
        .replicas_per_primary(1)
        .start()
        .await
        .expect("cluster");
    let mut client = shardis::Client::builder()
        .cluster(cluster.seeds())
        .read_from(ReadFrom::Replica)
        .build()
        .await
        .expect("client");
    for i in 0..100 {
        let _: () = client.set(format!("f:{i}"), i).await.unwrap();
    }
    for primary in cluster.primaries().await.unwrap() {
        let mut conn = cluster.connection(&primary).await.unwrap();
        let _: i64 = redis::cmd("WAIT")
            .arg(1)
            .arg(5000)
            .query_async(&mut conn)
            .await
            .unwrap();
    }
    // Warm the replica connections, then kill one replica.
    for i in 0..100 {
        let _: Option<i64> = client.get(format!("f:{i}")).await.unwrap();
    }
    let victim = cluster.replicas().await.unwrap().remove(0);
    cluster.kill(&victim).expect("kill the replica");
    for i in 0..100 {
        let v: Option<i64> = client
            .get(format!("f:{i}"))
            .await
            .expect("read falls back to the primary");
        assert_eq!(v, Some(i));
    }
}
