//! The cache: lookups, single-flight fills, the fill lock, leases, early and stale refresh.

use std::collections::HashMap;
use std::fmt::Display;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures::FutureExt;
use futures::future::{BoxFuture, Shared};
use parking_lot::Mutex;
use redis::{Cmd, Value};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tracing::Instrument;

use crate::config::{Builder, Config, LockTimeout, RedisDown};
use crate::envelope::{self, Meta};
use crate::error::{BoxError, Error, Result};
use crate::l1::{Feed, FlushReason, HotReads, L1, Ticket, spawn_feed, spawn_hot_task};
use crate::metrics::{CacheStats, Metrics};
use crate::scripts;

/// A loader as the flight runs it.
pub(crate) type Loader<V> =
    Box<dyn FnOnce() -> BoxFuture<'static, Result<Option<V>, BoxError>> + Send>;

/// Where the value a call returned came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Source {
    /// A fresh value (or a fresh cached not-found) read from Redis.
    Hit,
    /// A stale value: served while a refresh runs, or because the refresh failed or was too
    /// slow (fail-safe).
    Stale,
    /// This call ran the loader (and stored its result).
    Loaded,
    /// This call waited for a load started by another call in this process.
    Joined,
    /// This call waited while another process filled the key (fill lock).
    Filled,
    /// Redis failed; the value comes from the loader and was not stored.
    Degraded,
    /// The in-process tier ([`L1Options`](crate::L1Options)): no network.
    Local,
}

/// A value (or a cached not-found) and where it came from; see [`Cache::fetch`].
#[derive(Debug, Clone, PartialEq)]
pub struct Fetched<V> {
    /// The value; `None` when the loader found nothing (or a cached not-found was hit).
    pub value: Option<V>,
    /// Where it came from.
    pub source: Source,
}

/// How a flight ended.
#[derive(Clone)]
pub(crate) enum FlightEnd<V> {
    Value {
        value: Option<V>,
        source: Source,
    },
    /// Loaded, but not stored: the key was invalidated after the fill read its version.
    Superseded(Option<V>),
    /// A background refresh that found another process refreshing.
    Skipped,
}

type FlightResult<V> = Result<FlightEnd<V>>;

/// What the common path of a lookup read before it handed over to the rest.
struct First<V> {
    keys: Keys,
    ticket: Option<Ticket>,
    found: Result<Option<(Meta, Option<V>)>>,
}

struct Flight<V> {
    id: u64,
    fut: Shared<BoxFuture<'static, FlightResult<V>>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// Nothing usable in Redis.
    Miss,
    /// A value is there (stale, or due for early refresh): reload it.
    Refresh,
    /// Redis failed: call the loader, store nothing.
    Degraded,
}

/// The Redis keys of one cache entry. All share the hash tag `{ns:nsver:id}`, so scripts on
/// them stay in one slot (and, in ring mode, the scripts run on the value key's node).
#[derive(Debug, Clone)]
pub(crate) struct Keys {
    /// `{<namespace>:<ns version>:<id>}:v`; the caller's id is a part of it (see `id`).
    pub(crate) value: String,
    /// Where the id starts in `value`.
    id_start: usize,
    pub(crate) ns_version: u64,
}

impl Keys {
    /// The keys of `id`, formatted once into one string (the id is not kept apart).
    pub(crate) fn new<K: Display + ?Sized>(namespace: &str, ns_version: u64, id: &K) -> Keys {
        use std::fmt::Write;
        let mut value = String::with_capacity(namespace.len() + 32);
        value.push('{');
        value.push_str(namespace);
        value.push(':');
        value.push_str(itoa::Buffer::new().format(ns_version));
        value.push(':');
        let id_start = value.len();
        // Writing to a String never fails.
        let _ = write!(value, "{id}");
        value.push_str("}:v");
        Keys {
            value,
            id_start,
            ns_version,
        }
    }

    /// The caller's id (what L1 is keyed by).
    pub(crate) fn id(&self) -> &str {
        &self.value[self.id_start..self.value.len() - 3]
    }

    fn tag(&self) -> &str {
        &self.value[..self.value.len() - 2]
    }

    pub(crate) fn version(&self) -> String {
        format!("{}:ver", self.tag())
    }

    pub(crate) fn lock(&self) -> String {
        format!("{}:lock", self.tag())
    }

    /// The entry id of the last write-behind change stored in the value key.
    pub(crate) fn write_behind(&self) -> String {
        format!("{}:wb", self.tag())
    }
}

pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

struct NsVersion {
    key: String,
    version: AtomicU64,
    loaded: AtomicBool,
    /// When it was last read, in wall-clock ms (`now_ms`: a lookup reads that clock anyway).
    checked_ms: AtomicU64,
    refreshing: AtomicBool,
    init: tokio::sync::Mutex<()>,
}

pub(crate) struct Inner<V> {
    pub(crate) client: shardis::Client,
    pub(crate) cfg: Config,
    ns: NsVersion,
    flights: Mutex<HashMap<String, Flight<V>>>,
    throttled: Mutex<HashMap<String, Instant>>,
    next_flight: AtomicU64,
    pub(crate) m: Arc<Metrics>,
    /// The in-process tier, when on.
    pub(crate) l1: Option<Arc<L1<V>>>,
    /// Sampled reads of ids, when hot ids are on (`Builder::hot_ids`; L1 is on then).
    pub(crate) hot: Option<HotReads>,
    /// Keeps L1 coherent; stops when the cache is dropped.
    _feed: Option<Feed>,
}

/// A typed cache over a [`shardis::Client`] (cluster or ring mode, hot keys on or off).
///
/// Cheap to clone (clones share everything). Every value lives in Redis in an envelope
/// (see [`Codec`](crate::Codec)); the process keeps no copy of values, only its in-flight
/// loads.
///
/// ```no_run
/// # #[derive(Clone, serde::Serialize, serde::Deserialize)] struct Product { name: String }
/// # #[derive(Clone)] struct Db;
/// # impl Db { async fn load(&self, id: u64) -> Result<Product, std::io::Error> { Ok(Product { name: format!("product {id}") }) } }
/// # async fn run(client: shardis::Client, db: Db) -> Result<(), shardis_cache::Error> {
/// use std::time::Duration;
/// use shardis_cache::Cache;
///
/// let cache = Cache::<Product>::builder(client)
///     .namespace("product")
///     .ttl(Duration::from_secs(300))
///     .build()?;
/// let id = 42u64;
/// let product = cache
///     .get_or_load(&id, move || async move { db.load(id).await })
///     .await?;
/// // After the database row changes:
/// cache.invalidate(&id).await?;
/// # Ok(()) }
/// ```
pub struct Cache<V> {
    pub(crate) inner: Arc<Inner<V>>,
}

