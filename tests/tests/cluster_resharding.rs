//! Live resharding under load, and a slot held mid-migration: no caller sees an error, every
//! acknowledged write survives, and both redirect paths (MOVED and ASK) are taken.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use redis::AsyncCommands;
use shardis::slots::key_slot;
use shardis_testkit::Cluster;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resharding_under_load_loses_nothing_and_errors_nothing() {
    let cluster = Cluster::builder()
        .primaries(3)
        .replicas_per_primary(1)
        .start()
        .await
        .expect("cluster");
    let client = shardis_tests::client(cluster.seeds()).await;
    let primaries = cluster.primaries().await.expect("primaries");
    let (from, to) = (&primaries[0], &primaries[1]);

    let stop = Arc::new(AtomicBool::new(false));
    let started = std::time::Instant::now();
    let load = tokio::spawn(shardis_tests::run_load(
        client.clone(),
        32,
        40,
        stop.clone(),
    ));
    tokio::time::sleep(Duration::from_millis(300)).await;

    // Half of one primary's slots move with redis-cli, while the load runs.
    cluster
        .reshard(from, to, 16384 / 3 / 2)
        .await
        .expect("redis-cli reshard");
    // A further range moves step by step (IMPORTING/MIGRATING, MIGRATE, SETSLOT NODE): slots
    // of the third primary that hold load keys, each held open while the load runs, so
    // callers meet ASK for the keys already moved.
    let third = &primaries[2];
    let topology = client.topology();
    let owned: std::collections::HashSet<u16> = topology
        .shards()
        .iter()
        .find(|s| {
            s.primary
                .endpoint
                .as_ref()
                .is_some_and(|e| e.port == third.port)
        })
        .map(|s| s.slots.iter().flat_map(|r| r.start..=r.end).collect())
        .unwrap_or_default();
    let mut by_slot: std::collections::BTreeMap<u16, Vec<String>> = Default::default();
    for t in 0..32 {
        for k in 0..40 {
            let key = format!("load:{t}:{k}");
            let slot = key_slot(key.as_bytes());
            if owned.contains(&slot) {
                by_slot.entry(slot).or_default().push(key);
            }
        }
    }
    assert!(
        by_slot.len() >= 10,
        "load keys on the third primary: {}",
        by_slot.len()
    );
    for (slot, keys) in by_slot.into_iter().take(10) {
        let migration = cluster
            .begin_migration(slot, from)
            .await
            .expect("begin migration");
        migration
            .migrate_keys(&keys)
            .await
            .expect("move the slot's keys");
        tokio::time::sleep(Duration::from_millis(250)).await;
        migration.finish().await.expect("finish migration");
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::Relaxed);
    let report = load.await.expect("load");

    assert!(
        report.errors.is_empty(),
        "{} errors reached callers, first: {:?}",
        report.errors.len(),
        report.errors.first()
    );
    assert!(report.ok > 1000, "the load barely ran: {} ops", report.ok);
    let mut reader = client.clone();
    shardis_tests::assert_writes_survived(&mut reader, &report.written).await;
    let stats = client.stats();
    assert!(stats.moved > 0, "MOVED path not taken: {stats:?}");
    assert!(stats.ask > 0, "ASK path not taken: {stats:?}");
    // A redirect storm causes a bounded number of refreshes: at most one per
    // refresh_min_interval (100 ms by default), not one per MOVED.
    let bound = started.elapsed().as_millis() as u64 / 100 + 2;
    assert!(
        stats.refreshes <= bound,
        "{} refreshes for {} MOVED in {:?}",
        stats.refreshes,
        stats.moved,
        started.elapsed()
    );
    assert!(stats.moved > stats.refreshes, "{stats:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slot_held_mid_migration_is_served_from_both_sides() {
    let cluster = Cluster::builder()
        .primaries(3)
        .replicas_per_primary(1)
        .start()
        .await
        .expect("cluster");
    let mut client = shardis_tests::client(cluster.seeds()).await;
    // Keys of one slot, via a hash tag.
    let slot = key_slot(b"mig");
    let source = cluster.node_for_slot(slot).await.expect("owner");
    let target = cluster
        .primaries()
        .await
        .expect("primaries")
        .into_iter()
        .find(|p| p.id != source.id)
        .expect("another primary");
    let old: Vec<String> = (0..20).map(|i| format!("{{mig}}old{i}")).collect();
    for k in &old {
        let _: () = client.set(k, "old").await.expect("seed keys");
    }

    let migration = cluster
        .begin_migration(slot, &target)
        .await
        .expect("hold the slot mid-migration");
    migration
        .migrate_keys(&old[..10])
        .await
        .expect("move half the keys");

    // Keys not yet moved are read from the source; moved ones through ASK on the target.
    for k in &old {
        let v: Option<String> = client.get(k).await.expect("read during migration");
        assert_eq!(v.as_deref(), Some("old"), "{k}");
    }
    // New keys are written on the target through ASK.
    for i in 0..10 {
        let _: () = client
            .set(format!("{{mig}}new{i}"), "new")
            .await
            .expect("write during migration");
    }
    let mut on_target = cluster.connection(&target).await.expect("target");
    let new_keys: i64 = redis::cmd("CLUSTER")
        .arg("COUNTKEYSINSLOT")
        .arg(slot)
        .query_async(&mut on_target)
        .await
        .unwrap();
    assert_eq!(new_keys, 20, "10 moved + 10 new keys must be on the target");
    assert!(client.stats().ask > 0);

    // An MGET over the half-moved slot gets TRYAGAIN until the slot is done, then succeeds.
    let mut mget_client = client.clone();
    let keys = old.clone();
    let mget = tokio::spawn(async move { mget_client.mget::<_, Vec<Option<String>>>(&keys).await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !mget.is_finished(),
        "MGET must be retrying past TRYAGAIN while the slot is split"
    );
    migration.finish().await.expect("finish the migration");
    let values = mget
        .await
        .unwrap()
        .expect("MGET succeeds once the slot is done");
    assert!(values.iter().all(|v| v.as_deref() == Some("old")));
    assert!(
        client.stats().retries > 0,
        "TRYAGAIN retries: {:?}",
        client.stats()
    );
}
