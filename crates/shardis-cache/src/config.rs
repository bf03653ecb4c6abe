//! The cache builder and its policies.

use std::marker::PhantomData;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::cache::Cache;
use crate::envelope::{Codec, Compression};
use crate::error::{Error, Result};
use crate::l1::{HotIds, L1Options};
use crate::write_behind::WriteBehindConfig;

/// What a caller does when another process holds the fill lock for longer than
/// [`FillLock::wait`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockTimeout {
    /// Run the loader itself (the default): the database sees one extra load per process.
    LoadAnyway,
    /// Fail with [`Error::LockTimeout`] (a stale value is still served when there is one).
    Fail,
}

/// The fleet-wide fill lock: at most one process loads a key at a time.
///
/// The lock is `SET {key}:lock <random token> NX PX <ttl>`, released by its holder only through
/// a compare-and-delete script; the other processes poll for the value with bounded
/// exponential backoff (from 5 ms, doubling, at most 100 ms apart) for up to `wait`.
#[derive(Debug, Clone, Copy)]
pub struct FillLock {
    /// How long the lock lives if its holder dies (default 5 s): longer than a normal load.
    pub ttl: Duration,
    /// How long a process waits for another's fill (default 5 s).
    pub wait: Duration,
    /// What to do when the wait is over.
    pub on_timeout: LockTimeout,
}

impl Default for FillLock {
    fn default() -> Self {
        FillLock {
            ttl: Duration::from_secs(5),
            wait: Duration::from_secs(5),
            on_timeout: LockTimeout::LoadAnyway,
        }
    }
}

/// What the cache does when Redis fails (unreachable, deadline, ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RedisDown {
    /// Call the loader (the default): still one load per key per process at a time (local
    /// single-flight), nothing is stored.
    Load,
    /// Fail the call with [`Error::Redis`].
    Fail,
}

#[derive(Debug, Clone)]
pub(crate) struct Config {
    pub namespace: String,
    pub ttl: Duration,
    pub jitter: f64,
    pub stale_for: Duration,
    pub serve_stale: bool,
    pub soft_timeout: Option<Duration>,
    pub failsafe_throttle: Duration,
    pub negative_ttl: Option<Duration>,
    pub codec: Codec,
    pub compression: Compression,
    pub early_refresh_beta: Option<f64>,
    pub fill_lock: Option<FillLock>,
    pub on_redis_error: RedisDown,
    pub namespace_refresh: Duration,
    pub lease_ttl: Duration,
    pub write_deadline: Duration,
    pub lease_retries: u32,
    pub write_behind: WriteBehindConfig,
    pub l1: Option<L1Options>,
    pub hot_ids: Option<HotIds>,
}

/// Builds a [`Cache`]; see [`Cache::builder`].
///
/// ```no_run
/// # async fn run(client: shardis::Client) -> Result<(), shardis_cache::Error> {
/// use std::time::Duration;
/// use shardis_cache::{Cache, Codec, Compression, FillLock};
///
/// let cache = Cache::<String>::builder(client)
///     .namespace("product")
///     .ttl(Duration::from_secs(300))
///     .jitter(0.1)
///     .stale_for(Duration::from_secs(3600))
///     .negative_ttl(Duration::from_secs(30))
///     .codec(Codec::MessagePack)
///     .compression(Compression::lz4_above(1024))
///     .fill_lock(FillLock::default())
///     .build()?;
/// # Ok(()) }
/// ```
#[must_use]
pub struct Builder<V> {
    client: shardis::Client,
    config: Config,
    _value: PhantomData<fn() -> V>,
}

