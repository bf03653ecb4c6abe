//! The coherent in-process tier (L1): a bounded [`quick_cache`] of decoded values in front of
//! Redis, kept coherent by the client's [invalidation stream](shardis::InvalidationStream)
//! and the namespace's backplane channel (`feed.rs`).
//!
//! **The guarantee.** After a write elsewhere completes, this process stops serving the old
//! value within the invalidation delay (the time its invalidation takes to reach this process:
//! Redis sends it before it answers the writer), and never serves it beyond the L1 TTL,
//! whatever fails. With reads from replicas (`ReadFrom::Replica`/`PreferReplica`) L1 holds
//! what the replicas serve: the bound is then the replication lag plus the invalidation
//! delay (a read from a lagging replica may refill the old value after the primary's
//! invalidation; that replica's own invalidation, sent when it applies the write, removes
//! it — `tests/l1_replicated.rs`). What makes it hold:
//!
//! - **L1 is served only while the feed is complete** ([`Invalidation::Ready`] seen, no
//!   [`Invalidation::Broken`] since, the backplane subscribed). A `Broken` (a lost tracking
//!   connection, an unanswered heartbeat, a node that joined or left) or a flush drops every
//!   entry at once (`shardis_cache_l1_flushed_total{reason}`), and nothing is served or filled
//!   until the feed is complete again.
//! - **A fill never stores a value an invalidation already superseded** (the classic race: the
//!   invalidation arrives between the Redis read and the L1 store). Each read takes a
//!   [`Ticket`] — the global generation and its key's stripe generation — *before* it reads
//!   Redis; an invalidation bumps the generation *before* it removes the entry; a fill inserts,
//!   then checks the ticket again and removes what it inserted if either moved. So either the
//!   fill sees the bump, or the removal comes after the insert. Until the fill has checked
//!   again, its entry is served only while its stripe generation is still its ticket's: a reader
//!   that comes between the insert and the removal gets nothing from it.
//! - **Each thread reads through its own window** onto the entries (`window.rs`), validated by
//!   the same stripe generations, so a hit writes no memory another core uses.
//! - **Own writes** (`set_through`, `invalidate`, write-behind, `invalidate_all`) drop the local
//!   entry before and after they reach Redis.
//! - Every entry also dies at its L1 TTL and at its Redis soft expiry, whichever is first
//!   (on the coarse monotonic clock: at most one of its ticks, 1–4 ms on Linux, late).

mod feed;
mod hot;
mod warm;
mod window;

use std::any::Any;
use std::cell::RefCell;
use std::marker::PhantomData;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

pub(crate) use feed::{Feed, backplane_channel, spawn_feed};
pub use hot::HotIds;
pub(crate) use hot::{HotReads, spawn_hot_task};
use window::{Seen, Window};

use crate::cache::now_ms;
use crate::metrics::Metrics;

/// Settings of the in-process tier; see [`Builder::l1`](crate::Builder::l1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct L1Options {
    /// The most entries kept (default 10,000); the least recently useful go first
    /// (`quick_cache`'s CLOCK-Pro-like eviction). Each thread that reads also keeps a window of
    /// up to 4,096 slots (16 bytes each) onto the entries it read lately, which may keep an
    /// evicted entry in memory until its slot is reused.
    pub max_entries: u64,
    /// The longest an entry is served (default 30 s): the bound on staleness when every
    /// invalidation path fails silently. Checked on the coarse monotonic clock, so an entry
    /// may outlive it by one kernel tick (1–4 ms on Linux).
    pub ttl: Duration,
    /// Subscribe to the namespace's backplane channel (default `true`), for
    /// [`Cache::publish_invalidation`](crate::Cache::publish_invalidation).
    pub backplane: bool,
}

impl Default for L1Options {
    fn default() -> Self {
        L1Options {
            max_entries: 10_000,
            ttl: Duration::from_secs(30),
            backplane: true,
        }
    }
}

/// Why L1 was emptied, the label of `shardis_cache_l1_flushed_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FlushReason {
    /// Invalidations may have been lost (tracking connection lost, heartbeat, topology change,
    /// the stream ended, a backplane gap).
    Broken,
    /// A node was flushed (`FLUSHALL`/`FLUSHDB`).
    Flush,
    /// The namespace version changed (`invalidate_all`, here or elsewhere).
    Namespace,
}

