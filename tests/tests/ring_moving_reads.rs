//! While a rebalance moves keys, every read command on a moving key sees one owner (issue 12,
//! finding 8): GET, EXISTS, TTL, TYPE and STRLEN agree on 200 keys not yet moved by the
//! rebalancer, whichever command touches a key first.

use redis::AsyncCommands;
use shardis::ring::Ring;
use shardis::{RebalanceOptions, RingNode};
use shardis_testkit::Standalone;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_commands_on_moving_keys_agree() {
    let fleet = Standalone::start(3).await.expect("3 standalone nodes");
    let names = ["m0", "m1", "m2"];
    let nodes = (0..2).map(|i| RingNode::new(names[i], fleet.nodes()[i].addr(), 1));
    let mut client = shardis::Client::builder()
        .ring(nodes)
        // Slow enough that the keys below are still on their old owner when read.
        .ring_rebalance(RebalanceOptions::new().keys_per_second(1))
        .build()
        .await
        .expect("ring client");
    let before = Ring::new(names[..2].iter().map(|n| (*n, 1))).expect("old ring");
    let after = before.with_node("m2", 1).expect("new ring");
    let moving: Vec<String> = (0..5000)
        .map(|i| format!("mv:{i}"))
        .filter(|k| before.get(k.as_bytes()).name() != after.get(k.as_bytes()).name())
        .take(200)
        .collect();
    assert_eq!(moving.len(), 200);
    for (i, key) in moving.iter().enumerate() {
        let _: () = client.set_ex(key, "x".repeat(i + 1), 1000).await.unwrap();
    }
    let change = client
        .add_node(RingNode::new("m2", fleet.nodes()[2].addr(), 1))
        .await
        .expect("add node");
    assert!(change.rebalance.is_some());

    let mut disagree = Vec::new();
    for (i, key) in moving.iter().enumerate() {
        let len = i as i64 + 1;
        // Half the keys are first touched by GET, half by EXISTS.
        let get_first = i % 2 == 0;
        let mut get: Option<String> = None;
        if get_first {
            get = client.get(key).await.unwrap();
        }
        let exists: i64 = client.exists(key).await.unwrap();
        let ttl: i64 = client.ttl(key).await.unwrap();
        let kind: String = redis::cmd("TYPE")
            .arg(key)
            .query_async(&mut client)
            .await
            .unwrap();
        let strlen: i64 = client.strlen(key).await.unwrap();
        if !get_first {
            get = client.get(key).await.unwrap();
        }
        let agree = get.as_ref().map(|v| v.len() as i64) == Some(len)
            && exists == 1
            && ttl > 900
            && kind == "string"
            && strlen == len;
        if !agree {
            disagree.push(format!(
                "{key}: GET {:?} EXISTS {exists} TTL {ttl} TYPE {kind} STRLEN {strlen}",
                get.map(|v| v.len())
            ));
        }
    }
    assert!(
        disagree.is_empty(),
        "{} of 200 moving keys answered inconsistently, e.g. {:?}",
        disagree.len(),
        &disagree[..disagree.len().min(3)]
    );
}
