//! `vs-peers`: shardis against its peers under the same load, on the same servers, in one run.
//!
//! Cluster workload (3 primaries × 1 replica, started here through the testkit unless
//! `--cluster` is given): shardis, redis-rs `cluster_async`, fred (cluster mode), and
//! `redis-benchmark --cluster` (plain, and with `-P 16` as the pipelined ceiling).
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

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use clap::Parser;
use fred::prelude::{ClientLike, KeysInterface};
use hdrhistogram::Histogram;
use rand::{Rng, SeedableRng, rngs::StdRng};
use redis::Value;
use serde::Serialize;

#[derive(Parser, Debug)]
#[command(
    name = "vs-peers",
    about = "Load benchmark: shardis vs redis-rs cluster_async, fred, redis-benchmark, twemproxy",
    after_help = "Examples:\n  \
        cargo run --release -p shardis-benches --bin vs-peers\n  \
        cargo run --release -p shardis-benches --bin vs-peers -- --duration 10s -c 64,256 --json\n  \
        cargo run --release -p shardis-benches --bin vs-peers -- --cluster 127.0.0.1:7000 --skip-ring"
)]
struct Args {
    /// Use this existing cluster instead of starting one.
    #[arg(long, value_name = "HOST:PORT")]
    cluster: Option<String>,
    /// Measured time per cell.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    duration: Duration,
    /// Unmeasured warm-up per cell.
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    warmup: Duration,
    /// Rounds of the whole interleaved schedule; each cell reports its median round (by ops/s),
    /// which damps noise from other processes on a shared machine.
    #[arg(long, default_value_t = 1)]
    rounds: usize,
    /// Concurrency levels.
    #[arg(long, short = 'c', value_delimiter = ',', default_value = "1,64,256")]
    concurrency: Vec<usize>,
    /// Key space.
    #[arg(long, default_value_t = 100_000)]
    keys: u64,
    /// Value size in bytes.
    #[arg(long, default_value_t = 100)]
    value_size: usize,
    /// Fraction of GETs.
    #[arg(long, default_value_t = 0.9)]
    read_ratio: f64,
    /// Skip the cluster workload.
    #[arg(long)]
    skip_cluster: bool,
    /// Skip the ring workload.
    #[arg(long)]
    skip_ring: bool,
    /// Skip redis-benchmark.
    #[arg(long)]
    skip_redis_benchmark: bool,
    /// The twemproxy binary.
    #[arg(long, default_value = "/usr/sbin/nutcracker")]
    nutcracker: PathBuf,
    /// The redis-benchmark binary.
    #[arg(long, default_value = "redis-benchmark")]
    redis_benchmark: PathBuf,
    /// Run only the clients whose name contains this (e.g. `shardis`, `fred`), repeatable.
    #[arg(long)]
    only: Vec<String>,
    /// JSON instead of a table.
    #[arg(long)]
    json: bool,
}

impl Args {
    fn wants(&self, client: &str) -> bool {
        self.only.is_empty() || self.only.iter().any(|o| client.contains(o.as_str()))
    }
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    let (num, scale) = if let Some(n) = s.strip_suffix("ms") {
        (n, 0.001)
    } else if let Some(n) = s.strip_suffix('s') {
        (n, 1.0)
    } else {
        (s, 1.0)
    };
    let v: f64 = num
        .parse()
        .map_err(|_| format!("{s:?}: use e.g. 5s or 500ms"))?;
    if v <= 0.0 {
        return Err(format!("{s:?}: must be positive"));
    }
    Ok(Duration::from_secs_f64(v * scale))
}

/// One measured cell of the table.
#[derive(Clone, Debug, Serialize)]
struct Cell {
    workload: &'static str,
    client: String,
    concurrency: usize,
    ops_per_sec: f64,
    p50_us: Option<f64>,
    p99_us: Option<f64>,
    p999_us: Option<f64>,
    errors: Option<u64>,
    /// ops/s of this cell divided by shardis' at the same workload and concurrency.
    ops_ratio_to_shardis: Option<f64>,
    /// p99 of this cell divided by shardis'.
    p99_ratio_to_shardis: Option<f64>,
    note: Option<String>,
}

