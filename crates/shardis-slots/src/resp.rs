//! Incremental RESP reply parser for the client's connection reader.
//!
//! [`parse_reply`] is stateless: the reader appends socket bytes to its buffer,
//! calls it, and on `Ok(Some((value, n)))` drops `n` bytes and calls again.
//! `Ok(None)` means "read more"; an `Err` means the stream can never resync
//! and the connection must be closed.
//!
//! RESP2 (`+ : $ *`) is built here directly because it is every ordinary
//! reply. Error lines and the RESP3 types are rare: their frame's extent is
//! found here, and the value is built by `redis::parse_redis_value` on exactly
//! that frame, because `redis::ServerError` has no public constructor and this
//! keeps one definition of those types. The result equals what
//! `redis::parse_redis_value` returns for the same frame; on malformed input
//! this parser is stricter in a few places (listed on [`RespError`]), never
//! more lenient.

use redis::Value;

/// Deepest nesting accepted; the top-level reply is depth 1.
///
/// Equal to redis-rs' own limit, so that nothing accepted here is refused by
/// `redis::parse_redis_value`; it also bounds this parser's recursion.
pub const MAX_DEPTH: usize = 100;

/// Largest bulk / blob payload accepted: Redis' own `proto-max-bulk-len` default.
pub const MAX_BULK_LEN: usize = 512 * 1024 * 1024;

/// Longest integer / length line accepted (without its CRLF). An `i64` needs
/// 20 characters; the slack admits the whitespace redis-rs tolerates. The
/// bound also lets a desynchronised stream fail fast instead of buffering
/// forever waiting for a CRLF.
const MAX_INT_LINE: usize = 64;

/// The smallest frame: a type byte and CRLF (`_\r\n`, `+\r\n`). Used to
/// refuse `*<huge>` without allocating or walking anything.
const MIN_FRAME: usize = 3;

/// Longest redis-rs error text copied into [`RespError::Invalid`]: its parse
/// errors can quote input bytes, and a message must not carry a whole reply.
const MAX_MESSAGE: usize = 160;

/// Why bytes from a server can never be a valid reply.
///
/// Stricter than redis-rs on purpose (it would accept these): negative
/// lengths other than `-1` (redis-rs reads any as nil), payloads above
/// [`MAX_BULK_LEN`], integer lines longer than 64 bytes.
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
    /// A bulk or blob payload is larger than [`MAX_BULK_LEN`].
    #[error("RESP payload of {len} bytes exceeds the limit of {max}")]
    TooLarge {
        /// The claimed length.
        len: i64,
        /// The limit.
        max: usize,
    },
    /// Arrays/maps/sets nested deeper than [`MAX_DEPTH`].
    #[error("RESP reply nested deeper than {} levels", MAX_DEPTH)]
    TooDeep,
    /// A bulk or blob payload is not followed by `\r\n`.
    #[error("RESP payload not followed by \\r\\n")]
    BadLineEnding,
    /// A simple-string line is not UTF-8 (redis-rs is strict there too).
    #[error("RESP simple string is not valid UTF-8")]
    BadUtf8,
    /// redis-rs refused an error or RESP3 frame (its message, truncated).
    #[error("invalid RESP frame: {0}")]
    Invalid(String),
}

/// Parses one complete reply off the front of `buf`.
///
/// `Ok(Some((value, consumed)))` when a whole reply is there; `Ok(None)` when
/// more bytes are needed; `Err` when the bytes can never be a valid reply
/// (the connection must then be closed).
///
/// Every prefix of a valid reply gives `Ok(None)`. An incomplete bulk string
/// is detected from its header alone, without scanning the payload, so a
/// large value arriving in pieces costs O(1) per call; an incomplete array
/// re-walks the elements already received on each call.
///
/// ```
/// use shardis_slots::parse_reply;
/// let buf = b"*2\r\n$3\r\nfoo\r\n:42\r\n+OK\r\n";
/// let (value, n) = parse_reply(buf).unwrap().unwrap();
/// assert_eq!(value, redis::Value::Array(vec![
///     redis::Value::BulkString(b"foo".to_vec()),
///     redis::Value::Int(42),
/// ]));
/// assert_eq!(parse_reply(&buf[n..]).unwrap(), Some((redis::Value::Okay, 5)));
/// assert_eq!(parse_reply(&buf[..n - 1]).unwrap(), None);
/// ```
pub fn parse_reply(buf: &[u8]) -> Result<Option<(Value, usize)>, RespError> {
    parse_value(buf, 0, 1)
}

