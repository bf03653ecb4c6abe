//! Unit tests from raw bytes: every type, every split, malformed input.

use redis::{PushKind, Value, VerbatimFormat};

use crate::{Decoder, Frame, MAX_BULK_LEN, MAX_DEPTH, RespError, parse_frame, same_reply};

/// Valid frames, RESP2 and RESP3, including nested errors and binary data.
fn corpus() -> Vec<Vec<u8>> {
    let mut all: Vec<Vec<u8>> = [
        &b"+OK\r\n"[..],
        b"+OKAY\r\n",
        b"+\r\n",
        b"+PONG\r\n",
        b"+a\rb\nc\r\r\n",
        "+h\u{e9}llo \u{1f600}\r\n".as_bytes(),
        b":0\r\n",
        b":-1\r\n",
        b":1000\r\n",
        b":9223372036854775807\r\n",
        b":-9223372036854775808\r\n",
        b":+7\r\n",
        b":123456789012345678\r\n",
        b"$0\r\n\r\n",
        b"$-1\r\n",
        b"$5\r\nhello\r\n",
        b"$6\r\na\r\nb\r\n\r\n",
        b"$4\r\n\x00\xff\r\n\r\n",
        b"*0\r\n",
        b"*-1\r\n",
        b"*3\r\n:1\r\n:2\r\n:3\r\n",
        b"*2\r\n$3\r\nfoo\r\n$-1\r\n",
        b"*2\r\n*0\r\n*1\r\n*-1\r\n",
        b"-ERR unknown command 'foo'\r\n",
        b"-MOVED 3999 127.0.0.1:6381\r\n",
        b"-ASK 3999 127.0.0.1:6381\r\n",
        b"-WRONGTYPE Operation against a key holding the wrong kind of value\r\n",
        b"-NOSCRIPT\r\n",
        b"-\r\n",
        b"*4\r\n+OK\r\n-MOVED 1 h:1\r\n$-1\r\n*2\r\n-ERR x\r\n:5\r\n",
        b"*3\r\n-ASK 12182 [::1]:7001\r\n$0\r\n\r\n*0\r\n",
        b"_\r\n",
        b",3.14\r\n",
        b",-inf\r\n",
        b",nan\r\n",
        b", 1e3 \r\n",
        b"#t\r\n",
        b"#f\r\n",
        b"(3492890328409238509324850943850943825024385\r\n",
        b"!21\r\nSYNTAX invalid syntax\r\n",
        b"!0\r\n\r\n",
        b"=15\r\ntxt:Some string\r\n",
        b"=10\r\nmkd:a\r\nb\r\n\r\n",
        b"=5\r\nxyz:\xff\r\n",
        b"%2\r\n+first\r\n:1\r\n$6\r\nsecond\r\n*1\r\n_\r\n",
        b"%0\r\n",
        b"~3\r\n+a\r\n:1\r\n#t\r\n",
        b"~0\r\n",
        b"~-1\r\n",
        b">3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$1\r\nx\r\n",
        b">2\r\n+invalidate\r\n*1\r\n$1\r\nk\r\n",
        b">1\r\n$6\r\ncustom\r\n",
        b">0\r\n",
        b">-1\r\n",
        b"|1\r\n+ttl\r\n:3600\r\n$3\r\nval\r\n",
        b"|0\r\n:1\r\n",
        b"|1\r\n+a\r\n:1\r\n>2\r\n+message\r\n:1\r\n",
        b"|1\r\n+a\r\n:1\r\n|1\r\n+b\r\n:2\r\n*1\r\n:3\r\n",
        b"*2\r\n>2\r\n+message\r\n:1\r\n:2\r\n",
        b"*3\r\n%1\r\n+k\r\n,1.5\r\n-ERR in array\r\n|1\r\n+a\r\n:1\r\n:2\r\n",
    ]
    .iter()
    .map(|r| r.to_vec())
    .collect();
    // Nesting right at the limit, and a big array.
    let mut deep = b"*1\r\n".repeat(MAX_DEPTH - 1);
    deep.extend_from_slice(b":1\r\n");
    all.push(deep);
    let mut deep3 = b"*1\r\n".repeat(MAX_DEPTH - 2);
    deep3.extend_from_slice(b"%1\r\n+k\r\n:1\r\n");
    all.push(deep3);
    let mut big = b"*300\r\n".to_vec();
    for i in 0..300 {
        big.extend_from_slice(format!("${}\r\n{}\r\n", i.to_string().len(), i).as_bytes());
    }
    all.push(big);
    all
}

