//! The two workloads and their schedule: which servers, which clients, in which order.

use super::cli::Args;
use super::external::run_redis_benchmark;
use super::load::{preload, run_rust};
use super::peers::{Peer, connect_fred, connect_plain, connect_redis_cluster};
use super::report::Cell;

/// The cluster workload: shardis, redis-rs `cluster_async`, fred and redis-benchmark against
/// one cluster (started here unless `--cluster` names one). With `tls`, a local cluster that
/// speaks TLS only to clients (certificates generated for the run), without redis-benchmark.
pub(crate) async fn cluster_workload(
    args: &Args,
    cells: &mut Vec<Cell>,
    tls: bool,
) -> Result<(), String> {
    let _cluster;
    let certs = if tls {
        Some(shardis_testkit::TlsCerts::generate().map_err(|e| e.to_string())?)
    } else {
        None
    };
    let workload = if tls { "cluster TLS" } else { "cluster" };
    let seeds: Vec<String> = match (&args.cluster, &certs) {
        (Some(addr), None) => vec![addr.clone()],
        _ => {
            eprintln!("starting a local {workload}: 3 primaries × 1 replica ...");
            let mut builder = shardis_testkit::Cluster::builder()
                .primaries(3)
                .replicas_per_primary(1);
            if let Some(certs) = &certs {
                builder = builder.tls(certs);
            }
            let c = builder
                .start()
                .await
                .map_err(|e| format!("cannot start a local cluster: {e}"))?;
            let seeds = if tls { c.tls_addrs() } else { c.seeds() };
            _cluster = c;
            seeds
        }
    };
    let (host, port) = {
        let first = seeds.first().ok_or("no seed node")?;
        let e = shardis::slots::Endpoint::parse(first).map_err(|e| e.to_string())?;
        (e.host, e.port)
    };
    let ca = certs.as_ref().map(|c| c.ca_pem());
    let mut builder = shardis::Client::builder().cluster(seeds.clone());
    if let Some(ca) = ca {
        builder = builder.tls(shardis::TlsOptions::new().ca_pem(ca));
    }
    let shardis = builder.build().await.map_err(|e| format!("shardis: {e}"))?;
    let redis_rs = connect_redis_cluster(&seeds, ca).await?;
    let fred = connect_fred(&host, port, ca).await?;
    eprintln!("preloading {} keys ...", args.keys);
    preload(&shardis, args).await?;
    let peers = [
        ("shardis", Peer::Shardis(shardis), None),
        ("redis-rs cluster_async", Peer::RedisCluster(redis_rs), None),
        ("fred", Peer::Fred(fred), None),
    ];
    for round in 0..args.rounds.max(1) {
        for &c in &args.concurrency {
            let mut shardis_rate = 0.0;
            for (name, peer, proxy) in in_turn(&peers, round).filter(|p| args.wants(p.0)) {
                eprintln!("round {}: {workload} c={c}: {name} ...", round + 1);
                let cell = run_rust(workload, name, peer, *proxy, c, args).await;
                if *name == "shardis" {
                    shardis_rate = cell.ops_per_sec;
                }
                cells.push(cell);
            }
            if !tls && !args.skip_redis_benchmark && args.wants("redis-benchmark") {
                for pipeline in [1, 16] {
                    eprintln!("cluster c={c}: redis-benchmark -P {pipeline} ...");
                    let est = (shardis_rate * if pipeline > 1 { 6.0 } else { 1.5 }).max(20_000.0);
                    cells.push(run_redis_benchmark(&host, port, c, pipeline, est, args).await);
                }
            }
        }
    }
    Ok(())
}

/// The ring workload: shardis ring mode, redis-rs through twemproxy, and redis-rs to one
/// node directly, over 3 standalone nodes.
pub(crate) async fn ring_workload(args: &Args, cells: &mut Vec<Cell>) -> Result<(), String> {
    eprintln!("starting 3 standalone nodes and twemproxy ...");
    let nodes = shardis_testkit::Standalone::start(3)
        .await
        .map_err(|e| format!("cannot start standalone nodes: {e}"))?;
    let addrs = nodes.addrs();
    let mut proxy = shardis_testkit::Twemproxy::builder();
    for addr in &addrs {
        proxy = proxy.server(addr.clone(), 1);
    }
    if let Some(bin) = &args.nutcracker {
        proxy = proxy.nutcracker(bin);
    }
    let twemproxy = proxy
        .start()
        .await
        .map_err(|e| format!("cannot start twemproxy: {e}"))?;
    let shardis = shardis::Client::builder()
        .ring(addrs.iter().map(|a| shardis::RingNode::at(a.clone())))
        .build()
        .await
        .map_err(|e| format!("shardis ring mode: {e}"))?;
    let via_proxy = connect_plain(&twemproxy.addr()).await?;
    let direct = connect_plain(addrs.first().ok_or("no standalone node")?).await?;
    eprintln!("preloading {} keys (through each path) ...", args.keys);
    preload(&shardis, args).await?;
    preload(&via_proxy, args).await?;
    preload(&direct, args).await?;
    let peers = [
        ("shardis ring", Peer::Shardis(shardis), None),
        (
            "redis-rs via twemproxy",
            Peer::Multiplexed(via_proxy),
            Some(twemproxy.pid()),
        ),
        ("redis-rs direct (1 node)", Peer::Multiplexed(direct), None),
    ];
    for round in 0..args.rounds.max(1) {
        for &c in &args.concurrency {
            for (name, peer, proxy) in in_turn(&peers, round).filter(|p| args.wants(p.0)) {
                eprintln!("round {}: ring c={c}: {name} ...", round + 1);
                cells.push(run_rust("ring", name, peer, *proxy, c, args).await);
            }
        }
    }
    drop(twemproxy);
    Ok(())
}

/// The clients of one round, starting one further along each round: every client gets every
/// place in the order, so none always runs right after the same (heavier or lighter) neighbour.
fn in_turn<T>(peers: &[T], round: usize) -> impl Iterator<Item = &T> {
    let n = peers.len().max(1);
    (0..peers.len()).filter_map(move |k| peers.get((k + round) % n))
}

#[cfg(test)]
mod tests {
    use super::in_turn;

    #[test]
    fn each_round_starts_with_the_next_client() {
        let peers = ["a", "b", "c"];
        let order = |round| in_turn(&peers, round).copied().collect::<Vec<_>>();
        assert_eq!(order(0), ["a", "b", "c"]);
        assert_eq!(order(1), ["b", "c", "a"]);
        assert_eq!(order(3), ["a", "b", "c"]);
    }
}
