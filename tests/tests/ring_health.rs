//! Ring mode when a node dies: the eject policy moves only its keys to the next node and
//! brings them back after a restart; the fail-fast policy fails only its keys, at once, with
//! `NodeDown`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use redis::AsyncCommands;
use shardis::ring::Ring;
use shardis::{Error, HealthPolicy, NodeState};
use shardis_testkit::Standalone;
use shardis_tests::wait_for_ring_state;

const NAMES: [&str; 4] = ["r0", "r1", "r2", "r3"];
const KEYS: usize = 2000;
const FAILURE_LIMIT: u32 = 2;
const WORKERS: usize = 4;

async fn client(fleet: &Standalone, policy: HealthPolicy) -> shardis::Client {
    shardis_tests::ring_builder(fleet, &NAMES)
        .ring_health(policy)
        .ring_failure_limit(FAILURE_LIMIT)
        .response_timeout(Duration::from_secs(1))
        .build()
        .await
        .expect("ring client")
}

/// One operation seen by the load: when, on which key, and how it went.
struct Op {
    at: Instant,
    key: usize,
    took: Duration,
    result: Result<bool, Error>,
}

/// Readers over every key: GET, and on a miss SET (a cache refill). `Ok(true)` = a hit,
/// `Ok(false)` = a miss refilled.
async fn load(client: shardis::Client, stop: Arc<AtomicBool>) -> Vec<Op> {
    let mut tasks = Vec::new();
    for w in 0..WORKERS {
        let client = client.clone();
        let stop = stop.clone();
        tasks.push(tokio::spawn(async move {
            let mut ops = Vec::new();
            let mut i = w;
            while !stop.load(Ordering::Relaxed) {
                let key = i % KEYS;
                i += WORKERS * 7 + 1;
                let started = Instant::now();
                let result = read_or_refill(&client, key).await;
                ops.push(Op {
                    at: started,
                    key,
                    took: started.elapsed(),
                    result,
                });
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            ops
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.expect("load task"));
    }
    all
}

async fn read_or_refill(client: &shardis::Client, key: usize) -> Result<bool, Error> {
    let name = format!("h:{key}");
    let v = client.send(redis::cmd("GET").arg(&name)).await?;
    if v != redis::Value::Nil {
        return Ok(true);
    }
    client.send(redis::cmd("SET").arg(&name).arg(key)).await?;
    Ok(false)
}

async fn preload(client: &mut shardis::Client) {
    for k in 0..KEYS {
        let () = client.set(format!("h:{k}"), k).await.expect("preload");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eject_moves_only_the_dead_nodes_keys_and_brings_them_back() {
    let fleet = Standalone::start(4).await.expect("4 standalone nodes");
    let retry = Duration::from_secs(1);
    let mut client = client(
        &fleet,
        HealthPolicy::Eject {
            retry_timeout: retry,
        },
    )
    .await;
    preload(&mut client).await;
    let ring = Ring::new(NAMES.map(|n| (n, 1))).expect("ring");
    let owner = |k: usize| ring.get(format!("h:{k}").as_bytes()).name().to_string();
    let original: Vec<String> = (0..KEYS).map(owner).collect();
    for (k, o) in original.iter().enumerate() {
        assert_eq!(
            client.ring_node_for(format!("h:{k}").as_bytes()).as_deref(),
            Some(o.as_str())
        );
    }
    let victim = "r1";
    let without = ring.without_node(victim).expect("ring without the victim");

    let stop = Arc::new(AtomicBool::new(false));
    let running = tokio::spawn(load(client.clone(), stop.clone()));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let killed_at = Instant::now();
    fleet.kill(&fleet.nodes()[1]).expect("kill");
    let ejected_after =
        wait_for_ring_state(&client, victim, NodeState::Ejected, Duration::from_secs(5)).await;
    // While it is out: its keys go to the next node clockwise, no other key moves.
    for (k, owner) in original.iter().enumerate() {
        let expected = without.get(format!("h:{k}").as_bytes()).name();
        assert_eq!(
            client.ring_node_for(format!("h:{k}").as_bytes()).as_deref(),
            Some(expected)
        );
        if owner != victim {
            assert_eq!(expected, owner, "key {k} of a live node moved");
        }
    }
    tokio::time::sleep(Duration::from_millis(500)).await;

    fleet.restart(&fleet.nodes()[1]).await.expect("restart");
    let back_after = wait_for_ring_state(&client, victim, NodeState::Up, retry * 5).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::Relaxed);
    let ops = running.await.expect("load");

    for (k, o) in original.iter().enumerate() {
        assert_eq!(
            client.ring_node_for(format!("h:{k}").as_bytes()).as_deref(),
            Some(o.as_str()),
            "key {k} maps back"
        );
    }
    let status = client.ring_status().expect("ring");
    assert_eq!((status.ejections, status.readmissions), (1, 1));

    let mut victim_errors = 0;
    for op in &ops {
        let on_victim = original[op.key] == victim;
        match &op.result {
            Err(e) if !on_victim => panic!("key {} of a live node failed: {e}", op.key),
            Ok(false) if !on_victim => panic!("key {} of a live node missed", op.key),
            Err(_) => victim_errors += 1,
            Ok(_) => {}
        }
    }
    // Every worker may have had a command in flight when the node died, plus K failures.
    assert!(
        victim_errors <= FAILURE_LIMIT as usize + WORKERS,
        "{victim_errors} errors on the dead node's keys"
    );
    let first_refill = ops
        .iter()
        .filter(|op| {
            op.at > killed_at && original[op.key] == victim && matches!(op.result, Ok(false))
        })
        .map(|op| op.at + op.took - killed_at)
        .min()
        .expect("the dead node's keys were refilled on the next node");
    eprintln!(
        "eject: ejected {ejected_after:?} after the kill; first refill {first_refill:?} after the kill; \
         {victim_errors} errors on its keys; re-admitted {back_after:?} after restart; {} ops",
        ops.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fail_fast_fails_only_the_dead_nodes_keys_quickly_with_node_down() {
    let fleet = Standalone::start(4).await.expect("4 standalone nodes");
    let mut client = client(&fleet, HealthPolicy::FailFast).await;
    preload(&mut client).await;
    let ring = Ring::new(NAMES.map(|n| (n, 1))).expect("ring");
    let original: Vec<String> = (0..KEYS)
        .map(|k| ring.get(format!("h:{k}").as_bytes()).name().to_string())
        .collect();
    let victim = "r2";

    let stop = Arc::new(AtomicBool::new(false));
    let running = tokio::spawn(load(client.clone(), stop.clone()));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let killed_at = Instant::now();
    fleet.kill(&fleet.nodes()[2]).expect("kill");
    let down_after =
        wait_for_ring_state(&client, victim, NodeState::Down, Duration::from_secs(5)).await;
    let down_at = Instant::now();
    tokio::time::sleep(Duration::from_millis(800)).await;
    stop.store(true, Ordering::Relaxed);
    let ops = running.await.expect("load");

    let (mut node_down, mut other_errors) = (0, 0);
    let mut slowest = Duration::ZERO;
    for op in &ops {
        let on_victim = original[op.key] == victim;
        match &op.result {
            Err(e) if !on_victim => panic!("key {} of a live node failed: {e}", op.key),
            Ok(false) if !on_victim => panic!("key {} of a live node missed", op.key),
            Ok(_) if on_victim && op.at > down_at => {
                panic!("key {} of the dead node answered", op.key)
            }
            Ok(false) if on_victim && op.at > killed_at => {
                panic!("key {} of the dead node moved", op.key)
            }
            Err(Error::NodeDown { node }) => {
                assert_eq!(node, victim);
                node_down += 1;
                slowest = slowest.max(op.took);
            }
            Err(e) => {
                assert!(
                    op.at + op.took <= down_at + Duration::from_millis(50),
                    "after the node was marked down: {e}"
                );
                other_errors += 1;
            }
            Ok(_) => {}
        }
    }
    assert!(node_down > 50, "only {node_down} NodeDown errors");
    assert!(
        other_errors <= FAILURE_LIMIT as usize + WORKERS,
        "{other_errors} errors before NodeDown"
    );
    assert!(
        slowest < Duration::from_millis(100),
        "NodeDown took {slowest:?}, response timeout 1 s"
    );
    eprintln!(
        "fail-fast: down {down_after:?} after the kill; {node_down} NodeDown errors, slowest {slowest:?}; {other_errors} errors before"
    );

    // Back after a restart, as soon as a heartbeat PING answers.
    fleet.restart(&fleet.nodes()[2]).await.expect("restart");
    wait_for_ring_state(&client, victim, NodeState::Up, Duration::from_secs(5)).await;
    let k = original
        .iter()
        .position(|o| o == victim)
        .expect("a key of the victim");
    let () = client.set(format!("h:{k}"), 1).await.expect("served again");
}