impl FlushReason {
    const ALL: [FlushReason; 3] = [
        FlushReason::Broken,
        FlushReason::Flush,
        FlushReason::Namespace,
    ];

    fn label(self) -> &'static str {
        match self {
            FlushReason::Broken => "broken",
            FlushReason::Flush => "flush",
            FlushReason::Namespace => "namespace",
        }
    }
}

/// One cached value (or cached not-found).
struct Entry<V> {
    /// Its id: a thread's window compares it (the hash alone could collide).
    id: Box<str>,
    /// The namespace version it was read under.
    ns_version: u64,
    /// The global generation it was filled at: a flush makes every older entry invisible.
    generation: u64,
    /// Its fill's ticket's stripe generation: until the fill has confirmed that no
    /// invalidation came since its read began (`confirmed`), the entry is served only while
    /// its stripe's generation is still this one — an invalidation that came first must not
    /// be undone by a reader that finds the entry between its insertion and its withdrawal.
    stripe_gen: u64,
    confirmed: AtomicBool,
    value: Option<V>,
    /// When it stops being served: its Redis soft expiry or the L1 TTL, whichever is first.
    until: coarsetime::Instant,
}

/// Now on the coarse monotonic clock (`CLOCK_MONOTONIC_COARSE` on Linux: a read of the
/// kernel's last tick, a few ns, where the precise clock cost ~20 ns, a tenth of an L1 hit,
/// on this project's machine). An entry may so be served up to one tick (1–4 ms) past its
/// bound — far below any TTL. Not `coarsetime::Instant::now`, which also stores the time in a
/// global every core would write.
fn coarse_now() -> coarsetime::Instant {
    coarsetime::Instant::now_without_cache_update()
}

/// Taken before a read of Redis; a fill is kept only if neither generation moved since.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ticket {
    global: u64,
    stripe: usize,
    stripe_gen: u64,
}

const STRIPES: usize = 4096;

/// A value alone on its cache line(s). Every read writes its thread's `RefCell` flag: two
/// threads' flags on one line would move it between their cores on every hit (measured: the
/// flag's line was nine tenths of the per-thread lookup's time before this).
#[repr(align(64))]
struct OwnLine<T>(T);

type Entries<V> = quick_cache::sync::Cache<
    String,
    Arc<Entry<V>>,
    quick_cache::UnitWeighter,
    foldhash::fast::RandomState,
>;

/// The tier itself: entries, generations, and whether the feed is complete.
pub(crate) struct L1<V> {
    /// Keyed by id, hashed with foldhash (seeded per process; cheaper than SipHash on short
    /// ids, see `benches/benches/cache_l1.rs`). `quick_cache`, not moka: a hit keeps no
    /// per-read order or log (24 ns against moka's 106 for the same lookup in
    /// `cache_l1`; moka's bookkeeping was more than half of an L1 hit's CPU). It has no TTL
    /// of its own: every entry carries when it stops being served, checked on read.
    entries: Entries<V>,
    /// Each thread's window onto `entries` (`window.rs`): most hits are served from it,
    /// without the store's lock. A `Window<V>`, boxed as `Any` so that `L1<V>` (and every
    /// struct holding it) needs no `Send + Sync` bound of its own.
    windows: thread_local::ThreadLocal<OwnLine<RefCell<Box<dyn Any + Send>>>>,
    window_slots: usize,
    _values: PhantomData<V>,
    /// The longest an entry is served.
    ttl: Duration,
    global: AtomicU64,
    stripes: Box<[AtomicU64]>,
    ready: AtomicBool,
    /// Bumped when the namespace version key changes; the version must be re-read before L1
    /// is used again (`ns_clean` catches up once it was).
    ns_changes: AtomicU64,
    ns_clean: AtomicU64,
    /// `shardis_cache_l1_flushed_total{namespace, reason}`, one handle per reason.
    flushed: [metrics::Counter; 3],
    m: Arc<Metrics>,
}

