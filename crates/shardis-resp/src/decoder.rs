//! The incremental decoder: a stack of half-built aggregates kept between
//! calls, so every byte of a reply is looked at once however many reads it
//! arrives in.

use redis::{PushKind, Value, VerbatimFormat};

use crate::error::truncated;
use crate::scan::{self, Line, Step};
use crate::{MAX_DEPTH, RespError};

/// The smallest frame: a type byte and CRLF (`_\r\n`, `+\r\n`). Bounds the
/// capacity reserved for a claimed element count by the bytes present, so a
/// huge claim costs nothing until its elements arrive.
const MIN_FRAME: usize = 3;

/// One complete top-level frame off the wire.
///
/// The value is exactly what `redis::parse_redis_value` builds from the same
/// bytes. A RESP3 attribute (`|`) is *attached*, as redis-rs does it: the
/// attribute and the frame that follows it are one frame,
/// `Value::Attribute { data, attributes }`, so an attribute is never counted
/// as a reply of its own; the frame is a push or a reply according to its
/// `data`.
///
/// ```
/// use shardis_resp::{Frame, parse_frame};
/// let (frame, _) = parse_frame(b">2\r\n$10\r\ninvalidate\r\n*1\r\n$1\r\nk\r\n")
///     .unwrap()
///     .unwrap();
/// assert!(frame.is_push());
/// let (frame, _) = parse_frame(b"|1\r\n+ttl\r\n:5\r\n:1\r\n").unwrap().unwrap();
/// assert!(matches!(frame, Frame::Reply(redis::Value::Attribute { .. })));
/// ```
#[derive(Debug, Clone, PartialEq)]
pub enum Frame {
    /// The reply to a command (any value but a push, attributes attached).
    Reply(Value),
    /// An out-of-band RESP3 push (`>`): pub/sub messages, client-side
    /// caching invalidations. Never the reply to a command. The value is a
    /// `Value::Push`, or a `Value::Attribute` whose data is one.
    Push(Value),
}

impl Frame {
    fn new(value: Value) -> Frame {
        let mut inner = &value;
        while let Value::Attribute { data, .. } = inner {
            inner = data;
        }
        if matches!(inner, Value::Push { .. }) {
            Frame::Push(value)
        } else {
            Frame::Reply(value)
        }
    }

    /// Whether this is a push rather than a reply.
    ///
    /// ```
    /// let (frame, _) = shardis_resp::parse_frame(b"+OK\r\n").unwrap().unwrap();
    /// assert!(!frame.is_push());
    /// ```
    pub fn is_push(&self) -> bool {
        matches!(self, Frame::Push(_))
    }

    /// The frame's value.
    ///
    /// ```
    /// let (frame, _) = shardis_resp::parse_frame(b":7\r\n").unwrap().unwrap();
    /// assert_eq!(frame.value(), &redis::Value::Int(7));
    /// ```
    pub fn value(&self) -> &Value {
        match self {
            Frame::Reply(value) | Frame::Push(value) => value,
        }
    }

    /// The frame's value, owned.
    ///
    /// ```
    /// let (frame, _) = shardis_resp::parse_frame(b"#t\r\n").unwrap().unwrap();
    /// assert_eq!(frame.into_value(), redis::Value::Boolean(true));
    /// ```
    pub fn into_value(self) -> Value {
        match self {
            Frame::Reply(value) | Frame::Push(value) => value,
        }
    }
}

