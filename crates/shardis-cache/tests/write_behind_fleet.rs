//! Write-behind across OS processes, with a flusher killed by SIGKILL in the middle of a batch.
//!
//! The test (this binary without `SHARDIS_WB_FLEET_CHILD`) starts a 3-primary cluster, then:
//! - a **victim** process: a flusher only, whose sink is slow (two pauses inside each batch);
//!   it takes every partition first;
//! - two **writer** processes: each writes 50,000 changes over 10 s (1,000 keys of its own, 50
//!   writes per key with increasing values) and runs a flusher that stands by.
//!
//! A few seconds in, the victim is killed with SIGKILL while its sink is inside a batch. The
//! writers' flushers take its partitions when its leases run out and claim what it left
//! pending. The sink (in every process) adds `Change::writes` to a per-key count and sets the
//! per-key last value, in Redis hashes the test reads at the end: every key must count at
//! least its 50 writes (at least once; duplicates are reported) and end at its last value.

use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use redis::AsyncCommands;
use shardis_cache::{Backpressure, Cache, Change, WriteBehind, WriteBehindConfig};

const CHILD: &str = "SHARDIS_WB_FLEET_CHILD";
const NAMESPACE: &str = "wbfleet";
const PARTITIONS: u32 = 8;
const WRITERS: u64 = 2;
const KEYS: u64 = 1_000;
const WRITES: u64 = 50_000;
const SECONDS: f64 = 10.0;
const TASKS: u64 = 32;

type Res<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

mod support;

