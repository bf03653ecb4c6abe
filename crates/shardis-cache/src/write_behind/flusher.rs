//! The flusher: one task per partition, each owning its partition through a lease while it
//! drains the stream to the sink.

use std::collections::{HashMap, VecDeque};
use std::fmt::Display;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use redis::Value;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::Instrument;

use super::scripts::{self, int, text};
use super::{GROUP, PartitionKeys};
use crate::cache::Cache;
use crate::envelope;
use crate::error::{Error, Result};

/// One key's change as the sink gets it: the last value written within the batch, standing for
/// [`writes`](Change::writes) writes of the key (coalesced, last write wins).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Change<V> {
    /// The id given to [`Cache::write_behind`].
    pub id: String,
    /// Its last value in this batch.
    pub value: V,
    /// How many queued writes of the key this change stands for (1 when not coalesced). A
    /// change delivered again after a crash counts its writes again.
    pub writes: u32,
    /// The stream entry id of the last of them (ordered within the key's partition).
    pub entry: String,
    /// The partition it came from.
    pub partition: u32,
    /// When the last of them was written, milliseconds since the Unix epoch.
    pub written_at_ms: u64,
}

/// Where a [`WriteBehind`] flusher delivers changes: your database.
///
/// `write` gets a batch (at most one [`Change`] per key) and returns `Ok` once the batch is
/// durably saved: only then are its entries acknowledged. An error means "not saved": the
/// changes are delivered again (so a batch may arrive more than once; make `write`
/// idempotent, an upsert of the last value is). A closure
/// `Fn(Vec<Change<V>>) -> impl Future<Output = Result<(), E>>` is a sink.
///
/// ```
/// use shardis_cache::{Change, Sink};
/// struct Db;
/// impl Sink<u64> for Db {
///     type Error = std::io::Error;
///     async fn write(&self, batch: Vec<Change<u64>>) -> Result<(), Self::Error> {
///         for change in batch {
///             // UPDATE counters SET value = change.value WHERE id = change.id
///             let _ = (change.id, change.value);
///         }
///         Ok(())
///     }
/// }
/// ```
pub trait Sink<V>: Send + Sync + 'static {
    /// Why a batch was not saved (stored with a dead letter as text).
    type Error: Display + Send;
    /// Saves a batch.
    fn write(
        &self,
        batch: Vec<Change<V>>,
    ) -> impl Future<Output = std::result::Result<(), Self::Error>> + Send;
}

impl<V, F, Fut, E> Sink<V> for F
where
    F: Fn(Vec<Change<V>>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = std::result::Result<(), E>> + Send,
    E: Display + Send,
{
    type Error = E;
    fn write(
        &self,
        batch: Vec<Change<V>>,
    ) -> impl Future<Output = std::result::Result<(), E>> + Send {
        self(batch)
    }
}

/// A change the sink kept refusing, as kept in the dead-letter stream.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct DeadLetter {
    /// Its id in the dead-letter stream (pass it as `after` to read on).
    pub dead_entry: String,
    /// Its entry id in the partition's stream.
    pub entry: String,
    /// The key's id.
    pub id: String,
    /// The stored envelope (decode it with [`decode`](crate::decode)).
    pub envelope: Vec<u8>,
    /// The sink's last error.
    pub error: String,
    /// How many times the sink refused it.
    pub tries: u32,
}

/// What a [`WriteBehind`] flusher has done (in this process).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct WriteBehindStats {
    /// Stream entries acknowledged after the sink saved them
    /// (`shardis_cache_write_behind_flushed_total`).
    pub flushed: u64,
    /// Changes handed to the sink in batches it saved (coalesced: at most `flushed`).
    pub changes: u64,
    /// Sink calls that failed (`shardis_cache_write_behind_retried_total`).
    pub retried: u64,
    /// Entries moved to the dead-letter stream
    /// (`shardis_cache_write_behind_dead_lettered_total`).
    pub dead_lettered: u64,
    /// Entries claimed from a flusher that stopped
    /// (`shardis_cache_write_behind_claimed_total`).
    pub claimed: u64,
    /// Partitions this flusher holds now.
    pub owned_partitions: u64,
}

/// What [`WriteBehind::shutdown`] left behind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ShutdownReport {
    /// Entries this flusher had read but not flushed when it stopped: they stay pending and
    /// another flusher claims them after its claim idle time. 0 after a clean drain.
    pub left_pending: u64,
    /// Partition tasks that were still in a sink call at the deadline and were aborted.
    pub aborted: u64,
}

#[derive(Debug, Clone)]
struct Settings {
    batch_size: usize,
    poll: Duration,
    lease_ttl: Duration,
    claim_idle: Duration,
    max_tries: u32,
    backoff_min: Duration,
    backoff_max: Duration,
    consumer: String,
}