/// `Ok(None)`: need more bytes. Positions are absolute offsets into `buf`.
type Step<T> = Result<Option<T>, RespError>;

/// Builds the value starting at `pos`; returns it and the offset just past it.
fn parse_value(buf: &[u8], pos: usize, depth: usize) -> Step<(Value, usize)> {
    let Some(&kind) = buf.get(pos) else {
        return Ok(None);
    };
    if depth > MAX_DEPTH {
        return Err(RespError::TooDeep);
    }
    match kind {
        b'+' => {
            let Some((line, end)) = line(buf, pos + 1) else {
                return Ok(None);
            };
            let value = if line == b"OK" {
                Value::Okay
            } else {
                // Strict, as redis-rs: a simple string is text.
                let text = std::str::from_utf8(line).map_err(|_| RespError::BadUtf8)?;
                Value::SimpleString(text.to_owned())
            };
            Ok(Some((value, end)))
        }
        b':' => {
            let Some((n, end)) = int_line(buf, pos + 1)? else {
                return Ok(None);
            };
            Ok(Some((Value::Int(n), end)))
        }
        b'$' => {
            let Some((n, start)) = int_line(buf, pos + 1)? else {
                return Ok(None);
            };
            if n == -1 {
                return Ok(Some((Value::Nil, start)));
            }
            let Some(end) = payload(buf, start, n)? else {
                return Ok(None);
            };
            let bytes = buf.get(start..end - 2).ok_or(RespError::BadLineEnding)?;
            Ok(Some((Value::BulkString(bytes.to_vec()), end)))
        }
        b'*' => {
            let Some((n, start)) = int_line(buf, pos + 1)? else {
                return Ok(None);
            };
            if n == -1 {
                return Ok(Some((Value::Nil, start)));
            }
            let count = count(n)?;
            if !may_hold(buf, start, count) {
                return Ok(None);
            }
            // `may_hold` bounds `count` by the bytes present.
            let mut items = Vec::with_capacity(count);
            let mut at = start;
            for _ in 0..count {
                let Some((item, next)) = parse_value(buf, at, depth + 1)? else {
                    return Ok(None);
                };
                items.push(item);
                at = next;
            }
            Ok(Some((Value::Array(items), at)))
        }
        b'-' | b'_' | b',' | b'#' | b'(' | b'!' | b'=' | b'%' | b'~' | b'>' | b'|' => {
            let Some(end) = skip(buf, pos, depth)? else {
                return Ok(None);
            };
            let frame = buf.get(pos..end).ok_or(RespError::BadLineEnding)?;
            let value = redis::parse_redis_value(frame)
                .map_err(|e| RespError::Invalid(truncated(e.to_string())))?;
            Ok(Some((value, end)))
        }
        other => Err(RespError::UnknownType(other)),
    }
}

/// Finds the end of the frame at `pos` without building it, with the same
/// completeness and depth rules as [`parse_value`]. Content the frame's
/// builder (redis-rs) validates, such as UTF-8 or doubles, is not checked.
fn skip(buf: &[u8], pos: usize, depth: usize) -> Step<usize> {
    let Some(&kind) = buf.get(pos) else {
        return Ok(None);
    };
    if depth > MAX_DEPTH {
        return Err(RespError::TooDeep);
    }
    let (n, start) = match kind {
        b'+' | b'-' | b':' | b'_' | b',' | b'#' | b'(' => {
            return Ok(line(buf, pos + 1).map(|(_, end)| end));
        }
        b'$' | b'!' | b'=' | b'*' | b'~' | b'>' | b'%' | b'|' => {
            let Some(header) = int_line(buf, pos + 1)? else {
                return Ok(None);
            };
            header
        }
        other => return Err(RespError::UnknownType(other)),
    };
    let elements = match kind {
        // RESP2 nil bulk string.
        b'$' if n == -1 => return Ok(Some(start)),
        b'$' | b'!' | b'=' => return payload(buf, start, n),
        // Nil array / set; `>-1` is an empty push to redis-rs.
        b'*' | b'~' | b'>' if n == -1 => return Ok(Some(start)),
        b'%' => count(n)?.saturating_mul(2),
        b'|' => count(n)?.saturating_mul(2).saturating_add(1),
        _ => count(n)?,
    };
    if !may_hold(buf, start, elements) {
        return Ok(None);
    }
    let mut at = start;
    for _ in 0..elements {
        let Some(next) = skip(buf, at, depth + 1)? else {
            return Ok(None);
        };
        at = next;
    }
    Ok(Some(at))
}

