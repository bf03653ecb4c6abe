//! `shardis demo --kill-primary`: a local 3 × 1 cluster under load; one primary gets SIGKILL.
//! Printed as it happens: the circuit breaker opening (the first `CircuitOpen` a caller gets),
//! the replica taking over, and every second what callers saw and what the new primary served
//! (from its `INFO commandstats`), rising along the breaker's ramp instead of taking the whole
//! backlog at once.

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use shardis::{BreakerOptions, DownPolicy, Error};
use shardis_testkit::{Cluster, Node};

use crate::error::{Context, Result};
use crate::nodes::start_cluster;
use crate::output::thousands;

/// The ramp the scene configures: a step a second, so the per-second lines show each one.
const RAMP: [f64; 4] = [0.1, 0.25, 0.5, 1.0];
const RAMP_DURATION: Duration = Duration::from_secs(4);
/// The load runs this long before the kill.
const BEFORE_KILL: Duration = Duration::from_secs(2);
/// Seconds shown after the replica took over: the ramp, then steady traffic.
const AFTER_TAKEOVER: u64 = 7;

/// What callers saw, counted by kind.
#[derive(Default)]
struct Seen {
    ok: AtomicU64,
    circuit_open: AtomicU64,
    overloaded: AtomicU64,
    other: AtomicU64,
}

impl Seen {
    fn record<'r>(&self, result: &'r Result<redis::Value, Error>) -> Option<&'r Error> {
        let counter = match result {
            Ok(_) => &self.ok,
            Err(Error::CircuitOpen { .. }) => &self.circuit_open,
            Err(Error::Overloaded { .. }) => &self.overloaded,
            Err(_) => &self.other,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        result.as_ref().err()
    }

    fn snapshot(&self) -> [u64; 4] {
        [&self.ok, &self.circuit_open, &self.overloaded, &self.other]
            .map(|c| c.load(Ordering::Relaxed))
    }
}

/// Runs the scene with `concurrency` tasks under `policy`.
pub async fn run(concurrency: usize, policy: DownPolicy) -> Result<ExitCode> {
    println!("starting a local Redis Cluster: 3 primaries × 1 replica ...");
    let cluster = start_cluster(3, 1).await?;
    // The healthy shards keep serving while one has no primary.
    cluster
        .config_set_all("cluster-require-full-coverage", "no")
        .await
        .context(|| "CONFIG SET cluster-require-full-coverage no".into())?;
    let client = shardis::Client::builder()
        .cluster(cluster.seeds())
        .deadline(Duration::from_secs(8))
        .refresh_min_interval(Duration::from_millis(100))
        .node_down_policy(policy)
        .max_waiting_per_node(concurrency)
        .circuit_breaker(
            BreakerOptions::new()
                .probe_after(Duration::from_millis(200))
                .ramp(&RAMP, RAMP_DURATION),
        )
        .build()
        .await
        .context(|| "connect to the local cluster".into())?;
    println!(
        "{concurrency} tasks (SET then GET of their own keys); policy {policy:?}; breaker ramp \
         {RAMP:?} over {RAMP_DURATION:?}"
    );

    let started = Instant::now();
    let seen = Arc::new(Seen::default());
    let stop = Arc::new(AtomicBool::new(false));
    let first_refusal = Arc::new(parking_lot::Mutex::new(None::<(Duration, String)>));
    let tasks: Vec<_> = (0..concurrency)
        .map(|t| {
            let (client, seen, stop, first) = (
                client.clone(),
                seen.clone(),
                stop.clone(),
                first_refusal.clone(),
            );
            tokio::spawn(async move {
                let mut round = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    round += 1;
                    let key = format!("demo-failover:{t}:{}", round % 50);
                    let set = client.send(redis::cmd("SET").arg(&key).arg(round)).await;
                    let get = client.send(redis::cmd("GET").arg(&key)).await;
                    for result in [set, get] {
                        if let Some(e @ Error::CircuitOpen { .. }) = seen.record(&result) {
                            first
                                .lock()
                                .get_or_insert_with(|| (started.elapsed(), e.to_string()));
                        }
                    }
                }
            })
        })
        .collect();

    let replicas = cluster
        .replicas()
        .await
        .context(|| "list replicas".into())?;
    let victim = cluster
        .primaries()
        .await
        .context(|| "list primaries".into())?
        .remove(0);
    let takeover = Takeover::default();
    let (served, killed, ()) = tokio::join!(
        sample_replicas(&cluster, &replicas, started, &takeover),
        kill_and_wait(&cluster, &victim, started, &takeover),
        watch(&cluster, &seen, &first_refusal, started, &takeover),
    );
    stop.store(true, Ordering::Relaxed);
    for task in tasks {
        let _ = task.await;
    }
    killed?;
    let Some((promoted, _)) = takeover.lock().clone() else {
        return Ok(ExitCode::FAILURE);
    };
    let column = replicas
        .iter()
        .position(|r| r.addr() == promoted.addr())
        .unwrap_or(0);
    summary(&served, column);
    Ok(ExitCode::SUCCESS)
}

/// The replica that took over, and when it was seen to.
type Takeover = parking_lot::Mutex<Option<(Node, Duration)>>;

fn at(d: Duration) -> String {
    format!("[{:>5.1}s]", d.as_secs_f64())
}

