//! `shardis demo`: a mixed workload through shardis, with a live display, while a slot range
//! moves and a primary fails over; then a summary of what callers saw.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use parking_lot::Mutex;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};
use redis::Value;
use shardis_testkit::{Cluster, FailoverMode, Role};

use crate::error::{CliError, Context, Result, bail};
use crate::nodes::{connect_cluster, start_cluster};
use crate::output::{ms, thousands};
use crate::stats::Summary;
use crate::workload::{self, Live, Spec, parse_duration};

/// Options of `shardis demo`.
#[derive(clap::Args, Debug)]
#[command(after_help = "Examples:\n  \
    shardis demo                                   # starts 3 primaries × 1 replica, 15 s\n  \
    shardis demo --duration 30s --concurrency 64\n  \
    shardis demo --cluster 127.0.0.1:7000          # existing cluster: workload only\n  \
    shardis demo --cluster 127.0.0.1:7000 --reshard --failover\n  \
    shardis demo --stampede                        # cache stampede: none vs single-flight vs fill lock\n  \
    shardis demo --kill-primary                    # kill -9 a primary: breaker, ramp, new primary's ops/s\n  \
    shardis demo --kill-primary --wait             # the same under the wait policy\n\n\
    Exits non-zero if any caller saw an error.")]
pub struct DemoArgs {
    /// Run against this existing cluster instead of starting one. Only keys under --prefix are
    /// touched, and they are removed afterwards; it is never resharded or failed over unless
    /// --reshard / --failover say so.
    #[arg(long, value_name = "HOST:PORT|URL")]
    cluster: Option<String>,
    #[command(flatten)]
    auth: crate::nodes::AuthArgs,
    /// How long the workload runs (e.g. 15s, 2m).
    #[arg(long, default_value = "15s", value_parser = parse_duration)]
    duration: Duration,
    /// Size of the key space.
    #[arg(long, default_value_t = 10_000)]
    keys: u64,
    /// Bytes per value.
    #[arg(long, default_value_t = 100)]
    value_size: usize,
    /// Fraction of commands that are GET.
    #[arg(long, default_value_t = 0.9)]
    read_ratio: f64,
    /// Tasks sharing one client, each with one command in flight.
    #[arg(long, short = 'c', default_value_t = 32)]
    concurrency: usize,
    /// Slots moved live from one primary to another (0: no resharding).
    #[arg(long, default_value_t = 1000)]
    reshard_slots: usize,
    /// With --cluster: reshard that cluster too (needs redis-cli).
    #[arg(long)]
    reshard: bool,
    /// With --cluster: fail a primary over to its replica (CLUSTER FAILOVER) too.
    #[arg(long)]
    failover: bool,
    /// Skip the failover of the local cluster.
    #[arg(long)]
    no_failover: bool,
    /// Key prefix (default: shardis-demo:<random>:).
    #[arg(long)]
    prefix: Option<String>,
    /// The cache-stampede scene instead: 1,000 concurrent requests for an expired key with no
    /// protection, shardis-cache single-flight, and its fill lock across 4 processes.
    #[arg(long)]
    stampede: bool,
    /// Requests in the stampede scene.
    #[arg(long, default_value_t = 1000, requires = "stampede")]
    stampede_requests: usize,
    /// Worker processes in the stampede scene.
    #[arg(long, default_value_t = 4, requires = "stampede")]
    stampede_processes: usize,
    #[arg(long, hide = true)]
    stampede_worker: Option<String>,
    /// The failover scene instead: a local cluster under load, a primary killed with SIGKILL;
    /// prints the circuit breaker opening, the replica taking over, and per second what
    /// callers saw and what the new primary served as its traffic ramps back.
    #[arg(long)]
    kill_primary: bool,
    /// In the failover scene: the wait policy (callers wait for the replica, bounded, and are
    /// released along the ramp) instead of fail-fast.
    #[arg(long, requires = "kill_primary")]
    wait: bool,
}

/// What the live display shows besides counters: things that happened.
#[derive(Default)]
struct Events(Mutex<Vec<String>>);

impl Events {
    fn push(&self, started: Instant, msg: impl Into<String>) {
        let line = format!("[{:>5.1}s] {}", started.elapsed().as_secs_f64(), msg.into());
        self.0.lock().push(line);
    }
    fn all(&self) -> Vec<String> {
        self.0.lock().clone()
    }
}

