//! What the client did, as plain counters a caller can read (the same events also go to the
//! `metrics` facade for exporters).

use std::sync::atomic::{AtomicU64, Ordering};

/// Live counters, shared by every clone of a client.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub moved: AtomicU64,
    pub ask: AtomicU64,
    pub retries: AtomicU64,
    pub refreshes: AtomicU64,
    pub refresh_failures: AtomicU64,
}

/// A snapshot of what a client has done since it was built.
///
/// ```no_run
/// # async fn run(client: shardis::Client) {
/// let stats = client.stats();
/// println!("followed {} MOVED and {} ASK redirects", stats.moved, stats.ask);
/// # }
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// `MOVED` redirects followed.
    pub moved: u64,
    /// `ASK` redirects followed.
    pub ask: u64,
    /// Retries after `TRYAGAIN`, `CLUSTERDOWN`, `LOADING`, `MASTERDOWN` or `READONLY`.
    pub retries: u64,
    /// Topology refreshes completed (primary+replicas and Sentinel modes: rediscoveries of the
    /// primary and replicas, after the first).
    pub refreshes: u64,
    /// Topology refreshes (rediscoveries) that failed (the last good map was kept).
    pub refresh_failures: u64,
    /// Keys the hot-key detector found hot (each time one turned hot).
    pub hot_keys_detected: u64,
    /// Reads of hot keys served from a copy.
    pub hot_copy_reads: u64,
    /// Copy reads that missed and were refilled from the canonical key.
    pub hot_copy_misses: u64,
    /// Reads of hot keys served by the in-process near cache.
    pub near_cache_hits: u64,
}

impl Counters {
    pub(crate) fn snapshot(&self) -> Stats {
        let read = |c: &AtomicU64| c.load(Ordering::Relaxed);
        Stats {
            moved: read(&self.moved),
            ask: read(&self.ask),
            retries: read(&self.retries),
            refreshes: read(&self.refreshes),
            refresh_failures: read(&self.refresh_failures),
            ..Stats::default()
        }
    }
}