/// Kills `victim` after [`BEFORE_KILL`] and waits for a replica to take over.
async fn kill_and_wait(
    cluster: &Cluster,
    victim: &Node,
    started: Instant,
    takeover: &Takeover,
) -> Result<()> {
    tokio::time::sleep_until((started + BEFORE_KILL).into()).await;
    cluster
        .kill(victim)
        .context(|| format!("kill {}", victim.addr()))?;
    println!(
        "{} SIGKILL primary {}",
        at(started.elapsed()),
        victim.addr()
    );
    let node = cluster
        .wait_for_failover_of(victim)
        .await
        .context(|| "wait for the failover".into())?
        .ok_or_else(|| crate::error::CliError::new("no replica took over"))?;
    let when = started.elapsed();
    println!(
        "{} replica {} took over; its traffic ramps {RAMP:?} over {RAMP_DURATION:?}",
        at(when),
        node.addr()
    );
    *takeover.lock() = Some((node, when));
    Ok(())
}

/// Prints every second what callers saw and what the new primary served, until
/// [`AFTER_TAKEOVER`] seconds after the takeover (or 30 s without one).
async fn watch(
    cluster: &Cluster,
    seen: &Seen,
    first_refusal: &parking_lot::Mutex<Option<(Duration, String)>>,
    started: Instant,
    takeover: &Takeover,
) {
    let mut last = seen.snapshot();
    let mut announced_refusal = false;
    let mut served_before = None;
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.tick().await;
    loop {
        tick.tick().await;
        let now = started.elapsed();
        let counts = seen.snapshot();
        let delta: Vec<u64> = counts.iter().zip(&last).map(|(a, b)| a - b).collect();
        last = counts;
        if !announced_refusal && let Some((when, text)) = first_refusal.lock().clone() {
            announced_refusal = true;
            println!("{} circuit breaker opened — {text}", at(when));
        }
        let promoted = takeover.lock().clone();
        let mut new_primary = String::new();
        if let Some((node, _)) = &promoted {
            let served = served_now(cluster, node).await;
            if let Some(before) = served_before {
                new_primary = format!("new primary served {:>7}/s", thousands(served - before));
            }
            served_before = Some(served);
        }
        println!(
            "{} callers: {:>7} ok  {:>6} CircuitOpen  {:>5} Overloaded  {:>4} other errors   {new_primary}",
            at(now),
            thousands(delta[0]),
            thousands(delta[1]),
            thousands(delta[2]),
            thousands(delta[3]),
        );
        let done = match &promoted {
            Some((_, when)) => now >= *when + Duration::from_secs(AFTER_TAKEOVER),
            None => now > BEFORE_KILL + Duration::from_secs(30),
        };
        if done {
            return;
        }
    }
}

/// `get` + `set` calls `node` served so far.
async fn served_now(cluster: &Cluster, node: &Node) -> u64 {
    let stats = cluster.commandstats(node).await.unwrap_or_default();
    stats.get("get").copied().unwrap_or(0) + stats.get("set").copied().unwrap_or(0)
}

/// What each replica served, sampled every 100 ms until the scene ends: `(when, per replica)`.
async fn sample_replicas(
    cluster: &Cluster,
    replicas: &[Node],
    started: Instant,
    takeover: &Takeover,
) -> Vec<(Duration, Vec<u64>)> {
    let mut samples = Vec::new();
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    loop {
        let end = match &*takeover.lock() {
            Some((_, when)) => *when + Duration::from_secs(AFTER_TAKEOVER),
            None => BEFORE_KILL + Duration::from_secs(30),
        };
        if started.elapsed() >= end {
            break;
        }
        tick.tick().await;
        let mut row = Vec::new();
        for replica in replicas {
            row.push(served_now(cluster, replica).await);
        }
        samples.push((started.elapsed(), row));
    }
    samples
}

/// The new primary's served ops per second from when it began serving, against its steady rate.
/// Before the kill it applied its primary's writes; after it, nothing until it was promoted and
/// found: its service starts at the first tick that serves after a quiet one.
fn summary(samples: &[(Duration, Vec<u64>)], column: usize) {
    let per_tick: Vec<(Duration, u64)> = samples
        .windows(2)
        .map(|w| (w[1].0, w[1].1[column].saturating_sub(w[0].1[column])))
        .collect();
    let Some(quiet) = per_tick
        .iter()
        .position(|(at, n)| *at > BEFORE_KILL && *n == 0)
    else {
        return;
    };
    let Some(start) = per_tick[quiet..].iter().position(|(_, n)| *n > 0) else {
        return;
    };
    // Bucketed by when each sample was taken (a sample can come late on a busy machine).
    let first = per_tick[quiet + start].0;
    let mut per_second: Vec<u64> = Vec::new();
    for (at, n) in &per_tick[quiet + start..] {
        let second = ((*at - first).as_millis() / 1000) as usize;
        if per_second.len() <= second {
            per_second.resize(second + 1, 0);
        }
        per_second[second] += n;
    }
    let ramp_seconds = RAMP_DURATION.as_secs() as usize;
    let steady: Vec<u64> = per_second.iter().skip(ramp_seconds + 1).copied().collect();
    if steady.is_empty() {
        return;
    }
    let steady = steady.iter().sum::<u64>() as f64 / steady.len() as f64;
    println!(
        "\nnew primary, ops per second from its first served tick: {per_second:?}\n\
         the first second carried {:.0}% of the steady {steady:.0}/s (first ramp step {:.0}%), not the backlog",
        per_second[0] as f64 * 100.0 / steady.max(1.0),
        RAMP[0] * 100.0
    );
}