/// Decodes RESP2 and RESP3 frames from a byte stream that arrives in pieces.
///
/// The caller owns the buffer: it appends what it reads, passes the
/// unconsumed bytes (from the first byte not yet consumed), and drops the
/// bytes consumed. Every call consumes every complete element it finds,
/// keeps the aggregates they belong to on its own stack, and returns the
/// frames completed; an element cut short stays in the caller's buffer and
/// is looked at again only from its start (a bulk string's header alone says
/// whether its body is all there; a line's search for CRLF resumes where it
/// stopped). So a reply costs time linear in its size however it is split.
///
/// Contract: the bytes passed start where the last call stopped consuming,
/// and bytes once passed are passed again unchanged. Breaking it gives wrong
/// frames, never a panic.
///
/// After an error the stream cannot be resynchronised: every later call
/// returns the same error (close the connection).
///
/// Nesting is bounded by [`MAX_DEPTH`] with no recursion, so a hostile peer
/// cannot overflow the stack.
///
/// ```
/// use shardis_resp::{Decoder, Frame};
/// use redis::Value;
///
/// let mut decoder = Decoder::new();
/// let mut buf = Vec::new();
/// let mut frames = Vec::new();
/// for read in [&b"*2\r\n$3\r\nfoo\r\n$3\r\nb"[..], b"ar\r\n>2\r\n+message\r\n:1\r\n+OK\r\n"] {
///     buf.extend_from_slice(read);
///     let consumed = decoder.decode(&buf, &mut frames).unwrap();
///     buf.drain(..consumed);
/// }
/// assert!(buf.is_empty());
/// assert_eq!(frames[0], Frame::Reply(Value::Array(vec![
///     Value::BulkString(b"foo".to_vec()),
///     Value::BulkString(b"bar".to_vec()),
/// ])));
/// assert!(frames[1].is_push());
/// assert_eq!(frames[2], Frame::Reply(Value::Okay));
/// ```
#[derive(Debug, Default)]
pub struct Decoder {
    /// Aggregates opened and not yet complete, outermost first.
    stack: Vec<Partial>,
    /// How far the search for the CRLF of the line element at the front of
    /// the caller's buffer has gone (0 when that element is not a line).
    pub(crate) searched: usize,
    /// Set by the first error; repeated from then on.
    failed: Option<RespError>,
}

#[derive(Debug)]
struct Partial {
    kind: Aggregate,
    /// Elements still to come (at least 1 while on the stack).
    left: usize,
    items: Vec<Value>,
}

#[derive(Debug, Clone, Copy)]
enum Aggregate {
    Array,
    Set,
    /// `2n` elements: keys and values alternating.
    Map,
    /// `2n + 1` elements: the attribute pairs, then the data they describe.
    Attribute,
    /// The kind, then the data.
    Push,
}

/// What one element's bytes are.
enum Element {
    Value(Value),
    /// An aggregate header and its element count.
    Open(Aggregate, usize),
}

impl Decoder {
    /// A decoder at the start of a stream.
    ///
    /// ```
    /// let mut decoder = shardis_resp::Decoder::new();
    /// let mut frames = Vec::new();
    /// assert_eq!(decoder.decode(b"+PONG\r\n", &mut frames), Ok(7));
    /// ```
    pub fn new() -> Decoder {
        Decoder::default()
    }

    /// Decodes every complete frame in `buf` into `frames`, in order, and
    /// returns how many bytes of `buf` were consumed; the caller drops those
    /// and keeps the rest for the next call, with more bytes appended.
    ///
    /// Consumed bytes include the complete elements of a frame not yet
    /// complete (their values are kept here), so a large reply never makes
    /// the caller's buffer hold more than one element's bytes.
    ///
    /// On `Err` the frames completed before the bad bytes are in `frames`;
    /// the stream is unusable from then on.
    ///
    /// ```
    /// use shardis_resp::{Decoder, Frame};
    /// let mut decoder = Decoder::new();
    /// let mut frames = Vec::new();
    /// // Two whole replies and the start of a third: the array header and
    /// // its first element are consumed, the cut bulk string is not.
    /// let buf = b":1\r\n:2\r\n*2\r\n:3\r\n$5\r\nhel";
    /// assert_eq!(decoder.decode(buf, &mut frames), Ok(16));
    /// assert_eq!(frames.len(), 2);
    /// assert_eq!(decoder.decode(b"$5\r\nhello\r\n", &mut frames), Ok(11));
    /// assert_eq!(frames.len(), 3);
    /// ```
    pub fn decode(&mut self, buf: &[u8], frames: &mut Vec<Frame>) -> Result<usize, RespError> {
        let mut consumed = 0;
        loop {
            let rest = buf.get(consumed..).unwrap_or_default();
            let (frame, n) = self.decode_frame(rest)?;
            consumed += n;
            match frame {
                Some(frame) => frames.push(frame),
                None => return Ok(consumed),
            }
        }
    }

