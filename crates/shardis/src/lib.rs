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
//! In **ring mode** it shards keys over standalone Redis nodes with a consistent-hash ring
//! ([`ring`]) in-process, as twemproxy, mcrouter or go-redis Ring do, without the proxy hop:
//! native (xxh3) or ketama-compatible placement, optional hash tags, multi-key commands and
//! pipelines split per node, a heartbeat with a fail-fast or eject policy
//! ([`HealthPolicy`]), and membership changes at runtime ([`Client::add_node`],
//! [`Client::remove_node`], [`Client::set_weight`]) with optional online rebalancing
//! ([`RebalanceOptions`]) during which reads that miss on a key's new owner fall back to its
//! old one.
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use std::time::Duration;
//! use redis::AsyncCommands;
//! use shardis::{HealthPolicy, RebalanceOptions, RingNode};
//!
//! let mut client = shardis::Client::builder()
//!     .ring([
//!         RingNode::new("cache-a", "10.0.0.1:6379", 1),
//!         RingNode::new("cache-b", "10.0.0.2:6379", 1),
//!     ])
//!     .ring_health(HealthPolicy::Eject { retry_timeout: Duration::from_secs(30) })
//!     .ring_rebalance(RebalanceOptions::new().keys_per_second(5_000))
//!     .build()
//!     .await?;
//! let _: () = client.set("greeting", "hello").await?;
//! let change = client.add_node(RingNode::new("cache-c", "10.0.0.3:6379", 1)).await?;
//! if let Some(rebalance) = change.rebalance {
//!     let report = rebalance.wait().await?;
//! }
//! # Ok(()) }
//! ```
//!
//! With **one primary and its replicas** (no cluster mode), given as addresses
//! ([`Builder::replicated`]: a managed service's primary and reader endpoints fit) or named by
//! **Redis Sentinel** ([`Builder::sentinel`]), writes go to the primary, reads to replicas per
//! [`ReadFrom`], and a promotion is followed: the roles are checked with `ROLE`, and sentinels'
//! `+switch-master` announcements are listened to. [`Client::replication`] says where the
//! client routes now.
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let client = shardis::Client::builder()
//!     .sentinel("mymaster", ["10.0.0.1:26379", "10.0.0.2:26379", "10.0.0.3:26379"])
//!     .read_from(shardis::ReadFrom::PreferReplica)
//!     .build()
//!     .await?;
//! # Ok(()) }
//! ```
//!
//! ## TLS and credentials
//!
//! [`Builder::tls`] with [`TlsOptions`] (or a `rediss://` seed) puts every connection of the
//! client — shared, dedicated, subscribed, topology loads — on TLS (rustls): public roots or a
//! private CA, client certificates for mutual TLS, a server-name override, hostname checks on
//! unless turned off by a `danger_…` option. A refused handshake is [`Error::Tls`].
//! [`Builder::username`]/[`Builder::password`] log in with `AUTH`; a [`CredentialsProvider`]
//! ([`Builder::credentials_provider`]) is asked again for each new connection, for rotating
//! tokens. Refused credentials are [`Error::Auth`]; no secret ever shows in `Debug` or errors.
//!
//! ```no_run
//! # async fn run() -> Result<(), shardis::Error> {
//! let client = shardis::Client::builder()
//!     .cluster(["rediss://app:auth-token@cache.example.com:6379"])
//!     .tls(shardis::TlsOptions::new().ca_file("/etc/redis/ca.pem"))
//!     .build()
//!     .await?;
//! # Ok(()) }
//! ```
//!
//! The pure building blocks are re-exported: [`slots`] (slot math, topology parsing) and
//! [`ring`] (consistent hashing).
//!
//! ## Commands
//!
//! Every command the client accepts gets the reply one Redis would give over the whole
//! keyspace, or a typed refusal ([`Error::Unsupported`], [`Error::CrossSlot`]) that names the
//! alternative, before anything is sent:
//!
//! | class | examples | where it runs |
//! |---|---|---|
//! | keyed | `GET`, `SET`, `EVALSHA` | the node of its keys' slot (ring: node), shared connection |
//! | multi-key | `MGET`, `MSET`, `DEL`, `EXISTS` | split per slot (ring: node), reassembled in key order |
//! | whole keyspace | `DBSIZE`, `KEYS`, `FLUSHALL`, `SCRIPT LOAD`, `FUNCTION LOAD`, `CONFIG SET` | every primary or node, replies combined per Redis 7's policies; partial failure is [`Error::PartialFailure`] |
//! | iteration | `SCAN` | [`Client::scan`], a stream with a cursor per node |
//! | blocking | `BLPOP`, `XREAD BLOCK` | a dedicated connection, bounded by the command's own timeout |
//! | transactions | `redis::pipe().atomic()`, `WATCH` | one slot's node; [`Client::transaction`] for `WATCH` |
//! | dedicated | `WAIT`, connection state | [`Client::dedicated`] |
//! | pub/sub | `SUBSCRIBE`, `SSUBSCRIBE` | [`Client::subscribe`], [`Client::ssubscribe`] streams |
//! | refused | raw `MULTI`, `SELECT`, `HELLO`, `CLIENT TRACKING`, `AUTH`, `MONITOR`, bare `WAIT`, `SCAN` | [`Error::Unsupported`] naming the alternative |
//!
//! ## Layout
//!
//! - [`Client`] (`client.rs`) and [`Builder`] (`builder.rs`): the whole public surface of a
//!   client, each in one file.
//! - `engine/`: one routing engine for every mode: plans each command once, splits multi-key
//!   commands, groups pipelines in order, runs transactions and fan-outs, reassembles replies.
//! - `cluster/`: the slot-map router (redirect policy as a pure function, topology refresh).
//! - `ring_router/`: the hash-ring router (placement, health, membership, online rebalancing).
//! - `replicated/`: the primary+replicas router (roles, promotions, Sentinel).
//! - `hot/`: the hot-key layer over the engine (copies on distinct shards, near cache).
//! - `net/`: the node pool and shardis' own pipelined connection over plain TCP or TLS.
//! - `tls/`: [`TlsOptions`] and the rustls configuration it resolves to.
//! - `credentials.rs`: [`Credentials`] and the [`CredentialsProvider`] trait.
//! - `command/`: where each command keeps its keys, built in or learned from the server.
//!
//! See `ARCHITECTURE.md` at the repository root for the life of a command, file by file.
#![deny(missing_docs)]

