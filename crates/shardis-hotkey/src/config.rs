//! Detector thresholds and sizes, with defaults that suit a cache client.

use std::time::Duration;

/// Configuration of a [`Detector`](crate::Detector).
///
/// All fields are public; start from [`DetectorConfig::default`] and change what you need,
/// directly or with the `with_*` builder methods. Out-of-range values never panic: the
/// detector clamps them (see [`DetectorConfig::normalized`]).
///
/// ```
/// use std::time::Duration;
/// use shardis_hotkey::DetectorConfig;
///
/// let cfg = DetectorConfig::default()
///     .with_hot_share(0.02)
///     .with_cool_after(Duration::from_secs(30));
/// assert_eq!(cfg.cool_share, 0.01); // follows hot_share: half of it
/// assert_eq!(cfg.sample_every, 16);
/// ```
// No PartialEq: comparing the `key_hash` fn pointers would not be meaningful.
#[derive(Debug, Clone)]
pub struct DetectorConfig {
    /// Record one access in `sample_every` on average (1 records every access).
    ///
    /// The gap between samples is random per thread (uniform in `1..2·sample_every`), so a
    /// caller that alternates between a few keys cannot alias with the sampler.
    pub sample_every: u32,
    /// Space-Saving counters per table. Any key with more than `1/capacity` of a table's
    /// samples within one tick is guaranteed to be counted.
    pub capacity: usize,
    /// Number of tables. Each thread records into one of them (chosen once per thread), so
    /// threads rarely contend; a contended sample is dropped rather than waited for.
    pub tables: usize,
    /// Time constant of the exponential decay: counts lose `1 - 1/e` of their weight per
    /// `window`, so shares are "over about the last `window`".
    pub window: Duration,
    /// A key becomes hot when its share of all reads (within the window) reaches this.
    pub hot_share: f64,
    /// A hot key becomes cold after `cool_after` continuously below this share.
    pub cool_share: f64,
    /// How long a hot key must stay under `cool_share` before it is cold again.
    pub cool_after: Duration,
    /// Least number of decayed samples of a key before it can be hot, so that one sample in a
    /// quiet process is not "100% of the reads".
    pub min_samples: u32,
    /// Keys longer than this are not tracked (they can still be declared hot); bounds memory.
    pub max_key_len: usize,
    /// At most this many keys are tracked between ticks (the hot ones are always kept).
    pub max_tracked: usize,
    /// At most this many detected keys are hot at once (the highest shares win).
    pub max_hot: usize,
    /// The hash the caller passes to `record`/`is_hot`; used for keys declared hot.
    /// Default: [`key_hash`](crate::key_hash) (xxh3, the same as `shardis_ring::Ring::hash_key`).
    pub key_hash: fn(&[u8]) -> u64,
}

impl Default for DetectorConfig {
    fn default() -> Self {
        DetectorConfig {
            sample_every: 16,
            capacity: 128,
            tables: 8,
            window: Duration::from_secs(1),
            hot_share: 0.01,
            cool_share: 0.005,
            cool_after: Duration::from_secs(10),
            min_samples: 8,
            max_key_len: 512,
            max_tracked: 1024,
            max_hot: 128,
            key_hash: crate::key_hash,
        }
    }
}

impl DetectorConfig {
    /// Sets [`hot_share`](Self::hot_share) and [`cool_share`](Self::cool_share) to half of it.
    ///
    /// ```
    /// let cfg = shardis_hotkey::DetectorConfig::default().with_hot_share(0.05);
    /// assert_eq!((cfg.hot_share, cfg.cool_share), (0.05, 0.025));
    /// ```
    #[must_use]
    pub fn with_hot_share(mut self, share: f64) -> Self {
        self.hot_share = share;
        self.cool_share = share / 2.0;
        self
    }

    /// Sets [`cool_share`](Self::cool_share).
    ///
    /// ```
    /// let cfg = shardis_hotkey::DetectorConfig::default().with_cool_share(0.001);
    /// assert_eq!(cfg.cool_share, 0.001);
    /// ```
    #[must_use]
    pub fn with_cool_share(mut self, share: f64) -> Self {
        self.cool_share = share;
        self
    }

