//! Independent non-cluster nodes and the per-node helpers.

use std::time::Duration;

use shardis_testkit::{ProcessState, Role, Standalone};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn standalone_nodes_are_independent_and_observable() {
    let nodes = Standalone::start(4).await.unwrap();
    assert_eq!(nodes.nodes().len(), 4);
    assert_eq!(nodes.addrs()[0], nodes.nodes()[0].addr());
    let first = &nodes.nodes()[0];
    assert!(first.id.is_empty());
    assert_eq!(first.role().await.unwrap(), Role::Primary);
    assert_eq!(
        nodes.info(first, "cluster").await.unwrap()["cluster_enabled"],
        "0"
    );

    nodes.config_resetstat(first).await.unwrap();
    let mut conn = nodes.connection(first).await.unwrap();
    for i in 0..5 {
        let _: () = redis::cmd("SET")
            .arg(format!("k{i}"))
            .arg(i)
            .query_async(&mut conn)
            .await
            .unwrap();
    }
    let _: Option<String> = redis::cmd("GET")
        .arg("k0")
        .query_async(&mut conn)
        .await
        .unwrap();
    let stats = nodes.commandstats(first).await.unwrap();
    assert_eq!(stats.get("set"), Some(&5));
    assert_eq!(stats.get("get"), Some(&1));
    assert_eq!(nodes.dbsize(first).await.unwrap(), 5);
    assert_eq!(nodes.keyspace_keys(first).await.unwrap(), 5);
    for other in &nodes.nodes()[1..] {
        assert_eq!(nodes.dbsize(other).await.unwrap(), 0, "nodes share nothing");
        assert_eq!(nodes.keyspace_keys(other).await.unwrap(), 0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_resume_kill_restart() {
    let nodes = Standalone::start(2).await.unwrap();
    let node = nodes.nodes()[0].clone();
    let mut conn = nodes.connection(&node).await.unwrap();

    nodes.pause(&node).unwrap();
    assert_eq!(nodes.state(&node).unwrap(), ProcessState::Paused);
    let ping_cmd = redis::cmd("PING");
    let ping = ping_cmd.query_async::<String>(&mut conn);
    assert!(
        tokio::time::timeout(Duration::from_millis(200), ping)
            .await
            .is_err(),
        "paused: no PONG within 200 ms"
    );
    nodes.resume(&node).unwrap();
    assert_eq!(nodes.state(&node).unwrap(), ProcessState::Running);
    let mut conn = nodes.connection(&node).await.unwrap();
    let pong: String = redis::cmd("PING").query_async(&mut conn).await.unwrap();
    assert_eq!(pong, "PONG");

    let pid = nodes.pid(&node).unwrap().unwrap();
    nodes.kill(&node).unwrap();
    assert!(!std::path::Path::new(&format!("/proc/{pid}")).exists());
    assert_eq!(nodes.pid(&node).unwrap(), None);
    assert!(
        nodes.connection(&node).await.is_err(),
        "nothing listens after kill -9"
    );
    assert!(matches!(
        nodes.pause(&node),
        Err(shardis_testkit::TestkitError::NotRunning { .. })
    ));

    nodes.restart(&node).await.unwrap();
    assert_eq!(nodes.state(&node).unwrap(), ProcessState::Running);
    let mut conn = nodes.connection(&node).await.unwrap();
    let pong: String = redis::cmd("PING").query_async(&mut conn).await.unwrap();
    assert_eq!(pong, "PONG");
    assert_ne!(nodes.pid(&node).unwrap(), Some(pid));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn builder_config_and_password_apply_to_every_node() {
    let nodes = Standalone::builder()
        .nodes(2)
        .password("s3cret")
        .config("maxmemory-policy", "allkeys-lru")
        .node_config(|i| vec![("databases".into(), format!("{}", 4 + i))])
        .start()
        .await
        .unwrap();
    for (i, node) in nodes.nodes().iter().enumerate() {
        // The testkit authenticates its own and handed-out connections.
        let mut conn = nodes.connection(node).await.unwrap();
        let policy: Vec<String> = redis::cmd("CONFIG")
            .arg("GET")
            .arg("maxmemory-policy")
            .query_async(&mut conn)
            .await
            .unwrap();
        assert_eq!(policy[1], "allkeys-lru");
        let dbs: Vec<String> = redis::cmd("CONFIG")
            .arg("GET")
            .arg("databases")
            .query_async(&mut conn)
            .await
            .unwrap();
        assert_eq!(dbs[1], (4 + i).to_string());
        assert_eq!(nodes.dbsize(node).await.unwrap(), 0);
        // Without the password, nothing is allowed.
        let client = redis::Client::open(format!("redis://{}/", node.addr())).unwrap();
        let mut anon = client.get_multiplexed_async_connection().await.unwrap();
        let err = redis::cmd("DBSIZE")
            .query_async::<u64>(&mut anon)
            .await
            .unwrap_err();
        assert!(err.to_string().contains("NOAUTH"), "{err}");
    }
    let bad = Standalone::builder()
        .config("maxmemory", "1mb\nport 1")
        .start()
        .await
        .unwrap_err();
    assert!(
        matches!(bad, shardis_testkit::TestkitError::InvalidArgument(_)),
        "{bad}"
    );
    let broken = Standalone::builder()
        .config("no-such-directive", "1")
        .start()
        .await
        .unwrap_err();
    assert!(
        matches!(broken, shardis_testkit::TestkitError::ServerExited { .. }),
        "{broken}"
    );
    assert!(
        broken.to_string().contains("no-such-directive"),
        "the log tail explains: {broken}"
    );
}
