//! `shardis demo --stampede`: the cache-stampede exercise. 1,000 concurrent requests for a key
//! that is not cached (it just expired), each of which would load it from a slow "database",
//! three ways: no protection (every caller that misses loads), shardis-cache's in-process
//! single-flight, and its fill lock across separate OS processes (this binary re-runs itself
//! as the workers). Loader calls are counted in Redis, so the counts cover every process.

use std::process::{ExitCode, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use redis::AsyncCommands;
use shardis_cache::{Cache, FillLock, LockTimeout};

use crate::error::{Context, Result, bail};
use crate::nodes::{connect_cluster, start_cluster};

/// What one worker process is told: the cluster, the round, the lock, how many callers.
pub struct Worker {
    seed: String,
    round: String,
    lock: bool,
    callers: usize,
    load_ms: u64,
}

impl Worker {
    fn to_arg(&self) -> String {
        format!(
            "{}|{}|{}|{}|{}",
            self.seed, self.round, self.lock, self.callers, self.load_ms
        )
    }

    /// Parses the hidden `--stampede-worker` argument.
    pub fn parse(s: &str) -> Result<Worker> {
        let p: Vec<&str> = s.split('|').collect();
        let [seed, round, lock, callers, load_ms] = p.as_slice() else {
            bail!("bad --stampede-worker {s:?}");
        };
        Ok(Worker {
            seed: seed.to_string(),
            round: round.to_string(),
            lock: *lock == "true",
            callers: callers.parse().context(|| "callers".into())?,
            load_ms: load_ms.parse().context(|| "load_ms".into())?,
        })
    }
}

/// The "database": counts each load in Redis and takes `load_ms`.
async fn load(mut client: shardis::Client, round: String, load_ms: u64) -> Result<String, String> {
    let _: u64 = client
        .incr(format!("shardis-stampede:{round}:loads"), 1)
        .await
        .map_err(|e| e.to_string())?;
    tokio::time::sleep(Duration::from_millis(load_ms)).await;
    Ok(format!("product row ({round})"))
}

fn cache(client: shardis::Client, round: &str, lock: bool) -> Result<Cache<String>> {
    let mut builder = Cache::<String>::builder(client)
        .namespace(format!("shardis-stampede-{round}"))
        .ttl(Duration::from_secs(60));
    if lock {
        builder = builder.fill_lock(FillLock {
            ttl: Duration::from_secs(10),
            wait: Duration::from_secs(20),
            on_timeout: LockTimeout::LoadAnyway,
        });
    }
    builder.build().context(|| "cache".into())
}

/// `callers` concurrent `get_or_load`s of one key through `cache`.
async fn stampede(
    cache: &Cache<String>,
    client: &shardis::Client,
    round: &str,
    callers: usize,
    load_ms: u64,
) -> Result<()> {
    let calls = (0..callers).map(|_| {
        let (cache, client, round) = (cache.clone(), client.clone(), round.to_string());
        tokio::spawn(async move {
            cache
                .get_or_load("product:42", move || load(client, round, load_ms))
                .await
        })
    });
    for r in futures::future::join_all(calls).await {
        r.context(|| "caller task".into())?
            .context(|| "get_or_load".into())?;
    }
    Ok(())
}

/// One worker process: waits for the go signal, then runs its callers.
pub async fn worker(w: Worker) -> Result<ExitCode> {
    let client = connect_cluster(&w.seed, &Default::default()).await?;
    let cache = cache(client.clone(), &w.round, w.lock)?;
    let mut c = client.clone();
    let _: u64 = c
        .incr(format!("shardis-stampede:{}:ready", w.round), 1)
        .await
        .context(|| "ready".into())?;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let go: Option<u64> = c
            .get(format!("shardis-stampede:{}:go", w.round))
            .await
            .context(|| "go".into())?;
        if go.is_some() {
            break;
        }
        if Instant::now() > deadline {
            bail!("no go signal");
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    stampede(&cache, &client, &w.round, w.callers, w.load_ms).await?;
    Ok(ExitCode::SUCCESS)
}

/// Runs the scene against `cluster` (or a local 3-primary cluster it starts).
pub async fn run(
    cluster: Option<&str>,
    requests: usize,
    processes: usize,
    load_ms: u64,
) -> Result<ExitCode> {
    let local;
    let seed = match cluster {
        Some(addr) => addr.to_string(),
        None => {
            println!("starting a local cluster (3 primaries)...");
            local = start_cluster(3, 0).await?;
            local.seeds().remove(0)
        }
    };
    let client = connect_cluster(&seed, &Default::default()).await?;
    let run_id = format!("{:08x}", rand::random::<u32>());
    let processes = processes.max(1);
    println!(
        "{requests} concurrent requests for a key that just expired; each load takes {load_ms} ms\n"
    );
    println!("| protection | processes | requests | loader calls | time |");
    println!("|---|---|---|---|---|");
    let mut c = client.clone();
    let loads_of = |round: &str| format!("shardis-stampede:{round}:loads");

    // 1. No protection: every caller that misses loads and writes.
    let round = format!("{run_id}-none");
    let key = format!("shardis-stampede:{round}:product:42");
    let _: () = c.set_ex(&key, "old", 1).await.context(|| "SET".into())?;
    while c
        .exists::<_, bool>(&key)
        .await
        .context(|| "EXISTS".into())?
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let started = Instant::now();
    let done = Arc::new(AtomicUsize::new(0));
    let calls = (0..requests).map(|_| {
        let (mut c, key, round, done) = (client.clone(), key.clone(), round.clone(), done.clone());
        tokio::spawn(async move {
            let hit: Option<String> = c.get(&key).await.ok().flatten();
            if hit.is_none()
                && let Ok(v) = load(c.clone(), round, load_ms).await
            {
                let _: Result<(), _> = c.set_ex(&key, v, 60).await;
            }
            done.fetch_add(1, Ordering::Relaxed);
        })
    });
    futures::future::join_all(calls).await;
    let loads: u64 = c
        .get::<_, Option<u64>>(loads_of(&round))
        .await
        .context(|| "GET".into())?
        .unwrap_or(0);
    println!(
        "| none (GET, load on miss, SET) | 1 | {requests} | {loads} | {:.0} ms |",
        started.elapsed().as_secs_f64() * 1e3
    );

    // 2. In-process single-flight.
    let round = format!("{run_id}-single");
    let cache_1 = cache(client.clone(), &round, false)?;
    let started = Instant::now();
    stampede(&cache_1, &client, &round, requests, load_ms).await?;
    let loads: u64 = c
        .get::<_, Option<u64>>(loads_of(&round))
        .await
        .context(|| "GET".into())?
        .unwrap_or(0);
    println!(
        "| single-flight | 1 | {requests} | {loads} | {:.0} ms |",
        started.elapsed().as_secs_f64() * 1e3
    );

    // 3 and 4. Separate processes: single-flight only, then with the fill lock.
    let exe = std::env::current_exe().context(|| "this executable".into())?;
    for (label, lock) in [("single-flight only", false), ("fill lock", true)] {
        let round = format!("{run_id}-{}", if lock { "lock" } else { "procs" });
        let per = requests / processes;
        let mut children = Vec::new();
        for _ in 0..processes {
            let w = Worker {
                seed: seed.clone(),
                round: round.clone(),
                lock,
                callers: per,
                load_ms,
            };
            children.push(
                std::process::Command::new(&exe)
                    .args(["demo", "--stampede-worker", &w.to_arg()])
                    .stdout(Stdio::null())
                    .stderr(Stdio::inherit())
                    .spawn()
                    .context(|| "starting a worker process".into())?,
            );
        }
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let ready: Option<u64> = c
                .get(format!("shardis-stampede:{round}:ready"))
                .await
                .context(|| "GET".into())?;
            if ready == Some(processes as u64) {
                break;
            }
            if Instant::now() > deadline {
                bail!("the worker processes did not start");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let started = Instant::now();
        let _: () = c
            .set(format!("shardis-stampede:{round}:go"), 1)
            .await
            .context(|| "SET".into())?;
        let statuses = tokio::task::spawn_blocking(move || {
            children
                .into_iter()
                .map(|mut ch| ch.wait())
                .collect::<Vec<_>>()
        })
        .await
        .context(|| "waiting for the workers".into())?;
        for s in statuses {
            if !s.context(|| "worker".into())?.success() {
                bail!("a worker process failed");
            }
        }
        let loads: u64 = c
            .get::<_, Option<u64>>(loads_of(&round))
            .await
            .context(|| "GET".into())?
            .unwrap_or(0);
        println!(
            "| {label} | {processes} | {} | {loads} | {:.0} ms |",
            per * processes,
            started.elapsed().as_secs_f64() * 1e3
        );
    }
    // Leave an external cluster as it was: our keys only.
    if cluster.is_some() {
        for suffix in ["none", "single", "procs", "lock"] {
            let round = format!("{run_id}-{suffix}");
            for k in ["loads", "ready", "go", "product:42"] {
                let _: Result<(), _> = c.del(format!("shardis-stampede:{round}:{k}")).await;
            }
            let ns_cache = cache(client.clone(), &round, false)?;
            let _ = ns_cache.invalidate("product:42").await;
        }
    }
    println!(
        "\nsingle-flight shares one load per process; the fill lock shares one load per fleet."
    );
    Ok(ExitCode::SUCCESS)
}
