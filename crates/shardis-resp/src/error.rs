//! Why bytes from a server can never be a valid reply.

use crate::MAX_DEPTH;

/// Why bytes from a server can never be a valid reply; the stream cannot
/// resynchronise and the connection must be closed.
///
/// Everything refused here is refused by `redis::parse_redis_value` too,
/// except these, which redis-rs accepts and this decoder refuses on purpose:
/// negative lengths other than `-1` (redis-rs reads any as nil, or waits for
/// ever on a negative blob length), payloads above [`MAX_BULK_LEN`](crate::MAX_BULK_LEN), and
/// integer/length lines longer than 64 bytes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RespError {
    /// The first byte of a frame is not a RESP2/RESP3 type byte.
    #[error("unknown RESP type byte 0x{0:02x}")]
    UnknownType(u8),
    /// A length is negative (only `-1`, the RESP2 nil, is allowed where a
    /// nil exists at all).
    #[error("invalid RESP length {0}")]
    BadLength(i64),
    /// An integer reply or a length is not an `i64`.
    #[error("RESP integer or length line is not a valid i64")]
    BadInteger,
    /// A bulk or blob payload is larger than [`MAX_BULK_LEN`](crate::MAX_BULK_LEN).
    #[error("RESP payload of {len} bytes exceeds the limit of {max}")]
    TooLarge {
        /// The claimed length.
        len: i64,
        /// The limit.
        max: usize,
    },
    /// Aggregates nested deeper than [`MAX_DEPTH`].
    #[error("RESP reply nested deeper than {} levels", MAX_DEPTH)]
    TooDeep,
    /// A bulk or blob payload is not followed by `\r\n`.
    #[error("RESP payload not followed by \\r\\n")]
    BadLineEnding,
    /// A line (simple string, null, double, boolean) is not UTF-8 (redis-rs
    /// is strict there too).
    #[error("RESP line is not valid UTF-8")]
    BadUtf8,
    /// A RESP3 double (`,`) that is not a number.
    #[error("RESP3 double is not a number")]
    BadDouble,
    /// A RESP3 boolean (`#`) that is neither `t` nor `f`.
    #[error("RESP3 boolean is neither t nor f")]
    BadBoolean,
    /// A RESP3 verbatim string (`=`) without the `:` after its format.
    #[error("RESP3 verbatim string has no format prefix")]
    BadVerbatim,
    /// A RESP3 push (`>`) whose first element is not its kind as a string.
    #[error("RESP3 push does not start with its kind")]
    BadPush,
    /// redis-rs refused an error line, blob error or big number (its
    /// message, truncated).
    #[error("invalid RESP frame: {0}")]
    Invalid(String),
}

/// Longest redis-rs error text copied into [`RespError::Invalid`]: its parse
/// errors can quote input bytes, and a message must not carry a whole reply.
pub(crate) const MAX_MESSAGE: usize = 160;

/// Cuts `message` to [`MAX_MESSAGE`] bytes on a character boundary.
pub(crate) fn truncated(mut message: String) -> String {
    if message.len() > MAX_MESSAGE {
        let mut cut = MAX_MESSAGE;
        while !message.is_char_boundary(cut) {
            cut -= 1;
        }
        message.truncate(cut);
        message.push('…');
    }
    message
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_cut_on_char_boundaries() {
        assert_eq!(truncated("é".repeat(200)).chars().count(), 81);
        assert_eq!(truncated("short".into()), "short");
    }
}
