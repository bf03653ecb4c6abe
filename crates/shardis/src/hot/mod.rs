//! Hot keys in the client: detect them (`shardis-hotkey`), read them from copies on distinct
//! shards, keep copies consistent with this client's writes, and optionally serve them from a
//! small in-process near cache.
//!
//! Only `GET` reads are spread (the cache-aside read); every other command of a hot key goes
//! to the canonical key.
//!
//! # How copies stay consistent (per key, per hot period: [`KeyState`])
//! - A write of a hot key (single, pipelined, transactional, split) counts itself in
//!   `writing` before it is sent; once it is answered it bumps `dirty` and wakes the key's
//!   *syncer*. If its caller gives up (or no answer comes), the server may still apply it:
//!   a task keeps it counted in `writing` for a copy lifetime, then does the same.
//! - The syncer is the only writer of the copies (a token, at most one round at a time per
//!   key, no lock held by anyone else): it notes `dirty`, reads the canonical key and its TTL,
//!   writes every copy (or deletes them when the key is gone or not a string), then publishes
//!   `synced = (that dirty, the copy names)`.
//! - Copy names are the client's own (their marker search starts at a random salt): no other
//!   client's syncer writes them, so "the only writer" holds across a fleet. A round whose
//!   copy writes failed moves the key to fresh names (a timed-out `SET` may land later).
//!   Other clients see this client's writes through their own copies within the copy TTL.
//! - A read uses the copies only when no write of the key is in flight and `synced` is the
//!   current `dirty`: the copies then hold a value read after every write this client
//!   completed. Otherwise it reads the canonical key. A copy miss reads the canonical key and
//!   wakes the syncer (copies are never refilled by readers).
//! - The near cache stamps each value with the `dirty` seen before the read began; a hit needs
//!   the same `dirty` and no write in flight, so a value read before a write that completed
//!   after the read began is never served. Hits consume tokio's cooperative budget.
//! - A key's state lives for one hot period. A key that cools is forgotten once idle; when it
//!   heats again a fresh state re-syncs every copy before any is read, so copies filled in an
//!   earlier period are never served after a write made while the key was cool. Writes of
//!   keys with no state are counted per stripe, and a fresh state's first round waits until
//!   the writes that were in flight when it was created have finished.

mod coherence;
mod options;

pub(crate) use coherence::spawn as spawn_coherence;
pub use options::HotKeyOptions;

use coherence::{Coherence, Stamp};

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use redis::{Cmd, Value};
use shardis_hotkey::{Detector, HotKey, key_hash};

use crate::Client;
use crate::command::{self, table};
use crate::error::{Error, Result};

/// Where copies of hot keys go: implemented by each router's routing snapshot (slot map,
/// ring), so the hot-key layer places copies on distinct shards without knowing the mode.
pub(crate) trait CopyPlacement: Send + Sync {
    /// How many shards copies can spread over.
    fn shards(&self) -> usize;
    /// Up to `n` names for `key` on distinct shards, canonical first; the copies' names start
    /// their marker search at `salt` (see [`shardis_hotkey::salted_copies`]).
    fn copy_names(&self, key: &[u8], n: usize, salt: u32) -> Vec<Vec<u8>>;
}

/// Counters of the hot-key layer (also sent to the `metrics` facade).
#[derive(Debug, Default)]
pub(crate) struct HotCounters {
    pub detected: AtomicU64,
    pub copy_reads: AtomicU64,
    pub copy_misses: AtomicU64,
    pub near_hits: AtomicU64,
}

/// States kept at most; beyond, idle ones are forgotten (a forgotten hot key gets a fresh
/// state on its next access, which re-syncs its copies first).
const MAX_STATES: usize = 4096;
/// Stripes counting in-flight writes of keys without a state.
const COOL_STRIPES: usize = 1024;
/// How long a syncer waits before it retries a failed round.
const SYNC_RETRY: Duration = Duration::from_millis(50);
/// How long a fresh state's syncer waits for writes in flight at its creation.
const SETTLE_POLL: Duration = Duration::from_millis(1);
/// Distance between the marker windows of two generations of copy names: wider than the
/// longest marker search (2^20), so two generations never share a name.
const GENERATION_STRIDE: u32 = 1 << 21;