/// Builds and starts a [`WriteBehind`] flusher; see [`WriteBehind::builder`].
#[must_use]
pub struct WriteBehindBuilder<V, S> {
    cache: Cache<V>,
    sink: S,
    settings: Settings,
}

impl<V, S> std::fmt::Debug for WriteBehindBuilder<V, S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WriteBehindBuilder")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

struct Counters {
    flushed: (metrics::Counter, AtomicU64),
    changes: AtomicU64,
    retried: (metrics::Counter, AtomicU64),
    dead: (metrics::Counter, AtomicU64),
    claimed: (metrics::Counter, AtomicU64),
    owned: AtomicU64,
    sink_seconds: metrics::Histogram,
    namespace: String,
}

fn add(c: &(metrics::Counter, AtomicU64), n: u64) {
    c.0.increment(n);
    c.1.fetch_add(n, Ordering::Relaxed);
}

impl Counters {
    fn new(namespace: &str) -> Counters {
        let counter = |name: &'static str| {
            (
                metrics::counter!(name, "namespace" => namespace.to_string()),
                AtomicU64::new(0),
            )
        };
        Counters {
            flushed: counter("shardis_cache_write_behind_flushed_total"),
            changes: AtomicU64::new(0),
            retried: counter("shardis_cache_write_behind_retried_total"),
            dead: counter("shardis_cache_write_behind_dead_lettered_total"),
            claimed: counter("shardis_cache_write_behind_claimed_total"),
            owned: AtomicU64::new(0),
            sink_seconds: metrics::histogram!(
                "shardis_cache_write_behind_sink_seconds",
                "namespace" => namespace.to_string()
            ),
            namespace: namespace.to_string(),
        }
    }

    fn backlog(&self, partition: u32, backlog: u64) {
        metrics::gauge!(
            "shardis_cache_write_behind_backlog",
            "namespace" => self.namespace.clone(),
            "partition" => partition.to_string()
        )
        .set(backlog as f64);
    }
}

struct Ctx<V, S> {
    cache: Cache<V>,
    sink: S,
    s: Settings,
    stop: watch::Receiver<Option<Instant>>,
    c: Arc<Counters>,
}

/// A running write-behind flusher: drains the namespace's partitions to a [`Sink`].
///
/// Every process may run one (or several) for a namespace: each partition is drained by one
/// flusher at a time (a lease in Redis, renewed while it works); the others stand by and take
/// over a partition when its holder stops or dies, first claiming what it left pending. See
/// the [module documentation](crate::Cache::write_behind) for the guarantees.
///
/// ```no_run
/// # async fn run(client: shardis::Client) -> Result<(), shardis_cache::Error> {
/// use std::time::Duration;
/// use shardis_cache::{Cache, Change, WriteBehind};
///
/// let cache = Cache::<u64>::builder(client).namespace("views").build()?;
/// let flusher = WriteBehind::builder(&cache, |batch: Vec<Change<u64>>| async move {
///     // UPSERT every change.value for change.id in one database transaction
///     Ok::<_, std::io::Error>(())
/// })
/// .batch_size(500)
/// .start()
/// .await?;
/// cache.write_behind("page:1", 10).await?;
/// // On the way out: flush what can be flushed in 5 s.
/// let report = flusher.shutdown(Duration::from_secs(5)).await;
/// # Ok(()) }
/// ```
pub struct WriteBehind<V> {
    stop: watch::Sender<Option<Instant>>,
    tasks: Vec<JoinHandle<u64>>,
    c: Arc<Counters>,
    _value: std::marker::PhantomData<fn() -> V>,
}

impl<V> std::fmt::Debug for WriteBehind<V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WriteBehind")
            .field("partitions", &self.tasks.len())
            .field("stats", &self.stats())
            .finish()
    }
}

impl<V> WriteBehind<V> {
    /// What this flusher has done so far.
    pub fn stats(&self) -> WriteBehindStats {
        let c = &self.c;
        WriteBehindStats {
            flushed: c.flushed.1.load(Ordering::Relaxed),
            changes: c.changes.load(Ordering::Relaxed),
            retried: c.retried.1.load(Ordering::Relaxed),
            dead_lettered: c.dead.1.load(Ordering::Relaxed),
            claimed: c.claimed.1.load(Ordering::Relaxed),
            owned_partitions: c.owned.load(Ordering::Relaxed),
        }
    }
}

impl<V> Drop for WriteBehind<V> {
    fn drop(&mut self) {
        // Dropped without shutdown: stop at once (leases are given up, nothing is lost:
        // what was read stays pending for another flusher).
        if self.stop.borrow().is_none() {
            let _ = self.stop.send(Some(Instant::now()));
        }
    }
}

