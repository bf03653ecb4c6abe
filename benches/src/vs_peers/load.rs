//! The load loop of one cell: `concurrency` tasks sharing one client, each with one command in
//! flight, and the preloading of the key space.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

use rand::{Rng, SeedableRng, rngs::StdRng};

use super::cli::Args;
use super::cpu;
use super::latency::{record_latency, take_latencies};
use super::peers::Peer;
use super::report::Cell;

/// `key:` and `i` in 12 digits, as redis-benchmark's `key:__rand_int__` names them. Written
/// by hand: `format!` here cost every Rust client ~2% of its CPU share in the profile.
pub(crate) fn key(i: u64, buf: &mut Vec<u8>) {
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

/// Runs one cell: `concurrency` tasks sharing `peer`, warm-up, then `duration` measured.
///
/// The process' CPU time is read when measuring starts and when it stops, so the cell's CPU
/// per command covers its measured window only: the previous cell's tasks have all ended, and
/// this cell's run on until after the second reading. With `proxy_pid`, that process' CPU
/// over the same window is reported too.
pub(crate) async fn run_rust(
    workload: &'static str,
    name: &str,
    peer: &Peer,
    proxy_pid: Option<u32>,
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
                        *last_error.lock().unwrap_or_else(|e| e.into_inner()) = Some(e);
                    }
                }
            }
        }));
    }
    tokio::time::sleep(args.warmup).await;
    let proxy_cpu_before = proxy_pid.and_then(cpu::of_pid);
    let cpu_before = cpu::this_process();
    measuring.store(true, Ordering::Relaxed);
    let started = Instant::now();
    tokio::time::sleep(args.duration).await;
    measuring.store(false, Ordering::Relaxed);
    let cpu_used = cpu::this_process().saturating_sub(cpu_before);
    let proxy_cpu_used = proxy_pid
        .and_then(cpu::of_pid)
        .zip(proxy_cpu_before)
        .map(|(after, before)| after.saturating_sub(before));
    let secs = started.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        let _ = t.await;
    }
    let total = take_latencies();
    let q = |q: f64| Some(total.value_at_quantile(q) as f64 / 1000.0);
    let note = last_error
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone()
        .map(|e| format!("last error: {e}"));
    Cell {
        ops_per_sec: total.len() as f64 / secs,
        cpu_us_per_op: cpu::micros_per_op(cpu_used, total.len()),
        proxy_cpu_us_per_op: proxy_cpu_used.and_then(|c| cpu::micros_per_op(c, total.len())),
        p50_us: q(0.5),
        p99_us: q(0.99),
        p999_us: q(0.999),
        errors: Some(errors.load(Ordering::Relaxed)),
        note,
        ..Cell::empty(workload, name.to_string(), concurrency)
    }
}

/// Writes every key once through `conn` (pipelines of 1000, 4 in flight).
pub(crate) async fn preload<C>(conn: &C, args: &Args) -> Result<(), String>
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

#[cfg(test)]
mod tests {
    use super::key;

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