/// FNV-1a of an id (short ids, no allocation): its low bits pick the stripe, its high bits the
/// slot of a thread's window.
fn id_hash(id: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in id.as_bytes() {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

fn stripe_index(hash: u64) -> usize {
    (hash as usize) % STRIPES
}

fn stripe_of(id: &str) -> usize {
    stripe_index(id_hash(id))
}

impl<V: Clone + Send + Sync + 'static> L1<V> {
    pub(crate) fn new(options: &L1Options, namespace: &str, m: Arc<Metrics>) -> Self {
        L1 {
            entries: {
                let items = usize::try_from(options.max_entries).unwrap_or(usize::MAX);
                quick_cache::sync::Cache::with(
                    items,
                    options.max_entries,
                    quick_cache::UnitWeighter,
                    foldhash::fast::RandomState::default(),
                    quick_cache::sync::DefaultLifecycle::default(),
                )
            },
            windows: thread_local::ThreadLocal::new(),
            window_slots: window::slots_for(options.max_entries),
            _values: PhantomData,
            ttl: options.ttl,
            global: AtomicU64::new(0),
            stripes: (0..STRIPES).map(|_| AtomicU64::new(0)).collect(),
            ready: AtomicBool::new(false),
            ns_changes: AtomicU64::new(0),
            ns_clean: AtomicU64::new(0),
            flushed: FlushReason::ALL.map(|reason| {
                metrics::counter!(
                    "shardis_cache_l1_flushed_total",
                    "namespace" => namespace.to_string(),
                    "reason" => reason.label()
                )
            }),
            m,
        }
    }

    /// Whether L1 may be used now: the feed is complete and the namespace version is known.
    pub(crate) fn usable(&self) -> bool {
        self.ready.load(Ordering::SeqCst)
            && self.ns_clean.load(Ordering::SeqCst) == self.ns_changes.load(Ordering::SeqCst)
    }

    /// The cached value of `id` under namespace version `ns_version`, if L1 may serve it.
    pub(crate) fn get(&self, id: &str, ns_version: u64) -> Option<Option<V>> {
        if !self.usable() {
            return None;
        }
        let hash = id_hash(id);
        // Read before the store (see `window.rs`: why a copy is never served past its
        // invalidation).
        let stripe_gen = self.stripes[stripe_index(hash)].load(Ordering::SeqCst);
        let window = self
            .windows
            .get_or(|| OwnLine(RefCell::new(Box::new(Window::<V>::new(self.window_slots)))));
        let mut window = window.0.try_borrow_mut();
        let Some(window) = window
            .as_mut()
            .ok()
            .and_then(|w| w.downcast_mut::<Window<V>>())
        else {
            // Re-entered from a value's `Clone` on this thread: the store alone.
            let entry = self.entries.get(id)?;
            return self.serve(&entry, ns_version, stripe_gen);
        };
        let slot = window.slot(hash);
        if let Some(seen) = slot
            && seen.stripe_gen == stripe_gen
            && *seen.entry.id == *id
            && let Some(value) = self.serve(&seen.entry, ns_version, stripe_gen)
        {
            return Some(value);
        }
        let found = self
            .entries
            .get(id)
            .and_then(|entry| Some((self.serve(&entry, ns_version, stripe_gen)?, entry)));
        match found {
            Some((value, entry)) => {
                *slot = Some(Seen { stripe_gen, entry });
                Some(value)
            }
            None => {
                // A copy of this id that may no longer be served: let its value go.
                if slot.as_ref().is_some_and(|seen| *seen.entry.id == *id) {
                    *slot = None;
                }
                None
            }
        }
    }

    /// The value of `entry` if it may be served under namespace version `ns_version` now, its
    /// stripe's generation read before the entry was (`stripe_gen`).
    fn serve(&self, entry: &Entry<V>, ns_version: u64, stripe_gen: u64) -> Option<Option<V>> {
        let servable = entry.ns_version == ns_version
            && entry.generation == self.global.load(Ordering::SeqCst)
            && (entry.stripe_gen == stripe_gen || entry.confirmed.load(Ordering::SeqCst))
            && coarse_now() < entry.until;
        servable.then(|| entry.value.clone())
    }

    /// The ticket of a read of `id` that begins now; `None` while L1 is not usable (nothing
    /// read now may be filled).
    pub(crate) fn ticket(&self, id: &str) -> Option<Ticket> {
        if !self.usable() {
            return None;
        }
        let stripe = stripe_of(id);
        Some(Ticket {
            global: self.global.load(Ordering::SeqCst),
            stripe,
            stripe_gen: self.stripes[stripe].load(Ordering::SeqCst),
        })
    }

    fn ticket_holds(&self, ticket: &Ticket) -> bool {
        self.usable()
            && self.global.load(Ordering::SeqCst) == ticket.global
            && self.stripes[ticket.stripe].load(Ordering::SeqCst) == ticket.stripe_gen
    }

    /// Stores what a read that took `ticket` found, unless an invalidation came since.
    /// Returns whether it was kept.
    pub(crate) fn fill(
        &self,
        id: &str,
        ticket: Ticket,
        ns_version: u64,
        value: Option<V>,
        fresh_until_ms: u64,
    ) -> bool {
        let wall = now_ms();
        if !self.ticket_holds(&ticket) || wall >= fresh_until_ms {
            return false;
        }
        let fresh_for = Duration::from_millis(fresh_until_ms - wall);
        let entry = self.insert(id, &ticket, ns_version, value, fresh_for);
        // An invalidation bumps before it removes: if it bumped after our first check, it
        // either removes what we inserted or we see its bump here. Until then the entry is
        // served only while its stripe has not moved (`Entry::stripe_gen`).
        if self.ticket_holds(&ticket) {
            entry.confirmed.store(true, Ordering::SeqCst);
            true
        } else {
            self.withdraw(id);
            false
        }
    }

    /// Puts an unconfirmed entry for what a read that took `ticket` found.
    fn insert(
        &self,
        id: &str,
        ticket: &Ticket,
        ns_version: u64,
        value: Option<V>,
        fresh_for: Duration,
    ) -> Arc<Entry<V>> {
        let entry = Arc::new(Entry {
            id: id.into(),
            ns_version,
            generation: ticket.global,
            stripe_gen: ticket.stripe_gen,
            confirmed: AtomicBool::new(false),
            value,
            until: coarse_now() + coarsetime::Duration::from(fresh_for.min(self.ttl)),
        });
        self.entries.insert(id.to_string(), entry.clone());
        entry
    }

    /// Removes `id`'s entry, then bumps its stripe: a thread's window that copied the entry
    /// holds an older stripe generation and no longer serves it.
    fn withdraw(&self, id: &str) {
        self.entries.remove(id);
        self.stripes[stripe_of(id)].fetch_add(1, Ordering::SeqCst);
    }

    /// `id` changed: no read that began before now may fill it (the first bump), and its entry
    /// goes, from the store and from every thread's window (`withdraw`'s bump).
    pub(crate) fn invalidate(&self, id: &str) {
        self.stripes[stripe_of(id)].fetch_add(1, Ordering::SeqCst);
        self.withdraw(id);
    }

    /// The feed reported that `id` changed.
    pub(crate) fn reported(&self, id: &str) {
        self.invalidate(id);
        self.m.l1_invalidations.inc();
    }

    /// Every entry goes, and no read that began before now may fill.
    pub(crate) fn flush(&self, reason: FlushReason) {
        self.global.fetch_add(1, Ordering::SeqCst);
        self.entries.clear();
        self.m.l1_flushes.inc();
        self.flushed[reason as usize].increment(1);
    }

    /// Whether the feed is complete.
    pub(crate) fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::SeqCst);
    }

    /// The namespace version key changed: L1 stays unusable until the version is read again.
    pub(crate) fn namespace_changed(&self) {
        self.ns_changes.fetch_add(1, Ordering::SeqCst);
        self.flush(FlushReason::Namespace);
    }

    /// `Some(mark)` when the namespace version must be re-read before L1 is used; pass `mark`
    /// to [`namespace_read`](Self::namespace_read) once it was.
    pub(crate) fn namespace_stale(&self) -> Option<u64> {
        let changes = self.ns_changes.load(Ordering::SeqCst);
        (self.ns_clean.load(Ordering::SeqCst) != changes).then_some(changes)
    }

    /// The namespace version was read after change number `mark`.
    pub(crate) fn namespace_read(&self, mark: u64) {
        self.ns_clean.fetch_max(mark, Ordering::SeqCst);
    }
}

