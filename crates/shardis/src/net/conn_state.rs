//! The decisions of one pipelined connection, with no socket: who waits for which reply, what
//! is queued for writing and when it may be written, when the node counts as stalled, and
//! what closing means for the callers still waiting. `conn.rs` is the thin tokio shell that
//! moves bytes and calls into this (in the manner of quinn-proto); every rule here is unit
//! tested from bytes and values alone.
//!
//! Two parts: [`ConnState`] (shared by callers and the reader, behind one short lock) and
//! [`ReplyReader`] (owned by the reader task: the read buffer and the RESP decoder).

use std::collections::VecDeque;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use redis::{RedisError, RedisResult, Value};
use tokio::sync::oneshot;
use tokio::time::Instant;

/// A caller waiting for its reply (or, for a pipeline, its replies).
pub(crate) enum Waiter {
    One(oneshot::Sender<RedisResult<Value>>),
    /// A read that may be answered elsewhere: released (sent `None`) when the node holds this
    /// connection's replies, e.g. its writes under `CLIENT PAUSE WRITE` (see
    /// [`ConnState::release_reads`]); its reply, when it comes, is then dropped here.
    Read(Option<oneshot::Sender<Option<RedisResult<Value>>>>),
    Many {
        reply: oneshot::Sender<RedisResult<Vec<Value>>>,
        /// Leading replies to drop (`MULTI`, `QUEUED`, …).
        skip: usize,
        /// Replies to keep after those.
        keep: usize,
        /// Replies still to come, kept or not: every reply the pipeline produces is consumed
        /// here, whatever the caller asked to keep, so the next waiter gets its own.
        left: usize,
        got: Vec<Value>,
    },
}

impl Waiter {
    /// Takes one reply of a pipeline; true when the waiter has all it waits for.
    fn feed(&mut self, value: Value) -> bool {
        match self {
            Waiter::One(_) | Waiter::Read(_) => true,
            Waiter::Many {
                skip,
                keep,
                left,
                got,
                ..
            } => {
                if *skip > 0 {
                    *skip -= 1;
                } else if got.len() < *keep {
                    got.push(value);
                }
                *left = left.saturating_sub(1);
                *left == 0
            }
        }
    }

    /// Hands the reply over (a caller that gave up meanwhile simply does not get it).
    pub fn answer(self, value: Option<Value>) {
        match self {
            Waiter::One(reply) => {
                let _ = reply.send(Ok(value.unwrap_or(Value::Nil)));
            }
            Waiter::Read(Some(reply)) => {
                let _ = reply.send(Some(Ok(value.unwrap_or(Value::Nil))));
            }
            Waiter::Read(None) => {}
            Waiter::Many { reply, got, .. } => {
                let _ = reply.send(Ok(got));
            }
        }
    }

    pub fn fail(self, error: RedisError) {
        match self {
            Waiter::One(reply) => {
                let _ = reply.send(Err(error));
            }
            Waiter::Read(Some(reply)) => {
                let _ = reply.send(Some(Err(error)));
            }
            Waiter::Read(None) => {}
            Waiter::Many { reply, .. } => {
                let _ = reply.send(Err(error));
            }
        }
    }
}

/// Why a connection closed: the I/O error kind and a sentence.
pub(crate) type Closed = (io::ErrorKind, Arc<str>);

/// The node broke the protocol: more replies than commands written.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct UnaskedReply;

/// The waiter queue and the write queue of one connection.
pub(crate) struct ConnState {
    /// Encoded commands not written yet.
    queued: Vec<u8>,
    /// Replies the `queued` bytes will produce.
    queued_replies: usize,
    /// An empty buffer to swap with `queued`, so steady traffic allocates nothing.
    spare: Vec<u8>,
    /// Replies owed for bytes already handed to the socket.
    owed: usize,
    /// Somebody is writing now (a caller, the reader, or a flush task).
    writing: bool,
    /// Callers waiting, in the order their commands were queued.
    waiters: VecDeque<Waiter>,
    /// When the node last answered, or was given work while it owed nothing.
    progress_at: Instant,
    /// When the batch now owed was written.
    batch_at: Instant,
    /// Why the connection closed; set once, then every send fails at once.
    closed: Option<Closed>,
}

impl ConnState {
    pub fn new(now: Instant) -> Self {
        ConnState {
            queued: Vec::with_capacity(4096),
            queued_replies: 0,
            spare: Vec::with_capacity(4096),
            owed: 0,
            writing: false,
            waiters: VecDeque::new(),
            progress_at: now,
            batch_at: now,
            closed: None,
        }
    }

