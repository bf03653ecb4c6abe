//! Byte-level pieces of a frame: lines, integer lines and payloads. Every
//! function takes absolute offsets into `buf`, never indexes out of it, and
//! answers `None`/`Ok(None)` for "not all there yet".

use crate::{MAX_BULK_LEN, RespError};

/// Longest integer / length line accepted (without its CRLF). An `i64` needs
/// 20 characters; the slack admits the whitespace redis-rs tolerates. The
/// bound also lets a desynchronised stream fail fast instead of buffering
/// forever waiting for a CRLF.
pub(crate) const MAX_INT_LINE: usize = 64;

/// `Ok(None)`: need more bytes.
pub(crate) type Step<T> = Result<Option<T>, RespError>;

/// A line found, or how far the search for its end has gone.
pub(crate) enum Line<'a> {
    /// The line's content (without CRLF) and the offset just past the CRLF.
    Done(&'a [u8], usize),
    /// No CRLF yet; the bytes from `from` up to `from + searched` hold none
    /// (the search can resume there once more bytes arrive).
    Pending { searched: usize },
}

/// The line starting at `from` up to the first CRLF (as redis-rs: a lone
/// `\r` or `\n` is content). The search for `\n` starts `searched` bytes
/// after `from`: the caller's memory of an earlier, unfinished search, so a
/// long line arriving in many reads is scanned once.
pub(crate) fn line(buf: &[u8], from: usize, searched: usize) -> Line<'_> {
    let Some(rest) = buf.get(from..) else {
        return Line::Pending { searched: 0 };
    };
    let mut seen = searched.min(rest.len());
    loop {
        let Some(nl) = rest
            .get(seen..)
            .and_then(|tail| tail.iter().position(|&b| b == b'\n'))
            .map(|i| seen + i)
        else {
            return Line::Pending {
                searched: rest.len(),
            };
        };
        if nl > 0
            && rest.get(nl - 1) == Some(&b'\r')
            && let Some(text) = rest.get(..nl - 1)
        {
            return Line::Done(text, from + nl + 1);
        }
        seen = nl + 1;
    }
}

/// An integer line at `from` and the offset past it. Only the first
/// `MAX_INT_LINE + 2` bytes are searched, so a garbage header fails at once.
pub(crate) fn int_line(buf: &[u8], from: usize) -> Step<(i64, usize)> {
    // The common case in one pass: a plain integer followed by CRLF, all there. Anything
    // else — incomplete, longer, spaces — takes the general path below.
    let rest = buf.get(from..).unwrap_or_default();
    if let Some((n, len)) = plain_int(rest)
        && rest.get(len..len + 2) == Some(b"\r\n".as_slice())
    {
        return Ok(Some((n, from + len + 2)));
    }
    let window_end = buf.len().min(from.saturating_add(MAX_INT_LINE + 2));
    let window = buf.get(..window_end).unwrap_or(buf);
    match line(window, from, 0) {
        Line::Done(text, end) => Ok(Some((parse_int(text)?, end))),
        Line::Pending { .. } if window_end.saturating_sub(from) >= MAX_INT_LINE + 2 => {
            Err(RespError::BadInteger)
        }
        Line::Pending { .. } => Ok(None),
    }
}

/// The plain integer `-?[0-9]{1,18}` at the start of `bytes` (18 digits cannot overflow) and
/// how many bytes it took; `None` when `bytes` does not start with one.
fn plain_int(bytes: &[u8]) -> Option<(i64, usize)> {
    let negative = bytes.first() == Some(&b'-');
    let start = usize::from(negative);
    let (n, len) = bytes
        .iter()
        .skip(start)
        .take(18)
        .take_while(|b| b.is_ascii_digit())
        .fold((0i64, 0usize), |(n, len), b| {
            (n * 10 + i64::from(b - b'0'), len + 1)
        });
    (len > 0).then_some((if negative { -n } else { n }, start + len))
}