    /// Decodes at most one frame off the front of `buf`: the frame if it
    /// completed, and the bytes consumed (with `None`, the bytes of elements
    /// kept for a frame still incomplete).
    ///
    /// ```
    /// let mut decoder = shardis_resp::Decoder::new();
    /// let (frame, n) = decoder.decode_frame(b":1\r\n:2\r\n").unwrap();
    /// assert_eq!((frame.unwrap().into_value(), n), (redis::Value::Int(1), 4));
    /// ```
    pub fn decode_frame(&mut self, buf: &[u8]) -> Result<(Option<Frame>, usize), RespError> {
        // Most replies are one complete bulk string, integer or `+OK`: decoded here in a few
        // instructions of code. Every command's reply passes through this, and the general
        // path's code is large enough to crowd the callers' out of the instruction cache.
        if self.stack.is_empty()
            && self.searched == 0
            && self.failed.is_none()
            && let Some((value, end)) = simple(buf)
        {
            return Ok((Some(Frame::Reply(value)), end));
        }
        self.decode_general(buf)
    }

    /// [`Decoder::decode_frame`] of anything: aggregates, partial frames, every RESP3 type, and
    /// errors (which leave the decoder failed).
    #[inline(never)]
    fn decode_general(&mut self, buf: &[u8]) -> Result<(Option<Frame>, usize), RespError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        let result = self.advance(buf);
        if let Err(e) = &result {
            self.failed = Some(e.clone());
            self.stack = Vec::new();
            self.searched = 0;
        }
        result
    }

    fn advance(&mut self, buf: &[u8]) -> Result<(Option<Frame>, usize), RespError> {
        let mut pos = 0;
        'element: loop {
            let Some(&kind) = buf.get(pos) else {
                return Ok((None, pos));
            };
            // This element sits at depth `stack.len() + 1`.
            if self.stack.len() >= MAX_DEPTH {
                return Err(RespError::TooDeep);
            }
            let Some((element, end)) = self.element(buf, pos, kind)? else {
                return Ok((None, pos));
            };
            pos = end;
            self.searched = 0;
            let mut value = match element {
                Element::Value(value) => value,
                Element::Open(aggregate, 0) => aggregate.finish(Vec::new())?,
                Element::Open(aggregate, left) => {
                    let room = buf.len().saturating_sub(pos) / MIN_FRAME;
                    self.stack.push(Partial {
                        kind: aggregate,
                        left,
                        items: Vec::with_capacity(left.min(room)),
                    });
                    continue;
                }
            };
            // Hand the value to its parent, closing every aggregate it completes.
            while let Some(mut parent) = self.stack.pop() {
                parent.items.push(value);
                parent.left = parent.left.saturating_sub(1);
                if parent.left > 0 {
                    self.stack.push(parent);
                    continue 'element;
                }
                value = parent.kind.finish(parent.items)?;
            }
            return Ok((Some(Frame::new(value)), pos));
        }
    }

    /// The element at `pos` (type byte `kind`) and the offset past it, or
    /// `None` when it is not all there.
    fn element(&mut self, buf: &[u8], pos: usize, kind: u8) -> Step<(Element, usize)> {
        let from = pos + 1;
        match kind {
            b'+' | b'-' | b'_' | b',' | b'#' | b'(' => {
                let (text, end) = match scan::line(buf, from, self.searched) {
                    Line::Done(text, end) => (text, end),
                    Line::Pending { searched } => {
                        self.searched = searched;
                        return Ok(None);
                    }
                };
                let value = match kind {
                    b'+' if text == b"OK" => Value::Okay,
                    b'+' => Value::SimpleString(utf8(text)?.to_owned()),
                    b'_' => {
                        utf8(text)?;
                        Value::Nil
                    }
                    b',' => utf8(text)?
                        .trim()
                        .parse::<f64>()
                        .map(Value::Double)
                        .map_err(|_| RespError::BadDouble)?,
                    b'#' => match text {
                        b"t" => Value::Boolean(true),
                        b"f" => Value::Boolean(false),
                        _ => return Err(RespError::BadBoolean),
                    },
                    // `-` and `(`: built by redis-rs (`ServerError` has no public
                    // constructor; `BigNumber`'s type depends on its features).
                    _ => by_redis_rs(buf.get(pos..end).unwrap_or_default())?,
                };
                Ok(Some((Element::Value(value), end)))
            }
            b':' => {
                Ok(scan::int_line(buf, from)?.map(|(n, end)| (Element::Value(Value::Int(n)), end)))
            }
            b'$' | b'!' | b'=' => {
                let Some((n, start)) = scan::int_line(buf, from)? else {
                    return Ok(None);
                };
                if kind == b'$' && n == -1 {
                    return Ok(Some((Element::Value(Value::Nil), start)));
                }
                let Some((body, end)) = scan::payload(buf, start, n)? else {
                    return Ok(None);
                };
                let value = match kind {
                    b'$' => Value::BulkString(body.to_vec()),
                    b'=' => verbatim(body)?,
                    _ => by_redis_rs(buf.get(pos..end).unwrap_or_default())?,
                };
                Ok(Some((Element::Value(value), end)))
            }
            b'*' | b'~' | b'%' | b'|' | b'>' => {
                let Some((n, end)) = scan::int_line(buf, from)? else {
                    return Ok(None);
                };
                let element = match (kind, n) {
                    (b'*' | b'~', -1) => Element::Value(Value::Nil),
                    // As redis-rs: `>0` and `>-1` are an empty push of no kind.
                    (b'>', 0 | -1) => Element::Value(Value::Push {
                        kind: PushKind::Other(String::new()),
                        data: Vec::new(),
                    }),
                    (b'*', _) => Element::Open(Aggregate::Array, scan::count(n)?),
                    (b'~', _) => Element::Open(Aggregate::Set, scan::count(n)?),
                    (b'>', _) => Element::Open(Aggregate::Push, scan::count(n)?),
                    (b'%', _) => Element::Open(Aggregate::Map, scan::count(n)?.saturating_mul(2)),
                    _ => Element::Open(
                        Aggregate::Attribute,
                        scan::count(n)?.saturating_mul(2).saturating_add(1),
                    ),
                };
                Ok(Some((element, end)))
            }
            other => Err(RespError::UnknownType(other)),
        }
    }
}

