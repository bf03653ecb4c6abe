//! The decoder against redis-rs: generated reply trees round-trip, every
//! prefix is incomplete, arbitrary bytes never panic, whatever it accepts
//! redis-rs parses to the same value, and feeding the same bytes in pieces
//! gives the same answer as the whole buffer.

use proptest::prelude::*;
use redis::Value;
use shardis_resp::{Decoder, RespError, parse_frame, same_reply};

/// The first frame of `buf` as a value, the way redis-rs sees it (a push is
/// a value like any other there).
fn parse_reply(buf: &[u8]) -> Result<Option<(Value, usize)>, RespError> {
    Ok(parse_frame(buf)?.map(|(frame, n)| (frame.into_value(), n)))
}

/// The first frame of `data` fed to a [`Decoder`] in reads of at most
/// `read` bytes, as a connection does; the same shape as [`parse_reply`].
fn parse_in_reads(data: &[u8], read: usize) -> Result<Option<(Value, usize)>, RespError> {
    let mut decoder = Decoder::new();
    let mut consumed = 0;
    let mut have = 0;
    while have < data.len() {
        have = (have + read.max(1)).min(data.len());
        let (frame, n) = decoder.decode_frame(&data[consumed..have])?;
        consumed += n;
        if let Some(frame) = frame {
            return Ok(Some((frame.into_value(), consumed)));
        }
    }
    Ok(None)
}

/// A reply to encode, with the value it must parse to.
#[derive(Debug, Clone)]
enum Reply {
    Okay,
    Simple(String),
    Int(i64),
    Bulk(Vec<u8>),
    NilBulk,
    NilArray,
    /// An error line, without `-` and CRLF.
    Error(String),
    /// A complete RESP3 frame (built by redis-rs).
    Resp3(&'static [u8]),
    Array(Vec<Reply>),
}

impl Reply {
    fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Reply::Okay => out.extend_from_slice(b"+OK\r\n"),
            Reply::Simple(s) => out.extend_from_slice(format!("+{s}\r\n").as_bytes()),
            Reply::Int(n) => out.extend_from_slice(format!(":{n}\r\n").as_bytes()),
            Reply::Bulk(b) => {
                out.extend_from_slice(format!("${}\r\n", b.len()).as_bytes());
                out.extend_from_slice(b);
                out.extend_from_slice(b"\r\n");
            }
            Reply::NilBulk => out.extend_from_slice(b"$-1\r\n"),
            Reply::NilArray => out.extend_from_slice(b"*-1\r\n"),
            Reply::Error(line) => out.extend_from_slice(format!("-{line}\r\n").as_bytes()),
            Reply::Resp3(frame) => out.extend_from_slice(frame),
            Reply::Array(items) => {
                out.extend_from_slice(format!("*{}\r\n", items.len()).as_bytes());
                for item in items {
                    item.encode(out);
                }
            }
        }
    }

    fn bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode(&mut out);
        out
    }

    /// The tree it must parse to: RESP2 spelled out, errors and RESP3 as
    /// redis-rs builds that element alone (it has no public constructor).
    fn expected(&self) -> Value {
        match self {
            Reply::Okay => Value::Okay,
            Reply::Simple(s) => Value::SimpleString(s.clone()),
            Reply::Int(n) => Value::Int(*n),
            Reply::Bulk(b) => Value::BulkString(b.clone()),
            Reply::NilBulk | Reply::NilArray => Value::Nil,
            Reply::Error(_) | Reply::Resp3(_) => redis::parse_redis_value(&self.bytes()).unwrap(),
            Reply::Array(items) => Value::Array(items.iter().map(Reply::expected).collect()),
        }
    }
}

const RESP3: &[&[u8]] = &[
    b"_\r\n",
    b",3.5\r\n",
    b",-inf\r\n",
    b"#t\r\n",
    b"#f\r\n",
    b"(12345678901234567890123\r\n",
    b"!21\r\nSYNTAX invalid syntax\r\n",
    b"=11\r\ntxt:a\r\nb\r\nc\r\n",
    b"%1\r\n+key\r\n*2\r\n:1\r\n-ERR in map\r\n",
    b"~2\r\n$1\r\na\r\n_\r\n",
    b">2\r\n$10\r\ninvalidate\r\n*1\r\n$3\r\nkey\r\n",
    b"|1\r\n+ttl\r\n:5\r\n$1\r\nv\r\n",
];

