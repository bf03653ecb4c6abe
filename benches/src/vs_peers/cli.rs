//! The command line of `vs-peers`.

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

/// The arguments of `vs-peers`.
#[derive(Parser, Debug)]
#[command(
    name = "vs-peers",
    about = "Load benchmark: shardis vs redis-rs cluster_async, fred, redis-benchmark, twemproxy",
    after_help = "Examples:\n  \
        cargo run --release -p shardis-benches --bin vs-peers\n  \
        cargo run --release -p shardis-benches --bin vs-peers -- --duration 10s -c 64,256 --json\n  \
        cargo run --release -p shardis-benches --bin vs-peers -- --cluster 127.0.0.1:7000 --skip-ring"
)]
pub struct Args {
    /// Use this existing cluster instead of starting one.
    #[arg(long, value_name = "HOST:PORT")]
    pub cluster: Option<String>,
    /// Measured time per cell.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    pub duration: Duration,
    /// Unmeasured warm-up per cell.
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    pub warmup: Duration,
    /// Rounds of the whole interleaved schedule; each cell reports its median round (by ops/s),
    /// which damps noise from other processes on a shared machine.
    #[arg(long, default_value_t = 1)]
    pub rounds: usize,
    /// Concurrency levels.
    #[arg(long, short = 'c', value_delimiter = ',', default_value = "1,64,256")]
    pub concurrency: Vec<usize>,
    /// Key space.
    #[arg(long, default_value_t = 100_000)]
    pub keys: u64,
    /// Value size in bytes.
    #[arg(long, default_value_t = 100)]
    pub value_size: usize,
    /// Fraction of GETs.
    #[arg(long, default_value_t = 0.9)]
    pub read_ratio: f64,
    /// Skip the cluster workload.
    #[arg(long)]
    pub skip_cluster: bool,
    /// Skip the ring workload.
    #[arg(long)]
    pub skip_ring: bool,
    /// Skip the cluster workload over TLS (a second local cluster with `tls-cluster yes`,
    /// certificates generated for the run; shardis, redis-rs and fred, all with rustls).
    #[arg(long)]
    pub skip_tls: bool,
    /// Skip redis-benchmark.
    #[arg(long)]
    pub skip_redis_benchmark: bool,
    /// The twemproxy binary [default: $SHARDIS_NUTCRACKER, else nutcracker on PATH or in
    /// /usr/sbin].
    #[arg(long, value_name = "PATH")]
    pub nutcracker: Option<PathBuf>,
    /// The redis-benchmark binary.
    #[arg(long, default_value = "redis-benchmark")]
    pub redis_benchmark: PathBuf,
    /// Run only the clients whose name contains this (e.g. `shardis`, `fred`), repeatable.
    #[arg(long)]
    pub only: Vec<String>,
    /// JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

impl Args {
    /// Whether `client` is selected by `--only` (every client is when it is not given).
    pub(crate) fn wants(&self, client: &str) -> bool {
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