/// A complete, well-formed top-level bulk string (`$n`, `$-1`), integer or `+OK` at the start
/// of `buf`, and the offset past it; `None` for anything else, left to the general path (which
/// decides it the same way, and words any error).
#[inline]
fn simple(buf: &[u8]) -> Option<(Value, usize)> {
    match buf.first()? {
        b'$' => {
            let (n, start) = scan::int_line(buf, 1).ok()??;
            if n == -1 {
                return Some((Value::Nil, start));
            }
            let (body, end) = scan::payload(buf, start, n).ok()??;
            Some((Value::BulkString(body.to_vec()), end))
        }
        b':' => {
            let (n, end) = scan::int_line(buf, 1).ok()??;
            Some((Value::Int(n), end))
        }
        b'+' if buf.starts_with(b"+OK\r\n") => Some((Value::Okay, 5)),
        _ => None,
    }
}

impl Aggregate {
    /// The value of a complete aggregate from its elements.
    fn finish(self, mut items: Vec<Value>) -> Result<Value, RespError> {
        Ok(match self {
            Aggregate::Array => Value::Array(items),
            Aggregate::Set => Value::Set(items),
            Aggregate::Map => Value::Map(pairs(items)),
            Aggregate::Attribute => {
                // 2n + 1 elements, so there is a last one.
                let data = items.pop().unwrap_or_default();
                Value::Attribute {
                    data: Box::new(data),
                    attributes: pairs(items),
                }
            }
            Aggregate::Push => {
                let mut items = items.into_iter();
                let kind = match items.next() {
                    Some(Value::BulkString(kind)) => {
                        String::from_utf8(kind).map_err(|_| RespError::BadPush)?
                    }
                    Some(Value::SimpleString(kind)) => kind,
                    _ => return Err(RespError::BadPush),
                };
                Value::Push {
                    kind: push_kind(kind),
                    data: items.collect(),
                }
            }
        })
    }
}

