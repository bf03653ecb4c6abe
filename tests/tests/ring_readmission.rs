//! Ring mode, eject policy: a node ejected by a stall and re-admitted never serves what it held
//! before, and the copies its stand-ins kept are never served or restored later (issue 16).
//!
//! 32 tasks write (SET a rising version, or DEL) and read their own keys, each checking every
//! read against its own last acknowledged write of that key: a value older than that write is a
//! stale read, a value from before an acknowledged DEL a resurrected delete. Misses are allowed
//! (a cache may miss; it must not go back in time).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use shardis::{HealthPolicy, NodeState, RebalanceOptions, RingNode};
use shardis_testkit::Standalone;
use shardis_tests::{client_pause, ring_builder, wait_for_ring_state};

const TASKS: u64 = 32;
const KEYS_PER_TASK: u64 = 24;
const NAMES: [&str; 4] = ["r0", "r1", "r2", "r3"];

/// The last acknowledged write of one key: its version, and whether it was a delete.
#[derive(Clone, Copy, Default)]
struct Floor {
    version: u64,
    deleted: bool,
}

/// What the load saw.
#[derive(Default)]
struct Seen {
    reads: u64,
    misses: u64,
    errors: u64,
    stale: Vec<String>,
    resurrected: Vec<String>,
}

impl Seen {
    fn add(&mut self, other: Seen) {
        self.reads += other.reads;
        self.misses += other.misses;
        self.errors += other.errors;
        self.stale.extend(other.stale);
        self.resurrected.extend(other.resurrected);
    }
}

/// Checks one read of `key` against its floor.
fn check(seen: &mut Seen, key: &str, floor: Floor, value: Option<u64>, when: &str) {
    seen.reads += 1;
    match value {
        None => seen.misses += 1,
        Some(v) if v < floor.version && floor.deleted => seen.resurrected.push(format!(
            "{when} GET {key} = {v} after DEL acknowledged at {}",
            floor.version
        )),
        Some(v) if v < floor.version => seen.stale.push(format!(
            "{when} GET {key} = {v}, last acknowledged write {}",
            floor.version
        )),
        Some(_) => {}
    }
}

async fn get(client: &shardis::Client, key: &str) -> Result<Option<u64>, shardis::Error> {
    match client.send(redis::cmd("GET").arg(key)).await? {
        redis::Value::Nil => Ok(None),
        redis::Value::BulkString(b) => {
            Ok(std::str::from_utf8(&b).ok().and_then(|s| s.parse().ok()))
        }
        other => panic!("GET {key} replied {other:?}"),
    }
}

