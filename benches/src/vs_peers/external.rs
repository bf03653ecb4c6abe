//! `redis-benchmark --cluster` driven as a process. (twemproxy is started by the testkit:
//! [`shardis_testkit::Twemproxy`].)

use std::process::Stdio;

use super::cli::Args;
use super::cpu;
use super::report::Cell;

/// `redis-benchmark --cluster`: a SET run then a GET run sized from `est_rate` so that together
/// they take about `duration` with the configured read ratio; ops/s is the harmonic mix of
/// the two rates (as a 90/10 interleaving would see), percentiles are the GET run's (no p99.9:
/// redis-benchmark does not print it).
pub(crate) async fn run_redis_benchmark(
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
    let cpu_before = cpu::reaped_children();
    let result = async {
        let set = run("set", n_set).await?;
        let get = run("get", n_get).await?;
        Ok::<_, String>((set, get))
    }
    .await;
    let empty = Cell::empty("cluster", client, concurrency);
    match result {
        Ok((set, get)) => {
            let mixed = 1.0 / (args.read_ratio / get.0 + (1.0 - args.read_ratio) / set.0);
            let cpu_used = cpu::reaped_children().saturating_sub(cpu_before);
            Cell {
                ops_per_sec: mixed,
                cpu_us_per_op: cpu::micros_per_op(cpu_used, n_set + n_get),
                p50_us: Some(get.1 * 1000.0),
                p99_us: Some(get.2 * 1000.0),
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
                ..empty
            }
        }
        Err(e) => Cell {
            note: Some(e),
            ..empty
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