/// The id of a cache key of `namespace` (`{<ns>:<ns version>:<id>}:<suffix>`), if it is one.
pub(crate) fn id_of_key<'a>(namespace: &str, key: &'a [u8]) -> Option<&'a str> {
    let key = std::str::from_utf8(key).ok()?;
    let rest = key
        .strip_prefix('{')?
        .strip_prefix(namespace)?
        .strip_prefix(':')?;
    let (version, rest) = rest.split_once(':')?;
    if version.is_empty() || !version.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let end = rest.rfind('}')?;
    Some(&rest[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn l1() -> L1<String> {
        let l1 = L1::new(&L1Options::default(), "ns", Arc::new(Metrics::new("ns")));
        l1.set_ready(true);
        l1
    }

    fn later() -> u64 {
        now_ms() + 60_000
    }

    #[test]
    fn ids_come_from_every_key_of_an_entry() {
        assert_eq!(id_of_key("ns", b"{ns:0:user:1}:v"), Some("user:1"));
        assert_eq!(id_of_key("ns", b"{ns:12:a}b}:ver"), Some("a}b"));
        assert_eq!(id_of_key("ns", b"{ns:3:x}:lock"), Some("x"));
        assert_eq!(id_of_key("ns", b"{nsx:3:x}:v"), None);
        assert_eq!(id_of_key("ns", b"{ns:v:x}:v"), None);
        assert_eq!(id_of_key("ns", b"shardis-cache:ns:ns:version"), None);
    }

    #[test]
    fn a_fill_after_an_invalidation_is_not_kept() {
        let l1 = l1();
        let ticket = l1.ticket("a").unwrap();
        l1.invalidate("a");
        assert!(!l1.fill("a", ticket, 0, Some("old".into()), later()));
        assert_eq!(l1.get("a", 0), None);
        // A read that began after it fills.
        let ticket = l1.ticket("a").unwrap();
        assert!(l1.fill("a", ticket, 0, Some("new".into()), later()));
        assert_eq!(l1.get("a", 0), Some(Some("new".into())));
        // Another key's invalidation in another stripe does not stop a fill.
        let ticket = l1.ticket("b").unwrap();
        let other = (0..)
            .map(|i| format!("o{i}"))
            .find(|k| stripe_of(k) != stripe_of("b"))
            .unwrap();
        l1.invalidate(&other);
        assert!(l1.fill("b", ticket, 0, None, later()));
        assert_eq!(l1.get("b", 0), Some(None));
    }

    #[test]
    fn broken_feed_serves_nothing_and_refuses_fills_until_ready() {
        let l1 = l1();
        let t = l1.ticket("a").unwrap();
        assert!(l1.fill("a", t, 0, Some("v".into()), later()));
        let before = l1.ticket("b").unwrap();
        l1.set_ready(false);
        l1.flush(FlushReason::Broken);
        assert_eq!(l1.get("a", 0), None);
        assert!(l1.ticket("a").is_none());
        l1.set_ready(true);
        // Read before the flush: not kept, even though the feed is back.
        assert!(!l1.fill("b", before, 0, Some("v".into()), later()));
        assert_eq!(l1.get("a", 0), None);
    }

    #[test]
    fn a_copy_in_a_threads_window_is_not_served_after_its_invalidation() {
        let l1 = l1();
        assert!(l1.fill("a", l1.ticket("a").unwrap(), 0, Some("v1".into()), later()));
        // Twice: the second is served from this thread's window.
        assert_eq!(l1.get("a", 0), Some(Some("v1".into())));
        assert_eq!(l1.get("a", 0), Some(Some("v1".into())));
        l1.invalidate("a");
        assert_eq!(l1.get("a", 0), None);
        assert!(l1.fill("a", l1.ticket("a").unwrap(), 0, Some("v2".into()), later()));
        assert_eq!(l1.get("a", 0), Some(Some("v2".into())));
        // A flush and a namespace change are seen through the window too.
        l1.flush(FlushReason::Broken);
        assert_eq!(l1.get("a", 0), None);
        assert!(l1.fill("a", l1.ticket("a").unwrap(), 0, Some("v3".into()), later()));
        assert_eq!(l1.get("a", 0), Some(Some("v3".into())));
        assert_eq!(l1.get("a", 1), None);
    }

    #[test]
    fn a_fill_that_an_invalidation_overtook_is_never_served() {
        // The fill's race, step by step: its read began before an invalidation, then it
        // inserts; until it sees the moved ticket and withdraws, a reader finds the entry.
        let l1 = l1();
        let ticket = l1.ticket("a").unwrap();
        l1.invalidate("a");
        let sixty = Duration::from_secs(60);
        l1.insert("a", &ticket, 0, Some("old".into()), sixty);
        assert!(!l1.ticket_holds(&ticket));
        assert_eq!(l1.get("a", 0), None);
        l1.withdraw("a");
        assert_eq!(l1.get("a", 0), None);
        // A fill no invalidation overtook is served before it confirms, and after.
        let ticket = l1.ticket("a").unwrap();
        let entry = l1.insert("a", &ticket, 0, Some("new".into()), sixty);
        assert_eq!(l1.get("a", 0), Some(Some("new".into())));
        entry.confirmed.store(true, Ordering::SeqCst);
        assert_eq!(l1.get("a", 0), Some(Some("new".into())));
    }

    #[test]
    fn a_confirmed_entry_a_reader_copied_is_not_served_after_its_invalidation() {
        // A reader that read the stripe between an invalidation's first bump and its removal
        // still finds the entry and copies it; the bump after the removal must reach the copy.
        let l1 = l1();
        assert!(l1.fill("a", l1.ticket("a").unwrap(), 0, Some("v".into()), later()));
        l1.stripes[stripe_of("a")].fetch_add(1, Ordering::SeqCst); // invalidate: first bump
        assert_eq!(l1.get("a", 0), Some(Some("v".into()))); // the reader copies
        l1.withdraw("a"); // invalidate: removal, second bump
        assert_eq!(l1.get("a", 0), None);
    }

    #[test]
    fn no_reader_thread_serves_a_value_after_its_invalidation_returned() {
        // A writer replaces the value of one id 3,000 times (invalidate, then fill the next);
        // after `invalidate` for value k returned, no reader may be served a value below k.
        let l1: Arc<L1<u64>> = Arc::new(L1::new(
            &L1Options::default(),
            "ns",
            Arc::new(Metrics::new("ns")),
        ));
        l1.set_ready(true);
        let published = Arc::new(AtomicU64::new(0));
        let done = Arc::new(AtomicBool::new(false));
        let readers: Vec<_> = (0..2)
            .map(|_| {
                let (l1, published, done) = (l1.clone(), published.clone(), done.clone());
                std::thread::spawn(move || {
                    let (mut served, mut stale) = (0u64, 0u64);
                    while !done.load(Ordering::SeqCst) {
                        let floor = published.load(Ordering::SeqCst);
                        if let Some(Some(v)) = l1.get("a", 0) {
                            served += 1;
                            stale += u64::from(v < floor);
                        }
                        // Another id, so the window's slots are read and replaced as well.
                        let _ = l1.get(&format!("b{}", served % 64), 0);
                    }
                    (served, stale)
                })
            })
            .collect();
        for id in (0..64).map(|i| format!("b{i}")) {
            assert!(l1.fill(&id, l1.ticket(&id).unwrap(), 0, Some(0), later()));
        }
        for k in 1..=3_000u64 {
            l1.invalidate("a");
            published.store(k, Ordering::SeqCst);
            let ticket = l1.ticket("a").unwrap();
            assert!(l1.fill("a", ticket, 0, Some(k), later()));
        }
        done.store(true, Ordering::SeqCst);
        for reader in readers {
            let (served, stale) = reader.join().unwrap();
            assert!(served > 0, "the reader was never served");
            assert_eq!(stale, 0, "values served after their invalidation returned");
        }
    }

    #[test]
    fn an_entry_is_not_served_past_its_soft_expiry() {
        let l1 = l1();
        let t = l1.ticket("a").unwrap();
        // Fresh for 20 ms in Redis, well within the L1 TTL (30 s).
        assert!(l1.fill("a", t, 0, Some("v".into()), now_ms() + 20));
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(l1.get("a", 0), None);
        // Fresh for longer than the L1 TTL: the TTL bounds it; served meanwhile.
        let t = l1.ticket("b").unwrap();
        assert!(l1.fill("b", t, 0, Some("v".into()), later()));
        assert_eq!(l1.get("b", 0), Some(Some("v".into())));
    }

    #[test]
    fn entries_of_another_namespace_version_or_expired_are_not_served() {
        let l1 = l1();
        let t = l1.ticket("a").unwrap();
        assert!(l1.fill("a", t, 3, Some("v".into()), later()));
        assert_eq!(l1.get("a", 4), None);
        assert!(!l1.fill("a", l1.ticket("a").unwrap(), 3, Some("v".into()), now_ms()));
        l1.namespace_changed();
        assert!(l1.ticket("a").is_none());
        let mark = l1.namespace_stale().unwrap();
        l1.namespace_read(mark);
        assert!(l1.namespace_stale().is_none());
        assert!(l1.ticket("a").is_some());
    }
}