/// Alternating keys and values as pairs.
fn pairs(items: Vec<Value>) -> Vec<(Value, Value)> {
    let mut out = Vec::with_capacity(items.len() / 2);
    let mut items = items.into_iter();
    while let (Some(key), Some(value)) = (items.next(), items.next()) {
        out.push((key, value));
    }
    out
}

/// The kind of a push, as redis-rs names it (its own table is private).
fn push_kind(kind: String) -> PushKind {
    match kind.as_str() {
        "invalidate" => PushKind::Invalidate,
        "message" => PushKind::Message,
        "pmessage" => PushKind::PMessage,
        "smessage" => PushKind::SMessage,
        "unsubscribe" => PushKind::Unsubscribe,
        "punsubscribe" => PushKind::PUnsubscribe,
        "sunsubscribe" => PushKind::SUnsubscribe,
        "subscribe" => PushKind::Subscribe,
        "psubscribe" => PushKind::PSubscribe,
        "ssubscribe" => PushKind::SSubscribe,
        _ => PushKind::Other(kind),
    }
}

/// A verbatim string's body: `fmt:text` (redis-rs reads it lossily).
fn verbatim(body: &[u8]) -> Result<Value, RespError> {
    let body = String::from_utf8_lossy(body);
    let (format, text) = body.split_once(':').ok_or(RespError::BadVerbatim)?;
    let format = match format {
        "txt" => VerbatimFormat::Text,
        "mkd" => VerbatimFormat::Markdown,
        other => VerbatimFormat::Unknown(other.to_owned()),
    };
    Ok(Value::VerbatimString {
        format,
        text: text.to_owned(),
    })
}

fn utf8(text: &[u8]) -> Result<&str, RespError> {
    std::str::from_utf8(text).map_err(|_| RespError::BadUtf8)
}

/// One complete scalar frame built by redis-rs.
fn by_redis_rs(frame: &[u8]) -> Result<Value, RespError> {
    redis::parse_redis_value(frame).map_err(|e| RespError::Invalid(truncated(e.to_string())))
}

/// Parses one complete frame off the front of `buf`, with no state kept:
/// `Ok(Some((frame, consumed)))` when a whole frame is there, `Ok(None)`
/// when more bytes are needed (every prefix of a valid frame), `Err` when
/// the bytes can never be a valid frame.
///
/// Each call starts from `buf`'s first byte: a connection reading a large
/// reply in pieces should keep a [`Decoder`] instead. This is for whole
/// buffers (tests, fuzzing, captured replies).
///
/// ```
/// use shardis_resp::{Frame, parse_frame};
/// let buf = b"*2\r\n$3\r\nfoo\r\n:42\r\n+OK\r\n";
/// let (frame, n) = parse_frame(buf).unwrap().unwrap();
/// assert_eq!(frame, Frame::Reply(redis::Value::Array(vec![
///     redis::Value::BulkString(b"foo".to_vec()),
///     redis::Value::Int(42),
/// ])));
/// assert_eq!(parse_frame(&buf[n..]).unwrap(), Some((Frame::Reply(redis::Value::Okay), 5)));
/// assert_eq!(parse_frame(&buf[..n - 1]).unwrap(), None);
/// ```
pub fn parse_frame(buf: &[u8]) -> Result<Option<(Frame, usize)>, RespError> {
    match Decoder::new().decode_frame(buf)? {
        (Some(frame), n) => Ok(Some((frame, n))),
        (None, _) => Ok(None),
    }
}
