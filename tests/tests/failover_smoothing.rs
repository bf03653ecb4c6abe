//! Failover without a thundering herd (issue 16), on real servers: under the fail-fast policy
//! the callers of a killed primary's shard get `CircuitOpen` at once and nobody else notices;
//! under the wait policy at most N commands wait for a dead node and the next ones get
//! `Overloaded` at once; the promoted replica's served ops (`INFO commandstats`, every 100 ms)
//! rise along the breaker's ramp; an unsent pipeline waits or fails as its commands would
//! alone; a hung seed does not hold up `build()`; a ring node that stalls once is not ejected;
//! in ring mode the same breaker refuses a dead node's keys with `CircuitOpen`.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use shardis::{BreakerOptions, DownPolicy, Error, HealthPolicy, RingNode};
use shardis_testkit::{Cluster, FakeNode, FakeReply, Standalone};

const TASKS: usize = 32;
const KEYS_PER_TASK: usize = 20;

/// One command of the load: which node owned its key when the load began, when it started,
/// how long it took, and how it ended.
struct Op {
    owner: String,
    at: Instant,
    took: Duration,
    result: Result<(), Error>,
}

/// 32 tasks, each SET then GET over its own keys, until `stop`.
async fn load(
    client: shardis::Client,
    owners: Arc<HashMap<String, String>>,
    stop: Arc<AtomicBool>,
) -> Vec<Op> {
    let tasks: Vec<_> = (0..TASKS)
        .map(|t| {
            let client = client.clone();
            let owners = owners.clone();
            let stop = stop.clone();
            tokio::spawn(async move {
                let mut ops = Vec::new();
                let mut round = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    round += 1;
                    for k in 0..KEYS_PER_TASK {
                        let key = format!("fs:{t}:{k}");
                        for write in [true, false] {
                            let mut cmd = redis::cmd(if write { "SET" } else { "GET" });
                            cmd.arg(&key);
                            if write {
                                cmd.arg(round);
                            }
                            let at = Instant::now();
                            let result = client.send(&cmd).await.map(drop);
                            ops.push(Op {
                                owner: owners[&key].clone(),
                                at,
                                took: at.elapsed(),
                                result,
                            });
                        }
                        tokio::time::sleep(Duration::from_millis(1)).await;
                    }
                }
                ops
            })
        })
        .collect();
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await.expect("load task"));
    }
    all
}

/// The primary that owns each key of the load now.
async fn owners(cluster: &Cluster) -> Arc<HashMap<String, String>> {
    let mut owners = HashMap::new();
    for t in 0..TASKS {
        for k in 0..KEYS_PER_TASK {
            let key = format!("fs:{t}:{k}");
            let slot = shardis::slots::key_slot(key.as_bytes());
            let node = cluster.node_for_slot(slot).await.expect("owner of slot");
            owners.insert(key, node.addr());
        }
    }
    Arc::new(owners)
}

/// A 3x1 cluster whose healthy shards keep serving while one has no primary
/// (`cluster-require-full-coverage no`: otherwise every node answers `CLUSTERDOWN` while the
/// dead primary is marked failed, and every shard stalls, which is the server's doing).
async fn cluster() -> Cluster {
    cluster_of(1, 1000).await
}

/// [`cluster`] with `replicas` per primary and a node timeout of `node_timeout_ms`.
async fn cluster_of(replicas: usize, node_timeout_ms: u64) -> Cluster {
    let cluster = Cluster::builder()
        .primaries(3)
        .replicas_per_primary(replicas)
        .node_timeout_ms(node_timeout_ms)
        .start()
        .await
        .expect("cluster");
    cluster
        .config_set_all("cluster-require-full-coverage", "no")
        .await
        .expect("CONFIG SET");
    cluster
}