/// A Rust client under test; cloned into every task.
#[derive(Clone)]
enum Peer {
    Shardis(shardis::Client),
    RedisCluster(redis::cluster_async::ClusterConnection),
    Fred(fred::prelude::Client),
    Multiplexed(redis::aio::MultiplexedConnection),
}

impl Peer {
    async fn call(&mut self, key: &[u8], value: Option<&[u8]>) -> Result<(), String> {
        let cmd = || {
            // Sized up front: growing the buffer argument by argument was ~4% of the client
            // CPU in the profile, for shardis and redis-rs alike.
            let size = 3 + key.len() + value.map_or(0, <[u8]>::len);
            let mut c = redis::Cmd::with_capacity(3, size);
            c.arg(if value.is_some() { "SET" } else { "GET" });
            c.arg(key);
            if let Some(v) = value {
                c.arg(v);
            }
            c
        };
        let reply = match self {
            Peer::Shardis(c) => c.send(&cmd()).await.map_err(|e| e.to_string())?,
            Peer::RedisCluster(c) => cmd()
                .query_async::<Value>(c)
                .await
                .map_err(|e| e.to_string())?,
            Peer::Multiplexed(c) => cmd()
                .query_async::<Value>(c)
                .await
                .map_err(|e| e.to_string())?,
            Peer::Fred(c) => {
                // Bytes keys/values, raw reply: no conversion cost beyond the protocol's.
                let key = fred::bytes::Bytes::copy_from_slice(key);
                let r = match value {
                    Some(v) => {
                        c.set::<fred::prelude::Value, _, _>(
                            key,
                            fred::bytes::Bytes::copy_from_slice(v),
                            None,
                            None,
                            false,
                        )
                        .await
                    }
                    None => c.get::<fred::prelude::Value, _>(key).await,
                };
                return r.map(|_| ()).map_err(|e| e.to_string());
            }
        };
        match reply {
            Value::ServerError(e) => Err(format!("{e:?}")),
            _ => Ok(()),
        }
    }
}

fn histogram() -> Histogram<u64> {
    // Nanoseconds, 100 ns .. 60 s.
    Histogram::new_with_bounds(100, 60_000_000_000, 3).expect("bounds")
}

/// `key:` and `i` in 12 digits, as redis-benchmark's `key:__rand_int__` names them. Written
/// by hand: `format!` here cost every Rust client ~2% of its CPU share in the profile.
fn key(i: u64, buf: &mut Vec<u8>) {
    buf.clear();
    buf.extend_from_slice(b"key:");
    let mut digits = [b'0'; 12];
    let mut rest = i;
    for d in digits.iter_mut().rev() {
        *d = b'0' + (rest % 10) as u8;
        rest /= 10;
    }
    if rest == 0 {
        buf.extend_from_slice(&digits);
    } else {
        buf.extend_from_slice(i.to_string().as_bytes());
    }
}

/// Latency tables, one per thread that runs client tasks: every task on a thread records into
/// the same small table, which stays in that core's cache. (A table or a sample buffer per
/// task cost every Rust client ~5% of its CPU share in cache misses or page faults.)
static LATENCIES: std::sync::LazyLock<Vec<std::sync::Mutex<Latencies>>> =
    std::sync::LazyLock::new(|| (0..64).map(|_| Default::default()).collect());

fn record_latency(ns: u128) {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    thread_local!(static SLOT: usize = NEXT.fetch_add(1, Ordering::Relaxed) % 64);
    let slot = SLOT.with(|s| *s);
    if let Some(table) = LATENCIES.get(slot) {
        table.lock().unwrap_or_else(|e| e.into_inner()).record(ns);
    }
}

/// Everything recorded since the last call, as one histogram; the tables start empty again.
fn take_latencies() -> Histogram<u64> {
    let mut total = histogram();
    for table in LATENCIES.iter() {
        let taken = std::mem::take(&mut *table.lock().unwrap_or_else(|e| e.into_inner()));
        let _ = total.add(taken.into_histogram());
    }
    total
}

