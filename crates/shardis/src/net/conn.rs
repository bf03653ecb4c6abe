//! One connection to a node, owned by shardis.
//!
//! Callers encode their command straight into the connection's write buffer and wait for
//! their reply; nothing crosses a task to be sent. Replies come back in order, so one reader
//! task parses them and hands reply `i` to waiter `i`.
//!
//! Writes are coalesced: while replies are owed for the bytes already written, new commands
//! only queue; the moment the last owed reply arrives, the reader writes everything queued
//! meanwhile as one write. At low load a command is written at once by its own caller; under
//! load many callers share one `write` here and one `read` on the server, which is where
//! most of the CPU of a small command goes.
//!
//! A connection whose node owes replies and sends none for the response timeout is declared
//! stalled and closed: every waiter gets an error, and the pool opens a fresh connection on
//! the next use.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use redis::{Cmd, Pipeline, RedisError, RedisResult, Value};
use shardis_slots::Endpoint;
use tokio::net::TcpStream;
use tokio::sync::{oneshot, watch};
use tokio::time::Instant;

use super::conn_state::{ConnState, ReplyReader, UnaskedReply, Waiter};
use super::transport::{self, ReadHalf, Transport, WriteHalf};
use crate::credentials::Credentials;
use crate::error::Error;
use crate::settings::Settings;

/// Read buffer growth step; also the free space the reader keeps before each read.
const READ_CHUNK: usize = 64 * 1024;

/// The stall limit of a connection whose caller bounds every wait itself (a dedicated
/// connection running blocking commands): in effect, none.
pub(crate) const NO_STALL_WATCHDOG: Duration = Duration::from_secs(365 * 24 * 3600);

/// How far past the response timeout a stall can go unnoticed: the reader checks four times
/// per response timeout.
pub(crate) fn stall_detected_within(response_timeout: Duration) -> Duration {
    response_timeout + response_timeout / 4
}

struct Shared {
    state: parking_lot::Mutex<ConnState>,
    writer: WriteHalf,
    /// Flips to true once the connection is closed, waking a flush task blocked on a full
    /// socket.
    closed_tx: watch::Sender<bool>,
    /// The same fact, read on every send: an atomic load is cheaper than the watch's lock.
    is_closed: std::sync::atomic::AtomicBool,
    label: Arc<str>,
    /// Time from writing a batch to its last reply.
    latency: metrics::Histogram,
    /// Set by the first caller that reports this connection failed, so a stall that fails
    /// every waiter counts as one failure of the node.
    failure_claimed: std::sync::atomic::AtomicBool,
    /// The node owes replies and sent none for the read-bypass limit (its writes held, e.g.
    /// `CLIENT PAUSE WRITE`): the reads waiting were released, new ones go elsewhere. Set by
    /// the reader's watchdog, cleared by the next reply.
    held: std::sync::atomic::AtomicBool,
}

/// An open connection; the reader task stops when this is dropped.
pub(crate) struct Connection {
    shared: Arc<Shared>,
    /// Dropped with the connection: tells the reader to stop.
    _stop: oneshot::Sender<()>,
}

impl Connection {
    /// Connects to `endpoint` (over TLS when the settings say so) and runs the handshake the
    /// settings ask for (AUTH with the credentials of this moment, a client name, READONLY for
    /// replica reads). Errors are one line, without secrets. The stall
    /// watchdog closes the connection when the node owes replies and sends none for
    /// `stall_after` (the response timeout; for a dedicated connection that runs blocking
    /// commands, [`NO_STALL_WATCHDOG`]: its caller bounds the wait).
    pub async fn open(
        endpoint: &Endpoint,
        settings: &Settings,
        latency: metrics::Histogram,
        stall_after: Duration,
    ) -> Result<Self, Error> {
        let label = endpoint.to_string();
        let fail = |message: String| Error::connection(&label, message);
        let credentials = crate::credentials::for_connection(settings, &label).await?;
        let stream = transport::open(endpoint, settings).await?;
        let conn = Connection::start(
            stream,
            label.as_str().into(),
            stall_after,
            settings.read_bypass_after,
            latency,
        );

        let hello = handshake(settings, credentials.as_ref(), "shardis");
        let replies = tokio::time::timeout(
            settings.connect_timeout + settings.response_timeout,
            conn.send_pipeline(&hello, 0, hello.len()),
        )
        .await
        .map_err(|_| fail("no answer to the connection handshake".into()))
        .and_then(|replies| replies.map_err(|e| fail(e.to_string())))
        .map_err(|e| tls_failure_or(&conn.shared.writer, &label, e))?;
        check_handshake(&hello, &replies, &label, credentials.as_ref())?;
        Ok(conn)
    }

