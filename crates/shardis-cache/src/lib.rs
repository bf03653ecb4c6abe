//! # shardis-cache
//!
//! A typed cache in front of a database, over a [`shardis::Client`] (Redis Cluster or a ring
//! of standalone nodes, hot-key spreading on or off).
//!
//! ```no_run
//! # #[derive(Clone, serde::Serialize, serde::Deserialize)] struct Product { name: String }
//! # #[derive(Clone)] struct Db;
//! # impl Db { async fn load(&self, id: u64) -> Result<Product, std::io::Error> { Ok(Product { name: format!("product {id}") }) } }
//! # async fn run(db: Db) -> Result<(), Box<dyn std::error::Error>> {
//! use std::time::Duration;
//! use shardis_cache::{Cache, FillLock};
//!
//! let client = shardis::Client::builder().cluster(["127.0.0.1:7000"]).build().await?;
//! let cache = Cache::<Product>::builder(client)
//!     .namespace("product")
//!     .ttl(Duration::from_secs(300))
//!     .stale_for(Duration::from_secs(3600))
//!     .fill_lock(FillLock::default())
//!     .build()?;
//! let id = 42u64;
//! let product = cache.get_or_load(&id, move || async move { db.load(id).await }).await?;
//! # Ok(()) }
//! ```
//!
//! What it guarantees:
//! - **One load per key per process at a time** (single-flight): concurrent misses share one
//!   loader call and its result (errors too). The load runs in its own task, so dropping the
//!   caller that started it does not cancel it for the others.
//! - **One load per key in the fleet at a time** with a [`FillLock`]: `SET NX PX` with a random
//!   token, released by its holder only (compare-and-delete); the others poll for the value
//!   with bounded backoff, then follow [`LockTimeout`].
//! - **No stale fill after an invalidation** (leases, as in Facebook's memcache): each fill
//!   reads the key's version before loading and stores only if it is unchanged, atomically in
//!   one script. [`Cache::invalidate`] bumps the version, so every fill that began before it
//!   stores nothing, and no call that begins after it gets the older value.
//! - **O(1) invalidation of a namespace** ([`Cache::invalidate_all`]): a namespace version is
//!   part of every key.
//! - **Early refresh** (XFetch): a fresh hit is refreshed in the background with a probability
//!   that rises as expiry nears, scaled by how long the last load took.
//! - **Stale-while-revalidate and fail-safe**: past the TTL a value is kept for
//!   [`stale_for`](Builder::stale_for) more; it is served while one background refresh runs,
//!   or, when the loader fails or exceeds the soft timeout, in place of the error; past that
//!   maximum staleness the error reaches the caller.
//! - **Undecodable entries are misses** (counted in `shardis_cache_decode_failures_total`, logged
//!   with `tracing`), never a panic and never a value.
//! - **Redis down**: the loader is called (local single-flight still applies), unless
//!   [`RedisDown::Fail`].
#![deny(missing_docs)]

mod batch;
mod cache;
mod config;
mod envelope;
mod error;
mod l1;
mod metrics;
mod raw;
mod scripts;
mod write_behind;

pub use batch::{WarmOptions, WarmProgress, WarmReport};
pub use cache::{Cache, Fetched, Source};
pub use config::{Builder, FillLock, LockTimeout, RedisDown};
pub use envelope::{Codec, Compression, DecodeError, Meta, decode, encode, meta};
pub use error::{BoxError, Error, Result};
pub use l1::{HotIds, L1Options};
pub use metrics::CacheStats;
pub use write_behind::{
    Backpressure, Change, DeadLetter, Durability, Queued, ShutdownReport, Sink, WriteBehind,
    WriteBehindBuilder, WriteBehindConfig, WriteBehindStats, partition_of,
};
