//! Shared helpers of the integration tests in `tests/tests/`: a client for a testkit cluster,
//! and a load generator whose every acknowledged write can be checked afterwards.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use redis::AsyncCommands;

/// A shardis client for `seeds`, with settings suited to tests that break the cluster.
pub async fn client(seeds: Vec<String>) -> shardis::Client {
    shardis::Client::builder()
        .cluster(seeds)
        .deadline(Duration::from_secs(10))
        .build()
        .await
        .expect("client connects to the test cluster")
}

/// What a load run saw.
#[derive(Debug, Default)]
pub struct LoadReport {
    /// Operations that succeeded.
    pub ok: u64,
    /// Errors, with when they happened and what they said.
    pub errors: Vec<(Instant, String)>,
    /// The last acknowledged value of every key written.
    pub written: HashMap<String, u64>,
}

/// Runs `tasks` concurrent writers/readers over distinct keys until `stop` is set. Each task
/// owns its keys, so the last acknowledged value of each key is known exactly.
pub async fn run_load(
    client: shardis::Client,
    tasks: usize,
    keys_per_task: usize,
    stop: Arc<AtomicBool>,
) -> LoadReport {
    let ok = Arc::new(AtomicU64::new(0));
    let mut handles = Vec::new();
    for t in 0..tasks {
        let mut client = client.clone();
        let stop = stop.clone();
        let ok = ok.clone();
        handles.push(tokio::spawn(async move {
            let mut written: HashMap<String, u64> = HashMap::new();
            let mut errors = Vec::new();
            let mut round = 0u64;
            while !stop.load(Ordering::Relaxed) {
                round += 1;
                for k in 0..keys_per_task {
                    let key = format!("load:{t}:{k}");
                    match client.set::<_, _, ()>(&key, round).await {
                        Ok(()) => {
                            written.insert(key.clone(), round);
                            ok.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(e) => errors.push((Instant::now(), format!("SET {key}: {e}"))),
                    }
                    match client.get::<_, Option<u64>>(&key).await {
                        Ok(v) => {
                            // A read must return the last acknowledged write (a miss is a
                            // lost write).
                            if let Some(expected) = written.get(&key)
                                && v != Some(*expected)
                            {
                                errors.push((
                                    Instant::now(),
                                    format!("GET {key}: read {v:?}, last write {expected}"),
                                ));
                            }
                            ok.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(e) => errors.push((Instant::now(), format!("GET {key}: {e}"))),
                    }
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                }
            }
            (written, errors)
        }));
    }
    let mut report = LoadReport::default();
    for h in handles {
        let (written, errors) = h.await.expect("load task");
        report.written.extend(written);
        report.errors.extend(errors);
    }
    report.ok = ok.load(Ordering::Relaxed);
    report
}

/// Checks that every acknowledged write reads back with its last value, through `client`.
pub async fn assert_writes_survived(client: &mut shardis::Client, written: &HashMap<String, u64>) {
    assert!(!written.is_empty(), "the load wrote nothing");
    let mut wrong = Vec::new();
    for (key, expected) in written {
        let got: Option<u64> = client.get(key).await.expect("read back");
        if got != Some(*expected) {
            wrong.push((key.clone(), *expected, got));
        }
    }
    assert!(
        wrong.is_empty(),
        "{} of {} acknowledged writes lost or stale, e.g. {:?}",
        wrong.len(),
        written.len(),
        &wrong[..wrong.len().min(5)]
    );
}

/// Polls `client.ring_status()` until ring node `name` is in `state`; how long that took.
/// Panics after `limit`.
pub async fn wait_for_ring_state(
    client: &shardis::Client,
    name: &str,
    state: shardis::NodeState,
    limit: Duration,
) -> Duration {
    let started = Instant::now();
    loop {
        let status = client.ring_status().expect("ring mode");
        if status
            .nodes
            .iter()
            .any(|n| n.name == name && n.state == state)
        {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < limit,
            "{name} not {state:?} after {limit:?}: {status:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// `CLIENT PAUSE millis [WRITE]` on `node`, from a connection of its own: every command (or,
/// with `writes_only`, every write) from other clients waits until the pause ends.
pub async fn client_pause(node: &shardis_testkit::Node, millis: u64, writes_only: bool) {
    let mut direct = node.connection().await.expect("direct connection");
    let mut pause = redis::cmd("CLIENT");
    pause.arg("PAUSE").arg(millis);
    if writes_only {
        pause.arg("WRITE");
    }
    let () = pause.query_async(&mut direct).await.expect("CLIENT PAUSE");
}

/// One ring node per node of `fleet`, named `n0`, `n1`, … (weight 1).
pub fn ring_nodes(fleet: &shardis_testkit::Standalone) -> Vec<shardis::RingNode> {
    fleet
        .nodes()
        .iter()
        .enumerate()
        .map(|(i, n)| shardis::RingNode::new(format!("n{i}"), n.addr(), 1))
        .collect()
}

/// A builder for a ring over `fleet`'s first nodes, named `names` (weight 1), with a 100 ms
/// heartbeat and a 500 ms connect timeout; the caller adds its health settings.
pub fn ring_builder(fleet: &shardis_testkit::Standalone, names: &[&str]) -> shardis::Builder {
    let nodes = names
        .iter()
        .zip(fleet.nodes())
        .map(|(n, node)| shardis::RingNode::new(*n, node.addr(), 1));
    shardis::Client::builder()
        .ring(nodes)
        .heartbeat_interval(Duration::from_millis(100))
        .connect_timeout(Duration::from_millis(500))
}
