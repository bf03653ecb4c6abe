//! `shardis bench`: measures shardis itself (ops/s, latency percentiles) against the embedded
//! local cluster, an existing cluster, or a ring of standalone nodes.

use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;
use shardis::{RingNode, RingPlacement};

use crate::error::{CliError, Result, bail};
use crate::nodes::{
    connect_cluster, parse_addr, parse_ring_nodes, start_cluster, start_standalone,
};
use crate::output::{Table, ms, thousands};
use crate::stats::Summary;
use crate::workload::{self, Live, Spec, parse_duration};

/// Options of `shardis bench`.
#[derive(clap::Args, Debug)]
#[command(after_help = "Examples:\n  \
    shardis bench                                          # local 3×1 cluster, c=64, 10 s\n  \
    shardis bench -c 1,64,256 --duration 5s --json\n  \
    shardis bench --cluster 127.0.0.1:7000 --zipf 0.99 --read-ratio 0.95\n  \
    shardis bench --zipf 1.2 --hot-keys                     # per-shard load with and without spreading\n  \
    shardis bench --ring                                   # 3 local standalone nodes\n  \
    shardis bench --ring --nodes 10.0.0.1:6379,10.0.0.2:6379 --ketama")]
pub struct BenchArgs {
    /// Benchmark this existing cluster (keys under --prefix are removed afterwards):
    /// HOST:PORT or redis://[user:pass@]host:port.
    #[arg(long, value_name = "HOST:PORT|URL", conflicts_with = "ring")]
    cluster: Option<String>,
    #[command(flatten)]
    auth: crate::nodes::AuthArgs,
    /// Ring mode: --nodes, or 3 local standalone nodes started for the run.
    #[arg(long)]
    ring: bool,
    /// Ring nodes (with --ring): HOST:PORT[=WEIGHT], comma-separated.
    #[arg(long, value_name = "HOST:PORT[=W],...", requires = "ring")]
    nodes: Vec<String>,
    /// twemproxy-compatible ketama placement (with --ring).
    #[arg(long, requires = "ring")]
    ketama: bool,
    /// Size of the key space.
    #[arg(long, default_value_t = 100_000)]
    keys: u64,
    /// Bytes per value.
    #[arg(long, default_value_t = 100)]
    value_size: usize,
    /// Fraction of commands that are GET (the rest SET).
    #[arg(long, default_value_t = 0.9)]
    read_ratio: f64,
    /// Tasks sharing one client, each with one command in flight; several values run in turn.
    #[arg(long, short = 'c', value_delimiter = ',', default_value = "64")]
    concurrency: Vec<usize>,
    /// Measured time per concurrency level.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    duration: Duration,
    /// Unmeasured warm-up before each measurement.
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    warmup: Duration,
    /// Zipf exponent of key popularity (e.g. 0.99); uniform when absent.
    #[arg(long)]
    zipf: Option<f64>,
    /// Also run each level with hot-key spreading, and print the per-shard load the servers
    /// counted (keyspace hits + misses) without and with it.
    #[arg(long)]
    hot_keys: bool,
    /// Key prefix (default: shardis-bench:<random>:).
    #[arg(long)]
    prefix: Option<String>,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
struct Row {
    concurrency: usize,
    #[serde(flatten)]
    summary: Summary,
}

#[derive(Serialize)]
struct Report {
    target: String,
    keys: u64,
    value_size: usize,
    read_ratio: f64,
    zipf: Option<f64>,
    duration_secs: f64,
    results: Vec<Row>,
}

pub async fn run(args: BenchArgs) -> Result<ExitCode> {
    let prefix = args
        .prefix
        .clone()
        .unwrap_or_else(|| format!("shardis-bench:{:08x}:", rand::random::<u32>()));
    for &c in &args.concurrency {
        Spec {
            prefix: prefix.clone(),
            keys: args.keys,
            value_size: args.value_size,
            read_ratio: args.read_ratio,
            concurrency: c,
            zipf: args.zipf,
        }
        .validate()?;
    }
    let say = |msg: String| {
        if !args.json {
            println!("{msg}");
        }
    };

    // Keep what we start alive for the whole run.
    let mut _cluster = None;
    let mut _standalone = None;
    let mut spread_builder = shardis::Client::builder().hot_keys(shardis::HotKeyOptions::default());
    let (client, target, external) = if args.ring {
        let addrs: Vec<(String, u32)> = if args.nodes.is_empty() {
            say("starting 3 local standalone redis-server nodes ...".into());
            let s = start_standalone(3).await?;
            let addrs = s.addrs().into_iter().map(|a| (a, 1)).collect();
            _standalone = Some(s);
            addrs
        } else {
            let entries = parse_ring_nodes(&args.nodes)?;
            for e in &entries {
                parse_addr(&e.name)?;
            }
            entries.into_iter().map(|e| (e.name, e.weight)).collect()
        };
        let placement = if args.ketama {
            RingPlacement::Ketama(shardis::ring::KetamaFlavor::Twemproxy)
        } else {
            RingPlacement::Native
        };
        let client = args
            .auth
            .apply(shardis::Client::builder())
            .ring(
                addrs
                    .iter()
                    .map(|(a, w)| RingNode::new(a.clone(), a.clone(), *w)),
            )
            .ring_placement(placement)
            .build()
            .await
            .map_err(|e| CliError::new(format!("cannot use the ring: {e}")))?;
        spread_builder = spread_builder
            .ring(
                addrs
                    .iter()
                    .map(|(a, w)| RingNode::new(a.clone(), a.clone(), *w)),
            )
            .ring_placement(placement);
        let names: Vec<&str> = addrs.iter().map(|(a, _)| a.as_str()).collect();
        (
            client,
            format!("ring {}", names.join(",")),
            !args.nodes.is_empty(),
        )
    } else if let Some(addr) = &args.cluster {
        spread_builder = args
            .auth
            .apply(spread_builder.cluster([crate::nodes::seed(addr)?]));
        (
            connect_cluster(addr, &args.auth).await?,
            format!("cluster {addr}"),
            true,
        )
    } else {
        say("starting a local Redis Cluster: 3 primaries × 1 replica ...".into());
        let c = start_cluster(3, 1).await?;
        let client = connect_cluster(&c.seeds()[0], &Default::default()).await?;
        spread_builder = spread_builder.cluster(c.seeds());
        _cluster = Some(c);
        (
            client,
            "local cluster (3 primaries × 1 replica)".to_string(),
            false,
        )
    };

    let base = Spec {
        prefix,
        keys: args.keys,
        value_size: args.value_size,
        read_ratio: args.read_ratio,
        concurrency: 1,
        zipf: args.zipf,
    };
    say(format!(
        "preloading {} keys ...",
        thousands(args.keys.min(1_000_000))
    ));
    workload::preload(&client, &base, 1_000_000).await?;

    let spread = if args.hot_keys {
        Some(
            spread_builder
                .build()
                .await
                .map_err(|e| CliError::new(format!("cannot build the spreading client: {e}")))?,
        )
    } else {
        None
    };
    let mut rows = Vec::new();
    let mut loads = Vec::new();
    for &c in &args.concurrency {
        let spec = Arc::new(Spec {
            concurrency: c,
            ..base.clone()
        });
        reset_stats(&client).await?;
        let summary = measure(&client, &spec, args.warmup, args.duration, args.json).await?;
        let plain_load = shard_loads(&client).await?;
        rows.push(Row {
            concurrency: c,
            summary,
        });
        if let Some(spread) = &spread {
            reset_stats(spread).await?;
            let summary = measure(spread, &spec, args.warmup, args.duration, args.json).await?;
            let spread_load = shard_loads(spread).await?;
            loads.push((c, plain_load, spread_load, summary.ops_per_sec));
        }
    }
    if external {
        workload::cleanup(&client, &base).await?;
    }

    let errors: u64 = rows.iter().map(|r| r.summary.errors).sum();
    if args.json {
        let report = Report {
            target,
            keys: args.keys,
            value_size: args.value_size,
            read_ratio: args.read_ratio,
            zipf: args.zipf,
            duration_secs: args.duration.as_secs_f64(),
            results: rows,
        };
        crate::output::print_json(&report)?;
    } else {
        println!(
            "\n{target}: {} keys, {}-byte values, {:.0}% GET, {}, {:.0} s per level",
            thousands(args.keys),
            args.value_size,
            args.read_ratio * 100.0,
            args.zipf
                .map_or("uniform keys".to_string(), |s| format!("Zipf s={s}")),
            args.duration.as_secs_f64()
        );
        let mut t = Table::new([
            "concurrency",
            "ops/s",
            "p50 ms",
            "p90 ms",
            "p99 ms",
            "p99.9 ms",
            "max ms",
            "errors",
        ]);
        for r in &rows {
            let s = &r.summary;
            t.row([
                r.concurrency.to_string(),
                thousands(s.ops_per_sec as u64),
                ms(s.p50_us),
                ms(s.p90_us),
                ms(s.p99_us),
                ms(s.p999_us),
                ms(s.max_us),
                s.errors.to_string(),
            ]);
        }
        print!("{}", t.render());
        for (c, plain, spread, ops) in &loads {
            println!(
                "\nper-shard reads counted by the servers (warm-up included), c={c}; with spreading: {} ops/s",
                thousands(*ops as u64)
            );
            let mut t = Table::new(["node", "without spreading", "with spreading"]);
            for ((node, a), (_, b)) in plain.iter().zip(spread) {
                t.row([node.clone(), thousands(*a), thousands(*b)]);
            }
            t.row([
                "max/mean".to_string(),
                format!("{:.3}", max_over_mean(plain)),
                format!("{:.3}", max_over_mean(spread)),
            ]);
            print!("{}", t.render());
        }
    }
    if errors > 0 {
        bail!("{errors} commands failed during the benchmark");
    }
    Ok(ExitCode::SUCCESS)
}

/// Warm-up, then a measured run with a progress bar (on a terminal).
async fn measure(
    client: &shardis::Client,
    spec: &Arc<Spec>,
    warmup: Duration,
    duration: Duration,
    quiet: bool,
) -> Result<Summary> {
    let live = Live::new(spec.concurrency);
    let handles = workload::spawn(client, spec, &live)?;
    tokio::time::sleep(warmup).await;
    // Discard warm-up latencies: the tasks' own totals include them, so measure with windows.
    let _ = live.take_window();
    let errors_before = live.errors.load(Ordering::Relaxed);
    let started = Instant::now();
    let bar = if std::io::stderr().is_terminal() && !quiet {
        let bar = ProgressBar::new(duration.as_millis() as u64);
        bar.set_style(
            // A constant template; the fallback only guards against an indicatif change.
            ProgressStyle::with_template("c={prefix:<4} {bar:40.cyan/blue} {elapsed:>3} {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        bar.set_prefix(spec.concurrency.to_string());
        bar
    } else {
        ProgressBar::hidden()
    };
    let mut merged = crate::stats::histogram();
    while started.elapsed() < duration {
        let left = duration.saturating_sub(started.elapsed());
        tokio::time::sleep(left.min(Duration::from_millis(250))).await;
        let _ = merged.add(live.take_window());
        bar.set_position(started.elapsed().as_millis() as u64);
        bar.set_message(format!(
            "{} ops/s",
            thousands((merged.len() as f64 / started.elapsed().as_secs_f64()) as u64)
        ));
    }
    let secs = started.elapsed().as_secs_f64();
    let _ = merged.add(live.take_window());
    let errors = live.errors.load(Ordering::Relaxed) - errors_before;
    live.stop();
    bar.finish_and_clear();
    workload::join(handles).await?;
    Ok(Summary::of(&merged, errors, secs))
}

/// Zeroes every primary's (or ring node's) counters with `CONFIG RESETSTAT`.
async fn reset_stats(client: &shardis::Client) -> Result<()> {
    let mut reset = redis::cmd("CONFIG");
    reset.arg("RESETSTAT");
    client
        .on_all_primaries(&reset)
        .await
        .map_err(|e| CliError::new(format!("CONFIG RESETSTAT failed: {e}")))?;
    Ok(())
}

/// Reads each primary (or ring node) served since the last reset, as the server counts them:
/// `keyspace_hits + keyspace_misses` from `INFO stats`, sorted by node.
async fn shard_loads(client: &shardis::Client) -> Result<Vec<(String, u64)>> {
    let mut info = redis::cmd("INFO");
    info.arg("stats");
    let replies = client
        .on_all_primaries(&info)
        .await
        .map_err(|e| CliError::new(format!("INFO stats failed: {e}")))?;
    let mut loads: Vec<(String, u64)> = replies
        .into_iter()
        .map(|(node, reply)| {
            let text = match reply {
                redis::Value::BulkString(b) => String::from_utf8_lossy(&b).into_owned(),
                redis::Value::VerbatimString { text, .. } => text,
                _ => String::new(),
            };
            let field = |name: &str| {
                text.lines()
                    .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .unwrap_or(0)
            };
            (node, field("keyspace_hits") + field("keyspace_misses"))
        })
        .collect();
    loads.sort();
    Ok(loads)
}

fn max_over_mean(loads: &[(String, u64)]) -> f64 {
    let total: u64 = loads.iter().map(|(_, n)| n).sum();
    let max = loads.iter().map(|(_, n)| *n).max().unwrap_or(0);
    if total == 0 {
        return 1.0;
    }
    max as f64 * loads.len() as f64 / total as f64
}
