//! Pub/sub against real servers: classic and pattern subscriptions in both modes receive what
//! the client publishes, unsubscribing stops delivery, a killed subscribed connection is set
//! up again, and a shard-channel subscriber keeps receiving across a live reshard of its slot
//! and a manual failover without missing a message when the publisher pauses across each
//! switch.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use shardis::slots::key_slot;
use shardis::{Client, Message, RingNode, Subscription};
use shardis_testkit::{Cluster, FailoverMode, Node, Role, Standalone};

/// Generous bound for anything to arrive or settle: a correctness bound, not a benchmark.
const SETTLE: Duration = Duration::from_secs(20);

/// Publishes `payload` to `channel` through the client (`PUBLISH`, or `SPUBLISH` for shard
/// channels); returns how many subscribers the node that took it reached.
async fn publish(client: &Client, command: &str, channel: &str, payload: &str) -> i64 {
    let reply = client
        .send(redis::cmd(command).arg(channel).arg(payload))
        .await
        .unwrap_or_else(|e| panic!("{command} {channel} {payload}: {e}"));
    match reply {
        redis::Value::Int(n) => n,
        other => panic!("{command} {channel}: {other:?}"),
    }
}

/// Reads messages until one with payload `marker` arrives; returns those before it as
/// (channel, pattern, payload) text.
async fn until_marker(
    sub: &mut Subscription,
    marker: &str,
) -> Vec<(String, Option<String>, String)> {
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    let mut seen = Vec::new();
    let started = Instant::now();
    loop {
        let left = SETTLE.saturating_sub(started.elapsed());
        let message: Message = tokio::time::timeout(left, sub.next())
            .await
            .unwrap_or_else(|_| panic!("marker {marker} not received; got {seen:?}"))
            .expect("the subscription's stream does not end while it lives");
        if message.payload() == marker.as_bytes() {
            return seen;
        }
        seen.push((
            text(message.channel()),
            message.pattern().map(text),
            text(message.payload()),
        ));
    }
}