impl<V> WriteBehind<V>
where
    V: Serialize + DeserializeOwned + Clone + Send + Sync + 'static,
{
    /// A flusher of `cache`'s namespace (its write-behind partitions, codec and client) into
    /// `sink`.
    pub fn builder<S: Sink<V>>(cache: &Cache<V>, sink: S) -> WriteBehindBuilder<V, S> {
        WriteBehindBuilder {
            cache: cache.clone(),
            sink,
            settings: Settings {
                batch_size: 256,
                poll: Duration::from_millis(50),
                lease_ttl: Duration::from_secs(5),
                claim_idle: Duration::from_secs(10),
                max_tries: 5,
                backoff_min: Duration::from_millis(100),
                backoff_max: Duration::from_secs(5),
                consumer: format!("{}-{:016x}", std::process::id(), rand::random::<u64>()),
            },
        }
    }

    /// Stops: keeps flushing (without waiting for new writes) until its partitions are
    /// drained or `deadline` has passed, then gives up its leases so another flusher takes
    /// over at once. A sink call still running at the deadline gets one more second, then is
    /// aborted (its entries stay pending and are delivered again by another flusher).
    pub async fn shutdown(mut self, deadline: Duration) -> ShutdownReport {
        let until = Instant::now() + deadline;
        let _ = self.stop.send(Some(until));
        let mut report = ShutdownReport::default();
        let hard = until + Duration::from_secs(1);
        for mut task in std::mem::take(&mut self.tasks) {
            match tokio::time::timeout_at(hard.into(), &mut task).await {
                Ok(Ok(left)) => report.left_pending += left,
                Ok(Err(_)) => report.aborted += 1,
                Err(_) => {
                    task.abort();
                    report.aborted += 1;
                }
            }
        }
        report
    }

    /// Up to `count` dead letters of `partition` after the dead-letter id `after` (`None`:
    /// from the first), oldest first.
    ///
    /// ```no_run
    /// # async fn run(cache: shardis_cache::Cache<u64>) -> Result<(), shardis_cache::Error> {
    /// use shardis_cache::WriteBehind;
    /// for partition in 0..8 {
    ///     for dead in WriteBehind::dead_letters(&cache, partition, None, 100).await? {
    ///         eprintln!("{} refused {} times: {}", dead.id, dead.tries, dead.error);
    ///     }
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn dead_letters(
        cache: &Cache<V>,
        partition: u32,
        after: Option<&str>,
        count: usize,
    ) -> Result<Vec<DeadLetter>> {
        let keys = PartitionKeys::new(&cache.inner.cfg.namespace, partition);
        let reply = cache
            .inner
            .eval(&scripts::read_dead(&keys.stream, &keys.dead, after, count))
            .await?;
        let Value::Array(items) = reply else {
            return Err(Error::Reply(format!("dead letters: {reply:?}")));
        };
        let mut out = Vec::with_capacity(items.len());
        for item in items {
            let Some((dead_entry, mut fields)) = parse_entry(item) else {
                return Err(Error::Reply("dead letter entry".into()));
            };
            let mut take = |name: &str| fields.remove(name).unwrap_or_default();
            out.push(DeadLetter {
                dead_entry,
                entry: String::from_utf8_lossy(&take("entry")).into_owned(),
                id: String::from_utf8_lossy(&take("k")).into_owned(),
                envelope: take("v"),
                error: String::from_utf8_lossy(&take("error")).into_owned(),
                tries: String::from_utf8_lossy(&take("tries")).parse().unwrap_or(0),
            });
        }
        Ok(out)
    }
}

