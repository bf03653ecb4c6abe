//! Ring mode against real standalone redis-server nodes: placement in proportion to the ring's
//! shares, ketama compatibility with libmemcached's golden vectors, multi-key commands and
//! pipelines split per node, and bad input.

use std::collections::HashMap;
use std::time::Duration;

use redis::AsyncCommands;
use shardis::ring::Ring;
use shardis::{Error, HealthPolicy, RingNode, RingPlacement};
use shardis_testkit::Standalone;

/// A binomial count is within 5 standard deviations of its mean.
fn within_binomial(count: u64, n: u64, p: f64) -> bool {
    let mean = n as f64 * p;
    let sd = (n as f64 * p * (1.0 - p)).sqrt();
    (count as f64 - mean).abs() <= 5.0 * sd
}

async fn get_direct(conn: &mut redis::aio::MultiplexedConnection, key: &[u8]) -> Option<Vec<u8>> {
    conn.get(key).await.expect("direct GET")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_land_in_proportion_to_ring_shares_and_on_the_named_node() {
    let fleet = Standalone::start(4).await.expect("4 standalone nodes");
    let weights = [1u32, 1, 2, 3];
    let names = ["cache-a", "cache-b", "cache-c", "cache-d"];
    let nodes: Vec<RingNode> = (0..4)
        .map(|i| RingNode::new(names[i], fleet.nodes()[i].addr(), weights[i]))
        .collect();
    let mut client = shardis::Client::builder()
        .ring(nodes)
        .build()
        .await
        .expect("ring client");

    const N: u64 = 100_000;
    // Pipelines of 1,000 SETs: each is split per node by the client.
    for batch in 0..N / 1000 {
        let mut pipe = redis::pipe();
        for i in batch * 1000..(batch + 1) * 1000 {
            pipe.set(format!("key:{i}"), i).ignore();
        }
        let () = pipe.query_async(&mut client).await.expect("pipelined SETs");
    }

    // The reference ring, built independently of the client.
    let ring = Ring::new(names.iter().zip(weights).map(|(n, w)| (*n, w))).expect("ring");
    let status = client.ring_status().expect("ring mode");
    let mut total = 0;
    for (i, name) in names.iter().enumerate() {
        let share = ring.share(name).expect("share");
        let reported = status
            .nodes
            .iter()
            .find(|n| n.name == *name)
            .expect("node in status")
            .share;
        assert_eq!(
            share, reported,
            "client and ring disagree on {name}'s share"
        );
        let count = fleet.dbsize(&fleet.nodes()[i]).await.expect("DBSIZE");
        total += count;
        eprintln!(
            "{name} (weight {}): {count} keys, expected {:.0} (share {share:.4})",
            weights[i],
            N as f64 * share
        );
        assert!(
            within_binomial(count, N, share),
            "{name}: {count} keys, expected {:.0}",
            N as f64 * share
        );
    }
    assert_eq!(total, N, "every key stored exactly once");

    // Each key is on the node the ring names: a sample of 2,000, read directly.
    let mut conns = Vec::new();
    for node in fleet.nodes() {
        conns.push(node.connection().await.expect("direct connection"));
    }
    for i in (0..N).step_by((N / 2000) as usize) {
        let key = format!("key:{i}");
        let owner = ring.get(key.as_bytes()).name();
        let at = names.iter().position(|n| *n == owner).expect("known owner");
        assert_eq!(client.ring_node_for(key.as_bytes()).as_deref(), Some(owner));
        let value = get_direct(&mut conns[at], key.as_bytes()).await;
        assert_eq!(
            value,
            Some(i.to_string().into_bytes()),
            "{key} must be on {owner}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ketama_mode_places_keys_where_libmemcached_does() {
    // libmemcached's weighted fixture; real servers stand in for the named hosts.
    let servers = [
        ("10.0.1.1", 600),
        ("10.0.1.2", 300),
        ("10.0.1.3", 200),
        ("10.0.1.4", 350),
        ("10.0.1.5", 1000),
        ("10.0.1.6", 800),
        ("10.0.1.7", 950),
        ("10.0.1.8", 100),
    ];
    let fleet = Standalone::start(servers.len())
        .await
        .expect("8 standalone nodes");
    let nodes: Vec<RingNode> = servers
        .iter()
        .zip(fleet.nodes())
        .map(|(&(name, weight), node)| RingNode::new(name, node.addr(), weight))
        .collect();
    let mut client = shardis::Client::builder()
        .ring(nodes)
        .ring_placement(RingPlacement::Ketama(
            shardis::ring::KetamaFlavor::Libmemcached,
        ))
        .build()
        .await
        .expect("ketama ring client");

    let tsv = include_str!("../vectors/libmemcached.tsv");
    let rows: Vec<(Vec<u8>, String)> = tsv
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            let key = (0..f[0].len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&f[0][i..i + 2], 16).expect("hex"))
                .collect();
            (key, f[3].to_string())
        })
        .collect();
    assert_eq!(rows.len(), 99);
    for (key, _) in &rows {
        let () = client.set(key.as_slice(), "v").await.expect("SET");
    }
    let mut by_server: HashMap<&str, usize> = HashMap::new();
    for (key, server) in &rows {
        let at = servers
            .iter()
            .position(|s| s.0 == server)
            .expect("server in the fixture");
        let mut conn = fleet.nodes()[at]
            .connection()
            .await
            .expect("direct connection");
        let exists: bool = conn.exists(key.as_slice()).await.expect("EXISTS");
        assert!(
            exists,
            "key {} must be on the node standing in for {server}",
            String::from_utf8_lossy(key)
        );
        *by_server.entry(server).or_default() += 1;
    }
    let total: u64 = {
        let mut t = 0;
        for node in fleet.nodes() {
            t += fleet.dbsize(node).await.expect("DBSIZE");
        }
        t
    };
    assert_eq!(total, 99, "each key on exactly one node");
    assert!(
        by_server.len() >= 6,
        "the vectors spread over the servers: {by_server:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multi_key_commands_and_pipelines_are_split_per_node_and_answered_in_order() {
    let fleet = Standalone::start(3).await.expect("3 standalone nodes");
    let nodes: Vec<RingNode> = fleet
        .nodes()
        .iter()
        .enumerate()
        .map(|(i, n)| RingNode::new(format!("n{i}"), n.addr(), 1))
        .collect();
    let mut client = shardis::Client::builder()
        .ring(nodes)
        .ring_hash_tag(*b"{}")
        .build()
        .await
        .expect("ring client");
    for node in fleet.nodes() {
        fleet
            .config_resetstat(node)
            .await
            .expect("CONFIG RESETSTAT");
    }

    let keys: Vec<String> = (0..60).map(|i| format!("m:{i}")).collect();
    let pairs: Vec<(String, String)> = keys.iter().map(|k| (k.clone(), format!("v-{k}"))).collect();
    let () = client.mset(&pairs).await.expect("MSET across nodes");
    let mut asked = keys.clone();
    asked.insert(7, "m:absent".into());
    let values: Vec<Option<String>> = client.mget(&asked).await.expect("MGET across nodes");
    for (key, value) in asked.iter().zip(&values) {
        let expected = (key != "m:absent").then(|| format!("v-{key}"));
        assert_eq!(value, &expected, "MGET answers in the caller's order");
    }
    let existing: i64 = client.exists(&asked).await.expect("EXISTS across nodes");
    assert_eq!(existing, 60);

    // One sub-command per node, not per key: the servers' own counters say so.
    for node in fleet.nodes() {
        let stats = fleet.commandstats(node).await.expect("commandstats");
        assert_eq!(
            stats.get("mget").copied().unwrap_or(0),
            1,
            "one MGET per node on {}",
            node.addr()
        );
        assert_eq!(
            stats.get("mset").copied().unwrap_or(0),
            1,
            "one MSET per node on {}",
            node.addr()
        );
    }

    // A pipeline over every node: replies in the caller's order.
    let mut pipe = redis::pipe();
    for (i, key) in keys.iter().enumerate() {
        pipe.incr(format!("{key}:n"), i as i64);
        pipe.get(key);
    }
    let replies: Vec<redis::Value> = pipe.query_async(&mut client).await.expect("pipeline");
    for (i, key) in keys.iter().enumerate() {
        assert_eq!(replies[2 * i], redis::Value::Int(i as i64));
        assert_eq!(
            replies[2 * i + 1],
            redis::Value::BulkString(format!("v-{key}").into_bytes())
        );
    }
    let deleted: i64 = client.del(&keys).await.expect("DEL across nodes");
    assert_eq!(deleted, 60);

    // A transaction whose keys share a hash tag runs on their node; spread keys are refused.
    let (a, b): (i64, i64) = redis::pipe()
        .atomic()
        .incr("{u1}:a", 1)
        .incr("{u1}:b", 2)
        .query_async(&mut client)
        .await
        .expect("MULTI/EXEC");
    assert_eq!((a, b), (1, 2));
    let spread: Vec<String> = (0..20).map(|i| format!("t:{i}")).collect();
    let mut tx = redis::pipe();
    tx.atomic();
    for key in &spread {
        tx.incr(key, 1);
    }
    let err = tx
        .query_async::<Vec<i64>>(&mut client)
        .await
        .expect_err("keys on several nodes");
    assert!(err.to_string().contains("one ring node"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gives_clear_typed_errors() {
    let build = |nodes: Vec<RingNode>| {
        shardis::Client::builder()
            .ring(nodes)
            .connect_timeout(Duration::from_millis(300))
            .build()
    };
    let config_error = |r: Result<shardis::Client, Error>, needle: &str| match r {
        Err(Error::Config(message)) => assert!(
            message.contains(needle),
            "{message:?} should mention {needle:?}"
        ),
        other => panic!("expected a config error mentioning {needle:?}, got {other:?}"),
    };
    config_error(build(Vec::new()).await, "at least one node");
    config_error(
        build(vec![
            RingNode::new("a", "127.0.0.1:1", 1),
            RingNode::new("a", "127.0.0.1:2", 1),
        ])
        .await,
        "duplicate ring node name \"a\"",
    );
    config_error(
        build(vec![RingNode::new("a", "127.0.0.1:1", 0)]).await,
        "weight 0",
    );
    config_error(
        build(vec![RingNode::new("a", "nowhere", 1)]).await,
        "not host:port",
    );
    config_error(
        shardis::Client::builder()
            .ring([RingNode::at("127.0.0.1:1")])
            .ring_failure_limit(0)
            .build()
            .await,
        "ring_failure_limit",
    );

    // An unreachable node at start-up: fail-fast refuses to start and names it...
    let fleet = Standalone::start(2).await.expect("2 standalone nodes");
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let dead_addr = format!("127.0.0.1:{dead}");
    let nodes = vec![
        RingNode::new("up-0", fleet.nodes()[0].addr(), 1),
        RingNode::new("up-1", fleet.nodes()[1].addr(), 1),
        RingNode::new("gone", dead_addr.clone(), 1),
    ];
    match build(nodes.clone()).await {
        Err(e @ Error::Connection { .. }) => {
            let text = e.to_string();
            assert!(
                text.contains("gone") && text.contains(&dead_addr),
                "must name the node: {text}"
            );
        }
        other => panic!("expected a connection error naming the node, got {other:?}"),
    }
    // ...eject starts with it ejected and serves every key on the others.
    let mut client = shardis::Client::builder()
        .ring(nodes)
        .connect_timeout(Duration::from_millis(300))
        .ring_health(HealthPolicy::Eject {
            retry_timeout: Duration::from_secs(30),
        })
        .build()
        .await
        .expect("eject starts without the dead node");
    let status = client.ring_status().expect("ring mode");
    let gone = status
        .nodes
        .iter()
        .find(|n| n.name == "gone")
        .expect("member");
    assert_eq!(gone.state, shardis::NodeState::Ejected);
    for i in 0..200 {
        let key = format!("k{i}");
        let () = client
            .set(&key, i)
            .await
            .expect("SET served by a live node");
        assert_ne!(
            client.ring_node_for(key.as_bytes()).as_deref(),
            Some("gone")
        );
    }
    // Bad membership changes are refused the same way, and change nothing.
    assert!(matches!(
        client.remove_node("nope").await,
        Err(Error::Config(_))
    ));
    assert!(matches!(
        client.add_node(RingNode::new("x", "127.0.0.1:1", 0)).await,
        Err(Error::Config(_))
    ));
    assert!(matches!(
        client
            .add_node(RingNode::new("up-0", "127.0.0.1:1", 1))
            .await,
        Err(Error::Config(_))
    ));
    assert_eq!(client.ring_status().expect("ring").nodes.len(), 3);
}
