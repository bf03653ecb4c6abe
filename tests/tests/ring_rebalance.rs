//! Ring membership changes at runtime with online rebalancing, under a read/write load: no
//! caller error, no miss for a key written before the change, no stale read, and afterwards
//! exactly the keys the ring moved are on their new owner and nowhere else.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use redis::AsyncCommands;
use shardis::ring::{Ring, moved_fraction};
use shardis::{RebalanceOptions, RingNode};
use shardis_testkit::Standalone;

const N: usize = 40_000;
const WORKERS: usize = 4;

fn within_binomial(count: usize, n: usize, p: f64) -> bool {
    let sd = (n as f64 * p * (1.0 - p)).sqrt();
    (count as f64 - n as f64 * p).abs() <= 5.0 * sd
}

async fn preload(client: &mut shardis::Client) {
    for batch in 0..N / 1000 {
        let mut pipe = redis::pipe();
        for i in batch * 1000..(batch + 1) * 1000 {
            pipe.set(format!("p:{i}"), 0).ignore();
        }
        let () = pipe.query_async(client).await.expect("preload");
    }
}

/// Worker `w` owns the keys `i % WORKERS == w`: it reads them (a miss or a value other than
/// its last write is a failure) and overwrites every fourth one, so it always knows the
/// latest value. Returns what went wrong.
async fn load(client: shardis::Client, stop: Arc<AtomicBool>) -> (usize, Vec<String>) {
    let mut tasks = Vec::new();
    for w in 0..WORKERS {
        let mut client = client.clone();
        let stop = stop.clone();
        tasks.push(tokio::spawn(async move {
            let mut last: HashMap<usize, u64> = HashMap::new();
            let (mut ops, mut wrong) = (0, Vec::new());
            let mut i = w;
            let mut round = 0u64;
            while !stop.load(Ordering::Relaxed) {
                round += 1;
                let key = format!("p:{i}");
                let expected = last.get(&i).copied().unwrap_or(0);
                match client.get::<_, Option<u64>>(&key).await {
                    Ok(Some(v)) if v == expected => {}
                    Ok(other) => wrong.push(format!("GET {key}: {other:?}, expected {expected}")),
                    Err(e) => wrong.push(format!("GET {key}: {e}")),
                }
                if round.is_multiple_of(4) {
                    match client.set::<_, _, ()>(&key, round).await {
                        Ok(()) => {
                            last.insert(i, round);
                        }
                        Err(e) => wrong.push(format!("SET {key}: {e}")),
                    }
                }
                ops += 1;
                i = (i + WORKERS * 97) % N;
            }
            (ops, wrong, last)
        }));
    }
    let (mut ops, mut wrong) = (0, Vec::new());
    let mut last = HashMap::new();
    for t in tasks {
        let (o, w, l) = t.await.expect("load task");
        ops += o;
        wrong.extend(w);
        last.extend(l);
    }
    // Every acknowledged write reads back.
    let mut client = client;
    for (i, v) in last {
        let got: Option<u64> = client.get(format!("p:{i}")).await.expect("read back");
        if got != Some(v) {
            wrong.push(format!(
                "p:{i} reads {got:?} after the load, last write {v}"
            ));
        }
    }
    (ops, wrong)
}