impl<V, S> WriteBehindBuilder<V, S>
where
    V: Serialize + DeserializeOwned + Clone + Send + Sync + 'static,
    S: Sink<V>,
{
    /// At most this many changes (keys) per sink call (default 256; 1 to 4096).
    pub fn batch_size(mut self, n: usize) -> Self {
        self.settings.batch_size = n;
        self
    }

    /// How long a partition with nothing to do waits before reading again (default 50 ms):
    /// the delay a quiet partition adds to a change.
    pub fn poll_interval(mut self, every: Duration) -> Self {
        self.settings.poll = every;
        self
    }

    /// How long a partition's lease lives without renewal (default 5 s): a flusher that dies
    /// keeps its partitions this long before another takes them. It is renewed every third of
    /// it, during sink calls too.
    pub fn lease_ttl(mut self, ttl: Duration) -> Self {
        self.settings.lease_ttl = ttl;
        self
    }

    /// How long an entry must have been idle in another flusher's hands before this one
    /// claims it (`XAUTOCLAIM`; default 10 s). A new holder of a partition delivers nothing
    /// newer before the older entries are claimed, so this bounds how long a partition stalls
    /// after its flusher died (plus the lease TTL).
    pub fn claim_idle(mut self, idle: Duration) -> Self {
        self.settings.claim_idle = idle;
        self
    }

    /// A key whose change the sink refuses this many times (each time alone, default 5),
    /// while it saves other keys, goes to the dead-letter stream.
    pub fn max_tries(mut self, tries: u32) -> Self {
        self.settings.max_tries = tries;
        self
    }

    /// The pause before a refused key is tried again: `min` doubling per try up to `max`
    /// (default 100 ms to 5 s).
    pub fn retry_backoff(mut self, min: Duration, max: Duration) -> Self {
        self.settings.backoff_min = min;
        self.settings.backoff_max = max;
        self
    }

    /// The consumer name in the streams' group (default `<pid>-<random>`). Must be unique
    /// among running flushers.
    pub fn consumer_name(mut self, name: impl Into<String>) -> Self {
        self.settings.consumer = name.into();
        self
    }

    /// Creates the consumer group on every partition (if missing) and starts one task per
    /// partition. Must be called inside a tokio runtime.
    pub async fn start(self) -> Result<WriteBehind<V>> {
        let s = &self.settings;
        if !(1..=4096).contains(&s.batch_size) {
            return Err(Error::Config(format!(
                "write-behind batch size {} not in 1..=4096",
                s.batch_size
            )));
        }
        if s.lease_ttl < Duration::from_millis(30) || s.max_tries == 0 || s.poll.is_zero() {
            return Err(Error::Config(
                "write-behind lease ttl must be >= 30 ms, max tries and poll interval > 0".into(),
            ));
        }
        let namespace = self.cache.inner.cfg.namespace.clone();
        let partitions = self.cache.inner.cfg.write_behind.partitions;
        for p in 0..partitions {
            create_group(&self.cache, &PartitionKeys::new(&namespace, p).stream).await?;
        }
        let (tx, rx) = watch::channel(None);
        let c = Arc::new(Counters::new(&namespace));
        let ctx = Arc::new(Ctx {
            cache: self.cache,
            sink: self.sink,
            s: self.settings,
            stop: rx,
            c: c.clone(),
        });
        let tasks = (0..partitions)
            .map(|p| {
                let ctx = ctx.clone();
                let span = tracing::info_span!(
                    "shardis_cache.write_behind.partition",
                    namespace = %namespace,
                    partition = p
                );
                tokio::spawn(Partition::new(ctx, p).run().instrument(span))
            })
            .collect();
        Ok(WriteBehind {
            stop: tx,
            tasks,
            c,
            _value: std::marker::PhantomData,
        })
    }
}

