//! What a tracking connection receives once it is subscribed, read once from the RESP frame
//! (RESP2, invalidations redirected to the connection itself). Pure, tested from raw bytes.
//!
//! | frame | meaning |
//! |---|---|
//! | `message __redis__:invalidate [k1, k2...]` | those keys changed (or expired, or were evicted) |
//! | `message __redis__:invalidate (nil)` | the node was flushed (`FLUSHALL`/`FLUSHDB`): every key changed |
//! | `pong ""` | the answer to the heartbeat `PING` |
//! | `subscribe __redis__:invalidate 1` | the confirmation of the `SUBSCRIBE` |

use redis::Value;

/// The channel Redis publishes redirected invalidations on (RESP2).
pub(crate) const CHANNEL: &[u8] = b"__redis__:invalidate";

/// One frame of a tracking connection.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Frame {
    /// These keys changed.
    Keys(Vec<Vec<u8>>),
    /// Every key of the node changed (a flush).
    Flush,
    /// The heartbeat's answer.
    Pong,
    /// The `SUBSCRIBE` confirmation.
    Subscribed,
    /// Anything else: an error, or a frame a tracking connection never gets. The connection is
    /// not what it should be and must be dropped (with its invalidations presumed lost).
    Unexpected(String),
}

/// Reads one frame.
pub(crate) fn classify(value: Value) -> Frame {
    let items = match value {
        Value::Array(items) => items,
        Value::ServerError(e) => {
            return Frame::Unexpected(format!(
                "error {} {}",
                e.code(),
                e.details().unwrap_or_default()
            ));
        }
        other => return Frame::Unexpected(format!("{other:?}")),
    };
    let word = match items.first() {
        Some(Value::BulkString(word)) => word.to_ascii_lowercase(),
        other => return Frame::Unexpected(format!("a frame starting with {other:?}")),
    };
    match (word.as_slice(), &items[1..]) {
        (b"message", [Value::BulkString(channel), payload]) if channel == CHANNEL => {
            match payload {
                Value::Nil => Frame::Flush,
                Value::Array(keys) => {
                    let mut out = Vec::with_capacity(keys.len());
                    for key in keys {
                        match key {
                            Value::BulkString(k) => out.push(k.clone()),
                            other => {
                                return Frame::Unexpected(format!("an invalidated key {other:?}"));
                            }
                        }
                    }
                    Frame::Keys(out)
                }
                other => Frame::Unexpected(format!("an invalidation of {other:?}")),
            }
        }
        (b"pong", [_]) => Frame::Pong,
        (b"subscribe", [Value::BulkString(channel), _]) if channel == CHANNEL => Frame::Subscribed,
        _ => Frame::Unexpected(format!("{items:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shardis_resp::{Decoder, Frame as RespFrame};

    fn frame(bytes: &[u8]) -> Frame {
        let (decoded, used) = Decoder::new().decode_frame(bytes).unwrap();
        assert_eq!(used, bytes.len());
        match decoded.unwrap() {
            RespFrame::Reply(v) | RespFrame::Push(v) => classify(v),
        }
    }

    // The bytes below were captured from redis-server 7.0.15 (CLIENT TRACKING on REDIRECT
    // <own id> BCAST PREFIX ns: on a RESP2 connection subscribed to __redis__:invalidate).
    #[test]
    fn reads_what_redis_sends() {
        assert_eq!(
            frame(b"*3\r\n$7\r\nmessage\r\n$20\r\n__redis__:invalidate\r\n*1\r\n$4\r\nns:a\r\n"),
            Frame::Keys(vec![b"ns:a".to_vec()])
        );
        assert_eq!(
            frame(b"*3\r\n$7\r\nmessage\r\n$20\r\n__redis__:invalidate\r\n*2\r\n$1\r\na\r\n$1\r\nb\r\n"),
            Frame::Keys(vec![b"a".to_vec(), b"b".to_vec()])
        );
        assert_eq!(
            frame(b"*3\r\n$7\r\nmessage\r\n$20\r\n__redis__:invalidate\r\n$-1\r\n"),
            Frame::Flush
        );
        assert_eq!(frame(b"*2\r\n$4\r\npong\r\n$0\r\n\r\n"), Frame::Pong);
        assert_eq!(
            frame(b"*3\r\n$9\r\nsubscribe\r\n$20\r\n__redis__:invalidate\r\n:1\r\n"),
            Frame::Subscribed
        );
    }

    #[test]
    fn anything_else_ends_the_connection() {
        for bytes in [
            &b"-ERR no\r\n"[..],
            b"+OK\r\n",
            b"*3\r\n$7\r\nmessage\r\n$5\r\nother\r\n$1\r\nx\r\n",
            b"*3\r\n$7\r\nmessage\r\n$20\r\n__redis__:invalidate\r\n:1\r\n",
            b"*3\r\n$7\r\nmessage\r\n$20\r\n__redis__:invalidate\r\n*1\r\n:1\r\n",
            b"*0\r\n",
        ] {
            assert!(
                matches!(frame(bytes), Frame::Unexpected(_)),
                "{}",
                String::from_utf8_lossy(bytes)
            );
        }
    }
}
