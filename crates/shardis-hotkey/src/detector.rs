//! The hot-key detector: sampled recording on the request path, merging at each tick, and a
//! lock-free published hot set.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

use arc_swap::ArcSwap;
use parking_lot::Mutex;

use crate::tracker::Tracker;
use crate::{DetectorConfig, HotSet, SpaceSaving, sampler};

/// A key that is hot now, as reported by [`Detector::hot_keys`].
///
/// ```
/// let k = shardis_hotkey::HotKey { key: b"k".to_vec(), rate_per_sec: 0.0, declared: true };
/// assert!(k.declared);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct HotKey {
    /// The key.
    pub key: Vec<u8>,
    /// Estimated reads per second of this key in this process (0 if never sampled).
    pub rate_per_sec: f64,
    /// Whether the user declared it hot (exactly or by prefix), rather than only detected.
    pub declared: bool,
}

/// Counters about the detector itself, for metrics.
///
/// ```
/// let s = shardis_hotkey::Detector::default().stats();
/// assert_eq!((s.tracked_keys, s.hot_keys, s.dropped_samples), (0, 0, 0));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct DetectorStats {
    /// Keys with merged counts kept between ticks (at most `max_tracked` plus the hot ones).
    pub tracked_keys: usize,
    /// Keys in the published hot set (detected or declared exactly).
    pub hot_keys: usize,
    /// Samples dropped because their table was busy (never waited for).
    pub dropped_samples: u64,
    /// Bytes of key buffers held by the sampling tables (bounded).
    pub table_key_bytes: usize,
    /// Estimated reads per second seen by the detector.
    pub total_rate_per_sec: f64,
}

// One table per cache line pair, so threads recording into neighbouring tables do not
// invalidate each other's lock word.
#[repr(align(128))]
#[derive(Debug)]
struct Padded<T>(T);

#[derive(Debug)]
struct State {
    tracker: Tracker,
    declared: BTreeSet<Vec<u8>>,
    prefixes: BTreeSet<Vec<u8>>,
    /// Swapped with a table at each tick, so a table is locked only for the swap.
    spare: SpaceSaving,
}

/// Finds the keys that take a large share of this process's reads.
///
/// Share it (`Arc<Detector>`) between the request path and one owner that calls
/// [`tick`](Detector::tick) every 100–250 ms. Per command: [`record`](Detector::record) the
/// access (cheap: usually one thread-local decrement) and ask [`is_hot`](Detector::is_hot)
/// (lock-free). `hash` must be the same function of the key everywhere — by default
/// [`key_hash`](crate::key_hash), which is `shardis_ring::Ring::hash_key`, so ring routing can
/// reuse it (see [`DetectorConfig::key_hash`]).
///
/// ```
/// use std::time::{Duration, Instant};
/// use shardis_hotkey::{key_hash, Detector, DetectorConfig};
///
/// let d = Detector::new(DetectorConfig::default().with_sample_every(1));
/// let t0 = Instant::now();
/// for i in 0..1000u32 {
///     let key = if i % 2 == 0 { b"celebrity".to_vec() } else { i.to_be_bytes().to_vec() };
///     d.record(key_hash(&key), &key);
/// }
/// d.tick(t0 + Duration::from_millis(100));
/// assert!(d.is_hot(key_hash(b"celebrity"), b"celebrity"));
/// assert_eq!(d.hot_keys()[0].key, b"celebrity");
/// ```
#[derive(Debug)]
pub struct Detector {
    cfg: DetectorConfig,
    tables: Box<[Padded<Mutex<SpaceSaving>>]>,
    hot: ArcSwap<HotSet>,
    /// Fast path for the common case of nothing hot: one relaxed load instead of an ArcSwap one.
    any_hot: AtomicBool,
    dropped: AtomicU64,
    state: Mutex<State>,
}

impl Default for Detector {
    fn default() -> Self {
        Detector::new(DetectorConfig::default())
    }
}

impl Detector {
    /// A detector with `config` (normalized, see [`DetectorConfig::normalized`]).
    ///
    /// ```
    /// let d = shardis_hotkey::Detector::new(shardis_hotkey::DetectorConfig::default());
    /// assert!(d.hot_keys().is_empty());
    /// ```
    pub fn new(config: DetectorConfig) -> Self {
        let cfg = config.normalized();
        let tables = (0..cfg.tables)
            .map(|_| Padded(Mutex::new(SpaceSaving::new(cfg.capacity))))
            .collect();
        let spare = SpaceSaving::new(cfg.capacity);
        Detector {
            tables,
            hot: ArcSwap::from_pointee(HotSet::default()),
            any_hot: AtomicBool::new(false),
            dropped: AtomicU64::new(0),
            state: Mutex::new(State {
                tracker: Tracker::default(),
                declared: BTreeSet::new(),
                prefixes: BTreeSet::new(),
                spare,
            }),
            cfg,
        }
    }

