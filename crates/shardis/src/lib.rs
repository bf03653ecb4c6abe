//! # shardis
//!
//! A client for Redis used as a sharded cache. In **cluster mode** it routes every command by
//! its keys' slots, follows `MOVED`/`ASK` redirects, refreshes the topology in the background
//! without stalling callers, and reads from replicas when asked.
//!
//! [`Client`] implements [`redis::aio::ConnectionLike`], so everything in
//! [`redis::AsyncCommands`] and [`redis::pipe`] works on it unchanged.
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use redis::AsyncCommands;
//!
//! let mut client = shardis::Client::builder()
//!     .cluster(["127.0.0.1:7000", "127.0.0.1:7001"])
//!     .build()
//!     .await?;
//! let _: () = client.set("greeting", "hello").await?;
//! let greeting: String = client.get("greeting").await?;
//! # Ok(()) }
//! ```
//!
//! The pure building blocks are re-exported: [`slots`] (slot math, topology parsing) and
//! [`ring`] (consistent hashing).
#![deny(missing_docs)]

mod client;
mod cluster;
mod command;
mod config;
mod error;
mod pool;
mod ring_client;
mod stats;

pub use client::Client;
pub use config::{Builder, ReadFrom, Secret};
pub use error::{Error, Result};
pub use stats::Stats;

/// Redis Cluster slot math and topology model (the `shardis-slots` crate).
pub use shardis_slots as slots;

/// Consistent-hash ring (the `shardis-ring` crate).
pub use shardis_ring as ring;

impl Builder {
    /// Connects and returns the client: in cluster mode, loads the slot map from the first
    /// seeds that answer and starts the background topology refresher.
    ///
    /// Fails with [`Error::NoSeedReachable`] (naming every seed and what it said) when no seed
    /// gives a usable topology within the connect timeout.
    pub async fn build(self) -> Result<Client> {
        Client::from_builder(self).await
    }
}
