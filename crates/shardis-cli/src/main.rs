//! `shardis`: see a sharded Redis cache at work, ask where keys live, check a cluster's slot
//! map, simulate a ring, and measure shardis against a cluster or a ring.
//!
//! Every command prints one line a person can act on when it fails (`error: ...`) and exits
//! non-zero; `--help` of each command ends with examples.

mod bench;
mod demo;
mod error;
mod failover_scene;
mod locate;
mod nodes;
mod nutcracker;
mod output;
mod ring;
mod stampede;
mod stats;
mod topology;
mod workload;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::error::CliError;

#[derive(Parser, Debug)]
#[command(
    name = "shardis",
    version,
    about = "A sharded Redis cache client: demo, key placement, topology checks, ring simulation, benchmarks",
    after_help = "Examples:\n  \
        shardis demo                                   # local cluster, live reshard + failover\n  \
        shardis locate --cluster 127.0.0.1:7000 user:42\n  \
        shardis topology --cluster 127.0.0.1:7000\n  \
        shardis ring --nodes 5 --vnodes 160 --plot shares.svg\n  \
        shardis bench --concurrency 64 --duration 10"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run a mixed workload through shardis while a slot range moves and a primary fails over.
    Demo(demo::DemoArgs),
    /// Show which slot and node (or ring node) keys go to.
    Locate(locate::LocateArgs),
    /// Show a cluster's shards, slot ranges and nodes, and whether all nodes agree.
    Topology(topology::TopologyArgs),
    /// Simulate a consistent-hash ring: shares per node and keys moved by a change.
    Ring(ring::RingArgs),
    /// Measure shardis (ops/s, latency percentiles) against a cluster or a ring.
    Bench(bench::BenchArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            return fail(&CliError::new(format!(
                "cannot start the async runtime: {e}"
            )));
        }
    };
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Demo(args) => demo::run(args).await,
            Command::Locate(args) => locate::run(args).await,
            Command::Topology(args) => topology::run(args).await,
            Command::Ring(args) => ring::run(args),
            Command::Bench(args) => bench::run(args).await,
        }
    });
    // Tasks still running (a workload cut short by an error) must not hold the exit.
    runtime.shutdown_timeout(std::time::Duration::from_millis(200));
    match result {
        Ok(code) => code,
        Err(e) => fail(&e),
    }
}

fn fail(e: &CliError) -> ExitCode {
    eprintln!("error: {e}");
    ExitCode::FAILURE
}
