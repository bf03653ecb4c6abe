//! How hot keys are found and spread: the settings a caller chooses in the builder.

use std::time::Duration;

use shardis_hotkey::DetectorConfig;

/// Hot-key spreading settings, given to [`Builder::hot_keys`](crate::Builder::hot_keys).
///
/// Reads (`GET`) of a hot key go to one of its copies, chosen per request, so the load of a
/// celebrity key is shared by several shards. Copies are refilled from the canonical key on a
/// miss and live at most `copy_ttl` (and never longer than the canonical key), which bounds
/// how stale a copy can be when another process writes the canonical key. After this client
/// writes a hot key (by any command, pipelined or not), its reads go to the canonical key
/// until the copies are re-synced, so it always reads its own writes. Each client writes
/// copies of its own (names no other client uses), so another process's refill can never put
/// an older value under this client's reads; the cost is one set of copies per client.
///
/// ```
/// use std::time::Duration;
/// use shardis::HotKeyOptions;
///
/// let options = HotKeyOptions::default()
///     .copies(3)
///     .copy_ttl(Duration::from_secs(2))
///     .near_cache(Duration::from_millis(500), 1_000)
///     .declare_hot("config:flags")
///     .declare_hot_prefix("trending:");
/// # let _ = options;
/// ```
#[derive(Clone, Debug)]
#[must_use]
pub struct HotKeyOptions {
    pub(crate) detector: DetectorConfig,
    pub(crate) detect: bool,
    pub(crate) copies: Option<usize>,
    pub(crate) copy_ttl: Duration,
    pub(crate) tick: Duration,
    pub(crate) near_cache: Option<(Duration, u64)>,
    /// Prefixes whose changes anywhere drop near-cache values (`None`: own writes only).
    pub(crate) near_tracking: Option<Vec<Vec<u8>>>,
    pub(crate) declared: Vec<Vec<u8>>,
    pub(crate) declared_prefixes: Vec<Vec<u8>>,
}

impl Default for HotKeyOptions {
    /// Detection on (hot at ≥ 1% of reads within 1 s; cold after 10 s under 0.5%), one copy
    /// per primary or node, copies live at most 5 s, no near cache.
    fn default() -> Self {
        HotKeyOptions {
            detector: DetectorConfig::default(),
            detect: true,
            copies: None,
            copy_ttl: Duration::from_secs(5),
            tick: Duration::from_millis(100),
            near_cache: None,
            near_tracking: None,
            declared: Vec::new(),
            declared_prefixes: Vec::new(),
        }
    }
}

impl HotKeyOptions {
    /// The detector's thresholds, window, hysteresis and sampling rate.
    pub fn detector(mut self, config: DetectorConfig) -> Self {
        self.detector = config;
        self
    }

    /// Turns automatic detection off: only declared keys and prefixes are spread.
    pub fn detection(mut self, on: bool) -> Self {
        self.detect = on;
        self
    }

    /// How many places a hot key is read from, the canonical key included. Default: one per
    /// primary (cluster) or node (ring).
    pub fn copies(mut self, copies: usize) -> Self {
        self.copies = Some(copies);
        self
    }

    /// The longest a copy lives after it is filled. Default 5 s.
    pub fn copy_ttl(mut self, ttl: Duration) -> Self {
        self.copy_ttl = ttl;
        self
    }

    /// How often the detector merges its samples and decides what is hot. Default 100 ms.
    pub fn tick(mut self, every: Duration) -> Self {
        self.tick = every;
        self
    }

    /// Keeps the values of hot keys in process for `ttl` (at most `capacity` keys); this
    /// client's own writes drop them at once.
    pub fn near_cache(mut self, ttl: Duration, capacity: u64) -> Self {
        self.near_cache = Some((ttl, capacity));
        self
    }

    /// Keeps the near cache coherent with writes made *anywhere* (other clients, other
    /// processes), not only by this client: the client tracks every key under `prefixes`
    /// ([`Client::invalidations`](crate::Client::invalidations), `CLIENT TRACKING` in
    /// broadcast mode on every node), a near-cache value is dropped when its key changes, and
    /// the near cache serves nothing while the invalidation stream is incomplete (a lost
    /// connection, a failover, a node that joined). The TTL stays as a backstop. No prefix
    /// tracks every key: every write in the deployment is then sent to this client.
    ///
    /// ```
    /// use std::time::Duration;
    /// use shardis::HotKeyOptions;
    ///
    /// let options = HotKeyOptions::default()
    ///     .near_cache(Duration::from_secs(30), 1_000)
    ///     .near_cache_tracking(["config:", "trending:"]);
    /// # let _ = options;
    /// ```
    pub fn near_cache_tracking<I, P>(mut self, prefixes: I) -> Self
    where
        I: IntoIterator<Item = P>,
        P: AsRef<[u8]>,
    {
        self.near_tracking = Some(prefixes.into_iter().map(|p| p.as_ref().to_vec()).collect());
        self
    }

    /// Declares a key hot, whatever its traffic (as mcrouter's configured splits do).
    pub fn declare_hot(mut self, key: impl AsRef<[u8]>) -> Self {
        self.declared.push(key.as_ref().to_vec());
        self
    }

    /// Declares every key under a prefix hot.
    pub fn declare_hot_prefix(mut self, prefix: impl AsRef<[u8]>) -> Self {
        self.declared_prefixes.push(prefix.as_ref().to_vec());
        self
    }

    pub(crate) fn validate(&self) -> Result<(), String> {
        if self.copy_ttl.is_zero() {
            return Err("hot keys: copy_ttl must be greater than zero".into());
        }
        if self.tick.is_zero() {
            return Err("hot keys: tick must be greater than zero".into());
        }
        if self.copies == Some(0) {
            return Err("hot keys: copies must be at least 1".into());
        }
        if let Some((ttl, capacity)) = self.near_cache
            && (ttl.is_zero() || capacity == 0)
        {
            return Err("hot keys: near cache ttl and capacity must be greater than zero".into());
        }
        if self.near_tracking.is_some() && self.near_cache.is_none() {
            return Err("hot keys: near_cache_tracking needs a near_cache".into());
        }
        Ok(())
    }
}
