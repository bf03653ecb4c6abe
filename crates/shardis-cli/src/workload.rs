//! The load generator shared by `demo` and `bench`: `concurrency` tokio tasks share one
//! client, each issuing one command at a time (GET or SET of a key chosen uniformly or by a
//! Zipf law) and recording its latency.

use std::io::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use parking_lot::Mutex;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use rand::{Rng, SeedableRng, rngs::StdRng};
use rand_distr::{Distribution, Zipf};
use redis::Value;

use crate::error::{CliError, Result, bail};
use crate::stats::histogram;

/// What the workload does.
#[derive(Clone, Debug)]
pub struct Spec {
    /// Every key starts with this (so a run against a shared cluster can clean up).
    pub prefix: String,
    /// Size of the key space.
    pub keys: u64,
    /// Bytes per value written.
    pub value_size: usize,
    /// Fraction of commands that are GET (the rest are SET).
    pub read_ratio: f64,
    /// Tasks sharing the client.
    pub concurrency: usize,
    /// Zipf exponent of key popularity; `None` for uniform.
    pub zipf: Option<f64>,
}

impl Spec {
    /// Rejects settings that cannot work.
    pub fn validate(&self) -> Result<()> {
        if self.keys == 0 {
            bail!("--keys must be at least 1");
        }
        if !(0.0..=1.0).contains(&self.read_ratio) {
            bail!("--read-ratio must be between 0 and 1 (e.g. 0.9 for 90% GET)");
        }
        if self.concurrency == 0 {
            bail!("--concurrency must be at least 1");
        }
        if let Some(s) = self.zipf
            && !(s.is_finite() && s > 0.0)
        {
            bail!("--zipf must be a positive exponent, e.g. 0.99");
        }
        Ok(())
    }

    /// The name of key `i`.
    pub fn key(&self, i: u64, buf: &mut Vec<u8>) {
        buf.clear();
        buf.extend_from_slice(self.prefix.as_bytes());
        let _ = write!(buf, "{i}");
    }
}

/// Counters and latency windows the display reads while the workload runs.
pub struct Live {
    /// Commands completed.
    pub ops: AtomicU64,
    /// Commands whose caller saw an error.
    pub errors: AtomicU64,
    /// The most recent error a caller saw.
    pub last_error: Mutex<Option<String>>,
    windows: Vec<Mutex<Histogram<u64>>>,
    stop: AtomicBool,
}

impl Live {
    /// Counters for `concurrency` tasks.
    pub fn new(concurrency: usize) -> Arc<Live> {
        Arc::new(Live {
            ops: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            last_error: Mutex::new(None),
            windows: (0..concurrency).map(|_| Mutex::new(histogram())).collect(),
            stop: AtomicBool::new(false),
        })
    }

    /// The latencies recorded since the last call (every task's window, merged and reset).
    pub fn take_window(&self) -> Histogram<u64> {
        let mut out = histogram();
        for w in &self.windows {
            let mut w = w.lock();
            let _ = out.add(&*w);
            w.reset();
        }
        out
    }

    /// Asks every task to finish its current command and stop.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }

    fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }
}

/// Starts the tasks; each returns its full latency histogram when [`Live::stop`] is called.
pub fn spawn(
    client: &shardis::Client,
    spec: &Arc<Spec>,
    live: &Arc<Live>,
) -> Result<Vec<tokio::task::JoinHandle<Histogram<u64>>>> {
    let zipf = match spec.zipf {
        Some(s) => Some(
            Zipf::new(spec.keys as f64, s)
                .map_err(|e| CliError::new(format!("--zipf {s}: {e}")))?,
        ),
        None => None,
    };
    let value: Arc<[u8]> = vec![b'x'; spec.value_size].into();
    let mut handles = Vec::with_capacity(spec.concurrency);
    for task in 0..spec.concurrency {
        let client = client.clone();
        let spec = spec.clone();
        let live = live.clone();
        let value = value.clone();
        handles.push(tokio::spawn(async move {
            let mut rng = StdRng::seed_from_u64(0x5eed ^ task as u64);
            let mut total = histogram();
            let mut key = Vec::with_capacity(spec.prefix.len() + 20);
            while !live.stopped() {
                let i = match &zipf {
                    Some(z) => (z.sample(&mut rng) as u64).clamp(1, spec.keys) - 1,
                    None => rng.random_range(0..spec.keys),
                };
                spec.key(i, &mut key);
                let cmd = if rng.random_bool(spec.read_ratio) {
                    let mut c = redis::cmd("GET");
                    c.arg(&key[..]);
                    c
                } else {
                    let mut c = redis::cmd("SET");
                    c.arg(&key[..]).arg(&value[..]);
                    c
                };
                let started = Instant::now();
                let result = client.send(&cmd).await;
                let us = (started.elapsed().as_micros() as u64).max(1);
                total.saturating_record(us);
                live.windows[task].lock().saturating_record(us);
                live.ops.fetch_add(1, Ordering::Relaxed);
                let failure = match result {
                    Ok(Value::ServerError(e)) => Some(format!("{e:?}")),
                    Ok(_) => None,
                    Err(e) => Some(e.to_string()),
                };
                if let Some(f) = failure {
                    live.errors.fetch_add(1, Ordering::Relaxed);
                    *live.last_error.lock() = Some(f);
                }
            }
            total
        }));
    }
    Ok(handles)
}

