//! Hot keys: find the keys that take a large share of the reads, and spread them over copies
//! on distinct shards. Pure: no I/O, no threads, no clocks (time is passed in).
//!
//! - [`Detector`]: a sampled ([`sampler`]) Space-Saving ([`SpaceSaving`]) heavy-hitter
//!   detector. Recording an access usually costs one thread-local decrement; a sampled one
//!   goes into a per-thread table behind a `try_lock` (never waits). [`Detector::tick`], called
//!   every 100–250 ms, merges the tables into exponentially decayed counts, decides what is hot
//!   with hysteresis, and publishes an immutable [`HotSet`] that [`Detector::is_hot`] reads
//!   without a lock. Keys and prefixes can also be declared hot.
//! - [`cluster_copies`], [`ring_copies`], [`copies_with`] ([`placement`]): deterministic copy names
//!   ([`copy_name`]) that land on distinct shards of the current topology.
//!
//! How a client wires it:
//!
//! ```
//! use std::time::{Duration, Instant};
//! use shardis_hotkey::{cluster_copies, key_hash, Detector, DetectorConfig};
//!
//! let detector = Detector::new(DetectorConfig::default());
//! let shard_of_slot = |slot: u16| Some(usize::from(slot) * 3 / 16384); // from the SlotMap
//!
//! // Per read command:
//! let key = b"product:42";
//! let hash = key_hash(key);
//! detector.record(hash, key);
//! let target = if detector.is_hot(hash, key) {
//!     // Cache this per (key, topology); pick one copy per read, e.g. at random.
//!     let copies = cluster_copies(key, 3, shard_of_slot);
//!     let pick: usize = 7; // any per-read random number, so reads spread over the copies
//!     copies[pick % copies.len()].clone()
//! } else {
//!     key.to_vec()
//! };
//! # let _ = target;
//!
//! // Every 100–250 ms, from one background task:
//! detector.tick(Instant::now());
//! for hot in detector.hot_keys() {
//!     let _ = (hot.key, hot.rate_per_sec, hot.declared);
//! }
//! # let _ = Duration::ZERO;
//! ```
#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod config;
mod detector;
mod hot_set;
mod index;
pub mod placement;
pub mod sampler;
mod space_saving;
mod tracker;

pub use config::DetectorConfig;
pub use detector::{Detector, DetectorStats, HotKey};
pub use hot_set::HotSet;
pub use placement::{
    COPY_MARKER, cluster_copies, copies_with, copy_name, ring_copies, salted_copies,
};
pub use space_saving::{Entry, SpaceSaving};

/// The default key hash: xxh3-64 (seed 0), the same as `shardis_ring::Ring::hash_key`, so a
/// ring client passes the hash it routed with. Cluster clients compute it once per command
/// (the 14-bit slot is too weak, and all keys with one hash tag share it).
///
/// ```
/// assert_eq!(shardis_hotkey::key_hash(b"k"), shardis_ring::Ring::hash_key(b"k"));
/// ```
#[inline]
pub fn key_hash(key: &[u8]) -> u64 {
    shardis_ring::Ring::hash_key(key)
}