/// Which node (by index in `fleet`) holds each key, read from the servers themselves.
async fn holders(fleet: &Standalone, nodes: usize) -> Vec<Vec<usize>> {
    let mut held = vec![Vec::new(); N];
    for at in 0..nodes {
        let mut conn = fleet.nodes()[at]
            .connection()
            .await
            .expect("direct connection");
        let keys: Vec<String> = conn.keys("p:*").await.expect("KEYS");
        for key in keys {
            let i: usize = key[2..].parse().expect("key index");
            held[i].push(at);
        }
    }
    held
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scale_out_with_rebalancing_under_load_moves_exactly_the_ring_s_keys() {
    let fleet = Standalone::start(5).await.expect("5 standalone nodes");
    let names = ["s0", "s1", "s2", "s3", "s4"];
    let nodes = (0..4).map(|i| RingNode::new(names[i], fleet.nodes()[i].addr(), 1));
    let mut client = shardis::Client::builder()
        .ring(nodes)
        .ring_rebalance(RebalanceOptions::new().keys_per_second(20_000))
        .build()
        .await
        .expect("ring client");
    preload(&mut client).await;
    let before = Ring::new(names[..4].iter().map(|n| (*n, 1))).expect("old ring");
    let after = before.with_node("s4", 1).expect("new ring");
    let exact = moved_fraction(&before, &after);

    let stop = Arc::new(AtomicBool::new(false));
    let running = tokio::spawn(load(client.clone(), stop.clone()));
    tokio::time::sleep(Duration::from_millis(200)).await;
    let started = Instant::now();
    let change = client
        .add_node(RingNode::new("s4", fleet.nodes()[4].addr(), 1))
        .await
        .expect("add node");
    assert_eq!(
        change.moved_fraction, exact,
        "the client reports the ring's exact figure"
    );
    let report = change
        .rebalance
        .expect("rebalancing is on")
        .wait()
        .await
        .expect("rebalance");
    let took = started.elapsed();
    tokio::time::sleep(Duration::from_millis(200)).await;
    stop.store(true, Ordering::Relaxed);
    let (ops, wrong) = running.await.expect("load");
    assert!(
        wrong.is_empty(),
        "{} of {ops} operations went wrong, e.g. {:?}",
        wrong.len(),
        &wrong[..wrong.len().min(5)]
    );
    assert!(!client.ring_status().expect("ring").rebalancing);

    // Exactly the keys the ring moved are on the new node, and each key is on one node.
    let held = holders(&fleet, 5).await;
    let mut moved = 0;
    for (i, at) in held.iter().enumerate() {
        let key = format!("p:{i}");
        let owner = after.get(key.as_bytes()).name();
        let expected = names.iter().position(|n| *n == owner).expect("owner");
        assert_eq!(at, &vec![expected], "{key} must be on {owner} only");
        if before.get(key.as_bytes()).name() != owner {
            assert_eq!(owner, "s4", "keys move only to the new node");
            moved += 1;
        }
    }
    let fraction = moved as f64 / N as f64;
    assert!(
        within_binomial(moved, N, exact),
        "moved {moved} of {N}; the ring says {exact:.4}"
    );
    assert_eq!(report.progress.failed, 0);
    eprintln!(
        "scale-out 4→5: moved {moved} of {N} keys = {fraction:.4}; ring exact {exact:.4}; ideal 1/5 = 0.2000; \
         rebalance {:?} (add_node → done {took:?}), {} moved + {} kept newer by the mover, {ops} load ops, \
         {} fallback hits",
        report.duration,
        report.progress.moved,
        report.progress.kept_newer,
        client.ring_status().expect("ring").fallback_hits
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remove_node_and_set_weight_move_only_what_the_ring_says() {
    let fleet = Standalone::start(3).await.expect("3 standalone nodes");
    let names = ["w0", "w1", "w2"];
    let nodes = (0..3).map(|i| RingNode::new(names[i], fleet.nodes()[i].addr(), 1));
    let mut client = shardis::Client::builder()
        .ring(nodes)
        .ring_rebalance(RebalanceOptions::new().keys_per_second(100_000))
        .build()
        .await
        .expect("ring client");
    preload(&mut client).await;
    let ring = Ring::new(names.map(|n| (n, 1))).expect("ring");

    let heavier = ring.with_weight("w0", 3).expect("heavier");
    let change = client.set_weight("w0", 3).await.expect("set weight");
    assert_eq!(change.moved_fraction, moved_fraction(&ring, &heavier));
    change
        .rebalance
        .expect("rebalance")
        .wait()
        .await
        .expect("rebalance");
    let held = holders(&fleet, 3).await;
    for (i, at) in held.iter().enumerate() {
        let key = format!("p:{i}");
        let owner = heavier.get(key.as_bytes()).name();
        assert_eq!(
            at,
            &vec![names.iter().position(|n| *n == owner).expect("owner")],
            "{key} after set_weight"
        );
        assert!(
            owner == "w0" || owner == ring.get(key.as_bytes()).name(),
            "keys move only to the heavier node"
        );
    }

    let smaller = heavier.without_node("w1").expect("smaller");
    let change = client.remove_node("w1").await.expect("remove node");
    assert_eq!(change.moved_fraction, moved_fraction(&heavier, &smaller));
    change
        .rebalance
        .expect("rebalance")
        .wait()
        .await
        .expect("rebalance");
    let held = holders(&fleet, 3).await;
    for (i, at) in held.iter().enumerate() {
        let key = format!("p:{i}");
        let owner = smaller.get(key.as_bytes()).name();
        assert_eq!(
            at,
            &vec![names.iter().position(|n| *n == owner).expect("owner")],
            "{key} after remove_node"
        );
        let value: Option<u64> = client.get(&key).await.expect("GET");
        assert_eq!(value, Some(0), "{key} survived both changes");
    }
    assert_eq!(
        fleet.dbsize(&fleet.nodes()[1]).await.expect("DBSIZE"),
        0,
        "the removed node was emptied"
    );
}
