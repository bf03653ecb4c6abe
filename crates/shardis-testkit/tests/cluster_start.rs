//! Starting clusters: readiness, shapes, concurrent starts, teardown.

use std::collections::HashSet;
use std::time::Instant;

use shardis_testkit::{Cluster, FailoverMode, Migration, Node, Role, Standalone};

/// Compile-time check: handles can be shared across tasks and their futures spawned.
#[allow(dead_code)]
fn handles_and_futures_are_send_and_sync(cluster: &'static Cluster, node: &'static Node) {
    fn send<T: Send>(_: T) {}
    fn send_sync<T: Send + Sync>() {}
    send_sync::<Cluster>();
    send_sync::<Standalone>();
    send_sync::<Migration<'static>>();
    send(Cluster::builder().start());
    send(Standalone::start(1));
    send(cluster.failover(node, FailoverMode::Default));
    send(cluster.wait_stable());
    send(cluster.wait_for_failover_of(node));
    send(cluster.begin_migration(0, node));
    send(cluster.migrate_slot(0, node));
    send(cluster.reshard(node, node, 1));
    send(cluster.node_for_slot(0));
    send(cluster.primaries());
    send(cluster.restart(node));
    send(cluster.commandstats(node));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_3x1_cluster_is_ready_when_start_returns() {
    let started = Instant::now();
    let cluster = Cluster::builder().start().await.unwrap();
    eprintln!("3x1 cluster start → ready: {:?}", started.elapsed());

    assert_eq!(cluster.nodes().len(), 6);
    assert_eq!(cluster.seeds().len(), 6);
    let ids: HashSet<&str> = cluster.nodes().iter().map(|n| n.id.as_str()).collect();
    assert_eq!(ids.len(), 6, "distinct node ids");
    assert!(ids.iter().all(|id| id.len() == 40));

    let primaries = cluster.primaries().await.unwrap();
    let replicas = cluster.replicas().await.unwrap();
    assert_eq!((primaries.len(), replicas.len()), (3, 3));
    for node in cluster.nodes() {
        let mut conn = cluster.connection(node).await.unwrap();
        let info: String = redis::cmd("CLUSTER")
            .arg("INFO")
            .query_async(&mut conn)
            .await
            .unwrap();
        assert!(info.contains("cluster_state:ok"), "{}: {info}", node.addr());
        assert!(info.contains("cluster_known_nodes:6"));
        // Every range lists its replica: replicas are visible, not hidden at offset 0.
        let slots: Vec<redis::Value> = redis::cmd("CLUSTER")
            .arg("SLOTS")
            .query_async(&mut conn)
            .await
            .unwrap();
        assert_eq!(slots.len(), 3);
        for range in slots {
            let redis::Value::Array(items) = range else {
                panic!("range")
            };
            assert_eq!(items.len(), 4, "start, end, primary, replica");
        }
    }
    // Each replica follows one primary, a different one each.
    let mut followed = HashSet::new();
    for replica in &replicas {
        let Role::Replica { primary_port, .. } = replica.role().await.unwrap() else {
            panic!("replica")
        };
        assert!(primaries.iter().any(|p| p.port == primary_port));
        followed.insert(primary_port);
    }
    assert_eq!(followed.len(), 3);

    assert_eq!(cluster.node_for_slot(0).await.unwrap(), primaries[0]);
    assert_eq!(cluster.node_for_slot(5461).await.unwrap(), primaries[1]);
    assert_eq!(cluster.node_for_slot(16383).await.unwrap(), primaries[2]);
    assert!(cluster.node_for_slot(16384).await.is_err());
    cluster.wait_stable().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_clusters_started_concurrently_use_distinct_ports() {
    let (a, b, c) = tokio::join!(
        Cluster::builder()
            .primaries(3)
            .replicas_per_primary(0)
            .start(),
        Cluster::builder()
            .primaries(3)
            .replicas_per_primary(0)
            .start(),
        Cluster::builder()
            .primaries(3)
            .replicas_per_primary(0)
            .start(),
    );
    let (a, b, c) = (a.unwrap(), b.unwrap(), c.unwrap());
    let mut ports = HashSet::new();
    for node in a.nodes().iter().chain(b.nodes()).chain(c.nodes()) {
        assert!(ports.insert(node.port), "port {} used twice", node.port);
        assert!(
            ports.insert(node.port + 10000),
            "bus port {} collides",
            node.port + 10000
        );
    }
    // Each cluster only knows its own three nodes.
    for cluster in [&a, &b, &c] {
        let info = cluster.info(&cluster.nodes()[0], "cluster").await.unwrap();
        assert_eq!(info["cluster_enabled"], "1");
        let mut conn = cluster.connection(&cluster.nodes()[0]).await.unwrap();
        let text: String = redis::cmd("CLUSTER")
            .arg("INFO")
            .query_async(&mut conn)
            .await
            .unwrap();
        assert!(text.contains("cluster_known_nodes:3"), "{text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_shapes_form_too() {
    let single = Cluster::builder()
        .primaries(1)
        .replicas_per_primary(0)
        .start()
        .await
        .unwrap();
    assert_eq!(
        single.node_for_slot(16383).await.unwrap(),
        single.nodes()[0]
    );

    let wide = Cluster::builder()
        .primaries(2)
        .replicas_per_primary(2)
        .start()
        .await
        .unwrap();
    assert_eq!(wide.nodes().len(), 6);
    assert_eq!(wide.primaries().await.unwrap().len(), 2);
    assert_eq!(wide.replicas().await.unwrap().len(), 4);

    let err = Cluster::builder().primaries(0).start().await.unwrap_err();
    assert!(
        matches!(err, shardis_testkit::TestkitError::InvalidArgument(_)),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_cluster_kills_and_reaps_every_process() {
    let cluster = Cluster::builder()
        .primaries(3)
        .replicas_per_primary(0)
        .start()
        .await
        .unwrap();
    let pids: Vec<u32> = cluster
        .nodes()
        .iter()
        .map(|n| cluster.pid(n).unwrap().unwrap())
        .collect();
    let dirs: Vec<_> = cluster
        .nodes()
        .iter()
        .map(|n| cluster.dir(n).unwrap())
        .collect();
    assert!(
        pids.iter()
            .all(|p| std::path::Path::new(&format!("/proc/{p}")).exists())
    );
    let ports: Vec<u16> = cluster.nodes().iter().map(|n| n.port).collect();
    drop(cluster);
    for pid in pids {
        // Reaped, not a zombie: the /proc entry is gone.
        assert!(
            !std::path::Path::new(&format!("/proc/{pid}")).exists(),
            "pid {pid} still exists"
        );
    }
    assert!(dirs.iter().all(|d| !d.exists()), "temp dirs removed");
    for port in ports {
        assert!(
            std::net::TcpListener::bind(("127.0.0.1", port)).is_ok(),
            "port {port} released"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_test_still_tears_its_cluster_down() {
    let pids = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = pids.clone();
    let task = tokio::spawn(async move {
        let cluster = Cluster::builder()
            .primaries(1)
            .replicas_per_primary(0)
            .start()
            .await
            .unwrap();
        seen.lock()
            .unwrap()
            .push(cluster.pid(&cluster.nodes()[0]).unwrap().unwrap());
        panic!("test failure while the cluster runs");
    });
    assert!(task.await.unwrap_err().is_panic());
    let pid = pids.lock().unwrap()[0];
    assert!(
        !std::path::Path::new(&format!("/proc/{pid}")).exists(),
        "pid {pid} survived the panic"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn announced_hostnames_and_unknown_endpoints_form_too() {
    let named = Cluster::builder()
        .primaries(3)
        .replicas_per_primary(0)
        .config("cluster-announce-hostname", "localhost")
        .config("cluster-preferred-endpoint-type", "hostname")
        .start()
        .await
        .unwrap();
    let mut conn = named.connection(&named.nodes()[0]).await.unwrap();
    let err = redis::cmd("GET")
        .arg("foo")
        .query_async::<Option<String>>(&mut conn)
        .await;
    // foo hashes to 12182, owned by the third primary: MOVED names it by hostname.
    let err = err.unwrap_err().to_string();
    assert!(
        err.contains(&format!("localhost:{}", named.nodes()[2].port)),
        "{err}"
    );

    // Per-node settings: only node 1 hides its endpoint.
    let mixed = Cluster::builder()
        .primaries(3)
        .replicas_per_primary(0)
        .node_config(|i| match i {
            1 => vec![(
                "cluster-preferred-endpoint-type".into(),
                "unknown-endpoint".into(),
            )],
            _ => vec![],
        })
        .start()
        .await
        .unwrap();
    let mut conn = mixed.connection(&mixed.nodes()[1]).await.unwrap();
    let err = redis::cmd("GET")
        .arg("foo")
        .query_async::<Option<String>>(&mut conn)
        .await;
    let err = err.unwrap_err().to_string();
    assert!(
        err.contains(&format!(" :{}", mixed.nodes()[2].port)),
        "{err}"
    );
    assert_eq!(mixed.node_for_slot(12182).await.unwrap(), mixed.nodes()[2]);
}
