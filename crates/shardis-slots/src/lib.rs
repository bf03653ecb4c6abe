//! Redis Cluster slot maps, without I/O.
//!
//! - [`key_slot`]: key → hash slot (CRC16-XMODEM of the hash tag, 14 bits).
//! - [`parse_cluster_slots`], [`parse_cluster_shards`], [`parse_cluster_nodes`]:
//!   a node's topology reply → a validated, normalised [`Topology`]. Malformed
//!   replies are rejected with a [`TopologyError`] naming the element; nothing
//!   is silently dropped or promoted, and no parser returns an empty map.
//! - [`SlotMap`]: O(1) slot → shard lookup, patched by
//!   [`SlotMap::with_slot_moved`] on `MOVED`.
//! - [`parse_redirect`]: `MOVED`/`ASK` error lines → [`Redirect`].
//! - [`choose_view`]: picks one topology among several nodes' views.
//!
//! Replies reach these parsers as `redis::Value`s; the bytes → `Value` step
//! (the connection's RESP decoder) is the `shardis-resp` crate.
//!
//! Decisions worth knowing (details on each item):
//! - A reply that assigns no slot (`*0` from a fresh node, or SHARDS listing
//!   only slot-less shards) is [`TopologyError::NoSlots`], never an empty map;
//!   [`choose_view`] also ignores empty views and refuses to shrink a previous
//!   map without a strict majority.
//! - `""`/NULL/wildcard endpoints mean the host the command was sent to;
//!   `"?"` uses the `ip` metadata if present, else the node has
//!   `endpoint: None`. A primary without endpoint keeps its slots; a replica
//!   is never promoted in its place.
//! - Port 0 means "no address" (`endpoint: None`), not a malformed reply;
//!   ports outside 0..=65535 are errors.
//!
//! ```
//! use shardis_slots::{key_slot, parse_cluster_slots, parse_redirect, Endpoint, SlotMap};
//! let reply = redis::parse_redis_value(
//!     b"*1\r\n*3\r\n:0\r\n:16383\r\n*2\r\n$9\r\n127.0.0.1\r\n:7000\r\n").unwrap();
//! let asked = Endpoint::new("127.0.0.1", 7000);
//! let map = SlotMap::new(parse_cluster_slots(&reply, &asked).unwrap());
//! let owner = map.shard(key_slot(b"foo")).unwrap();
//! assert_eq!(owner.primary.endpoint.as_ref().unwrap().to_string(), "127.0.0.1:7000");
//!
//! let moved = parse_redirect("MOVED 12182 127.0.0.1:7001").unwrap();
//! let map = map.with_slot_moved(moved.slot, &moved.resolve(&asked).unwrap());
//! assert_eq!(map.shard(12182).unwrap().primary.endpoint.as_ref().unwrap().port, 7001);
//! ```
#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod consensus;
mod endpoint;
mod error;
mod node;
mod parse;
mod range;
mod redirect;
mod slot;
mod slot_map;
mod topology;

pub use consensus::{ViewChoice, choose_view, choose_view_with_epochs};
pub use endpoint::Endpoint;
pub use error::{ConsensusError, EndpointError, RedirectError, TopologyError};
pub use node::{Health, Node, Role};
pub use parse::{
    cluster_nodes_config_epoch, parse_cluster_nodes, parse_cluster_nodes_text,
    parse_cluster_shards, parse_cluster_shards_tls, parse_cluster_slots,
};
pub use range::SlotRange;
pub use redirect::{Redirect, RedirectKind, RedirectTarget, parse_redirect, parse_redirect_parts};
pub use slot::{MAX_SLOT, SLOT_COUNT, crc16, hash_tag, key_slot};
pub use slot_map::SlotMap;
pub use topology::{Shard, Topology};