/// Waits for the tasks and merges their histograms.
pub async fn join(handles: Vec<tokio::task::JoinHandle<Histogram<u64>>>) -> Result<Histogram<u64>> {
    let mut total = histogram();
    for h in handles {
        let hist = h
            .await
            .map_err(|e| CliError::new(format!("a workload task failed: {e}")))?;
        let _ = total.add(&hist);
    }
    Ok(total)
}

/// Writes every key once (pipelines of 500, 4 at a time), so reads hit and slot migrations
/// have keys to move. Bounded to `limit` keys.
pub async fn preload(client: &shardis::Client, spec: &Spec, limit: u64) -> Result<()> {
    let n = spec.keys.min(limit);
    let value = vec![b'x'; spec.value_size];
    let batches: Vec<(u64, u64)> = (0..n).step_by(500).map(|s| (s, (s + 500).min(n))).collect();
    let mut key = Vec::new();
    let mut pipes = Vec::with_capacity(batches.len());
    for (from, to) in batches {
        let mut pipe = redis::pipe();
        for i in from..to {
            spec.key(i, &mut key);
            pipe.cmd("SET").arg(&key[..]).arg(&value[..]).ignore();
        }
        pipes.push(pipe);
    }
    use futures::StreamExt;
    let mut results = futures::stream::iter(pipes.into_iter().map(|pipe| {
        let mut client = client.clone();
        async move { pipe.query_async::<()>(&mut client).await }
    }))
    .buffer_unordered(4);
    while let Some(r) = results.next().await {
        r.map_err(|e| CliError::new(format!("preloading keys: {e}")))?;
    }
    Ok(())
}

/// Removes every key of the workload (`UNLINK` in pipelines).
pub async fn cleanup(client: &shardis::Client, spec: &Spec) -> Result<u64> {
    let mut removed = 0u64;
    let mut key = Vec::new();
    let mut start = 0;
    while start < spec.keys {
        let end = (start + 1000).min(spec.keys);
        let mut pipe = redis::pipe();
        for i in start..end {
            spec.key(i, &mut key);
            pipe.cmd("UNLINK").arg(&key[..]);
        }
        let mut client = client.clone();
        let counts: Vec<u64> = pipe
            .query_async(&mut client)
            .await
            .map_err(|e| CliError::new(format!("removing the demo keys {}*: {e}", spec.prefix)))?;
        removed += counts.iter().sum::<u64>();
        start = end;
    }
    Ok(removed)
}

/// Parses `15`, `15s`, `500ms`, `2m`.
pub fn parse_duration(s: &str) -> std::result::Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = match s.find(|c: char| !c.is_ascii_digit() && c != '.') {
        Some(i) => s.split_at(i),
        None => (s, "s"),
    };
    let value: f64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a duration: use e.g. 15s, 500ms or 2m"))?;
    let secs = match unit {
        "ms" => value / 1000.0,
        "s" => value,
        "m" => value * 60.0,
        _ => return Err(format!("{s:?}: unknown unit {unit:?} (use ms, s or m)")),
    };
    if !(secs.is_finite() && secs > 0.0) {
        return Err(format!("{s:?}: a duration must be positive"));
    }
    Ok(Duration::from_secs_f64(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("15").unwrap(), Duration::from_secs(15));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert!(parse_duration("fast").is_err());
        assert!(parse_duration("0").is_err());
    }
}
