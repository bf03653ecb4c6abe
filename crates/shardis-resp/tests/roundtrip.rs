//! Random `redis::Value`s of every type, encoded as RESP and fed to a
//! [`Decoder`] in random reads, decode back to equal frames, pushes as pushes.

use proptest::prelude::*;
use redis::{PushKind, Value, VerbatimFormat};
use shardis_resp::{Decoder, Frame, same_reply};

/// RESP bytes of `value`, in the spelling redis-rs reads back to it.
fn encode(value: &Value, out: &mut Vec<u8>) {
    fn header(out: &mut Vec<u8>, kind: char, n: usize) {
        out.extend_from_slice(format!("{kind}{n}\r\n").as_bytes());
    }
    fn blob(out: &mut Vec<u8>, kind: char, body: &[u8]) {
        header(out, kind, body.len());
        out.extend_from_slice(body);
        out.extend_from_slice(b"\r\n");
    }
    fn pairs(out: &mut Vec<u8>, pairs: &[(Value, Value)]) {
        for (k, v) in pairs {
            encode(k, out);
            encode(v, out);
        }
    }
    match value {
        Value::Nil => out.extend_from_slice(b"_\r\n"),
        Value::Okay => out.extend_from_slice(b"+OK\r\n"),
        Value::Int(n) => out.extend_from_slice(format!(":{n}\r\n").as_bytes()),
        Value::SimpleString(s) => out.extend_from_slice(format!("+{s}\r\n").as_bytes()),
        Value::BulkString(b) => blob(out, '$', b),
        Value::Double(d) => out.extend_from_slice(format!(",{d}\r\n").as_bytes()),
        Value::Boolean(b) => out.extend_from_slice(if *b { b"#t\r\n" } else { b"#f\r\n" }),
        Value::BigNumber(n) => {
            out.push(b'(');
            out.extend_from_slice(n);
            out.extend_from_slice(b"\r\n");
        }
        Value::VerbatimString { format, text } => {
            blob(out, '=', format!("{format}:{text}").as_bytes());
        }
        Value::ServerError(e) => {
            let line = match e.details() {
                Some(details) => format!("{} {details}", e.code()),
                None => e.code().to_string(),
            };
            out.extend_from_slice(format!("-{line}\r\n").as_bytes());
        }
        Value::Array(items) | Value::Set(items) => {
            header(
                out,
                if matches!(value, Value::Array(_)) {
                    '*'
                } else {
                    '~'
                },
                items.len(),
            );
            items.iter().for_each(|v| encode(v, out));
        }
        Value::Map(kv) => {
            header(out, '%', kv.len());
            pairs(out, kv);
        }
        Value::Attribute { data, attributes } => {
            header(out, '|', attributes.len());
            pairs(out, attributes);
            encode(data, out);
        }
        Value::Push { kind, data } => {
            header(out, '>', data.len() + 1);
            blob(out, '$', kind.to_string().as_bytes());
            data.iter().for_each(|v| encode(v, out));
        }
        other => panic!("no encoding for {other:?}"),
    }
}

fn server_error() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just("ERR unknown command".to_string()),
        (0u16..16384).prop_map(|slot| format!("MOVED {slot} 127.0.0.1:7000")),
        Just("NOSCRIPT".to_string()),
        "[A-Z]{1,10} [a-z ]{1,20}",
    ]
    .prop_map(|line| {
        // `ServerError` has no public constructor: redis-rs builds it.
        redis::parse_redis_value(format!("-{line}\r\n").as_bytes()).unwrap()
    })
}

fn push_kind() -> impl Strategy<Value = PushKind> {
    prop_oneof![
        Just(PushKind::Invalidate),
        Just(PushKind::Message),
        Just(PushKind::PMessage),
        Just(PushKind::SMessage),
        Just(PushKind::Subscribe),
        Just(PushKind::SUnsubscribe),
        "x[a-z]{0,8}".prop_map(PushKind::Other),
    ]
}

fn value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Nil),
        Just(Value::Okay),
        any::<i64>().prop_map(Value::Int),
        "[^\r\n]{0,12}"
            .prop_filter("+OK is Okay", |s| s != "OK")
            .prop_map(Value::SimpleString),
        prop::collection::vec(any::<u8>(), 0..40).prop_map(Value::BulkString),
        any::<f64>().prop_map(Value::Double),
        any::<bool>().prop_map(Value::Boolean),
        "-?[1-9][0-9]{19,40}".prop_map(|n| Value::BigNumber(n.into_bytes())),
        (
            prop_oneof![
                Just(VerbatimFormat::Text),
                Just(VerbatimFormat::Markdown),
                "[a-z]{3}".prop_map(VerbatimFormat::Unknown),
            ],
            ".{0,12}"
        )
            .prop_filter("txt/mkd are known", |(f, _)| {
                !matches!(f, VerbatimFormat::Unknown(s) if s == "txt" || s == "mkd")
            })
            .prop_map(|(format, text)| Value::VerbatimString { format, text }),
        server_error(),
    ];
    leaf.prop_recursive(5, 96, 6, |inner| {
        let items = prop::collection::vec(inner.clone(), 0..6);
        let kv = prop::collection::vec((inner.clone(), inner.clone()), 0..4);
        prop_oneof![
            items.clone().prop_map(Value::Array),
            items.clone().prop_map(Value::Set),
            kv.clone().prop_map(Value::Map),
            (inner, kv).prop_map(|(data, attributes)| Value::Attribute {
                data: Box::new(data),
                attributes
            }),
            (push_kind(), items).prop_map(|(kind, data)| Value::Push { kind, data }),
        ]
    })
}

fn is_push(value: &Value) -> bool {
    match value {
        Value::Push { .. } => true,
        Value::Attribute { data, .. } => is_push(data),
        _ => false,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn values_in_random_reads_decode_back(
        values in prop::collection::vec(value(), 1..6),
        reads in prop::collection::vec(1usize..64, 1..32),
    ) {
        let mut stream = Vec::new();
        for v in &values {
            encode(v, &mut stream);
        }
        let mut decoder = Decoder::new();
        let mut buf = Vec::new();
        let mut frames = Vec::new();
        let mut sizes = reads.iter().cycle();
        let mut at = 0;
        while at < stream.len() {
            let end = (at + sizes.next().copied().unwrap_or(1)).min(stream.len());
            buf.extend_from_slice(&stream[at..end]);
            at = end;
            let consumed = decoder.decode(&buf, &mut frames).unwrap();
            buf.drain(..consumed);
        }
        prop_assert!(buf.is_empty());
        prop_assert_eq!(frames.len(), values.len());
        for (frame, value) in frames.iter().zip(&values) {
            prop_assert!(same_reply(frame.value(), value), "{frame:?} != {value:?}");
            prop_assert_eq!(frame.is_push(), is_push(value));
            prop_assert_eq!(matches!(frame, Frame::Push(_)), is_push(value));
        }
        // redis-rs reads the same bytes to the same values.
        let mut parser = redis::Parser::new();
        let mut reader = stream.as_slice();
        for value in &values {
            let theirs = parser.parse_value(&mut reader).unwrap();
            prop_assert!(same_reply(&theirs, value), "redis-rs: {theirs:?}");
        }
    }
}
