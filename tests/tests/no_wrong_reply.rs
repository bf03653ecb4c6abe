//! No wrong reply, ever: commands that would leave state on a shared connection are refused
//! with the alternative, blocking commands run on connections of their own, transactions with
//! WATCH run on a dedicated connection — and meanwhile every other caller on the same nodes
//! keeps getting its own correct replies. Each test runs in cluster mode, in ring mode and in
//! primary+replicas mode with reads on the replicas (where a caller's read may miss its own
//! latest write, never see another caller's).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::{Duration, Instant};

use redis::AsyncCommands;
use shardis::{Client, Error, HealthPolicy, NodeState, ReadFrom, RingNode};
use shardis_testkit::{Cluster, Replication, Standalone};

/// A deployment and a client of it.
struct Setup {
    client: Client,
    /// Direct addresses of the primaries / ring nodes (primary+replicas: every node).
    nodes: Vec<String>,
    /// Reads go to asynchronously replicated replicas: a read may return an earlier value of
    /// the caller's own (never another caller's).
    replica_reads: bool,
    _cluster: Option<Cluster>,
    _fleet: Option<Standalone>,
    _replication: Option<Replication>,
}

async fn cluster() -> Setup {
    let cluster = Cluster::builder()
        .primaries(3)
        .replicas_per_primary(0)
        .start()
        .await
        .expect("cluster");
    let client = Client::builder()
        .cluster(cluster.seeds())
        .response_timeout(Duration::from_secs(1))
        .build()
        .await
        .expect("cluster client");
    let nodes = cluster.seeds();
    Setup {
        client,
        nodes,
        replica_reads: false,
        _cluster: Some(cluster),
        _fleet: None,
        _replication: None,
    }
}

async fn ring(policy: HealthPolicy) -> Setup {
    let fleet = Standalone::start(3).await.expect("3 nodes");
    let nodes: Vec<String> = fleet.nodes().iter().map(|n| n.addr()).collect();
    let client = Client::builder()
        .ring(
            nodes
                .iter()
                .enumerate()
                .map(|(i, a)| RingNode::new(format!("n{i}"), a.clone(), 1)),
        )
        .ring_hash_tag(*b"{}")
        .ring_health(policy)
        .ring_failure_limit(2)
        .heartbeat_interval(Duration::from_millis(200))
        .response_timeout(Duration::from_secs(1))
        .build()
        .await
        .expect("ring client");
    Setup {
        client,
        nodes,
        replica_reads: false,
        _cluster: None,
        _fleet: Some(fleet),
        _replication: None,
    }
}

/// One primary, two replicas; reads on the replicas.
async fn replicated() -> Setup {
    let set = Replication::builder()
        .replicas(2)
        .start()
        .await
        .expect("primary and replicas");
    let nodes: Vec<String> = set.nodes().iter().map(|n| n.addr()).collect();
    let client = Client::builder()
        .replicated(nodes[0].clone(), nodes[1..].to_vec())
        .read_from(ReadFrom::Replica)
        .response_timeout(Duration::from_secs(1))
        .build()
        .await
        .expect("primary+replicas client");
    Setup {
        client,
        nodes,
        replica_reads: true,
        _cluster: None,
        _fleet: None,
        _replication: Some(set),
    }
}

async fn every_mode() -> Vec<(&'static str, Setup)> {
    vec![
        ("cluster", cluster().await),
        ("ring", ring(HealthPolicy::FailFast).await),
        ("replicated", replicated().await),
    ]
}

/// Tasks writing and reading back their own keys (spread over every node) while a test does
/// its thing; every reply that is not the caller's own is counted as wrong.
struct Load {
    stop: Arc<AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<(u64, Vec<String>)>>,
}

fn load(setup: &Setup, tasks: usize, name: &str) -> Load {
    let client = &setup.client;
    let replica_reads = setup.replica_reads;
    let stop = Arc::new(AtomicBool::new(false));
    let tasks = (0..tasks)
        .map(|t| {
            let mut client = client.clone();
            let stop = stop.clone();
            let name = name.to_string();
            tokio::spawn(async move {
                let mut wrong = Vec::new();
                let mut ops = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    ops += 1;
                    let key = format!("load:{name}:{t}:{}", ops % 16);
                    let value = format!("{t}-{ops}");
                    match client.set::<_, _, Value>(&key, &value).await {
                        Ok(Value::Okay) => {}
                        other => wrong.push(format!("SET {key}: {other:?}")),
                    }
                    match client.get::<_, Value>(&key).await {
                        Ok(Value::BulkString(b)) if b == value.as_bytes() => {}
                        // A replica behind the primary: nothing yet, or this caller's own
                        // earlier value of this key.
                        Ok(Value::Nil) if replica_reads => {}
                        Ok(Value::BulkString(b)) if replica_reads && own_earlier(&b, t, ops) => {}
                        other => wrong.push(format!("GET {key}: {other:?}, wanted {value}")),
                    }
                }
                (ops, wrong)
            })
        })
        .collect();
    Load { stop, tasks }
}

