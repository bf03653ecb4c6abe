//! Two separate OS processes share a namespace with L1 on: this process (A) reads, a child
//! process (B, this binary re-executed with `SHARDIS_L1_WRITER` set) writes when told to over
//! its stdin and answers with the wall-clock time its write was acknowledged.
//!
//! Each round: A makes sure its L1 holds the current value, tells B to write the next one,
//! and reads in a loop until it has the new value and B's acknowledgement. Asserted on every
//! read (none is a timing assertion):
//! - never a value older than the one before the write;
//! - **no stale read after the invalidation arrived**: a read that began after A's feed had
//!   reported a change of the key since the round began returns the new value;
//! - **none beyond the L1 TTL**: a read that began more than the L1 TTL after B's
//!   acknowledgement returns the new value.
//!
//! Reported: how long after B's acknowledgement A still served the old value (the end of its
//! last stale read), p50/p99/max.
//!
//! Scenarios: `l1_two_processes_10000_rounds` (quiet), `l1_two_processes_tracking_killed_and_failover`
//! (`CLIENT KILL` of every tracking connection, then a failover of the key's shard: the flush
//! metric must count it), `l1_two_processes_reshard` (the key's slot moved between primaries
//! back and forth while B writes).

use std::process::{ExitCode, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use shardis_cache::{Cache, L1Options, Source};
use shardis_testkit::{Cluster, FailoverMode, Role};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::mpsc;

const CHILD: &str = "SHARDIS_L1_WRITER";
const KEY: &str = "the-key";
const L1_TTL: Duration = Duration::from_secs(5);

mod support;

type Res<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

const TESTS: [&str; 3] = [
    "l1_two_processes_10000_rounds",
    "l1_two_processes_tracking_killed_and_failover",
    "l1_two_processes_reshard",
];

fn main() -> ExitCode {
    let Some(runtime) = support::runtime() else {
        return ExitCode::FAILURE;
    };
    if let Ok(seeds) = std::env::var(CHILD) {
        return match runtime.block_on(writer(&seeds)) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("writer: {e}");
                ExitCode::FAILURE
            }
        };
    }
    // Honour a test-name filter and --list the way libtest would.
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--list") {
        for name in TESTS {
            println!("{name}: test");
        }
        return ExitCode::SUCCESS;
    }
    let filters: Vec<&String> = args.iter().filter(|a| !a.starts_with('-')).collect();
    let chosen: Vec<&str> = TESTS
        .into_iter()
        .filter(|name| filters.is_empty() || filters.iter().any(|f| name.contains(f.as_str())))
        .collect();
    println!("running {} tests", chosen.len());
    let mut failed = 0;
    for name in &chosen {
        let result = runtime.block_on(async {
            match *name {
                "l1_two_processes_10000_rounds" => quiet().await,
                "l1_two_processes_tracking_killed_and_failover" => killed_and_failover().await,
                _ => reshard().await,
            }
        });
        match result {
            Ok(()) => println!("test {name} ... ok"),
            Err(e) => {
                failed += 1;
                println!("test {name} ... FAILED\n{e}");
            }
        }
    }
    println!(
        "\ntest result: {}. {} passed; {failed} failed; 0 ignored; 0 measured; {} filtered out",
        if failed == 0 { "ok" } else { "FAILED" },
        chosen.len() - failed,
        TESTS.len() - chosen.len()
    );
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn now_ns() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0)
}

async fn cache(seeds: &[String]) -> Res<Cache<u64>> {
    cache_recorded(seeds, &metrics::NoopRecorder).await
}

/// The cache, its metrics going to `recorder`.
async fn cache_recorded(seeds: &[String], recorder: &dyn metrics::Recorder) -> Res<Cache<u64>> {
    let client = shardis::Client::builder()
        .cluster(seeds.to_vec())
        .build()
        .await?;
    let cache = metrics::with_local_recorder(recorder, || {
        Cache::<u64>::builder(client)
            .namespace("fleet-l1")
            .ttl(Duration::from_secs(600))
            .early_refresh(None)
            .l1(L1Options {
                max_entries: 1000,
                ttl: L1_TTL,
                backplane: true,
            })
            .build()
    })?;
    Ok(cache)
}