fn main() -> ExitCode {
    let Some(runtime) = support::runtime() else {
        return ExitCode::FAILURE;
    };
    let result = match std::env::var(CHILD) {
        Ok(spec) => runtime.block_on(child(&spec)),
        Err(_) => {
            let args: Vec<String> = std::env::args().skip(1).collect();
            let name = "sigkill_of_a_flusher_mid_batch_loses_no_write";
            let filters: Vec<&String> = args.iter().filter(|a| !a.starts_with('-')).collect();
            if args.iter().any(|a| a == "--list") {
                println!("{name}: test");
                return ExitCode::SUCCESS;
            }
            if !filters.is_empty() && !filters.iter().any(|f| name.contains(f.as_str())) {
                println!(
                    "running 0 tests\n\ntest result: ok. 0 passed; 0 failed; 0 ignored; 0 measured; 1 filtered out"
                );
                return ExitCode::SUCCESS;
            }
            println!("running 1 test");
            let r = runtime.block_on(parent());
            let verdict = if r.is_ok() { "ok" } else { "FAILED" };
            println!("test {name} ... {verdict}");
            let (p, f) = if r.is_ok() { (1, 0) } else { (0, 1) };
            println!(
                "\ntest result: {verdict}. {p} passed; {f} failed; 0 ignored; 0 measured; 0 filtered out"
            );
            r
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Kills the children left running if the test fails half-way.
struct Children(Vec<Child>);

impl Drop for Children {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

async fn wait_for<F, Fut>(what: &str, limit: Duration, mut check: F) -> Res<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Res<bool>>,
{
    let deadline = Instant::now() + limit;
    while !check().await? {
        if Instant::now() > deadline {
            return Err(format!("timed out waiting for {what}").into());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

async fn parent() -> Res<()> {
    let cluster = shardis_testkit::Cluster::builder()
        .primaries(3)
        .replicas_per_primary(0)
        .start()
        .await?;
    let seeds = cluster.seeds().join(",");
    let client = shardis::Client::builder()
        .cluster(cluster.seeds())
        .build()
        .await?;
    let mut c = client.clone();
    let exe = std::env::current_exe()?;
    let spawn = |role: &str| {
        Command::new(&exe)
            .env(CHILD, format!("{seeds}|{role}"))
            .stdout(Stdio::inherit())
            .stderr(Stdio::inherit())
            .spawn()
    };
    let mut victim = Children(vec![spawn("victim")?]);
    wait_for(
        "the victim to own every partition",
        Duration::from_secs(30),
        || {
            let mut c = c.clone();
            async move {
                let owned: Option<u32> = c.get("wbf:victim:owned").await?;
                Ok(owned == Some(PARTITIONS))
            }
        },
    )
    .await?;
    let mut writers = Children(Vec::new());
    for i in 0..WRITERS {
        writers.0.push(spawn(&format!("writer{i}"))?);
    }
    wait_for("the writers to be ready", Duration::from_secs(30), || {
        let mut c = c.clone();
        async move { Ok(c.get::<_, Option<u64>>("wbf:ready").await? == Some(WRITERS)) }
    })
    .await?;
    let started = Instant::now();
    let _: () = c.set("wbf:go", 1).await?;

    // Let the victim flush for 3 s, then kill it inside a sink call.
    tokio::time::sleep(Duration::from_secs(3)).await;
    wait_for("the victim's batches", Duration::from_secs(30), || {
        let mut c = c.clone();
        async move {
            Ok(c.get::<_, Option<u64>>("wbf:victim:batches")
                .await?
                .unwrap_or(0)
                >= 10)
        }
    })
    .await?;
    // Freeze the victim half-way through its next batch (first half written, second not),
    // so the kill lands inside a batch however busy the machine is.
    let _: () = c.set("wbf:freeze", 1).await?;
    wait_for(
        "the victim frozen inside a batch",
        Duration::from_secs(10),
        || {
            let mut c = c.clone();
            async move { Ok(c.get::<_, Option<u64>>("wbf:victim:frozen").await? == Some(1)) }
        },
    )
    .await?;
    // SIGKILL (std's Child::kill), then reaped.
    for v in &mut victim.0 {
        v.kill()?;
        v.wait()?;
    }
    victim.0.clear();
    let killed_at = started.elapsed();
    // Read from the frozen batch's own mark: the victim's other partitions run batches of
    // their own at the same time, and one that passed the freeze check before it was set
    // finishes normally (it must not be mistaken for the frozen one, nor hide it).
    let mid_batch: Option<u64> = c.get("wbf:victim:frozen").await?;
    let victim_batches: u64 = c
        .get::<_, Option<u64>>("wbf:victim:batches")
        .await?
        .unwrap_or(0);
    eprintln!(
        "victim killed (SIGKILL) at {:.1} s after {victim_batches} batches; inside a batch: {}",
        killed_at.as_secs_f64(),
        mid_batch == Some(1)
    );
    if mid_batch != Some(1) {
        return Err("the victim was not killed inside a batch".into());
    }

    wait_for(
        "the writers to finish writing",
        Duration::from_secs(60),
        || {
            let mut c = c.clone();
            async move { Ok(c.get::<_, Option<u64>>("wbf:written").await? == Some(WRITERS)) }
        },
    )
    .await?;
    let write_time = started.elapsed();
    // Drained: every stream empty and nothing pending.
    let drain_started = Instant::now();
    wait_for("the backlog to drain", Duration::from_secs(60), || {
        let client = client.clone();
        async move {
            for p in 0..PARTITIONS {
                let stream = format!("{{{NAMESPACE}:wb:{p}}}");
                let len = client.send(redis::cmd("XLEN").arg(&stream)).await?;
                if len != redis::Value::Int(0) {
                    return Ok(false);
                }
            }
            Ok(true)
        }
    })
    .await?;
    let drain_time = drain_started.elapsed();
    let _: () = c.set("wbf:stop", 1).await?;
    let statuses = tokio::task::spawn_blocking(move || {
        let mut out = Vec::new();
        for mut ch in std::mem::take(&mut writers.0) {
            out.push(ch.wait());
        }
        out
    })
    .await?;
    for s in statuses {
        if !s?.success() {
            return Err("a writer process failed".into());
        }
    }

    // What the sink got, key by key.
    let acked: u64 = c.get::<_, Option<u64>>("wbf:acked").await?.unwrap_or(0);
    let counts: std::collections::HashMap<String, u64> = c.hgetall("wbf:sink:count").await?;
    let lasts: std::collections::HashMap<String, u64> = c.hgetall("wbf:sink:last").await?;
    let claimed: u64 = c.get::<_, Option<u64>>("wbf:claimed").await?.unwrap_or(0);
    let waits: u64 = c.get::<_, Option<u64>>("wbf:waits").await?.unwrap_or(0);
    let delivered: u64 = counts.values().sum();
    let mut lost_keys = 0u64;
    let mut short = 0u64;
    let mut wrong_last = 0u64;
    for w in 0..WRITERS {
        for j in 0..KEYS {
            let key = format!("w{w}:k{j}");
            let want_count = WRITES / KEYS;
            let want_last = WRITES - KEYS + j;
            match (counts.get(&key), lasts.get(&key)) {
                (Some(&n), Some(&last)) => {
                    if n < want_count {
                        short += want_count - n;
                    }
                    if last != want_last {
                        wrong_last += 1;
                        eprintln!("{key}: last value {last}, expected {want_last}");
                    }
                }
                _ => lost_keys += 1,
            }
        }
    }
    eprintln!(
        "{acked} writes acknowledged by {WRITERS} processes in {:.1} s ({:.0}/s); backlog drained {:.1} s later; \
         sink got {delivered} writes ({} delivered twice), {claimed} entries claimed from the victim, \
         {waits} writes waited for backlog room; keys missing: {lost_keys}, writes missing: {short}, wrong last values: {wrong_last}",
        write_time.as_secs_f64(),
        acked as f64 / write_time.as_secs_f64(),
        drain_time.as_secs_f64(),
        delivered.saturating_sub(acked),
    );
    if acked != WRITERS * WRITES {
        return Err(format!("{acked} writes acknowledged, expected {}", WRITERS * WRITES).into());
    }
    if lost_keys > 0 || short > 0 || wrong_last > 0 {
        return Err("writes were lost or reordered".into());
    }
    if claimed == 0 {
        return Err("nothing was claimed from the killed flusher".into());
    }
    Ok(())
}

async fn child(spec: &str) -> Res<()> {
    let (seeds, role) = spec.split_once('|').ok_or("bad child spec")?;
    let seeds: Vec<String> = seeds.split(',').map(str::to_string).collect();
    let client = shardis::Client::builder().cluster(seeds).build().await?;
    let cache = Cache::<u64>::builder(client.clone())
        .namespace(NAMESPACE)
        .ttl(Duration::from_secs(300))
        .write_behind(WriteBehindConfig {
            partitions: PARTITIONS,
            max_backlog: 100_000,
            on_full: Backpressure::Wait(Duration::from_secs(30)),
            durability: None,
        })
        .build()?;
    let victim = role == "victim";
    let sink_client = client.clone();
    let sink = move |batch: Vec<Change<u64>>| {
        let mut c = sink_client.clone();
        async move {
            let write = |part: &[Change<u64>]| {
                let mut pipe = redis::pipe();
                for ch in part {
                    pipe.hincr("wbf:sink:count", &ch.id, ch.writes)
                        .ignore()
                        .hset("wbf:sink:last", &ch.id, ch.value)
                        .ignore();
                }
                pipe
            };
            if victim {
                // Slow, in two halves: a kill lands inside the batch, often between halves.
                let half = batch.len() / 2;
                tokio::time::sleep(Duration::from_millis(30)).await;
                let _: () = write(&batch[..half]).query_async(&mut c).await?;
                if c.get::<_, Option<u64>>("wbf:freeze").await? == Some(1) {
                    // Told to stop here: half the batch delivered, nothing acknowledged,
                    // until the SIGKILL.
                    let _: () = c.set("wbf:victim:frozen", 1).await?;
                    std::future::pending::<()>().await;
                }
                tokio::time::sleep(Duration::from_millis(30)).await;
                let _: () = write(&batch[half..]).query_async(&mut c).await?;
                let _: u64 = c.incr("wbf:victim:batches", 1).await?;
            } else {
                let _: () = write(&batch).query_async(&mut c).await?;
            }
            Ok::<_, redis::RedisError>(())
        }
    };
    let flusher = WriteBehind::builder(&cache, sink)
        .batch_size(200)
        .lease_ttl(Duration::from_secs(1))
        .claim_idle(Duration::from_secs(1))
        .poll_interval(Duration::from_millis(20))
        .start()
        .await?;
    let mut c = client.clone();
    if victim {
        // Report how many partitions it holds until it is killed.
        loop {
            let owned = flusher.stats().owned_partitions;
            let _: () = c.set("wbf:victim:owned", owned).await?;
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let w: u64 = role.trim_start_matches("writer").parse()?;
    let _: u64 = c.incr("wbf:ready", 1).await?;
    let deadline = Instant::now() + Duration::from_secs(60);
    while c.get::<_, Option<u64>>("wbf:go").await?.is_none() {
        if Instant::now() > deadline {
            return Err("no go signal".into());
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    // Write n goes to key n % KEYS at start + n / rate; a key's writes are all made by one
    // task, in order.
    let start = tokio::time::Instant::now();
    let rate = WRITES as f64 / SECONDS;
    let tasks = (0..TASKS).map(|t| {
        let cache = cache.clone();
        tokio::spawn(async move {
            let mut acked = 0u64;
            for n in (0..WRITES).filter(|n| (n % KEYS) % TASKS == t) {
                tokio::time::sleep_until(start + Duration::from_secs_f64(n as f64 / rate)).await;
                cache
                    .write_behind(&format!("w{w}:k{}", n % KEYS), n)
                    .await?;
                acked += 1;
            }
            Ok::<u64, shardis_cache::Error>(acked)
        })
    });
    let mut acked = 0;
    for r in futures::future::join_all(tasks).await {
        acked += r??;
    }
    let _: u64 = c.incr("wbf:acked", acked).await?;
    let _: u64 = c
        .incr("wbf:waits", cache.stats().wb_backpressure_waits)
        .await?;
    let _: u64 = c.incr("wbf:written", 1).await?;
    while c.get::<_, Option<u64>>("wbf:stop").await?.is_none() {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let claimed = flusher.stats().claimed;
    let report = flusher.shutdown(Duration::from_secs(5)).await;
    let _: u64 = c.incr("wbf:claimed", claimed).await?;
    if report.left_pending != 0 {
        return Err(format!("shutdown left {} entries pending", report.left_pending).into());
    }
    Ok(())
}