fn show(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn redis_says(frame: &[u8]) -> Value {
    redis::parse_redis_value(frame)
        .unwrap_or_else(|e| panic!("redis-rs refuses {:?}: {e}", show(frame)))
}

fn whole(frame: &[u8]) -> Frame {
    match parse_frame(frame) {
        Ok(Some((f, n))) if n == frame.len() => f,
        other => panic!("{:?}: {other:?}", show(frame)),
    }
}

/// Feeds `stream` in the given reads the way a connection does (append,
/// decode, drain) and returns the frames and the bytes left over.
fn feed<'a>(reads: impl IntoIterator<Item = &'a [u8]>) -> Result<(Vec<Frame>, usize), RespError> {
    let mut decoder = Decoder::new();
    let mut buf = Vec::new();
    let mut frames = Vec::new();
    for read in reads {
        buf.extend_from_slice(read);
        let consumed = decoder.decode(&buf, &mut frames)?;
        buf.drain(..consumed);
    }
    Ok((frames, buf.len()))
}

fn same_frames(a: &[Frame], b: &[Frame]) -> bool {
    a.len() == b.len()
        && a.iter()
            .zip(b)
            .all(|(x, y)| x.is_push() == y.is_push() && same_reply(x.value(), y.value()))
}

#[test]
fn equals_redis_rs_and_consumes_the_frame() {
    for frame in corpus() {
        let value = whole(&frame).into_value();
        let expected = redis_says(&frame);
        assert!(same_reply(&value, &expected), "{value:?} != {expected:?}");
    }
}

#[test]
fn every_prefix_is_incomplete() {
    for frame in corpus() {
        for cut in 0..frame.len() {
            assert_eq!(
                parse_frame(&frame[..cut]),
                Ok(None),
                "{:?} cut at {cut}",
                show(&frame)
            );
        }
    }
}

#[test]
fn pushes_are_told_apart_from_replies() {
    for frame in corpus() {
        let expected_push = matches!(frame.first(), Some(b'>'))
            || (frame.starts_with(b"|") && frame.windows(3).any(|w| w == b"\n>2"));
        assert_eq!(whole(&frame).is_push(), expected_push, "{:?}", show(&frame));
    }
    // A push inside a reply is part of that reply.
    assert!(!whole(b"*2\r\n>2\r\n+message\r\n:1\r\n:2\r\n").is_push());
}

/// The corpus as one stream, with pushes between replies.
fn stream() -> (Vec<u8>, Vec<Frame>) {
    let push = b">3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$1\r\nx\r\n";
    let mut bytes = Vec::new();
    let mut frames = Vec::new();
    for frame in corpus() {
        bytes.extend_from_slice(&frame);
        frames.push(whole(&frame));
        bytes.extend_from_slice(push);
        frames.push(whole(push));
    }
    (bytes, frames)
}

#[test]
fn one_byte_at_a_time_equals_whole_buffer() {
    let (bytes, expected) = stream();
    let (frames, left) = feed(bytes.chunks(1)).unwrap();
    assert_eq!(left, 0);
    assert!(same_frames(&frames, &expected));
    let (frames, left) = feed([bytes.as_slice()]).unwrap();
    assert_eq!(left, 0);
    assert!(same_frames(&frames, &expected));
}

