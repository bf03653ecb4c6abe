//! The published set of hot keys: immutable, checked on every command without a lock.
//!
//! A tiny open-addressing index of the key hashes (load <= 1/2) answers "not hot" for almost
//! every key after one probe; the key bytes are then compared, so two keys that share a hash
//! (or a table slot) are never confused. Declared prefixes are few and checked by a scan.

use crate::index::HashIndex;

/// An immutable set of hot keys (by hash and bytes) and hot prefixes.
///
/// A [`Detector`](crate::Detector) publishes a new one whenever the hot set changes; get it
/// with [`Detector::hot_set`](crate::Detector::hot_set). Two loads returning the same `Arc`
/// (`Arc::ptr_eq`) mean nothing changed, which lets a client cache per-key decisions.
///
/// ```
/// use shardis_hotkey::{key_hash, HotSet};
///
/// let set = HotSet::new(vec![(key_hash(b"a"), b"a".to_vec())], vec![b"tmp:".to_vec()]);
/// assert!(set.contains(key_hash(b"a"), b"a"));
/// assert!(set.contains(key_hash(b"tmp:1"), b"tmp:1"));
/// assert!(!set.contains(key_hash(b"b"), b"b"));
/// assert_eq!(set.len(), 1);
/// ```
#[derive(Debug, Clone, Default)]
pub struct HotSet {
    /// Key hash → index into `keys`.
    index: HashIndex,
    keys: Vec<(u64, Box<[u8]>)>,
    prefixes: Vec<Box<[u8]>>,
}

impl HotSet {
    /// A set of exact `(hash, key)` pairs and key prefixes. Duplicates are kept once.
    ///
    /// ```
    /// let set = shardis_hotkey::HotSet::new(vec![(1, b"k".to_vec()), (1, b"k".to_vec())], vec![]);
    /// assert_eq!(set.len(), 1);
    /// ```
    pub fn new(mut keys: Vec<(u64, Vec<u8>)>, mut prefixes: Vec<Vec<u8>>) -> Self {
        keys.sort_unstable();
        keys.dedup();
        keys.truncate(u32::MAX as usize - 1);
        prefixes.sort_unstable();
        prefixes.dedup();
        let keys: Vec<(u64, Box<[u8]>)> = keys
            .into_iter()
            .map(|(h, k)| (h, k.into_boxed_slice()))
            .collect();
        let mut index = HashIndex::with_capacity(keys.len());
        for (i, (h, _)) in keys.iter().enumerate() {
            index.insert(*h, i as u32);
        }
        HotSet {
            index,
            keys,
            prefixes: prefixes.into_iter().map(Vec::into_boxed_slice).collect(),
        }
    }

    /// Whether `key` (whose hash is `hash`) is in the set, exactly or by prefix.
    ///
    /// ```
    /// use shardis_hotkey::HotSet;
    /// // Same hash, different bytes: no false positive.
    /// let set = HotSet::new(vec![(9, b"a".to_vec())], vec![]);
    /// assert!(set.contains(9, b"a"));
    /// assert!(!set.contains(9, b"b"));
    /// ```
    #[inline]
    pub fn contains(&self, hash: u64, key: &[u8]) -> bool {
        self.index
            .find(hash, |i| {
                self.keys
                    .get(i as usize)
                    .is_some_and(|(h, k)| *h == hash && **k == *key)
            })
            .is_some()
            || (!self.prefixes.is_empty() && self.matches_prefix(key))
    }

    /// Whether `key` starts with one of the set's prefixes.
    ///
    /// ```
    /// let set = shardis_hotkey::HotSet::new(vec![], vec![b"p:".to_vec()]);
    /// assert!(set.matches_prefix(b"p:1") && !set.matches_prefix(b"q:1"));
    /// ```
    pub fn matches_prefix(&self, key: &[u8]) -> bool {
        self.prefixes.iter().any(|p| key.starts_with(p))
    }

    /// Number of exact keys (prefixes not counted).
    ///
    /// ```
    /// assert_eq!(shardis_hotkey::HotSet::default().len(), 0);
    /// ```
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether the set holds neither keys nor prefixes: then nothing is hot.
    ///
    /// ```
    /// assert!(shardis_hotkey::HotSet::default().is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty() && self.prefixes.is_empty()
    }

    /// The exact keys, sorted by hash.
    ///
    /// ```
    /// let set = shardis_hotkey::HotSet::new(vec![(2, b"b".to_vec()), (1, b"a".to_vec())], vec![]);
    /// assert_eq!(set.keys().collect::<Vec<_>>(), [&b"a"[..], b"b"]);
    /// ```
    pub fn keys(&self) -> impl Iterator<Item = &[u8]> + '_ {
        self.keys.iter().map(|(_, k)| &**k)
    }

    /// The prefixes, sorted.
    ///
    /// ```
    /// let set = shardis_hotkey::HotSet::new(vec![], vec![b"p:".to_vec()]);
    /// assert_eq!(set.prefixes().collect::<Vec<_>>(), [&b"p:"[..]]);
    /// ```
    pub fn prefixes(&self) -> impl Iterator<Item = &[u8]> + '_ {
        self.prefixes.iter().map(|p| &**p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colliding_hashes_never_give_false_positives() {
        // 50 keys all with hash 7: one long probe run, still exact by bytes.
        let keys: Vec<_> = (0..50u32)
            .map(|i| (7u64, i.to_le_bytes().to_vec()))
            .collect();
        let set = HotSet::new(keys, vec![]);
        for i in 0..50u32 {
            assert!(set.contains(7, &i.to_le_bytes()));
        }
        for i in 50..200u32 {
            assert!(!set.contains(7, &i.to_le_bytes()));
            assert!(!set.contains(u64::from(i), &i.to_le_bytes()));
        }
        // Right bytes, wrong hash: not found either (the hash is part of the contract).
        assert!(!set.contains(8, &0u32.to_le_bytes()));
    }

    #[test]
    fn empty_set_and_empty_prefix() {
        assert!(!HotSet::default().contains(0, b""));
        let all = HotSet::new(vec![], vec![Vec::new()]);
        assert!(all.contains(1, b"anything") && !all.is_empty());
    }
}
