//! Hot keys in the client: detect them (`shardis-hotkey`), read them from copies on distinct
//! shards, keep copies honest on this client's writes, and optionally serve them from a small
//! in-process near cache.
//!
//! Only `GET` reads are spread (the cache-aside read); every other command of a hot key goes
//! to the canonical key, and writes also delete the copies.

mod options;

pub use options::HotKeyOptions;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::time::Instant;

use redis::{Cmd, Value};
use shardis_hotkey::{Detector, HotKey, key_hash};

use crate::Client;
use crate::command::{self, table};
use crate::error::Result;

/// Where copies of hot keys go: implemented by each router's routing snapshot (slot map,
/// ring), so the hot-key layer places copies on distinct shards without knowing the mode.
pub(crate) trait CopyPlacement: Send + Sync {
    /// How many shards copies can spread over.
    fn shards(&self) -> usize;
    /// Up to `n` names for `key` on distinct shards, canonical first.
    fn copy_names(&self, key: &[u8], n: usize) -> Vec<Vec<u8>>;
}

/// A key's copy names, and the snapshot they were computed for (kept alive, so comparing
/// pointers is sound).
struct CopyNames {
    topology: Arc<dyn CopyPlacement>,
    names: Arc<[Vec<u8>]>,
}

/// Counters of the hot-key layer (also sent to the `metrics` facade).
#[derive(Debug, Default)]
pub(crate) struct HotCounters {
    pub detected: AtomicU64,
    pub copy_reads: AtomicU64,
    pub copy_misses: AtomicU64,
    pub near_hits: AtomicU64,
}

/// The hot-key layer of one client (shared by its clones).
pub(crate) struct Hot {
    pub detector: Detector,
    options: HotKeyOptions,
    placements: parking_lot::RwLock<HashMap<Vec<u8>, CopyNames>>,
    next: AtomicUsize,
    near: Option<moka::sync::Cache<Vec<u8>, Value>>,
    /// Striped per-key locks: a refill (read canonical, write copy) and this client's write of
    /// the same key (write canonical, update copies) never interleave, so a refill cannot put
    /// back a value older than an acknowledged write.
    locks: Box<[tokio::sync::Mutex<()>]>,
    pub counters: HotCounters,
}

/// What a command is to the hot-key layer.
enum Role<'a> {
    Read(&'a [u8]),
    Write(Vec<&'a [u8]>),
    Other,
}

fn role_of<'a>(args: &[&'a [u8]]) -> Role<'a> {
    let name = command::name_of(args);
    if &*name == "GET" && args.len() == 2 {
        return Role::Read(args[1]);
    }
    match table::lookup(&name) {
        Some(spec) if !spec.readonly => Role::Write(
            spec.key_indices(args)
                .into_iter()
                .map(|i| args[i])
                .collect(),
        ),
        _ => Role::Other,
    }
}

/// `SET k v`, `SET k v EX s`, `SET k v PX ms`, `SETEX k s v`, `PSETEX k ms v`: the key, the
/// value and the TTL in milliseconds. Anything else (NX/XX/GET/KEEPTTL, ...) is `None`: the
/// copies are then deleted instead of updated.
fn plain_set<'a>(args: &[&'a [u8]]) -> Option<(&'a [u8], &'a [u8], Option<u64>)> {
    let number = |a: &[u8]| std::str::from_utf8(a).ok()?.parse::<u64>().ok();
    let name = command::name_of(args);
    match (&*name, args.len()) {
        ("SET", 3) => Some((args[1], args[2], None)),
        ("SET", 5) if args[3].eq_ignore_ascii_case(b"EX") => {
            Some((args[1], args[2], Some(number(args[4])?.checked_mul(1000)?)))
        }
        ("SET", 5) if args[3].eq_ignore_ascii_case(b"PX") => {
            Some((args[1], args[2], Some(number(args[4])?)))
        }
        ("SETEX", 4) => Some((args[1], args[3], Some(number(args[2])?.checked_mul(1000)?))),
        ("PSETEX", 4) => Some((args[1], args[3], Some(number(args[2])?))),
        _ => None,
    }
}

impl Hot {
    pub fn new(options: HotKeyOptions) -> Arc<Hot> {
        let detector = Detector::new(options.detector.clone());
        for key in &options.declared {
            detector.declare_hot(key);
        }
        for prefix in &options.declared_prefixes {
            detector.declare_hot_prefix(prefix);
        }
        let near = options.near_cache.map(|(ttl, capacity)| {
            moka::sync::Cache::builder()
                .time_to_live(ttl)
                .max_capacity(capacity)
                .build()
        });
        Arc::new(Hot {
            detector,
            placements: parking_lot::RwLock::new(HashMap::new()),
            next: AtomicUsize::new(0),
            near,
            locks: (0..64).map(|_| tokio::sync::Mutex::new(())).collect(),
            counters: HotCounters::default(),
            options,
        })
    }

