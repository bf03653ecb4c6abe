//! `shardis locate`: which slot and node keys go to, in a cluster or on a ring.

use std::process::ExitCode;

use serde::Serialize;
use shardis::slots::{Node, key_slot};

use crate::error::{Result, bail};
use crate::nodes::{AuthArgs, connect_cluster, keys_from_args_or_stdin, parse_ring_nodes};
use crate::output::Table;
use crate::ring::{PlacementArgs, SimRing};

/// Options of `shardis locate`.
#[derive(clap::Args, Debug)]
#[command(after_help = "Examples:\n  \
    shardis locate --cluster 127.0.0.1:7000 user:42 '{user:42}:cart'\n  \
    cat keys.txt | shardis locate --cluster 127.0.0.1:7000 --json\n  \
    shardis locate --ring --nodes cache-a:6379,cache-b:6379=2 user:42\n  \
    shardis locate --ring --ketama --nodes 10.0.0.1:6379,10.0.0.2:6379 user:42\n  \
    shardis locate --ring --hash md5 --hash-tag '{}' --nodes cache-a,cache-b 'user:{42}:cart'\n  \
    shardis locate --nutcracker-config /etc/nutcracker.yml --pool alpha user:42\n  \
    REDISCLI_AUTH=secret shardis locate --cluster 10.0.0.1:7000 --user app user:42\n  \
    shardis locate --cluster redis://app:secret@10.0.0.1:7000 user:42")]
pub struct LocateArgs {
    /// A node of the cluster to ask for its slot map: HOST:PORT or redis://[user:pass@]host:port.
    #[arg(long, value_name = "HOST:PORT|URL", conflicts_with = "ring")]
    cluster: Option<String>,
    /// Place keys on a ring of --nodes (or a nutcracker pool) instead (computed locally;
    /// nothing is contacted).
    #[arg(long)]
    ring: bool,
    /// Ring nodes: NAME[=WEIGHT], comma-separated (the name is what the ring hashes; for
    /// ketama, HOST:PORT is a twemproxy server without a name).
    #[arg(long, value_name = "NAME[=W],...")]
    nodes: Vec<String>,
    #[command(flatten)]
    placement: PlacementArgs,
    #[command(flatten)]
    auth: AuthArgs,
    /// Print JSON (one array) instead of a table.
    #[arg(long)]
    json: bool,
    /// Keys; read from stdin, one per line, when none are given.
    keys: Vec<String>,
}

#[derive(Serialize)]
struct ClusterPlacement {
    key: String,
    slot: u16,
    primary: Option<String>,
    primary_id: Option<String>,
    replicas: Vec<String>,
}

#[derive(Serialize)]
struct RingPlacement {
    key: String,
    hash: u64,
    node: String,
}

fn addr(node: &Node) -> String {
    node.endpoint
        .as_ref()
        .map_or_else(|| "?".to_string(), ToString::to_string)
}

pub async fn run(args: LocateArgs) -> Result<ExitCode> {
    let (placement, from_pool) = args.placement.resolve()?;
    if args.ring || from_pool.is_some() {
        let entries = match from_pool {
            Some(entries) => entries,
            None => parse_ring_nodes(&args.nodes)?,
        };
        let ring = SimRing::build(&entries, &placement)?;
        let keys = keys_from_args_or_stdin(&args.keys)?;
        let out: Vec<RingPlacement> = keys
            .into_iter()
            .map(|key| {
                let (node, hash) = ring.locate(key.as_bytes());
                RingPlacement { key, hash, node }
            })
            .collect();
        if args.json {
            crate::output::print_json(&out)?;
        } else {
            let mut t = Table::new(["key", "hash", "node"]);
            for p in &out {
                t.row([p.key.clone(), format!("{:#x}", p.hash), p.node.clone()]);
            }
            print!("{}", t.render());
        }
        return Ok(ExitCode::SUCCESS);
    }
    let Some(seed) = &args.cluster else {
        bail!("say where the keys live: --cluster HOST:PORT, or --ring --nodes NAME,NAME");
    };
    if !args.nodes.is_empty() {
        bail!("--nodes goes with --ring; for a cluster give --cluster HOST:PORT only");
    }
    let keys = keys_from_args_or_stdin(&args.keys)?;
    let client = connect_cluster(seed, &args.auth).await?;
    let topology = client.topology();
    let out: Vec<ClusterPlacement> = keys
        .into_iter()
        .map(|key| {
            let slot = key_slot(key.as_bytes());
            let shard = topology
                .shard_index_for_slot(slot)
                .map(|i| &topology.shards()[i]);
            ClusterPlacement {
                key,
                slot,
                primary: shard.map(|s| addr(&s.primary)),
                primary_id: shard.and_then(|s| s.primary.id.clone()),
                replicas: shard
                    .map(|s| s.replicas.iter().map(addr).collect())
                    .unwrap_or_default(),
            }
        })
        .collect();
    if args.json {
        crate::output::print_json(&out)?;
    } else {
        let mut t = Table::new(["key", "slot", "primary", "replicas"]);
        for p in &out {
            t.row([
                p.key.clone(),
                p.slot.to_string(),
                p.primary.clone().unwrap_or_else(|| "(unassigned)".into()),
                if p.replicas.is_empty() {
                    "-".into()
                } else {
                    p.replicas.join(",")
                },
            ]);
        }
        print!("{}", t.render());
    }
    Ok(ExitCode::SUCCESS)
}