/// Latency counts in nanoseconds: exact below 128 ns, then 128 buckets per power of
/// two (under 0.8% relative error), up to 2^40 ns.
struct Latencies {
    counts: Vec<u32>,
}

impl Default for Latencies {
    fn default() -> Self {
        Latencies {
            counts: vec![0; Self::BUCKETS],
        }
    }
}

impl Latencies {
    const SUB_BITS: u32 = 7;
    const BUCKETS: usize = ((40 - Self::SUB_BITS as usize) + 1) << Self::SUB_BITS;

    fn index(ns: u64) -> usize {
        let ns = ns.min((1 << 40) - 1);
        if ns < 1 << Self::SUB_BITS {
            return ns as usize;
        }
        let exp = 63 - ns.leading_zeros(); // >= SUB_BITS
        let shift = exp - Self::SUB_BITS;
        let sub = (ns >> shift) as usize & ((1 << Self::SUB_BITS) - 1);
        ((shift as usize + 1) << Self::SUB_BITS) + sub
    }

    /// The middle of bucket `i`'s range.
    fn value(i: usize) -> u64 {
        let sub_count = 1usize << Self::SUB_BITS;
        if i < sub_count {
            return i as u64;
        }
        let shift = (i >> Self::SUB_BITS) as u32 - 1;
        let sub = (i & (sub_count - 1)) as u64;
        let low = (sub | (1 << Self::SUB_BITS)) << shift;
        low + ((1u64 << shift) >> 1)
    }

    fn record(&mut self, ns: u128) {
        let i = Self::index(ns.min(u128::from(u64::MAX)) as u64);
        if let Some(c) = self.counts.get_mut(i) {
            *c = c.saturating_add(1);
        }
    }

    fn into_histogram(self) -> Histogram<u64> {
        let mut hist = histogram();
        for (i, &n) in self.counts.iter().enumerate() {
            if n > 0 {
                let _ = hist.record_n(Self::value(i).max(100), u64::from(n));
            }
        }
        hist
    }
}

/// Runs one cell: `concurrency` tasks sharing `peer`, warm-up, then `duration` measured.
async fn run_rust(
    workload: &'static str,
    name: &str,
    peer: &Peer,
    concurrency: usize,
    args: &Args,
) -> Cell {
    let measuring = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let errors = Arc::new(AtomicU64::new(0));
    let last_error = Arc::new(std::sync::Mutex::new(None::<String>));
    let value: Arc<[u8]> = vec![b'v'; args.value_size].into();
    let mut tasks = Vec::with_capacity(concurrency);
    for t in 0..concurrency {
        let mut peer = peer.clone();
        let (measuring, stop, errors, last_error, value) = (
            measuring.clone(),
            stop.clone(),
            errors.clone(),
            last_error.clone(),
            value.clone(),
        );
        let (keys, read_ratio) = (args.keys, args.read_ratio);
        tasks.push(tokio::spawn(async move {
            let mut rng = StdRng::seed_from_u64(t as u64 * 7919 + 1);
            let mut buf = Vec::with_capacity(24);
            while !stop.load(Ordering::Relaxed) {
                key(rng.random_range(0..keys), &mut buf);
                let write = !rng.random_bool(read_ratio);
                let started = Instant::now();
                let r = peer.call(&buf, write.then_some(&value[..])).await;
                if measuring.load(Ordering::Relaxed) {
                    record_latency(started.elapsed().as_nanos());
                    if let Err(e) = r {
                        errors.fetch_add(1, Ordering::Relaxed);
                        *last_error.lock().unwrap() = Some(e);
                    }
                }
            }
        }));
    }
    tokio::time::sleep(args.warmup).await;
    measuring.store(true, Ordering::Relaxed);
    let started = Instant::now();
    tokio::time::sleep(args.duration).await;
    measuring.store(false, Ordering::Relaxed);
    let secs = started.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        let _ = t.await;
    }
    let total = take_latencies();
    let q = |q: f64| Some(total.value_at_quantile(q) as f64 / 1000.0);
    let note = last_error
        .lock()
        .unwrap()
        .clone()
        .map(|e| format!("last error: {e}"));
    Cell {
        workload,
        client: name.to_string(),
        concurrency,
        ops_per_sec: total.len() as f64 / secs,
        p50_us: q(0.5),
        p99_us: q(0.99),
        p999_us: q(0.999),
        errors: Some(errors.load(Ordering::Relaxed)),
        ops_ratio_to_shardis: None,
        p99_ratio_to_shardis: None,
        note,
    }
}