#[test]
fn every_two_way_split_equals_whole_buffer() {
    let push = b">2\r\n+invalidate\r\n*1\r\n$1\r\nk\r\n";
    for frame in corpus() {
        // reply, push, reply: each split point of the three.
        let bytes = [frame.as_slice(), push, frame.as_slice()].concat();
        let expected = [whole(&frame), whole(push), whole(&frame)];
        for cut in 0..=bytes.len() {
            let (frames, left) = feed([&bytes[..cut], &bytes[cut..]])
                .unwrap_or_else(|e| panic!("{:?} cut at {cut}: {e}", show(&frame)));
            assert_eq!(left, 0, "{:?} cut at {cut}", show(&frame));
            assert!(
                same_frames(&frames, &expected),
                "{:?} cut at {cut}: {frames:?}",
                show(&frame)
            );
        }
    }
}

#[test]
fn completed_elements_leave_the_callers_buffer() {
    // An array cut inside its third element: the header and the first two
    // elements are consumed and kept by the decoder.
    let mut decoder = Decoder::new();
    let mut frames = Vec::new();
    let buf = b"*3\r\n$3\r\nfoo\r\n:7\r\n$5\r\nhel";
    assert_eq!(decoder.decode(buf, &mut frames), Ok(17));
    assert!(frames.is_empty());
    // A bulk string's header is read again, its body only once it is whole.
    assert_eq!(decoder.decode(b"$5\r\nhell", &mut frames), Ok(0));
    assert_eq!(
        decoder.decode(b"$5\r\nhello\r\n+OK\r\n", &mut frames),
        Ok(16)
    );
    assert_eq!(
        frames,
        vec![
            Frame::Reply(Value::Array(vec![
                Value::BulkString(b"foo".to_vec()),
                Value::Int(7),
                Value::BulkString(b"hello".to_vec()),
            ])),
            Frame::Reply(Value::Okay),
        ]
    );
}

#[test]
fn a_long_line_in_many_reads_is_searched_once() {
    let mut line = b"+".to_vec();
    line.extend(std::iter::repeat_n(b'a', 10_000));
    line.extend_from_slice(b"\r\n");
    let mut decoder = Decoder::new();
    let mut frames = Vec::new();
    for end in (1..line.len()).step_by(7) {
        assert_eq!(decoder.decode(&line[..end], &mut frames), Ok(0));
        // The search resumes where the last one stopped.
        assert_eq!(decoder.searched, end - 1);
    }
    assert_eq!(decoder.decode(&line, &mut frames), Ok(line.len()));
    assert_eq!(frames.len(), 1);
}

#[test]
fn every_type_builds_the_redis_value() {
    let reply = |b: &[u8]| match whole(b) {
        Frame::Reply(v) => v,
        push => panic!("{push:?}"),
    };
    assert_eq!(reply(b"+OK\r\n"), Value::Okay);
    assert_eq!(reply(b"+QUEUED\r\n"), Value::SimpleString("QUEUED".into()));
    assert_eq!(reply(b":-42\r\n"), Value::Int(-42));
    assert_eq!(reply(b"$-1\r\n"), Value::Nil);
    assert_eq!(reply(b"*-1\r\n"), Value::Nil);
    assert_eq!(reply(b"_\r\n"), Value::Nil);
    assert_eq!(reply(b"$0\r\n\r\n"), Value::BulkString(vec![]));
    assert_eq!(
        reply(b"$4\r\n\r\n\r\n\r\n"),
        Value::BulkString(b"\r\n\r\n".to_vec())
    );
    assert_eq!(
        reply(b"*2\r\n$1\r\na\r\n*0\r\n"),
        Value::Array(vec![Value::BulkString(b"a".to_vec()), Value::Array(vec![])])
    );
    assert_eq!(reply(b",2.5\r\n"), Value::Double(2.5));
    assert_eq!(reply(b",-inf\r\n"), Value::Double(f64::NEG_INFINITY));
    assert_eq!(reply(b"#f\r\n"), Value::Boolean(false));
    assert_eq!(
        reply(b"=9\r\ntxt:a\r\nbc\r\n"),
        Value::VerbatimString {
            format: VerbatimFormat::Text,
            text: "a\r\nbc".into()
        }
    );
    assert_eq!(
        reply(b"%1\r\n+k\r\n:1\r\n"),
        Value::Map(vec![(Value::SimpleString("k".into()), Value::Int(1))])
    );
    assert_eq!(
        reply(b"~2\r\n:1\r\n:2\r\n"),
        Value::Set(vec![Value::Int(1), Value::Int(2)])
    );
    assert_eq!(
        reply(b"|1\r\n+ttl\r\n:5\r\n$1\r\nv\r\n"),
        Value::Attribute {
            data: Box::new(Value::BulkString(b"v".to_vec())),
            attributes: vec![(Value::SimpleString("ttl".into()), Value::Int(5))],
        }
    );
    assert!(matches!(
        reply(b"(123456789012345678901234567890\r\n"),
        Value::BigNumber(_)
    ));
    let Value::ServerError(e) = reply(b"!10\r\nERR blob e\r\n") else {
        panic!("not an error");
    };
    assert_eq!((e.code(), e.details()), ("ERR", Some("blob e")));
    assert_eq!(
        whole(b">3\r\n$8\r\nsmessage\r\n$2\r\nch\r\n$1\r\nx\r\n"),
        Frame::Push(Value::Push {
            kind: PushKind::SMessage,
            data: vec![
                Value::BulkString(b"ch".to_vec()),
                Value::BulkString(b"x".to_vec())
            ],
        })
    );
}