/// Task `t`: writes key `i` (a SET of the next version, a DEL one time in five), then reads
/// key `i + 7` (written long ago, so an old copy would show), until `stop`. Returns what it saw
/// and the floor of each of its keys.
async fn task(client: shardis::Client, t: u64, stop: Arc<AtomicBool>) -> (Seen, Vec<Floor>) {
    let mut floors = vec![Floor::default(); KEYS_PER_TASK as usize];
    let mut seen = Seen::default();
    let mut version = 0u64;
    let mut i = 0u64;
    while !stop.load(Ordering::Relaxed) {
        version += 1;
        let k = (i % KEYS_PER_TASK) as usize;
        let key = format!("rr:{t}:{k}");
        let delete = version.is_multiple_of(5);
        let mut write = redis::cmd(if delete { "DEL" } else { "SET" });
        write.arg(&key);
        if !delete {
            write.arg(version);
        }
        match client.send(&write).await {
            Ok(_) => {
                floors[k] = Floor {
                    version,
                    deleted: delete,
                }
            }
            Err(_) => seen.errors += 1,
        }
        let r = ((i + 7) % KEYS_PER_TASK) as usize;
        let key = format!("rr:{t}:{r}");
        match get(&client, &key).await {
            Ok(value) => check(&mut seen, &key, floors[r], value, "load"),
            Err(_) => seen.errors += 1,
        }
        i += 1;
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    (seen, floors)
}

/// A ring of the first four nodes of `fleet` that ejects a node at its first stall (a tight
/// setting: one stall of the 300 ms response timeout) and probes it again after 300 ms.
async fn client(fleet: &Standalone, deadline: Duration) -> shardis::Client {
    ring_builder(fleet, &NAMES)
        .ring_health(HealthPolicy::Eject {
            retry_timeout: Duration::from_millis(300),
        })
        .ring_failure_limit(1)
        .response_timeout(Duration::from_millis(300))
        .deadline(deadline)
        .ring_rebalance(RebalanceOptions::new().keys_per_second(50_000))
        .build()
        .await
        .expect("ring client")
}

/// Runs the load while `scenario` acts on the fleet, then reads every key once more; returns
/// what the load and the final reads saw.
async fn under_load<F: Future<Output = ()>>(client: &shardis::Client, scenario: F) -> Seen {
    let stop = Arc::new(AtomicBool::new(false));
    let tasks: Vec<_> = (0..TASKS)
        .map(|t| tokio::spawn(task(client.clone(), t, stop.clone())))
        .collect();
    tokio::time::sleep(Duration::from_millis(500)).await;
    scenario.await;
    stop.store(true, Ordering::Relaxed);
    let mut seen = Seen::default();
    for (t, handle) in tasks.into_iter().enumerate() {
        let (task_seen, floors) = handle.await.expect("load task");
        seen.add(task_seen);
        for (k, floor) in floors.into_iter().enumerate() {
            let key = format!("rr:{t}:{k}");
            let value = get(client, &key).await.expect("final read");
            check(&mut seen, &key, floor, value, "final");
        }
    }
    seen
}

/// Every key on every node belongs there (its owner in the ring): no stand-in copy is left to
/// be served by a later ejection or restored by a later rebalance.
async fn assert_no_leftovers(fleet: &Standalone, client: &shardis::Client, nodes: &[&str]) {
    let started = Instant::now();
    loop {
        let mut misplaced = Vec::new();
        for (name, node) in nodes.iter().zip(fleet.nodes()) {
            let mut conn = node.connection().await.expect("direct connection");
            let keys: Vec<String> = redis::cmd("KEYS")
                .arg("rr:*")
                .query_async(&mut conn)
                .await
                .expect("KEYS");
            for key in keys {
                let owner = client.ring_node_for(key.as_bytes()).expect("owner");
                if owner != *name {
                    misplaced.push(format!("{key} on {name}, owned by {owner}"));
                }
            }
        }
        if misplaced.is_empty() {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "{} keys left on nodes that do not own them, e.g. {:?}",
            misplaced.len(),
            &misplaced[..misplaced.len().min(5)]
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn assert_never_back_in_time(seen: &Seen, what: &str) {
    eprintln!(
        "{what}: {} reads, {} misses, {} errors, {} stale, {} resurrected deletes",
        seen.reads,
        seen.misses,
        seen.errors,
        seen.stale.len(),
        seen.resurrected.len()
    );
    assert!(
        seen.stale.is_empty(),
        "{} stale reads, e.g. {:?}",
        seen.stale.len(),
        &seen.stale[..seen.stale.len().min(5)]
    );
    assert!(
        seen.resurrected.is_empty(),
        "{} resurrected deletes, e.g. {:?}",
        seen.resurrected.len(),
        &seen.resurrected[..seen.resurrected.len().min(5)]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_node_ejected_readmitted_then_a_rebalance_never_goes_back_in_time() {
    let fleet = Standalone::start(5).await.expect("5 standalone nodes");
    // A long deadline: the stand-in copies are still there when the rebalance runs, so it is
    // the rebalance that must not restore them.
    let client = client(&fleet, Duration::from_secs(10)).await;
    let seen = under_load(&client, async {
        client_pause(&fleet.nodes()[1], 2000, false).await;
        wait_for_ring_state(&client, "r1", NodeState::Ejected, Duration::from_secs(3)).await;
        wait_for_ring_state(&client, "r1", NodeState::Up, Duration::from_secs(10)).await;
        tokio::time::sleep(Duration::from_millis(800)).await;
        let change = client
            .add_node(RingNode::new("r4", fleet.nodes()[4].addr(), 1))
            .await
            .expect("add r4");
        let report = change
            .rebalance
            .expect("rebalance enabled")
            .wait()
            .await
            .expect("rebalance");
        eprintln!("rebalance: {:?}", report.progress);
        tokio::time::sleep(Duration::from_millis(800)).await;
    })
    .await;
    let status = client.ring_status().expect("ring");
    assert!(
        status.ejections >= 1 && status.readmissions >= 1,
        "{status:?}"
    );
    assert_never_back_in_time(&seen, "pause, re-admission, rebalance");
    assert_no_leftovers(&fleet, &client, &["r0", "r1", "r2", "r3", "r4"]).await;
    eprintln!("leftovers removed: {}", status.leftovers_removed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_ejection_serves_no_copy_kept_from_the_first() {
    let fleet = Standalone::start(4).await.expect("4 standalone nodes");
    // A short deadline: the stand-ins' copies are removed soon after the re-admission.
    let client = client(&fleet, Duration::from_secs(1)).await;
    let seen = under_load(&client, async {
        for round in 0..2 {
            client_pause(&fleet.nodes()[1], 1500, false).await;
            wait_for_ring_state(&client, "r1", NodeState::Ejected, Duration::from_secs(3)).await;
            wait_for_ring_state(&client, "r1", NodeState::Up, Duration::from_secs(10)).await;
            if round == 0 {
                // Until the copies the stand-ins kept are gone.
                assert_no_leftovers(&fleet, &client, &NAMES).await;
            }
        }
        tokio::time::sleep(Duration::from_millis(800)).await;
    })
    .await;
    let status = client.ring_status().expect("ring");
    assert!(status.readmissions >= 2, "{status:?}");
    assert!(
        status.leftovers_removed > 0,
        "the stand-ins kept no copy to remove: {status:?}"
    );
    assert_never_back_in_time(&seen, "two ejections");
}