/// The line starting at `from` up to the first CRLF (as redis-rs: a lone
/// `\r` or `\n` is content), and the offset just past the CRLF.
fn line(buf: &[u8], from: usize) -> Option<(&[u8], usize)> {
    let rest = buf.get(from..)?;
    let mut seen = 0;
    loop {
        let nl = seen + rest.get(seen..)?.iter().position(|&b| b == b'\n')?;
        if nl > 0 && rest.get(nl - 1) == Some(&b'\r') {
            return Some((rest.get(..nl - 1)?, from + nl + 1));
        }
        seen = nl + 1;
    }
}

/// An integer line at `from` and the offset past it. Only the first
/// `MAX_INT_LINE + 2` bytes are searched, so a garbage header fails at once.
fn int_line(buf: &[u8], from: usize) -> Step<(i64, usize)> {
    let window_end = buf.len().min(from.saturating_add(MAX_INT_LINE + 2));
    let window = buf.get(..window_end).unwrap_or(buf);
    match line(window, from) {
        Some((text, end)) => Ok(Some((parse_int(text)?, end))),
        None if window_end.saturating_sub(from) >= MAX_INT_LINE + 2 => Err(RespError::BadInteger),
        None => Ok(None),
    }
}

/// Plain `-?[0-9]{1,18}` fast (18 digits cannot overflow); anything else as
/// redis-rs does (`str::trim` then `i64::from_str`), so both accept the same.
fn parse_int(text: &[u8]) -> Result<i64, RespError> {
    let (negative, digits) = match text {
        [b'-', rest @ ..] => (true, rest),
        _ => (false, text),
    };
    if !digits.is_empty() && digits.len() <= 18 {
        let mut n: i64 = 0;
        let mut plain = true;
        for &b in digits {
            let d = b.wrapping_sub(b'0');
            if d > 9 {
                plain = false;
                break;
            }
            n = n * 10 + i64::from(d);
        }
        if plain {
            return Ok(if negative { -n } else { n });
        }
    }
    std::str::from_utf8(text)
        .ok()
        .and_then(|s| s.trim().parse::<i64>().ok())
        .ok_or(RespError::BadInteger)
}

/// Offset past a length-`n` payload at `start` and its CRLF, once present.
/// Needs only the header: an incomplete payload is `None` in O(1).
fn payload(buf: &[u8], start: usize, n: i64) -> Step<usize> {
    if n < 0 {
        return Err(RespError::BadLength(n));
    }
    let len = match usize::try_from(n) {
        Ok(len) if len <= MAX_BULK_LEN => len,
        _ => {
            return Err(RespError::TooLarge {
                len: n,
                max: MAX_BULK_LEN,
            });
        }
    };
    let end = start.saturating_add(len).saturating_add(2);
    if buf.len() < end {
        return Ok(None);
    }
    match buf.get(end - 2..end) {
        Some(b"\r\n") => Ok(Some(end)),
        _ => Err(RespError::BadLineEnding),
    }
}

/// An aggregate's element count; negative counts are refused (callers handle
/// the `-1` nils first).
fn count(n: i64) -> Result<usize, RespError> {
    if n < 0 {
        return Err(RespError::BadLength(n));
    }
    // Beyond usize (32-bit targets) it can never be complete either.
    Ok(usize::try_from(n).unwrap_or(usize::MAX))
}

/// Whether `elements` frames could fit in the bytes after `start`; if not,
/// the reply is certainly incomplete. This bounds preallocation and makes a
/// huge claimed count cost O(1).
fn may_hold(buf: &[u8], start: usize, elements: usize) -> bool {
    buf.len().saturating_sub(start) >= elements.saturating_mul(MIN_FRAME)
}