impl<V> Clone for Cache<V> {
    fn clone(&self) -> Self {
        Cache {
            inner: self.inner.clone(),
        }
    }
}

impl<V> std::fmt::Debug for Cache<V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cache")
            .field("config", &self.inner.cfg)
            .finish_non_exhaustive()
    }
}

pub(crate) fn box_loader<V, F, Fut, E>(loader: F) -> Loader<V>
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = std::result::Result<Option<V>, E>> + Send + 'static,
    E: Into<BoxError>,
{
    Box::new(move || loader().map(|r| r.map_err(Into::into)).boxed())
}

impl<V> Cache<V>
where
    V: Serialize + DeserializeOwned + Clone + Send + Sync + 'static,
{
    /// Starts building a cache of `V` values over `client`.
    pub fn builder(client: shardis::Client) -> Builder<V> {
        Builder::new(client)
    }

    pub(crate) fn from_parts(client: shardis::Client, cfg: Config) -> Result<Cache<V>> {
        let m = Arc::new(Metrics::new(&cfg.namespace));
        let ns_key = format!("shardis-cache:ns:{}:version", cfg.namespace);
        let (l1, feed) = match &cfg.l1 {
            Some(options) => {
                let l1 = Arc::new(L1::new(options, &cfg.namespace, m.clone()));
                let feed = spawn_feed(
                    &client,
                    l1.clone(),
                    &cfg.namespace,
                    &ns_key,
                    options.backplane,
                )?;
                (Some(l1), Some(feed))
            }
            None => (None, None),
        };
        let ns = NsVersion {
            key: ns_key,
            version: AtomicU64::new(0),
            loaded: AtomicBool::new(false),
            checked_ms: AtomicU64::new(0),
            refreshing: AtomicBool::new(false),
            init: tokio::sync::Mutex::new(()),
        };
        let hot_ids = cfg.hot_ids;
        let inner = Arc::new(Inner {
            client,
            cfg,
            ns,
            flights: Mutex::new(HashMap::new()),
            throttled: Mutex::new(HashMap::new()),
            next_flight: AtomicU64::new(1),
            m,
            hot: hot_ids.map(|_| HotReads::new()),
            l1,
            _feed: feed,
        });
        if let Some(options) = hot_ids {
            // Inside a runtime: the L1 feed (required by the builder) just started.
            spawn_hot_task(Arc::downgrade(&inner), options);
        }
        Ok(Cache { inner })
    }

    /// The value of `id`: from Redis when it is there and fresh, else from `loader`, whose
    /// result is stored. Concurrent misses of one key in this process share one load (the
    /// load runs in its own task: dropping this future does not cancel it for the others);
    /// with a [`FillLock`](crate::FillLock), one process of the fleet loads at a time.
    ///
    /// The loader must be `'static`: move clones of what it needs into it. A loader error
    /// reaches every caller waiting on that load as [`Error::Load`], unless a stale value can
    /// be served in its place; a cached not-found is [`Error::NotFound`].
    ///
    /// ```no_run
    /// # async fn run(cache: shardis_cache::Cache<String>) -> Result<(), shardis_cache::Error> {
    /// let name = cache
    ///     .get_or_load("user:1", || async { Ok::<_, std::io::Error>("Ada".to_string()) })
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub async fn get_or_load<K, F, Fut, E>(&self, id: &K, loader: F) -> Result<V>
    where
        K: Display + ?Sized,
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = std::result::Result<V, E>> + Send + 'static,
        E: Into<BoxError>,
    {
        if let Some(value) = self.local(id) {
            return value.ok_or(Error::NotFound);
        }
        // Past `local` once: a second pass would record the read twice (hot ids). Boxed for
        // the reason given in `fetch`.
        let loader = move || loader().map(|r| r.map(Some));
        let fetched = Box::pin(self.fetch_slow(id, loader)).await?;
        fetched.value.ok_or(Error::NotFound)
    }

    /// The L1 fast path: `id` formatted into a reused buffer (no allocation), the read
    /// recorded (sampled) when hot ids are on, then [`Inner::l1_fast`]. Every read of one id
    /// passes here once.
    fn local<K: Display + ?Sized>(&self, id: &K) -> Option<Option<V>> {
        use std::fmt::Write;
        thread_local! {
            static ID: std::cell::RefCell<String> = const { std::cell::RefCell::new(String::new()) };
        }
        self.inner.l1.as_ref()?;
        ID.with(|buf| {
            // A `Display` that reads the cache itself would find the buffer taken: full path.
            let mut buf = buf.try_borrow_mut().ok()?;
            buf.clear();
            write!(buf, "{id}").ok()?;
            if let Some(hot) = &self.inner.hot {
                hot.read(&buf);
            }
            self.inner.l1_fast(&buf)
        })
    }

    /// Like [`get_or_load`](Self::get_or_load) for a loader that may find nothing: its `None`
    /// is cached for the [negative TTL](crate::Builder::negative_ttl) when one is set.
    ///
    /// ```no_run
    /// # async fn run(cache: shardis_cache::Cache<String>) -> Result<(), shardis_cache::Error> {
    /// let name: Option<String> = cache
    ///     .get_or_load_optional("user:404", || async { Ok::<_, std::io::Error>(None) })
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub async fn get_or_load_optional<K, F, Fut, E>(&self, id: &K, loader: F) -> Result<Option<V>>
    where
        K: Display + ?Sized,
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = std::result::Result<Option<V>, E>> + Send + 'static,
        E: Into<BoxError>,
    {
        Ok(self.fetch(id, loader).await?.value)
    }

    /// [`get_or_load_optional`](Self::get_or_load_optional) that also says where the value
    /// came from ([`Source`]).
    ///
    /// ```no_run
    /// # async fn run(cache: shardis_cache::Cache<String>) -> Result<(), shardis_cache::Error> {
    /// use shardis_cache::Source;
    /// let fetched = cache.fetch("k", || async { Ok::<_, std::io::Error>(Some("v".to_string())) }).await?;
    /// if fetched.source == Source::Stale { /* served while refreshing */ }
    /// # Ok(()) }
    /// ```
    pub async fn fetch<K, F, Fut, E>(&self, id: &K, loader: F) -> Result<Fetched<V>>
    where
        K: Display + ?Sized,
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = std::result::Result<Option<V>, E>> + Send + 'static,
        E: Into<BoxError>,
    {
        if let Some(value) = self.local(id) {
            return Ok(Fetched {
                value,
                source: Source::Local,
            });
        }
        // Boxed: the lookup holds a client command's future (kilobytes); kept inline it would
        // be copied on every call, L1 hits included.
        Box::pin(self.fetch_slow(id, loader)).await
    }

    /// [`fetch`](Self::fetch) past L1: a span around the lookup. Not an `async fn`: when
    /// nobody listens this is the lookup's future itself, with no layer of state around it
    /// (it is what `fetch` boxes, and a box of at most 1,032 bytes stays in glibc's
    /// per-thread cache).
    fn fetch_slow<K, F, Fut, E>(
        &self,
        id: &K,
        loader: F,
    ) -> impl Future<Output = Result<Fetched<V>>>
    where
        K: Display + ?Sized,
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = std::result::Result<Option<V>, E>> + Send + 'static,
        E: Into<BoxError>,
    {
        use futures::future::Either;
        let span = tracing::debug_span!(
            "shardis_cache.fetch",
            namespace = %self.inner.cfg.namespace,
            id = %id,
            source = tracing::field::Empty,
        );
        if span.is_disabled() {
            return Either::Left(self.lookup(id, loader));
        }
        // Boxed: only while a subscriber listens at debug level.
        Either::Right(Box::pin(async move {
            let result = self.lookup(id, loader).instrument(span.clone()).await;
            if let Ok(f) = &result {
                span.record("source", tracing::field::debug(f.source));
            }
            result
        }))
    }

    /// The common path inline — the namespace version known, one `GET`, a fresh value —
    /// and everything else awaited boxed ([`fetch_rest`](Self::fetch_rest): reading the
    /// namespace version, stale values, misses, fills, Redis failures), so the future of a
    /// lookup holds little beyond the client's command (test
    /// `future_size::lookup_future_stays_small`). The loader is boxed only when it may run.
    async fn lookup<K, F, Fut, E>(&self, id: &K, loader: F) -> Result<Fetched<V>>
    where
        K: Display + ?Sized,
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = std::result::Result<Option<V>, E>> + Send + 'static,
        E: Into<BoxError>,
    {
        let inner = &self.inner;
        let Some(nsver) = inner.ns_version_now() else {
            let id = id.to_string();
            return Box::pin(self.fetch_rest(&id, box_loader(loader), None)).await;
        };
        // L1 needs no second look here: `local` just missed it (or it is off or unusable).
        let keys = Keys::new(&inner.cfg.namespace, nsver, id);
        // Taken before the read: what it finds goes to L1 only if nothing changed since.
        let ticket = inner.l1.as_ref().and_then(|l1| l1.ticket(keys.id()));
        // `Inner::read`, written out: one async layer less on every lookup.
        let read = match inner.client.send(redis::cmd("GET").arg(&keys.value)).await {
            Ok(reply) => Ok(inner.decode_reply(&keys, reply)),
            Err(e) => Err(Error::from(e)),
        };
        let now = now_ms();
        inner.refresh_ns_if_due(now);
        let found = match read {
            Ok(Some((meta, value))) => {
                if now < meta.soft_expiry_ms {
                    return Ok(inner.fresh_hit(&keys, ticket, &meta, value, now, || {
                        Some(box_loader(loader))
                    }));
                }
                Ok(Some((meta, value)))
            }
            other => other,
        };
        let id = keys.id().to_string();
        let first = First {
            keys,
            ticket,
            found,
        };
        Box::pin(self.fetch_rest(&id, box_loader(loader), Some(first))).await
    }

    /// The value of `id` if Redis has it fresh (or stale within the maximum staleness), without
    /// loading. A cached not-found is `Ok(None)` too.
    ///
    /// ```no_run
    /// # async fn run(cache: shardis_cache::Cache<String>) -> Result<(), shardis_cache::Error> {
    /// let maybe: Option<String> = cache.get("user:1").await?;
    /// # Ok(()) }
    /// ```
    pub async fn get<K: Display + ?Sized>(&self, id: &K) -> Result<Option<V>> {
        if let Some(value) = self.local(id) {
            return Ok(value);
        }
        // Boxed for the reason given in `fetch`.
        Box::pin(self.get_slow(id)).await
    }

    /// [`get`](Self::get) past L1's fast path (a read not recorded as one of hot ids).
    pub(crate) async fn get_slow<K: Display + ?Sized>(&self, id: &K) -> Result<Option<V>> {
        let inner = &self.inner;
        let nsver = inner.ns_version().await?;
        let keys = Keys::new(&inner.cfg.namespace, nsver, id);
        if let Some(value) = inner.l1_get(keys.id(), nsver) {
            return Ok(value);
        }
        let ticket = inner.l1.as_ref().and_then(|l1| l1.ticket(keys.id()));
        let found = inner.read(&keys).await?;
        if let (Some(ticket), Some((meta, value))) = (ticket, &found)
            && now_ms() < meta.soft_expiry_ms
        {
            inner.l1_fill(&keys, ticket, value.clone(), meta.soft_expiry_ms);
        }
        Ok(found.and_then(|(_, v)| v))
    }

    /// Makes `id` a miss everywhere and every fill of it that began before this call unable
    /// to store its (older) value: the key's version is bumped and the value and its fill lock
    /// deleted, in one script. Call it after the database write.
    ///
    /// ```no_run
    /// # async fn run(cache: shardis_cache::Cache<String>) -> Result<(), shardis_cache::Error> {
    /// cache.invalidate("user:1").await?;
    /// # Ok(()) }
    /// ```
    pub async fn invalidate<K: Display + ?Sized>(&self, id: &K) -> Result<()> {
        let nsver = self.inner.ns_version().await?;
        let keys = Keys::new(&self.inner.cfg.namespace, nsver, id);
        self.inner.invalidate_keys(&keys).await
    }

    /// Invalidates every key of the namespace in O(1): the namespace version (part of every
    /// key) is incremented; old entries are never read again and age out by their TTL. Other
    /// processes see it within [`namespace_refresh`](crate::Builder::namespace_refresh).
    /// Returns the new namespace version.
    ///
    /// ```no_run
    /// # async fn run(cache: shardis_cache::Cache<String>) -> Result<(), shardis_cache::Error> {
    /// let version = cache.invalidate_all().await?;
    /// # Ok(()) }
    /// ```
    pub async fn invalidate_all(&self) -> Result<u64> {
        let inner = &self.inner;
        let reply = inner
            .client
            .send(redis::cmd("INCR").arg(&inner.ns.key))
            .await?;
        let v = match reply {
            Value::Int(v) if v >= 0 => v as u64,
            other => return Err(Error::Reply(format!("INCR namespace version: {other:?}"))),
        };
        inner.ns.version.fetch_max(v, Ordering::AcqRel);
        inner.ns.loaded.store(true, Ordering::Release);
        if let Some(l1) = &inner.l1 {
            l1.flush(FlushReason::Namespace);
        }
        Ok(inner.ns.version.load(Ordering::Acquire))
    }

    /// Drops `id` from the in-process tier (L1) of every process of the namespace, through the
    /// namespace's backplane channel (`PUBLISH shardis-cache:l1:<namespace> <id>`), for a
    /// change that does not go through Redis (which the invalidation feed would report). The
    /// Redis copy is untouched: call [`invalidate`](Self::invalidate) for that. Returns how
    /// many processes received it (what `PUBLISH` answers).
    ///
    /// ```no_run
    /// # async fn run(cache: shardis_cache::Cache<String>) -> Result<(), shardis_cache::Error> {
    /// cache.publish_invalidation("user:1").await?;
    /// # Ok(()) }
    /// ```
    pub async fn publish_invalidation<K: Display + ?Sized>(&self, id: &K) -> Result<u64> {
        let inner = &self.inner;
        let id = id.to_string();
        if let Some(l1) = &inner.l1 {
            l1.invalidate(&id);
        }
        let channel = crate::l1::backplane_channel(&inner.cfg.namespace);
        match inner
            .client
            .send(redis::cmd("PUBLISH").arg(channel).arg(&id))
            .await?
        {
            Value::Int(n) => Ok(n.max(0) as u64),
            other => Err(Error::Reply(format!("PUBLISH: {other:?}"))),
        }
    }

    /// Whether the in-process tier (L1) serves values now: it is on, and its invalidation
    /// feed is complete (every node tracked, the backplane subscribed, no loss since). While
    /// it is not, every read goes to Redis.
    pub fn l1_active(&self) -> bool {
        self.inner.l1.as_ref().is_some_and(|l1| l1.usable())
    }

    /// What this cache has done so far in this process.
    pub fn stats(&self) -> CacheStats {
        self.inner.m.snapshot()
    }

    /// The lookup past its common path: `first` is what [`lookup`](Self::lookup) read, if
    /// it read (a value that is not fresh, a miss, or a Redis failure).
    async fn fetch_rest(
        &self,
        id: &str,
        loader: Loader<V>,
        mut first: Option<First<V>>,
    ) -> Result<Fetched<V>> {
        let inner = &self.inner;
        let mut loader = Some(loader);
        // The value of this call's own fill if an invalidation rejected it: served only if no
        // newer value can be found or loaded by someone else.
        let mut fallback: Option<Option<V>> = None;
        let no_loader = |fallback: &mut Option<Option<V>>, e: Error| match fallback.take() {
            Some(value) => Ok(Fetched {
                value,
                source: Source::Loaded,
            }),
            None => Err(e),
        };
        let attempts = inner.cfg.lease_retries + 1;
        for attempt in 1..=attempts {
            let last = attempt == attempts;
            let (keys, ticket, read) = match first.take() {
                Some(First {
                    keys,
                    ticket,
                    found,
                }) => (Some(keys), ticket, Some(found)),
                None => match inner.ns_version().await {
                    Ok(v) => {
                        if let Some(value) = inner.l1_get(id, v) {
                            return Ok(Fetched {
                                value,
                                source: Source::Local,
                            });
                        }
                        // Taken before the read: what it finds goes to L1 only if nothing
                        // changed since.
                        let ticket = inner.l1.as_ref().and_then(|l1| l1.ticket(id));
                        let keys = Keys::new(&inner.cfg.namespace, v, id);
                        let found = inner.read(&keys).await;
                        (Some(keys), ticket, Some(found))
                    }
                    Err(e) => {
                        inner.redis_failed(&e)?;
                        (None, None, None)
                    }
                },
            };
            let found = match read {
                Some(Ok(found)) => found,
                Some(Err(e)) => {
                    inner.redis_failed(&e)?;
                    None
                }
                None => None,
            };
            let keys = match (keys, &found) {
                (Some(k), _) => k,
                (None, _) => {
                    // Redis is down: load through the local single-flight only.
                    let keys = Keys::new(&inner.cfg.namespace, u64::MAX, id);
                    inner.m.misses.inc();
                    let (fut, _) = inner.flight(&keys, &mut loader, Kind::Degraded)?;
                    return match fut.await? {
                        FlightEnd::Value { value, .. } | FlightEnd::Superseded(value) => {
                            Ok(Fetched {
                                value,
                                source: Source::Degraded,
                            })
                        }
                        FlightEnd::Skipped => Err(Error::Aborted("degraded load skipped".into())),
                    };
                }
            };
            if let Some((meta, value)) = found {
                let now = now_ms();
                if now < meta.soft_expiry_ms {
                    return Ok(inner.fresh_hit(&keys, ticket, &meta, value, now, || loader.take()));
                }
                // Stale: within the maximum staleness, or Redis would have dropped it.
                if inner.cfg.serve_stale {
                    if let Some(l) = loader.take()
                        && inner.refresh_in_background(&keys, l)
                    {
                        inner.m.background_refreshes.inc();
                    }
                    inner.m.stale_served.inc();
                    return Ok(Fetched {
                        value,
                        source: Source::Stale,
                    });
                }
                let (fut, started) = match inner.flight(&keys, &mut loader, Kind::Refresh) {
                    Ok(f) => f,
                    Err(e) => return no_loader(&mut fallback, e),
                };
                let waited = match inner.cfg.soft_timeout {
                    Some(t) => tokio::time::timeout(t, fut).await.ok(),
                    None => Some(fut.await),
                };
                match waited {
                    Some(Ok(FlightEnd::Value { value, source })) => {
                        return Ok(Fetched {
                            value,
                            source: if started { source } else { Source::Joined },
                        });
                    }
                    Some(Ok(FlightEnd::Superseded(v))) if last => {
                        return Ok(Fetched {
                            value: v,
                            source: Source::Loaded,
                        });
                    }
                    // Invalidated while we waited: our stale value is older still; look again.
                    Some(Ok(FlightEnd::Superseded(v))) => {
                        if started {
                            fallback = Some(v);
                        }
                        continue;
                    }
                    // Timed out, failed, or another process is refreshing: fail-safe.
                    Some(Ok(FlightEnd::Skipped)) | Some(Err(_)) | None => {
                        inner.m.stale_served.inc();
                        return Ok(Fetched {
                            value,
                            source: Source::Stale,
                        });
                    }
                }
            }
            inner.m.misses.inc();
            let (fut, started) = match inner.flight(&keys, &mut loader, Kind::Miss) {
                Ok(f) => f,
                Err(e) => return no_loader(&mut fallback, e),
            };
            match fut.await? {
                FlightEnd::Value { value, source } => {
                    return Ok(Fetched {
                        value,
                        source: if started { source } else { Source::Joined },
                    });
                }
                // Rejected by an invalidation: everyone looks again, so no call that starts
                // after an invalidation gets the older value. Only the call that started the
                // fill (it began before the invalidation: its read is concurrent with that
                // write) falls back to its value, and only if nothing newer turns up.
                FlightEnd::Superseded(value) if last => {
                    return Ok(Fetched {
                        value,
                        source: Source::Loaded,
                    });
                }
                FlightEnd::Superseded(value) => {
                    if started {
                        fallback = Some(value);
                    }
                    continue;
                }
                FlightEnd::Skipped => continue,
            }
        }
        no_loader(
            &mut fallback,
            Error::Aborted(format!(
                "the key was invalidated during each of {attempts} loads"
            )),
        )
    }
}

