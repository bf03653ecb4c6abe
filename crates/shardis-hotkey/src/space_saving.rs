//! Space-Saving (Metwally, Agrawal, El Abbadi 2005): the top keys of a stream in fixed memory.
//!
//! `capacity` counters; a key already counted is incremented; a new key takes over the counter
//! with the smallest count `m` and starts at `m + 1` with an error of `m`. Every key whose true
//! count exceeds `total / capacity` is guaranteed to hold a counter, and `count - error` is a
//! lower bound of its true count.
//!
//! Layout, for a sampled access to cost a few tens of nanoseconds: the counts live in one
//! array sorted in descending order (with the counter id beside each count), so the minimum is
//! the last element, and a count only ever grows by one: to increment the count at position
//! `p`, swap that counter with the first one of equal count and bump it there — the order
//! holds. That first position is usually `p` itself (heavy keys have distinct counts); for the
//! long runs of small counts, a hint per small count (checked before use) remembers where its
//! run starts, and a binary search over the contiguous array is the fallback. A
//! new key is appended (count 1 is the least) or takes over the last position. A [`HashIndex`]
//! maps the caller's key hash to the counter. Key bytes are kept in buffers that are reused
//! when a counter changes hands or the table is cleared, so a warm table does not allocate.

use crate::index::HashIndex;

/// Counts below this get a run-start hint (counts above it are few and rarely tied).
const RUN_HINTS: usize = 256;

#[derive(Debug, Default, Clone)]
struct Counter {
    hash: u64,
    error: u64,
    /// Position of this counter in `sorted` (where its count is).
    pos: u32,
    key: Vec<u8>,
}

/// A count and the counter it belongs to, kept side by side so searches stay in one array.
#[derive(Debug, Clone, Copy)]
struct Slot {
    count: u64,
    id: u32,
}

/// A Space-Saving summary of `(hash, key)` accesses with a fixed number of counters.
///
/// ```
/// use shardis_hotkey::{key_hash, SpaceSaving};
///
/// let mut ss = SpaceSaving::new(2);
/// for key in [&b"a"[..], b"a", b"b", b"c", b"a"] {
///     ss.record(key_hash(key), key);
/// }
/// assert_eq!(ss.total(), 5);
/// assert_eq!(ss.len(), 2);
/// let a = ss.iter().find(|e| e.key == b"a").unwrap();
/// assert_eq!((a.count, a.error), (3, 0));
/// ```
#[derive(Debug, Clone)]
pub struct SpaceSaving {
    counters: Vec<Counter>,
    /// Counters in use: `counters[..len]`.
    len: usize,
    /// The counters in use, by descending count.
    sorted: Vec<Slot>,
    /// `run_start[c]`: where the run of count `c` probably starts in `sorted` (verified).
    run_start: Box<[u32]>,
    /// Key hash → index into `counters`.
    index: HashIndex,
    capacity: usize,
    total: u64,
}

/// One counter of a [`SpaceSaving`] summary, as returned by [`SpaceSaving::iter`].
///
/// ```
/// let mut ss = shardis_hotkey::SpaceSaving::new(4);
/// ss.record(7, b"k");
/// let e = ss.iter().next().unwrap();
/// assert_eq!((e.hash, e.key, e.count, e.error), (7, &b"k"[..], 1, 0));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry<'a> {
    /// The hash the key was recorded with.
    pub hash: u64,
    /// The key.
    pub key: &'a [u8],
    /// Estimated count (an over-estimate by at most `error`).
    pub count: u64,
    /// Over-estimation bound: `count - error` is a lower bound of the true count.
    pub error: u64,
}

impl SpaceSaving {
    /// A summary with `capacity` counters (at least 1, at most 2^16).
    ///
    /// ```
    /// let ss = shardis_hotkey::SpaceSaving::new(128);
    /// assert_eq!((ss.capacity(), ss.len(), ss.total()), (128, 0, 0));
    /// ```
    pub fn new(capacity: usize) -> Self {
        let capacity = capacity.clamp(1, 1 << 16);
        SpaceSaving {
            counters: Vec::with_capacity(capacity),
            len: 0,
            sorted: Vec::with_capacity(capacity),
            run_start: vec![u32::MAX; RUN_HINTS].into_boxed_slice(),
            index: HashIndex::with_capacity(capacity),
            capacity,
            total: 0,
        }
    }

