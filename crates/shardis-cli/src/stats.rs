//! Latency histograms and their summaries.

use hdrhistogram::Histogram;
use serde::Serialize;

/// A latency histogram in microseconds, 1 µs to 60 s, 3 significant digits.
pub fn histogram() -> Histogram<u64> {
    // Cannot fail: constant bounds that hdrhistogram accepts (low >= 1, high >= 2 * low,
    // significant digits <= 5); no input reaches this call.
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("constant, valid histogram bounds")
}

/// What a run measured.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Summary {
    /// Commands that completed (successfully or not).
    pub ops: u64,
    /// Commands whose caller got an error (client error or server error reply).
    pub errors: u64,
    /// Completed commands per second of measured time.
    pub ops_per_sec: f64,
    /// Latency percentiles, microseconds.
    pub p50_us: u64,
    /// 90th percentile.
    pub p90_us: u64,
    /// 99th percentile.
    pub p99_us: u64,
    /// 99.9th percentile.
    pub p999_us: u64,
    /// Maximum.
    pub max_us: u64,
}

impl Summary {
    /// Summarises `hist` over `secs` seconds with `errors` errors.
    pub fn of(hist: &Histogram<u64>, errors: u64, secs: f64) -> Summary {
        let ops = hist.len();
        Summary {
            ops,
            errors,
            ops_per_sec: if secs > 0.0 { ops as f64 / secs } else { 0.0 },
            p50_us: hist.value_at_quantile(0.50),
            p90_us: hist.value_at_quantile(0.90),
            p99_us: hist.value_at_quantile(0.99),
            p999_us: hist.value_at_quantile(0.999),
            max_us: hist.max(),
        }
    }
}