    /// Sets [`cool_after`](Self::cool_after).
    ///
    /// ```
    /// use std::time::Duration;
    /// let cfg = shardis_hotkey::DetectorConfig::default().with_cool_after(Duration::ZERO);
    /// assert_eq!(cfg.cool_after, Duration::ZERO);
    /// ```
    #[must_use]
    pub fn with_cool_after(mut self, d: Duration) -> Self {
        self.cool_after = d;
        self
    }

    /// Sets [`window`](Self::window).
    ///
    /// ```
    /// use std::time::Duration;
    /// let cfg = shardis_hotkey::DetectorConfig::default().with_window(Duration::from_secs(2));
    /// assert_eq!(cfg.window, Duration::from_secs(2));
    /// ```
    #[must_use]
    pub fn with_window(mut self, d: Duration) -> Self {
        self.window = d;
        self
    }

    /// Sets [`sample_every`](Self::sample_every) (1 records every access).
    ///
    /// ```
    /// let cfg = shardis_hotkey::DetectorConfig::default().with_sample_every(1);
    /// assert_eq!(cfg.sample_every, 1);
    /// ```
    #[must_use]
    pub fn with_sample_every(mut self, n: u32) -> Self {
        self.sample_every = n;
        self
    }

    /// Sets [`min_samples`](Self::min_samples).
    ///
    /// ```
    /// let cfg = shardis_hotkey::DetectorConfig::default().with_min_samples(1);
    /// assert_eq!(cfg.min_samples, 1);
    /// ```
    #[must_use]
    pub fn with_min_samples(mut self, n: u32) -> Self {
        self.min_samples = n;
        self
    }

    /// Sets [`capacity`](Self::capacity) and [`tables`](Self::tables).
    ///
    /// ```
    /// let cfg = shardis_hotkey::DetectorConfig::default().with_tables(4, 256);
    /// assert_eq!((cfg.tables, cfg.capacity), (4, 256));
    /// ```
    #[must_use]
    pub fn with_tables(mut self, tables: usize, capacity: usize) -> Self {
        self.tables = tables;
        self.capacity = capacity;
        self
    }

    /// A copy with every field clamped into its meaningful range: at least one table, one
    /// counter, one sample in 1; shares in `0..=1` (`NaN` becomes the default), `cool_share`
    /// at most `hot_share`; a window of at least 1 ms; sizes capped so memory stays bounded.
    ///
    /// ```
    /// let mut cfg = shardis_hotkey::DetectorConfig::default();
    /// cfg.sample_every = 0;
    /// cfg.hot_share = f64::NAN;
    /// cfg.cool_share = 7.0;
    /// let n = cfg.normalized();
    /// assert_eq!((n.sample_every, n.hot_share, n.cool_share), (1, 0.01, 0.01));
    /// ```
    #[must_use]
    pub fn normalized(&self) -> Self {
        let d = DetectorConfig::default();
        let share = |v: f64, default: f64| {
            if v.is_nan() {
                default
            } else {
                v.clamp(0.0, 1.0)
            }
        };
        let hot_share = share(self.hot_share, d.hot_share);
        DetectorConfig {
            // The sampler draws gaps in 1..2·n, which must fit in a u32.
            sample_every: self.sample_every.clamp(1, 1 << 30),
            capacity: self.capacity.clamp(1, 1 << 16),
            tables: self.tables.clamp(1, 1024),
            window: self.window.max(Duration::from_millis(1)),
            hot_share,
            cool_share: share(self.cool_share, d.cool_share).min(hot_share),
            cool_after: self.cool_after,
            min_samples: self.min_samples,
            max_key_len: self.max_key_len.min(1 << 20),
            max_tracked: self.max_tracked.clamp(1, 1 << 20),
            max_hot: self.max_hot.min(1 << 16),
            key_hash: self.key_hash,
        }
    }
}