async fn create_group<V>(cache: &Cache<V>, stream: &str) -> Result<()> {
    let mut cmd = redis::cmd("XGROUP");
    cmd.arg("CREATE")
        .arg(stream)
        .arg(GROUP)
        .arg("0")
        .arg("MKSTREAM");
    match cache.inner.client.send(&cmd).await {
        Ok(Value::ServerError(e)) if e.code() == "BUSYGROUP" => Ok(()),
        Ok(Value::ServerError(e)) => Err(Error::Server(format!("{e:?}"))),
        Ok(_) => Ok(()),
        Err(e) if e.to_string().contains("BUSYGROUP") => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// One stream entry: its id and fields.
fn parse_entry(v: Value) -> Option<(String, HashMap<String, Vec<u8>>)> {
    let Value::Array(parts) = v else {
        return None;
    };
    let [id, fields] = <[Value; 2]>::try_from(parts).ok()?;
    let id = text(&id)?;
    let pairs: Vec<(Value, Value)> = match fields {
        Value::Array(flat) => {
            let mut it = flat.into_iter();
            let mut out = Vec::new();
            while let (Some(k), Some(v)) = (it.next(), it.next()) {
                out.push((k, v));
            }
            out
        }
        Value::Map(m) => m,
        _ => return None,
    };
    let mut map = HashMap::new();
    for (k, v) in pairs {
        let k = text(&k)?;
        let v = match v {
            Value::BulkString(b) => b,
            Value::SimpleString(s) => s.into_bytes(),
            _ => return None,
        };
        map.insert(k, v);
    }
    Some((id, map))
}

/// The entries of an `XREADGROUP` reply (one stream).
fn read_reply_entries(v: Value) -> Option<Vec<Value>> {
    match v {
        Value::Nil => Some(Vec::new()),
        Value::Array(streams) => {
            let mut out = Vec::new();
            for s in streams {
                let Value::Array(pair) = s else { return None };
                let [_, entries] = <[Value; 2]>::try_from(pair).ok()?;
                match entries {
                    Value::Array(e) => out.extend(e),
                    Value::Nil => {}
                    _ => return None,
                }
            }
            Some(out)
        }
        Value::Map(streams) => {
            let mut out = Vec::new();
            for (_, entries) in streams {
                match entries {
                    Value::Array(e) => out.extend(e),
                    Value::Nil => {}
                    _ => return None,
                }
            }
            Some(out)
        }
        _ => None,
    }
}

/// A change read from the stream, not yet acknowledged.
struct Pending<V> {
    entry: String,
    id: String,
    value: V,
    envelope: Vec<u8>,
    written_at_ms: u64,
}

/// A key the sink refused.
struct Failing {
    tries: u32,
    first_failed: Instant,
    /// The sink saved other keys in a round where this one was refused alone.
    others_saved: bool,
    not_before: Instant,
    error: String,
}

enum Step {
    /// Did something; go on at once.
    Busy,
    /// Nothing to do until new entries or a retry is due.
    Idle,
}

struct Partition<V, S> {
    ctx: Arc<Ctx<V, S>>,
    p: u32,
    keys: PartitionKeys,
    owned: bool,
    renewed: Instant,
    /// Every pending entry of the other consumers is claimed: reading new entries keeps
    /// each key's order.
    recovered: bool,
    claim_cursor: String,
    inflight: Vec<Pending<V>>,
    failing: HashMap<String, Failing>,
    /// Delivered but not acknowledged (the acknowledgement failed): acknowledged again.
    unacked: Vec<String>,
    last_sink_ok: Option<Instant>,
    /// The sink refused everything in recent rounds: no new round before this.
    down_until: Option<Instant>,
    down_rounds: u32,
    /// The last read found nothing new.
    drained: bool,
    /// A shutdown was seen (reads after it decide when the partition is drained).
    stopping: bool,
}

impl<V, S> Partition<V, S>
where
    V: Serialize + DeserializeOwned + Clone + Send + Sync + 'static,
    S: Sink<V>,
{
    fn new(ctx: Arc<Ctx<V, S>>, p: u32) -> Self {
        let keys = PartitionKeys::new(&ctx.cache.inner.cfg.namespace, p);
        Partition {
            ctx,
            p,
            keys,
            owned: false,
            renewed: Instant::now(),
            recovered: false,
            claim_cursor: "0-0".into(),
            inflight: Vec::new(),
            failing: HashMap::new(),
            unacked: Vec::new(),
            last_sink_ok: None,
            down_until: None,
            down_rounds: 0,
            drained: false,
            stopping: false,
        }
    }

    fn stop_deadline(&self) -> Option<Instant> {
        *self.ctx.stop.borrow()
    }

    /// Sleeps `d`, or less if a shutdown begins.
    async fn pause(&mut self, d: Duration) {
        let mut stop = self.ctx.stop.clone();
        if stop.borrow().is_some() {
            tokio::time::sleep(d.min(Duration::from_millis(5))).await;
            return;
        }
        tokio::select! {
            _ = tokio::time::sleep(d) => {}
            _ = stop.changed() => {}
        }
    }

    /// Forgets everything read: the lease is gone (or about to be), the entries stay pending
    /// in Redis for the next holder.
    fn drop_state(&mut self) {
        if self.owned {
            self.ctx.c.owned.fetch_sub(1, Ordering::Relaxed);
        }
        self.owned = false;
        self.recovered = false;
        self.claim_cursor = "0-0".into();
        self.inflight.clear();
        self.failing.clear();
        self.unacked.clear();
        self.down_until = None;
        self.down_rounds = 0;
        self.drained = false;
    }

    /// Runs until shutdown; returns the entries left pending.
    async fn run(mut self) -> u64 {
        loop {
            let stop = self.stop_deadline();
            if !self.owned {
                if stop.is_some() {
                    return 0;
                }
                match self.lease().await {
                    Ok(true) => {
                        tracing::info!(consumer = %self.ctx.s.consumer, "write-behind partition taken");
                        self.owned = true;
                        self.renewed = Instant::now();
                        self.ctx.c.owned.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(false) => {
                        let wait = (self.ctx.s.lease_ttl / 4).min(Duration::from_secs(1));
                        self.pause(wait).await;
                        continue;
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "write-behind lease");
                        self.pause(self.ctx.s.poll.max(Duration::from_millis(100)))
                            .await;
                        continue;
                    }
                }
            }
            if !self.keep_lease().await {
                continue;
            }
            if let Some(deadline) = stop {
                if !self.stopping {
                    // Only a read made after the stop may say the stream is drained.
                    self.stopping = true;
                    self.drained = false;
                }
                let done = self.inflight.is_empty() && self.unacked.is_empty() && self.drained;
                if done || Instant::now() >= deadline {
                    let left = (self.inflight.len() + self.unacked.len()) as u64;
                    let _ = self
                        .ctx
                        .cache
                        .inner
                        .client
                        .send(&scripts::release(
                            &self.keys.stream,
                            &self.keys.lease,
                            &self.ctx.s.consumer,
                        ))
                        .await;
                    self.drop_state();
                    return left;
                }
            }
            match self.step().await {
                Ok(Step::Busy) => {}
                Ok(Step::Idle) => {
                    let mut wait = self.ctx.s.poll;
                    let now = Instant::now();
                    if let Some(next) = self.failing.values().map(|f| f.not_before).min() {
                        wait = wait.min(next.saturating_duration_since(now));
                    }
                    if let Some(until) = self.down_until {
                        wait = wait.max(until.saturating_duration_since(now));
                    }
                    self.pause(wait.max(Duration::from_millis(1))).await;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "write-behind partition step failed");
                    if e.to_string().contains("NOGROUP") {
                        let _ = create_group(&self.ctx.cache, &self.keys.stream).await;
                    }
                    self.pause(self.ctx.s.poll.max(Duration::from_millis(100)))
                        .await;
                }
            }
        }
    }

    async fn lease(&self) -> Result<bool> {
        let cmd = scripts::lease(
            &self.keys.stream,
            &self.keys.lease,
            &self.ctx.s.consumer,
            self.ctx.s.lease_ttl.as_millis() as u64,
        );
        Ok(matches!(
            self.ctx.cache.inner.eval(&cmd).await?,
            Value::Int(1)
        ))
    }

    /// Renews the lease when a third of it has passed. `false` when it is lost (state
    /// dropped).
    async fn keep_lease(&mut self) -> bool {
        if self.renewed.elapsed() < self.ctx.s.lease_ttl / 3 {
            return true;
        }
        match self.lease().await {
            Ok(true) => {
                self.renewed = Instant::now();
                true
            }
            Ok(false) => {
                tracing::warn!("write-behind partition lease lost; stopping it here");
                self.drop_state();
                false
            }
            Err(e) => {
                if self.renewed.elapsed() >= self.ctx.s.lease_ttl {
                    tracing::warn!(error = %e, "write-behind lease not renewed in time; stopping it here");
                    self.drop_state();
                    false
                } else {
                    true
                }
            }
        }
    }

    async fn step(&mut self) -> Result<Step> {
        let mut busy = false;
        if !self.unacked.is_empty() {
            let ids = std::mem::take(&mut self.unacked);
            if let Err(e) = self.ack(&ids).await {
                self.unacked = ids;
                return Err(e);
            }
            busy = true;
        }
        let cap = self.ctx.s.batch_size * 4;
        if !self.recovered {
            busy |= self.claim(cap).await?;
        }
        if self.recovered && self.inflight.len() < cap {
            let n = self
                .read((cap - self.inflight.len()).min(self.ctx.s.batch_size))
                .await?;
            self.drained = n == 0;
            busy |= n > 0;
        }
        busy |= self.deliver().await?;
        Ok(if busy { Step::Busy } else { Step::Idle })
    }

    /// Adds read entries to the in-flight list; an entry that does not decode goes to the
    /// dead-letter stream at once (no sink can take it).
    async fn take_entries(&mut self, entries: Vec<Value>) -> Result<usize> {
        let n = entries.len();
        for e in entries {
            let Some((entry, mut fields)) = parse_entry(e) else {
                return Err(Error::Reply("stream entry of an unexpected shape".into()));
            };
            let id = String::from_utf8_lossy(&fields.remove("k").unwrap_or_default()).into_owned();
            let bytes = fields.remove("v").unwrap_or_default();
            match envelope::decode::<V>(&bytes) {
                Ok((meta, Some(value))) => self.inflight.push(Pending {
                    entry,
                    id,
                    value,
                    envelope: bytes,
                    written_at_ms: meta.written_at_ms,
                }),
                Ok((_, None)) => {
                    self.dead_letter(&entry, &id, &bytes, "a not-found entry, no value", 0)
                        .await?
                }
                Err(err) => {
                    let why = format!("does not decode: {err}");
                    self.dead_letter(&entry, &id, &bytes, &why, 0).await?
                }
            }
        }
        Ok(n)
    }

    /// Claims what other consumers left pending (idle long enough), in entry order. The
    /// partition counts as recovered once no other consumer has anything pending.
    async fn claim(&mut self, cap: usize) -> Result<bool> {
        let room = cap.saturating_sub(self.inflight.len());
        let mut claimed = 0;
        if room > 0 {
            let mut cmd = redis::cmd("XAUTOCLAIM");
            cmd.arg(&self.keys.stream)
                .arg(GROUP)
                .arg(&self.ctx.s.consumer)
                .arg(self.ctx.s.claim_idle.as_millis() as u64)
                .arg(&self.claim_cursor)
                .arg("COUNT")
                .arg(room.min(self.ctx.s.batch_size));
            let reply = self.ctx.cache.inner.eval(&cmd).await?;
            let bad = || Error::Reply("XAUTOCLAIM reply".into());
            let Value::Array(parts) = reply else {
                return Err(bad());
            };
            let mut parts = parts.into_iter();
            let cursor = parts.next().as_ref().and_then(text).ok_or_else(bad)?;
            let entries = match parts.next() {
                Some(Value::Array(e)) => e,
                _ => return Err(bad()),
            };
            let entries: Vec<Value> = entries.into_iter().filter(|e| *e != Value::Nil).collect();
            claimed = self.take_entries(entries).await?;
            if claimed > 0 {
                add(&self.ctx.c.claimed, claimed as u64);
                tracing::info!(
                    claimed,
                    "write-behind entries claimed from a stopped flusher"
                );
            }
            self.claim_cursor = cursor;
        }
        if self.claim_cursor == "0-0" && self.others_pending().await? == 0 {
            self.recovered = true;
        }
        Ok(claimed > 0)
    }

    /// Entries pending with consumers other than this one.
    async fn others_pending(&self) -> Result<u64> {
        let mut cmd = redis::cmd("XPENDING");
        cmd.arg(&self.keys.stream).arg(GROUP);
        let reply = self.ctx.cache.inner.eval(&cmd).await?;
        let Value::Array(parts) = reply else {
            return Err(Error::Reply(format!("XPENDING: {reply:?}")));
        };
        let Some(Value::Array(consumers)) = parts.into_iter().nth(3) else {
            return Ok(0);
        };
        let mut others = 0;
        for c in consumers {
            let Value::Array(pair) = c else { continue };
            let mut pair = pair.into_iter();
            let (Some(name), Some(count)) = (pair.next(), pair.next()) else {
                continue;
            };
            if text(&name).as_deref() != Some(self.ctx.s.consumer.as_str()) {
                others += int(&count).unwrap_or(0);
            }
        }
        Ok(others)
    }

    async fn read(&mut self, count: usize) -> Result<usize> {
        let mut cmd = redis::cmd("XREADGROUP");
        cmd.arg("GROUP")
            .arg(GROUP)
            .arg(&self.ctx.s.consumer)
            .arg("COUNT")
            .arg(count.max(1))
            .arg("STREAMS")
            .arg(&self.keys.stream)
            .arg(">");
        let reply = self.ctx.cache.inner.eval(&cmd).await?;
        let entries = read_reply_entries(reply)
            .ok_or_else(|| Error::Reply("XREADGROUP reply of an unexpected shape".into()))?;
        self.take_entries(entries).await
    }

    async fn ack(&mut self, ids: &[String]) -> Result<()> {
        for chunk in ids.chunks(4096) {
            let reply = self
                .ctx
                .cache
                .inner
                .eval(&scripts::ack(&self.keys.stream, GROUP, chunk))
                .await?;
            if let Some(backlog) = int(&reply) {
                self.ctx.c.backlog(self.p, backlog);
            }
        }
        Ok(())
    }

    async fn dead_letter(
        &mut self,
        entry: &str,
        id: &str,
        envelope: &[u8],
        error: &str,
        tries: u32,
    ) -> Result<()> {
        let cmd = scripts::dead(
            &self.keys.stream,
            GROUP,
            &self.keys.dead,
            entry,
            id,
            envelope,
            error,
            tries,
        );
        self.ctx.cache.inner.eval(&cmd).await?;
        add(&self.ctx.c.dead, 1);
        tracing::error!(
            entry,
            id,
            tries,
            error,
            "write-behind change moved to the dead-letter stream"
        );
        Ok(())
    }

    /// One round: the ready keys (not backing off), each coalesced into its last value, in
    /// one sink call; a refused batch is split in halves to find the keys the sink refuses.
    /// Returns whether anything was delivered or dead-lettered.
    async fn deliver(&mut self) -> Result<bool> {
        let now = Instant::now();
        if self.down_until.is_some_and(|t| now < t) {
            return Ok(false);
        }
        // Keys in order of their first entry; a key backing off holds all its entries.
        let mut order: Vec<String> = Vec::new();
        let mut groups: HashMap<String, Vec<usize>> = HashMap::new();
        for (i, p) in self.inflight.iter().enumerate() {
            if self.failing.get(&p.id).is_some_and(|f| now < f.not_before) {
                continue;
            }
            match groups.get_mut(&p.id) {
                Some(g) => g.push(i),
                None => {
                    if order.len() >= self.ctx.s.batch_size {
                        continue;
                    }
                    order.push(p.id.clone());
                    groups.insert(p.id.clone(), vec![i]);
                }
            }
        }
        if order.is_empty() {
            return Ok(false);
        }
        let mut work: VecDeque<Vec<String>> = VecDeque::from([order]);
        let mut saved: Vec<String> = Vec::new();
        let mut refused_alone = 0;
        let mut any_ok = false;
        let mut dead: Vec<String> = Vec::new();
        while let Some(part) = work.pop_front() {
            let batch: Vec<Change<V>> = part.iter().map(|k| self.change(&groups[k])).collect();
            match self.call_sink(batch).await {
                Ok(()) => {
                    any_ok = true;
                    self.last_sink_ok = Some(Instant::now());
                    self.ctx
                        .c
                        .changes
                        .fetch_add(part.len() as u64, Ordering::Relaxed);
                    saved.extend(part);
                }
                Err(e) if part.len() > 1 => {
                    tracing::debug!(error = %e, keys = part.len(), "write-behind batch refused; splitting it");
                    let mut first = part;
                    let second = first.split_off(first.len() / 2);
                    work.push_front(second);
                    work.push_front(first);
                }
                Err(e) => {
                    let key = &part[0];
                    refused_alone += 1;
                    if self.refused(key, e, any_ok) {
                        dead.push(key.clone());
                    }
                    // Two keys refused alone and nothing saved: the sink is down, not one
                    // change poisoned. Leave the rest for a later round.
                    if refused_alone >= 2 && !any_ok {
                        self.down_rounds += 1;
                        let pause = self.backoff(self.down_rounds);
                        self.down_until = Some(Instant::now() + pause);
                        tracing::warn!(?pause, "write-behind sink refuses everything; backing off");
                        break;
                    }
                }
            }
        }
        if any_ok {
            self.down_rounds = 0;
            self.down_until = None;
        }
        let mut ids: Vec<String> = Vec::new();
        for k in &saved {
            self.failing.remove(k);
            ids.extend(groups[k].iter().map(|&i| self.inflight[i].entry.clone()));
        }
        for k in &dead {
            let (tries, error) = match self.failing.remove(k) {
                Some(f) => (f.tries, f.error),
                None => (0, String::new()),
            };
            for &i in &groups[k] {
                let (entry, envelope) = (
                    self.inflight[i].entry.clone(),
                    self.inflight[i].envelope.clone(),
                );
                self.dead_letter(&entry, k, &envelope, &error, tries)
                    .await?;
            }
        }
        // Drop what was saved or dead-lettered from the in-flight list, keeping order.
        let gone: std::collections::HashSet<usize> = saved
            .iter()
            .chain(&dead)
            .flat_map(|k| groups[k].iter().copied())
            .collect();
        let mut i = 0;
        self.inflight.retain(|_| {
            let keep = !gone.contains(&i);
            i += 1;
            keep
        });
        if !ids.is_empty() {
            let n = ids.len() as u64;
            match self.ack(&ids).await {
                Ok(()) => add(&self.ctx.c.flushed, n),
                Err(e) => {
                    tracing::warn!(error = %e, "write-behind acknowledgement failed; retrying it");
                    add(&self.ctx.c.flushed, n);
                    self.unacked.extend(ids);
                }
            }
        }
        Ok(any_ok || !dead.is_empty())
    }

    /// The change a group of in-flight entries (one key, in order) stands for.
    fn change(&self, group: &[usize]) -> Change<V> {
        let last = &self.inflight[group[group.len() - 1]];
        Change {
            id: last.id.clone(),
            value: last.value.clone(),
            writes: u32::try_from(group.len()).unwrap_or(u32::MAX),
            entry: last.entry.clone(),
            partition: self.p,
            written_at_ms: last.written_at_ms,
        }
    }

    /// Records a refusal of `key` alone (`others_saved`: the sink saved other keys earlier in
    /// this round); `true` when it is to be dead-lettered now.
    fn refused(&mut self, key: &str, error: String, others_saved: bool) -> bool {
        let now = Instant::now();
        let f = self.failing.entry(key.to_string()).or_insert(Failing {
            tries: 0,
            first_failed: now,
            others_saved: false,
            not_before: now,
            error: String::new(),
        });
        f.tries += 1;
        f.error = error;
        f.others_saved |= others_saved;
        let (tries, first_failed, saved) = (f.tries, f.first_failed, f.others_saved);
        // Poison, not an outage: the sink saved other keys while refusing this one.
        let poison = tries >= self.ctx.s.max_tries
            && (saved || self.last_sink_ok.is_some_and(|ok| ok > first_failed));
        let pause = self.backoff(tries);
        if let Some(f) = self.failing.get_mut(key) {
            f.not_before = now + pause;
        }
        tracing::warn!(key, tries, error = %self.failing.get(key).map_or("", |f| f.error.as_str()), "write-behind sink refused a change");
        poison
    }

    fn backoff(&self, tries: u32) -> Duration {
        let s = &self.ctx.s;
        let factor = 1u32 << tries.saturating_sub(1).min(16);
        s.backoff_min.saturating_mul(factor).min(s.backoff_max)
    }

    /// One sink call, timed, renewing the lease while it runs.
    async fn call_sink(&mut self, batch: Vec<Change<V>>) -> std::result::Result<(), String> {
        let started = Instant::now();
        let call = self.ctx.sink.write(batch);
        tokio::pin!(call);
        let every = self.ctx.s.lease_ttl / 3;
        let result = loop {
            tokio::select! {
                r = &mut call => break r,
                _ = tokio::time::sleep(every) => {
                    // Renew while the sink works; if the lease is lost meanwhile the call
                    // still completes (it cannot be unsent), and its entries are acknowledged.
                    if let Ok(true) = self.lease().await {
                        self.renewed = Instant::now();
                    }
                }
            }
        };
        self.ctx
            .c
            .sink_seconds
            .record(started.elapsed().as_secs_f64());
        result.map_err(|e| {
            add(&self.ctx.c.retried, 1);
            e.to_string()
        })
    }
}