    /// Number of counters.
    ///
    /// ```
    /// assert_eq!(shardis_hotkey::SpaceSaving::new(0).capacity(), 1);
    /// ```
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Counters in use (distinct keys held).
    ///
    /// ```
    /// let mut ss = shardis_hotkey::SpaceSaving::new(8);
    /// ss.record(1, b"x");
    /// ss.record(1, b"x");
    /// assert_eq!(ss.len(), 1);
    /// ```
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether nothing has been recorded since creation or the last [`clear`](Self::clear).
    ///
    /// ```
    /// assert!(shardis_hotkey::SpaceSaving::new(8).is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Number of accesses recorded since creation or the last [`clear`](Self::clear).
    ///
    /// ```
    /// let mut ss = shardis_hotkey::SpaceSaving::new(1);
    /// ss.record(1, b"x");
    /// ss.record(2, b"y");
    /// assert_eq!(ss.total(), 2);
    /// ```
    pub fn total(&self) -> u64 {
        self.total
    }

    /// Bytes held by key buffers (they are reused, so this only grows to the longest keys
    /// seen per counter): with `capacity` and a key length cap, memory is bounded.
    ///
    /// ```
    /// let mut ss = shardis_hotkey::SpaceSaving::new(1);
    /// ss.record(1, b"abc");
    /// assert!(ss.key_bytes() >= 3);
    /// ```
    pub fn key_bytes(&self) -> usize {
        self.counters.iter().map(|c| c.key.capacity()).sum()
    }

    /// Forgets all keys and the total; keeps the allocations for reuse.
    ///
    /// ```
    /// let mut ss = shardis_hotkey::SpaceSaving::new(4);
    /// ss.record(1, b"x");
    /// ss.clear();
    /// assert!(ss.is_empty() && ss.total() == 0);
    /// ```
    pub fn clear(&mut self) {
        if self.len > 0 {
            self.index.clear();
        }
        self.len = 0;
        self.sorted.clear();
        self.total = 0;
    }

    /// The counters in use, in no particular order.
    ///
    /// ```
    /// let mut ss = shardis_hotkey::SpaceSaving::new(4);
    /// ss.record(1, b"x");
    /// assert_eq!(ss.iter().count(), 1);
    /// ```
    pub fn iter(&self) -> impl Iterator<Item = Entry<'_>> + '_ {
        self.sorted.iter().filter_map(|s| {
            let c = self.counters.get(s.id as usize)?;
            Some(Entry {
                hash: c.hash,
                key: &c.key,
                count: s.count,
                error: c.error,
            })
        })
    }

    /// Counts one access of `key`, whose hash is `hash` (any fixed function of the key;
    /// equal keys must have equal hashes, unequal keys may share one).
    ///
    /// ```
    /// let mut ss = shardis_hotkey::SpaceSaving::new(4);
    /// ss.record(5, b"x");
    /// ss.record(5, b"y"); // same hash, different key: counted apart
    /// assert_eq!(ss.len(), 2);
    /// ```
    pub fn record(&mut self, hash: u64, key: &[u8]) {
        self.total = self.total.saturating_add(1);
        if let Some(i) = self.find(hash, key) {
            let pos = self.counters.get(i).map_or(usize::MAX, |c| c.pos as usize);
            self.increment(pos);
        } else if self.len < self.capacity {
            self.insert_new(hash, key);
        } else {
            self.replace_min(hash, key);
        }
    }

    fn find(&self, hash: u64, key: &[u8]) -> Option<usize> {
        let counters = &self.counters;
        let found = self.index.find(hash, |i| {
            counters
                .get(i as usize)
                .is_some_and(|c| c.hash == hash && c.key == key)
        });
        found.map(|i| i as usize)
    }

    fn insert_new(&mut self, hash: u64, key: &[u8]) {
        let i = self.len;
        if i == self.counters.len() {
            self.counters.push(Counter::default());
        }
        let pos = self.sorted.len();
        let Some(c) = self.counters.get_mut(i) else {
            return;
        };
        c.hash = hash;
        c.error = 0;
        c.pos = pos as u32;
        c.key.clear();
        c.key.extend_from_slice(key);
        self.len += 1;
        // Every count is >= 1, so a new count of 1 belongs at the end.
        self.sorted.push(Slot {
            count: 1,
            id: i as u32,
        });
        self.note_run_start(1, pos);
        self.index.insert(hash, i as u32);
    }

