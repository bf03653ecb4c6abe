//! Moving slots: step by step, held half-way (ASK), and with redis-cli.

use std::time::Instant;

use redis::aio::MultiplexedConnection;
use shardis_testkit::{Cluster, Node};

async fn keyslot(conn: &mut MultiplexedConnection, key: &str) -> u16 {
    redis::cmd("CLUSTER")
        .arg("KEYSLOT")
        .arg(key)
        .query_async(conn)
        .await
        .unwrap()
}

async fn count_in_slot(cluster: &Cluster, node: &Node, slot: u16) -> u64 {
    let mut conn = cluster.connection(node).await.unwrap();
    redis::cmd("CLUSTER")
        .arg("COUNTKEYSINSLOT")
        .arg(slot)
        .query_async(&mut conn)
        .await
        .unwrap()
}

/// Slot `slot`'s owner and another primary, with `n` keys `{tag}:i` written to the owner.
async fn setup(cluster: &Cluster, tag: &str, n: usize) -> (u16, Node, Node, Vec<String>) {
    let mut any = cluster.connection(&cluster.nodes()[0]).await.unwrap();
    let slot = keyslot(&mut any, tag).await;
    let source = cluster.node_for_slot(slot).await.unwrap();
    let target = cluster
        .primaries()
        .await
        .unwrap()
        .into_iter()
        .find(|p| p.id != source.id)
        .unwrap();
    let keys: Vec<String> = (0..n).map(|i| format!("{{{tag}}}:{i}")).collect();
    let mut conn = cluster.connection(&source).await.unwrap();
    for k in &keys {
        let _: () = redis::cmd("SET")
            .arg(k)
            .arg(format!("v-{k}"))
            .query_async(&mut conn)
            .await
            .unwrap();
    }
    (slot, source, target, keys)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrate_slot_moves_every_key_and_the_ownership() {
    let cluster = Cluster::builder()
        .primaries(3)
        .replicas_per_primary(0)
        .start()
        .await
        .unwrap();
    let (slot, source, target, keys) = setup(&cluster, "mig", 250).await;

    let started = Instant::now();
    cluster.migrate_slot(slot, &target).await.unwrap();
    eprintln!(
        "migrate_slot with {} keys: {:?}",
        keys.len(),
        started.elapsed()
    );

    assert_eq!(cluster.node_for_slot(slot).await.unwrap(), target);
    assert_eq!(count_in_slot(&cluster, &target, slot).await, 250);
    assert_eq!(count_in_slot(&cluster, &source, slot).await, 0);
    let mut on_target = cluster.connection(&target).await.unwrap();
    for k in &keys {
        let v: String = redis::cmd("GET")
            .arg(k)
            .query_async(&mut on_target)
            .await
            .unwrap();
        assert_eq!(v, format!("v-{k}"));
    }
    let mut on_source = cluster.connection(&source).await.unwrap();
    let err = redis::cmd("GET")
        .arg(&keys[0])
        .query_async::<Option<String>>(&mut on_source)
        .await
        .unwrap_err();
    assert_eq!(
        err.kind(),
        redis::ErrorKind::Server(redis::ServerErrorKind::Moved),
        "{err}"
    );
    // Moving to the owner is a no-op; the cluster agrees on the new owner.
    cluster.migrate_slot(slot, &target).await.unwrap();
    cluster.wait_stable().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_held_migration_serves_moved_keys_with_ask() {
    let cluster = Cluster::builder()
        .primaries(3)
        .replicas_per_primary(0)
        .start()
        .await
        .unwrap();
    let (slot, source, target, keys) = setup(&cluster, "held", 20).await;

    let migration = cluster.begin_migration(slot, &target).await.unwrap();
    assert_eq!(
        (migration.slot(), migration.source(), migration.target()),
        (slot, &source, &target)
    );
    migration.migrate_keys(&keys[..1]).await.unwrap();
    // Keys may be passed as &str too; a key that is not there is skipped.
    migration.migrate_keys(&["{held}:absent"]).await.unwrap();

    let mut on_source = cluster.connection(&source).await.unwrap();
    let err = redis::cmd("GET")
        .arg(&keys[0])
        .query_async::<Option<String>>(&mut on_source)
        .await
        .unwrap_err();
    assert_eq!(
        err.kind(),
        redis::ErrorKind::Server(redis::ServerErrorKind::Ask),
        "{err}"
    );
    assert!(
        err.to_string().contains(&target.addr()),
        "ASK names the target: {err}"
    );
    let still: String = redis::cmd("GET")
        .arg(&keys[1])
        .query_async(&mut on_source)
        .await
        .unwrap();
    assert_eq!(still, format!("v-{}", keys[1]));

    // On the target: MOVED without ASKING, the value with ASKING (sent in one pipeline).
    let mut on_target = cluster.connection(&target).await.unwrap();
    let err = redis::cmd("GET")
        .arg(&keys[0])
        .query_async::<Option<String>>(&mut on_target)
        .await
        .unwrap_err();
    assert_eq!(
        err.kind(),
        redis::ErrorKind::Server(redis::ServerErrorKind::Moved),
        "{err}"
    );
    let (v,): (String,) = redis::pipe()
        .cmd("ASKING")
        .ignore()
        .cmd("GET")
        .arg(&keys[0])
        .query_async(&mut on_target)
        .await
        .unwrap();
    assert_eq!(v, format!("v-{}", keys[0]));

    assert_eq!(migration.migrate_some(5).await.unwrap(), 5);
    assert_eq!(count_in_slot(&cluster, &target, slot).await, 6);
    assert_eq!(
        cluster.node_for_slot(slot).await.unwrap(),
        source,
        "ownership moves only at the end"
    );
    migration.finish().await.unwrap();
    assert_eq!(cluster.node_for_slot(slot).await.unwrap(), target);
    assert_eq!(count_in_slot(&cluster, &target, slot).await, 20);

    assert!(matches!(
        cluster.begin_migration(slot, &target).await,
        Err(shardis_testkit::TestkitError::InvalidArgument(_))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reshard_with_redis_cli_moves_slots_and_keys() {
    let cluster = Cluster::builder()
        .primaries(3)
        .replicas_per_primary(1)
        .start()
        .await
        .unwrap();
    let primaries = cluster.primaries().await.unwrap();
    let (from, to) = (&primaries[0], &primaries[1]);
    // Keys in the first slots of `from`, which redis-cli moves first.
    let mut conn = cluster.connection(from).await.unwrap();
    let mut written = 0u64;
    for i in 0..2000 {
        let key = format!("k{i}");
        if keyslot(&mut conn, &key).await < 100 {
            let _: () = redis::cmd("SET")
                .arg(&key)
                .arg(i)
                .query_async(&mut conn)
                .await
                .unwrap();
            written += 1;
        }
    }
    assert!(written > 0);

    let started = Instant::now();
    cluster.reshard(from, to, 100).await.unwrap();
    eprintln!(
        "redis-cli reshard of 100 slots ({written} keys): {:?}",
        started.elapsed()
    );

    for slot in [0u16, 99] {
        assert_eq!(
            cluster.node_for_slot(slot).await.unwrap(),
            *to,
            "slot {slot}"
        );
    }
    assert_eq!(cluster.node_for_slot(100).await.unwrap(), *from);
    assert_eq!(cluster.dbsize(from).await.unwrap(), 0);
    assert_eq!(cluster.dbsize(to).await.unwrap(), written);
    cluster.wait_stable().await.unwrap();

    // redis-cli's failure (a replica cannot receive slots) comes back with its output.
    let replica = cluster.replicas().await.unwrap().remove(0);
    let bad = cluster.reshard(from, &replica, 10).await.unwrap_err();
    assert!(
        matches!(bad, shardis_testkit::TestkitError::RedisCli { .. }),
        "{bad}"
    );
    assert!(bad.to_string().contains("not a master"), "{bad}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migration_and_reshard_authenticate_as_the_acl_user() {
    let cluster = Cluster::builder()
        .primaries(3)
        .replicas_per_primary(0)
        .acl_user("tester", "pw 1")
        .start()
        .await
        .unwrap();
    let (slot, _source, target, keys) = setup(&cluster, "auth", 30).await;
    cluster.migrate_slot(slot, &target).await.unwrap();
    assert_eq!(
        count_in_slot(&cluster, &target, slot).await,
        keys.len() as u64
    );
    let primaries = cluster.primaries().await.unwrap();
    cluster
        .reshard(&primaries[2], &primaries[0], 10)
        .await
        .unwrap();
    assert_eq!(cluster.node_for_slot(10923).await.unwrap(), primaries[0]);
    // The default user is off: an unauthenticated connection is refused.
    let anon = redis::Client::open(format!("redis://{}/", target.addr())).unwrap();
    let mut anon = anon.get_multiplexed_async_connection().await.unwrap();
    assert!(
        redis::cmd("PING")
            .query_async::<String>(&mut anon)
            .await
            .is_err()
    );
}