#[test]
fn errors_nested_in_arrays_are_server_errors() {
    let Value::Array(items) = whole(b"*2\r\n-MOVED 3999 127.0.0.1:6381\r\n:1\r\n").into_value()
    else {
        panic!("not an array");
    };
    let Some(Value::ServerError(e)) = items.first() else {
        panic!("{items:?}");
    };
    assert_eq!(e.code(), "MOVED");
    assert_eq!(e.details(), Some("3999 127.0.0.1:6381"));
}

#[test]
fn malformed_frames_are_typed_errors() {
    let cases: &[(&[u8], RespError)] = &[
        (b"?\r\n", RespError::UnknownType(b'?')),
        (b"*1\r\n\x00\r\n", RespError::UnknownType(0)),
        (b":abc\r\n", RespError::BadInteger),
        (b":\r\n", RespError::BadInteger),
        (b":99999999999999999999\r\n", RespError::BadInteger),
        (b"$1x\r\n", RespError::BadInteger),
        (b"$-2\r\n", RespError::BadLength(-2)),
        (b"*-2\r\n", RespError::BadLength(-2)),
        (b"~-7\r\n", RespError::BadLength(-7)),
        (b"%-1\r\n", RespError::BadLength(-1)),
        (b"|-1\r\n", RespError::BadLength(-1)),
        (b">-2\r\n", RespError::BadLength(-2)),
        (b"!-1\r\n", RespError::BadLength(-1)),
        (b"=-1\r\n", RespError::BadLength(-1)),
        (
            b"$536870913\r\n",
            RespError::TooLarge {
                len: 536_870_913,
                max: MAX_BULK_LEN,
            },
        ),
        (
            b"*1\r\n=9223372036854775807\r\n",
            RespError::TooLarge {
                len: i64::MAX,
                max: MAX_BULK_LEN,
            },
        ),
        (b"$3\r\nabcXY", RespError::BadLineEnding),
        (b"$3\r\nabc\n\r", RespError::BadLineEnding),
        (b"+\xff\r\n", RespError::BadUtf8),
        (b"_\xff\r\n", RespError::BadUtf8),
        (b",\xff\r\n", RespError::BadUtf8),
        (b",1.2.3\r\n", RespError::BadDouble),
        (b",\r\n", RespError::BadDouble),
        (b"#x\r\n", RespError::BadBoolean),
        (b"#\r\n", RespError::BadBoolean),
        (b"=3\r\nabc\r\n", RespError::BadVerbatim),
        (b">1\r\n:1\r\n", RespError::BadPush),
        (b">1\r\n+OK\r\n", RespError::BadPush),
        (b">1\r\n$1\r\n\xff\r\n", RespError::BadPush),
    ];
    for (input, expected) in cases {
        assert_eq!(
            parse_frame(input).as_ref(),
            Err(expected),
            "{:?}",
            show(input)
        );
        // redis-rs refuses them too, unless documented as stricter here.
        if !matches!(
            expected,
            RespError::BadLength(_) | RespError::TooLarge { .. }
        ) {
            assert!(
                redis::parse_redis_value(input).is_err(),
                "{:?}",
                show(input)
            );
        }
    }
    // Refused by redis-rs itself: its message, short.
    for input in [&b"-\xff\r\n"[..], b"(\xff\r\n"] {
        match parse_frame(input) {
            Err(RespError::Invalid(_)) | Err(RespError::BadUtf8) => {}
            other => panic!("{:?}: {other:?}", show(input)),
        }
    }
    // An integer line that never ends fails without waiting for a CRLF.
    assert_eq!(parse_frame(&[b'$'; 100]), Err(RespError::BadInteger));
    assert_eq!(parse_frame(&[b'*'; 66]), Ok(None));
    assert_eq!(parse_frame(&[b'*'; 67]), Err(RespError::BadInteger));
}