    /// Why the connection closed, if it did.
    pub fn closed(&self) -> Option<&Closed> {
        self.closed.as_ref()
    }

    /// Queues a command (`encode` writes its bytes; it produces `replies` replies, answered
    /// to `waiter`). Returns the batch the caller must write now when the node owes nothing
    /// and nobody is writing (the caller then holds the writer role); otherwise the command
    /// waits for the next batch. A closed connection takes nothing: `Err` means not sent.
    pub fn enqueue(
        &mut self,
        encode: impl FnOnce(&mut Vec<u8>),
        replies: usize,
        waiter: Option<Waiter>,
        now: impl FnOnce() -> Instant,
    ) -> Result<Option<Vec<u8>>, Closed> {
        if let Some(closed) = &self.closed {
            return Err(closed.clone());
        }
        encode(&mut self.queued);
        self.queued_replies += replies;
        if let Some(waiter) = waiter {
            self.waiters.push_back(waiter);
        }
        if self.writing || self.owed > 0 {
            return Ok(None);
        }
        // The clock is read only when a batch goes out: a read per command would cost more
        // than the rest of queueing it.
        Ok(Some(self.take_batch(now())))
    }

    /// Takes what is queued for writing; the caller must write it (and owns `writing`).
    fn take_batch(&mut self, now: Instant) -> Vec<u8> {
        self.batch_at = now;
        self.progress_at = now;
        self.writing = true;
        self.owed += self.queued_replies;
        self.queued_replies = 0;
        let spare = std::mem::take(&mut self.spare);
        std::mem::replace(&mut self.queued, spare)
    }

    /// A batch was written whole: releases the writer role, or keeps it with the next batch
    /// when the node owes nothing (only reply-less commands were written) and more is queued.
    pub fn after_write(
        &mut self,
        mut done: Vec<u8>,
        now: impl FnOnce() -> Instant,
    ) -> Option<Vec<u8>> {
        done.clear();
        self.spare = done;
        self.writing = false;
        if self.owed == 0 && !self.queued.is_empty() && self.closed.is_none() {
            return Some(self.take_batch(now()));
        }
        None
    }

    /// Replies arrived: each goes to the waiter in front (a pipeline's waiter takes as many as
    /// it produces), completed waiters are moved to `done` to be answered outside the lock.
    /// Returns the time the batch took when it is complete (for the latency histogram) and
    /// the next batch to write when the node now owes nothing: written before anyone is
    /// answered, so the node is never idle while work waits.
    pub fn on_replies(
        &mut self,
        values: &mut Vec<Value>,
        done: &mut Vec<(Waiter, Option<Value>)>,
        now: Instant,
    ) -> Result<(Option<Duration>, Option<Vec<u8>>), UnaskedReply> {
        if values.len() > self.owed {
            return Err(UnaskedReply);
        }
        self.owed -= values.len();
        self.progress_at = now;
        let took = (self.owed == 0).then(|| now.duration_since(self.batch_at));
        for value in values.drain(..) {
            // Every owed reply has a waiter in front of the queue: waiters are queued with
            // their command, and only written commands are owed.
            let complete = match self.waiters.front_mut() {
                Some(Waiter::One(_) | Waiter::Read(_)) => Some(Some(value)),
                Some(waiter) => waiter.feed(value).then_some(None),
                None => None,
            };
            if let Some(value) = complete
                && let Some(waiter) = self.waiters.pop_front()
            {
                done.push((waiter, value));
            }
        }
        let next = (self.owed == 0 && !self.writing && !self.queued.is_empty())
            .then(|| self.take_batch(now));
        Ok((took, next))
    }

    /// Takes the callers of every read still waiting, to be told to go elsewhere; their
    /// places stay in the queue (each still consumes its reply, which is dropped), so later
    /// replies keep reaching their own callers.
    pub fn release_reads(&mut self) -> Vec<oneshot::Sender<Option<RedisResult<Value>>>> {
        self.waiters
            .iter_mut()
            .filter_map(|w| match w {
                Waiter::Read(reply) => reply.take(),
                _ => None,
            })
            .collect()
    }

    /// Whether the node owes replies and sent none for `limit`.
    pub fn stalled(&self, now: Instant, limit: Duration) -> bool {
        self.owed > 0 && now.duration_since(self.progress_at) >= limit
    }

    /// Closes: drops what was not written and returns every waiter, to be failed with
    /// `why`. `None` when it was closed already.
    pub fn close(&mut self, kind: io::ErrorKind, why: &str) -> Option<VecDeque<Waiter>> {
        if self.closed.is_some() {
            return None;
        }
        self.queued.clear();
        self.closed = Some((kind, why.into()));
        Some(std::mem::take(&mut self.waiters))
    }
}