/// Process B: `<value>` on stdin → write it → `<value> <ack wall-clock ns>` on stdout.
async fn writer(seeds: &str) -> Res<()> {
    let seeds: Vec<String> = seeds.split(',').map(str::to_string).collect();
    let cache = cache(&seeds).await?;
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    let mut out = tokio::io::stdout();
    out.write_all(b"ready\n").await?;
    out.flush().await?;
    while let Some(line) = lines.next_line().await? {
        let value: u64 = line.trim().parse()?;
        // A failover or a reshard may fail a write: retry it (it is idempotent).
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match cache
                .set_through(KEY, value, |_| async { Ok::<_, std::io::Error>(()) })
                .await
            {
                Ok(()) => break,
                Err(e) if Instant::now() < deadline => {
                    eprintln!("writer: {e}; retrying");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(e) => return Err(e.into()),
            }
        }
        let acked = now_ns();
        out.write_all(format!("{value} {acked}\n").as_bytes())
            .await?;
        out.flush().await?;
    }
    Ok(())
}

struct Writer {
    child: Child,
    stdin: ChildStdin,
    acks: mpsc::UnboundedReceiver<(u64, u128)>,
    /// Writes acknowledged so far.
    writes: u64,
}

impl Writer {
    async fn start(seeds: &[String]) -> Res<Writer> {
        let mut child = Command::new(std::env::current_exe()?)
            .env(CHILD, seeds.join(","))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()?;
        let stdin = child.stdin.take().ok_or("no stdin")?;
        let stdout = child.stdout.take().ok_or("no stdout")?;
        let (tx, mut acks) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut lines = BufReader::new(stdout).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                if line == "ready" {
                    let _ = tx.send((0, 0));
                    continue;
                }
                let mut parts = line.split(' ');
                if let (Some(Ok(v)), Some(Ok(t))) = (
                    parts.next().map(str::parse::<u64>),
                    parts.next().map(str::parse::<u128>),
                ) {
                    let _ = tx.send((v, t));
                }
            }
        });
        match tokio::time::timeout(Duration::from_secs(60), acks.recv()).await {
            Ok(Some((0, 0))) => {}
            _ => return Err("the writer process did not start".into()),
        }
        Ok(Writer {
            child,
            stdin,
            acks,
            writes: 0,
        })
    }
}

/// What a run of rounds saw.
#[derive(Default)]
struct Report {
    rounds: u64,
    /// Per round: how long after the acknowledgement the old value was still served (ns).
    stale_after_ack: Vec<u64>,
    rounds_with_l1_before: u64,
    violations: Vec<String>,
}

impl Report {
    fn print(&mut self, name: &str) {
        self.stale_after_ack.sort_unstable();
        let q = |p: f64| {
            let n = self.stale_after_ack.len();
            if n == 0 {
                return 0;
            }
            self.stale_after_ack[((n as f64 * p) as usize).min(n - 1)]
        };
        let stale_rounds = self.stale_after_ack.iter().filter(|&&d| d > 0).count();
        eprintln!(
            "{name}: {} rounds ({} with the old value in A's L1 before the write); old value served after B's ack in {} rounds; time from ack to A no longer serving it: p50 {:.1} us, p99 {:.1} us, max {:.1} us",
            self.rounds,
            self.rounds_with_l1_before,
            stale_rounds,
            q(0.50) as f64 / 1e3,
            q(0.99) as f64 / 1e3,
            self.stale_after_ack.last().copied().unwrap_or(0) as f64 / 1e3,
        );
    }
}

async fn read(cache: &Cache<u64>) -> Res<(u64, Source)> {
    let f = cache
        .fetch(KEY, || async { Ok::<_, std::io::Error>(Some(0u64)) })
        .await?;
    Ok((f.value.unwrap_or(0), f.source))
}

