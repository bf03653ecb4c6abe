//! Each thread's window onto L1: the entries it read lately, direct-mapped by the id's hash,
//! served without writing to memory another core uses.
//!
//! **Why.** A read of the shared store takes a shard's read lock: an atomic write to a cache
//! line every reading core writes. With two cores reading, moving that line between them was
//! most of the store's cost on an L1 hit (`perf` on the `cache-peers` L1-on cell), and it grows
//! with the cores. A window hit reads the thread's own slot, the id's stripe generation and the
//! global generation (lines only invalidations write), and clones the value.
//!
//! **Why a copy is never served past its invalidation.** A slot keeps the stripe generation
//! read *before* its entry was read from the store, and is served only while that generation
//! has not moved. Every removal from the store made for correctness bumps the stripe *after*
//! it removes (an invalidation bumps before and after; a fill that undoes itself bumps after),
//! so a reader that could still have found the removed entry holds a generation that has since
//! moved. A flush or a namespace change is caught by the entry's own checks (its fill
//! generation, its namespace version), exactly as in the store; an entry the store evicted for
//! room is still a correct copy.
//!
//! **Memory.** A thread keeps at most [`MAX_SLOTS`] slots per cache (16 bytes each), allocated
//! at its first read; a slot may keep an entry the store evicted alive until the slot is
//! reused.

use std::sync::Arc;

use super::Entry;

/// The most slots a thread's window has (the window has as many as `max_entries`, rounded up
/// to a power of two, below that).
pub(super) const MAX_SLOTS: usize = 4096;

/// A store entry this thread read, with the stripe generation read before it.
pub(super) struct Seen<V> {
    pub(super) stripe_gen: u64,
    pub(super) entry: Arc<Entry<V>>,
}

/// One thread's window.
pub(super) struct Window<V> {
    slots: Box<[Option<Seen<V>>]>,
    /// 64 minus log2 of the slot count: the top bits of the mixed hash pick the slot.
    shift: u32,
}

impl<V> Window<V> {
    /// A window of `slots` slots ([`slots_for`] makes it a power of two).
    pub(super) fn new(slots: usize) -> Self {
        // At least one: an empty window would shift by 64 and index past its end.
        let slots = slots.max(1);
        Window {
            slots: (0..slots).map(|_| None).collect(),
            shift: 64 - slots.trailing_zeros(),
        }
    }

    /// The slot of an id whose (FNV-1a) hash is `hash`. FNV's high bits barely vary between
    /// short ids, so the hash is mixed first (Fibonacci hashing: the top bits of the product
    /// with 2^64 / phi depend on every bit of the hash).
    pub(super) fn slot(&mut self, hash: u64) -> &mut Option<Seen<V>> {
        let mixed = hash.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        // `checked_shr`: a one-slot window shifts by 64, which picks slot 0.
        let index = mixed.checked_shr(self.shift).unwrap_or(0) as usize;
        &mut self.slots[index]
    }
}

/// The window size for an L1 of `max_entries` entries.
pub(super) fn slots_for(max_entries: u64) -> usize {
    let wanted = usize::try_from(max_entries).unwrap_or(MAX_SLOTS);
    wanted.clamp(1, MAX_SLOTS).next_power_of_two()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_sizes_are_powers_of_two_within_bounds() {
        assert_eq!(slots_for(0), 1);
        assert_eq!(slots_for(1), 1);
        assert_eq!(slots_for(3), 4);
        assert_eq!(slots_for(10_000), MAX_SLOTS);
        assert_eq!(slots_for(u64::MAX), MAX_SLOTS);
        for size in [1, 8, MAX_SLOTS] {
            let mut w: Window<u8> = Window::new(size);
            for hash in [0, u64::MAX, 7 << 32, 1] {
                assert!(w.slot(hash).is_none());
            }
        }
    }

    #[test]
    fn short_ids_spread_over_the_window() {
        // 1,000 decimal ids in 4,096 slots: at random, ~890 slots hold exactly one.
        let mut w: Window<u8> = Window::new(MAX_SLOTS);
        let mut used = std::collections::HashSet::new();
        for id in 0..1000 {
            let slot: *const Option<Seen<u8>> = w.slot(super::super::id_hash(&id.to_string()));
            used.insert(slot as usize);
        }
        assert!(
            used.len() > 850,
            "{} distinct slots of 1,000 ids",
            used.len()
        );
    }
}