    /// The configuration in use (normalized).
    ///
    /// ```
    /// assert_eq!(shardis_hotkey::Detector::default().config().sample_every, 16);
    /// ```
    pub fn config(&self) -> &DetectorConfig {
        &self.cfg
    }

    /// Records one access of `key` (hash `hash`), sampled with rate `1/sample_every`.
    /// Returns whether it was counted. Never blocks.
    ///
    /// ```
    /// let d = shardis_hotkey::Detector::default();
    /// let counted = (0..1600).filter(|_| d.record(1, b"k")).count();
    /// assert!(counted > 20 && counted < 300, "{counted}");
    /// ```
    #[inline]
    pub fn record(&self, hash: u64, key: &[u8]) -> bool {
        sampler::should_sample(self.cfg.sample_every) && self.record_sampled(hash, key)
    }

    /// Counts one access that the caller already decided to sample (it stands for
    /// `sample_every` accesses). Returns `false` if it was dropped: key longer than
    /// `max_key_len`, or this thread's tables busy.
    ///
    /// ```
    /// let d = shardis_hotkey::Detector::default();
    /// assert!(d.record_sampled(1, b"k"));
    /// ```
    pub fn record_sampled(&self, hash: u64, key: &[u8]) -> bool {
        if key.len() > self.cfg.max_key_len {
            return false;
        }
        let n = self.tables.len();
        let first = sampler::thread_slot() % n;
        // Try this thread's table, then its neighbour; never wait: a lost sample is harmless.
        for i in [first, (first + 1) % n] {
            if let Some(mut t) = self.tables.get(i).and_then(|t| t.0.try_lock()) {
                t.record(hash, key);
                return true;
            }
        }
        self.dropped.fetch_add(1, Ordering::Relaxed);
        false
    }

    /// Whether `key` (hash `hash`) is hot now: detected, declared, or under a declared prefix.
    /// Lock-free; exact (the bytes are compared, so keys sharing a hash are not confused).
    ///
    /// ```
    /// let d = shardis_hotkey::Detector::default();
    /// d.declare_hot(b"k");
    /// assert!(d.is_hot(shardis_hotkey::key_hash(b"k"), b"k"));
    /// assert!(!d.is_hot(shardis_hotkey::key_hash(b"j"), b"j"));
    /// ```
    #[inline]
    pub fn is_hot(&self, hash: u64, key: &[u8]) -> bool {
        self.any_hot.load(Ordering::Relaxed) && self.hot.load().contains(hash, key)
    }

    /// The current hot set (a snapshot; a new `Arc` is published when it changes).
    ///
    /// ```
    /// let d = shardis_hotkey::Detector::default();
    /// let before = d.hot_set();
    /// d.declare_hot(b"k");
    /// assert!(!std::sync::Arc::ptr_eq(&before, &d.hot_set()));
    /// ```
    pub fn hot_set(&self) -> Arc<HotSet> {
        self.hot.load_full()
    }

    /// Merges the samples since the last tick, decays, decides what is hot, and publishes
    /// the hot set if it changed. Call every 100–250 ms with the current time; `now` going
    /// backwards is treated as no time passing.
    ///
    /// ```
    /// let d = shardis_hotkey::Detector::default();
    /// d.tick(std::time::Instant::now());
    /// ```
    pub fn tick(&self, now: Instant) {
        let mut guard = self.state.lock();
        let st = &mut *guard;
        st.tracker.begin(now, &self.cfg);
        let weight = f64::from(self.cfg.sample_every);
        for table in self.tables.iter() {
            std::mem::swap(&mut *table.0.lock(), &mut st.spare);
            for e in st.spare.iter() {
                // The guaranteed part only: over-estimates of newcomers must not look hot.
                st.tracker.add(
                    e.hash,
                    e.key,
                    e.count.saturating_sub(e.error) as f64 * weight,
                );
            }
            st.tracker.add_total(st.spare.total() as f64 * weight);
            st.spare.clear();
        }
        if st.tracker.finish(now, &self.cfg) {
            self.publish(st);
        }
    }

    /// Declares `key` hot until [`undeclare_hot`](Self::undeclare_hot), whatever its traffic.
    ///
    /// ```
    /// let d = shardis_hotkey::Detector::default();
    /// d.declare_hot(b"k");
    /// assert!(d.hot_keys().iter().any(|h| h.key == b"k" && h.declared));
    /// ```
    pub fn declare_hot(&self, key: &[u8]) {
        let mut st = self.state.lock();
        if st.declared.insert(key.to_vec()) {
            self.publish(&st);
        }
    }

