//! Automatic L1 warming from the fleet's hot ids (`Builder::hot_ids`) against a real
//! redis-server, with two caches on their own clients standing in for two processes: A reads
//! a few ids many times and publishes them on its own; B, started afterwards, has them in its
//! L1 before its first read of them, without calling anything.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use shardis::RingNode;
use shardis_cache::{Cache, Error, HotIds, L1Options, Source};
use shardis_testkit::Standalone;

mod support;

use support::until;

const NAMESPACE: &str = "hot";
const HOT: [&str; 3] = ["h1", "h2", "h3"];

async fn client(nodes: &Standalone) -> shardis::Client {
    shardis::Client::builder()
        .ring([RingNode::new("a", nodes.nodes()[0].addr(), 1)])
        .build()
        .await
        .expect("client")
}

fn cache(client: shardis::Client, hot: HotIds) -> Cache<u64> {
    Cache::<u64>::builder(client)
        .namespace(NAMESPACE)
        .ttl(Duration::from_secs(600))
        .early_refresh(None)
        .l1(L1Options::default())
        .hot_ids(hot)
        .build()
        .expect("cache")
}

fn value_of(id: &str) -> u64 {
    id.bytes().map(u64::from).sum()
}

/// A read with a loader that counts its calls.
async fn read(cache: &Cache<u64>, id: &str, loads: &Arc<AtomicUsize>) -> (u64, Source) {
    let loads = loads.clone();
    let value = value_of(id);
    let f = cache
        .fetch(id, move || async move {
            loads.fetch_add(1, Ordering::SeqCst);
            Ok::<_, std::io::Error>(Some(value))
        })
        .await
        .expect("read");
    (f.value.expect("a value"), f.source)
}

/// The namespace's hot set in Redis, hottest first.
async fn hot_set(nodes: &Standalone) -> Vec<String> {
    let mut conn = nodes
        .connection(&nodes.nodes()[0])
        .await
        .expect("connection");
    redis::cmd("ZRANGE")
        .arg(format!("{{shardis-cache:hot:{NAMESPACE}}}"))
        .arg(0)
        .arg(-1)
        .arg("REV")
        .query_async(&mut conn)
        .await
        .expect("ZRANGE")
}

async fn evals(nodes: &Standalone) -> u64 {
    let stats: HashMap<String, u64> = nodes
        .commandstats(&nodes.nodes()[0])
        .await
        .expect("commandstats");
    stats.get("eval").copied().unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_process_warms_its_l1_from_what_the_fleet_reads_most() {
    let nodes = Standalone::start(1).await.expect("node");
    let a = cache(
        client(&nodes).await,
        HotIds {
            publish_every: Duration::from_millis(200),
            warm_top: 0,
        },
    );
    until("A's L1", async || a.l1_active()).await;

    // A reads the hot ids many times and many other ids once each, until its publications
    // made them the top of the hot set.
    let a_loads = Arc::new(AtomicUsize::new(0));
    let mut cold = 0u64;
    until("A's hot ids at the top of the hot set", async || {
        for _ in 0..200 {
            for id in HOT {
                read(&a, id, &a_loads).await;
            }
            cold += 1;
            read(&a, &format!("cold:{cold}"), &a_loads).await;
        }
        let set = hot_set(&nodes).await;
        set.len() >= HOT.len()
            && HOT
                .iter()
                .all(|id| set[..HOT.len()].contains(&id.to_string()))
    })
    .await;
    assert!(a.stats().hot_ids_published >= HOT.len() as u64);
    assert_eq!(a.stats().hot_publish_failures, 0);
    assert!(
        !hot_set(&nodes)
            .await
            .iter()
            .any(|id| id.starts_with("cold:")),
        "ids read once are not published"
    );

    // A keeps publishing while it lives; once it is dropped, its task ends.
    let published = evals(&nodes).await;
    until("another publication", async || {
        evals(&nodes).await > published
    })
    .await;
    drop(a);
    // Stopped: no publication over a second (5 intervals), tried until it holds (a publication
    // under way when the cache went may still finish).
    until("no more publications", async || {
        let before = evals(&nodes).await;
        tokio::time::sleep(Duration::from_secs(1)).await;
        evals(&nodes).await == before
    })
    .await;

    // B starts, warms itself, and serves A's hot ids from L1 on its first reads.
    let b = cache(
        client(&nodes).await,
        HotIds {
            publish_every: Duration::from_millis(200),
            warm_top: HOT.len(),
        },
    );
    until("B's warming", async || {
        b.stats().l1_warmed >= HOT.len() as u64
    })
    .await;
    assert_eq!(b.stats().l1_warmed, HOT.len() as u64);
    let b_loads = Arc::new(AtomicUsize::new(0));
    for id in HOT {
        assert_eq!(read(&b, id, &b_loads).await, (value_of(id), Source::Local));
    }
    assert_eq!(b_loads.load(Ordering::SeqCst), 0, "B's loader never ran");
    // An id A read once is not warmed.
    assert_ne!(read(&b, "cold:1", &b_loads).await.1, Source::Local);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hot_ids_without_l1_is_a_configuration_error() {
    let nodes = Standalone::start(1).await.expect("node");
    let built = Cache::<u64>::builder(client(&nodes).await)
        .namespace(NAMESPACE)
        .hot_ids(HotIds::default())
        .build();
    match built {
        Err(Error::Config(why)) => assert!(why.contains("Builder::l1"), "{why}"),
        other => panic!("expected a configuration error, got {other:?}"),
    }
    let zero = Cache::<u64>::builder(client(&nodes).await)
        .l1(L1Options::default())
        .hot_ids(HotIds {
            publish_every: Duration::ZERO,
            warm_top: 1,
        })
        .build();
    assert!(matches!(zero, Err(Error::Config(_))), "{zero:?}");
}
