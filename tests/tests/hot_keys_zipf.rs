//! Zipf(1.2) reads over 100,000 keys: without spreading the busiest shard serves about twice
//! the mean; with hot-key spreading max/mean stays within 1.10 — on a 6-primary cluster and
//! on a 4-node ring. Load is counted by the servers (`keyspace_hits + keyspace_misses`).

use rand::SeedableRng;
use rand::rngs::StdRng;
use rand_distr::{Distribution, Zipf};
use shardis::{HotKeyOptions, RingNode};
use shardis_testkit::{Cluster, Node, Standalone};

const KEYS: u64 = 100_000;
const READS: usize = 60_000;

/// The same Zipf(1.2) stream for every run (seeded), split over 32 tasks.
fn stream() -> Vec<u64> {
    let zipf = Zipf::new(KEYS as f64, 1.2).unwrap();
    let mut rng = StdRng::seed_from_u64(7);
    (0..READS).map(|_| zipf.sample(&mut rng) as u64).collect()
}

async fn populate(client: &mut shardis::Client) {
    for chunk in (1..=KEYS).collect::<Vec<_>>().chunks(2000) {
        let mut pipe = redis::pipe();
        for k in chunk {
            pipe.set(format!("z:{k}"), "v").ignore();
        }
        let () = pipe.query_async(client).await.expect("populate");
    }
}

async fn read_stream(client: &shardis::Client, keys: &[u64]) {
    let tasks = keys.chunks(keys.len() / 32 + 1).map(|part| {
        let mut c = client.clone();
        let part = part.to_vec();
        async move {
            for k in part {
                let _: Option<String> = redis::AsyncCommands::get(&mut c, format!("z:{k}"))
                    .await
                    .expect("read");
            }
        }
    });
    futures::future::join_all(tasks).await;
}

/// Resets, reads the stream, and returns max/mean of the per-node reads the servers counted.
async fn measured(
    nodes: &[Node],
    info: impl AsyncFn(&Node) -> std::collections::HashMap<String, String>,
    reset: impl AsyncFn(&Node),
    client: &shardis::Client,
    keys: &[u64],
) -> (f64, Vec<u64>) {
    for n in nodes {
        reset(n).await;
    }
    read_stream(client, keys).await;
    let mut loads = Vec::new();
    for n in nodes {
        let stats = info(n).await;
        let get = |k: &str| {
            stats
                .get(k)
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0)
        };
        loads.push(get("keyspace_hits") + get("keyspace_misses"));
    }
    let mean = loads.iter().sum::<u64>() as f64 / loads.len() as f64;
    (*loads.iter().max().unwrap() as f64 / mean, loads)
}

fn spreading() -> HotKeyOptions {
    // Hot at 0.5% of reads: with Zipf(1.2) that is the top ~20 keys.
    HotKeyOptions::default().detector(shardis::DetectorConfig::default().with_hot_share(0.005))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zipf_reads_are_balanced_on_a_six_primary_cluster() {
    let cluster = Cluster::builder()
        .primaries(6)
        .replicas_per_primary(0)
        .start()
        .await
        .expect("cluster");
    let nodes = cluster.primaries().await.unwrap();
    let info = async |n: &Node| cluster.info(n, "stats").await.unwrap();
    let reset = async |n: &Node| cluster.config_resetstat(n).await.unwrap();
    let keys = stream();

    let mut plain = shardis_tests::client(cluster.seeds()).await;
    populate(&mut plain).await;
    let (baseline, base_loads) = measured(&nodes, info, reset, &plain, &keys).await;

    let spread = shardis::Client::builder()
        .cluster(cluster.seeds())
        .hot_keys(spreading())
        .build()
        .await
        .unwrap();
    read_stream(&spread, &keys[..20_000]).await; // detection and copy fill
    let (ratio, loads) = measured(&nodes, info, reset, &spread, &keys).await;
    eprintln!(
        "zipf cluster: baseline {baseline:.3} {base_loads:?}; spread {ratio:.3} {loads:?}; hot {}",
        spread.hot_keys().len()
    );
    assert!(baseline > 1.3, "the baseline must be skewed: {baseline:.3}");
    assert!(
        ratio <= 1.10,
        "max/mean {ratio:.3} with spreading (baseline {baseline:.3})"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zipf_reads_are_balanced_on_a_four_node_ring() {
    let fleet = Standalone::start(4).await.expect("nodes");
    let nodes = fleet.nodes().to_vec();
    let ring: Vec<RingNode> = nodes
        .iter()
        .enumerate()
        .map(|(i, n)| RingNode::new(format!("node{i}"), n.addr(), 1))
        .collect();
    let info = async |n: &Node| fleet.info(n, "stats").await.unwrap();
    let reset = async |n: &Node| fleet.config_resetstat(n).await.unwrap();
    let keys = stream();

    let mut plain = shardis::Client::builder()
        .ring(ring.clone())
        .build()
        .await
        .unwrap();
    populate(&mut plain).await;
    let (baseline, base_loads) = measured(&nodes, info, reset, &plain, &keys).await;

    let spread = shardis::Client::builder()
        .ring(ring)
        .hot_keys(spreading())
        .build()
        .await
        .unwrap();
    read_stream(&spread, &keys[..20_000]).await;
    let (ratio, loads) = measured(&nodes, info, reset, &spread, &keys).await;
    eprintln!(
        "zipf ring: baseline {baseline:.3} {base_loads:?}; spread {ratio:.3} {loads:?}; hot {}",
        spread.hot_keys().len()
    );
    assert!(baseline > 1.2, "the baseline must be skewed: {baseline:.3}");
    assert!(
        ratio <= 1.10,
        "max/mean {ratio:.3} with spreading (baseline {baseline:.3})"
    );
}