impl<V> std::fmt::Debug for Builder<V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Builder")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl<V> Builder<V>
where
    V: Serialize + DeserializeOwned + Clone + Send + Sync + 'static,
{
    pub(crate) fn new(client: shardis::Client) -> Self {
        Builder {
            client,
            config: Config {
                namespace: "cache".into(),
                ttl: Duration::from_secs(60),
                jitter: 0.0,
                stale_for: Duration::ZERO,
                serve_stale: true,
                soft_timeout: None,
                failsafe_throttle: Duration::from_secs(1),
                negative_ttl: None,
                codec: Codec::Json,
                compression: Compression::None,
                early_refresh_beta: Some(1.0),
                fill_lock: None,
                on_redis_error: RedisDown::Load,
                namespace_refresh: Duration::from_secs(1),
                lease_ttl: Duration::from_secs(600),
                write_deadline: Duration::from_secs(2),
                lease_retries: 3,
                write_behind: WriteBehindConfig::default(),
                l1: None,
                hot_ids: None,
            },
            _value: PhantomData,
        }
    }

    /// The namespace (default `"cache"`): every key is stored as `{<namespace>:<namespace
    /// version>:<id>}:v` (its version and lock keys share the hash tag, so the cache's scripts
    /// stay in one slot). It must be non-empty and contain no `{` or `}`.
    pub fn namespace(mut self, namespace: impl Into<String>) -> Self {
        self.config.namespace = namespace.into();
        self
    }

    /// How long a value is fresh (default 60 s).
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.config.ttl = ttl;
        self
    }

    /// Shortens each entry's TTL by a random fraction of up to `fraction` (0 to 1, default 0),
    /// so keys filled together do not expire together.
    pub fn jitter(mut self, fraction: f64) -> Self {
        self.config.jitter = fraction;
        self
    }

    /// How long after it stops being fresh a value is still kept and may be served stale
    /// (default 0: never). This is the maximum staleness of stale-while-revalidate and of
    /// fail-safe: the hard TTL in Redis is `ttl + stale_for`.
    pub fn stale_for(mut self, max_staleness: Duration) -> Self {
        self.config.stale_for = max_staleness;
        self
    }

    /// With a stale value at hand: `true` (the default) serves it at once and refreshes in
    /// the background (stale-while-revalidate); `false` waits for the refresh and serves the
    /// stale value only if the loader fails or exceeds the [`soft_timeout`](Self::soft_timeout)
    /// (fail-safe).
    pub fn serve_stale_while_refreshing(mut self, yes: bool) -> Self {
        self.config.serve_stale = yes;
        self
    }

    /// When waiting for a refresh with a stale value at hand, serve the stale value after
    /// this long (the refresh goes on in the background). Default: none.
    pub fn soft_timeout(mut self, timeout: Duration) -> Self {
        self.config.soft_timeout = Some(timeout);
        self
    }

    /// After a failed background refresh of a key, wait this long before trying that key
    /// again in this process (default 1 s), so a failing database is not hammered.
    pub fn failsafe_throttle(mut self, throttle: Duration) -> Self {
        self.config.failsafe_throttle = throttle;
        self
    }

    /// Cache "not found" (a loader's `None`) for this long (default: not cached).
    pub fn negative_ttl(mut self, ttl: Duration) -> Self {
        self.config.negative_ttl = Some(ttl);
        self
    }

    /// The codec values are written with (default [`Codec::Json`]).
    pub fn codec(mut self, codec: Codec) -> Self {
        self.config.codec = codec;
        self
    }

    /// Compression of encoded values (default none).
    pub fn compression(mut self, compression: Compression) -> Self {
        self.config.compression = compression;
        self
    }

    /// XFetch probabilistic early refresh with this `beta` (default 1.0; larger refreshes
    /// earlier), or `None` to turn it off. On a fresh hit the value is refreshed in the
    /// background when `now - load_time * beta * ln(rand()) >= expiry`.
    pub fn early_refresh(mut self, beta: Option<f64>) -> Self {
        self.config.early_refresh_beta = beta;
        self
    }

    /// Use the fleet-wide fill lock (default: off; in-process single-flight is always on).
    pub fn fill_lock(mut self, lock: FillLock) -> Self {
        self.config.fill_lock = Some(lock);
        self
    }

    /// What to do when Redis fails (default [`RedisDown::Load`]).
    pub fn on_redis_error(mut self, policy: RedisDown) -> Self {
        self.config.on_redis_error = policy;
        self
    }

    /// How often the namespace version is re-read from Redis (default 1 s): an
    /// [`invalidate_all`](Cache::invalidate_all) in another process takes effect here within
    /// this interval (at once in the process that called it).
    pub fn namespace_refresh(mut self, every: Duration) -> Self {
        self.config.namespace_refresh = every;
        self
    }

    /// How long a key's version (its lease against stale fills) lives in Redis after an
    /// invalidation (default 10 min). A fill that takes longer than this is not protected.
    pub fn lease_ttl(mut self, ttl: Duration) -> Self {
        self.config.lease_ttl = ttl;
        self
    }

    /// How long [`Cache::set_through`] keeps retrying the cache write and then the
    /// invalidation (default 2 s).
    pub fn write_deadline(mut self, deadline: Duration) -> Self {
        self.config.write_deadline = deadline;
        self
    }

    /// Write-behind settings ([`Cache::write_behind`] and the [`WriteBehind`](crate::WriteBehind)
    /// flusher); default [`WriteBehindConfig::default`]. Every process of the namespace must
    /// use the same number of partitions.
    pub fn write_behind(mut self, config: WriteBehindConfig) -> Self {
        self.config.write_behind = config;
        self
    }

    /// Turns on the coherent in-process tier (L1, default off): values read from Redis are
    /// kept in this process and served without a network round trip while the invalidation
    /// feed is complete. See [`L1Options`] and the crate documentation for the guarantee.
    /// The cache then needs `CLIENT TRACKING` (Redis 6 or later) on every node, and
    /// [`build`](Self::build) must run inside a tokio runtime.
    ///
    /// ```no_run
    /// # async fn run(client: shardis::Client) -> Result<(), shardis_cache::Error> {
    /// use std::time::Duration;
    /// use shardis_cache::{Cache, L1Options};
    ///
    /// let cache = Cache::<String>::builder(client)
    ///     .namespace("product")
    ///     .l1(L1Options { max_entries: 100_000, ttl: Duration::from_secs(10), ..L1Options::default() })
    ///     .build()?;
    /// # Ok(()) }
    /// ```
    pub fn l1(mut self, options: L1Options) -> Self {
        self.config.l1 = Some(options);
        self
    }

    /// Warms L1 automatically from the fleet's hot ids (default off; needs [`l1`](Self::l1),
    /// else [`build`](Self::build) fails with [`Error::Config`]). Reads of ids are sampled
    /// (one in 16 on average; an unsampled read costs a thread-local countdown) into a
    /// hot-key detector; a background task publishes the ids that take at least 0.1% of this
    /// process's reads to the namespace's hot set every
    /// [`publish_every`](HotIds::publish_every) (as [`Cache::publish_hot`] does), and once
    /// L1 first becomes active loads the fleet's [`warm_top`](HotIds::warm_top) hottest ids
    /// into it (as [`Cache::warm_l1`] does; counted in `CacheStats::l1_warmed`). A failed
    /// publication is logged and counted (`hot_publish_failures`), never an error of a call.
    /// The task ends when the last clone of the cache is dropped.
    ///
    /// ```no_run
    /// # async fn run(client: shardis::Client) -> Result<(), shardis_cache::Error> {
    /// use std::time::Duration;
    /// use shardis_cache::{Cache, HotIds, L1Options};
    ///
    /// let cache = Cache::<String>::builder(client)
    ///     .namespace("product")
    ///     .l1(L1Options::default())
    ///     .hot_ids(HotIds { publish_every: Duration::from_secs(5), warm_top: 500 })
    ///     .build()?;
    /// # Ok(()) }
    /// ```
    pub fn hot_ids(mut self, options: HotIds) -> Self {
        self.config.hot_ids = Some(options);
        self
    }

    /// Checks the settings and builds the cache (no I/O: the namespace version is read on
    /// first use). Must be called inside a tokio runtime when L1 is on (it starts the task
    /// that keeps L1 coherent), else only when the cache is used.
    pub fn build(self) -> Result<Cache<V>> {
        let c = &self.config;
        if c.namespace.is_empty() || c.namespace.contains(['{', '}']) {
            return Err(Error::Config(format!(
                "namespace {:?} must be non-empty and contain no '{{' or '}}'",
                c.namespace
            )));
        }
        if c.ttl.is_zero() {
            return Err(Error::Config("ttl must be positive".into()));
        }
        if !(0.0..1.0).contains(&c.jitter) {
            return Err(Error::Config(format!(
                "jitter {} is not in [0, 1)",
                c.jitter
            )));
        }
        if let Some(beta) = c.early_refresh_beta
            && !(beta.is_finite() && beta > 0.0)
        {
            return Err(Error::Config(format!(
                "early refresh beta {beta} must be > 0"
            )));
        }
        if let Some(lock) = c.fill_lock
            && lock.ttl.as_millis() == 0
        {
            return Err(Error::Config("fill lock ttl must be at least 1 ms".into()));
        }
        if matches!(c.negative_ttl, Some(t) if t.as_millis() == 0) {
            return Err(Error::Config("negative ttl must be at least 1 ms".into()));
        }
        c.write_behind.validate()?;
        if let Some(l1) = &c.l1
            && (l1.max_entries == 0 || l1.ttl.is_zero())
        {
            return Err(Error::Config(
                "L1 needs max_entries and ttl above zero".into(),
            ));
        }
        if let Some(hot) = &c.hot_ids {
            if c.l1.is_none() {
                return Err(Error::Config(
                    "hot_ids warms L1: turn L1 on with Builder::l1 as well".into(),
                ));
            }
            if hot.publish_every.is_zero() {
                return Err(Error::Config(
                    "hot_ids publish_every must be positive".into(),
                ));
            }
        }
        Cache::from_parts(self.client, self.config)
    }
}