    /// Starts the background tick that merges samples and publishes the hot set.
    pub fn spawn_ticker(self: &Arc<Hot>) {
        let weak: Weak<Hot> = Arc::downgrade(self);
        let every = self.options.tick;
        tokio::spawn(async move {
            let mut interval = tokio::time::interval(every);
            interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                interval.tick().await;
                let Some(hot) = weak.upgrade() else { return };
                let before = hot.detector.hot_set();
                hot.detector.tick(Instant::now());
                let after = hot.detector.hot_set();
                if !Arc::ptr_eq(&before, &after) {
                    let new = after
                        .keys()
                        .filter(|k| !before.contains(key_hash(k), k))
                        .count();
                    if new > 0 {
                        hot.counters
                            .detected
                            .fetch_add(new as u64, Ordering::Relaxed);
                        metrics::counter!("shardis_hot_keys_detected_total").increment(new as u64);
                        tracing::info!(new, hot = after.len(), "hot keys detected");
                    }
                    // Forget placements of keys that cooled down.
                    hot.placements
                        .write()
                        .retain(|k, _| after.contains(key_hash(k), k));
                }
            }
        });
    }

    fn stripe(&self, key: &[u8]) -> usize {
        (key_hash(key) % self.locks.len() as u64) as usize
    }

    async fn lock(&self, key: &[u8]) -> tokio::sync::MutexGuard<'_, ()> {
        self.locks[self.stripe(key)].lock().await
    }

    /// The locks of several keys, taken in stripe order (no deadlock between two writers).
    async fn lock_all(&self, keys: &[&[u8]]) -> Vec<tokio::sync::MutexGuard<'_, ()>> {
        let mut stripes: Vec<usize> = keys.iter().map(|k| self.stripe(k)).collect();
        stripes.sort_unstable();
        stripes.dedup();
        let mut guards = Vec::with_capacity(stripes.len());
        for i in stripes {
            guards.push(self.locks[i].lock().await);
        }
        guards
    }

    /// Adds this layer's counters to a client's stats.
    pub fn add_to(&self, stats: &mut crate::Stats) {
        let read = |c: &AtomicU64| c.load(Ordering::Relaxed);
        stats.hot_keys_detected = read(&self.counters.detected);
        stats.hot_copy_reads = read(&self.counters.copy_reads);
        stats.hot_copy_misses = read(&self.counters.copy_misses);
        stats.near_cache_hits = read(&self.counters.near_hits);
    }

    /// What is hot now, with estimated rates.
    pub fn hot_keys(&self) -> Vec<HotKey> {
        self.detector.hot_keys()
    }

    /// Handles `cmd` if it concerns a hot key; `None` means "not mine, route it normally".
    pub async fn intercept(&self, client: &Client, cmd: &Cmd) -> Option<Result<Value>> {
        let args = command::args_of(cmd);
        match role_of(&args) {
            Role::Read(key) => {
                let hash = key_hash(key);
                if self.options.detect {
                    self.detector.record(hash, key);
                }
                if !self.detector.is_hot(hash, key) {
                    return None;
                }
                Some(self.read(client, key).await)
            }
            Role::Write(keys) => {
                let hot: Vec<&[u8]> = keys
                    .into_iter()
                    .filter(|k| self.detector.is_hot(key_hash(k), k))
                    .collect();
                if hot.is_empty() {
                    return None;
                }
                let _guards = self.lock_all(&hot).await;
                let reply = client.send_routed(cmd).await;
                match (plain_set(&args), &reply) {
                    // A plain SET of one hot key: write the same value to every copy, so
                    // reads keep hitting copies instead of missing after each write.
                    (Some((key, value, ttl)), Ok(Value::Okay)) if hot.len() == 1 => {
                        self.update_copies(client, key, value, ttl).await;
                    }
                    _ => {
                        for key in hot {
                            self.invalidate(client, key).await;
                        }
                    }
                }
                Some(reply)
            }
            Role::Other => None,
        }
    }

    /// Runs a pipeline through the client: the hot keys its commands write are locked against
    /// refills while it runs and their copies invalidated after it ran, as for a single write.
    /// (Pipelined reads of hot keys read the canonical key.)
    pub async fn run_pipeline(
        &self,
        client: &Client,
        pipeline: &redis::Pipeline,
        offset: usize,
        count: usize,
    ) -> Result<Vec<Value>> {
        let mut hot: Vec<Vec<u8>> = Vec::new();
        for cmd in pipeline.cmd_iter() {
            let args = command::args_of(cmd);
            if let Role::Write(keys) = role_of(&args) {
                for key in keys {
                    if self.detector.is_hot(key_hash(key), key) && !hot.iter().any(|k| k == key) {
                        hot.push(key.to_vec());
                    }
                }
            }
        }
        if hot.is_empty() {
            return client.send_pipeline_routed(pipeline, offset, count).await;
        }
        let keys: Vec<&[u8]> = hot.iter().map(Vec::as_slice).collect();
        let _guards = self.lock_all(&keys).await;
        let replies = client.send_pipeline_routed(pipeline, offset, count).await;
        // Whatever the outcome, the writes may have run: the copies must not serve older values.
        for key in keys {
            self.invalidate(client, key).await;
        }
        replies
    }

    /// The copy names of `key` under the current topology (canonical first).
    fn names(&self, client: &Client, key: &[u8]) -> Arc<[Vec<u8>]> {
        let topology = client.copy_placement();
        if let Some(p) = self.placements.read().get(key)
            && Arc::ptr_eq(&p.topology, &topology)
        {
            return p.names.clone();
        }
        let n = self.options.copies.unwrap_or(topology.shards()).max(1);
        let names: Arc<[Vec<u8>]> = topology.copy_names(key, n).into();
        self.placements.write().insert(
            key.to_vec(),
            CopyNames {
                topology,
                names: names.clone(),
            },
        );
        names
    }

    async fn read(&self, client: &Client, key: &[u8]) -> Result<Value> {
        if let Some(near) = &self.near
            && let Some(value) = near.get(key)
        {
            self.counters.near_hits.fetch_add(1, Ordering::Relaxed);
            metrics::counter!("shardis_hot_near_cache_hits_total").increment(1);
            return Ok(value);
        }
        let names = self.names(client, key);
        let pick = self.next.fetch_add(1, Ordering::Relaxed) % names.len();
        let value = if pick == 0 {
            client.send_routed(redis::cmd("GET").arg(key)).await?
        } else {
            self.read_copy(client, key, &names[pick]).await?
        };
        if let (Some(near), false) = (&self.near, matches!(value, Value::ServerError(_))) {
            near.insert(key.to_vec(), value.clone());
        }
        Ok(value)
    }

    /// Reads one copy; on a miss reads the canonical key and refills the copy with a TTL no
    /// longer than the canonical key's and never longer than `copy_ttl`.
    async fn read_copy(&self, client: &Client, key: &[u8], copy: &[u8]) -> Result<Value> {
        self.counters.copy_reads.fetch_add(1, Ordering::Relaxed);
        metrics::counter!("shardis_hot_copy_reads_total").increment(1);
        let value = client.send_routed(redis::cmd("GET").arg(copy)).await?;
        if value != Value::Nil {
            return Ok(value);
        }
        self.counters.copy_misses.fetch_add(1, Ordering::Relaxed);
        metrics::counter!("shardis_hot_copy_misses_total").increment(1);
        let _guard = self.lock(key).await;
        let value = client.send_routed(redis::cmd("GET").arg(key)).await?;
        if matches!(value, Value::Nil | Value::ServerError(_)) {
            return Ok(value);
        }
        let cap = self.options.copy_ttl.as_millis().max(1) as i64;
        let ttl = match client.send_routed(redis::cmd("PTTL").arg(key)).await? {
            Value::Int(ms) if ms > 0 => ms.min(cap),
            Value::Int(-1) => cap,
            _ => return Ok(value), // gone meanwhile: do not resurrect it as a copy
        };
        let Value::BulkString(bytes) = &value else {
            return Ok(value);
        };
        let mut set = redis::cmd("SET");
        set.arg(copy).arg(bytes.as_slice()).arg("PX").arg(ttl);
        if let Err(e) = client.send_routed(&set).await {
            tracing::debug!(error = %e, "refilling a hot-key copy failed");
        }
        Ok(value)
    }

    /// After this client `SET` `key` to `value`: the same value in every copy, with a TTL no
    /// longer than the key's (`ttl_ms`, none = no expiry) and the copy TTL.
    async fn update_copies(&self, client: &Client, key: &[u8], value: &[u8], ttl_ms: Option<u64>) {
        if let Some(near) = &self.near {
            near.invalidate(key);
        }
        let cap = self.options.copy_ttl.as_millis().max(1) as u64;
        let ttl = ttl_ms.map_or(cap, |t| t.min(cap)).max(1);
        let names = self.names(client, key);
        let writes = names[1..].iter().map(|copy| async move {
            let mut set = redis::cmd("SET");
            set.arg(copy.as_slice()).arg(value).arg("PX").arg(ttl);
            client.send_routed(&set).await
        });
        for result in futures::future::join_all(writes).await {
            if !matches!(result, Ok(Value::Okay)) {
                // A copy we could not update must not serve the old value.
                self.invalidate(client, key).await;
                return;
            }
        }
    }

    /// After this client wrote `key`: drop its copies and its near-cache entry, so the next
    /// read sees the write.
    async fn invalidate(&self, client: &Client, key: &[u8]) {
        if let Some(near) = &self.near {
            near.invalidate(key);
        }
        let names = self.names(client, key);
        let deletes = names[1..].iter().map(|copy| async move {
            let mut del = redis::cmd("DEL");
            del.arg(copy.as_slice());
            client.send_routed(&del).await
        });
        for result in futures::future::join_all(deletes).await {
            if let Err(e) = result {
                tracing::warn!(error = %e, "deleting a hot-key copy failed; it expires within the copy TTL");
            }
        }
    }
}
