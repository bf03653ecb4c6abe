//! 4 separate OS processes × 250 concurrent misses of one key: with the fill lock, exactly one
//! loader call in the whole fleet; without it, one per process (the control).
//!
//! This test binary re-executes itself: with `SHARDIS_CACHE_FLEET_CHILD` set it is one worker
//! process (a client, a cache and 250 concurrent callers); otherwise it is the test, which
//! starts a 3-primary cluster and the workers. Loader calls are counted in Redis.

use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use redis::AsyncCommands;
use shardis_cache::{Cache, FillLock, LockTimeout};

const CHILD: &str = "SHARDIS_CACHE_FLEET_CHILD";
const PROCESSES: usize = 4;
const CALLERS: usize = 250;

mod support;

fn main() -> ExitCode {
    let Some(runtime) = support::runtime() else {
        return ExitCode::FAILURE;
    };
    let result = match std::env::var(CHILD) {
        Ok(spec) => runtime.block_on(child(&spec)),
        Err(_) => {
            // Honour a test-name filter the way libtest would.
            let args: Vec<String> = std::env::args().skip(1).collect();
            let name = "four_processes_one_load_with_the_fill_lock";
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
            println!(
                "test {name} ... {}",
                if r.is_ok() { "ok" } else { "FAILED" }
            );
            let (p, f) = if r.is_ok() { (1, 0) } else { (0, 1) };
            println!(
                "\ntest result: {}. {p} passed; {f} failed; 0 ignored; 0 measured; 0 filtered out",
                if r.is_ok() { "ok" } else { "FAILED" }
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

type Res<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

/// One round: `PROCESSES` workers on key `round`, the lock on or off; returns the loads.
async fn round(seeds: &[String], round: &str, lock: bool) -> Res<u64> {
    let exe = std::env::current_exe()?;
    let client = shardis::Client::builder()
        .cluster(seeds.to_vec())
        .build()
        .await?;
    let mut c = client.clone();
    let mut children = Vec::new();
    for _ in 0..PROCESSES {
        children.push(
            Command::new(&exe)
                .env(CHILD, format!("{}|{round}|{lock}", seeds.join(",")))
                .stdout(Stdio::inherit())
                .stderr(Stdio::inherit())
                .spawn()?,
        );
    }
    // Start them together once all are connected.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let ready: Option<u64> = c.get(format!("fleet:{round}:ready")).await?;
        if ready == Some(PROCESSES as u64) {
            break;
        }
        if Instant::now() > deadline {
            return Err("workers did not get ready".into());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let _: () = c.set(format!("fleet:{round}:go"), 1).await?;
    let statuses = tokio::task::spawn_blocking(move || {
        children
            .into_iter()
            .map(|mut ch| ch.wait())
            .collect::<Vec<_>>()
    })
    .await?;
    for s in statuses {
        if !s?.success() {
            return Err("a worker process failed".into());
        }
    }
    let loads: Option<u64> = c.get(format!("fleet:{round}:loads")).await?;
    Ok(loads.unwrap_or(0))
}

async fn parent() -> Res<()> {
    let cluster = shardis_testkit::Cluster::builder()
        .primaries(3)
        .replicas_per_primary(0)
        .start()
        .await?;
    let seeds = cluster.seeds();
    let locked = round(&seeds, "locked", true).await?;
    let unlocked = round(&seeds, "unlocked", false).await?;
    eprintln!(
        "{PROCESSES} processes x {CALLERS} callers: {locked} load(s) with the fill lock, {unlocked} without"
    );
    if locked != 1 {
        return Err(format!("{locked} loads with the fill lock, expected exactly 1").into());
    }
    // Control: single-flight alone is per process, so the fleet loads once per process.
    if unlocked != PROCESSES as u64 {
        return Err(format!("{unlocked} loads without the lock, expected {PROCESSES}").into());
    }
    Ok(())
}

async fn child(spec: &str) -> Res<()> {
    let mut parts = spec.split('|');
    let (Some(seeds), Some(round), Some(lock)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(format!("bad {CHILD}: {spec}").into());
    };
    let round = round.to_string();
    let seeds: Vec<String> = seeds.split(',').map(str::to_string).collect();
    let client = shardis::Client::builder().cluster(seeds).build().await?;
    let mut builder = Cache::<String>::builder(client.clone())
        .namespace(format!("fleet-{round}"))
        .ttl(Duration::from_secs(60));
    if lock == "true" {
        builder = builder.fill_lock(FillLock {
            ttl: Duration::from_secs(10),
            wait: Duration::from_secs(20),
            on_timeout: LockTimeout::Fail,
        });
    }
    let cache = builder.build()?;
    let mut c = client.clone();
    let _: u64 = c.incr(format!("fleet:{round}:ready"), 1).await?;
    let deadline = Instant::now() + Duration::from_secs(60);
    while c
        .get::<_, Option<u64>>(format!("fleet:{round}:go"))
        .await?
        .is_none()
    {
        if Instant::now() > deadline {
            return Err("no go signal".into());
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let pid = std::process::id().to_string();
    let calls = (0..CALLERS).map(|_| {
        let (cache, client, round, pid) =
            (cache.clone(), client.clone(), round.clone(), pid.clone());
        tokio::spawn(async move {
            cache
                .get_or_load("the-key", move || async move {
                    let mut c = client;
                    let _: u64 = c.incr(format!("fleet:{round}:loads"), 1).await?;
                    // Long enough that every process misses before any stores.
                    tokio::time::sleep(Duration::from_millis(1000)).await;
                    Ok::<_, Box<dyn std::error::Error + Send + Sync>>(format!("value from {pid}"))
                })
                .await
        })
    });
    let results = futures::future::join_all(calls).await;
    let mut values = std::collections::HashSet::new();
    for r in results {
        values.insert(r??);
    }
    if values.len() != 1 {
        return Err(format!("callers of one process got different values: {values:?}").into());
    }
    Ok(())
}