/// Runs `rounds` write/read rounds (or until `stop` is set, when given), checking every read.
///
/// With `per_write` (how many key invalidations each write makes A receive: its two keys, from
/// the primary and from each replica), each round first waits until every invalidation of the
/// earlier writes has arrived, so an invalidation counted during the round is this write's:
/// the check "no stale read after the invalidation arrived" is then exact. Without it (while
/// connections are killed or nodes fail over, when invalidations are lost by design and
/// reported as `Broken`), only the TTL bound is checked.
/// One phase of rounds.
#[derive(Clone, Copy)]
struct Phase<'a> {
    /// Rounds to run (unless `stop` is set first).
    rounds: u64,
    /// Whether each round must first see the old value served from L1.
    require_l1: bool,
    per_write: Option<u64>,
    stop: Option<&'a AtomicBool>,
}

async fn rounds(
    reader: &Cache<u64>,
    writer: &mut Writer,
    first: u64,
    phase: Phase<'_>,
    report: &mut Report,
) -> Res<u64> {
    let Phase {
        rounds,
        require_l1,
        per_write,
        stop,
    } = phase;
    let mut current = first - 1;
    for value in first..first + rounds {
        if stop.is_some_and(|s| s.load(Ordering::Acquire)) {
            break;
        }
        // The old value in L1 first (when the feed allows it), else the round proves little.
        let mut local = false;
        let deadline = Instant::now() + Duration::from_secs(if require_l1 { 30 } else { 0 });
        for attempt in 0.. {
            let (v, source) = read(reader).await?;
            if v != current {
                report.violations.push(format!(
                    "before writing {value}: read {v}, expected {current}"
                ));
            }
            if source == Source::Local {
                local = true;
                break;
            }
            if attempt >= 3 && Instant::now() >= deadline {
                break;
            }
            if attempt >= 3 {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
        if require_l1 && !local {
            return Err(format!("round {value}: the value never reached L1").into());
        }
        report.rounds_with_l1_before += u64::from(local);
        if let Some(per_write) = per_write {
            let expected = writer.writes * per_write;
            let deadline = Instant::now() + Duration::from_secs(30);
            while reader.stats().l1_invalidations < expected {
                if Instant::now() > deadline {
                    return Err(format!(
                        "before round {value}: {} invalidations received, {expected} sent (a lost invalidation nobody reported)",
                        reader.stats().l1_invalidations
                    )
                    .into());
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
        let seen = reader.stats().l1_invalidations;
        writer
            .stdin
            .write_all(format!("{value}\n").as_bytes())
            .await?;
        writer.stdin.flush().await?;
        let mut ack: Option<u128> = None;
        let mut last_stale_end: u128 = 0;
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if ack.is_none()
                && let Ok((v, t)) = writer.acks.try_recv()
            {
                if v != value {
                    return Err(format!("ack of {v}, expected {value}").into());
                }
                writer.writes += 1;
                ack = Some(t);
            }
            let arrived = reader.stats().l1_invalidations > seen;
            let began = now_ns();
            let (v, source) = read(reader).await?;
            let ended = now_ns();
            if v == value {
                if ack.is_some() {
                    break;
                }
            } else if v == current {
                if arrived && per_write.is_some() {
                    report.violations.push(format!(
                        "round {value}: read the old value ({source:?}) after the invalidation had arrived"
                    ));
                }
                if let Some(acked) = ack
                    && began > acked + L1_TTL.as_nanos()
                {
                    report.violations.push(format!(
                        "round {value}: old value served {:?} after the write was acknowledged (L1 TTL {L1_TTL:?})",
                        Duration::from_nanos((began - acked) as u64)
                    ));
                }
                last_stale_end = ended;
            } else {
                report.violations.push(format!(
                    "round {value}: read {v} ({source:?}), neither {current} nor {value}"
                ));
            }
            if Instant::now() > deadline {
                return Err(format!("round {value}: no ack or no new value within 60 s").into());
            }
            if ack.is_none() {
                tokio::task::yield_now().await;
            }
        }
        let acked = ack.unwrap_or(0);
        report
            .stale_after_ack
            .push(last_stale_end.saturating_sub(acked) as u64);
        report.rounds += 1;
        current = value;
        if report.violations.len() > 20 {
            break;
        }
    }
    Ok(current)
}

fn check(report: &Report) -> Res<()> {
    if report.violations.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "{} violation(s), first: {:#?}",
            report.violations.len(),
            &report.violations[..report.violations.len().min(5)]
        )
        .into())
    }
}

async fn setup(
    replicas: usize,
    recorder: &dyn metrics::Recorder,
) -> Res<(Cluster, Cache<u64>, Writer)> {
    let cluster = Cluster::builder()
        .primaries(3)
        .replicas_per_primary(replicas)
        .start()
        .await?;
    let seeds = cluster.seeds();
    let reader = cache_recorded(&seeds, recorder).await?;
    let mut writer = Writer::start(&seeds).await?;
    let deadline = Instant::now() + Duration::from_secs(60);
    while !reader.l1_active() {
        if Instant::now() > deadline {
            return Err("A's L1 feed never became complete".into());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // The first value.
    writer.stdin.write_all(b"0\n").await?;
    writer.stdin.flush().await?;
    match tokio::time::timeout(Duration::from_secs(60), writer.acks.recv()).await {
        Ok(Some((0, _))) => writer.writes += 1,
        _ => return Err("the writer did not write the first value".into()),
    }
    Ok((cluster, reader, writer))
}

async fn quiet() -> Res<()> {
    let (_cluster, reader, mut writer) = setup(0, &metrics::NoopRecorder).await?;
    let mut report = Report::default();
    let seen = reader.stats().l1_invalidations;
    rounds(
        &reader,
        &mut writer,
        1,
        Phase {
            rounds: 10_000,
            require_l1: true,
            per_write: Some(2),
            stop: None,
        },
        &mut report,
    )
    .await?;
    report.print("quiet");
    let _ = writer.child.start_kill();
    check(&report)?;
    if report.rounds != 10_000 {
        return Err(format!("{} rounds ran", report.rounds).into());
    }
    // Every write reached A as an invalidation (not only the TTL or luck).
    let invalidations = reader.stats().l1_invalidations - seen;
    if invalidations < 10_000 {
        return Err(format!("{invalidations} invalidations for 10,000 writes").into());
    }
    Ok(())
}

/// Every tracking connection of the cluster, killed (`CLIENT KILL ID`).
async fn kill_tracking(cluster: &Cluster) -> Res<usize> {
    let mut killed = 0;
    let mut nodes = cluster.primaries().await?;
    nodes.extend(cluster.replicas().await?);
    for node in nodes {
        killed += support::kill_tracking_on(&mut cluster.connection(&node).await?).await?;
    }
    Ok(killed)
}

async fn killed_and_failover() -> Res<()> {
    let recorder = metrics_util::debugging::DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let (cluster, reader, mut writer) = setup(1, &recorder).await?;
    let flushed_broken = || -> u64 {
        snapshotter
            .snapshot()
            .into_vec()
            .into_iter()
            .filter(|(key, ..)| {
                key.key().name() == "shardis_cache_l1_flushed_total"
                    && key
                        .key()
                        .labels()
                        .any(|l| l.key() == "reason" && l.value() == "broken")
            })
            .map(|(.., value)| match value {
                metrics_util::debugging::DebugValue::Counter(c) => c,
                _ => 0,
            })
            .sum()
    };
    let mut report = Report::default();
    let mut next = rounds(
        &reader,
        &mut writer,
        1,
        Phase {
            rounds: 200,
            require_l1: true,
            per_write: Some(4),
            stop: None,
        },
        &mut report,
    )
    .await?
        + 1;

    // The invalidation connections killed.
    let flushes = reader.stats().l1_flushes;
    let killed = kill_tracking(&cluster).await?;
    if killed < 6 {
        return Err(format!("killed {killed} tracking connections, expected at least 6").into());
    }
    next = rounds(
        &reader,
        &mut writer,
        next,
        Phase {
            rounds: 300,
            require_l1: false,
            per_write: None,
            stop: None,
        },
        &mut report,
    )
    .await?
        + 1;
    let after_kill = reader.stats().l1_flushes;
    // (A debugging snapshot drains counters: read it once per phase.)
    let broken_at_kill = flushed_broken();
    if after_kill <= flushes || broken_at_kill == 0 {
        return Err("L1 was not flushed after its tracking connections were killed".into());
    }

    // A failover of the key's shard while rounds run.
    let slot = shardis::slots::key_slot(format!("{{fleet-l1:0:{KEY}}}:v").as_bytes());
    let owner = cluster.node_for_slot(slot).await?;
    let mut replica = None;
    for r in cluster.replicas().await? {
        if let Role::Replica { primary_port, .. } = cluster.role(&r).await?
            && primary_port == owner.port
        {
            replica = Some(r);
        }
    }
    let replica = replica.ok_or("no replica of the key's primary")?;
    let stop = Arc::new(AtomicBool::new(false));
    let failover = {
        let stop = stop.clone();
        let cluster = &cluster;
        async move {
            let r = cluster.failover(&replica, FailoverMode::Default).await;
            tokio::time::sleep(Duration::from_secs(2)).await;
            stop.store(true, Ordering::Release);
            r
        }
    };
    let (failed_over, ran) = tokio::join!(
        failover,
        rounds(
            &reader,
            &mut writer,
            next,
            Phase {
                rounds: u64::MAX / 2,
                require_l1: false,
                per_write: None,
                stop: Some(&stop)
            },
            &mut report
        )
    );
    failed_over?;
    next = ran? + 1;
    // Quiet again: L1 comes back and serves.
    rounds(
        &reader,
        &mut writer,
        next,
        Phase {
            rounds: 100,
            require_l1: true,
            per_write: None,
            stop: None,
        },
        &mut report,
    )
    .await?;
    report.print("tracking killed + failover");
    eprintln!(
        "L1 flushes: {flushes} before the kill, {after_kill} after it, {} at the end; shardis_cache_l1_flushed_total{{reason=\"broken\"}}: +{broken_at_kill} at the kill, +{} during the failover",
        reader.stats().l1_flushes,
        flushed_broken()
    );
    let _ = writer.child.start_kill();
    check(&report)
}

async fn reshard() -> Res<()> {
    let (cluster, reader, mut writer) = setup(0, &metrics::NoopRecorder).await?;
    let mut report = Report::default();
    let mut next = rounds(
        &reader,
        &mut writer,
        1,
        Phase {
            rounds: 100,
            require_l1: true,
            per_write: Some(2),
            stop: None,
        },
        &mut report,
    )
    .await?
        + 1;
    let slot = shardis::slots::key_slot(format!("{{fleet-l1:0:{KEY}}}:v").as_bytes());
    let primaries = cluster.primaries().await?;
    let stop = Arc::new(AtomicBool::new(false));
    let moves = {
        let stop = stop.clone();
        let cluster = &cluster;
        async move {
            let mut result = Ok(());
            for i in 0..6 {
                let to = &primaries[i % primaries.len()];
                if let Err(e) = cluster.migrate_slot(slot, to).await {
                    result = Err(e);
                    break;
                }
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
            stop.store(true, Ordering::Release);
            result
        }
    };
    let (moved, ran) = tokio::join!(
        moves,
        rounds(
            &reader,
            &mut writer,
            next,
            Phase {
                rounds: u64::MAX / 2,
                require_l1: false,
                per_write: None,
                stop: Some(&stop)
            },
            &mut report
        )
    );
    moved?;
    next = ran? + 1;
    rounds(
        &reader,
        &mut writer,
        next,
        Phase {
            rounds: 100,
            require_l1: true,
            per_write: None,
            stop: None,
        },
        &mut report,
    )
    .await?;
    report.print("reshard");
    let _ = writer.child.start_kill();
    check(&report)
}
