//! Counters and the load-time histogram: reported through the `metrics` facade (labelled with
//! the namespace) and kept in process for [`Cache::stats`](crate::Cache::stats).

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

/// Slots of each in-process count: threads add to their own (no cache line written by two
/// cores on every hit); a snapshot sums them.
const SLOTS: usize = 4;

#[repr(align(64))]
#[derive(Default)]
struct Slot(AtomicU64);

/// This thread's slot, assigned in turn at its first count.
fn slot() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static SLOT: usize = NEXT.fetch_add(1, Ordering::Relaxed) % SLOTS;
    }
    SLOT.with(|s| *s)
}

pub(crate) struct Count {
    handle: metrics::Counter,
    local: [Slot; SLOTS],
}

impl Count {
    fn new(name: &'static str, namespace: &str) -> Count {
        Count {
            handle: metrics::counter!(name, "namespace" => namespace.to_string()),
            local: Default::default(),
        }
    }

    pub(crate) fn inc(&self) {
        self.add(1);
    }

    pub(crate) fn add(&self, n: u64) {
        self.handle.increment(n);
        self.local[slot()].0.fetch_add(n, Ordering::Relaxed);
    }

    fn get(&self) -> u64 {
        self.local.iter().map(|s| s.0.load(Ordering::Relaxed)).sum()
    }
}

macro_rules! metrics_set {
    ($($field:ident => $name:literal: $doc:literal),* $(,)?) => {
        pub(crate) struct Metrics {
            $(pub(crate) $field: Count,)*
            pub(crate) load_seconds: metrics::Histogram,
        }

        impl Metrics {
            /// Registers every handle with the recorder installed now.
            pub(crate) fn new(namespace: &str) -> Metrics {
                Metrics {
                    $($field: Count::new($name, namespace),)*
                    load_seconds: metrics::histogram!(
                        "shardis_cache_load_seconds",
                        "namespace" => namespace.to_string()
                    ),
                }
            }

            pub(crate) fn snapshot(&self) -> CacheStats {
                CacheStats { $($field: self.$field.get(),)* }
            }
        }

        /// What a cache has done since it was built (in this process). The same counts go to
        /// the `metrics` facade under the names given here, labelled `namespace`, with the
        /// load time as the histogram `shardis_cache_load_seconds`.
        #[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
        pub struct CacheStats {
            $(#[doc = concat!($doc, " (`", $name, "`).")] pub $field: u64,)*
        }
    };
}

metrics_set! {
    hits => "shardis_cache_hits_total": "Fresh values served from Redis",
    misses => "shardis_cache_misses_total": "Lookups that found no usable value",
    stale_served => "shardis_cache_stale_served_total": "Stale values served (stale-while-revalidate or fail-safe)",
    loads => "shardis_cache_loads_total": "Loader calls",
    load_errors => "shardis_cache_load_errors_total": "Loader calls that failed",
    early_refreshes => "shardis_cache_early_refreshes_total": "Background refreshes started by XFetch before expiry",
    background_refreshes => "shardis_cache_background_refreshes_total": "Background refreshes of stale values",
    lock_waits => "shardis_cache_lock_waits_total": "Fills that waited for another process's fill lock",
    lock_timeouts => "shardis_cache_lock_timeouts_total": "Waits for another process's fill that ran out",
    negative_hits => "shardis_cache_negative_hits_total": "Cached not-found entries served",
    decode_failures => "shardis_cache_decode_failures_total": "Stored values that did not decode (treated as misses)",
    redis_errors => "shardis_cache_redis_errors_total": "Redis failures seen by the cache",
    degraded_loads => "shardis_cache_degraded_loads_total": "Loads served without Redis because it failed",
    lease_rejections => "shardis_cache_lease_rejections_total": "Fills not stored because the key was invalidated while they ran",
    store_failures => "shardis_cache_store_failures_total": "Loaded values that could not be written to Redis",
    warmed => "shardis_cache_warmed_total": "Values stored by warm",
    wb_appended => "shardis_cache_write_behind_appended_total": "Write-behind changes queued",
    wb_backpressure_waits => "shardis_cache_write_behind_backpressure_waits_total": "Write-behind writes that waited for room in the backlog",
    wb_backpressure_errors => "shardis_cache_write_behind_backpressure_errors_total": "Write-behind writes refused because the backlog stayed full",
    l1_hits => "shardis_cache_l1_hits_total": "Values served from the in-process tier (L1), without Redis",
    l1_fills => "shardis_cache_l1_fills_total": "Values put into L1",
    l1_invalidations => "shardis_cache_l1_invalidations_total": "Keys the invalidation feed or the backplane reported changed (each drops its L1 entry)",
    l1_flushes => "shardis_cache_l1_flushes_total": "Times L1 was emptied (by reason: `shardis_cache_l1_flushed_total{reason}`)",
    l1_fills_refused => "shardis_cache_l1_fills_refused_total": "Values read from Redis not put into L1 because an invalidation (or a loss of the feed) came while they were read",
    l1_warmed => "shardis_cache_l1_warmed_total": "Values loaded into L1 from the fleet's hot ids when it first became active (`Builder::hot_ids`)",
    hot_ids_published => "shardis_cache_hot_ids_published_total": "Hot ids this process added to the namespace's hot set (`Builder::hot_ids`)",
    hot_publish_failures => "shardis_cache_hot_publish_failures_total": "Publications of hot ids that failed (logged; the next interval publishes again)",
    wb_not_replicated => "shardis_cache_write_behind_not_replicated_total": "Write-behind changes fewer replicas confirmed than asked",
}
