//! A tiny open-addressing index from a 64-bit key hash to a `u32` id, shared by the
//! Space-Saving tables and the hot set.
//!
//! Linear probing from a Fibonacci-hashed home slot (callers' hashes may be weak in the low
//! bits); the load factor is at most 1/2, so a probe for an absent hash usually ends at once
//! and always ends at an empty slot. Removal shifts the rest of the probe run back instead of
//! leaving tombstones, which would pile up under the constant churn of a Space-Saving table.
//! Each slot keeps the hash beside the id, so probing and shifting never leave the index;
//! ids sharing a hash are told apart by the caller's `is_match`.

const EMPTY: u32 = u32::MAX;

#[derive(Debug, Clone, Default)]
pub(crate) struct HashIndex {
    /// `(hash, id)` or `(_, EMPTY)`; empty or a power of two long (at least 8).
    slots: Box<[(u64, u32)]>,
    shift: u32,
}

impl HashIndex {
    /// An index for up to `ids` ids (0 gives an index that finds nothing).
    pub fn with_capacity(ids: usize) -> Self {
        if ids == 0 {
            return HashIndex::default();
        }
        let n = ids.saturating_mul(2).next_power_of_two().max(8);
        HashIndex {
            slots: vec![(0, EMPTY); n].into_boxed_slice(),
            shift: 64 - n.trailing_zeros(),
        }
    }

    #[inline]
    fn home(&self, hash: u64) -> usize {
        (hash.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> self.shift) as usize
    }

    #[inline]
    fn mask(&self) -> usize {
        self.slots.len().wrapping_sub(1)
    }

    /// The first id stored under `hash` for which `is_match` holds.
    #[inline]
    pub fn find(&self, hash: u64, is_match: impl Fn(u32) -> bool) -> Option<u32> {
        if self.slots.is_empty() {
            return None;
        }
        let mut pos = self.home(hash);
        for _ in 0..self.slots.len() {
            let (h, id) = *self.slots.get(pos)?;
            if id == EMPTY {
                return None;
            }
            if h == hash && is_match(id) {
                return Some(id);
            }
            pos = (pos + 1) & self.mask();
        }
        None
    }

    /// Adds `id` under `hash` (the caller keeps at most `ids` of them).
    pub fn insert(&mut self, hash: u64, id: u32) {
        let (mut pos, mask) = (self.home(hash), self.mask());
        for _ in 0..self.slots.len() {
            match self.slots.get_mut(pos) {
                Some(s) if s.1 == EMPTY => {
                    *s = (hash, id);
                    return;
                }
                Some(_) => pos = (pos + 1) & mask,
                None => return,
            }
        }
    }

    /// Removes `id` (inserted under `hash`).
    pub fn remove(&mut self, hash: u64, id: u32) {
        let (mut pos, mask) = (self.home(hash), self.mask());
        let mut hole = None;
        for _ in 0..self.slots.len() {
            match self.slots.get(pos) {
                Some(&(_, v)) if v == id => {
                    hole = Some(pos);
                    break;
                }
                Some(&(_, EMPTY)) | None => return,
                Some(_) => pos = (pos + 1) & mask,
            }
        }
        let Some(mut hole) = hole else { return };
        let mut next = (hole + 1) & mask;
        for _ in 0..self.slots.len() {
            let Some(&v) = self.slots.get(next) else {
                return;
            };
            if v.1 == EMPTY {
                break;
            }
            let home = self.home(v.0);
            // `v` may fill the hole unless its home lies cyclically in (hole, next].
            if (next.wrapping_sub(home) & mask) >= (next.wrapping_sub(hole) & mask) {
                if let Some(s) = self.slots.get_mut(hole) {
                    *s = v;
                }
                hole = next;
            }
            next = (next + 1) & mask;
        }
        if let Some(s) = self.slots.get_mut(hole) {
            *s = (0, EMPTY);
        }
    }

    /// Forgets every id, keeping the allocation.
    pub fn clear(&mut self) {
        self.slots.fill((0, EMPTY));
    }

    /// Number of ids held (a scan: for tests and assertions).
    #[cfg(test)]
    pub fn count(&self) -> usize {
        self.slots.iter().filter(|v| v.1 != EMPTY).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insert_find_remove_with_collisions() {
        // ids 0..40, hashes with many collisions; remove every other, check the rest.
        let hash = |id: u32| u64::from(id % 5) << 61;
        let mut ix = HashIndex::with_capacity(40);
        for id in 0..40 {
            ix.insert(hash(id), id);
        }
        for id in (0..40).step_by(2) {
            ix.remove(hash(id), id);
        }
        assert_eq!(ix.count(), 20);
        for id in 0..40 {
            assert_eq!(
                ix.find(hash(id), |v| v == id).is_some(),
                id % 2 == 1,
                "{id}"
            );
        }
        ix.clear();
        assert_eq!(ix.count(), 0);
        assert!(HashIndex::default().find(1, |_| true).is_none());
    }
}