/// Polls `check` until it holds, for at most [`SETTLE`].
async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    while !check().await {
        assert!(started.elapsed() < SETTLE, "{what}: not within {SETTLE:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `PUBSUB SHARDNUMSUB channel` on `node`: the node's own count of subscribers.
async fn shard_subscribers(cluster: &Cluster, node: &Node, channel: &str) -> i64 {
    let mut conn = cluster
        .connection(node)
        .await
        .expect("connection to a node");
    let reply: Vec<redis::Value> = redis::cmd("PUBSUB")
        .arg("SHARDNUMSUB")
        .arg(channel)
        .query_async(&mut conn)
        .await
        .expect("PUBSUB SHARDNUMSUB");
    match reply.get(1) {
        Some(redis::Value::Int(n)) => *n,
        other => panic!("PUBSUB SHARDNUMSUB: {other:?}"),
    }
}

/// Kills every subscribed connection on every node, as an operator or a proxy would.
async fn kill_pubsub_connections(client: &Client) {
    let kill = redis::cmd("CLIENT")
        .arg("KILL")
        .arg("TYPE")
        .arg("pubsub")
        .to_owned();
    client
        .on_all_nodes(&kill)
        .await
        .expect("CLIENT KILL TYPE pubsub");
}

/// Subscribing, pattern matching, unsubscribing and a killed connection, in either mode. The
/// names share a hash tag: every PUBLISH goes to one node, so messages (and the markers that
/// end each step) arrive in the order they were published.
async fn classic_pubsub(client: &Client) {
    let mut sub = client
        .subscribe(["{t}news", "{t}sports"])
        .await
        .expect("subscribe");
    sub.psubscribe(["{t}alerts:*"]).await.expect("psubscribe");
    let classic = |channel, payload| publish(client, "PUBLISH", channel, payload);

    classic("{t}weather", "not subscribed").await;
    classic("{t}news", "n1").await;
    classic("{t}sports", "s1").await;
    classic("{t}alerts:fire", "a1").await;
    classic("{t}alerts:flood", "a2").await;
    classic("{t}sports", "end-1").await;
    let s = |v: &str| v.to_string();
    assert_eq!(
        until_marker(&mut sub, "end-1").await,
        vec![
            (s("{t}news"), None, s("n1")),
            (s("{t}sports"), None, s("s1")),
            (s("{t}alerts:fire"), Some(s("{t}alerts:*")), s("a1")),
            (s("{t}alerts:flood"), Some(s("{t}alerts:*")), s("a2")),
        ],
        "each published message exactly once, in order, nothing else"
    );

    // Unsubscribing stops delivery, of a channel and of every pattern.
    sub.unsubscribe(["{t}news"]).await.expect("unsubscribe");
    sub.punsubscribe(Vec::<&str>::new())
        .await
        .expect("punsubscribe all");
    classic("{t}news", "after unsubscribe").await;
    classic("{t}alerts:fire", "after punsubscribe").await;
    classic("{t}sports", "s2").await;
    classic("{t}sports", "end-2").await;
    assert_eq!(
        until_marker(&mut sub, "end-2").await,
        vec![(s("{t}sports"), None, s("s2"))]
    );

    // The server closes the subscribed connection: it is set up again, and counted.
    assert_eq!((sub.resubscribes(), sub.gaps()), (0, 0));
    kill_pubsub_connections(client).await;
    eventually("resubscribed after CLIENT KILL", || async {
        sub.resubscribes() >= 1
    })
    .await;
    assert!(sub.gaps() >= 1, "the kill is a gap");
    classic("{t}sports", "after the kill").await;
    classic("{t}sports", "end-3").await;
    assert_eq!(
        until_marker(&mut sub, "end-3").await,
        vec![(s("{t}sports"), None, s("after the kill"))]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_subscribe_psubscribe_unsubscribe_and_a_killed_connection() {
    let cluster = Cluster::builder()
        .primaries(3)
        .replicas_per_primary(0)
        .start()
        .await
        .expect("cluster");
    let client = shardis_tests::client(cluster.seeds()).await;
    classic_pubsub(&client).await;
}

/// A ring client over `fleet`, with `{}` hash tags.
async fn ring_client(fleet: &Standalone) -> Client {
    let nodes: Vec<RingNode> = fleet
        .nodes()
        .iter()
        .enumerate()
        .map(|(i, n)| RingNode::new(format!("node-{i}"), n.addr(), 1))
        .collect();
    Client::builder()
        .ring(nodes)
        .ring_hash_tag(*b"{}")
        .build()
        .await
        .expect("ring client")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ring_subscribe_psubscribe_unsubscribe_and_a_killed_connection() {
    let fleet = Standalone::start(3).await.expect("3 standalone nodes");
    classic_pubsub(&ring_client(&fleet).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ring_publishers_meet_subscribers_on_the_channels_owner() {
    let fleet = Standalone::start(3).await.expect("3 standalone nodes");
    let client = ring_client(&fleet).await;
    let channels: Vec<String> = (0..12).map(|i| format!("channel-{i}")).collect();
    let shard_channels = ["shard-a", "shard-b", "shard-c", "shard-d"];
    let mut sub = client.subscribe(&channels).await.expect("subscribe");
    sub.ssubscribe(shard_channels).await.expect("ssubscribe");
    sub.psubscribe(["pattern:*"]).await.expect("psubscribe");
    let owners: std::collections::BTreeSet<Option<String>> = channels
        .iter()
        .map(|c| client.ring_node_for(c.as_bytes()))
        .collect();
    assert!(owners.len() > 1, "the channels spread over several nodes");

    // Every PUBLISH reaches its subscriber on the node the client sent it to (the server
    // says how many subscribers it reached there).
    for channel in &channels {
        assert_eq!(
            publish(&client, "PUBLISH", channel, channel).await,
            1,
            "{channel}"
        );
    }
    for channel in shard_channels {
        assert_eq!(
            publish(&client, "SPUBLISH", channel, channel).await,
            1,
            "{channel}"
        );
    }
    // A pattern hears channels of every owner.
    let matched: Vec<String> = (0..12).map(|i| format!("pattern:{i}")).collect();
    for channel in &matched {
        assert_eq!(
            publish(&client, "PUBLISH", channel, channel).await,
            1,
            "{channel}"
        );
    }
    let expected = channels.len() + shard_channels.len() + matched.len();
    let mut got = Vec::new();
    while got.len() < expected {
        let message = tokio::time::timeout(SETTLE, sub.next())
            .await
            .unwrap_or_else(|_| panic!("only {} of {expected} messages: {got:?}", got.len()))
            .expect("the stream lives");
        got.push(message);
    }
    for message in &got {
        assert_eq!(
            message.channel(),
            message.payload(),
            "a message is delivered with its own channel"
        );
        assert_eq!(
            message.pattern().is_some(),
            message.channel().starts_with(b"pattern:")
        );
        assert_eq!(
            message.is_sharded(),
            message.channel().starts_with(b"shard-")
        );
    }
    sub.unsubscribe([&channels[1]]).await.expect("unsubscribe");
    sub.sunsubscribe(["shard-a"]).await.expect("sunsubscribe");
    assert_eq!(publish(&client, "PUBLISH", &channels[1], "x").await, 0);
    assert_eq!(publish(&client, "SPUBLISH", "shard-a", "x").await, 0);
    assert_eq!(publish(&client, "SPUBLISH", "shard-b", "x").await, 1);
}

/// The shard-channel subscriber of the issue: numbered messages, a live reshard of the
/// channel's slot and a manual failover of its new owner, the publisher pausing across each
/// switch until the subscriber is set up where the cluster now says: nothing is missed,
/// nothing is delivered twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ssubscribe_follows_a_reshard_and_a_failover_without_missing_a_message() {
    let cluster = Cluster::builder()
        .primaries(3)
        .replicas_per_primary(1)
        .start()
        .await
        .expect("cluster");
    let client = Client::builder()
        .cluster(cluster.seeds())
        .deadline(Duration::from_secs(10))
        // How soon a client that sends nothing notices a failover.
        .refresh_interval(Duration::from_millis(500))
        .build()
        .await
        .expect("client");
    let channel = "orders:{eu}";
    let slot = key_slot(channel.as_bytes());
    let mut sub = client.ssubscribe([channel]).await.expect("ssubscribe");

    // Counts what arrives, by number, until told to stop; then hands the subscription back.
    let received: Received = Default::default();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let collector = {
        let received = received.clone();
        tokio::spawn(async move {
            let mut stopped = stopped;
            loop {
                let message = tokio::select! {
                    _ = &mut stopped => return sub,
                    message = sub.next() => message.expect("the stream lives"),
                };
                let n: u64 = message.payload_as().expect("numbered payload");
                assert!(message.is_sharded());
                assert_eq!(message.channel(), channel.as_bytes());
                *received.lock().expect("lock").entry(n).or_default() += 1;
            }
        })
    };
    let mut sent = 0u64;
    burst(&client, channel, &received, &mut sent).await;

    // A live reshard: the slot moves to another primary; Redis drops the subscription there.
    let source = cluster.node_for_slot(slot).await.expect("owner");
    let primaries = cluster.primaries().await.expect("primaries");
    let target = primaries
        .iter()
        .find(|p| p.id != source.id)
        .expect("another primary")
        .clone();
    cluster.migrate_slot(slot, &target).await.expect("reshard");
    eventually("subscribed on the slot's new owner", || async {
        shard_subscribers(&cluster, &target, channel).await == 1
            && shard_subscribers(&cluster, &source, channel).await == 0
    })
    .await;
    burst(&client, channel, &received, &mut sent).await;

    // A manual failover of the new owner: its replica takes over.
    let mut replica = None;
    for node in cluster.replicas().await.expect("replicas") {
        if let Role::Replica { primary_port, .. } = cluster.role(&node).await.expect("role")
            && primary_port == target.port
        {
            replica = Some(node);
        }
    }
    let replica = replica.expect("the new owner has a replica");
    cluster
        .failover(&replica, FailoverMode::Default)
        .await
        .expect("manual failover");
    eventually("subscribed on the promoted replica only", || async {
        shard_subscribers(&cluster, &replica, channel).await == 1
            && shard_subscribers(&cluster, &target, channel).await == 0
    })
    .await;
    burst(&client, channel, &received, &mut sent).await;

    let _ = stop.send(());
    let sub = collector.await.expect("collector");
    // One gap each: the slot moving away (the server dropped the channel) and the move to
    // the promoted replica.
    assert!(sub.gaps() >= 2, "gaps: {}", sub.gaps());
    assert!(
        sub.resubscribes() >= 2,
        "resubscribes: {}",
        sub.resubscribes()
    );
    let received = received.lock().expect("lock").clone();
    let missed: Vec<u64> = (0..sent).filter(|n| !received.contains_key(n)).collect();
    let twice: Vec<u64> = received
        .iter()
        .filter(|(_, count)| **count > 1)
        .map(|(n, _)| *n)
        .collect();
    assert_eq!(missed, Vec::<u64>::new(), "missed messages");
    assert_eq!(twice, Vec::<u64>::new(), "messages delivered twice");
    assert_eq!(received.len() as u64, sent);
}

/// What the collector received: how many times each number.
type Received = Arc<std::sync::Mutex<BTreeMap<u64, u32>>>;

/// Publishes the next 100 numbers, each reaching exactly one subscriber on the node that took
/// it, and waits until the subscriber has them all.
async fn burst(client: &Client, channel: &str, received: &Received, sent: &mut u64) {
    for _ in 0..100 {
        assert_eq!(
            publish(client, "SPUBLISH", channel, &sent.to_string()).await,
            1,
            "message {sent} reaches its one subscriber"
        );
        *sent += 1;
    }
    let want = *sent;
    eventually("every message of the burst", || async {
        received.lock().expect("lock").len() as u64 >= want
    })
    .await;
}

/// The shard channel's primary dies (kill -9): the subscription is set up again on the replica
/// the cluster promotes, and receives what is published after that.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ssubscribe_moves_to_the_promoted_replica_when_its_primary_dies() {
    let cluster = Cluster::builder()
        .primaries(3)
        .replicas_per_primary(1)
        .start()
        .await
        .expect("cluster");
    let client = Client::builder()
        .cluster(cluster.seeds())
        .deadline(Duration::from_secs(10))
        .build()
        .await
        .expect("client");
    let channel = "jobs:{kill}";
    let mut sub = client.ssubscribe([channel]).await.expect("ssubscribe");
    let victim = cluster
        .node_for_slot(key_slot(channel.as_bytes()))
        .await
        .expect("owner");
    publish(&client, "SPUBLISH", channel, "before").await;
    assert_eq!(until_marker(&mut sub, "before").await, vec![]);

    cluster.kill(&victim).expect("kill -9");
    let promoted = cluster
        .wait_for_failover_of(&victim)
        .await
        .expect("failover")
        .expect("a replica is promoted");
    eventually("subscribed on the promoted replica", || async {
        shard_subscribers(&cluster, &promoted, channel).await == 1
    })
    .await;
    assert!(sub.gaps() >= 1 && sub.resubscribes() >= 1);
    assert_eq!(publish(&client, "SPUBLISH", channel, "after").await, 1);
    assert_eq!(until_marker(&mut sub, "after").await, vec![]);
}