impl<V> Inner<V>
where
    V: Serialize + DeserializeOwned + Clone + Send + Sync + 'static,
{
    /// Counts a Redis failure; `Err` when the policy is to fail.
    pub(crate) fn redis_failed(&self, e: &Error) -> Result<()> {
        self.m.redis_errors.inc();
        tracing::warn!(error = %e, namespace = %self.cfg.namespace, "redis failed in the cache");
        match self.cfg.on_redis_error {
            RedisDown::Fail => Err(e.clone()),
            RedisDown::Load => Ok(()),
        }
    }

    /// The namespace version: read once, then re-read in the background every
    /// `namespace_refresh`.
    pub(crate) async fn ns_version(self: &Arc<Self>) -> Result<u64> {
        match self.ns_version_now() {
            Some(v) => {
                self.refresh_ns_if_due(now_ms());
                Ok(v)
            }
            // Boxed: a read of Redis, rarely taken.
            None => Box::pin(self.load_ns_version()).await,
        }
    }

    /// The namespace version without waiting, when it is known and may be used (`None`:
    /// [`ns_version`](Self::ns_version) must read it). The caller also calls
    /// [`refresh_ns_if_due`](Self::refresh_ns_if_due).
    pub(crate) fn ns_version_now(&self) -> Option<u64> {
        let ns = &self.ns;
        if !ns.loaded.load(Ordering::Acquire)
            || self
                .l1
                .as_ref()
                .is_some_and(|l1| l1.namespace_stale().is_some())
        {
            return None;
        }
        Some(ns.version.load(Ordering::Acquire))
    }

    /// Starts the periodic re-read of the namespace version in the background when it is
    /// due at `now` (wall-clock ms; a clock that stepped back by more than the period also
    /// makes it due, so a step never holds it off).
    pub(crate) fn refresh_ns_if_due(self: &Arc<Self>, now: u64) {
        let ns = &self.ns;
        let checked = ns.checked_ms.load(Ordering::Relaxed);
        if now.abs_diff(checked) >= self.cfg.namespace_refresh.as_millis() as u64
            && !ns.refreshing.swap(true, Ordering::AcqRel)
        {
            let inner = self.clone();
            tokio::spawn(async move {
                if let Ok(v) = inner.read_ns_version().await {
                    inner.ns.version.fetch_max(v, Ordering::AcqRel);
                }
                inner.ns.checked_ms.store(now_ms(), Ordering::Relaxed);
                inner.ns.refreshing.store(false, Ordering::Release);
            });
        }
    }

    /// Reads the namespace version: the first time, or after its key changed (tracking told
    /// us) and before L1 is used again.
    async fn load_ns_version(self: &Arc<Self>) -> Result<u64> {
        let ns = &self.ns;
        if let Some(l1) = &self.l1
            && let Some(mark) = l1.namespace_stale()
        {
            let v = self.read_ns_version().await?;
            ns.version.fetch_max(v, Ordering::AcqRel);
            ns.loaded.store(true, Ordering::Release);
            l1.namespace_read(mark);
        }
        if ns.loaded.load(Ordering::Acquire) {
            return Ok(ns.version.load(Ordering::Acquire));
        }
        let _guard = ns.init.lock().await;
        if !ns.loaded.load(Ordering::Acquire) {
            let v = self.read_ns_version().await?;
            ns.version.fetch_max(v, Ordering::AcqRel);
            ns.checked_ms.store(now_ms(), Ordering::Relaxed);
            ns.loaded.store(true, Ordering::Release);
        }
        Ok(ns.version.load(Ordering::Acquire))
    }

    async fn read_ns_version(&self) -> Result<u64> {
        match self
            .client
            .send(redis::cmd("GET").arg(&self.ns.key))
            .await?
        {
            Value::Nil => Ok(0),
            Value::BulkString(b) => std::str::from_utf8(&b)
                .ok()
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| Error::Reply(format!("namespace version {b:?}"))),
            other => Err(Error::Reply(format!("namespace version: {other:?}"))),
        }
    }

    /// Reads and decodes the value key. An undecodable value is a miss (counted, logged).
    pub(crate) async fn read(&self, keys: &Keys) -> Result<Option<(Meta, Option<V>)>> {
        let reply = self.client.send(redis::cmd("GET").arg(&keys.value)).await?;
        Ok(self.decode_reply(keys, reply))
    }

    pub(crate) fn decode_reply(&self, keys: &Keys, reply: Value) -> Option<(Meta, Option<V>)> {
        match reply {
            Value::Nil => None,
            Value::BulkString(bytes) => self.decode_bytes(keys, &bytes),
            other => {
                self.m.decode_failures.inc();
                tracing::warn!(key = %keys.value, reply = ?other, "cache key holds something else; treated as a miss");
                None
            }
        }
    }

    pub(crate) fn decode_bytes(&self, keys: &Keys, bytes: &[u8]) -> Option<(Meta, Option<V>)> {
        match envelope::decode::<V>(bytes) {
            Ok(found) => Some(found),
            Err(e) => {
                self.m.decode_failures.inc();
                tracing::warn!(key = %keys.value, error = %e, "cached value does not decode; treated as a miss");
                None
            }
        }
    }

    /// A fresh value read from Redis: counted, put into L1 (if `ticket` still holds), and an
    /// XFetch early refresh started when it is due (`loader` is asked only then).
    fn fresh_hit(
        self: &Arc<Self>,
        keys: &Keys,
        ticket: Option<Ticket>,
        meta: &Meta,
        value: Option<V>,
        now: u64,
        loader: impl FnOnce() -> Option<Loader<V>>,
    ) -> Fetched<V> {
        if value.is_some() {
            self.m.hits.inc();
        } else {
            self.m.negative_hits.inc();
        }
        if let Some(ticket) = ticket {
            self.l1_fill(keys, ticket, value.clone(), meta.soft_expiry_ms);
        }
        if self.due_for_early_refresh(meta, now)
            && let Some(l) = loader()
            && self.refresh_in_background(keys, l)
        {
            self.m.early_refreshes.inc();
        }
        Fetched {
            value,
            source: Source::Hit,
        }
    }

    fn due_for_early_refresh(&self, meta: &Meta, now: u64) -> bool {
        let Some(beta) = self.cfg.early_refresh_beta else {
            return false;
        };
        if meta.negative {
            return false;
        }
        // XFetch: recompute when now - delta * beta * ln(rand) >= expiry, rand in (0, 1].
        // `rand` is a multiple of 2^-53, so -ln(rand) <= 53 ln 2 < 37: further from expiry
        // than 37 delta * beta, no draw can refresh, and none is made.
        let scale = meta.load_ms as f64 * beta;
        let (now, expiry) = (now as f64, meta.soft_expiry_ms as f64);
        if now + scale * 37.0 < expiry {
            return false;
        }
        let r: f64 = 1.0 - rand::random::<f64>();
        now - scale * r.ln() >= expiry
    }

    /// Starts a background refresh unless one is running or the key is throttled after a
    /// failure. Returns whether it started one.
    fn refresh_in_background(self: &Arc<Self>, keys: &Keys, loader: Loader<V>) -> bool {
        {
            let mut throttled = self.throttled.lock();
            if let Some(until) = throttled.get(&keys.value) {
                if Instant::now() < *until {
                    return false;
                }
                throttled.remove(&keys.value);
            }
        }
        let mut loader = Some(loader);
        matches!(self.flight(keys, &mut loader, Kind::Refresh), Ok((_, true)))
    }

    /// Joins the flight for `keys` or starts one (taking the loader). Returns the shared
    /// result and whether this call started it.
    pub(crate) fn flight(
        self: &Arc<Self>,
        keys: &Keys,
        loader: &mut Option<Loader<V>>,
        kind: Kind,
    ) -> Result<(Shared<BoxFuture<'static, FlightResult<V>>>, bool)> {
        let mut flights = self.flights.lock();
        if let Some(f) = flights.get(&keys.value) {
            return Ok((f.fut.clone(), false));
        }
        let Some(load) = loader.take() else {
            return Err(Error::Aborted("no loader left for this call".into()));
        };
        let id = self.next_flight.fetch_add(1, Ordering::Relaxed);
        let inner = self.clone();
        let task_keys = keys.clone();
        let span = tracing::debug_span!("shardis_cache.fill", key = %keys.value, kind = ?kind);
        let handle = tokio::spawn(
            async move {
                let result = inner.fill(&task_keys, load, kind).await;
                if kind == Kind::Refresh {
                    let mut throttled = inner.throttled.lock();
                    if result.is_err() {
                        throttled.insert(
                            task_keys.value.clone(),
                            Instant::now() + inner.cfg.failsafe_throttle,
                        );
                    } else {
                        throttled.remove(&task_keys.value);
                    }
                }
                let mut flights = inner.flights.lock();
                if flights.get(&task_keys.value).is_some_and(|f| f.id == id) {
                    flights.remove(&task_keys.value);
                }
                result
            }
            .instrument(span),
        );
        let fut = async move {
            match handle.await {
                Ok(result) => result,
                Err(e) => Err(Error::Aborted(e.to_string())),
            }
        }
        .boxed()
        .shared();
        flights.insert(
            keys.value.clone(),
            Flight {
                id,
                fut: fut.clone(),
            },
        );
        Ok((fut, true))
    }

    /// Forgets the local flight of `keys` (new callers start a new one).
    pub(crate) fn forget_flight(&self, keys: &Keys) {
        // Every write path calls this before and after its write: L1 drops the entry and no
        // read that began before may fill it.
        if let Some(l1) = &self.l1 {
            l1.invalidate(keys.id());
        }
        self.flights.lock().remove(&keys.value);
        self.throttled.lock().remove(&keys.value);
    }

    /// The L1 value of `id`, counted, if L1 may serve it.
    pub(crate) fn l1_get(&self, id: &str, ns_version: u64) -> Option<Option<V>> {
        let value = self.l1.as_ref()?.get(id, ns_version)?;
        self.m.l1_hits.inc();
        Some(value)
    }

    /// The L1 hit path without the lookup machinery (no span, no loader box, no future, no
    /// clock read): the value of `id` if L1 serves it. The namespace version needs no periodic
    /// re-read while L1 is usable: its key is tracked, and a change of it makes L1 unusable
    /// until the version was read again (`ns_version`). `None` sends the caller down the full
    /// path.
    pub(crate) fn l1_fast(&self, id: &str) -> Option<Option<V>> {
        let l1 = self.l1.as_ref()?;
        if !self.ns.loaded.load(Ordering::Acquire) {
            return None;
        }
        let value = l1.get(id, self.ns.version.load(Ordering::Acquire))?;
        self.m.l1_hits.inc();
        Some(value)
    }

    /// Puts what a read that took `ticket` found into L1, unless something changed since.
    pub(crate) fn l1_fill(
        &self,
        keys: &Keys,
        ticket: Ticket,
        value: Option<V>,
        fresh_until_ms: u64,
    ) {
        if let Some(l1) = &self.l1 {
            if l1.fill(keys.id(), ticket, keys.ns_version, value, fresh_until_ms) {
                self.m.l1_fills.inc();
            } else {
                self.m.l1_fills_refused.inc();
            }
        }
    }

    pub(crate) async fn invalidate_keys(&self, keys: &Keys) -> Result<()> {
        // Forget first: callers from now on must not join a fill that began earlier.
        self.forget_flight(keys);
        let cmd = scripts::invalidate(keys, self.cfg.lease_ttl);
        expect_ok(self.client.send(&cmd).await?)?;
        self.forget_flight(keys);
        Ok(())
    }

    pub(crate) async fn eval(&self, cmd: &Cmd) -> Result<Value> {
        match self.client.send(cmd).await? {
            Value::ServerError(e) => Err(Error::Server(format!("{e:?}"))),
            v => Ok(v),
        }
    }

    /// The TTLs of a new entry: (fresh, hard) in milliseconds, jittered.
    pub(crate) fn ttls(&self, negative: bool) -> (u64, u64) {
        let base = if negative {
            self.cfg.negative_ttl.unwrap_or(self.cfg.ttl)
        } else {
            self.cfg.ttl
        };
        let mut fresh = base.as_millis() as f64;
        if self.cfg.jitter > 0.0 {
            fresh *= 1.0 - self.cfg.jitter * rand::random::<f64>();
        }
        let fresh = (fresh as u64).max(1);
        let stale = if negative {
            0
        } else {
            self.cfg.stale_for.as_millis() as u64
        };
        (fresh, fresh + stale)
    }

    pub(crate) fn envelope(
        &self,
        value: Option<&V>,
        fresh_ms: u64,
        load_ms: u32,
    ) -> Result<Vec<u8>> {
        let now = now_ms();
        envelope::encode(
            value,
            self.cfg.codec,
            self.cfg.compression,
            now,
            now + fresh_ms,
            load_ms,
        )
        .map_err(Error::Encode)
    }

    async fn call_loader(&self, loader: Loader<V>) -> Result<(Option<V>, u32)> {
        self.m.loads.inc();
        let started = Instant::now();
        let result = loader().await;
        let took = started.elapsed();
        self.m.load_seconds.record(took.as_secs_f64());
        match result {
            Ok(v) => Ok((v, took.as_millis().min(u32::MAX as u128) as u32)),
            Err(e) => {
                self.m.load_errors.inc();
                tracing::warn!(error = %e, namespace = %self.cfg.namespace, "loader failed");
                Err(Error::load(e))
            }
        }
    }

    /// One fill: (maybe) take the fill lock and read the key's version, load, store if the
    /// version is unchanged.
    async fn fill(&self, keys: &Keys, loader: Loader<V>, kind: Kind) -> FlightResult<V> {
        if kind == Kind::Degraded {
            self.m.degraded_loads.inc();
            let (value, _) = self.call_loader(loader).await?;
            return Ok(FlightEnd::Value {
                value,
                source: Source::Degraded,
            });
        }
        // Taken before this fill reads anything: its value goes to L1 only if nothing changed
        // since (a caller that joins later may have seen an invalidation this fill predates).
        let ticket = self.l1.as_ref().and_then(|l1| l1.ticket(keys.id()));
        let token = format!("{:032x}", rand::random::<u128>());
        let lock = self.cfg.fill_lock;
        let lock_ms = lock.map_or(0, |l| l.ttl.as_millis() as u64);
        let mut refresh = kind == Kind::Refresh;
        let prepared = loop {
            let prep = match self.prepare(keys, &token, lock_ms, refresh).await {
                Ok(p) => p,
                Err(e) => {
                    self.redis_failed(&e)?;
                    self.m.degraded_loads.inc();
                    let (value, _) = self.call_loader(loader).await?;
                    return Ok(FlightEnd::Value {
                        value,
                        source: Source::Degraded,
                    });
                }
            };
            if kind == Kind::Miss
                && let Some(bytes) = &prep.value
            {
                // Someone filled it since our read: use theirs.
                if let Some(value) = self.fresh_value(keys, bytes, ticket) {
                    if prep.locked {
                        let _ = self.eval(&scripts::release(keys, &token)).await;
                    }
                    return Ok(FlightEnd::Value {
                        value,
                        source: Source::Filled,
                    });
                }
                if !refresh {
                    // Stale or undecodable: refill, under the lock if there is one.
                    refresh = true;
                    continue;
                }
            }
            break prep;
        };
        let mut version = prepared.version;
        let mut have_lock = prepared.locked;
        if let Some(lock) = lock
            && !have_lock
        {
            if kind == Kind::Refresh {
                // Another process is refreshing it; callers keep the current value.
                return Ok(FlightEnd::Skipped);
            }
            self.m.lock_waits.inc();
            let deadline = Instant::now() + lock.wait;
            let mut pause = Duration::from_millis(5);
            loop {
                if Instant::now() >= deadline {
                    self.m.lock_timeouts.inc();
                    match lock.on_timeout {
                        LockTimeout::Fail => return Err(Error::LockTimeout(lock.wait)),
                        LockTimeout::LoadAnyway => break,
                    }
                }
                tokio::time::sleep(pause.min(deadline.saturating_duration_since(Instant::now())))
                    .await;
                pause = (pause * 2).min(Duration::from_millis(100));
                match self.prepare(keys, &token, lock_ms, refresh).await {
                    Ok(p) => {
                        if let Some(bytes) = &p.value
                            && let Some(value) = self.fresh_value(keys, bytes, ticket)
                        {
                            if p.locked {
                                let _ = self.eval(&scripts::release(keys, &token)).await;
                            }
                            return Ok(FlightEnd::Value {
                                value,
                                source: Source::Filled,
                            });
                        }
                        version = p.version;
                        if p.locked {
                            have_lock = true;
                            break;
                        }
                    }
                    Err(e) => {
                        self.redis_failed(&e)?;
                        break;
                    }
                }
            }
        }
        let result = self.call_loader(loader).await;
        let (value, load_ms) = match result {
            Ok(ok) => ok,
            Err(e) => {
                if have_lock {
                    let _ = self.eval(&scripts::release(keys, &token)).await;
                }
                return Err(e);
            }
        };
        if value.is_none() && self.cfg.negative_ttl.is_none() {
            if have_lock {
                let _ = self.eval(&scripts::release(keys, &token)).await;
            }
            return Ok(FlightEnd::Value {
                value,
                source: Source::Loaded,
            });
        }
        let (fresh, hard) = self.ttls(value.is_none());
        let bytes = match self.envelope(value.as_ref(), fresh, load_ms) {
            Ok(b) => b,
            Err(e) => {
                if have_lock {
                    let _ = self.eval(&scripts::release(keys, &token)).await;
                }
                return Err(e);
            }
        };
        let token = if have_lock { token.as_str() } else { "" };
        match self
            .eval(&scripts::store(keys, &version, &bytes, hard, token))
            .await
        {
            Ok(Value::Int(1)) => {
                if let Some(ticket) = ticket {
                    self.l1_fill(keys, ticket, value.clone(), now_ms() + fresh);
                }
                Ok(FlightEnd::Value {
                    value,
                    source: Source::Loaded,
                })
            }
            Ok(Value::Int(0)) => {
                self.m.lease_rejections.inc();
                tracing::debug!(key = %keys.value, "fill not stored: the key was invalidated while it ran");
                Ok(FlightEnd::Superseded(value))
            }
            Ok(other) => {
                self.m.store_failures.inc();
                tracing::warn!(key = %keys.value, reply = ?other, "unexpected reply to the store script");
                Ok(FlightEnd::Value {
                    value,
                    source: Source::Loaded,
                })
            }
            Err(e) => {
                self.m.store_failures.inc();
                self.m.redis_errors.inc();
                tracing::warn!(key = %keys.value, error = %e, "loaded value not stored");
                Ok(FlightEnd::Value {
                    value,
                    source: Source::Loaded,
                })
            }
        }
    }

    /// The value in `bytes` if it decodes and is fresh. Not counted as a decode failure when
    /// it does not decode: the read that sent this call here counted it already.
    fn fresh_value(&self, keys: &Keys, bytes: &[u8], ticket: Option<Ticket>) -> Option<Option<V>> {
        let (meta, value) = envelope::decode::<V>(bytes).ok()?;
        if now_ms() >= meta.soft_expiry_ms {
            return None;
        }
        if let Some(ticket) = ticket {
            self.l1_fill(keys, ticket, value.clone(), meta.soft_expiry_ms);
        }
        Some(value)
    }

    /// The miss script: the value if present (unless refreshing), the key's version, and
    /// whether the fill lock was taken.
    async fn prepare(
        &self,
        keys: &Keys,
        token: &str,
        lock_ms: u64,
        refresh: bool,
    ) -> Result<scripts::Prepared> {
        let reply = self
            .eval(&scripts::prepare(keys, token, lock_ms, refresh))
            .await?;
        scripts::Prepared::parse(reply)
    }
}

