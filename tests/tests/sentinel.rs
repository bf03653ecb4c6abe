//! Sentinel mode against 3 real sentinels watching a primary with 2 replicas: discovery with
//! the sentinels' own credentials, a manual failover (`SENTINEL FAILOVER`) under concurrent
//! writers that lose no acknowledged write, and a `kill -9` of the primary after which the
//! client follows the node the sentinels promote. Errors are allowed only inside the failover
//! window.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use redis::AsyncCommands;
use shardis::ReadFrom;
use shardis_testkit::{Node, Replication, Sentinels};

const DATA_PASSWORD: &str = "data-s3cret";
const SENTINEL_PASSWORD: &str = "sentinel-s3cret";
/// Every testkit wait: generous, for a loaded 2-core machine.
const WAITS: Duration = Duration::from_secs(120);

async fn start() -> (Replication, Sentinels) {
    let set = Replication::builder()
        .replicas(2)
        .password(DATA_PASSWORD)
        .timeout(WAITS)
        .start()
        .await
        .expect("primary and replicas");
    let sentinels = Sentinels::builder()
        .password(SENTINEL_PASSWORD)
        .timeout(WAITS)
        .start(&set)
        .await
        .expect("sentinels");
    (set, sentinels)
}

async fn client(sentinels: &Sentinels) -> shardis::Client {
    shardis::Client::builder()
        .sentinel(sentinels.master_name(), sentinels.addrs())
        .sentinel_password(SENTINEL_PASSWORD)
        .password(DATA_PASSWORD)
        .read_from(ReadFrom::PreferReplica)
        .build()
        .await
        .expect("client")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sentinels_name_the_primary_and_replicas_with_their_own_credentials() {
    let (set, sentinels) = start().await;
    let primary = set.primary().await.expect("primary");
    let mut client = client(&sentinels).await;
    let replication = client.replication().expect("sentinel mode");
    assert_eq!(replication.primary, primary.addr());
    let mut replicas = replication.replicas.clone();
    replicas.sort();
    let mut expected: Vec<String> = set.nodes()[1..].iter().map(Node::addr).collect();
    expected.sort();
    assert_eq!(replicas, expected);
    let _: () = client.set("hello", "world").await.expect("write");
    let on_primary: String = set
        .connection(&primary)
        .await
        .expect("connection")
        .get("hello")
        .await
        .expect("read on the primary");
    assert_eq!(on_primary, "world");

    // The data nodes' password is not the sentinels'.
    let refused = shardis::Client::builder()
        .sentinel(sentinels.master_name(), sentinels.addrs())
        .sentinel_password(DATA_PASSWORD)
        .password(DATA_PASSWORD)
        .build()
        .await
        .expect_err("wrong sentinel password");
    let text = refused.to_string();
    assert!(text.contains("refused the credentials"), "{text}");
    assert!(!text.contains(DATA_PASSWORD), "{text}");
    let unknown = shardis::Client::builder()
        .sentinel("no-such-master", sentinels.addrs())
        .sentinel_password(SENTINEL_PASSWORD)
        .build()
        .await
        .expect_err("unknown master");
    assert!(
        unknown.to_string().contains("no master of that name"),
        "{unknown}"
    );

    // With no traffic and no periodic rediscovery, only the sentinels' `+switch-master`
    // announcement can tell the client of a failover.
    let quiet = shardis::Client::builder()
        .sentinel(sentinels.master_name(), sentinels.addrs())
        .sentinel_password(SENTINEL_PASSWORD)
        .password(DATA_PASSWORD)
        .refresh_interval(Duration::from_secs(3600))
        .build()
        .await
        .expect("client");
    let follows = client_follows(&quiet, &primary);
    sentinels.failover().await.expect("SENTINEL FAILOVER");
    let new = sentinels
        .wait_for_new_primary(&set, &primary)
        .await
        .expect("a new primary");
    let (_, to) = follows.await.expect("the client followed the announcement");
    assert_eq!(to, new.addr());
    assert_eq!(
        quiet.replication().expect("sentinel mode").primary_changes,
        1
    );
}

/// What one writer saw: its last acknowledged value, and when its failures happened.
#[derive(Default)]
struct Writer {
    last_acked: u64,
    acked: u64,
    /// Instants of errors of the client (no connection, the write or the `WAIT` failed).
    errors: Vec<Instant>,
    /// Instants of writes that succeeded but that not every replica acknowledged in time.
    unacked: Vec<Instant>,
}

/// Writes `seq` to its own key, then `WAIT 2` on the same connection: a write is
/// acknowledged once both replicas have it (Redis replication is asynchronous; a write only
/// the old primary holds is lost by any failover, so acknowledgement needs `WAIT`).
async fn writer(client: shardis::Client, key: String, stop: Arc<AtomicBool>) -> Writer {
    let mut seen = Writer::default();
    let mut conn = None;
    let mut seq = 0u64;
    while !stop.load(Ordering::Relaxed) {
        seq += 1;
        if conn.is_none() {
            match client.dedicated(&key).await {
                Ok(c) => conn = Some(c),
                Err(_) => {
                    seen.errors.push(Instant::now());
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
            }
        }
        let Some(c) = conn.as_mut() else { continue };
        let written: redis::RedisResult<()> = c.set(&key, seq).await;
        let acked: redis::RedisResult<i64> = match written {
            Ok(()) => redis::cmd("WAIT").arg(2).arg(1000).query_async(c).await,
            Err(e) => Err(e),
        };
        match acked {
            Ok(2) => {
                seen.last_acked = seq;
                seen.acked += 1;
            }
            failed => {
                match failed {
                    Ok(_) => seen.unacked.push(Instant::now()),
                    Err(_) => seen.errors.push(Instant::now()),
                }
                // The next write asks the client where the primary is now.
                conn = None;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
    seen
}

/// A task that polls until the client routes writes to another node than `old`; when it did,
/// and to which node.
fn client_follows(
    client: &shardis::Client,
    old: &Node,
) -> tokio::task::JoinHandle<(Instant, String)> {
    let (client, old) = (client.clone(), old.addr());
    tokio::spawn(async move {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let primary = client.replication().expect("sentinel mode").primary;
            if primary != old {
                return (Instant::now(), primary);
            }
            assert!(Instant::now() < deadline, "the client never followed");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manual_failover_under_load_loses_no_acknowledged_write() {
    let (set, sentinels) = start().await;
    let old = set.primary().await.expect("primary");
    let client = client(&sentinels).await;
    let stop = Arc::new(AtomicBool::new(false));
    let tasks: Vec<_> = (0..8)
        .map(|i| tokio::spawn(writer(client.clone(), format!("writer:{i}"), stop.clone())))
        .collect();
    // Steady state first: every writer gets acknowledgements before the failover.
    tokio::time::sleep(Duration::from_secs(2)).await;

    let began = Instant::now();
    let follows = client_follows(&client, &old);
    sentinels.failover().await.expect("SENTINEL FAILOVER");
    let new = sentinels
        .wait_for_new_primary(&set, &old)
        .await
        .expect("a new primary, every node in sync with it");
    let settled = Instant::now();
    let (followed, to) = follows.await.expect("follower");
    assert_eq!(to, new.addr());
    // Writers keep going well past the window: no failure may happen there.
    tokio::time::sleep(Duration::from_secs(3)).await;
    stop.store(true, Ordering::Relaxed);
    let mut results = Vec::new();
    for task in tasks {
        results.push(task.await.expect("writer"));
    }

    // The client errs only until it follows the new primary; writes go unacknowledged
    // until every node replicates it (the sentinels reconfigure the old primary last).
    // Grace after each: a writer that failed just before sleeps and reconnects; a loaded
    // machine is slow.
    let grace = Duration::from_secs(2);
    let (errors_end, window_end) = (followed + grace, settled.max(followed) + grace);
    let (mut errors, mut unacked) = (0, 0);
    for (i, seen) in results.iter().enumerate() {
        assert!(seen.acked > 0, "writer {i} never got an acknowledgement");
        for (at, end, what) in seen
            .errors
            .iter()
            .map(|at| (at, errors_end, "an error"))
            .chain(
                seen.unacked
                    .iter()
                    .map(|at| (at, window_end, "an unacknowledged write")),
            )
        {
            assert!(
                *at >= began && *at <= end,
                "writer {i}: {what} {:?} after the failover began, outside its window ({:?})",
                at.saturating_duration_since(began),
                end - began
            );
        }
        errors += seen.errors.len();
        unacked += seen.unacked.len();
    }
    let mut on_new = set.connection(&new).await.expect("connection");
    for (i, seen) in results.iter().enumerate() {
        let value: Option<u64> = on_new.get(format!("writer:{i}")).await.expect("read");
        assert!(
            value.unwrap_or(0) >= seen.last_acked,
            "writer {i}: acknowledged {} but the new primary holds {value:?}",
            seen.last_acked
        );
    }
    let replication = client.replication().expect("sentinel mode");
    assert_eq!(replication.primary, new.addr());
    let last = |of: fn(&Writer) -> &Vec<Instant>| {
        results
            .iter()
            .flat_map(|r| of(r).iter())
            .max()
            .map(|at| at.saturating_duration_since(began))
    };
    println!(
        "manual failover: {} acknowledged writes; {errors} client errors (the last {:?} after \
         the failover command), {unacked} writes not acknowledged by both replicas (the last \
         {:?} after); sentinels settled after {:?}, client followed after {:?}; 0 acknowledged \
         writes lost",
        results.iter().map(|r| r.acked).sum::<u64>(),
        last(|w| &w.errors),
        last(|w| &w.unacked),
        settled - began,
        followed - began
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_kill_9_of_the_primary_the_client_follows_the_promoted_replica() {
    let (set, sentinels) = start().await;
    let old = set.primary().await.expect("primary");
    let client = client(&sentinels).await;
    let stop = Arc::new(AtomicBool::new(false));
    let failures = Arc::new(shared::Failures::default());
    let tasks: Vec<_> = (0..4)
        .map(|i| {
            let (client, stop, failures) = (client.clone(), stop.clone(), failures.clone());
            tokio::spawn(async move {
                let mut ok = 0u64;
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    n += 1;
                    let written: redis::RedisResult<()> =
                        client.clone().set(format!("kill:{i}"), n).await;
                    match written {
                        Ok(()) => ok += 1,
                        Err(_) => failures.push(Instant::now()),
                    }
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                ok
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(failures.all().is_empty(), "failures before the kill");

    let killed = Instant::now();
    let follows = client_follows(&client, &old);
    set.kill(&old).expect("kill -9");
    let new = sentinels
        .wait_for_new_primary(&set, &old)
        .await
        .expect("the sentinels promote a replica");
    let settled = Instant::now();
    let (followed, to) = follows.await.expect("follower");
    assert_eq!(to, new.addr());
    tokio::time::sleep(Duration::from_secs(3)).await;
    stop.store(true, Ordering::Relaxed);
    for task in tasks {
        assert!(task.await.expect("writer") > 0);
    }
    let window_end = settled.max(followed) + Duration::from_secs(2);
    let all = failures.all();
    for at in &all {
        assert!(
            *at >= killed && *at <= window_end,
            "a write failed {:?} after the kill, outside the window ({:?})",
            at.saturating_duration_since(killed),
            window_end - killed
        );
    }
    let mut on_new = set.connection(&new).await.expect("connection");
    let value: Option<u64> = on_new.get("kill:0").await.expect("read");
    assert!(value.is_some(), "writes reach the new primary");
    println!(
        "kill -9: {} failed writes, all within {:?} of the kill (sentinels promoted after {:?}, \
         client followed after {:?})",
        all.len(),
        window_end - killed,
        settled - killed,
        followed - killed
    );
}

/// Failure instants shared by writer tasks.
mod shared {
    use std::sync::Mutex;
    use std::time::Instant;

    #[derive(Default)]
    pub struct Failures(Mutex<Vec<Instant>>);

    impl Failures {
        pub fn push(&self, at: Instant) {
            self.0.lock().expect("lock").push(at);
        }

        pub fn all(&self) -> Vec<Instant> {
            self.0.lock().expect("lock").clone()
        }
    }
}

/// The address ring node `name` has in the client now.
fn ring_addr(client: &shardis::Client, name: &str) -> String {
    let status = client.ring_status().expect("ring mode");
    let node = status.nodes.iter().find(|n| n.name == name);
    node.map(|n| n.addr.clone()).unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ring_of_sentinel_shards_follows_a_failover_and_moves_no_key() {
    let shard = || Replication::builder().replicas(1).timeout(WAITS).start();
    let a = shard().await.expect("shard a");
    let b = shard().await.expect("shard b");
    let sentinels = Sentinels::builder()
        .timeout(WAITS)
        .start_many(&[("cache-a", &a), ("cache-b", &b)])
        .await
        .expect("sentinels");
    let mut client = shardis::Client::builder()
        .ring([
            shardis::RingNode::sentinel("cache-a", 1),
            shardis::RingNode::sentinel("cache-b", 1),
        ])
        .ring_sentinels(sentinels.addrs())
        .build()
        .await
        .expect("client");
    let (old_a, old_b) = (a.primary().await.unwrap(), b.primary().await.unwrap());
    assert_eq!(ring_addr(&client, "cache-a"), old_a.addr());
    assert_eq!(ring_addr(&client, "cache-b"), old_b.addr());

    let keys: Vec<String> = (0..200).map(|i| format!("ring:{i}")).collect();
    let owners: Vec<Option<String>> = keys
        .iter()
        .map(|k| client.ring_node_for(k.as_bytes()))
        .collect();
    assert!(owners.iter().any(|o| o.as_deref() == Some("cache-b")));
    for (i, key) in keys.iter().enumerate() {
        let _: () = client.set(key, i).await.expect("write");
    }

    sentinels.failover_of("cache-b").await.expect("failover");
    let new_b = sentinels
        .wait_for_new_primary_of("cache-b", &b, &old_b)
        .await
        .expect("a new primary for cache-b");
    let deadline = Instant::now() + Duration::from_secs(30);
    while ring_addr(&client, "cache-b") != new_b.addr() {
        assert!(Instant::now() < deadline, "the ring never followed cache-b");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(ring_addr(&client, "cache-a"), old_a.addr());
    let now: Vec<Option<String>> = keys
        .iter()
        .map(|k| client.ring_node_for(k.as_bytes()))
        .collect();
    assert_eq!(now, owners, "a failover moves no key");

    let mut on_new_b = b.connection(&new_b).await.expect("connection");
    for (i, key) in keys.iter().enumerate() {
        let _: () = client
            .set(key, i + 1000)
            .await
            .expect("write after the failover");
        if owners[i].as_deref() == Some("cache-b") {
            let v: usize = on_new_b.get(key).await.expect("read on the new primary");
            assert_eq!(v, i + 1000, "{key} written to cache-b's new primary");
        }
        let v: usize = client.get(key).await.expect("read");
        assert_eq!(v, i + 1000);
    }
}