/// The reader's side: the bytes read and not yet decoded, and the RESP decoder that keeps the
/// parts of a large reply already received (so it is parsed once, however many reads it
/// takes).
pub(crate) struct ReplyReader {
    buf: Vec<u8>,
    decoder: shardis_resp::Decoder,
    /// Push frames seen (RESP3): they answer no command and are never matched to a waiter.
    pub pushes: u64,
}

impl ReplyReader {
    pub fn new(capacity: usize) -> Self {
        ReplyReader {
            buf: Vec::with_capacity(capacity),
            decoder: shardis_resp::Decoder::new(),
            pushes: 0,
        }
    }

    /// The buffer to read into (keeps at least `spare / 4` free bytes).
    pub fn buffer(&mut self, spare: usize) -> &mut Vec<u8> {
        if self.buf.capacity() - self.buf.len() < spare / 4 {
            self.buf.reserve(spare);
        }
        &mut self.buf
    }

    /// Decodes what was read: complete replies are appended to `values`; pushes are counted
    /// and dropped. A malformed reply is an error (the connection must close).
    pub fn decode(&mut self, values: &mut Vec<Value>) -> Result<(), shardis_resp::RespError> {
        // Frame by frame straight into `values`: a reply is moved once, not through a list
        // of frames first (measurable at hundreds of thousands of small replies a second).
        let mut consumed = 0;
        loop {
            let rest = self.buf.get(consumed..).unwrap_or_default();
            if rest.is_empty() {
                // The common end (a read ends at a reply's end): no call to learn there is
                // nothing more.
                break;
            }
            let (frame, n) = self.decoder.decode_frame(rest)?;
            consumed += n;
            match frame {
                Some(shardis_resp::Frame::Reply(value)) => values.push(value),
                Some(shardis_resp::Frame::Push(_)) => self.pushes += 1,
                None => break,
            }
        }
        self.buf.drain(..consumed);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(s: &str) -> Value {
        Value::BulkString(s.as_bytes().to_vec())
    }

    fn one() -> (Waiter, oneshot::Receiver<RedisResult<Value>>) {
        let (tx, rx) = oneshot::channel();
        (Waiter::One(tx), rx)
    }

    fn many(
        skip: usize,
        keep: usize,
        left: usize,
    ) -> (Waiter, oneshot::Receiver<RedisResult<Vec<Value>>>) {
        let (tx, rx) = oneshot::channel();
        let waiter = Waiter::Many {
            reply: tx,
            skip,
            keep,
            left,
            got: Vec::new(),
        };
        (waiter, rx)
    }

    fn answer_all(done: &mut Vec<(Waiter, Option<Value>)>) {
        for (waiter, value) in done.drain(..) {
            waiter.answer(value);
        }
    }

    #[test]
    fn released_reads_go_elsewhere_and_later_replies_still_reach_their_callers() {
        let t0 = Instant::now();
        let mut state = ConnState::new(t0);
        // A write the node holds, then a read and another write queued behind it.
        let (w, mut rw) = one();
        let batch = state.enqueue(|b| b.extend_from_slice(b"W"), 1, Some(w), || t0);
        assert!(matches!(batch, Ok(Some(_))));
        let (tx, mut rr) = oneshot::channel();
        let read = Waiter::Read(Some(tx));
        assert_eq!(
            state.enqueue(|b| b.push(b'R'), 1, Some(read), || t0),
            Ok(None)
        );
        let (w2, mut rw2) = one();
        assert_eq!(
            state.enqueue(|b| b.push(b'X'), 1, Some(w2), || t0),
            Ok(None)
        );
        assert!(state.stalled(t0 + Duration::from_millis(60), Duration::from_millis(50)));

        // Released: the read's caller is told at once; the writes keep waiting.
        for reply in state.release_reads() {
            let _ = reply.send(None);
        }
        assert_eq!(rr.try_recv(), Ok(None));
        assert!(rw.try_recv().is_err());
        assert!(state.release_reads().is_empty(), "released once");

        // The node resumes: each reply still reaches its own caller, the read's is dropped.
        let _ = state.after_write(b"W".to_vec(), || t0);
        let mut done = Vec::new();
        let (_, next) = state
            .on_replies(&mut vec![Value::Okay], &mut done, t0)
            .expect("owed");
        answer_all(&mut done);
        assert_eq!(rw.try_recv(), Ok(Ok(Value::Okay)));
        let _ = state.after_write(next.expect("R and X go out"), || t0);
        state
            .on_replies(&mut vec![bulk("old"), Value::Int(7)], &mut done, t0)
            .expect("owed");
        answer_all(&mut done);
        assert_eq!(rw2.try_recv(), Ok(Ok(Value::Int(7))));
    }

    #[test]
    fn replies_reach_their_waiters_in_order_and_writes_coalesce() {
        let t0 = Instant::now();
        let mut state = ConnState::new(t0);
        let (a, mut ra) = one();
        // The first command finds the node idle: its caller writes at once.
        let batch = state.enqueue(|b| b.extend_from_slice(b"A"), 1, Some(a), || t0);
        assert_eq!(batch, Ok(Some(b"A".to_vec())));
        // While the node owes a reply, later commands only queue.
        let (p, mut rp) = many(1, 2, 3);
        assert_eq!(
            state.enqueue(|b| b.extend_from_slice(b"PPP"), 3, Some(p), || t0),
            Ok(None)
        );
        let (c, mut rc) = one();
        assert_eq!(
            state.enqueue(|b| b.extend_from_slice(b"C"), 1, Some(c), || t0),
            Ok(None)
        );
        assert_eq!(
            state.after_write(b"A".to_vec(), || t0),
            None,
            "the node still owes A"
        );

        // A's reply: the queued batch is handed out whole before anyone is answered.
        let mut done = Vec::new();
        let (took, next) = state
            .on_replies(
                &mut vec![bulk("a")],
                &mut done,
                t0 + Duration::from_millis(2),
            )
            .expect("owed");
        assert_eq!(took, Some(Duration::from_millis(2)));
        assert_eq!(
            next,
            Some(b"PPPC".to_vec()),
            "one write for every queued command"
        );
        answer_all(&mut done);
        assert_eq!(ra.try_recv().expect("answered").expect("ok"), bulk("a"));

        // The pipeline's replies arrive split across reads; it keeps replies 2 and 3 only.
        assert_eq!(state.after_write(b"PPPC".to_vec(), || t0), None);
        state
            .on_replies(&mut vec![bulk("skip"), bulk("p1")], &mut done, t0)
            .expect("owed");
        assert!(done.is_empty(), "the pipeline waits for all three");
        state
            .on_replies(&mut vec![bulk("p2"), bulk("c")], &mut done, t0)
            .expect("owed");
        answer_all(&mut done);
        assert_eq!(
            rp.try_recv().expect("answered").expect("ok"),
            vec![bulk("p1"), bulk("p2")]
        );
        assert_eq!(rc.try_recv().expect("answered").expect("ok"), bulk("c"));
    }

    type Reply = oneshot::Receiver<RedisResult<Value>>;

    /// Queues `n` one-reply commands and writes them as one batch, as the shell would: the
    /// first is written by its caller, the rest go out together once its reply arrived.
    fn written(
        state: &mut ConnState,
        n: usize,
        first_reply: Value,
    ) -> (Vec<Reply>, Vec<(Waiter, Option<Value>)>) {
        let t0 = Instant::now();
        let mut receivers = Vec::new();
        let mut done = Vec::new();
        for i in 0..n {
            let (w, r) = one();
            if let Ok(Some(batch)) = state.enqueue(|q| q.push(b'x'), 1, Some(w), || t0) {
                assert_eq!(i, 0, "only the first finds the node idle");
                assert_eq!(state.after_write(batch, || t0), None);
            }
            receivers.push(r);
        }
        let (_, next) = state
            .on_replies(&mut vec![first_reply], &mut done, t0)
            .expect("owed");
        if let Some(next) = next {
            assert_eq!(next.len(), n - 1, "the rest in one batch");
            assert_eq!(state.after_write(next, || t0), None);
        }
        (receivers, done)
    }

    #[test]
    fn a_cancelled_waiter_still_consumes_its_reply() {
        let t0 = Instant::now();
        let mut state = ConnState::new(t0);
        let (mut receivers, mut done) = written(&mut state, 3, bulk("for 0"));
        answer_all(&mut done);
        drop(receivers.remove(1)); // the second caller gave up (its future was dropped)
        state
            .on_replies(&mut vec![bulk("for 1"), bulk("for 2")], &mut done, t0)
            .expect("owed");
        answer_all(&mut done);
        assert_eq!(
            receivers[0].try_recv().expect("answered").expect("ok"),
            bulk("for 0")
        );
        assert_eq!(
            receivers[1].try_recv().expect("answered").expect("ok"),
            bulk("for 2"),
            "never the reply of the caller that left"
        );
    }

    #[test]
    fn a_reply_nobody_asked_for_is_a_protocol_violation() {
        let t0 = Instant::now();
        let mut state = ConnState::new(t0);
        let mut done = Vec::new();
        assert_eq!(
            state.on_replies(&mut vec![Value::Okay], &mut done, t0),
            Err(UnaskedReply)
        );
    }

    #[test]
    fn a_stall_is_owed_replies_and_no_progress_for_the_limit() {
        let t0 = Instant::now();
        let limit = Duration::from_secs(1);
        let mut state = ConnState::new(t0);
        assert!(
            !state.stalled(t0 + 2 * limit, limit),
            "an idle node is not stalled"
        );
        let (a, _ra) = one();
        let _ = state.enqueue(|q| q.push(b'a'), 1, Some(a), || t0);
        assert!(!state.stalled(t0 + limit / 2, limit));
        assert!(state.stalled(t0 + limit, limit));
        // Any reply is progress.
        let (b, _rb) = one();
        let _ = state.enqueue(|q| q.push(b'b'), 1, Some(b), || t0);
        let mut done = Vec::new();
        state
            .on_replies(&mut vec![Value::Okay], &mut done, t0 + limit)
            .expect("owed");
        assert!(!state.stalled(t0 + limit + limit / 2, limit));
    }

    #[test]
    fn closing_fails_every_waiter_and_later_sends_are_not_sent() {
        let t0 = Instant::now();
        let mut state = ConnState::new(t0);
        let (a, mut ra) = one();
        let (p, mut rp) = many(0, 2, 2);
        let _ = state.enqueue(|q| q.push(b'a'), 1, Some(a), || t0);
        let _ = state.enqueue(|q| q.push(b'p'), 2, Some(p), || t0);
        let waiters = state
            .close(io::ErrorKind::UnexpectedEof, "peer closed")
            .expect("open");
        for waiter in waiters {
            waiter.fail(io::Error::new(io::ErrorKind::UnexpectedEof, "peer closed").into());
        }
        assert!(ra.try_recv().expect("failed").is_err());
        assert!(rp.try_recv().expect("failed").is_err());
        assert!(
            state.close(io::ErrorKind::Other, "again").is_none(),
            "closed once"
        );
        let (c, _rc) = one();
        let refused = state.enqueue(|q| q.push(b'c'), 1, Some(c), || t0);
        assert!(matches!(refused, Err((io::ErrorKind::UnexpectedEof, _))));
    }

    /// Replies of every type, and a RESP3 push between them.
    const STREAM: &[u8] =
        b"+OK\r\n$5\r\nhello\r\n>3\r\n$10\r\ninvalidate\r\n*1\r\n$1\r\nk\r\n$-1\r\n\
        *2\r\n:1\r\n*1\r\n$3\r\na*b\r\n-ERR boom\r\n%1\r\n+f\r\n:2\r\n";

    fn decode_in(chunks: &[&[u8]]) -> (Vec<Value>, u64) {
        let mut reader = ReplyReader::new(16);
        let mut values = Vec::new();
        for chunk in chunks {
            reader.buffer(16).extend_from_slice(chunk);
            reader.decode(&mut values).expect("valid RESP");
        }
        (values, reader.pushes)
    }

    #[test]
    fn replies_split_at_every_byte_boundary_decode_the_same_and_pushes_never_reach_a_waiter() {
        let (whole, pushes) = decode_in(&[STREAM]);
        assert_eq!(whole.len(), 5, "five replies: {whole:?}");
        assert_eq!(pushes, 1, "the push is counted, not a reply");
        for at in 0..=STREAM.len() {
            let (split, _) = decode_in(&[&STREAM[..at], &STREAM[at..]]);
            assert_eq!(split, whole, "split at byte {at}");
        }
        let bytes: Vec<&[u8]> = STREAM.chunks(1).collect();
        assert_eq!(decode_in(&bytes).0, whole, "one byte at a time");

        // And through the state machine: five waiters get the five replies, in order.
        let mut state = ConnState::new(Instant::now());
        let mut values = whole.clone();
        let first = values.remove(0);
        let (receivers, mut done) = written(&mut state, 5, first);
        state
            .on_replies(&mut values, &mut done, Instant::now())
            .expect("owed");
        answer_all(&mut done);
        for (mut r, want) in receivers.into_iter().zip(whole) {
            assert_eq!(r.try_recv().expect("answered").expect("ok"), want);
        }
    }

    #[test]
    fn a_malformed_reply_is_an_error() {
        let mut reader = ReplyReader::new(16);
        reader.buffer(16).extend_from_slice(b"?what\r\n");
        assert!(reader.decode(&mut Vec::new()).is_err());
    }
}