use redis::Value;

/// Whether `value` is one task `t` wrote to the key it writes at `ops`, before `ops`.
fn own_earlier(value: &[u8], t: usize, ops: u64) -> bool {
    let text = String::from_utf8_lossy(value);
    let Some((task, at)) = text.split_once('-') else {
        return false;
    };
    let (Ok(task), Ok(at)) = (task.parse::<usize>(), at.parse::<u64>()) else {
        return false;
    };
    task == t && at < ops && at % 16 == ops % 16
}

impl Load {
    /// Stops the load; asserts no caller got a wrong reply (or any error) meanwhile.
    async fn assert_clean(self, what: &str) {
        tokio::time::sleep(Duration::from_millis(50)).await;
        self.stop.store(true, Ordering::Relaxed);
        let mut ops = 0;
        let mut wrong = Vec::new();
        for task in self.tasks {
            let (n, w) = task.await.expect("load task");
            ops += n;
            wrong.extend(w);
        }
        assert!(ops > 0, "{what}: the load ran");
        assert!(
            wrong.is_empty(),
            "{what}: {} of {ops} concurrent operations got a wrong reply, e.g. {:?}",
            wrong.len(),
            &wrong[..wrong.len().min(5)]
        );
    }
}

fn refused(result: shardis::Result<Value>, command: &str, hint: &str) {
    match result {
        Err(Error::Unsupported { command: c, reason }) => {
            assert_eq!(c, command);
            assert!(reason.contains(hint), "{command}: {reason}");
        }
        other => panic!("{command} must be refused, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_state_commands_are_refused_and_disturb_nobody() {
    for (mode, setup) in every_mode().await {
        let client = &setup.client;
        let running = load(&setup, 8, mode);
        // 1. MULTI / EXEC / DISCARD sent raw.
        refused(client.send(&redis::cmd("MULTI")).await, "MULTI", "atomic");
        refused(client.send(&redis::cmd("EXEC")).await, "EXEC", "atomic");
        refused(
            client.send(&redis::cmd("DISCARD")).await,
            "DISCARD",
            "atomic",
        );
        // 2. WATCH.
        refused(
            client.send(redis::cmd("WATCH").arg("{wt}k")).await,
            "WATCH",
            "Client::transaction",
        );
        // 3. SELECT.
        refused(
            client.send(redis::cmd("SELECT").arg(1)).await,
            "SELECT",
            "database 0",
        );
        // 4. SUBSCRIBE and its family.
        for name in ["SUBSCRIBE", "PSUBSCRIBE", "SSUBSCRIBE"] {
            refused(
                client.send(redis::cmd(name).arg("ch")).await,
                name,
                "Client::subscribe",
            );
        }
        // 5. HELLO 3 and CLIENT TRACKING ON.
        refused(
            client.send(redis::cmd("HELLO").arg(3)).await,
            "HELLO",
            "protocol",
        );
        refused(
            client
                .send(redis::cmd("CLIENT").arg("TRACKING").arg("ON"))
                .await,
            "CLIENT TRACKING",
            "protocol",
        );
        for name in ["MONITOR", "READONLY", "ASKING", "QUIT", "RESET"] {
            assert!(
                matches!(
                    client.send(&redis::cmd(name)).await,
                    Err(Error::Unsupported { .. })
                ),
                "{mode}: {name}"
            );
        }
        // Through redis::AsyncCommands too, and recoverable as a shardis error.
        let mut c = client.clone();
        let err = redis::cmd("SELECT")
            .arg(1)
            .query_async::<()>(&mut c)
            .await
            .expect_err("refused");
        assert!(
            matches!(Error::from_redis(&err), Some(Error::Unsupported { .. })),
            "{err}"
        );
        // A pipeline holding one such command is refused whole, before anything runs.
        let mut pipe = redis::pipe();
        pipe.set("{p}before", 1)
            .cmd("SELECT")
            .arg(1)
            .set("{p}after", 1);
        let err = pipe.query_async::<()>(&mut c).await.expect_err("refused");
        assert!(matches!(
            Error::from_redis(&err),
            Some(Error::Unsupported { .. })
        ));
        let before: Option<i64> = c.get("{p}before").await.expect("GET");
        assert_eq!(before, None, "{mode}: nothing of a refused pipeline ran");

        // Every write of the load went to database 0: read them back on the nodes directly.
        running.assert_clean(mode).await;
        let mut found = 0;
        for addr in &setup.nodes {
            let mut direct = redis::Client::open(format!("redis://{addr}/"))
                .expect("url")
                .get_multiplexed_async_connection()
                .await
                .expect("direct");
            let keys: Vec<String> = redis::cmd("KEYS")
                .arg(format!("load:{mode}:*"))
                .query_async(&mut direct)
                .await
                .expect("KEYS");
            found += keys.len();
        }
        assert!(found > 0, "{mode}: the load's keys are in database 0");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_transactions_run_on_a_dedicated_connection() {
    for (mode, setup) in every_mode().await {
        let client = setup.client.clone();
        let mut outside = setup.client.clone();
        let _: () = outside.set("{wt}k", 1).await.expect("SET");
        let running = load(&setup, 4, mode);

        // B's atomic pipeline runs at the same time, on the shared connection.
        let b = {
            let mut b = client.clone();
            tokio::spawn(async move {
                let mut done = 0;
                for _ in 0..50 {
                    let r: Option<(i64,)> = redis::pipe()
                        .atomic()
                        .incr("{wt}other", 1)
                        .query_async(&mut b)
                        .await
                        .expect("B's transaction");
                    if r.is_some() {
                        done += 1;
                    }
                }
                done
            })
        };

        // A: read-modify-write of {wt}k; the key changes behind A's back on the first try.
        let attempts = AtomicU32::new(0);
        let result: i64 = client
            .transaction(&["{wt}k"], async |conn, mut pipe| {
                let value: i64 = conn.get("{wt}k").await?;
                if attempts.fetch_add(1, Ordering::Relaxed) == 0 {
                    let _: () = outside.set("{wt}k", 100).await?;
                }
                pipe.set("{wt}k", value + 1).ignore().get("{wt}k");
                let done: Option<(i64,)> = pipe.query_async(conn).await?;
                Ok(done.map(|(v,)| v))
            })
            .await
            .expect("A's transaction");
        assert_eq!(
            attempts.load(Ordering::Relaxed),
            2,
            "{mode}: EXEC refused the first attempt"
        );
        assert_eq!(result, 101, "{mode}: the outside write is not lost");
        assert_eq!(
            b.await.expect("B"),
            50,
            "{mode}: every one of B's transactions ran"
        );
        // Read on the primary (a replica may not have B's last INCR yet).
        let mut on_primary = client.dedicated("{wt}other").await.expect("dedicated");
        let other: i64 = on_primary.get("{wt}other").await.expect("GET");
        assert_eq!(other, 50, "{mode}: no INCR of B lost");
        drop(on_primary);

        // A dedicated connection keeps to its key's shard and refuses shared-only trouble.
        let mut conn = client.dedicated("{wt}k").await.expect("dedicated");
        let err = conn.get::<_, Value>("{elsewhere}x").await;
        let elsewhere = client.ring_node_for(b"{elsewhere}x");
        let same_node = elsewhere.is_some() && elsewhere == client.ring_node_for(b"{wt}k");
        if client.replication().is_some() {
            // One shard: every key is the dedicated connection's.
            assert!(err.is_ok(), "{mode}: any key on the one shard: {err:?}");
        } else if !same_node {
            assert!(err.is_err(), "{mode}: a key of another shard is refused");
        }
        refused_on(&mut conn, "SELECT").await;
        let _: () = conn
            .set("{wt}k", 7)
            .await
            .expect("SET on the dedicated connection");
        running.assert_clean(mode).await;
    }
}

async fn refused_on(conn: &mut shardis::DedicatedConnection, name: &str) {
    let err = redis::cmd(name)
        .arg(1)
        .query_async::<Value>(conn)
        .await
        .expect_err("refused");
    assert!(matches!(
        Error::from_redis(&err),
        Some(Error::Unsupported { .. })
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocking_commands_never_block_the_shared_connection() {
    for (mode, setup) in every_mode().await {
        let client = setup.client.clone();
        // BLPOP waits 2 s on the node of {b}; 100 SETs on that same node meanwhile.
        let blpop = {
            let client = client.clone();
            tokio::spawn(async move {
                let started = Instant::now();
                let reply = client.send(redis::cmd("BLPOP").arg("{b}list").arg(2)).await;
                (reply, started.elapsed())
            })
        };
        tokio::time::sleep(Duration::from_millis(100)).await;
        let mut slowest = Duration::ZERO;
        for i in 0..100 {
            let started = Instant::now();
            let reply = client
                .send(redis::cmd("SET").arg(format!("{{b}}set:{i}")).arg(i))
                .await
                .expect("SET");
            assert_eq!(reply, Value::Okay);
            slowest = slowest.max(started.elapsed());
        }
        assert!(
            slowest < Duration::from_millis(50),
            "{mode}: a SET waited {slowest:?} behind BLPOP"
        );
        let (reply, took) = blpop.await.expect("BLPOP task");
        assert_eq!(
            reply.expect("BLPOP"),
            Value::Nil,
            "{mode}: BLPOP timed out empty"
        );
        assert!(took >= Duration::from_millis(1900), "{mode}: {took:?}");

        // Longer than the 1 s response timeout: still its own reply, nobody else fails.
        let running = load(&setup, 4, mode);
        let reply = client
            .send(redis::cmd("BLPOP").arg("{b}list").arg(3))
            .await
            .expect("BLPOP 3 outlives the response timeout");
        assert_eq!(reply, Value::Nil);
        // A BLPOP that gets data.
        let pusher = {
            let client = client.clone();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(200)).await;
                client
                    .send(redis::cmd("RPUSH").arg("{b}list").arg("job"))
                    .await
            })
        };
        let reply = client
            .send(redis::cmd("BLPOP").arg("{b}list").arg(0))
            .await
            .expect("BLPOP 0");
        assert_eq!(
            reply,
            Value::Array(vec![
                Value::BulkString(b"{b}list".to_vec()),
                Value::BulkString(b"job".to_vec())
            ])
        );
        pusher.await.expect("pusher").expect("RPUSH");
        // XREAD BLOCK: one call, never retried.
        let xread = client
            .send(
                redis::cmd("XREAD")
                    .arg("BLOCK")
                    .arg(1500)
                    .arg("STREAMS")
                    .arg("{b}stream")
                    .arg("$"),
            )
            .await
            .expect("XREAD BLOCK");
        assert_eq!(xread, Value::Nil);
        running.assert_clean(mode).await;

        // A caller's own timeout bounds a wait-forever command.
        let started = Instant::now();
        let err = client
            .send_with_timeout(
                redis::cmd("BLPOP").arg("{b}list").arg(0),
                Duration::from_millis(300),
            )
            .await
            .expect_err("timed out");
        assert!(matches!(err, Error::Timeout { .. }), "{err}");
        assert!(started.elapsed() < Duration::from_secs(2));
        // Blocking commands in a pipeline are refused (they would hold every reply behind them).
        let mut c = client.clone();
        let err = redis::pipe()
            .cmd("BLPOP")
            .arg("{b}list")
            .arg(1)
            .query_async::<Value>(&mut c)
            .await
            .expect_err("refused");
        assert!(matches!(
            Error::from_redis(&err),
            Some(Error::Unsupported { .. })
        ));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_blocking_command_does_not_eject_a_healthy_ring_node() {
    let setup = ring(HealthPolicy::Eject {
        retry_timeout: Duration::from_secs(30),
    })
    .await;
    let reply = setup
        .client
        .send(redis::cmd("BLPOP").arg("{e}list").arg(4))
        .await
        .expect("BLPOP 4");
    assert_eq!(reply, Value::Nil);
    let status = setup.client.ring_status().expect("ring");
    assert_eq!(status.ejections, 0);
    assert!(status.nodes.iter().all(|n| n.state == NodeState::Up));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_the_server_closed_is_replaced_before_the_next_write() {
    for (mode, setup) in every_mode().await {
        let mut client = setup.client.clone();
        for i in 0..30 {
            let _: () = client.set(format!("kill:{i}"), i).await.expect("warm up");
        }
        // Every node closes every normal client connection (as an idle timeout, a restart or
        // a load balancer would).
        for addr in &setup.nodes {
            let mut direct = redis::Client::open(format!("redis://{addr}/"))
                .expect("url")
                .get_multiplexed_async_connection()
                .await
                .expect("direct");
            let _: Value = redis::cmd("CLIENT")
                .arg("KILL")
                .arg("TYPE")
                .arg("normal")
                .arg("SKIPME")
                .arg("yes")
                .query_async(&mut direct)
                .await
                .expect("CLIENT KILL");
        }
        // The very next writes succeed: a connection the server closed is not written to.
        for i in 0..30 {
            let r: shardis::Result<Value> = client
                .send(redis::cmd("SET").arg(format!("kill:{i}")).arg(i + 1))
                .await;
            assert_eq!(r.expect("write after CLIENT KILL"), Value::Okay, "{mode}");
        }
        if let Some(status) = client.ring_status() {
            assert_eq!(status.ejections, 0, "{mode}: no failure counted");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_aborted_transaction_says_which_command_was_refused() {
    for (mode, setup) in every_mode().await {
        let mut client = setup.client.clone();
        let err = redis::pipe()
            .atomic()
            .set("{tx}a", 1)
            .cmd("SET")
            .arg("{tx}b")
            .query_async::<Value>(&mut client)
            .await
            .expect_err("EXECABORT");
        assert_eq!(
            err.kind(),
            redis::ErrorKind::Server(redis::ServerErrorKind::ExecAbort),
            "{mode}: {err}"
        );
        let text = err.to_string();
        assert!(text.contains("Transaction aborted"), "{mode}: {text}");
        assert!(
            text.contains("1: ERR wrong number of arguments"),
            "{mode}: {text}"
        );
        let a: Option<i64> = client.get("{tx}a").await.expect("GET");
        assert_eq!(a, None, "{mode}: nothing of the transaction ran");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ring_mode_refuses_what_cannot_work_at_build() {
    let fleet = Standalone::start(1).await.expect("node");
    let err = Client::builder()
        .ring([RingNode::at(fleet.nodes()[0].addr())])
        .read_from(shardis::ReadFrom::PreferReplica)
        .build()
        .await
        .expect_err("replica reads in ring mode");
    assert!(
        matches!(&err, Error::Config(m) if m.contains("ReadFrom::Primary")),
        "{err}"
    );

    let cluster = Cluster::builder()
        .primaries(3)
        .replicas_per_primary(0)
        .start()
        .await
        .expect("cluster");
    let err = Client::builder()
        .ring(cluster.seeds().into_iter().map(RingNode::at))
        .build()
        .await
        .expect_err("a ring over cluster nodes");
    assert!(
        matches!(&err, Error::Config(m) if m.contains("cluster")),
        "{err}"
    );
}

/// The id of the server connection behind a dedicated connection.
async fn client_id(conn: &mut shardis::DedicatedConnection) -> i64 {
    redis::cmd("CLIENT")
        .arg("ID")
        .query_async(conn)
        .await
        .expect("CLIENT ID")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dedicated_connection_is_reused_only_clean() {
    for (mode, setup) in every_mode().await {
        let client = &setup.client;
        // Left with a WATCH open: closed, never handed to the next caller.
        let mut first = client.dedicated("{d}k").await.expect("dedicated");
        let watched = client_id(&mut first).await;
        let _: () = redis::cmd("WATCH")
            .arg("{d}k")
            .query_async(&mut first)
            .await
            .expect("WATCH");
        drop(first);
        let mut second = client.dedicated("{d}k").await.expect("dedicated");
        let fresh = client_id(&mut second).await;
        assert_ne!(
            watched, fresh,
            "{mode}: a connection with a WATCH open was reused"
        );
        // Clean: reused.
        let _: Option<String> = second.get("{d}k").await.expect("GET");
        drop(second);
        let mut third = client.dedicated("{d}k").await.expect("dedicated");
        assert_eq!(
            client_id(&mut third).await,
            fresh,
            "{mode}: a clean connection is reused"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slot_moving_under_a_dedicated_connection_fails_clearly() {
    let setup = cluster().await;
    let cluster = setup._cluster.as_ref().expect("cluster");
    let slot = shardis::slots::key_slot(b"{mv}k");
    let owner = cluster.node_for_slot(slot).await.expect("owner");
    let target = cluster
        .primaries()
        .await
        .expect("primaries")
        .into_iter()
        .find(|p| p.id != owner.id)
        .expect("another primary");
    let mut conn = setup.client.dedicated("{mv}k").await.expect("dedicated");
    let _: () = conn.set("{mv}k", 1).await.expect("SET");
    cluster.migrate_slot(slot, &target).await.expect("reshard");
    let err = conn
        .get::<_, Value>("{mv}k")
        .await
        .expect_err("the slot moved");
    assert!(
        matches!(Error::from_redis(&err), Some(Error::SlotMoved { .. })),
        "{err}"
    );
    // The client itself follows the move.
    let mut client = setup.client.clone();
    let v: i64 = client.get("{mv}k").await.expect("GET after the move");
    assert_eq!(v, 1);
}
