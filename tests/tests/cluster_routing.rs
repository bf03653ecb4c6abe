//! Routing on a real 3×1 cluster: keys land on the node that owns their slot (asked directly,
//! not through shardis), and multi-key commands and pipelines across slots answer in order.

use redis::AsyncCommands;
use shardis::slots::key_slot;
use shardis_testkit::Cluster;

/// The hash-tag edge cases of the cluster spec, with the keys around slot boundaries.
const EDGE_KEYS: &[&[u8]] = &[
    b"",
    b"\x00",
    b"a",
    b"foo",
    b"{user1000}.following",
    b"{user1000}.followers",
    b"foo{}{bar}",
    b"foo{{bar}}zap",
    b"foo{bar}{zap}",
    b"{}",
    b"{",
    b"}",
    b"}{",
    b"{}{foo}",
    b"foo{",
    b"foo}",
    b"{{}}",
    b"{a}}",
    b"}{a}",
    b"{a{b}c}",
    b"\xff\x00{x}",
    b"\xff\xff\xff\xff",
    b"key:24358",
    b"key:13358",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_key_lands_on_the_node_that_owns_its_slot() {
    let cluster = Cluster::builder()
        .primaries(3)
        .replicas_per_primary(1)
        .start()
        .await
        .expect("cluster");
    let mut client = shardis_tests::client(cluster.seeds()).await;

    let mut keys: Vec<Vec<u8>> = EDGE_KEYS.iter().map(|k| k.to_vec()).collect();
    keys.extend((0..10_000).map(|i| format!("route:{i}").into_bytes()));
    let writes = keys.iter().map(|k| {
        let mut c = client.clone();
        async move { c.set::<_, _, ()>(k.as_slice(), k.as_slice()).await }
    });
    for r in futures::future::join_all(writes).await {
        r.expect("write through shardis");
    }

    // Ask each owner directly, one connection per primary, without redirects.
    let mut misplaced = Vec::new();
    let mut by_owner: std::collections::HashMap<String, (shardis_testkit::Node, Vec<&Vec<u8>>)> =
        Default::default();
    for key in &keys {
        let owner = cluster.node_for_slot(key_slot(key)).await.expect("owner");
        by_owner
            .entry(owner.addr())
            .or_insert_with(|| (owner.clone(), Vec::new()))
            .1
            .push(key);
    }
    for (_, (owner, owned)) in by_owner {
        let mut conn = cluster.connection(&owner).await.expect("direct connection");
        for key in owned {
            let got: Option<Vec<u8>> = redis::cmd("GET")
                .arg(key.as_slice())
                .query_async(&mut conn)
                .await
                .expect("direct GET");
            if got.as_deref() != Some(key.as_slice()) {
                misplaced.push((String::from_utf8_lossy(key).into_owned(), owner.addr()));
            }
        }
    }
    assert!(
        misplaced.is_empty(),
        "{} keys not on their slot's owner: {:?}",
        misplaced.len(),
        &misplaced[..misplaced.len().min(5)]
    );
    let got: Option<Vec<u8>> = client.get(&b"{user1000}.following"[..]).await.unwrap();
    assert_eq!(got.as_deref(), Some(&b"{user1000}.following"[..]));

    // A keyed command missing from the built-in table (PFDEBUG keeps its key at argument 2)
    // is routed by the key spec the server gives in COMMAND INFO: straight to the owner, so
    // no MOVED is needed.
    for i in 0..50 {
        let _: i64 = client.pfadd(format!("hll:{i}"), "x").await.unwrap();
    }
    let moved_before = client.stats().moved;
    for i in 0..50 {
        let reply = client
            .send(redis::cmd("PFDEBUG").arg("GETREG").arg(format!("hll:{i}")))
            .await
            .unwrap();
        assert!(matches!(reply, redis::Value::Array(_)), "{reply:?}");
    }
    assert_eq!(
        client.stats().moved,
        moved_before,
        "PFDEBUG routed by its COMMAND INFO key spec"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cross_slot_commands_and_pipelines_answer_in_caller_order() {
    let cluster = Cluster::builder()
        .primaries(3)
        .replicas_per_primary(1)
        .start()
        .await
        .expect("cluster");
    let mut client = shardis_tests::client(cluster.seeds()).await;
    let keys: Vec<String> = (0..200).map(|i| format!("xs:{i}")).collect();
    let slots: std::collections::HashSet<u16> =
        keys.iter().map(|k| key_slot(k.as_bytes())).collect();
    assert!(slots.len() > 100, "the keys must span many slots");

    let pairs: Vec<(String, String)> = keys.iter().map(|k| (k.clone(), format!("v-{k}"))).collect();
    let _: () = client.mset(&pairs).await.expect("cross-slot MSET");
    let mut asked = keys.clone();
    asked.insert(7, "xs:missing".into());
    let values: Vec<Option<String>> = client.mget(&asked).await.expect("cross-slot MGET");
    let expected: Vec<Option<String>> = asked
        .iter()
        .map(|k| {
            if k == "xs:missing" {
                None
            } else {
                Some(format!("v-{k}"))
            }
        })
        .collect();
    assert_eq!(values, expected);

    let exists: i64 = client.exists(&asked).await.expect("cross-slot EXISTS");
    assert_eq!(exists, 200);

    // A non-atomic pipeline over many nodes: replies in order, including a command error.
    let mut pipe = redis::pipe();
    pipe.ignore_errors(); // hand back per-command errors instead of failing the whole pipeline
    for (i, k) in keys.iter().enumerate().take(50) {
        pipe.incr(format!("ctr:{k}"), i as i64);
    }
    pipe.cmd("HGET").arg("xs:0").arg("field"); // WRONGTYPE: xs:0 is a string
    pipe.get("xs:1");
    let replies: Vec<redis::Value> = pipe.query_async(&mut client).await.expect("pipeline");
    for (i, reply) in replies.iter().take(50).enumerate() {
        assert_eq!(
            reply,
            &redis::Value::Int(i as i64),
            "reply {i} out of order"
        );
    }
    assert!(
        matches!(&replies[50], redis::Value::ServerError(e) if e.code() == "WRONGTYPE"),
        "{:?}",
        replies[50]
    );
    assert_eq!(replies[51], redis::Value::BulkString(b"v-xs:1".to_vec()));

    // Atomic pipelines must stay in one slot: same tag works, different slots fail before sending.
    let (a, b): (i64, i64) = redis::pipe()
        .atomic()
        .incr("{tx}a", 1)
        .incr("{tx}b", 2)
        .query_async(&mut client)
        .await
        .expect("transaction");
    assert_eq!((a, b), (1, 2));
    let refused = redis::pipe()
        .atomic()
        .incr("a", 1)
        .incr("b", 1)
        .query_async::<(i64, i64)>(&mut client)
        .await;
    let err = refused.expect_err("cross-slot transaction refused");
    assert!(err.to_string().contains("different slots"), "{err}");
    let untouched: Option<i64> = client.get("a").await.unwrap();
    assert_eq!(untouched, None, "nothing of a refused transaction may run");

    // Other cross-slot commands fail before sending, with a typed error.
    let err = client
        .send(redis::cmd("SUNION").arg("s1").arg("s2"))
        .await
        .expect_err("CROSSSLOT");
    assert!(matches!(err, shardis::Error::CrossSlot { .. }), "{err}");

    let deleted: i64 = client.del(&keys).await.expect("cross-slot DEL");
    assert_eq!(deleted, 200);
    let left: Vec<Option<String>> = client.mget(&keys[..10]).await.unwrap();
    assert!(left.iter().all(Option::is_none));

    // Fan-out helpers reach every primary / node.
    let sizes = client
        .on_all_primaries(&redis::cmd("DBSIZE"))
        .await
        .expect("fan-out");
    assert_eq!(sizes.len(), 3);
    let nodes = client
        .on_all_nodes(&redis::cmd("PING"))
        .await
        .expect("fan-out to all");
    assert_eq!(nodes.len(), 6);
}