/// Plain `-?[0-9]{1,18}` fast ([`plain_int`]); anything else as redis-rs does (`str::trim`
/// then `i64::from_str`), so both accept the same.
pub(crate) fn parse_int(text: &[u8]) -> Result<i64, RespError> {
    if let Some((n, len)) = plain_int(text)
        && len == text.len()
    {
        return Ok(n);
    }
    std::str::from_utf8(text)
        .ok()
        .and_then(|s| s.trim().parse::<i64>().ok())
        .ok_or(RespError::BadInteger)
}

/// The length-`n` payload at `start` and the offset past its CRLF, once all
/// of it is there. Needs only the header: an incomplete payload is `None`
/// in O(1), without looking at its bytes.
pub(crate) fn payload(buf: &[u8], start: usize, n: i64) -> Step<(&[u8], usize)> {
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
    let body_end = start.saturating_add(len);
    let end = body_end.saturating_add(2);
    if buf.len() < end {
        return Ok(None);
    }
    match (buf.get(start..body_end), buf.get(body_end..end)) {
        (Some(body), Some(b"\r\n")) => Ok(Some((body, end))),
        _ => Err(RespError::BadLineEnding),
    }
}

/// An aggregate's element count; negative counts are refused (callers handle
/// the nils first).
pub(crate) fn count(n: i64) -> Result<usize, RespError> {
    if n < 0 {
        return Err(RespError::BadLength(n));
    }
    // Beyond usize (32-bit targets) it can never be complete either.
    Ok(usize::try_from(n).unwrap_or(usize::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn done(l: Line<'_>) -> Option<(&[u8], usize)> {
        match l {
            Line::Done(text, end) => Some((text, end)),
            Line::Pending { .. } => None,
        }
    }

    #[test]
    fn lines_end_at_the_first_crlf() {
        assert_eq!(
            done(line(b"+a\rb\nc\r\r\nzz", 1, 0)),
            Some((&b"a\rb\nc\r"[..], 9))
        );
        assert_eq!(done(line(b"+abc\r", 1, 0)), None);
        assert_eq!(done(line(b"", 5, 0)), None);
    }

    #[test]
    fn a_resumed_search_finds_a_crlf_split_over_two_reads() {
        let whole = b"+hello\r\nrest";
        // First read ends on the `\r`: searched 6 bytes after `+`.
        let Line::Pending { searched } = line(&whole[..7], 1, 0) else {
            panic!("complete too early");
        };
        assert_eq!(searched, 6);
        assert_eq!(done(line(whole, 1, searched)), Some((&b"hello"[..], 8)));
        // A stale hint beyond the buffer never panics.
        assert_eq!(done(line(b"+x", 1, 99)), None);
    }

    #[test]
    fn integers_parse_like_redis_rs() {
        assert_eq!(parse_int(b"-12"), Ok(-12));
        assert_eq!(parse_int(b" 7 "), Ok(7));
        assert_eq!(parse_int(b"+7"), Ok(7));
        assert_eq!(parse_int(b"9223372036854775807"), Ok(i64::MAX));
        assert_eq!(parse_int(b"-9223372036854775808"), Ok(i64::MIN));
        assert_eq!(
            parse_int(b"9223372036854775808"),
            Err(RespError::BadInteger)
        );
        assert_eq!(parse_int(b""), Err(RespError::BadInteger));
        assert_eq!(parse_int(b"-"), Err(RespError::BadInteger));
        assert_eq!(parse_int(b"\xff"), Err(RespError::BadInteger));
    }

    #[test]
    fn payloads_wait_for_their_whole_length() {
        assert_eq!(payload(b"$3\r\nab", 4, 3), Ok(None));
        assert_eq!(payload(b"$3\r\nabc\r", 4, 3), Ok(None));
        assert_eq!(payload(b"$3\r\nabc\r\n", 4, 3), Ok(Some((&b"abc"[..], 9))));
        assert_eq!(payload(b"$3\r\nabcde", 4, 3), Err(RespError::BadLineEnding));
        assert_eq!(payload(b"", 0, -1), Err(RespError::BadLength(-1)));
        assert!(matches!(
            payload(b"", 0, i64::MAX),
            Err(RespError::TooLarge { .. })
        ));
    }
}
