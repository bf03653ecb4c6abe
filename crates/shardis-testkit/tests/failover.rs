//! Failover in every mode, kill -9 with automatic promotion, restart and rejoin.

use std::time::Instant;

use shardis_testkit::{Cluster, FailoverMode, ProcessState, Role};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn manual_failover_in_every_mode() {
    let cluster = Cluster::builder()
        .primaries(3)
        .replicas_per_primary(1)
        .start()
        .await
        .unwrap();
    let primaries = cluster.primaries().await.unwrap();
    let mut conn = cluster.connection(&primaries[0]).await.unwrap();
    let slot_of_a: u16 = redis::cmd("CLUSTER")
        .arg("KEYSLOT")
        .arg("{a}")
        .query_async(&mut conn)
        .await
        .unwrap();
    let mut conn = cluster
        .connection(&cluster.node_for_slot(slot_of_a).await.unwrap())
        .await
        .unwrap();
    let _: () = redis::cmd("SET")
        .arg("{a}")
        .arg(1)
        .query_async(&mut conn)
        .await
        .unwrap();

    for (primary, mode) in primaries.iter().zip([
        FailoverMode::Default,
        FailoverMode::Force,
        FailoverMode::Takeover,
    ]) {
        let slot = cluster
            .nodes()
            .iter()
            .position(|n| n == primary)
            .map(|i| [0u16, 5461, 10923][i])
            .unwrap();
        let mut replica = None;
        for r in cluster.replicas().await.unwrap() {
            if matches!(r.role().await.unwrap(), Role::Replica { primary_port, .. } if primary_port == primary.port)
            {
                replica = Some(r);
            }
        }
        let replica = replica.expect("each primary has a replica");
        let started = Instant::now();
        cluster.failover(&replica, mode).await.unwrap();
        eprintln!("failover {mode:?}: {:?}", started.elapsed());

        assert_eq!(replica.role().await.unwrap(), Role::Primary);
        assert_eq!(cluster.node_for_slot(slot).await.unwrap(), replica);
        cluster.wait_stable().await.unwrap();
    }
    // The data written before survived the failover of its shard.
    let owner = cluster.node_for_slot(slot_of_a).await.unwrap();
    let mut conn = cluster.connection(&owner).await.unwrap();
    let v: i64 = redis::cmd("GET")
        .arg("{a}")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(v, 1);

    let primary = cluster.primaries().await.unwrap().remove(0);
    let err = cluster
        .failover(&primary, FailoverMode::Default)
        .await
        .unwrap_err();
    assert!(
        matches!(err, shardis_testkit::TestkitError::InvalidArgument(_)),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_primary_is_replaced_by_its_replica_and_rejoins_as_replica() {
    let cluster = Cluster::builder()
        .primaries(3)
        .replicas_per_primary(1)
        .node_timeout_ms(1000)
        .start()
        .await
        .unwrap();
    let victim = cluster.primaries().await.unwrap().remove(0);
    let pid = cluster.pid(&victim).unwrap().unwrap();

    let killed_at = Instant::now();
    cluster.kill(&victim).unwrap();
    assert!(
        !std::path::Path::new(&format!("/proc/{pid}")).exists(),
        "killed and reaped"
    );
    assert_eq!(cluster.state(&victim).unwrap(), ProcessState::Killed);
    let successor = cluster
        .wait_for_failover_of(&victim)
        .await
        .unwrap()
        .expect("the new owner is known");
    eprintln!(
        "kill -9 → promotion, node-timeout 1000 ms: {:?}",
        killed_at.elapsed()
    );

    assert_ne!(successor, victim);
    assert_eq!(successor.role().await.unwrap(), Role::Primary);
    assert_eq!(cluster.node_for_slot(0).await.unwrap(), successor);
    assert_eq!(cluster.primaries().await.unwrap().len(), 3);

    // Same port, same directory, same nodes.conf: it comes back as a replica of its successor.
    let restarted_at = Instant::now();
    cluster.restart(&victim).await.unwrap();
    cluster.wait_stable().await.unwrap();
    eprintln!("restart → stable: {:?}", restarted_at.elapsed());
    let mut conn = cluster.connection(&victim).await.unwrap();
    let id: String = redis::cmd("CLUSTER")
        .arg("MYID")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(id, victim.id);
    let mut role = victim.role().await.unwrap();
    for _ in 0..100 {
        if role != Role::Primary {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        role = victim.role().await.unwrap();
    }
    assert!(
        matches!(role, Role::Replica { primary_port, .. } if primary_port == successor.port),
        "{role:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_and_resume_a_cluster_node() {
    let cluster = Cluster::builder()
        .primaries(3)
        .replicas_per_primary(0)
        .start()
        .await
        .unwrap();
    let node = cluster.nodes()[1].clone();
    let mut conn = cluster.connection(&node).await.unwrap();
    cluster.pause(&node).unwrap();
    assert_eq!(cluster.state(&node).unwrap(), ProcessState::Paused);
    let ping_cmd = redis::cmd("PING");
    let ping = ping_cmd.query_async::<String>(&mut conn);
    assert!(
        tokio::time::timeout(std::time::Duration::from_millis(200), ping)
            .await
            .is_err(),
        "a paused node answers nothing"
    );
    // Waits skip paused nodes, but the shard it owns is not served: primaries() skips it.
    assert_eq!(cluster.primaries().await.unwrap().len(), 2);
    cluster.resume(&node).unwrap();
    let pong: String = redis::cmd("PING")
        .query_async(&mut cluster.connection(&node).await.unwrap())
        .await
        .unwrap();
    assert_eq!(pong, "PONG");
    cluster.wait_stable().await.unwrap();
}
