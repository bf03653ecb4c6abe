//! What a subscribed connection receives, read once from the RESP frame: a [`Message`] for the
//! subscriber, a confirmation of a (un)subscribe, or an error. Pure, tested from values.

use redis::Value;

use super::Kind;

/// One message received by a [`Subscription`](crate::Subscription).
///
/// Owned bytes, as the server sent them: the channel it was published to, the pattern that
/// matched it (for [`psubscribe`](crate::Subscription::psubscribe)), and the payload.
///
/// ```
/// # fn show(message: shardis::Message) -> redis::RedisResult<()> {
/// let text: String = message.payload_as()?;
/// println!(
///     "{} on {} (pattern {:?}, sharded: {})",
///     text,
///     String::from_utf8_lossy(message.channel()),
///     message.pattern().map(String::from_utf8_lossy),
///     message.is_sharded(),
/// );
/// # Ok(()) }
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    channel: Vec<u8>,
    pattern: Option<Vec<u8>>,
    payload: Vec<u8>,
    sharded: bool,
}

impl Message {
    /// The channel the message was published to.
    pub fn channel(&self) -> &[u8] {
        &self.channel
    }

    /// The pattern that matched the channel, for a message received through
    /// [`psubscribe`](crate::Subscription::psubscribe); `None` otherwise.
    pub fn pattern(&self) -> Option<&[u8]> {
        self.pattern.as_deref()
    }

    /// The payload, as published.
    pub fn payload(&self) -> &[u8] {
        &self.payload
    }

    /// The payload, converted as redis-rs converts a reply (`String`, numbers, `Vec<u8>`...).
    pub fn payload_as<T: redis::FromRedisValue>(&self) -> redis::RedisResult<T> {
        Ok(T::from_redis_value(Value::BulkString(
            self.payload.clone(),
        ))?)
    }

    /// The payload, taken out of the message.
    pub fn into_payload(self) -> Vec<u8> {
        self.payload
    }

    /// Whether it came through sharded pub/sub (`SPUBLISH` to an
    /// [`ssubscribe`](crate::Subscription::ssubscribe)d channel) rather than `PUBLISH`.
    pub fn is_sharded(&self) -> bool {
        self.sharded
    }

    /// The subscription that lets this message through: the pattern that matched, or the
    /// channel.
    pub(crate) fn subscription(&self) -> (Kind, &[u8]) {
        match (&self.pattern, self.sharded) {
            (Some(pattern), _) => (Kind::Pattern, pattern),
            (None, true) => (Kind::Shard, &self.channel),
            (None, false) => (Kind::Channel, &self.channel),
        }
    }
}

/// One frame of a subscribed connection (RESP2).
#[derive(Debug, PartialEq)]
pub(crate) enum Frame {
    /// A published message.
    Message(Message),
    /// `subscribe`/`unsubscribe` (and the `p`, `s` forms) for one name: the answer to a
    /// command, or — for `sunsubscribe` — the server dropping a shard channel whose slot moved.
    Confirm {
        kind: Kind,
        unsubscribe: bool,
        /// `None` for an unsubscribe that found nothing subscribed.
        name: Option<Vec<u8>>,
    },
    /// An error reply to the oldest command (`MOVED`, `CROSSSLOT`, `NOPERM`, ...).
    Error { code: String, detail: String },
    /// Anything else: the connection is not what it should be.
    Unexpected(String),
}