fn truncated(mut message: String) -> String {
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

/// Structural equality of replies where a NaN double equals itself: `Value`'s own `==`
/// says a RESP3 `,nan` differs from the same bytes parsed again, which is wrong for
/// comparing parsers.
///
/// ```
/// use shardis_slots::resp::same_reply;
/// let nan = redis::Value::Double(f64::NAN);
/// assert!(same_reply(&nan, &nan.clone()));
/// ```
pub fn same_reply(a: &Value, b: &Value) -> bool {
    fn all(a: &[Value], b: &[Value]) -> bool {
        a.len() == b.len() && a.iter().zip(b).all(|(x, y)| same_reply(x, y))
    }
    fn pairs(a: &[(Value, Value)], b: &[(Value, Value)]) -> bool {
        a.len() == b.len()
            && a.iter()
                .zip(b)
                .all(|((k1, v1), (k2, v2))| same_reply(k1, k2) && same_reply(v1, v2))
    }
    match (a, b) {
        (Value::Double(x), Value::Double(y)) => x.to_bits() == y.to_bits(),
        (Value::Array(x), Value::Array(y)) | (Value::Set(x), Value::Set(y)) => all(x, y),
        (Value::Map(x), Value::Map(y)) => pairs(x, y),
        (
            Value::Attribute {
                data: d1,
                attributes: a1,
            },
            Value::Attribute {
                data: d2,
                attributes: a2,
            },
        ) => same_reply(d1, d2) && pairs(a1, a2),
        (Value::Push { kind: k1, data: d1 }, Value::Push { kind: k2, data: d2 }) => {
            k1 == k2 && all(d1, d2)
        }
        _ => a == b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Valid replies, RESP2 and RESP3, including nested errors and binary data.
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
            b"#t\r\n",
            b"#f\r\n",
            b"(3492890328409238509324850943850943825024385\r\n",
            b"!21\r\nSYNTAX invalid syntax\r\n",
            b"!0\r\n\r\n",
            b"=15\r\ntxt:Some string\r\n",
            b"=10\r\nmkd:a\r\nb\r\n\r\n",
            b"%2\r\n+first\r\n:1\r\n$6\r\nsecond\r\n*1\r\n_\r\n",
            b"%0\r\n",
            b"~3\r\n+a\r\n:1\r\n#t\r\n",
            b"~-1\r\n",
            b">3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$1\r\nx\r\n",
            b">2\r\n+invalidate\r\n*1\r\n$1\r\nk\r\n",
            b">0\r\n",
            b"|1\r\n+ttl\r\n:3600\r\n$3\r\nval\r\n",
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

    fn redis_says(frame: &[u8]) -> Value {
        redis::parse_redis_value(frame).unwrap_or_else(|e| {
            panic!("redis-rs refuses {:?}: {e}", String::from_utf8_lossy(frame))
        })
    }

    #[test]
    fn equals_redis_rs_and_consumes_the_frame() {
        for reply in corpus() {
            let (value, n) = parse_reply(&reply)
                .unwrap_or_else(|e| panic!("{:?}: {e}", String::from_utf8_lossy(&reply)))
                .unwrap_or_else(|| panic!("{:?}: incomplete", String::from_utf8_lossy(&reply)));
            assert_eq!(n, reply.len(), "{:?}", String::from_utf8_lossy(&reply));
            let expected = redis_says(&reply);
            assert!(same_reply(&value, &expected), "{value:?} != {expected:?}");
        }
    }

    #[test]
    fn every_prefix_is_incomplete() {
        for reply in corpus() {
            for cut in 0..reply.len() {
                assert_eq!(
                    parse_reply(&reply[..cut]),
                    Ok(None),
                    "{:?} cut at {cut}",
                    String::from_utf8_lossy(&reply)
                );
            }
        }
    }

    #[test]
    fn back_to_back_replies() {
        let corpus = corpus();
        for first in &corpus {
            for second in corpus.iter().take(12) {
                let mut buf = first.clone();
                buf.extend_from_slice(second);
                let (_, n) = parse_reply(&buf).unwrap().unwrap();
                assert_eq!(n, first.len());
                let (_, m) = parse_reply(&buf[n..]).unwrap().unwrap();
                assert_eq!(m, second.len());
            }
        }
    }

    #[test]
    fn resp2_values_are_built_directly() {
        let parse = |b: &[u8]| parse_reply(b).unwrap().unwrap().0;
        assert_eq!(parse(b"+OK\r\n"), Value::Okay);
        assert_eq!(parse(b"+QUEUED\r\n"), Value::SimpleString("QUEUED".into()));
        assert_eq!(parse(b":-42\r\n"), Value::Int(-42));
        assert_eq!(parse(b"$-1\r\n"), Value::Nil);
        assert_eq!(parse(b"*-1\r\n"), Value::Nil);
        assert_eq!(parse(b"$0\r\n\r\n"), Value::BulkString(vec![]));
        assert_eq!(
            parse(b"$4\r\n\r\n\r\n\r\n"),
            Value::BulkString(b"\r\n\r\n".to_vec())
        );
        assert_eq!(
            parse(b"*2\r\n$1\r\na\r\n*0\r\n"),
            Value::Array(vec![Value::BulkString(b"a".to_vec()), Value::Array(vec![])])
        );
    }

    #[test]
    fn errors_nested_in_arrays_are_server_errors() {
        let buf = b"*2\r\n-MOVED 3999 127.0.0.1:6381\r\n:1\r\n";
        let Value::Array(items) = parse_reply(buf).unwrap().unwrap().0 else {
            panic!("not an array");
        };
        let Some(Value::ServerError(e)) = items.first() else {
            panic!("{items:?}");
        };
        assert_eq!(e.code(), "MOVED");
        assert_eq!(e.details(), Some("3999 127.0.0.1:6381"));
    }

    #[test]
    fn malformed_replies_are_errors() {
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
            (b"!-1\r\n", RespError::BadLength(-1)),
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
        ];
        for (input, expected) in cases {
            assert_eq!(
                parse_reply(input).as_ref(),
                Err(expected),
                "{:?}",
                String::from_utf8_lossy(input)
            );
        }
        // redis-rs refuses these frames too; the message is short.
        for input in [
            &b"#x\r\n"[..],
            b",1.2.3\r\n",
            b"=3\r\nabc\r\n",
            b">1\r\n:1\r\n",
        ] {
            assert!(redis::parse_redis_value(input).is_err());
            match parse_reply(input) {
                Err(RespError::Invalid(m)) => assert!(m.chars().count() <= MAX_MESSAGE + 1),
                other => panic!("{:?}: {other:?}", String::from_utf8_lossy(input)),
            }
        }
        // An integer line that never ends fails without waiting for a CRLF.
        assert_eq!(parse_reply(&[b'$'; 100]), Err(RespError::BadInteger));
        assert_eq!(parse_reply(&[b'*'; 66]), Ok(None));
        assert_eq!(parse_reply(&[b'*'; 67]), Err(RespError::BadInteger));
    }

    #[test]
    fn nesting_is_limited_like_redis_rs() {
        for (kind, leaf) in [
            (&b"*1\r\n"[..], &b":1\r\n"[..]),
            (b"%1\r\n+k\r\n", b"_\r\n"),
        ] {
            let mut at_limit = kind.repeat(MAX_DEPTH - 1);
            at_limit.extend_from_slice(leaf);
            assert!(parse_reply(&at_limit).unwrap().is_some());
            let mut over = kind.repeat(MAX_DEPTH);
            over.extend_from_slice(leaf);
            assert_eq!(parse_reply(&over), Err(RespError::TooDeep));
            assert!(redis::parse_redis_value(&over).is_err());
        }
        // Deep input never overflows the stack.
        assert_eq!(
            parse_reply(&b"*1\r\n".repeat(100_000)),
            Err(RespError::TooDeep)
        );
    }

    #[test]
    fn huge_claims_wait_without_allocating() {
        // Would be a multi-GB Vec / payload if trusted.
        assert_eq!(parse_reply(b"*9223372036854775807\r\n:1\r\n"), Ok(None));
        assert_eq!(parse_reply(b"%4611686018427387904\r\n"), Ok(None));
        assert_eq!(parse_reply(b"|9223372036854775807\r\n"), Ok(None));
        assert_eq!(parse_reply(b"$536870912\r\nabc"), Ok(None));
        let mut big = b"$1000000\r\n".to_vec();
        big.resize(10 + 999_999, b'x');
        assert_eq!(parse_reply(&big), Ok(None));
        big.extend_from_slice(b"x\r\n");
        let (v, n) = parse_reply(&big).unwrap().unwrap();
        assert_eq!(n, big.len());
        assert_eq!(v, Value::BulkString(vec![b'x'; 1_000_000]));
    }

    #[test]
    fn messages_stay_short() {
        let mut line = b"#".to_vec();
        line.extend(std::iter::repeat_n(b'y', 10_000));
        line.extend_from_slice(b"\r\n");
        let Err(e) = parse_reply(&line) else {
            panic!("accepted");
        };
        assert!(e.to_string().len() < 300, "{e}");
        assert_eq!(truncated("é".repeat(200)).chars().count(), 81);
    }
}