fn error_line() -> impl Strategy<Value = String> {
    let host = prop_oneof![
        Just("127.0.0.1".to_string()),
        Just("[::1]".to_string()),
        "[a-z][a-z0-9.-]{0,15}",
    ];
    prop_oneof![
        (0u16..16384, host.clone(), any::<u16>())
            .prop_map(|(slot, h, port)| format!("MOVED {slot} {h}:{port}")),
        (0u16..16384, host, any::<u16>())
            .prop_map(|(slot, h, port)| format!("ASK {slot} {h}:{port}")),
        "[^\r\n]{0,30}".prop_map(|d| format!("ERR {d}")),
        Just("WRONGTYPE Operation against a key holding the wrong kind of value".to_string()),
        "[A-Z]{1,12}( [^\r\n]{0,20})?",
        Just(String::new()),
    ]
}

fn bulk() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..48),
        // Dense in CR/LF: payloads are binary-safe.
        prop::collection::vec(prop_oneof![Just(b'\r'), Just(b'\n'), any::<u8>()], 0..16),
    ]
}

fn reply() -> impl Strategy<Value = Reply> {
    let leaf = prop_oneof![
        Just(Reply::Okay),
        "[^\r\n]{0,24}"
            .prop_filter("+OK is Okay", |s| s != "OK")
            .prop_map(Reply::Simple),
        any::<i64>().prop_map(Reply::Int),
        bulk().prop_map(Reply::Bulk),
        Just(Reply::NilBulk),
        Just(Reply::NilArray),
        error_line().prop_map(Reply::Error),
        prop::sample::select(RESP3).prop_map(Reply::Resp3),
    ];
    leaf.prop_recursive(6, 128, 10, |inner| {
        prop::collection::vec(inner, 0..10).prop_map(Reply::Array)
    })
}

/// RESP-looking fragments: random concatenations reach deep into the parser
/// far more often than random bytes.
fn resp_soup() -> impl Strategy<Value = Vec<u8>> {
    const TOKENS: &[&[u8]] = &[
        b"*1\r\n",
        b"*2\r\n",
        b"*0\r\n",
        b"*-1\r\n",
        b"*-2\r\n",
        b"$3\r\n",
        b"$0\r\n",
        b"$-1\r\n",
        b"abc",
        b"\r\n",
        b"\r",
        b"\n",
        b":1\r\n",
        b":-0\r\n",
        b": 7 \r\n",
        b"+OK\r\n",
        b"+x\r\n",
        b"-ERR x\r\n",
        b"-MOVED 1 h:1\r\n",
        b"%1\r\n",
        b"~1\r\n",
        b">1\r\n",
        b">2\r\n",
        b"|1\r\n",
        b"_\r\n",
        b",1.5\r\n",
        b",nan\r\n",
        b"#t\r\n",
        b"(1\r\n",
        b"!3\r\n",
        b"=5\r\n",
        b"txt:",
        b"\xff",
        b"$9223372036854775807\r\n",
        b"*99999999999\r\n",
    ];
    prop::collection::vec(prop::sample::select(TOKENS), 0..24).prop_map(|t| t.concat())
}

/// The fuzz target's invariant: whatever is accepted, redis-rs parses from
/// exactly the consumed bytes to the same value, and nothing redis-rs
/// completes is reported as incomplete.
fn check_against_redis_rs(data: &[u8], read: usize) -> Result<(), TestCaseError> {
    let ours = parse_reply(data);
    let in_reads = parse_in_reads(data, read);
    match (&ours, &in_reads) {
        (Ok(Some((a, n))), Ok(Some((b, m)))) => {
            prop_assert!(
                n == m && same_reply(a, b),
                "whole {ours:?}, in reads {in_reads:?}"
            )
        }
        (Err(a), Err(b)) => prop_assert_eq!(a, b),
        _ => prop_assert_eq!(&ours, &in_reads),
    }
    match &ours {
        Ok(Some((value, n))) => {
            prop_assert!(*n <= data.len());
            let theirs = redis::parse_redis_value(&data[..*n]);
            prop_assert!(
                matches!(&theirs, Ok(v) if same_reply(v, value)),
                "{value:?} vs {theirs:?}"
            );
            // Trailing bytes do not change what is consumed.
            let alone = parse_reply(&data[..*n]);
            prop_assert!(
                matches!(&alone, Ok(Some((v, m))) if m == n && same_reply(v, value)),
                "alone: {alone:?}"
            );
        }
        Ok(None) => prop_assert!(
            redis::parse_redis_value(data).is_err(),
            "incomplete, but redis-rs parses it"
        ),
        Err(_) => {}
    }
    Ok(())
}