    /// Wraps an open stream and starts its reader.
    fn start(
        stream: Transport,
        label: Arc<str>,
        stall_after: Duration,
        bypass_after: Duration,
        latency: metrics::Histogram,
    ) -> Self {
        let (reader, writer) = stream.into_split();
        let (closed_tx, _) = watch::channel(false);
        let shared = Arc::new(Shared {
            state: parking_lot::Mutex::new(ConnState::new(Instant::now())),
            writer,
            closed_tx,
            is_closed: std::sync::atomic::AtomicBool::new(false),
            label,
            latency,
            failure_claimed: std::sync::atomic::AtomicBool::new(false),
            held: std::sync::atomic::AtomicBool::new(false),
        });
        let (stop, stopped) = oneshot::channel();
        let limits = Limits {
            stall_after,
            bypass_after,
        };
        tokio::spawn(read_replies(shared.clone(), reader, stopped, limits));
        Connection {
            shared,
            _stop: stop,
        }
    }

    /// True for the first caller only: the failure of one connection (however many commands
    /// were waiting on it) is one failure of its node.
    pub fn claim_failure(&self) -> bool {
        !self
            .shared
            .failure_claimed
            .swap(true, std::sync::atomic::Ordering::Relaxed)
    }

    /// Whether the node holds this connection's replies (it owes some and sent none for the
    /// read-bypass limit, e.g. writes under `CLIENT PAUSE WRITE`): a read is better sent over
    /// another connection. One atomic load: the reader's watchdog decides it.
    pub fn is_held(&self) -> bool {
        self.shared.held.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Sends a read; `None` means the node held this connection's replies while the read
    /// waited (see [`Connection::is_held`]), so its caller should ask another connection (the
    /// read may still run here; its reply is then dropped).
    pub async fn send_read(&self, cmd: &Cmd) -> Option<RedisResult<Value>> {
        let (reply, answer) = oneshot::channel();
        if let Err(e) = self.enqueue(
            |out| cmd.write_packed_command(out),
            1,
            Some(Waiter::Read(Some(reply))),
        ) {
            return Some(Err(e));
        }
        match answer.await {
            Ok(reply) => reply,
            Err(_) => Some(Err(self.shared.closed_error())),
        }
    }

    /// Whether the connection closed (the server closed it, it broke, or it stalled): a closed
    /// connection fails every send at once and is replaced by the pool.
    pub fn is_closed(&self) -> bool {
        self.shared
            .is_closed
            .load(std::sync::atomic::Ordering::Acquire)
    }

    /// Sends one command and waits for its reply. A server error is `Ok(Value::ServerError)`;
    /// `Err` means the connection failed (the command may or may not have run).
    pub async fn send(&self, cmd: &Cmd) -> RedisResult<Value> {
        if cmd.is_no_response() {
            self.enqueue(|out| cmd.write_packed_command(out), 0, None)?;
            return Ok(Value::Nil);
        }
        let (reply, answer) = oneshot::channel();
        self.enqueue(
            |out| cmd.write_packed_command(out),
            1,
            Some(Waiter::One(reply)),
        )?;
        answer
            .await
            .unwrap_or_else(|_| Err(self.shared.closed_error()))
    }

    /// Sends a pipeline as one unit (nothing from other callers lands in between) and returns
    /// replies `offset .. offset + count`, as `send_packed_commands` does. The number of
    /// replies to wait for comes from the pipeline itself, not from `offset` and `count`: a
    /// caller who asks for fewer must not shift every later reply onto the wrong caller.
    pub async fn send_pipeline(
        &self,
        pipeline: &Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisResult<Vec<Value>> {
        let replies = pipeline.cmd_iter().filter(|c| !c.is_no_response()).count()
            + if pipeline.is_transaction() { 2 } else { 0 };
        if replies == 0 {
            return Ok(Vec::new());
        }
        let (reply, answer) = oneshot::channel();
        let keep = count.min(replies.saturating_sub(offset));
        let waiter = Waiter::Many {
            reply,
            skip: offset.min(replies),
            keep,
            left: replies,
            got: Vec::with_capacity(keep),
        };
        let packed = pipeline.get_packed_pipeline();
        self.enqueue(|out| out.extend_from_slice(&packed), replies, Some(waiter))?;
        answer
            .await
            .unwrap_or_else(|_| Err(self.shared.closed_error()))
    }

    /// Appends a command to the write queue and, when the connection owes nothing and nobody
    /// is writing, writes it now from this task.
    fn enqueue(
        &self,
        encode: impl FnOnce(&mut Vec<u8>),
        replies: usize,
        waiter: Option<Waiter>,
    ) -> RedisResult<()> {
        let queued = self
            .shared
            .state
            .lock()
            .enqueue(encode, replies, waiter, Instant::now);
        match queued {
            Ok(Some(batch)) => self.shared.write(batch),
            Ok(None) => {}
            // Nothing of this command was written: the caller may send it elsewhere.
            Err((_, why)) => return Err(closed_error(io::ErrorKind::NotConnected, &why)),
        }
        Ok(())
    }
}

impl Shared {
    /// Why the connection closed, for a caller whose reply will never come.
    fn closed_error(&self) -> RedisError {
        match self.state.lock().closed() {
            Some((kind, why)) => closed_error(*kind, why),
            None => closed_error(
                io::ErrorKind::BrokenPipe,
                &format!("connection to {} closed", self.label),
            ),
        }
    }

    /// Writes `batch` without waiting; what the socket does not take now is finished by a
    /// task of its own, so no caller (who may be cancelled) is ever left holding half a
    /// command. The caller holds the writer role.
    fn write(self: &Arc<Self>, batch: Vec<u8>) {
        let Some(batch) = self.seal(batch) else {
            return;
        };
        if let Some((batch, at)) = self.write_now(batch, 0) {
            tokio::spawn(finish_write(self.clone(), batch, at));
        }
    }

    /// Writes from `at` on, then whatever the writer role must write next, until done or the
    /// socket is full: then returns what is left.
    fn write_now(&self, mut batch: Vec<u8>, mut at: usize) -> Option<(Vec<u8>, usize)> {
        loop {
            while at < batch.len() {
                match self.writer.try_write(&batch[at..]) {
                    Ok(n) => at += n,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Some((batch, at)),
                    Err(e) => {
                        self.close(e.kind(), format!("write to {} failed: {e}", self.label));
                        return None;
                    }
                }
            }
            batch = self.seal(self.after_write(batch)?)?;
            at = 0;
        }
    }

    /// The bytes for the wire (TLS records on a TLS connection); `None` when sealing failed
    /// and the connection is closed.
    fn seal(&self, batch: Vec<u8>) -> Option<Vec<u8>> {
        match self.writer.seal(batch) {
            Ok(bytes) => Some(bytes),
            Err(e) => {
                self.close(e.kind(), format!("TLS to {} failed: {e}", self.label));
                None
            }
        }
    }

    /// Releases the writer role, or keeps it with the next batch when the node owes nothing
    /// (only replies-less commands were written) and more is queued.
    fn after_write(&self, done: Vec<u8>) -> Option<Vec<u8>> {
        self.state.lock().after_write(done, Instant::now)
    }

    /// Closes the connection: every waiter gets `why`, later sends fail at once.
    fn close(&self, kind: io::ErrorKind, why: String) {
        let Some(waiters) = self.state.lock().close(kind, &why) else {
            return;
        };
        tracing::debug!(node = %self.label, %why, "connection closed");
        self.is_closed
            .store(true, std::sync::atomic::Ordering::Release);
        self.closed_tx.send_replace(true);
        let error = closed_error(kind, &why);
        for waiter in waiters {
            waiter.fail(error.clone());
        }
    }
}

/// Opens a TCP connection to `endpoint` within the connect timeout, without Nagle's delay
/// (commands are small and latency matters more than packet count; coalescing is done above
/// the socket).
pub(crate) async fn connect(endpoint: &Endpoint, settings: &Settings) -> Result<TcpStream, Error> {
    let fail = |message: String| Error::connection(&endpoint.to_string(), message);
    let connect = TcpStream::connect((endpoint.host.as_str(), endpoint.port));
    let stream = match tokio::time::timeout(settings.connect_timeout, connect).await {
        Ok(Ok(stream)) => stream,
        Ok(Err(e)) => return Err(fail(e.to_string())),
        Err(_) => {
            return Err(fail(format!(
                "connect timed out after {:?}",
                settings.connect_timeout
            )));
        }
    };
    stream.set_nodelay(true).map_err(|e| fail(e.to_string()))?;
    if let Some(idle) = settings.tcp_keepalive {
        let keepalive = socket2::TcpKeepalive::new().with_time(idle);
        socket2::SockRef::from(&stream)
            .set_tcp_keepalive(&keepalive)
            .map_err(|e| fail(format!("TCP keepalive: {e}")))?;
    }
    Ok(stream)
}

/// A handshake that failed on a TLS connection because the server ended the TLS session (a
/// client certificate refused after the client's side of the handshake) is [`Error::Tls`]
/// with rustls' reason; any other failure stays as it is.
pub(crate) fn tls_failure_or(writer: &WriteHalf, label: &str, other: Error) -> Error {
    match writer.tls_failure() {
        Some(message) => Error::Tls {
            node: label.to_string(),
            message: format!("the server ended the TLS session: {message}"),
        },
        None => other,
    }
}

/// The commands that open every connection the client makes: `AUTH` with the connection's
/// credentials, a client name (so operators and tests can tell shardis connections apart in
/// `CLIENT LIST`), and `READONLY` when replicas serve reads.
pub(crate) fn handshake(
    settings: &Settings,
    credentials: Option<&Credentials>,
    name: &str,
) -> Pipeline {
    let mut hello = redis::pipe();
    if let Some(credentials) = credentials {
        let auth = hello.cmd("AUTH");
        if let Some(user) = credentials.username() {
            auth.arg(user);
        }
        auth.arg(credentials.password().expose());
    }
    hello.cmd("CLIENT").arg("SETNAME").arg(name);
    if settings.read_from != crate::ReadFrom::Primary {
        // READONLY once per connection: replicas then serve reads of their shard. On a
        // primary it is harmless, and a node's role can change under us anyway.
        hello.cmd("READONLY");
    }
    hello
}

/// What the [`handshake`]'s replies mean: refused credentials are [`Error::Auth`] (never with
/// the password), a refused client name is only logged, anything else refused fails the
/// connection.
pub(crate) fn check_handshake(
    hello: &Pipeline,
    replies: &[Value],
    label: &str,
    credentials: Option<&Credentials>,
) -> Result<(), Error> {
    for (cmd, reply) in hello.cmd_iter().zip(replies) {
        let Value::ServerError(e) = reply else {
            continue;
        };
        let name = cmd
            .args_iter()
            .next()
            .map(|arg| match arg {
                redis::Arg::Simple(bytes) => String::from_utf8_lossy(bytes).into_owned(),
                _ => String::new(),
            })
            .unwrap_or_default();
        if name == "CLIENT" && e.code() != "NOAUTH" {
            // A proxy or an ACL (NOPERM) may refuse the name: the connection works without it.
            tracing::warn!(node = %label, error = %e, "CLIENT SETNAME refused; going on unnamed");
            continue;
        }
        if name == "AUTH" || matches!(e.code(), "NOAUTH" | "WRONGPASS" | "NOPERM") {
            return Err(Error::Auth {
                node: label.to_string(),
                user: credentials.and_then(|c| c.username().map(str::to_owned)),
                message: format!("{name} failed: {e}"),
            });
        }
        return Err(Error::connection(label, format!("{name} failed: {e}")));
    }
    Ok(())
}

/// Whether a send failed before anything of it was written (the connection had already
/// closed): such a command may be sent again on a fresh connection, write or not.
pub(crate) fn was_not_sent(err: &RedisError) -> bool {
    crate::error::io_error_of(err).is_some_and(|e| e.kind() == io::ErrorKind::NotConnected)
}

/// The error every send gets once the connection closed for `why`.
fn closed_error(kind: io::ErrorKind, why: &str) -> RedisError {
    io::Error::new(kind, why.to_owned()).into()
}

/// Finishes a write the socket could not take at once.
async fn finish_write(shared: Arc<Shared>, mut batch: Vec<u8>, mut at: usize) {
    let mut closed = shared.closed_tx.subscribe();
    loop {
        tokio::select! {
            ready = shared.writer.writable() => {
                if let Err(e) = ready {
                    shared.close(e.kind(), format!("write to {} failed: {e}", shared.label));
                    return;
                }
            }
            _ = closed.wait_for(|closed| *closed) => return,
        }
        match shared.write_now(batch, at) {
            Some(rest) => (batch, at) = rest,
            None => return,
        }
    }
}

/// The reader: parses replies, answers waiters in order, writes what queued up once the node
/// owes nothing, and watches for a node that stopped answering.
/// What the reader's watchdog enforces.
#[derive(Clone, Copy)]
struct Limits {
    /// Owed replies and none for this long: the connection is closed (the response timeout).
    stall_after: Duration,
    /// Owed replies and none for this long: waiting reads are released (zero: never).
    bypass_after: Duration,
}

impl Limits {
    /// How often the watchdog looks: often enough for both limits.
    fn tick(&self) -> Duration {
        let stall = self.stall_after / 4;
        let tick = if self.bypass_after.is_zero() {
            stall
        } else {
            stall.min(self.bypass_after / 2)
        };
        tick.max(Duration::from_millis(1))
    }
}

async fn read_replies(
    shared: Arc<Shared>,
    mut reader: ReadHalf,
    mut stop: oneshot::Receiver<()>,
    limits: Limits,
) {
    let response_timeout = limits.stall_after;
    let mut reader_state = ReplyReader::new(READ_CHUNK);
    let mut values: Vec<Value> = Vec::new();
    let mut done: Vec<(Waiter, Option<Value>)> = Vec::new();
    // One timer per connection decides both the stall and the held reads: no timer per read.
    let mut watchdog = tokio::time::interval(limits.tick());
    watchdog.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let buf = reader_state.buffer(READ_CHUNK);
        let read = tokio::select! {
            biased;
            _ = &mut stop => {
                shared.close(io::ErrorKind::BrokenPipe, format!("connection to {} closed", shared.label));
                return;
            }
            read = reader.read_buf(buf) => read,
            _ = watchdog.tick() => {
                let now = Instant::now();
                let mut state = shared.state.lock();
                if state.stalled(now, response_timeout) {
                    drop(state);
                    shared.close(
                        io::ErrorKind::TimedOut,
                        format!("{} sent no reply for {response_timeout:?}", shared.label),
                    );
                    return;
                }
                if !limits.bypass_after.is_zero() && state.stalled(now, limits.bypass_after) {
                    shared.held.store(true, std::sync::atomic::Ordering::Relaxed);
                    let released = state.release_reads();
                    drop(state);
                    if !released.is_empty() {
                        tracing::debug!(node = %shared.label, reads = released.len(), "replies held up; waiting reads released to another connection");
                    }
                    for reply in released {
                        let _ = reply.send(None);
                    }
                }
                continue;
            }
        };
        match read {
            Ok(0) => {
                shared.close(
                    io::ErrorKind::UnexpectedEof,
                    format!("{} closed the connection", shared.label),
                );
                return;
            }
            Ok(_) => {}
            Err(e) => {
                shared.close(e.kind(), format!("read from {} failed: {e}", shared.label));
                return;
            }
        }

        if shared.held.load(std::sync::atomic::Ordering::Relaxed) {
            // Replies flow again.
            shared
                .held
                .store(false, std::sync::atomic::Ordering::Relaxed);
        }
        // The decoder keeps the parts of a reply already received, so a large reply arriving
        // in many reads is parsed once.
        let pushes = reader_state.pushes;
        if let Err(e) = reader_state.decode(&mut values) {
            shared.close(
                io::ErrorKind::InvalidData,
                format!("{} sent a malformed reply: {e}", shared.label),
            );
            return;
        }
        if reader_state.pushes > pushes {
            // A RESP3 push answers no command: counted, never matched to a waiter.
            metrics::counter!("shardis_push_frames_dropped_total")
                .increment(reader_state.pushes - pushes);
        }
        if values.is_empty() {
            continue;
        }
        let received = shared
            .state
            .lock()
            .on_replies(&mut values, &mut done, Instant::now());
        let batch = match received {
            Ok((took, batch)) => {
                if let Some(took) = took {
                    // One sample per batch: a clock read per command would cost more than the
                    // rest of routing it.
                    shared.latency.record(took.as_secs_f64());
                }
                batch
            }
            Err(UnaskedReply) => {
                shared.close(
                    io::ErrorKind::InvalidData,
                    format!("{} sent a reply nobody asked for", shared.label),
                );
                return;
            }
        };
        // The node is idle now: give it the next batch before answering anyone.
        if let Some(batch) = batch {
            shared.write(batch);
        }
        for (waiter, value) in done.drain(..) {
            waiter.answer(value);
        }
    }
}