/// Reads one frame.
pub(crate) fn classify(value: Value) -> Frame {
    let items = match value {
        Value::Array(items) => items,
        // RESP3 (not negotiated today): the first word is the push's kind.
        Value::Push { kind, data } => {
            std::iter::once(Value::BulkString(kind.to_string().into_bytes()))
                .chain(data)
                .collect()
        }
        Value::ServerError(e) => {
            return Frame::Error {
                code: e.code().to_string(),
                detail: e.details().unwrap_or_default().to_string(),
            };
        }
        other => return Frame::Unexpected(format!("{other:?}")),
    };
    let mut parts = items.into_iter();
    let word = match parts.next() {
        Some(Value::BulkString(word)) => word,
        Some(Value::SimpleString(word)) => word.into_bytes(),
        other => return Frame::Unexpected(format!("a frame starting with {other:?}")),
    };
    let rest: Vec<Value> = parts.collect();
    let bytes = |v: &Value| match v {
        Value::BulkString(b) => Some(b.clone()),
        Value::SimpleString(s) => Some(s.clone().into_bytes()),
        _ => None,
    };
    let message = |pattern: Option<Vec<u8>>, channel: &Value, payload: &Value, sharded: bool| match (
        bytes(channel),
        bytes(payload),
    ) {
        (Some(channel), Some(payload)) => Frame::Message(Message {
            channel,
            pattern,
            payload,
            sharded,
        }),
        _ => Frame::Unexpected("a message without channel or payload".into()),
    };
    match (word.to_ascii_lowercase().as_slice(), rest.as_slice()) {
        (b"message", [channel, payload]) => message(None, channel, payload, false),
        (b"smessage", [channel, payload]) => message(None, channel, payload, true),
        (b"pmessage", [pattern, channel, payload]) => match bytes(pattern) {
            Some(pattern) => message(Some(pattern), channel, payload, false),
            None => Frame::Unexpected("a pmessage without pattern".into()),
        },
        (word, [name, Value::Int(_)]) => match Kind::of_confirmation(word) {
            Some((kind, unsubscribe)) => Frame::Confirm {
                kind,
                unsubscribe,
                name: bytes(name),
            },
            None => Frame::Unexpected(format!("{:?}", String::from_utf8_lossy(word))),
        },
        (word, _) => Frame::Unexpected(format!(
            "{:?} with {} parts",
            String::from_utf8_lossy(word),
            rest.len()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(s: &str) -> Value {
        Value::BulkString(s.as_bytes().to_vec())
    }

    #[test]
    fn messages_of_every_kind() {
        let Frame::Message(m) =
            classify(Value::Array(vec![bulk("message"), bulk("ch"), bulk("hi")]))
        else {
            panic!("a message")
        };
        assert_eq!(
            (m.channel(), m.pattern(), m.payload(), m.is_sharded()),
            (&b"ch"[..], None, &b"hi"[..], false)
        );
        assert_eq!(m.subscription(), (Kind::Channel, &b"ch"[..]));
        assert_eq!(m.payload_as::<String>().ok().as_deref(), Some("hi"));

        let Frame::Message(m) = classify(Value::Array(vec![
            bulk("pmessage"),
            bulk("ch*"),
            bulk("ch1"),
            bulk("42"),
        ])) else {
            panic!("a pattern message")
        };
        assert_eq!(m.subscription(), (Kind::Pattern, &b"ch*"[..]));
        assert_eq!(m.channel(), b"ch1");
        assert_eq!(m.payload_as::<i64>().ok(), Some(42));

        let Frame::Message(m) =
            classify(Value::Array(vec![bulk("smessage"), bulk("s"), bulk("x")]))
        else {
            panic!("a shard message")
        };
        assert!(m.is_sharded());
        assert_eq!(m.subscription(), (Kind::Shard, &b"s"[..]));

        // The same as a RESP3 push.
        let push = Value::Push {
            kind: redis::PushKind::SMessage,
            data: vec![bulk("s"), bulk("x")],
        };
        assert_eq!(classify(push), Frame::Message(m));
    }

    #[test]
    fn confirmations_errors_and_garbage() {
        assert_eq!(
            classify(Value::Array(vec![
                bulk("ssubscribe"),
                bulk("s"),
                Value::Int(1)
            ])),
            Frame::Confirm {
                kind: Kind::Shard,
                unsubscribe: false,
                name: Some(b"s".to_vec())
            }
        );
        assert_eq!(
            classify(Value::Array(vec![
                bulk("punsubscribe"),
                Value::Nil,
                Value::Int(0)
            ])),
            Frame::Confirm {
                kind: Kind::Pattern,
                unsubscribe: true,
                name: None
            }
        );
        let moved = match shardis_resp::parse_frame(b"-MOVED 12 127.0.0.1:7001\r\n") {
            Ok(Some((shardis_resp::Frame::Reply(value), _))) => value,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            classify(moved),
            Frame::Error {
                code: "MOVED".into(),
                detail: "12 127.0.0.1:7001".into()
            }
        );
        for garbage in [
            Value::Int(3),
            Value::Array(vec![]),
            Value::Array(vec![bulk("message"), bulk("ch")]),
            Value::Array(vec![bulk("subscribe"), bulk("ch"), bulk("1")]),
            Value::Array(vec![bulk("hello"), bulk("ch"), Value::Int(1)]),
            Value::Array(vec![Value::Int(1), bulk("ch"), Value::Int(1)]),
        ] {
            assert!(
                matches!(classify(garbage.clone()), Frame::Unexpected(_)),
                "{garbage:?}"
            );
        }
    }
}
