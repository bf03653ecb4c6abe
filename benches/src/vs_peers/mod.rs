//! `vs-peers`: shardis against its peers under the same load, on the same servers, in one run.
//!
//! Cluster workload (3 primaries × 1 replica, started here through the testkit unless
//! `--cluster` is given): shardis, redis-rs `cluster_async`, fred (cluster mode), and
//! `redis-benchmark --cluster` (plain, and with `-P 16` as the pipelined ceiling).
//! The same over TLS (`cluster TLS`: a local cluster with `tls-cluster yes` and certificates
//! generated for the run; shardis, redis-rs and fred, each with rustls and the ring provider;
//! no redis-benchmark).
//! Ring workload (3 standalone nodes): shardis ring mode, redis-rs through twemproxy
//! (`nutcracker`, ketama), and redis-rs to one node directly.
//!
//! For the Rust clients, `concurrency` = tokio tasks sharing one client; each task loops with
//! one command in flight (90% GET / 10% SET of 100-byte values over 100,000 keys by default),
//! recording latency into a per-thread table that becomes one histogram per cell. Cells are
//! interleaved: for each concurrency, every client runs in turn (warm-up, then the measured
//! duration), starting one client further along each round; redis-benchmark runs last in a
//! round (its request count is sized from shardis' rate in that round).
//!
//! ```text
//! cargo run --release -p shardis-benches --bin vs-peers -- --duration 5s
//! ```
//!
//! Each cell also reports the CPU time (user + system) the client spent per command over its
//! measured window, beside ops/s: the cost a service pays for its cache client. The Rust
//! clients share this process, so the reading is this process' (`getrusage`) between the
//! start and the end of the measured window, when only that cell's tasks run (idle clients'
//! background timers and the load loop's own work, the same for every client, are in it);
//! servers are separate processes and not counted. For `redis-benchmark` it is the CPU of
//! its reaped processes; for twemproxy the proxy's own CPU per command is shown beside.
//!
//! Modules, one concept each: [`cli`] (arguments), `peers` (the client adapters), `load` (the
//! load loop of one cell), `latency` (per-thread latency tables), `cpu` (CPU time readings),
//! `external` (redis-benchmark), `workloads` (servers, clients, schedule), `report` (cells,
//! medians, ratios, the table). twemproxy is started by [`shardis_testkit::Twemproxy`].

pub mod cli;
mod cpu;
mod external;
mod latency;
mod load;
mod peers;
mod report;
mod workloads;

pub use cli::Args;

/// Runs the workloads `args` selects and prints the table (or JSON) on stdout; progress and
/// errors go to stderr. Fails when a workload could not run.
pub async fn run(args: &Args) -> std::process::ExitCode {
    let mut cells = Vec::new();
    let mut failed = false;
    if !args.skip_cluster
        && let Err(e) = workloads::cluster_workload(args, &mut cells, false).await
    {
        eprintln!("error: cluster workload: {e}");
        failed = true;
    }
    if !args.skip_tls
        && let Err(e) = workloads::cluster_workload(args, &mut cells, true).await
    {
        eprintln!("error: cluster TLS workload: {e}");
        failed = true;
    }
    if !args.skip_ring
        && let Err(e) = workloads::ring_workload(args, &mut cells).await
    {
        eprintln!("error: ring workload: {e}");
        failed = true;
    }
    let mut cells = report::median_rounds(cells, args.rounds);
    report::fill_ratios(&mut cells);
    if args.json {
        match serde_json::to_string_pretty(&cells) {
            Ok(json) => println!("{json}"),
            Err(e) => {
                eprintln!("error: serialising the results: {e}");
                failed = true;
            }
        }
    } else {
        println!(
            "{} keys, {}-byte values, {:.0}% GET, warm-up {:?}, {:?} per cell",
            args.keys,
            args.value_size,
            args.read_ratio * 100.0,
            args.warmup,
            args.duration
        );
        report::print_table(&cells);
    }
    if failed {
        std::process::ExitCode::FAILURE
    } else {
        std::process::ExitCode::SUCCESS
    }
}
