//! Topology changes the client must notice: a primary that lost all its slots leaves the
//! routing table, and its connections are closed.

use std::time::Duration;

use redis::AsyncCommands;
use shardis_testkit::Cluster;

/// How many connections on `node` come from a shardis client (it names them `shardis`).
async fn shardis_connections(cluster: &Cluster, node: &shardis_testkit::Node) -> usize {
    let mut conn = cluster.connection(node).await.unwrap();
    let list: String = redis::cmd("CLIENT")
        .arg("LIST")
        .query_async(&mut conn)
        .await
        .unwrap();
    list.lines()
        .filter(|l| l.contains(" name=shardis "))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_to_a_node_that_left_are_closed() {
    let cluster = Cluster::builder()
        .primaries(3)
        .replicas_per_primary(0)
        .start()
        .await
        .expect("cluster");
    let primaries = cluster.primaries().await.unwrap();
    let (leaving, staying) = (&primaries[0], &primaries[1]);
    // Seed with a node that stays, so the leaving one is known only through the topology.
    let mut client = shardis::Client::builder()
        .cluster([staying.addr()])
        .build()
        .await
        .expect("client");
    for i in 0..300 {
        let _: () = client.set(format!("t:{i}"), i).await.unwrap();
    }
    assert!(
        shardis_connections(&cluster, leaving).await > 0,
        "the client talks to every primary"
    );

    let owned = client
        .topology()
        .shards()
        .iter()
        .find(|s| {
            s.primary
                .endpoint
                .as_ref()
                .is_some_and(|e| e.port == leaving.port)
        })
        .map(|s| s.slot_count())
        .unwrap();
    cluster
        .reshard(leaving, staying, owned)
        .await
        .expect("move every slot away");
    client.refresh_topology().await.expect("cluster mode");
    assert!(client.topology().shards().iter().all(|s| {
        s.primary
            .endpoint
            .as_ref()
            .is_some_and(|e| e.port != leaving.port)
    }));
    for i in 0..300 {
        let v: Option<i64> = client.get(format!("t:{i}")).await.unwrap();
        assert_eq!(v, Some(i));
    }
    // The connection closes once the last command that used it is done.
    let mut left = usize::MAX;
    for _ in 0..50 {
        left = shardis_connections(&cluster, leaving).await;
        if left == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(left, 0, "connections to the node that left are closed");
}