    /// Withdraws a declaration; returns whether `key` was declared. A key that is also
    /// detected hot stays hot.
    ///
    /// ```
    /// let d = shardis_hotkey::Detector::default();
    /// d.declare_hot(b"k");
    /// assert!(d.undeclare_hot(b"k") && !d.undeclare_hot(b"k"));
    /// assert!(!d.is_hot(shardis_hotkey::key_hash(b"k"), b"k"));
    /// ```
    pub fn undeclare_hot(&self, key: &[u8]) -> bool {
        let mut st = self.state.lock();
        let was = st.declared.remove(key);
        if was {
            self.publish(&st);
        }
        was
    }

    /// Declares every key starting with `prefix` hot (an empty prefix: every key).
    ///
    /// ```
    /// let d = shardis_hotkey::Detector::default();
    /// d.declare_hot_prefix(b"promo:");
    /// assert!(d.is_hot(shardis_hotkey::key_hash(b"promo:1"), b"promo:1"));
    /// ```
    pub fn declare_hot_prefix(&self, prefix: &[u8]) {
        let mut st = self.state.lock();
        if st.prefixes.insert(prefix.to_vec()) {
            self.publish(&st);
        }
    }

    /// Withdraws a prefix declaration; returns whether it was declared.
    ///
    /// ```
    /// let d = shardis_hotkey::Detector::default();
    /// d.declare_hot_prefix(b"promo:");
    /// assert!(d.undeclare_hot_prefix(b"promo:"));
    /// assert!(!d.is_hot(shardis_hotkey::key_hash(b"promo:1"), b"promo:1"));
    /// ```
    pub fn undeclare_hot_prefix(&self, prefix: &[u8]) -> bool {
        let mut st = self.state.lock();
        let was = st.prefixes.remove(prefix);
        if was {
            self.publish(&st);
        }
        was
    }

    /// The declared prefixes, sorted.
    ///
    /// ```
    /// let d = shardis_hotkey::Detector::default();
    /// d.declare_hot_prefix(b"a:");
    /// assert_eq!(d.declared_prefixes(), vec![b"a:".to_vec()]);
    /// ```
    pub fn declared_prefixes(&self) -> Vec<Vec<u8>> {
        self.state.lock().prefixes.iter().cloned().collect()
    }

    /// What is hot now: detected keys (with estimated rates, highest first), then keys
    /// declared exactly that are not also detected. A detected key under a declared prefix
    /// is reported with `declared: true`; prefixes themselves are in
    /// [`declared_prefixes`](Self::declared_prefixes).
    ///
    /// ```
    /// let d = shardis_hotkey::Detector::default();
    /// d.declare_hot(b"k");
    /// let hot = d.hot_keys();
    /// assert_eq!((hot.len(), hot[0].rate_per_sec), (1, 0.0));
    /// ```
    pub fn hot_keys(&self) -> Vec<HotKey> {
        let st = self.state.lock();
        let is_declared =
            |k: &[u8]| st.declared.contains(k) || st.prefixes.iter().any(|p| k.starts_with(p));
        let detected = st.tracker.hot();
        let mut out: Vec<HotKey> = detected
            .iter()
            .map(|e| HotKey {
                declared: is_declared(&e.key),
                key: e.key.clone(),
                rate_per_sec: e.rate_per_sec,
            })
            .collect();
        for k in &st.declared {
            if !detected.iter().any(|e| e.key == *k) {
                let rate = st.tracker.rate(k).unwrap_or(0.0);
                out.push(HotKey {
                    key: k.clone(),
                    rate_per_sec: rate,
                    declared: true,
                });
            }
        }
        out
    }

    /// Counters about the detector (locks each table briefly; not for the request path).
    ///
    /// ```
    /// let d = shardis_hotkey::Detector::default();
    /// d.record_sampled(1, b"k");
    /// assert!(d.stats().table_key_bytes >= 1);
    /// ```
    pub fn stats(&self) -> DetectorStats {
        let table_key_bytes = self.tables.iter().map(|t| t.0.lock().key_bytes()).sum();
        let st = self.state.lock();
        DetectorStats {
            tracked_keys: st.tracker.len(),
            hot_keys: self.hot.load().len(),
            dropped_samples: self.dropped.load(Ordering::Relaxed),
            table_key_bytes,
            total_rate_per_sec: st.tracker.total_rate(),
        }
    }

    /// Builds and stores the hot set from the detected and declared keys (state lock held,
    /// so publications are ordered).
    fn publish(&self, st: &State) {
        let mut keys: Vec<(u64, Vec<u8>)> = st
            .tracker
            .hot()
            .into_iter()
            .map(|e| (e.hash, e.key))
            .collect();
        keys.extend(
            st.declared
                .iter()
                .map(|k| ((self.cfg.key_hash)(k), k.clone())),
        );
        let set = HotSet::new(keys, st.prefixes.iter().cloned().collect());
        let any = !set.is_empty();
        self.hot.store(Arc::new(set));
        self.any_hot.store(any, Ordering::Relaxed);
    }
}