/// Until a SET of a key owned by `victim` before the kill succeeds (the replica took over,
/// and the client found it), within `limit`.
async fn until_victim_keys_work(
    client: &shardis::Client,
    owners: &HashMap<String, String>,
    victim: &str,
    limit: Duration,
) {
    let key = owners
        .iter()
        .find(|(_, o)| *o == victim)
        .map(|(k, _)| k.clone())
        .expect("a key of the victim");
    let started = Instant::now();
    loop {
        if client
            .send(redis::cmd("SET").arg(&key).arg("after"))
            .await
            .is_ok()
        {
            return;
        }
        assert!(
            started.elapsed() < limit,
            "keys of {victim} still fail after {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Kills a primary under the load, waits for its replica to take over and for the client to
/// find it; returns what the load saw, the victim's address and when it was killed.
async fn kill_a_primary_under_load(
    cluster: &Cluster,
    client: &shardis::Client,
) -> (Vec<Op>, String, Instant) {
    let owners = owners(cluster).await;
    let stop = Arc::new(AtomicBool::new(false));
    let running = tokio::spawn(load(client.clone(), owners.clone(), stop.clone()));
    tokio::time::sleep(Duration::from_millis(300)).await;

    let victim = cluster.primaries().await.expect("primaries").remove(0);
    let killed_at = Instant::now();
    cluster.kill(&victim).expect("kill -9");
    cluster
        .wait_for_failover_of(&victim)
        .await
        .expect("a replica takes over");
    until_victim_keys_work(client, &owners, &victim.addr(), Duration::from_secs(10)).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::Relaxed);
    let ops = running.await.expect("load");
    (ops, victim.addr(), killed_at)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fail_fast_kill_of_a_primary_fails_its_shard_at_once_and_nobody_else() {
    let cluster = cluster().await;
    let client = shardis::Client::builder()
        .cluster(cluster.seeds())
        .deadline(Duration::from_secs(5))
        .refresh_min_interval(Duration::from_millis(100))
        .node_down_policy(DownPolicy::FailFast)
        .circuit_breaker(
            BreakerOptions::new()
                .consecutive_failures(3)
                .probe_after(Duration::from_millis(200))
                .ramp(&[0.1, 0.25, 0.5, 1.0], Duration::from_secs(2)),
        )
        .build()
        .await
        .expect("client");
    let (ops, victim_addr, killed_at) = kill_a_primary_under_load(&cluster, &client).await;
    let mut circuit_open = Vec::new();
    for op in &ops {
        match &op.result {
            Err(e) if op.owner != victim_addr => {
                panic!("a key of {} (not the victim) failed: {e}", op.owner)
            }
            Err(Error::CircuitOpen { node, .. }) => {
                assert!(
                    *node == victim_addr || op.at > killed_at,
                    "CircuitOpen for {node} before the kill"
                );
                circuit_open.push(op);
            }
            _ => {}
        }
    }
    assert!(
        !circuit_open.is_empty(),
        "no caller of the killed primary got CircuitOpen"
    );
    // Once the breaker is open, nobody waits for the failover: refused at once.
    let opened = circuit_open
        .iter()
        .map(|op| op.at + op.took)
        .min()
        .expect("first refusal");
    let slow: Vec<_> = circuit_open
        .iter()
        .filter(|op| op.at > opened && op.took > Duration::from_millis(100))
        .map(|op| op.took)
        .collect();
    assert!(slow.is_empty(), "refusals that waited: {slow:?}");
    // No caller of the killed shard waited for the failover (which takes seconds), and the
    // other shards' callers did not slow down (generous bounds: correctness, not speed).
    let longest = |victim: bool| {
        ops.iter()
            .filter(|op| op.at > killed_at && (op.owner == victim_addr) == victim)
            .map(|op| op.took)
            .max()
            .unwrap_or_default()
    };
    let (longest, others) = (longest(true), longest(false));
    assert!(
        longest < Duration::from_millis(500),
        "a caller of the killed shard waited {longest:?}"
    );
    assert!(
        others < Duration::from_millis(300),
        "a caller of another shard waited {others:?}"
    );
    eprintln!(
        "{} refusals, first {:?} after the kill; longest call {longest:?} (other shards {others:?})",
        circuit_open.len(),
        opened - killed_at
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_policy_lets_at_most_n_wait_and_refuses_the_next_at_once() {
    const N: usize = 4;
    let cluster = cluster().await;
    let client = shardis::Client::builder()
        .cluster(cluster.seeds())
        .deadline(Duration::from_secs(8))
        .refresh_min_interval(Duration::from_millis(100))
        .node_down_policy(DownPolicy::Wait)
        .max_waiting_per_node(N)
        .build()
        .await
        .expect("client");
    let (ops, victim_addr, killed_at) = kill_a_primary_under_load(&cluster, &client).await;
    let mut overloaded = 0;
    for op in &ops {
        match &op.result {
            Err(e) if op.owner != victim_addr => {
                panic!("a key of {} (not the victim) failed: {e}", op.owner)
            }
            Err(Error::Overloaded { node, waiting }) => {
                // The victim, or the replica that took its slots while its traffic ramps up
                // (commands waiting for their turn there count against the same bound).
                assert_eq!(*waiting, N, "{node}");
                assert!(
                    op.took < Duration::from_millis(100),
                    "Overloaded after {:?}",
                    op.took
                );
                overloaded += 1;
            }
            _ => {}
        }
    }
    assert!(overloaded > 0, "nobody was refused with Overloaded");
    // The commands that waited for the failover: never more than N at a time for one node.
    // The victim's shard spans two nodes here: N may wait for the dead primary, and N more
    // for their turn in the promoted replica's ramp (a command that waited for the first
    // keeps its one place), so the shard's callers see at most 2N waiting at once.
    let waited: Vec<(Instant, Instant)> = ops
        .iter()
        .filter(|op| op.owner == victim_addr)
        .filter(|op| op.at > killed_at && op.took > Duration::from_millis(300))
        .map(|op| (op.at, op.at + op.took))
        .collect();
    assert!(
        !waited.is_empty(),
        "no command waited: the wait policy is gone"
    );
    let most = waited
        .iter()
        .map(|(start, _)| {
            waited
                .iter()
                .filter(|(s, e)| s <= start && e > start)
                .count()
        })
        .max()
        .unwrap_or(0);
    assert!(
        most <= 2 * N,
        "{most} commands waited at once (bound {N} per node)"
    );
    let succeeded_after_waiting = ops
        .iter()
        .filter(|op| op.owner == victim_addr && op.at > killed_at)
        .filter(|op| op.took > Duration::from_millis(300) && op.result.is_ok())
        .count();
    eprintln!(
        "{overloaded} refused, {} waited (at most {most} at once), {succeeded_after_waiting} of them succeeded",
        waited.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_seed_does_not_hold_up_build() {
    let cluster = Cluster::builder()
        .primaries(3)
        .replicas_per_primary(0)
        .start()
        .await
        .expect("cluster");
    // Accepts connections and never answers anything.
    let hung = FakeNode::start(|_, _| FakeReply::Silence)
        .await
        .expect("fake node");
    let mut seeds = vec![hung.addr()];
    seeds.push(cluster.seeds().remove(0));
    let started = Instant::now();
    let client = shardis::Client::builder()
        .cluster(seeds)
        .connect_timeout(Duration::from_secs(1))
        .response_timeout(Duration::from_secs(1))
        .build()
        .await
        .expect("client");
    let took = started.elapsed();
    assert!(took < Duration::from_millis(500), "build() took {took:?}");
    client
        .send(redis::cmd("SET").arg("hung-seed").arg("1"))
        .await
        .expect("SET");
    let value = client
        .send(redis::cmd("GET").arg("hung-seed"))
        .await
        .expect("GET");
    assert_eq!(value, redis::Value::BulkString(b"1".to_vec()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ring_node_that_stalls_once_is_not_ejected() {
    let fleet = Standalone::start(4).await.expect("4 standalone nodes");
    let names = ["r0", "r1", "r2", "r3"];
    let nodes = names
        .iter()
        .zip(fleet.nodes())
        .map(|(n, node)| RingNode::new(*n, node.addr(), 1));
    let client = shardis::Client::builder()
        .ring(nodes)
        .ring_health(HealthPolicy::Eject {
            retry_timeout: Duration::from_secs(1),
        })
        .ring_failure_limit(2)
        .heartbeat_interval(Duration::from_millis(100))
        .connect_timeout(Duration::from_millis(500))
        .response_timeout(Duration::from_secs(1))
        .build()
        .await
        .expect("ring client");
    let owners = ring_owners(&client);
    let stop = Arc::new(AtomicBool::new(false));
    let running = tokio::spawn(load(client.clone(), owners.clone(), stop.clone()));
    tokio::time::sleep(Duration::from_millis(300)).await;

    // One stall of a healthy node, longer than the response timeout.
    shardis_tests::client_pause(&fleet.nodes()[1], 1500, false).await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    stop.store(true, Ordering::Relaxed);
    let ops = running.await.expect("load");

    let status = client.ring_status().expect("ring mode");
    assert_eq!(
        status.ejections, 0,
        "a node that stalled once was ejected: {status:?}"
    );
    let stalled_errors = ops
        .iter()
        .filter(|op| op.owner == "r1" && op.result.is_err())
        .count();
    let others: Vec<_> = ops
        .iter()
        .filter(|op| op.owner != "r1")
        .filter_map(|op| op.result.as_ref().err())
        .collect();
    assert!(
        others.is_empty(),
        "keys of other nodes failed: {:?}",
        others.first()
    );
    eprintln!("{stalled_errors} commands of the stalled node failed at its stall; no ejection");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unsent_pipeline_waits_or_fails_as_its_commands_would_alone() {
    let cluster = cluster().await;
    let build = |policy: DownPolicy| {
        shardis::Client::builder()
            .cluster(cluster.seeds())
            .deadline(Duration::from_secs(8))
            .refresh_min_interval(Duration::from_millis(100))
            .node_down_policy(policy)
            .build()
    };
    let waiting = build(DownPolicy::Wait).await.expect("client");
    let failing = build(DownPolicy::FailFast).await.expect("client");
    let victim = cluster.primaries().await.expect("primaries").remove(0);
    let mut key = String::new();
    for i in 0.. {
        let candidate = format!("pipe:{i}");
        let slot = shardis::slots::key_slot(candidate.as_bytes());
        if cluster.node_for_slot(slot).await.expect("owner").addr() == victim.addr() {
            key = candidate;
            break;
        }
    }
    let pipeline = || {
        let mut pipe = redis::pipe();
        pipe.cmd("SET").arg(&key).arg("v").cmd("GET").arg(&key);
        pipe
    };
    // Both clients have a connection to the victim before it dies.
    for client in [&waiting, &failing] {
        let (): () = pipeline()
            .query_async::<((), String)>(&mut client.clone())
            .await
            .map(drop)
            .expect("pipeline before the kill");
    }
    cluster.kill(&victim).expect("kill -9");
    // Let the clients see their connections close (a write sent on a dying connection is
    // never retried, alone or pipelined).
    tokio::time::sleep(Duration::from_millis(200)).await;

    // Fail fast: once the breaker is open (well before the replica takes over), the pipeline
    // fails as a single command does, with CircuitOpen naming the node once.
    let started = Instant::now();
    loop {
        // Other errors come before the breaker opens (the replica takes over only after the
        // 1 s node timeout).
        let reply = failing.send(redis::cmd("GET").arg(&key)).await;
        if let Err(Error::CircuitOpen { .. }) = reply {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "breaker never opened"
        );
    }
    let err = pipeline()
        .query_async::<((), String)>(&mut failing.clone())
        .await
        .expect_err("refused by the open breaker");
    match Error::from_redis(&err) {
        Some(Error::CircuitOpen { node, .. }) => assert_eq!(*node, victim.addr()),
        other => panic!("expected CircuitOpen, got {other:?} ({err})"),
    }
    let text = err.to_string();
    assert_eq!(text.matches(&victim.addr()).count(), 1, "{text}");

    // Wait policy: the pipeline, like a single command, waits for the replica and succeeds.
    let (pipe, mut conn) = (pipeline(), waiting.clone());
    // Another key of the same slot, so the pipeline's GET reads its own SET.
    let mut set = redis::cmd("SET");
    set.arg(format!("{{{key}}}:single")).arg("single");
    let (piped, single) = tokio::join!(
        pipe.query_async::<((), String)>(&mut conn),
        waiting.send(&set)
    );
    assert_eq!(piped.expect("pipeline waits and succeeds").1, "v");
    single.expect("single command waits and succeeds");
}

/// `get` + `set` calls `node` served so far, from `INFO commandstats`.
async fn served(cluster: &Cluster, node: &shardis_testkit::Node) -> u64 {
    let stats = cluster.commandstats(node).await.unwrap_or_default();
    stats.get("get").copied().unwrap_or(0) + stats.get("set").copied().unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_promoted_replica_gets_traffic_along_the_ramp() {
    promoted_replica_ramps(DownPolicy::FailFast).await;
}

/// Under the wait policy the commands that waited for the failover are released to the new
/// primary along the ramp too, not all at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_the_wait_policy_the_backlog_is_released_along_the_ramp() {
    promoted_replica_ramps(DownPolicy::Wait).await;
}

/// Kills a primary under load and samples what its replica serves every 100 ms: from its
/// first served tick on, it rises along the ramp.
async fn promoted_replica_ramps(policy: DownPolicy) {
    let cluster = cluster().await;
    let ramp = Duration::from_secs(2);
    let client = shardis::Client::builder()
        .cluster(cluster.seeds())
        .deadline(Duration::from_secs(8))
        .refresh_min_interval(Duration::from_millis(100))
        .node_down_policy(policy)
        .circuit_breaker(
            BreakerOptions::new()
                .probe_after(Duration::from_millis(200))
                .ramp(&[0.1, 0.25, 0.5, 1.0], ramp),
        )
        .build()
        .await
        .expect("client");
    let owners = owners(&cluster).await;
    let replicas = cluster.replicas().await.expect("replicas");
    let stop = Arc::new(AtomicBool::new(false));
    let running = tokio::spawn(load(client.clone(), owners.clone(), stop.clone()));
    tokio::time::sleep(Duration::from_millis(300)).await;

    let victim = cluster.primaries().await.expect("primaries").remove(0);
    cluster.kill(&victim).expect("kill -9");
    // What each replica serves, every 100 ms, from the kill until well after the ramp.
    let sampling = async {
        let mut samples: Vec<Vec<u64>> = Vec::new();
        let mut tick = tokio::time::interval(Duration::from_millis(100));
        for _ in 0..80 {
            tick.tick().await;
            let mut row = Vec::new();
            for replica in &replicas {
                row.push(served(&cluster, replica).await);
            }
            samples.push(row);
        }
        samples
    };
    let (samples, promoted) = tokio::join!(sampling, cluster.wait_for_failover_of(&victim));
    stop.store(true, Ordering::Relaxed);
    running.await.expect("load");
    let promoted = promoted.expect("failover").expect("the new primary");
    let column = replicas
        .iter()
        .position(|r| r.addr() == promoted.addr())
        .expect("the promoted node was a replica");
    let per_tick: Vec<u64> = samples
        .windows(2)
        .map(|w| w[1][column].saturating_sub(w[0][column]))
        .collect();
    // Before the kill it applied the primary's writes; after it, nothing until promoted and
    // found by the client: the ramp begins at the first tick that serves again after a pause.
    let quiet = per_tick.iter().position(|&n| n == 0).expect("a pause");
    let start = quiet
        + per_tick[quiet..]
            .iter()
            .position(|&n| n > 0)
            .expect("traffic came back");
    assert_ramps(&per_tick, start, ramp, &format!("{policy:?}"));
}

/// What a node served per 100 ms (`per_tick`), from `start`, its first tick of service: the
/// first step admits 10%, so the first 100 ms carries no more than a quarter of the steady rate
/// (the step plus generous noise), not the backlog.
fn assert_ramps(per_tick: &[u64], start: usize, ramp: Duration, what: &str) {
    let steps = (ramp.as_millis() / 100) as usize;
    let steady_ticks = &per_tick[start + steps + 3..start + steps + 8];
    let steady = steady_ticks.iter().sum::<u64>() as f64 / steady_ticks.len() as f64;
    let first = per_tick[start] as f64;
    eprintln!(
        "{what}: per 100 ms from the ramp's start: {:?}; steady {steady}",
        &per_tick[start..start + steps + 3]
    );
    assert!(
        first <= 0.25 * steady,
        "{what}: first 100 ms of the ramp served {first}, steady {steady}: {per_tick:?}"
    );
}

/// The owner (ring node name) of every key of the load.
fn ring_owners(client: &shardis::Client) -> Arc<HashMap<String, String>> {
    Arc::new(
        (0..TASKS)
            .flat_map(|t| (0..KEYS_PER_TASK).map(move |k| format!("fs:{t}:{k}")))
            .map(|key| {
                let owner = client.ring_node_for(key.as_bytes()).expect("owner");
                (key, owner)
            })
            .collect(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ring_fail_fast_refuses_a_dead_nodes_keys_with_circuit_open_and_ramps_back() {
    let fleet = Standalone::start(4).await.expect("4 standalone nodes");
    let probe_after = Duration::from_millis(200);
    let client = shardis_tests::ring_builder(&fleet, &["r0", "r1", "r2", "r3"])
        .ring_health(HealthPolicy::FailFast)
        .response_timeout(Duration::from_secs(1))
        .node_down_policy(DownPolicy::FailFast)
        .circuit_breaker(
            BreakerOptions::new()
                .consecutive_failures(3)
                .probe_after(probe_after)
                .ramp(&[0.1, 0.25, 0.5, 1.0], Duration::from_secs(1)),
        )
        .build()
        .await
        .expect("ring client");
    let owners = ring_owners(&client);
    let victim = &fleet.nodes()[1];
    let stop = Arc::new(AtomicBool::new(false));
    let running = tokio::spawn(load(client.clone(), owners.clone(), stop.clone()));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let killed_at = Instant::now();
    fleet.kill(victim).expect("kill -9");
    tokio::time::sleep(Duration::from_secs(1)).await;
    fleet.restart(victim).await.expect("restart");
    // Back through the breaker's probe and ramp.
    until_victim_keys_work(&client, &owners, "r1", Duration::from_secs(10)).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::Relaxed);
    let ops = running.await.expect("load");

    let (mut refused, mut before_open) = (Vec::new(), Vec::new());
    for op in &ops {
        match &op.result {
            Err(e) if op.owner != "r1" => {
                panic!("a key of {} (not the victim) failed: {e}", op.owner)
            }
            Err(Error::CircuitOpen { node, retry_in }) => {
                assert_eq!(*node, victim.addr());
                // The next probe (open), the end of a probe in flight (bounded by the connect
                // and response timeouts: 1.5 s), or the next ramp step.
                assert!(
                    *retry_in <= Duration::from_millis(1500),
                    "next chance in {retry_in:?}"
                );
                refused.push(op);
            }
            Err(Error::NodeDown { .. }) => panic!("NodeDown under DownPolicy::FailFast"),
            Err(_) => before_open.push(op),
            Ok(()) => {}
        }
    }
    assert!(
        refused.len() > 50,
        "only {} CircuitOpen refusals",
        refused.len()
    );
    let opened = refused
        .iter()
        .map(|op| op.at + op.took)
        .min()
        .expect("first refusal");
    let slowest = refused.iter().map(|op| op.took).max().unwrap_or_default();
    // A refusal does no I/O: it takes microseconds (the bound is for a loaded 2-core machine;
    // waiting for the node would take the 1 s response timeout).
    assert!(
        slowest < Duration::from_millis(250),
        "a refusal took {slowest:?}"
    );
    // Before it opened: the commands in flight at the kill, and those refused while the node
    // was in reconnect backoff (its failed connects open the breaker); all of them at once.
    for op in &before_open {
        assert!(
            op.at <= opened && op.took < Duration::from_millis(200),
            "an error {:?} after the breaker opened, after {:?}: {:?}",
            op.at.saturating_duration_since(opened),
            op.took,
            op.result
        );
    }
    eprintln!(
        "ring fail-fast: breaker open {:?} after the kill; {} CircuitOpen (slowest {slowest:?}); {} errors before",
        opened - killed_at,
        refused.len(),
        before_open.len()
    );
}

/// Under the wait policy, the commands that waited for a primary killed and restarted before any
/// failover are released to it along the ramp, not all at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_the_wait_policy_a_restarted_primary_gets_its_backlog_along_the_ramp() {
    // No replica, and a node timeout longer than the outage: no failover, the primary itself
    // comes back.
    let cluster = cluster_of(0, 5000).await;
    let ramp = Duration::from_secs(2);
    let client = shardis::Client::builder()
        .cluster(cluster.seeds())
        .deadline(Duration::from_secs(8))
        .refresh_min_interval(Duration::from_millis(100))
        .node_down_policy(DownPolicy::Wait)
        .circuit_breaker(BreakerOptions::new().ramp(&[0.1, 0.25, 0.5, 1.0], ramp))
        .build()
        .await
        .expect("client");
    let owners = owners(&cluster).await;
    let stop = Arc::new(AtomicBool::new(false));
    let running = tokio::spawn(load(client.clone(), owners.clone(), stop.clone()));
    tokio::time::sleep(Duration::from_millis(300)).await;

    let victim = cluster.primaries().await.expect("primaries").remove(0);
    cluster.kill(&victim).expect("kill -9");
    tokio::time::sleep(Duration::from_secs(1)).await;
    cluster.restart(&victim).await.expect("restart");
    // The restarted process counts from zero: what it serves, every 100 ms.
    let mut samples = Vec::new();
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    for _ in 0..60 {
        tick.tick().await;
        samples.push(served(&cluster, &victim).await);
    }
    stop.store(true, Ordering::Relaxed);
    running.await.expect("load");
    let per_tick: Vec<u64> = samples
        .windows(2)
        .map(|w| w[1].saturating_sub(w[0]))
        .collect();
    let start = per_tick
        .iter()
        .position(|&n| n > 0)
        .expect("the restarted primary served");
    assert_ramps(&per_tick, start, ramp, "restarted primary (wait policy)");
}
