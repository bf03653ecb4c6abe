//! Failures and bad input: unreachable seeds, a paused node, a seed that answers garbage.

use std::time::{Duration, Instant};

use redis::AsyncCommands;
use shardis::slots::key_slot;
use shardis_testkit::Cluster;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::test]
async fn unreachable_seeds_fail_fast_with_an_error_naming_them() {
    // Ports nobody listens on: bound then released.
    let ports: Vec<u16> = (0..2)
        .map(|_| {
            std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port()
        })
        .collect();
    let seeds: Vec<String> = ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
    let connect_timeout = Duration::from_millis(500);
    let started = Instant::now();
    let err = shardis::Client::builder()
        .cluster(seeds.clone())
        .connect_timeout(connect_timeout)
        .build()
        .await
        .expect_err("no seed answers");
    let elapsed = started.elapsed();
    assert!(
        matches!(err, shardis::Error::NoSeedReachable { .. }),
        "{err}"
    );
    let text = err.to_string();
    for seed in &seeds {
        assert!(
            text.contains(seed.as_str()),
            "error must name {seed}: {text}"
        );
    }
    assert!(
        elapsed < connect_timeout * 3 + Duration::from_secs(1),
        "took {elapsed:?}"
    );

    let bad = shardis::Client::builder()
        .cluster(["not an address"])
        .build()
        .await
        .expect_err("bad seed");
    assert!(matches!(bad, shardis::Error::Config(_)), "{bad}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_node_fails_its_commands_within_the_deadline_while_others_serve() {
    let cluster = Cluster::builder()
        .primaries(3)
        .replicas_per_primary(0)
        .start()
        .await
        .expect("cluster");
    let deadline = Duration::from_millis(1500);
    let mut client = shardis::Client::builder()
        .cluster(cluster.seeds())
        .response_timeout(Duration::from_millis(300))
        .deadline(deadline)
        .build()
        .await
        .expect("client");
    let primaries = cluster.primaries().await.unwrap();
    let paused = primaries[0].clone();
    // One key per primary.
    let mut key_on = std::collections::HashMap::new();
    for i in 0.. {
        let key = format!("p:{i}");
        let owner = cluster
            .node_for_slot(key_slot(key.as_bytes()))
            .await
            .unwrap();
        key_on.entry(owner.id.clone()).or_insert(key);
        if key_on.len() == 3 {
            break;
        }
    }
    for key in key_on.values() {
        let _: () = client.set(key, 1).await.unwrap();
    }
    cluster.pause(&paused).expect("SIGSTOP");
    let started = Instant::now();
    let err = client
        .get::<_, Option<i64>>(&key_on[&paused.id])
        .await
        .expect_err("paused node cannot answer");
    let waited = started.elapsed();
    assert!(
        waited <= deadline + Duration::from_millis(500),
        "failed after {waited:?}, deadline {deadline:?}"
    );
    assert!(err.is_timeout() || err.is_io_error(), "{err}");
    for (id, key) in &key_on {
        if *id != paused.id {
            let v: Option<i64> = client.get(key).await.expect("other shards keep serving");
            assert_eq!(v, Some(1));
        }
    }
    cluster.resume(&paused).expect("SIGCONT");
    let v: Option<i64> = client
        .get(&key_on[&paused.id])
        .await
        .expect("served again after resume");
    assert_eq!(v, Some(1));
}

/// A node that answers every command with a reply no topology parser can accept.
async fn garbage_node() -> (String, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let task = tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                while let Ok(n) = socket.read(&mut buf).await {
                    if n == 0 {
                        return;
                    }
                    // HELLO/CLIENT SETINFO get +OK; everything else a malformed slot range.
                    let text = String::from_utf8_lossy(&buf[..n]).to_ascii_uppercase();
                    let reply: &[u8] = if text.contains("CLUSTER") {
                        b"*1\r\n*2\r\n:70000\r\n:-1\r\n"
                    } else {
                        b"+OK\r\n"
                    };
                    let count = text.matches("*").count().max(1);
                    for _ in 0..count {
                        if socket.write_all(reply).await.is_err() {
                            return;
                        }
                    }
                }
            });
        }
    });
    (addr, task)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_topology_is_reported_and_never_replaces_a_good_map() {
    let (garbage, _task) = garbage_node().await;
    // Only garbage: the error says what was wrong with the reply.
    let err = shardis::Client::builder()
        .cluster([garbage.clone()])
        .build()
        .await
        .expect_err("garbage topology");
    assert!(
        matches!(err, shardis::Error::NoSeedReachable { .. }),
        "{err}"
    );
    assert!(err.to_string().contains(&garbage), "{err}");

    // Garbage first, real seeds after: the good views win, and refreshes that meet the
    // garbage node again keep the good map.
    let cluster = Cluster::builder()
        .primaries(3)
        .replicas_per_primary(0)
        .start()
        .await
        .expect("cluster");
    let mut seeds = vec![garbage.clone()];
    seeds.extend(cluster.seeds());
    let mut client = shardis::Client::builder()
        .cluster(seeds)
        .refresh_fanout(1)
        .refresh_interval(Duration::from_millis(50))
        .refresh_min_interval(Duration::from_millis(10))
        .build()
        .await
        .expect("client from the good seeds");
    let before = client.topology();
    assert!(before.is_complete());
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(client.topology(), before, "the good map stays");
    let _: () = client.set("still", "works").await.unwrap();
    assert!(client.stats().refreshes > 0);
}