fn expect_ok(v: Value) -> Result<()> {
    match v {
        Value::Int(_) | Value::Okay => Ok(()),
        Value::ServerError(e) => Err(Error::Server(format!("{e:?}"))),
        other => Err(Error::Reply(format!("{other:?}"))),
    }
}

#[cfg(test)]
mod future_size {
    use super::*;

    /// How much a lookup's future may hold beyond the client command it awaits. Measured
    /// 256 bytes (960 for the lookup, 704 for `Client::send`; the same in debug and release
    /// builds); 376 before `fetch_slow` stopped wrapping the lookup (1,784 against 1,408), and
    /// 656 before the rare paths were boxed out of it (2,400 against 1,744).
    const OVER_SEND: usize = 320;
    /// What a boxed lookup may weigh: glibc serves allocations of up to 1,032 usable bytes
    /// from its per-thread cache, larger ones through its slower general path, on every
    /// lookup past L1.
    const BOXED: usize = 1_032;
    /// `get_or_load`'s own future: an L1 hit builds and moves only this.
    const GET_OR_LOAD: usize = 128;

    #[tokio::test]
    async fn lookup_future_stays_small() {
        let node = shardis_testkit::Standalone::start(1)
            .await
            .expect("redis-server");
        let client = shardis::Client::builder()
            .ring([shardis::RingNode::new("a", node.nodes()[0].addr(), 1)])
            .build()
            .await
            .expect("client");
        let cache = Cache::<String>::builder(client.clone())
            .namespace("size")
            .build()
            .expect("cache");
        let mut get = redis::cmd("GET");
        get.arg("k");
        let send = std::mem::size_of_val(&client.send(&get));
        let loader = || async { Ok::<_, std::io::Error>(Some("v".to_string())) };
        // The boxed future of every lookup past L1 (`fetch`, `get_or_load`).
        let lookup = std::mem::size_of_val(&cache.fetch_slow("1", loader));
        assert!(
            lookup <= send + OVER_SEND,
            "the lookup's future is {lookup} bytes, Client::send's {send}"
        );
        let get_slow = std::mem::size_of_val(&cache.get_slow("1"));
        assert!(
            get_slow <= send + OVER_SEND,
            "get's future is {get_slow} bytes, Client::send's {send}"
        );
        for (what, size) in [("the lookup", lookup), ("get", get_slow)] {
            assert!(
                size <= BOXED,
                "{what}'s future is {size} bytes: its box misses glibc's per-thread cache"
            );
        }
        let get_or_load = std::mem::size_of_val(
            &cache.get_or_load("1", || async { Ok::<_, std::io::Error>("v".to_string()) }),
        );
        assert!(
            get_or_load <= GET_OR_LOAD,
            "get_or_load is {get_or_load} bytes"
        );
        // The lookup itself still works: a miss loads, then a hit.
        for _ in 0..2 {
            let v = cache.get_or_load("1", || async { Ok::<_, std::io::Error>("v".to_string()) });
            assert_eq!(v.await.expect("value"), "v");
        }
        assert_eq!((cache.stats().loads, cache.stats().hits), (1, 1));
    }
}