enum Target {
    Local(Cluster),
    External(String),
}

pub async fn run(args: DemoArgs) -> Result<ExitCode> {
    if let Some(spec) = &args.stampede_worker {
        return crate::stampede::worker(crate::stampede::Worker::parse(spec)?).await;
    }
    if args.kill_primary {
        let policy = if args.wait {
            shardis::DownPolicy::Wait
        } else {
            shardis::DownPolicy::FailFast
        };
        return crate::failover_scene::run(args.concurrency, policy).await;
    }
    if args.stampede {
        return crate::stampede::run(
            args.cluster.as_deref(),
            args.stampede_requests,
            args.stampede_processes,
            50,
        )
        .await;
    }
    let prefix = args
        .prefix
        .clone()
        .unwrap_or_else(|| format!("shardis-demo:{:08x}:", rand::random::<u32>()));
    let spec = Arc::new(Spec {
        prefix,
        keys: args.keys,
        value_size: args.value_size,
        read_ratio: args.read_ratio,
        concurrency: args.concurrency,
        zipf: None,
    });
    spec.validate()?;

    let target = match &args.cluster {
        Some(addr) => {
            crate::nodes::seed(addr)?;
            Target::External(addr.clone())
        }
        None => {
            println!("starting a local Redis Cluster: 3 primaries × 1 replica ...");
            let t = Instant::now();
            let cluster = start_cluster(3, 1).await?;
            println!(
                "cluster ready in {:.1} s: {}",
                t.elapsed().as_secs_f64(),
                cluster.seeds().join(" ")
            );
            Target::Local(cluster)
        }
    };
    let client = match &target {
        Target::Local(c) => connect_cluster(&c.seeds()[0], &Default::default()).await?,
        Target::External(addr) => connect_cluster(addr, &args.auth).await?,
    };
    let do_reshard = args.reshard_slots > 0 && (matches!(target, Target::Local(_)) || args.reshard);
    let do_failover = match target {
        Target::Local(_) => !args.no_failover,
        Target::External(_) => args.failover,
    };

    workload::preload(&client, &spec, 100_000).await?;
    println!(
        "workload: {} tasks, {} keys under {:?}, {}-byte values, {:.0}% GET, {:.0} s{}{}",
        spec.concurrency,
        thousands(spec.keys),
        spec.prefix,
        spec.value_size,
        spec.read_ratio * 100.0,
        args.duration.as_secs_f64(),
        if do_reshard {
            format!("; live reshard of {} slots", args.reshard_slots)
        } else {
            String::new()
        },
        if do_failover {
            "; live failover of a primary"
        } else {
            ""
        },
    );

    let live = Live::new(spec.concurrency);
    let events = Events::default();
    let started = Instant::now();
    let handles = workload::spawn(&client, &spec, &live)?;

    let chaos = async {
        let r = chaos(
            &target,
            &client,
            &events,
            started,
            args.duration,
            do_reshard.then_some(args.reshard_slots),
            do_failover,
        )
        .await;
        if let Err(e) = &r {
            events.push(started, format!("FAILED: {e}"));
        }
        r
    };
    let chaos_done = std::sync::atomic::AtomicBool::new(false);
    let display = display(&client, &live, &events, started, args.duration, &chaos_done);
    let chaos = async {
        let r = chaos.await;
        chaos_done.store(true, Ordering::Relaxed);
        r
    };
    let (chaos_result, ()) = tokio::join!(chaos, display);
    live.stop();
    let total = workload::join(handles).await?;
    let elapsed = started.elapsed().as_secs_f64();
    let errors = live.errors.load(Ordering::Relaxed);
    let summary = Summary::of(&total, errors, elapsed);
    let stats = client.stats();

    println!();
    println!("summary");
    println!("  ran for          {elapsed:.1} s");
    println!(
        "  commands         {} ({} ops/s)",
        thousands(summary.ops),
        thousands(summary.ops_per_sec as u64)
    );
    println!("  caller errors    {}", summary.errors);
    if let Some(last) = live.last_error.lock().as_ref() {
        println!("  last error       {last}");
    }
    println!(
        "  latency (ms)     p50 {}  p90 {}  p99 {}  p99.9 {}  max {}",
        ms(summary.p50_us),
        ms(summary.p90_us),
        ms(summary.p99_us),
        ms(summary.p999_us),
        ms(summary.max_us)
    );
    println!(
        "  redirects        {} MOVED and {} ASK followed; {} retries",
        stats.moved, stats.ask, stats.retries
    );
    println!(
        "  topology         {} refreshes ({} failed)",
        stats.refreshes, stats.refresh_failures
    );
    for e in events.all() {
        println!("  {e}");
    }
    println!(
        "summary: ops={} errors={} p50_us={} p99_us={} p999_us={} moved={} ask={} retries={} refreshes={}",
        summary.ops,
        summary.errors,
        summary.p50_us,
        summary.p99_us,
        summary.p999_us,
        stats.moved,
        stats.ask,
        stats.retries,
        stats.refreshes
    );

    match target {
        Target::External(_) => {
            let removed = workload::cleanup(&client, &spec).await?;
            println!("removed {removed} keys under {:?}", spec.prefix);
        }
        Target::Local(cluster) => {
            drop(client);
            drop(cluster);
            println!("local cluster stopped and removed");
        }
    }
    chaos_result?;
    if errors > 0 {
        eprintln!(
            "error: callers saw {errors} errors during the demo (last: {})",
            live.last_error.lock().clone().unwrap_or_default()
        );
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

/// Reshards at ~20% of the run and fails over at ~55% (or when the reshard is done, if later).
async fn chaos(
    target: &Target,
    client: &shardis::Client,
    events: &Events,
    started: Instant,
    duration: Duration,
    reshard: Option<usize>,
    failover: bool,
) -> Result<()> {
    if let Some(slots) = reshard {
        tokio::time::sleep_until((started + duration.mul_f64(0.2)).into()).await;
        match target {
            Target::Local(cluster) => {
                let primaries = cluster
                    .primaries()
                    .await
                    .context(|| "listing primaries".into())?;
                let (from, to) = (&primaries[0], &primaries[1]);
                events.push(
                    started,
                    format!(
                        "resharding {slots} slots {} -> {} ...",
                        from.addr(),
                        to.addr()
                    ),
                );
                let t = Instant::now();
                cluster
                    .reshard(from, to, slots)
                    .await
                    .context(|| format!("resharding {slots} slots"))?;
                events.push(
                    started,
                    format!(
                        "resharded {slots} slots in {:.1} s",
                        t.elapsed().as_secs_f64()
                    ),
                );
            }
            Target::External(addr) => {
                external_reshard(addr, client, slots, events, started).await?
            }
        }
    }
    if failover {
        tokio::time::sleep_until((started + duration.mul_f64(0.55)).into()).await;
        match target {
            Target::Local(cluster) => {
                let primaries = cluster
                    .primaries()
                    .await
                    .context(|| "listing primaries".into())?;
                let victim = &primaries[primaries.len().min(2) - 1];
                let replicas = cluster
                    .replicas()
                    .await
                    .context(|| "listing replicas".into())?;
                let mut chosen = None;
                for r in &replicas {
                    if let Ok(Role::Replica { primary_port, .. }) = cluster.role(r).await
                        && primary_port == victim.port
                    {
                        chosen = Some(r.clone());
                    }
                }
                let Some(replica) = chosen else {
                    bail!("primary {} has no replica to fail over to", victim.addr());
                };
                events.push(
                    started,
                    format!(
                        "failing over primary {} to its replica {} ...",
                        victim.addr(),
                        replica.addr()
                    ),
                );
                let t = Instant::now();
                cluster
                    .failover(&replica, FailoverMode::Default)
                    .await
                    .context(|| format!("failing over to {}", replica.addr()))?;
                events.push(
                    started,
                    format!(
                        "failover done in {:.1} s: {} is primary",
                        t.elapsed().as_secs_f64(),
                        replica.addr()
                    ),
                );
            }
            Target::External(_) => external_failover(client, events, started).await?,
        }
    }
    Ok(())
}

/// `redis-cli --cluster reshard` from the primary with the most slots to the next one.
async fn external_reshard(
    addr: &str,
    client: &shardis::Client,
    slots: usize,
    events: &Events,
    started: Instant,
) -> Result<()> {
    let topology = client.topology();
    let mut shards: Vec<_> = topology.shards().iter().collect();
    if shards.len() < 2 {
        bail!(
            "cannot reshard: the cluster at {addr} has only {} shard(s)",
            shards.len()
        );
    }
    shards.sort_by_key(|s| std::cmp::Reverse(s.slot_count()));
    let id = |s: &shardis::slots::Shard| s.primary.id.clone().unwrap_or_default();
    let (from, to) = (id(shards[0]), id(shards[1]));
    if from.is_empty() || to.is_empty() {
        bail!("cannot reshard: the cluster's topology reply carries no node ids");
    }
    let program = shardis_testkit::Binary::Cli
        .locate()
        .map_err(|e| CliError::new(format!("cannot reshard: {e}")))?;
    events.push(
        started,
        format!("resharding {slots} slots with redis-cli ..."),
    );
    let t = Instant::now();
    let out = tokio::process::Command::new(&program)
        .args([
            "--cluster",
            "reshard",
            addr,
            "--cluster-from",
            &from,
            "--cluster-to",
            &to,
        ])
        .args(["--cluster-slots", &slots.to_string(), "--cluster-yes"])
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .context(|| format!("running {}", program.display()))?;
    if !out.status.success() {
        let stdout = String::from_utf8_lossy(&out.stdout);
        let last = stdout
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("");
        bail!(
            "redis-cli --cluster reshard failed ({}): {last}",
            out.status
        );
    }
    events.push(
        started,
        format!(
            "resharded {slots} slots in {:.1} s",
            t.elapsed().as_secs_f64()
        ),
    );
    Ok(())
}

/// `CLUSTER FAILOVER` on a replica of the first shard that has one; waits until it is primary.
async fn external_failover(
    client: &shardis::Client,
    events: &Events,
    started: Instant,
) -> Result<()> {
    let topology = client.topology();
    let Some((primary, replica)) = topology.shards().iter().find_map(|s| {
        let r = s
            .replicas
            .iter()
            .find(|r| r.health.is_usable() && r.endpoint.is_some())?;
        Some((s.primary.endpoint.clone()?, r.endpoint.clone()?))
    }) else {
        bail!("cannot fail over: no shard has a reachable replica");
    };
    let mut conn = redis::Client::open(format!("redis://{replica}/"))
        .context(|| format!("replica {replica}"))?
        .get_multiplexed_async_connection()
        .await
        .context(|| format!("connecting to replica {replica}"))?;
    events.push(
        started,
        format!("failing over primary {primary} to its replica {replica} ..."),
    );
    let t = Instant::now();
    let () = redis::cmd("CLUSTER")
        .arg("FAILOVER")
        .query_async(&mut conn)
        .await
        .context(|| format!("CLUSTER FAILOVER on {replica}"))?;
    while t.elapsed() < Duration::from_secs(30) {
        let role: Value = redis::cmd("ROLE")
            .query_async(&mut conn)
            .await
            .context(|| format!("ROLE on {replica}"))?;
        if let Value::Array(items) = role
            && matches!(items.first(), Some(Value::BulkString(b)) if b == b"master")
        {
            events.push(
                started,
                format!(
                    "failover done in {:.1} s: {replica} is primary",
                    t.elapsed().as_secs_f64()
                ),
            );
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!("failover to {replica} did not complete within 30 s")
}

/// Draws the live view every second until the duration has passed and the chaos is done.
async fn display(
    client: &shardis::Client,
    live: &Live,
    events: &Events,
    started: Instant,
    duration: Duration,
    chaos_done: &std::sync::atomic::AtomicBool,
) {
    let tty = std::io::stdout().is_terminal();
    let bar = if tty {
        let bar = ProgressBar::new(duration.as_secs().max(1));
        bar.set_style(
            // A constant template; the fallback only guards against an indicatif change.
            ProgressStyle::with_template("{bar:40.cyan/blue} {pos:>3}/{len}s\n{msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("█▉▊▋▌▍▎▏ "),
        );
        bar
    } else {
        ProgressBar::hidden()
    };
    let mut last_ops = 0u64;
    let mut last_tick = Instant::now();
    let mut last_calls: HashMap<String, u64> = HashMap::new();
    let mut shown_events = 0usize;
    let mut extended = false;
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let now = Instant::now();
        let dt = now.duration_since(last_tick).as_secs_f64();
        last_tick = now;
        let ops = live.ops.load(Ordering::Relaxed);
        let rate = (ops - last_ops) as f64 / dt;
        last_ops = ops;
        let window = live.take_window();
        let p99 = if window.is_empty() {
            0
        } else {
            window.value_at_quantile(0.99)
        };
        let errors = live.errors.load(Ordering::Relaxed);
        let stats = client.stats();
        let shards = shard_load(client, &mut last_calls, dt).await;
        let t = started.elapsed().as_secs_f64();
        let head = format!(
            "t={t:>4.1}s  ops/s={:>7}  p99={:>7} ms  errors={errors}  MOVED={}  ASK={}  retries={}  refreshes={}",
            thousands(rate as u64),
            ms(p99),
            stats.moved,
            stats.ask,
            stats.retries,
            stats.refreshes
        );
        let all_events = events.all();
        if tty {
            let mut msg = head.clone();
            for s in &shards {
                msg.push_str("\n  ");
                msg.push_str(s);
            }
            for e in all_events.iter().rev().take(4).rev() {
                msg.push_str("\n  ");
                msg.push_str(e);
            }
            bar.set_position(started.elapsed().as_secs().min(duration.as_secs()));
            bar.set_message(msg);
        } else {
            println!("{head}");
            for s in &shards {
                println!("  {s}");
            }
            for e in &all_events[shown_events..] {
                println!("  {e}");
            }
            shown_events = all_events.len();
        }
        if started.elapsed() >= duration {
            if chaos_done.load(Ordering::Relaxed) {
                break;
            }
            if !extended {
                extended = true;
                let note = "still under load until the reshard/failover completes";
                if tty {
                    bar.println(note);
                } else {
                    println!("{note}");
                }
            }
        }
    }
    bar.finish_and_clear();
}

/// One line per primary: served GET+SET per second (from `INFO commandstats` deltas) and
/// slots owned, as the client's topology says.
async fn shard_load(
    client: &shardis::Client,
    last: &mut HashMap<String, u64>,
    dt: f64,
) -> Vec<String> {
    let info = redis::cmd("INFO").arg("commandstats").clone();
    let replies = match tokio::time::timeout(
        Duration::from_millis(700),
        client.on_all_primaries(&info),
    )
    .await
    {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => return vec![format!("(per-shard load unavailable: {e})")],
        Err(_) => return vec!["(per-shard load: INFO timed out)".into()],
    };
    let topology = client.topology();
    let mut replies = replies;
    replies.sort_by(|a, b| a.0.cmp(&b.0));
    let rows: Vec<(String, u64, usize)> = replies
        .into_iter()
        .map(|(node, value)| {
            let calls = served_calls(&value);
            let rate = match last.insert(node.clone(), calls) {
                Some(prev) if calls >= prev => ((calls - prev) as f64 / dt) as u64,
                _ => 0,
            };
            let slots: usize = topology
                .shards()
                .iter()
                .filter(|s| {
                    s.primary
                        .endpoint
                        .as_ref()
                        .is_some_and(|e| e.to_string() == node)
                })
                .map(|s| s.slot_count())
                .sum();
            (node, rate, slots)
        })
        .collect();
    let max = rows.iter().map(|r| r.1).max().unwrap_or(0).max(1);
    rows.into_iter()
        .map(|(node, rate, slots)| {
            let bar = "■".repeat((rate * 30 / max) as usize);
            format!(
                "primary {node:<21} slots {slots:>5}  served GET+SET/s {:>7}  {bar}",
                thousands(rate)
            )
        })
        .collect()
}

/// `calls` of `cmdstat_get` plus `cmdstat_set` in an `INFO commandstats` reply.
fn served_calls(value: &Value) -> u64 {
    let text = match value {
        Value::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
        Value::VerbatimString { text, .. } => text.clone(),
        Value::SimpleString(s) => s.clone(),
        _ => return 0,
    };
    text.lines()
        .filter(|l| l.starts_with("cmdstat_get:") || l.starts_with("cmdstat_set:"))
        .filter_map(|l| {
            l.split_once(':')?
                .1
                .split(',')
                .find_map(|kv| kv.strip_prefix("calls="))?
                .parse::<u64>()
                .ok()
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commandstats_calls() {
        let v = Value::BulkString(
            b"# Commandstats\r\ncmdstat_get:calls=10,usec=5\r\ncmdstat_set:calls=3,usec=1\r\ncmdstat_info:calls=9\r\n".to_vec(),
        );
        assert_eq!(served_calls(&v), 13);
    }
}