#[test]
fn after_an_error_the_decoder_stays_failed() {
    let mut decoder = Decoder::new();
    let mut frames = Vec::new();
    assert_eq!(
        decoder.decode(b"+OK\r\n?\r\n", &mut frames),
        Err(RespError::UnknownType(b'?'))
    );
    assert_eq!(frames, vec![Frame::Reply(Value::Okay)]);
    assert_eq!(
        decoder.decode(b"+OK\r\n", &mut frames),
        Err(RespError::UnknownType(b'?'))
    );
}

#[test]
fn nesting_is_limited_like_redis_rs() {
    for (kind, leaf) in [
        (&b"*1\r\n"[..], &b":1\r\n"[..]),
        (b"%1\r\n+k\r\n", b"_\r\n"),
        (b">2\r\n+message\r\n", b":1\r\n"),
        (b"|0\r\n", b":1\r\n"),
    ] {
        let mut at_limit = kind.repeat(MAX_DEPTH - 1);
        at_limit.extend_from_slice(leaf);
        assert!(
            parse_frame(&at_limit).unwrap().is_some(),
            "{:?}",
            show(kind)
        );
        assert!(redis::parse_redis_value(&at_limit).is_ok());
        let mut over = kind.repeat(MAX_DEPTH);
        over.extend_from_slice(leaf);
        assert_eq!(parse_frame(&over), Err(RespError::TooDeep));
        assert!(redis::parse_redis_value(&over).is_err());
    }
    // Deep input never overflows the stack, whole or one byte at a time.
    let deep = b"*1\r\n".repeat(100_000);
    assert_eq!(parse_frame(&deep), Err(RespError::TooDeep));
    assert_eq!(feed(deep.chunks(1)), Err(RespError::TooDeep));
}

#[test]
fn huge_claims_wait_without_allocating() {
    // Would be a multi-GB Vec / payload if trusted.
    assert_eq!(parse_frame(b"*9223372036854775807\r\n:1\r\n"), Ok(None));
    assert_eq!(parse_frame(b"%4611686018427387904\r\n"), Ok(None));
    assert_eq!(parse_frame(b"|9223372036854775807\r\n"), Ok(None));
    assert_eq!(parse_frame(b"$536870912\r\nabc"), Ok(None));
    let mut big = b"$1000000\r\n".to_vec();
    big.resize(10 + 999_999, b'x');
    assert_eq!(parse_frame(&big), Ok(None));
    big.extend_from_slice(b"x\r\n");
    let (v, n) = parse_frame(&big).unwrap().unwrap();
    assert_eq!(n, big.len());
    assert_eq!(v, Frame::Reply(Value::BulkString(vec![b'x'; 1_000_000])));
}

#[test]
fn messages_stay_short() {
    let mut line = b"-".to_vec();
    line.extend(std::iter::repeat_n(0xff, 10_000));
    line.extend_from_slice(b"\r\n");
    let Err(e) = parse_frame(&line) else {
        panic!("accepted");
    };
    assert!(e.to_string().len() < 300, "{e}");
}