/// What the copies of a key hold, as of the round that wrote them.
struct Synced {
    /// The `dirty` count noted before the round read the canonical key.
    dirty: u64,
    /// The copy names written (canonical first); `None`: the key was absent or not a string,
    /// so its copies were deleted and reads go to the canonical key.
    names: Option<Arc<[Vec<u8>]>>,
    /// The placement the names were computed for.
    topology: Option<Arc<dyn CopyPlacement>>,
    /// The generation of the names.
    generation: u32,
}

/// One hot key during one hot period (see the module docs).
struct KeyState {
    key: Vec<u8>,
    /// Unique among states, so a near-cache stamp of an earlier period never matches.
    id: u64,
    cool_stripe: usize,
    /// Writes of this key in flight.
    writing: AtomicU32,
    /// Bumped after each write completes (answered, failed, or given up).
    dirty: AtomicU64,
    synced: ArcSwap<Synced>,
    /// The syncer token; taken for good when the state is retired.
    syncing: AtomicBool,
    /// Whether writes in flight when this state was created (counted per stripe) have been
    /// seen to finish before a round read the canonical key.
    settled: AtomicBool,
    /// Which copy names rounds write: a round whose copy writes failed may still see one land
    /// later (a timed-out `SET`), over a newer value; the next round moves to fresh names, so
    /// such a write lands where nobody reads.
    generation: AtomicU32,
}

impl KeyState {
    /// Whether the copies may be read now, and the `dirty` count a read now is stamped with.
    fn look(&self) -> (bool, u64, bool) {
        let writing = self.writing.load(Ordering::SeqCst);
        let dirty = self.dirty.load(Ordering::SeqCst);
        let synced = self.synced.load().dirty;
        (writing == 0, dirty, writing == 0 && synced == dirty)
    }
}

/// A near-cache value: the reply, the state id and `dirty` it was read under, and its tracking
/// stamp (with [`HotKeyOptions::near_cache_tracking`]).
type NearEntry = (Value, u64, u64, Option<Stamp>);

/// The hot-key layer of one client (shared by its clones).
pub(crate) struct Hot {
    pub detector: Detector,
    options: HotKeyOptions,
    states: parking_lot::RwLock<HashMap<Vec<u8>, Arc<KeyState>>>,
    next_id: AtomicU64,
    next: AtomicUsize,
    /// Values with the state id and `dirty` stamp they were read under, and the tracking
    /// stamp when the near cache follows other clients' writes.
    near: Option<moka::sync::Cache<Vec<u8>, NearEntry>>,
    /// Set with [`HotKeyOptions::near_cache_tracking`].
    coherence: Option<Coherence>,
    /// Writes in flight of keys without a state, per stripe.
    cool_writing: Box<[AtomicU64]>,
    /// Where this client's copy names start (random per client): its syncers are then the
    /// only writers of its copies. Shared names let another process's syncer, holding a value
    /// read before this client's write, overwrite the copies this client had just synced:
    /// the writer then read its own write back as the older value.
    salt: u32,
    pub counters: HotCounters,
}

/// What a command is to the hot-key layer.
enum Role<'a> {
    Read(&'a [u8]),
    Write(Vec<&'a [u8]>),
    /// A write of the whole keyspace (`FLUSHALL`, `FLUSHDB`, `SWAPDB`).
    WriteAll,
    Other,
}

fn role_of<'a>(args: &[&'a [u8]]) -> Role<'a> {
    let name = command::name_of(args);
    if &*name == "GET" && args.len() == 2 {
        return Role::Read(args[1]);
    }
    if matches!(&*name, "FLUSHALL" | "FLUSHDB" | "SWAPDB") {
        return Role::WriteAll;
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

/// Whether a failed write may still have run (it was sent and its answer never came).
fn may_have_run<T>(result: &Result<T>) -> bool {
    matches!(
        result,
        Err(Error::Timeout { .. } | Error::Connection { .. } | Error::Protocol { .. })
    )
}

/// What [`Hot::intercept`] made of one command.
pub(crate) enum Intercepted<'h> {
    /// The layer answered it (a hot key's read or write).
    Done(Result<Value>),
    /// Not the layer's: the caller routes it as usual, holding the guard (a write of keys
    /// without a state) until it is answered.
    Route(Option<CoolWrites<'h>>),
}

/// Writes of keys without a state, counted while they run (see [`KeyState::settled`]).
pub(crate) struct CoolWrites<'a> {
    hot: &'a Hot,
    stripes: Vec<usize>,
}