proptest! {
    #[test]
    fn trees_round_trip(tree in reply(), trailing in prop::collection::vec(any::<u8>(), 0..8)) {
        let mut bytes = tree.bytes();
        let len = bytes.len();
        let expected = tree.expected();
        prop_assert_eq!(redis::parse_redis_value(&bytes).unwrap(), expected.clone());
        bytes.extend_from_slice(&trailing);
        let (value, n) = parse_reply(&bytes).unwrap().unwrap();
        prop_assert_eq!(value, expected);
        prop_assert_eq!(n, len);
    }

    #[test]
    fn prefixes_are_incomplete(tree in reply(), cut in any::<prop::sample::Index>()) {
        let bytes = tree.bytes();
        let cut = cut.index(bytes.len());
        prop_assert_eq!(parse_reply(&bytes[..cut]), Ok(None));
    }

    #[test]
    fn back_to_back(a in reply(), b in reply()) {
        let (first, second) = (a.bytes(), b.bytes());
        let stream = [first.as_slice(), second.as_slice()].concat();
        let (v, n) = parse_reply(&stream).unwrap().unwrap();
        prop_assert_eq!((v, n), (a.expected(), first.len()));
        let (v, m) = parse_reply(&stream[n..]).unwrap().unwrap();
        prop_assert_eq!((v, m), (b.expected(), second.len()));
    }

    #[test]
    fn random_bytes_never_panic(data in prop::collection::vec(any::<u8>(), 0..256), read in 1usize..8) {
        check_against_redis_rs(&data, read)?;
    }

    #[test]
    fn resp_soup_agrees_with_redis_rs(data in resp_soup(), read in 1usize..8) {
        check_against_redis_rs(&data, read)?;
    }

    #[test]
    fn mutated_replies_agree_with_redis_rs(
        tree in reply(),
        at in any::<prop::sample::Index>(),
        byte in any::<u8>(),
        read in 1usize..16,
    ) {
        let mut bytes = tree.bytes();
        let i = at.index(bytes.len());
        bytes[i] = byte;
        check_against_redis_rs(&bytes, read)?;
    }
}

/// Captured server streams (RESP2 and RESP3), embedded so tests never read
/// outside the crate.
const VECTORS: &[(&str, &[u8])] = &[
    ("fresh_get_foo", include_bytes!("vectors/fresh_get_foo.bin")),
    (
        "hello_plus_slots_resp3",
        include_bytes!("vectors/hello_plus_slots_resp3.bin"),
    ),
    ("ipv6_moved", include_bytes!("vectors/ipv6_moved.bin")),
    ("nodes", include_bytes!("vectors/nodes.bin")),
    ("shards_resp2", include_bytes!("vectors/shards_resp2.bin")),
    ("shards_resp3", include_bytes!("vectors/shards_resp3.bin")),
    ("slots_resp2", include_bytes!("vectors/slots_resp2.bin")),
    (
        "slots_resp3_hostname_meta",
        include_bytes!("vectors/slots_resp3_hostname_meta.bin"),
    ),
    (
        "single_partial_info",
        include_bytes!("vectors/single_partial_info.bin"),
    ),
];

/// Captured server replies (RESP2 and RESP3 streams): parsing value after
/// value matches redis-rs' streaming parser, every prefix is incomplete, and
/// the stream fed one byte at a time decodes to the same values.
#[test]
fn live_vectors() {
    for &(name, raw) in VECTORS {
        let mut decoder = Decoder::new();
        let mut buf = Vec::new();
        let mut frames = Vec::new();
        for &byte in raw {
            buf.push(byte);
            let n = decoder.decode(&buf, &mut frames).unwrap();
            buf.drain(..n);
        }
        assert!(buf.is_empty(), "{name}");
        let mut frames = frames.into_iter();
        let mut redis_parser = redis::Parser::new();
        let mut reader = raw;
        let mut at = 0;
        while at < raw.len() {
            let (value, n) = parse_reply(&raw[at..])
                .unwrap_or_else(|e| panic!("{name}@{at}: {e}"))
                .unwrap_or_else(|| panic!("{name}@{at}: incomplete"));
            let expected = redis_parser.parse_value(&mut reader).unwrap();
            assert!(
                same_reply(&value, &expected),
                "{name}: {value:?} vs {expected:?}"
            );
            let bytewise = frames.next().map(|f| f.into_value());
            assert!(
                bytewise.is_some_and(|v| same_reply(&v, &expected)),
                "{name}@{at}: byte at a time"
            );
            for cut in at..at + n {
                assert_eq!(parse_reply(&raw[at..cut]), Ok(None), "{name} cut at {cut}");
            }
            at += n;
        }
        assert!(reader.is_empty(), "{name}");
        assert!(frames.next().is_none(), "{name}");
    }
}

#[test]
fn error_variants_are_typed() {
    assert_eq!(parse_reply(b"@\r\n"), Err(RespError::UnknownType(b'@')));
    assert_eq!(parse_reply(b"$-5\r\n"), Err(RespError::BadLength(-5)));
    assert!(matches!(
        parse_reply(b"$999999999999\r\n"),
        Err(RespError::TooLarge { .. })
    ));
}
