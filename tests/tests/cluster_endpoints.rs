//! Managed-service style endpoints: nodes that announce hostnames, and nodes that announce
//! no endpoint at all (`unknown-endpoint`), as ElastiCache/Memorystore-style clusters do.
//! Routing and both redirect kinds must work with each.

use redis::AsyncCommands;
use shardis::slots::key_slot;
use shardis_testkit::Cluster;

async fn routes_and_redirects(cluster: &Cluster) {
    let mut client = shardis_tests::client(cluster.seeds()).await;
    for i in 0..500 {
        let _: () = client.set(format!("ep:{i}"), i).await.expect("write");
    }
    for i in 0..500 {
        let v: Option<i64> = client.get(format!("ep:{i}")).await.expect("read");
        assert_eq!(v, Some(i));
    }
    // Move one slot behind the client's back: the next command meets MOVED with this
    // cluster's endpoint style and must land on the new owner.
    let slot = key_slot(b"ep:7");
    let source = cluster.node_for_slot(slot).await.unwrap();
    let target = cluster
        .primaries()
        .await
        .unwrap()
        .into_iter()
        .find(|p| p.id != source.id)
        .unwrap();
    let migration = cluster
        .begin_migration(slot, &target)
        .await
        .expect("begin migration");
    migration
        .migrate_keys(&["ep:7".to_string()])
        .await
        .expect("move the key");
    let v: Option<i64> = client.get("ep:7").await.expect("read through ASK");
    assert_eq!(v, Some(7));
    assert!(client.stats().ask > 0, "ASK followed");
    migration.finish().await.unwrap();
    let v: Option<i64> = client.get("ep:7").await.expect("read through MOVED");
    assert_eq!(v, Some(7));
    assert!(client.stats().moved > 0, "MOVED followed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostname_endpoints_route_and_redirect() {
    let cluster = Cluster::builder()
        .primaries(3)
        .replicas_per_primary(0)
        .config("cluster-announce-hostname", "localhost")
        .config("cluster-preferred-endpoint-type", "hostname")
        .start()
        .await
        .expect("cluster");
    let seeds: Vec<String> = cluster
        .seeds()
        .iter()
        .map(|s| s.replace("127.0.0.1", "localhost"))
        .collect();
    let client = shardis_tests::client(seeds).await;
    let hosts: Vec<String> = client
        .topology()
        .shards()
        .iter()
        .filter_map(|s| s.primary.endpoint.as_ref().map(|e| e.host.clone()))
        .collect();
    assert!(hosts.iter().all(|h| h == "localhost"), "{hosts:?}");
    routes_and_redirects(&cluster).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_endpoints_route_and_redirect() {
    let cluster = Cluster::builder()
        .primaries(3)
        .replicas_per_primary(0)
        .config("cluster-preferred-endpoint-type", "unknown-endpoint")
        .start()
        .await
        .expect("cluster");
    routes_and_redirects(&cluster).await;
}
