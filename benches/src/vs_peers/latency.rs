//! Latency tables: one small table per thread that runs client tasks, merged into one
//! histogram per cell.

use std::sync::atomic::Ordering;

use hdrhistogram::Histogram;

/// An empty histogram in nanoseconds, 100 ns .. 60 s.
pub(crate) fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(100, 60_000_000_000, 3).expect("constant, valid bounds")
}

/// Latency tables, one per thread that runs client tasks: every task on a thread records into
/// the same small table, which stays in that core's cache. (A table or a sample buffer per
/// task cost every Rust client ~5% of its CPU share in cache misses or page faults.)
static LATENCIES: std::sync::LazyLock<Vec<std::sync::Mutex<Latencies>>> =
    std::sync::LazyLock::new(|| (0..64).map(|_| Default::default()).collect());

/// Records one latency into the calling thread's table.
pub(crate) fn record_latency(ns: u128) {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    thread_local!(static SLOT: usize = NEXT.fetch_add(1, Ordering::Relaxed) % 64);
    let slot = SLOT.with(|s| *s);
    if let Some(table) = LATENCIES.get(slot) {
        table.lock().unwrap_or_else(|e| e.into_inner()).record(ns);
    }
}

/// Everything recorded since the last call, as one histogram; the tables start empty again.
pub(crate) fn take_latencies() -> Histogram<u64> {
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

#[cfg(test)]
mod tests {
    use super::Latencies;

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
}