/// `redis-benchmark --cluster`: a SET run then a GET run sized from `est_rate` so that together
/// they take about `duration` with the configured read ratio; ops/s is the harmonic mix of
/// the two rates (as a 90/10 interleaving would see), percentiles are the GET run's (no p99.9:
/// redis-benchmark does not print it).
async fn run_redis_benchmark(
    host: &str,
    port: u16,
    concurrency: usize,
    pipeline: usize,
    est_rate: f64,
    args: &Args,
) -> Cell {
    // In cluster mode redis-benchmark needs at least one client per primary.
    let clients = concurrency.max(3);
    let secs = args.duration.as_secs_f64();
    let n_get = ((est_rate * secs * args.read_ratio) as u64).max(20_000);
    let n_set = ((est_rate * secs * (1.0 - args.read_ratio)) as u64).max(5_000);
    let run = |test: &'static str, n: u64| {
        let mut cmd = tokio::process::Command::new(&args.redis_benchmark);
        cmd.args([
            "-h",
            host,
            "-p",
            &port.to_string(),
            "--cluster",
            "--csv",
            "-t",
            test,
        ])
        .args(["-c", &clients.to_string(), "-n", &n.to_string()])
        .args([
            "-d",
            &args.value_size.to_string(),
            "-r",
            &args.keys.to_string(),
        ])
        .args(["-P", &pipeline.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
        async move {
            let out = cmd
                .output()
                .await
                .map_err(|e| format!("running redis-benchmark: {e}"))?;
            let text = String::from_utf8_lossy(&out.stdout).into_owned();
            parse_csv(&text, test).ok_or_else(|| {
                format!(
                    "redis-benchmark {test} gave no result ({}): {} {}",
                    out.status,
                    text.trim(),
                    String::from_utf8_lossy(&out.stderr).trim()
                )
            })
        }
    };
    let client = if pipeline > 1 {
        format!("redis-benchmark -P {pipeline}")
    } else {
        "redis-benchmark".to_string()
    };
    let result = async {
        let set = run("set", n_set).await?;
        let get = run("get", n_get).await?;
        Ok::<_, String>((set, get))
    }
    .await;
    match result {
        Ok((set, get)) => {
            let mixed = 1.0 / (args.read_ratio / get.0 + (1.0 - args.read_ratio) / set.0);
            Cell {
                workload: "cluster",
                client,
                concurrency,
                ops_per_sec: mixed,
                p50_us: Some(get.1 * 1000.0),
                p99_us: Some(get.2 * 1000.0),
                p999_us: None,
                errors: None,
                ops_ratio_to_shardis: None,
                p99_ratio_to_shardis: None,
                note: Some(format!(
                    "GET {:.0}/s, SET {:.0}/s; percentiles of the GET run{}",
                    get.0,
                    set.0,
                    if clients != concurrency {
                        format!("; ran with -c {clients} (one client per primary at least)")
                    } else {
                        String::new()
                    }
                )),
            }
        }
        Err(e) => Cell {
            workload: "cluster",
            client,
            concurrency,
            ops_per_sec: 0.0,
            p50_us: None,
            p99_us: None,
            p999_us: None,
            errors: None,
            ops_ratio_to_shardis: None,
            p99_ratio_to_shardis: None,
            note: Some(e),
        },
    }
}

/// `(rps, p50 ms, p99 ms)` of `test` in redis-benchmark's CSV output.
fn parse_csv(text: &str, test: &str) -> Option<(f64, f64, f64)> {
    let mut lines = text.lines().skip_while(|l| !l.starts_with("\"test\""));
    let header: Vec<String> = lines
        .next()?
        .split(',')
        .map(|s| s.trim_matches('"').to_string())
        .collect();
    let col = |name: &str| header.iter().position(|h| h == name);
    let (rps, p50, p99) = (col("rps")?, col("p50_latency_ms")?, col("p99_latency_ms")?);
    for line in lines {
        let f: Vec<&str> = line.split(',').map(|s| s.trim_matches('"')).collect();
        if f.first()?.eq_ignore_ascii_case(test) {
            return Some((
                f.get(rps)?.parse().ok()?,
                f.get(p50)?.parse().ok()?,
                f.get(p99)?.parse().ok()?,
            ));
        }
    }
    None
}

/// Writes every key once through `conn` (pipelines of 1000, 4 in flight).
async fn preload<C>(conn: &C, args: &Args) -> Result<(), String>
where
    C: redis::aio::ConnectionLike + Clone + Send + 'static,
{
    use futures::StreamExt;
    let value = vec![b'v'; args.value_size];
    let mut pipes = Vec::new();
    let mut buf = Vec::new();
    let mut start = 0;
    while start < args.keys {
        let end = (start + 1000).min(args.keys);
        let mut pipe = redis::pipe();
        for i in start..end {
            key(i, &mut buf);
            pipe.cmd("SET").arg(&buf[..]).arg(&value[..]).ignore();
        }
        pipes.push(pipe);
        start = end;
    }
    let mut results = futures::stream::iter(pipes.into_iter().map(|pipe| {
        let mut conn = conn.clone();
        async move { pipe.query_async::<()>(&mut conn).await }
    }))
    .buffer_unordered(4);
    while let Some(r) = results.next().await {
        r.map_err(|e| format!("preloading keys: {e}"))?;
    }
    Ok(())
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

async fn connect_plain(addr: &str) -> Result<redis::aio::MultiplexedConnection, String> {
    // No CLIENT SETINFO: twemproxy rejects commands it does not know and closes the connection.
    let info = redis::IntoConnectionInfo::into_connection_info(format!("redis://{addr}/"))
        .map_err(|e| e.to_string())?;
    let settings = info.redis_settings().clone().set_skip_set_lib_name();
    let info = info.set_redis_settings(settings);
    let config = redis::AsyncConnectionConfig::new()
        .set_connection_timeout(Some(Duration::from_secs(2)))
        .set_response_timeout(Some(Duration::from_secs(5)));
    redis::Client::open(info)
        .map_err(|e| e.to_string())?
        .get_multiplexed_async_connection_with_config(&config)
        .await
        .map_err(|e| format!("connecting to {addr}: {e}"))
}

/// A running twemproxy; killed on drop.
struct Twemproxy {
    child: tokio::process::Child,
    addr: String,
    _dir: tempfile::TempDir,
}

impl Drop for Twemproxy {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

async fn start_twemproxy(bin: &PathBuf, nodes: &[String]) -> Result<Twemproxy, String> {
    if !bin.exists() {
        return Err(format!(
            "{} not found: install twemproxy with `sudo apt-get install -y nutcracker` or pass --nutcracker PATH",
            bin.display()
        ));
    }
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let port = free_port();
    let stats_port = free_port();
    let servers: String = nodes.iter().map(|n| format!("   - {n}:1\n")).collect();
    let conf = format!(
        "shardis_bench:\n  listen: 127.0.0.1:{port}\n  hash: fnv1a_64\n  distribution: ketama\n  \
         redis: true\n  auto_eject_hosts: false\n  timeout: 5000\n  server_connections: 1\n  servers:\n{servers}"
    );
    let conf_path = dir.path().join("nutcracker.yml");
    std::fs::write(&conf_path, conf).map_err(|e| e.to_string())?;
    let child = tokio::process::Command::new(bin)
        .arg("-c")
        .arg(&conf_path)
        .args(["-s", &stats_port.to_string(), "-a", "127.0.0.1"])
        .arg("-o")
        .arg(dir.path().join("nutcracker.log"))
        .arg("-p")
        .arg(dir.path().join("nutcracker.pid"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("starting {}: {e}", bin.display()))?;
    let addr = format!("127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(5);
    while tokio::net::TcpStream::connect(&addr).await.is_err() {
        if Instant::now() > deadline {
            return Err(format!("twemproxy did not listen on {addr} within 5 s"));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(Twemproxy {
        child,
        addr,
        _dir: dir,
    })
}

async fn cluster_workload(args: &Args, cells: &mut Vec<Cell>) -> Result<(), String> {
    let _cluster;
    let seeds: Vec<String> = match &args.cluster {
        Some(addr) => vec![addr.clone()],
        None => {
            eprintln!("starting a local cluster: 3 primaries × 1 replica ...");
            let c = shardis_testkit::Cluster::builder()
                .primaries(3)
                .replicas_per_primary(1)
                .start()
                .await
                .map_err(|e| format!("cannot start a local cluster: {e}"))?;
            let seeds = c.seeds();
            _cluster = c;
            seeds
        }
    };
    let (host, port) = {
        let e = shardis::slots::Endpoint::parse(&seeds[0]).map_err(|e| e.to_string())?;
        (e.host, e.port)
    };
    let shardis = shardis::Client::builder()
        .cluster(seeds.clone())
        .build()
        .await
        .map_err(|e| format!("shardis: {e}"))?;
    let redis_rs =
        redis::cluster::ClusterClient::new(seeds.iter().map(|s| format!("redis://{s}/")))
            .map_err(|e| format!("redis-rs cluster client: {e}"))?
            .get_async_connection()
            .await
            .map_err(|e| format!("redis-rs cluster_async: {e}"))?;
    let fred = {
        let config = fred::prelude::Config {
            server: fred::prelude::ServerConfig::new_clustered(vec![(host.clone(), port)]),
            ..Default::default()
        };
        let client = fred::prelude::Builder::from_config(config)
            .build()
            .map_err(|e| format!("fred: {e}"))?;
        client.init().await.map_err(|e| format!("fred: {e}"))?;
        client
    };
    eprintln!("preloading {} keys ...", args.keys);
    preload(&shardis, args).await?;
    let peers = [
        ("shardis", Peer::Shardis(shardis)),
        ("redis-rs cluster_async", Peer::RedisCluster(redis_rs)),
        ("fred", Peer::Fred(fred)),
    ];
    for round in 0..args.rounds.max(1) {
        for &c in &args.concurrency {
            let mut shardis_rate = 0.0;
            for (name, peer) in in_turn(&peers, round).filter(|p| args.wants(p.0)) {
                eprintln!("round {}: cluster c={c}: {name} ...", round + 1);
                let cell = run_rust("cluster", name, peer, c, args).await;
                if *name == "shardis" {
                    shardis_rate = cell.ops_per_sec;
                }
                cells.push(cell);
            }
            if !args.skip_redis_benchmark && args.wants("redis-benchmark") {
                for pipeline in [1, 16] {
                    eprintln!("cluster c={c}: redis-benchmark -P {pipeline} ...");
                    let est = (shardis_rate * if pipeline > 1 { 6.0 } else { 1.5 }).max(20_000.0);
                    cells.push(run_redis_benchmark(&host, port, c, pipeline, est, args).await);
                }
            }
        }
    }
    Ok(())
}

/// The clients of one round, starting one further along each round: every client gets every
/// place in the order, so none always runs right after the same (heavier or lighter) neighbour.
fn in_turn<T>(peers: &[T], round: usize) -> impl Iterator<Item = &T> {
    let n = peers.len().max(1);
    (0..peers.len()).filter_map(move |k| peers.get((k + round) % n))
}

async fn ring_workload(args: &Args, cells: &mut Vec<Cell>) -> Result<(), String> {
    eprintln!("starting 3 standalone nodes and twemproxy ...");
    let nodes = shardis_testkit::Standalone::start(3)
        .await
        .map_err(|e| format!("cannot start standalone nodes: {e}"))?;
    let addrs = nodes.addrs();
    let twemproxy = start_twemproxy(&args.nutcracker, &addrs).await?;
    let shardis = shardis::Client::builder()
        .ring(addrs.iter().map(|a| shardis::RingNode::at(a.clone())))
        .build()
        .await
        .map_err(|e| format!("shardis ring mode: {e}"))?;
    let via_proxy = connect_plain(&twemproxy.addr).await?;
    let direct = connect_plain(&addrs[0]).await?;
    eprintln!("preloading {} keys (through each path) ...", args.keys);
    preload(&shardis, args).await?;
    preload(&via_proxy, args).await?;
    preload(&direct, args).await?;
    let peers = [
        ("shardis ring", Peer::Shardis(shardis)),
        ("redis-rs via twemproxy", Peer::Multiplexed(via_proxy)),
        ("redis-rs direct (1 node)", Peer::Multiplexed(direct)),
    ];
    for round in 0..args.rounds.max(1) {
        for &c in &args.concurrency {
            for (name, peer) in in_turn(&peers, round).filter(|p| args.wants(p.0)) {
                eprintln!("round {}: ring c={c}: {name} ...", round + 1);
                cells.push(run_rust("ring", name, peer, c, args).await);
            }
        }
    }
    drop(twemproxy);
    Ok(())
}

/// One cell per (workload, client, concurrency): the median round by ops/s, with the spread
/// of all rounds in its note.
fn median_rounds(cells: Vec<Cell>, rounds: usize) -> Vec<Cell> {
    if rounds <= 1 {
        return cells;
    }
    let mut out: Vec<Cell> = Vec::new();
    let mut seen: Vec<(&'static str, String, usize)> = Vec::new();
    for c in &cells {
        let id = (c.workload, c.client.clone(), c.concurrency);
        if seen.contains(&id) {
            continue;
        }
        let mut same: Vec<&Cell> = cells
            .iter()
            .filter(|x| x.workload == id.0 && x.client == id.1 && x.concurrency == id.2)
            .collect();
        same.sort_by(|a, b| a.ops_per_sec.total_cmp(&b.ops_per_sec));
        let mut median = same[same.len() / 2].clone();
        let spread = format!(
            "median of {} rounds (ops/s {:.0}..{:.0})",
            same.len(),
            same[0].ops_per_sec,
            same[same.len() - 1].ops_per_sec
        );
        median.note = Some(match median.note.take() {
            Some(n) => format!("{spread}; {n}"),
            None => spread,
        });
        median.errors = same.iter().map(|x| x.errors).sum();
        out.push(median);
        seen.push(id);
    }
    out
}

fn fill_ratios(cells: &mut [Cell]) {
    let base: Vec<(&'static str, usize, f64, Option<f64>)> = cells
        .iter()
        .filter(|c| c.client.starts_with("shardis"))
        .map(|c| (c.workload, c.concurrency, c.ops_per_sec, c.p99_us))
        .collect();
    for cell in cells.iter_mut() {
        if let Some((_, _, ops, p99)) = base
            .iter()
            .find(|b| b.0 == cell.workload && b.1 == cell.concurrency)
        {
            if *ops > 0.0 {
                cell.ops_ratio_to_shardis = Some(cell.ops_per_sec / ops);
            }
            if let (Some(mine), Some(theirs)) = (cell.p99_us, p99)
                && *theirs > 0.0
            {
                cell.p99_ratio_to_shardis = Some(mine / theirs);
            }
        }
    }
}

fn print_table(cells: &[Cell]) {
    let opt = |v: Option<f64>, f: &dyn Fn(f64) -> String| v.map_or("-".to_string(), f);
    let rows: Vec<Vec<String>> = cells
        .iter()
        .map(|c| {
            vec![
                c.workload.to_string(),
                c.client.clone(),
                c.concurrency.to_string(),
                format!("{:.0}", c.ops_per_sec),
                opt(c.p50_us, &|v| format!("{:.3}", v / 1000.0)),
                opt(c.p99_us, &|v| format!("{:.3}", v / 1000.0)),
                opt(c.p999_us, &|v| format!("{:.3}", v / 1000.0)),
                c.errors.map_or("-".into(), |e| e.to_string()),
                opt(c.ops_ratio_to_shardis, &|v| format!("{v:.2}x")),
                opt(c.p99_ratio_to_shardis, &|v| format!("{v:.2}x")),
                c.note.clone().unwrap_or_default(),
            ]
        })
        .collect();
    let header = [
        "workload",
        "client",
        "conc",
        "ops/s",
        "p50 ms",
        "p99 ms",
        "p999 ms",
        "errors",
        "ops vs shardis",
        "p99 vs shardis",
        "note",
    ];
    let mut width: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for r in &rows {
        for (i, c) in r.iter().enumerate().take(header.len() - 1) {
            width[i] = width[i].max(c.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        let mut s = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                s.push_str(c);
            } else if i < 2 {
                s.push_str(&format!("{c:<w$}  ", w = width[i]));
            } else {
                s.push_str(&format!("{c:>w$}  ", w = width[i]));
            }
        }
        println!("{}", s.trim_end());
    };
    line(header.iter().map(|s| s.to_string()).collect());
    for r in rows {
        line(r);
    }
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let mut cells = Vec::new();
    let mut failed = false;
    if !args.skip_cluster
        && let Err(e) = cluster_workload(&args, &mut cells).await
    {
        eprintln!("error: cluster workload: {e}");
        failed = true;
    }
    if !args.skip_ring
        && let Err(e) = ring_workload(&args, &mut cells).await
    {
        eprintln!("error: ring workload: {e}");
        failed = true;
    }
    let mut cells = median_rounds(cells, args.rounds);
    fill_ratios(&mut cells);
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&cells).expect("serialisable")
        );
    } else {
        println!(
            "{} keys, {}-byte values, {:.0}% GET, warm-up {:?}, {:?} per cell",
            args.keys,
            args.value_size,
            args.read_ratio * 100.0,
            args.warmup,
            args.duration
        );
        print_table(&cells);
    }
    if failed {
        std::process::ExitCode::FAILURE
    } else {
        std::process::ExitCode::SUCCESS
    }
}

#[cfg(test)]
mod tests {
    use super::{Latencies, in_turn, key};

    #[test]
    fn latency_buckets_keep_values_within_one_percent() {
        for ns in [
            0u64,
            1,
            127,
            128,
            129,
            1_000,
            54_321,
            1_234_567,
            987_654_321,
            1 << 39,
        ] {
            let back = Latencies::value(Latencies::index(ns));
            let error = (back as f64 - ns as f64).abs() / (ns.max(1) as f64);
            assert!(error < 0.01, "{ns} came back as {back}");
        }
        let mut l = Latencies::default();
        for ns in 1..=100_000u128 {
            l.record(ns * 10);
        }
        let hist = l.into_histogram();
        assert_eq!(hist.len(), 100_000);
        let p99 = hist.value_at_quantile(0.99) as f64;
        assert!((p99 - 990_000.0).abs() / 990_000.0 < 0.01, "p99 {p99}");
    }

    #[test]
    fn each_round_starts_with_the_next_client() {
        let peers = ["a", "b", "c"];
        let order = |round| in_turn(&peers, round).copied().collect::<Vec<_>>();
        assert_eq!(order(0), ["a", "b", "c"]);
        assert_eq!(order(1), ["b", "c", "a"]);
        assert_eq!(order(3), ["a", "b", "c"]);
    }

    #[test]
    fn keys_are_named_like_redis_benchmark_names_them() {
        let mut buf = Vec::new();
        key(42, &mut buf);
        assert_eq!(buf, b"key:000000000042");
        key(999_999_999_999, &mut buf);
        assert_eq!(buf, b"key:999999999999");
        key(10_000_000_000_000, &mut buf);
        assert_eq!(buf, b"key:10000000000000");
    }
}