impl Drop for CoolWrites<'_> {
    fn drop(&mut self) {
        for &i in &self.stripes {
            self.hot.cool_writing[i].fetch_sub(1, Ordering::SeqCst);
        }
    }
}

/// Hot keys being written. When the write was answered (or surely did not run), dropping
/// this bumps each state's `dirty` and wakes its syncer. Otherwise — the caller gave up, or
/// the write was sent and no answer came — the server may still apply it later: the states
/// keep counting it as in flight (reads go to the canonical key) for a copy lifetime first,
/// in a task of its own.
struct HotWrites {
    hot: Arc<Hot>,
    client: Client,
    states: Vec<Arc<KeyState>>,
    settled: bool,
}

impl HotWrites {
    fn release(hot: &Arc<Hot>, client: &Client, states: &[Arc<KeyState>]) {
        for state in states {
            state.dirty.fetch_add(1, Ordering::SeqCst);
            state.writing.fetch_sub(1, Ordering::SeqCst);
            if let Some(near) = &hot.near {
                near.invalidate(&state.key);
            }
            hot.wake_syncer(client, state);
        }
    }
}

impl Drop for HotWrites {
    fn drop(&mut self) {
        let states = std::mem::take(&mut self.states);
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) if !self.settled => {
                let (hot, client) = (self.hot.clone(), self.client.clone());
                let hold = hot.options.copy_ttl;
                runtime.spawn(async move {
                    tokio::time::sleep(hold).await;
                    HotWrites::release(&hot, &client, &states);
                });
            }
            _ => HotWrites::release(&self.hot, &self.client, &states),
        }
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
            states: parking_lot::RwLock::new(HashMap::new()),
            next_id: AtomicU64::new(1),
            next: AtomicUsize::new(0),
            near,
            coherence: options.near_tracking.as_ref().map(|_| Coherence::new()),
            cool_writing: (0..COOL_STRIPES).map(|_| AtomicU64::new(0)).collect(),
            salt: random_salt(),
            counters: HotCounters::default(),
            options,
        })
    }

    /// Starts the background tick that merges samples, publishes the hot set and forgets the
    /// idle states of keys that cooled.
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
                }
                hot.retire_cooled(&after);
            }
        });
    }

    /// Forgets the states of keys no longer hot (all idle ones when there are too many), once
    /// no write or round of theirs runs. Retiring takes the syncer token for good, so a
    /// reader still holding the state cannot start a round that races the next period's.
    fn retire_cooled(&self, hot_set: &shardis_hotkey::HotSet) {
        let crowded = {
            let states = self.states.read();
            let cooled = states.keys().any(|k| !hot_set.contains(key_hash(k), k));
            if !cooled && states.len() <= MAX_STATES {
                return;
            }
            states.len() > MAX_STATES
        };
        self.states.write().retain(|key, state| {
            if !crowded && hot_set.contains(key_hash(key), key) {
                return true;
            }
            if state.writing.load(Ordering::SeqCst) != 0 {
                return true;
            }
            state
                .syncing
                .compare_exchange(false, true, Ordering::SeqCst, Ordering::SeqCst)
                .is_err()
        });
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

    fn cool_stripe(key: &[u8]) -> usize {
        (key_hash(key) % COOL_STRIPES as u64) as usize
    }

    fn new_state(&self, key: &[u8]) -> Arc<KeyState> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        Arc::new(KeyState {
            key: key.to_vec(),
            id,
            cool_stripe: Self::cool_stripe(key),
            writing: AtomicU32::new(0),
            dirty: AtomicU64::new(1),
            synced: ArcSwap::from_pointee(Synced {
                dirty: 0,
                names: None,
                topology: None,
                generation: 0,
            }),
            syncing: AtomicBool::new(false),
            settled: AtomicBool::new(false),
            // Each hot period of a key starts on names of its own, too.
            generation: AtomicU32::new(id as u32),
        })
    }

    /// The state of hot key `key`, created for a new hot period if it has none.
    fn state(&self, key: &[u8]) -> Arc<KeyState> {
        if let Some(state) = self.states.read().get(key) {
            return state.clone();
        }
        self.states
            .write()
            .entry(key.to_vec())
            .or_insert_with(|| self.new_state(key))
            .clone()
    }

    /// Counts a write of `key` in its state (created if `hot`), under the map's lock so a
    /// state is never retired with a write starting on it. `None`: a cool key.
    fn begin_write(&self, key: &[u8], hot: bool) -> Option<Arc<KeyState>> {
        if let Some(state) = self.states.read().get(key) {
            state.writing.fetch_add(1, Ordering::SeqCst);
            return Some(state.clone());
        }
        if !hot {
            return None;
        }
        let mut states = self.states.write();
        let state = states
            .entry(key.to_vec())
            .or_insert_with(|| self.new_state(key))
            .clone();
        state.writing.fetch_add(1, Ordering::SeqCst);
        Some(state)
    }

    /// Sorts what `roles` write into states (their writes now counted) and cool writes
    /// (counted per stripe until the returned guard drops).
    fn begin_writes<'r>(
        &self,
        roles: impl IntoIterator<Item = Role<'r>>,
    ) -> (Vec<Arc<KeyState>>, CoolWrites<'_>) {
        let mut states: Vec<Arc<KeyState>> = Vec::new();
        let mut cool = CoolWrites {
            hot: self,
            stripes: Vec::new(),
        };
        let mut all = false;
        for role in roles {
            match role {
                Role::Write(keys) => {
                    for key in keys {
                        if states.iter().any(|s| s.key == key) {
                            continue;
                        }
                        // Counted as cool first: a state created meanwhile waits for it.
                        let stripe = Self::cool_stripe(key);
                        self.cool_writing[stripe].fetch_add(1, Ordering::SeqCst);
                        let hot = self.detector.is_hot(key_hash(key), key);
                        match self.begin_write(key, hot) {
                            Some(state) => {
                                self.cool_writing[stripe].fetch_sub(1, Ordering::SeqCst);
                                states.push(state);
                            }
                            None => cool.stripes.push(stripe),
                        }
                    }
                }
                Role::WriteAll => all = true,
                Role::Read(_) | Role::Other => {}
            }
        }
        if all {
            let map = self.states.read();
            for state in map.values() {
                if !states.iter().any(|s| Arc::ptr_eq(s, state)) {
                    state.writing.fetch_add(1, Ordering::SeqCst);
                    states.push(state.clone());
                }
            }
        }
        (states, cool)
    }

    /// Handles `cmd` if it concerns the hot-key layer; [`Intercepted::Route`] leaves routing
    /// it to the caller. The caller awaits that command itself, so this future never holds
    /// a routed command's (see `engine` on future sizes).
    pub async fn intercept<'h>(self: &'h Arc<Self>, client: &Client, cmd: &Cmd) -> Intercepted<'h> {
        let args = command::args_of(cmd);
        let role = role_of(&args);
        if let Role::Read(key) = role {
            let hash = key_hash(key);
            if self.options.detect {
                self.detector.record(hash, key);
            }
            if !self.detector.is_hot(hash, key) {
                return Intercepted::Route(None);
            }
            // Boxed, as every path most commands do not take (see `engine` on future sizes).
            return Intercepted::Done(Box::pin(self.read(client, key)).await);
        }
        if matches!(role, Role::Other) {
            return Intercepted::Route(None);
        }
        let (states, cool) = self.begin_writes([role]);
        if states.is_empty() {
            return Intercepted::Route(Some(cool));
        }
        drop(cool);
        let guard = self.hot_writes(client, states);
        Intercepted::Done(
            Box::pin(Self::write(guard, |client| async move {
                client.send_routed(cmd).await
            }))
            .await,
        )
    }

    /// Runs a pipeline (atomic or not) through the client: the hot keys its commands write
    /// are written as single writes are (see the module docs). Pipelined reads of hot keys
    /// read the canonical key.
    pub async fn run_pipeline(
        self: &Arc<Self>,
        client: &Client,
        pipeline: &redis::Pipeline,
        offset: usize,
        count: usize,
    ) -> Result<Vec<Value>> {
        let args: Vec<_> = pipeline.cmd_iter().map(command::args_of).collect();
        let (states, cool) = self.begin_writes(args.iter().map(|a| role_of(a)));
        if states.is_empty() {
            let replies = client.send_pipeline_routed(pipeline, offset, count).await;
            drop(cool);
            return replies;
        }
        drop(cool);
        let guard = self.hot_writes(client, states);
        Self::write(guard, |client| async move {
            client.send_pipeline_routed(pipeline, offset, count).await
        })
        .await
    }

    /// Runs a write of hot keys, counted in `writing` by `guard`; see [`HotWrites`] for what
    /// happens after, whether the caller waits for it or not.
    async fn write<T, F>(mut guard: HotWrites, send: impl FnOnce(Client) -> F) -> Result<T>
    where
        F: Future<Output = Result<T>>,
    {
        let result = send(guard.client.clone()).await;
        guard.settled = !may_have_run(&result);
        drop(guard);
        result
    }

    /// The guard of a write of `states` (their `writing` already counted).
    fn hot_writes(self: &Arc<Self>, client: &Client, states: Vec<Arc<KeyState>>) -> HotWrites {
        HotWrites {
            hot: self.clone(),
            client: client.clone(),
            states,
            settled: false,
        }
    }

    /// Starts `state`'s syncer unless one runs (or the state is retired).
    fn wake_syncer(self: &Arc<Self>, client: &Client, state: &Arc<KeyState>) {
        if state
            .syncing
            .compare_exchange(false, true, Ordering::SeqCst, Ordering::SeqCst)
            .is_err()
        {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            state.syncing.store(false, Ordering::SeqCst);
            return;
        };
        let (hot, client, state) = (self.clone(), client.clone(), state.clone());
        runtime.spawn(async move { hot.sync(&client, &state).await });
    }

    /// The syncer: rounds until the copies are synced with the latest write (the token is
    /// held on entry).
    async fn sync(self: &Arc<Self>, client: &Client, state: &Arc<KeyState>) {
        loop {
            let round = self.sync_round(client, state).await;
            match round {
                Round::Done => {}
                Round::Unsettled => tokio::time::sleep(SETTLE_POLL).await,
                Round::Failed => tokio::time::sleep(SYNC_RETRY).await,
            }
            state.syncing.store(false, Ordering::SeqCst);
            // A write completed during the round: go again (unless another syncer took over).
            let behind = state.synced.load().dirty != state.dirty.load(Ordering::SeqCst);
            if !behind || matches!(round, Round::Failed) {
                return;
            }
            if state
                .syncing
                .compare_exchange(false, true, Ordering::SeqCst, Ordering::SeqCst)
                .is_err()
            {
                return;
            }
        }
    }

    /// One round: note `dirty`, read the canonical key and its TTL, write every copy (or
    /// delete them), publish.
    async fn sync_round(&self, client: &Client, state: &KeyState) -> Round {
        let settling = !state.settled.load(Ordering::SeqCst);
        if settling && self.cool_writing[state.cool_stripe].load(Ordering::SeqCst) != 0 {
            return Round::Unsettled;
        }
        let dirty = state.dirty.load(Ordering::SeqCst);
        let topology = client.copy_placement();
        let previous = state.synced.load_full();
        let generation = state.generation.load(Ordering::SeqCst);
        let names: Arc<[Vec<u8>]> = match (&previous.topology, &previous.names) {
            (Some(t), Some(names))
                if Arc::ptr_eq(t, &topology) && previous.generation == generation =>
            {
                names.clone()
            }
            _ => {
                let n = self.options.copies.unwrap_or(topology.shards()).max(1);
                let salt = self
                    .salt
                    .wrapping_add(generation.wrapping_mul(GENERATION_STRIDE));
                topology.copy_names(&state.key, n, salt).into()
            }
        };
        let mut read = redis::pipe();
        read.cmd("GET").arg(&state.key).cmd("PTTL").arg(&state.key);
        let replies = match client.send_pipeline_routed(&read, 0, 2).await {
            Ok(replies) => replies,
            Err(e) => {
                tracing::debug!(error = %e, "reading a hot key to sync its copies failed");
                return Round::Failed;
            }
        };
        let cap = self.options.copy_ttl.as_millis().clamp(1, i64::MAX as u128) as i64;
        let value = match replies.as_slice() {
            [Value::BulkString(bytes), Value::Int(ttl)] if *ttl == -1 || *ttl > 0 => {
                Some((bytes, if *ttl > 0 { (*ttl).min(cap) } else { cap }))
            }
            _ => None,
        };
        let copies = names.get(1..).unwrap_or_default();
        let writes = copies.iter().map(|copy| {
            let cmd = match value {
                Some((bytes, ttl)) => {
                    let mut set = redis::cmd("SET");
                    set.arg(copy.as_slice())
                        .arg(bytes.as_slice())
                        .arg("PX")
                        .arg(ttl);
                    set
                }
                None => {
                    let mut del = redis::cmd("DEL");
                    del.arg(copy.as_slice());
                    del
                }
            };
            async move { client.send_routed(&cmd).await }
        });
        for result in futures::future::join_all(writes).await {
            match result {
                Ok(Value::Okay | Value::Int(_)) => {}
                other => {
                    tracing::debug!(?other, "writing a hot-key copy failed; retrying");
                    // It may still land, later than the next round's value: not on names
                    // anyone reads again.
                    state.generation.fetch_add(1, Ordering::SeqCst);
                    return Round::Failed;
                }
            }
        }
        state.synced.store(Arc::new(Synced {
            dirty,
            names: value.is_some().then_some(names),
            topology: Some(topology),
            generation,
        }));
        if settling {
            state.settled.store(true, Ordering::SeqCst);
        }
        Round::Done
    }

    async fn read(self: &Arc<Self>, client: &Client, key: &[u8]) -> Result<Value> {
        let state = self.state(key);
        // With tracking: taken before anything is read (see `coherence.rs`); `None` while the
        // invalidation stream is incomplete, and then nothing is served nor kept.
        let tracked = self.coherence.as_ref().map(|c| c.stamp(key));
        let (quiet, dirty, clean) = state.look();
        if let Some(near) = &self.near
            && quiet
            && tracked != Some(None)
            && let Some((value, id, stamp, seen)) = near.get(key)
            && id == state.id
            && stamp == dirty
            && seen == tracked.flatten()
        {
            self.counters.near_hits.fetch_add(1, Ordering::Relaxed);
            metrics::counter!("shardis_hot_near_cache_hits_total").increment(1);
            // A loop of hits must still let other tasks run.
            tokio::task::consume_budget().await;
            return Ok(value);
        }
        let synced = state.synced.load_full();
        let names = match (&synced.names, &synced.topology) {
            (Some(names), Some(topology)) if clean => {
                if !Arc::ptr_eq(topology, &client.copy_placement()) {
                    // The copies still hold the value; place them anew for the new topology.
                    self.wake_syncer(client, &state);
                }
                Some(names.clone())
            }
            _ => {
                if quiet && !clean {
                    self.wake_syncer(client, &state);
                }
                None
            }
        };
        let pick = match &names {
            Some(names) => self.next.fetch_add(1, Ordering::Relaxed) % names.len(),
            None => 0,
        };
        let value = match names.as_deref().and_then(|n| n.get(pick)) {
            Some(copy) if pick > 0 => self.read_copy(client, &state, key, copy).await?,
            _ => client.send_routed(redis::cmd("GET").arg(key)).await?,
        };
        if let (Some(near), false) = (&self.near, matches!(value, Value::ServerError(_)))
            && tracked != Some(None)
        {
            near.insert(
                key.to_vec(),
                (value.clone(), state.id, dirty, tracked.flatten()),
            );
        }
        Ok(value)
    }

    /// Reads one copy; a miss reads the canonical key and wakes the syncer to refill.
    async fn read_copy(
        self: &Arc<Self>,
        client: &Client,
        state: &Arc<KeyState>,
        key: &[u8],
        copy: &[u8],
    ) -> Result<Value> {
        self.counters.copy_reads.fetch_add(1, Ordering::Relaxed);
        metrics::counter!("shardis_hot_copy_reads_total").increment(1);
        let value = client.send_routed(redis::cmd("GET").arg(copy)).await?;
        if value != Value::Nil {
            return Ok(value);
        }
        self.counters.copy_misses.fetch_add(1, Ordering::Relaxed);
        metrics::counter!("shardis_hot_copy_misses_total").increment(1);
        self.wake_syncer(client, state);
        client.send_routed(redis::cmd("GET").arg(key)).await
    }
}

/// How a sync round ended.
#[derive(Clone, Copy)]
enum Round {
    Done,
    /// A fresh state still waits for writes that were in flight when it was created.
    Unsettled,
    Failed,
}

/// A salt that differs between clients (and processes) with high probability.
fn random_salt() -> u32 {
    use std::hash::{BuildHasher, Hasher};
    // `RandomState` is seeded from the OS per process and advanced per instance.
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default(),
    );
    hasher.finish() as u32
}