mod builder;
mod client;
mod cluster;
mod command;
mod credentials;
mod dedicated;
mod engine;
mod error;
mod hot;
mod net;
mod pubsub;
mod replicated;
mod ring_router;
mod settings;
mod stats;
mod tls;
mod tracking;
mod url;

pub use builder::Builder;
pub use client::Client;
pub use credentials::{Credentials, CredentialsError, CredentialsProvider};
pub use dedicated::DedicatedConnection;
pub use engine::scan::ScanOptions;
pub use error::{Error, Result};
pub use hot::HotKeyOptions;
pub use net::BreakerOptions;
pub use pubsub::{Message, Subscription};
pub use replicated::Replication;
pub use ring_router::{
    HealthPolicy, MembershipChange, NodeState, RebalanceHandle, RebalanceOptions,
    RebalanceProgress, RebalanceReport, RingNode, RingNodeStatus, RingPlacement, RingStatus,
};
pub use settings::{DownPolicy, ReadFrom, Secret};
pub use shardis_hotkey::{DetectorConfig, HotKey};
pub use stats::Stats;
pub use tls::TlsOptions;
pub use tracking::{Invalidation, InvalidationStream, TRACKING_CLIENT_NAME};
pub use url::ConnectionUrl;

/// Redis Cluster slot math and topology model (the `shardis-slots` crate).
pub use shardis_slots as slots;

/// Hot-key detection and copy placement (the `shardis-hotkey` crate).
pub use shardis_hotkey as hotkey;

/// Consistent-hash ring (the `shardis-ring` crate).
pub use shardis_ring as ring;

/// The README's Rust examples, compiled as doctests so they cannot rot.
#[doc = include_str!("../../../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