    fn replace_min(&mut self, hash: u64, key: &[u8]) {
        let last = self.sorted.len().wrapping_sub(1);
        let Some(&Slot { count, id }) = self.sorted.get(last) else {
            return;
        };
        let Some(old_hash) = self.counters.get(id as usize).map(|c| c.hash) else {
            return;
        };
        self.index.remove(old_hash, id);
        let Some(c) = self.counters.get_mut(id as usize) else {
            return;
        };
        c.hash = hash;
        c.error = count;
        c.key.clear();
        c.key.extend_from_slice(key);
        self.index.insert(hash, id);
        self.increment(last);
    }

    /// Adds one to the count at position `pos`, keeping the array sorted (descending).
    fn increment(&mut self, pos: usize) {
        let Some(&Slot { count, id }) = self.sorted.get(pos) else {
            return;
        };
        // The first position holding `count`: `pos` itself unless its left neighbour ties.
        let first = match pos.checked_sub(1).and_then(|p| self.sorted.get(p)) {
            Some(left) if left.count == count => self.run_start_of(count, pos),
            _ => pos,
        };
        if first != pos {
            let Some(&other) = self.sorted.get(first) else {
                return;
            };
            // Swap the two counters of equal count, then bump the one now at `first`.
            if let Some(s) = self.sorted.get_mut(pos) {
                *s = other;
            }
            if let Some(c) = self.counters.get_mut(other.id as usize) {
                c.pos = pos as u32;
            }
            if let Some(c) = self.counters.get_mut(id as usize) {
                c.pos = first as u32;
            }
        }
        if let Some(s) = self.sorted.get_mut(first) {
            *s = Slot {
                count: count.saturating_add(1),
                id,
            };
        }
        // `first` now ends the run of count + 1 (and may start it); the run of `count`, if any
        // is left, starts right after.
        self.note_run_start(count.saturating_add(1), first);
        if self.sorted.get(first + 1).is_some_and(|s| s.count == count) {
            self.note_run_start(count, first + 1);
        }
    }

    /// Records that the run of `count` starts at `pos` if it really does.
    fn note_run_start(&mut self, count: u64, pos: usize) {
        let starts = pos == 0 || self.sorted.get(pos - 1).is_some_and(|s| s.count > count);
        if let (true, Some(h)) = (starts, self.run_start.get_mut(count as usize)) {
            *h = pos as u32;
        }
    }

    /// First position of the run of `count`, which contains `pos`.
    fn run_start_of(&self, count: u64, pos: usize) -> usize {
        let hint = self
            .run_start
            .get(count as usize)
            .map_or(usize::MAX, |&h| h as usize);
        let valid = hint <= pos
            && self.sorted.get(hint).is_some_and(|s| s.count == count)
            && (hint == 0 || self.sorted.get(hint - 1).is_some_and(|s| s.count > count));
        if valid {
            return hint;
        }
        self.sorted
            .get(..pos)
            .map_or(pos, |s| s.partition_point(|x| x.count > count))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(ss: &SpaceSaving) {
        assert_eq!(ss.sorted.len(), ss.len);
        for (p, s) in ss.sorted.iter().enumerate() {
            assert_eq!(ss.counters[s.id as usize].pos as usize, p);
            if p > 0 {
                assert!(ss.sorted[p - 1].count >= s.count);
            }
        }
        for c in &ss.counters[..ss.len] {
            assert!(ss.find(c.hash, &c.key).is_some());
        }
        assert_eq!(ss.index.count(), ss.len);
    }

    #[test]
    fn finds_heavy_hitters_and_keeps_invariants() {
        let mut ss = SpaceSaving::new(16);
        let mut x = 1u64;
        for n in 0..20_000u64 {
            // Every third access is "hot"; the rest cycle over 1000 keys with colliding hashes.
            let (h, k) = if n % 3 == 0 {
                (42, 0u64)
            } else {
                ((x % 7) << 60, x % 1000 + 1)
            };
            ss.record(h, &k.to_le_bytes());
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            if n % 997 == 0 {
                check(&ss);
            }
        }
        check(&ss);
        let hot = ss
            .iter()
            .find(|e| e.key == 0u64.to_le_bytes())
            .expect("hot key kept");
        assert!(hot.count - hot.error <= 6667 && hot.count >= 6667);
    }

    #[test]
    fn bounded_under_unique_keys() {
        let mut ss = SpaceSaving::new(64);
        for n in 0..100_000u64 {
            ss.record(n.wrapping_mul(0x9E37_79B9_7F4A_7C15), &n.to_le_bytes());
        }
        check(&ss);
        assert_eq!(ss.len(), 64);
        assert!(ss.key_bytes() <= 64 * 16);
        // Lower bounds of unique keys stay at 1: none looks heavy.
        assert!(ss.iter().all(|e| e.count - e.error == 1));
    }
}
