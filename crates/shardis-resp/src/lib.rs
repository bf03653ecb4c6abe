//! RESP2/RESP3 reply decoding for a Redis client's connection, without I/O.
//!
//! - [`Decoder`]: incremental. The connection appends what it reads to its
//!   buffer, calls [`Decoder::decode`], gets the complete [`Frame`]s and the
//!   number of bytes consumed, and drops those. Parse state (the aggregates
//!   still open) is kept between calls, so a multi-megabyte array reply that
//!   arrives in many reads costs time linear in its size: completed elements
//!   are never walked again, and a bulk string's body is only looked at once
//!   its whole length is there.
//! - [`Frame`]: a reply, or a RESP3 push (`>`), kept apart so that a push can
//!   never be handed to a caller waiting for a reply. RESP3 attributes are
//!   attached to the frame they precede (as redis-rs does), never a frame of
//!   their own.
//! - [`parse_frame`]: one frame off a whole buffer, stateless.
//! - [`same_reply`]: `Value` equality where NaN equals itself, for tests.
//!
//! Values are `redis::Value`, equal to what `redis::parse_redis_value` builds
//! from the same bytes; on malformed input this crate is stricter in a few
//! documented places ([`RespError`]), never more lenient, and returns a typed
//! error, never a panic. Nesting is limited to [`MAX_DEPTH`] without
//! recursion.
//!
//! ```
//! use shardis_resp::{Decoder, Frame};
//! use redis::Value;
//!
//! let mut decoder = Decoder::new();
//! let mut buf: Vec<u8> = Vec::new();
//! let mut frames = Vec::new();
//! // A RESP3 invalidation push, then a reply cut over two reads.
//! for read in [&b">2\r\n$10\r\ninvalidate\r\n*1\r\n$1\r\nk\r\n:4"[..], b"2\r\n"] {
//!     buf.extend_from_slice(read);
//!     let consumed = decoder.decode(&buf, &mut frames).unwrap();
//!     buf.drain(..consumed);
//! }
//! assert!(frames[0].is_push());
//! assert_eq!(frames[1], Frame::Reply(Value::Int(42)));
//! ```
#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod compare;
mod decoder;
mod error;
mod scan;
#[cfg(test)]
mod tests;

pub use compare::same_reply;
pub use decoder::{Decoder, Frame, parse_frame};
pub use error::RespError;

/// Deepest nesting accepted; the top-level frame is depth 1.
///
/// Equal to redis-rs' own limit, so that nothing accepted here is refused by
/// `redis::parse_redis_value`; it also bounds the decoder's stack.
pub const MAX_DEPTH: usize = 100;

/// Largest bulk / blob payload accepted: Redis' own `proto-max-bulk-len` default.
pub const MAX_BULK_LEN: usize = 512 * 1024 * 1024;
