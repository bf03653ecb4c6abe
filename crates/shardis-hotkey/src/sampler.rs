//! Per-thread sampling of accesses: a countdown with random gaps.
//!
//! The request path must not pay for more than a decrement when an access is not sampled, so
//! the sampler is a thread-local countdown. When it reaches zero the access is sampled and a new
//! gap is drawn from a per-thread xorshift generator, uniform in `1..2·n` (mean `n`). The gap is
//! random, not fixed, so a caller that cycles through a few keys cannot alias with the sampler,
//! and it is independent of the key hash, so no key is systematically skipped.
//!
//! The countdown is shared by all detectors used on a thread: each access, whichever detector
//! it goes to, is sampled with probability about `1/n`, which keeps every detector's shares
//! right. A gap longer than the caller's own `2·n` (left by a detector with a rarer rate) is
//! redrawn, so a rarely sampling detector cannot starve another one on the same thread.

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};

thread_local! {
    // 0 means "not initialised yet" for both cells.
    static COUNTDOWN: Cell<u32> = const { Cell::new(0) };
    static RNG: Cell<u64> = const { Cell::new(0) };
}

/// Seeds and thread slots for new threads: a Weyl sequence, so that threads differ.
static NEXT_THREAD: AtomicU64 = AtomicU64::new(0);

const GOLDEN: u64 = 0x9E37_79B9_7F4A_7C15;

/// Whether this access (on the calling thread) is sampled, with mean rate `1/every`.
///
/// `every <= 1` samples everything.
///
/// ```
/// let sampled = (0..16_000).filter(|_| shardis_hotkey::sampler::should_sample(16)).count();
/// assert!((600..1400).contains(&sampled), "{sampled}");
/// assert!(shardis_hotkey::sampler::should_sample(1));
/// ```
#[inline]
pub fn should_sample(every: u32) -> bool {
    if every <= 1 {
        return true;
    }
    // Gaps are < 2·every; `every <= 2^30` after normalization, and larger values only make
    // the limit saturate.
    let limit = every.saturating_mul(2);
    COUNTDOWN.with(|c| {
        let left = c.get();
        if left > 1 && left < limit {
            c.set(left - 1);
            false
        } else {
            // Cold path: sample when the countdown ends; otherwise (first use on this thread,
            // or a gap drawn for a rarer rate) draw a gap for this rate.
            c.set(next_gap(every));
            left == 1
        }
    })
}

#[cold]
fn next_gap(every: u32) -> u32 {
    let r = next_random();
    // Uniform in 1..=2·every-1; `every <= 2^30` (see DetectorConfig::normalized) keeps it in u32.
    let span = u64::from(every.min(1 << 30)) * 2 - 1;
    u32::try_from(r % span + 1).unwrap_or(u32::MAX)
}

/// A per-thread pseudo-random number (xorshift64*), seeded per thread.
fn next_random() -> u64 {
    RNG.with(|s| {
        let mut x = s.get();
        if x == 0 {
            x = thread_seed();
        }
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        s.set(x);
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    })
}

fn thread_seed() -> u64 {
    let n = NEXT_THREAD.fetch_add(1, Ordering::Relaxed);
    // splitmix64 of the thread's ordinal: never 0 in practice, forced non-zero anyway.
    let mut z = n.wrapping_add(1).wrapping_mul(GOLDEN);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    (z ^ (z >> 31)) | 1
}

thread_local! {
    static SLOT: Cell<u32> = const { Cell::new(u32::MAX) };
}
static NEXT_SLOT: AtomicU64 = AtomicU64::new(0);

/// A small number fixed for the calling thread, assigned round-robin to threads as they first
/// ask: which table the thread records into.
///
/// ```
/// let a = shardis_hotkey::sampler::thread_slot();
/// assert_eq!(a, shardis_hotkey::sampler::thread_slot());
/// ```
#[inline]
pub fn thread_slot() -> usize {
    SLOT.with(|s| {
        let v = s.get();
        if v != u32::MAX {
            return v as usize;
        }
        // Wraps after 2^32 threads, which only costs balance.
        let v = (NEXT_SLOT.fetch_add(1, Ordering::Relaxed) % u64::from(u32::MAX)) as u32;
        s.set(v);
        v as usize
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alternating_keys_are_both_sampled() {
        // A fixed period of 16 would always pick the same one of two alternating keys.
        let mut hits = [0u32; 2];
        for i in 0..64_000 {
            if should_sample(16) {
                hits[i % 2] += 1;
            }
        }
        assert!(hits[0] > 1500 && hits[1] > 1500, "{hits:?}");
    }

    #[test]
    fn a_rare_rate_does_not_starve_a_frequent_one() {
        let _ = should_sample(1 << 30); // leaves a gap of up to 2^31 on this thread
        let sampled = (0..16_000).filter(|_| should_sample(16)).count();
        assert!((600..1400).contains(&sampled), "{sampled}");
    }

    #[test]
    fn huge_rate_does_not_overflow() {
        for _ in 0..1000 {
            let _ = should_sample(u32::MAX);
        }
    }

    #[test]
    fn threads_get_different_slots() {
        let a = thread_slot();
        let b = std::thread::spawn(thread_slot).join().unwrap_or(a);
        assert_ne!(a, b);
    }
}
