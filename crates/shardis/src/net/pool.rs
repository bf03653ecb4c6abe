//! Connections to nodes: a few pipelined connections per node (see [`conn`]), opened lazily,
//! reopened with backoff after a failure, and closed when a node leaves the topology.
//!
//! The read path is lock-free: a node's connections sit in `ArcSwapOption` slots, so taking
//! one is an atomic load and a clone. Only opening a connection takes a (per-node, async) lock,
//! so a thousand callers that find a node without a connection open it once.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use arc_swap::{ArcSwap, ArcSwapOption};
use shardis_slots::Endpoint;

use super::breaker::{Admit, Breaker, BreakerOptions, Change, State};
use super::conn::Connection;
use crate::error::{Error, Result};
use crate::settings::{DownPolicy, Settings};

/// One node and its connections (`connections_per_node` pipelined connections, used in
/// turn).
pub(crate) struct Node {
    pub endpoint: Endpoint,
    label: String,
    /// The connections, each open or not (`None`: opened on next use).
    connections: Box<[ArcSwapOption<Connection>]>,
    /// A connection for reads only, opened when every other one is held up by replies the
    /// node owes (see [`Node::ready_read_connection`]).
    spare: ArcSwapOption<Connection>,
    next: AtomicUsize,
    opening: tokio::sync::Mutex<()>,
    /// Consecutive failures to connect; 0 when healthy.
    failures: AtomicU32,
    last_failure: parking_lot::Mutex<Option<Instant>>,
    /// The refusal (TLS or credentials) of the last failed connect, if that is why it failed:
    /// said again during the backoff, since a wrong CA or password is not an unreachable node.
    refusal: parking_lot::Mutex<Option<Error>>,
    settings: Arc<Settings>,
    /// Time from writing a batch of commands to this node until its last reply arrived,
    /// registered once so recording is cheap.
    latency: metrics::Histogram,
    /// Dedicated connections not in use, clean (no command outstanding, no state left).
    idle: parking_lot::Mutex<Vec<Connection>>,
    /// Bounds the dedicated connections open to this node at once.
    dedicated: Arc<tokio::sync::Semaphore>,
    /// The circuit breaker (consulted under [`DownPolicy::FailFast`] only).
    breaker: parking_lot::Mutex<Breaker>,
    /// The breaker is not closed: admission takes the lock.
    shut: std::sync::atomic::AtomicBool,
    /// A success would change the breaker: recording it takes the lock.
    counting: std::sync::atomic::AtomicBool,
    /// Wakes commands waiting for this node when its breaker opens.
    opened: tokio::sync::Notify,
    /// Commands waiting for this node to recover.
    waiting: AtomicUsize,
}

/// One command's place among those waiting for a node; given back when dropped.
pub(crate) struct WaitGuard {
    node: Arc<Node>,
}

impl WaitGuard {
    /// The node waited for.
    pub fn node(&self) -> &Arc<Node> {
        &self.node
    }
}

impl Drop for WaitGuard {
    fn drop(&mut self) {
        self.node.waiting.fetch_sub(1, Ordering::Relaxed);
    }
}

/// An exclusive connection to one node (for a blocking command), returned to the node's idle
/// list when it is dropped clean, closed otherwise: a connection whose command was cancelled
/// mid-wait still owes a reply and is never reused.
pub(crate) struct Dedicated {
    conn: Option<Connection>,
    node: Arc<Node>,
    clean: bool,
    _permit: tokio::sync::OwnedSemaphorePermit,
}

impl Dedicated {
    /// The connection.
    pub fn connection(&self) -> Option<&Connection> {
        self.conn.as_ref()
    }

    /// Its command got its reply: it may serve another.
    pub fn mark_clean(&mut self) {
        self.clean = true;
    }

    /// A reply is outstanding or state is left on it: close it rather than reuse it.
    pub fn mark_dirty(&mut self) {
        self.clean = false;
    }
}

impl Drop for Dedicated {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take()
            && self.clean
            && !conn.is_closed()
        {
            self.node.idle.lock().push(conn);
        }
    }
}

/// Dedicated connections one node may have open at once; past it, callers wait for one.
const DEDICATED_PER_NODE: usize = 64;

/// A copy of `error` when it is a refusal worth saying again (TLS, credentials).
fn refusal_of(error: &Error) -> Option<Error> {
    match error {
        Error::Tls { node, message } => Some(Error::Tls {
            node: node.clone(),
            message: message.clone(),
        }),
        Error::Auth {
            node,
            user,
            message,
        } => Some(Error::Auth {
            node: node.clone(),
            user: user.clone(),
            message: message.clone(),
        }),
        _ => None,
    }
}

impl Node {
    fn new(endpoint: Endpoint, settings: Arc<Settings>) -> Self {
        let connections = (0..settings.connections_per_node)
            .map(|_| ArcSwapOption::empty())
            .collect();
        let latency =
            metrics::histogram!("shardis_node_latency_seconds", "node" => endpoint.to_string());
        Node {
            label: endpoint.to_string(),
            endpoint,
            connections,
            spare: ArcSwapOption::empty(),
            next: AtomicUsize::new(0),
            opening: tokio::sync::Mutex::new(()),
            failures: AtomicU32::new(0),
            last_failure: parking_lot::Mutex::new(None),
            refusal: parking_lot::Mutex::new(None),
            latency,
            settings: settings.clone(),
            idle: parking_lot::Mutex::new(Vec::new()),
            dedicated: Arc::new(tokio::sync::Semaphore::new(DEDICATED_PER_NODE)),
            breaker: parking_lot::Mutex::new(Breaker::new(BreakerOptions {
                probe_timeout: settings.connect_timeout + settings.response_timeout,
                ..settings.breaker.clone()
            })),
            shut: std::sync::atomic::AtomicBool::new(false),
            counting: std::sync::atomic::AtomicBool::new(false),
            opened: tokio::sync::Notify::new(),
            waiting: AtomicUsize::new(0),
        }
    }

    fn fail_fast(&self) -> bool {
        self.settings.down_policy == DownPolicy::FailFast
    }

    /// May a command go to this node now? As the breaker says: refused with
    /// [`Error::CircuitOpen`] while it is open or while its ramp admits no more (`retry_in`:
    /// the next chance), and the caller that finds it due for a probe sends a `PING` first.
    /// Under [`DownPolicy::Wait`] the breaker never opens (failures are not counted), but a
    /// node can ramp (see [`Node::start_ramp`]): a refused caller waits for its next chance.
    pub async fn admit(&self) -> Result<()> {
        if !self.shut.load(Ordering::Relaxed) {
            return Ok(());
        }
        let admit = self.with_breaker(|b| (b.admit(Instant::now()), Change::None));
        match admit {
            Admit::Yes => Ok(()),
            Admit::No { retry_in } => Err(self.circuit_open(retry_in)),
            Admit::Probe => {
                let ok = self.probe().await;
                self.with_breaker(|b| ((), b.probed(ok, Instant::now())));
                if ok {
                    Ok(())
                } else {
                    Err(self.circuit_open(self.settings.breaker.probe_after))
                }
            }
        }
    }

    fn circuit_open(&self, retry_in: Duration) -> Error {
        metrics::counter!("shardis_breaker_rejected_total", "node" => self.label.clone())
            .increment(1);
        Error::CircuitOpen {
            node: self.label.clone(),
            retry_in,
        }
    }

    /// `PING` on a connection of this node, bounded by the connect and response timeouts.
    async fn probe(&self) -> bool {
        let limit = self.settings.connect_timeout + self.settings.response_timeout;
        let ping = async {
            let conn = self.connection().await.ok()?;
            conn.send(&redis::cmd("PING")).await.ok()
        };
        matches!(
            tokio::time::timeout(limit, ping).await,
            Ok(Some(redis::Value::SimpleString(_) | redis::Value::Okay))
        )
    }

    /// Runs `f` on the breaker, then refreshes the lock-free flags and reports a change.
    fn with_breaker<T>(&self, f: impl FnOnce(&mut Breaker) -> (T, Change)) -> T {
        let (out, change, state) = {
            let mut breaker = self.breaker.lock();
            let (out, change) = f(&mut breaker);
            self.shut
                .store(breaker.state() != State::Closed, Ordering::Relaxed);
            self.counting.store(!breaker.is_quiet(), Ordering::Relaxed);
            (out, change, breaker.state())
        };
        self.report(change, state);
        out
    }

    fn report(&self, change: Change, state: State) {
        let gauge = |v: f64| {
            metrics::gauge!("shardis_breaker_state", "node" => self.label.clone()).set(v);
        };
        match change {
            Change::None => {}
            Change::Opened => {
                let probe_in = match state {
                    State::Open { until } => until.saturating_duration_since(Instant::now()),
                    _ => Duration::ZERO,
                };
                tracing::warn!(node = %self.label, ?probe_in, "circuit breaker opened: commands for this node fail at once until it answers a PING");
                metrics::counter!("shardis_breaker_opened_total", "node" => self.label.clone())
                    .increment(1);
                gauge(1.0);
                self.opened.notify_waiters();
            }
            Change::StillOpen => {
                tracing::debug!(node = %self.label, "circuit breaker probe failed; still open");
                gauge(1.0);
            }
            Change::Ramping => {
                tracing::info!(node = %self.label, "circuit breaker half-closed: traffic ramps back");
                metrics::counter!("shardis_breaker_ramps_total", "node" => self.label.clone())
                    .increment(1);
                gauge(2.0);
            }
            Change::Closed => {
                tracing::info!(node = %self.label, "circuit breaker closed");
                gauge(0.0);
            }
        }
    }

    /// A command got its reply from this node (cheap unless the breaker is counting).
    pub fn record_success(&self) {
        if self.counting.load(Ordering::Relaxed) {
            self.with_breaker(|b| ((), b.on_success(Instant::now())));
        }
    }

    /// `conn` broke or stalled: one failure of this node, however many commands saw it.
    pub fn connection_failed(&self, conn: &Connection) {
        if conn.claim_failure() {
            self.record_failure();
        }
    }

    /// One failure of this node (a connection the caller already claimed with
    /// `Connection::claim_failure`, or a failed probe of the ring's heartbeat).
    pub fn record_failure(&self) {
        if self.fail_fast() {
            self.with_breaker(|b| ((), b.on_failure(Instant::now())));
        }
    }

    /// Starts the breaker's ramp on this node (it takes over the traffic of a node that
    /// failed, or comes back), under either policy: commands are admitted at the ramp's
    /// rising fraction, and under [`DownPolicy::Wait`] the others wait for their turn, so a
    /// backlog is released at a bounded rate, not all at once.
    pub fn start_ramp(&self) {
        self.with_breaker(|b| ((), b.start_ramp(Instant::now())));
    }

    /// Whether this node looks failed to the commands that use it: its breaker is not
    /// closed, it is in reconnect backoff, or commands wait for it.
    pub fn looks_failed(&self) -> bool {
        self.breaker_shut() || !self.is_healthy() || self.waiting.load(Ordering::Relaxed) > 0
    }

    /// Whether this node's breaker is not closed.
    pub fn breaker_shut(&self) -> bool {
        self.shut.load(Ordering::Relaxed)
    }

    /// Resolves when this node's breaker opens (created before the wait it may cut short).
    pub fn breaker_opened(&self) -> tokio::sync::futures::Notified<'_> {
        self.opened.notified()
    }

    /// A place among the commands waiting for this node to recover, or
    /// [`Error::Overloaded`] when `max_waiting_per_node` already wait.
    pub fn try_wait(self: &Arc<Self>) -> Result<WaitGuard> {
        let max = self.settings.max_waiting_per_node;
        if self.waiting.fetch_add(1, Ordering::Relaxed) >= max {
            self.waiting.fetch_sub(1, Ordering::Relaxed);
            metrics::counter!("shardis_overloaded_total", "node" => self.label.clone())
                .increment(1);
            return Err(Error::Overloaded {
                node: self.label.clone(),
                waiting: max,
            });
        }
        Ok(WaitGuard { node: self.clone() })
    }

    /// An exclusive connection to this node, without a stall watchdog (its caller bounds the
    /// wait): an idle clean one, or a new one.
    pub async fn dedicated(self: &Arc<Self>) -> Result<Dedicated> {
        let permit = self
            .dedicated
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| Error::connection(&self.label, "dedicated connections closed"))?;
        let reused = {
            let mut idle = self.idle.lock();
            idle.retain(|c| !c.is_closed());
            idle.pop()
        };
        let conn = match reused {
            Some(conn) => conn,
            None => {
                Connection::open(
                    &self.endpoint,
                    &self.settings,
                    self.latency.clone(),
                    super::conn::NO_STALL_WATCHDOG,
                )
                .await?
            }
        };
        Ok(Dedicated {
            conn: Some(conn),
            node: self.clone(),
            clean: false,
            _permit: permit,
        })
    }

    /// The node's address as text, for errors, logs and metric labels.
    pub fn label(&self) -> &str {
        &self.label
    }

    /// False while the node is in reconnect backoff after failing to connect.
    pub fn is_healthy(&self) -> bool {
        self.failures.load(Ordering::Relaxed) == 0
    }

    /// The index of the connection whose turn it is.
    fn turn(&self) -> usize {
        // One connection (the default) needs no turn: the counter is a cache line every
        // worker thread would write per command.
        match self.connections.len() {
            1 => 0,
            n => self.next.fetch_add(1, Ordering::Relaxed) % n,
        }
    }

    /// A connection to this node, opening one if needed.
    ///
    /// While the node is in reconnect backoff this fails at once instead of queueing: callers
    /// must not wait behind each other on a dead node (their deadline is better spent on a
    /// topology refresh that routes them elsewhere).
    pub async fn connection(&self) -> Result<Arc<Connection>> {
        let i = self.turn();
        if let Some(conn) = self.connections[i].load_full()
            && !conn.is_closed()
        {
            return Ok(conn);
        }
        self.open(i).await
    }

    /// The next connection in turn if it is open (the common case, without a future to poll
    /// or a timer to arm around it); `None` when it must be opened with [`Node::connection`].
    pub fn ready_connection(&self) -> Option<Arc<Connection>> {
        let i = self.turn();
        // A connection the server closed (idle timeout, CLIENT KILL, restart) is noticed by its
        // reader: it is not handed out again, so no command is written to it.
        self.connections[i].load_full().filter(|c| !c.is_closed())
    }

    /// For a read: the next connection in turn, unless the node owes it replies and sent none
    /// for `read_bypass_after` (writes held by `CLIENT PAUSE WRITE`, a slow script); then
    /// another open connection that is not held up — the spare first, as it carries no writes
    /// that could be held next. `None` when there is none: [`Node::read_connection`] then
    /// opens the spare.
    pub fn ready_read_connection(&self) -> Option<Arc<Connection>> {
        let first = self.ready_connection()?;
        if !first.is_held() {
            return Some(first);
        }
        std::iter::once(&self.spare)
            .chain(self.connections.iter())
            .filter_map(ArcSwapOption::load_full)
            .find(|c| !c.is_closed() && !c.is_held())
    }

    /// For a read, opening what is needed: a connection that is not held up, or the spare
    /// (opened once) when every other one is; the held-up one if the spare cannot be opened.
    pub async fn read_connection(&self) -> Result<Arc<Connection>> {
        if let Some(conn) = self.ready_read_connection() {
            return Ok(conn);
        }
        let conn = self.connection().await?;
        if !conn.is_held() {
            return Ok(conn);
        }
        Ok(self.spare_connection().await.unwrap_or(conn))
    }

    /// The spare connection, which carries reads only (so writes the server holds never hold
    /// it up), opened on first use.
    pub async fn spare_connection(&self) -> Result<Arc<Connection>> {
        if let Some(spare) = self.spare.load_full()
            && !spare.is_closed()
        {
            return Ok(spare);
        }
        let _opening = self.opening.lock().await;
        if let Some(spare) = self.spare.load_full()
            && !spare.is_closed()
        {
            return Ok(spare);
        }
        let spare = Arc::new(self.open_shared().await?);
        tracing::debug!(node = %self.label, "reads held up behind owed replies; spare connection opened");
        metrics::counter!("shardis_read_bypass_connections_total", "node" => self.label.clone())
            .increment(1);
        self.spare.store(Some(spare.clone()));
        Ok(spare)
    }

    /// A new shared connection (stall watchdog at the response timeout).
    async fn open_shared(&self) -> Result<Connection> {
        let stall_after = self.settings.response_timeout;
        Connection::open(
            &self.endpoint,
            &self.settings,
            self.latency.clone(),
            stall_after,
        )
        .await
    }

    /// Opens connection `i`: one caller opens, the others wait for that attempt.
    async fn open(&self, i: usize) -> Result<Arc<Connection>> {
        if let Some(message) = self.backoff_remaining() {
            return Err(self.in_backoff(message));
        }
        // One caller opens; the others wait for that attempt (bounded by the connect timeout).
        let _opening = self.opening.lock().await;
        if let Some(conn) = self.connections[i].load_full()
            && !conn.is_closed()
        {
            return Ok(conn);
        }
        if let Some(message) = self.backoff_remaining() {
            return Err(self.in_backoff(message));
        }
        match self.open_shared().await {
            Ok(conn) => {
                let was_down = self.failures.swap(0, Ordering::Relaxed) > 0;
                *self.refusal.lock() = None;
                let conn = Arc::new(conn);
                self.connections[i].store(Some(conn.clone()));
                // Back after failed connects, with commands waiting for it (wait policy): they
                // are released along the ramp, not all at once. Under fail-fast the breaker's
                // own probe starts the ramp once it has opened.
                if was_down && !self.fail_fast() && self.waiting.load(Ordering::Relaxed) > 0 {
                    tracing::info!(node = %self.label, "node back with commands waiting; traffic ramps up");
                    self.start_ramp();
                }
                Ok(conn)
            }
            Err(error) => {
                let failures = self.failures.fetch_add(1, Ordering::Relaxed) + 1;
                *self.last_failure.lock() = Some(Instant::now());
                *self.refusal.lock() = refusal_of(&error);
                tracing::debug!(node = %self.label, failures, %error, "connect failed");
                metrics::counter!("shardis_connect_failures_total").increment(1);
                self.record_failure();
                Err(error)
            }
        }
    }

    /// The error of a connect not tried during the backoff: the last TLS refusal again, else
    /// "in reconnect backoff".
    fn in_backoff(&self, message: String) -> Error {
        self.refusal
            .lock()
            .as_ref()
            .and_then(refusal_of)
            .unwrap_or_else(|| Error::Connection {
                node: self.label.clone(),
                slot: None,
                message,
            })
    }

    /// After consecutive connect failures the node is left alone for a while (10 ms doubling
    /// per failure, capped by the configured maximum), so a dead node is not hammered by every
    /// caller. Returns why, while that time lasts.
    fn backoff_remaining(&self) -> Option<String> {
        let failures = self.failures.load(Ordering::Relaxed);
        if failures == 0 {
            return None;
        }
        let last = (*self.last_failure.lock())?;
        let backoff = Duration::from_millis(10u64 << failures.min(8))
            .min(self.settings.reconnect_backoff_max);
        let until = last + backoff;
        let now = Instant::now();
        (until > now).then(|| {
            format!(
                "in reconnect backoff for {:?} after {failures} failed connect(s)",
                until - now
            )
        })
    }

    /// Forgets this node's connections after one failed, so the next caller opens a fresh
    /// one. (A broken connection usually means the node went away: its siblings
    /// are broken too.)
    pub fn discard(&self) {
        for conn in self.connections.iter().chain(std::iter::once(&self.spare)) {
            conn.store(None);
        }
    }
}

impl PartialEq for Node {
    fn eq(&self, other: &Node) -> bool {
        self.endpoint == other.endpoint
    }
}

impl Eq for Node {}

impl std::hash::Hash for Node {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.endpoint.hash(state);
    }
}

/// All nodes the client knows, by address.
pub(crate) struct Pool {
    nodes: ArcSwap<HashMap<Endpoint, Arc<Node>>>,
    adding: parking_lot::Mutex<()>,
    settings: Arc<Settings>,
}

impl Pool {
    pub fn new(settings: Arc<Settings>) -> Self {
        Pool {
            nodes: ArcSwap::from_pointee(HashMap::new()),
            adding: parking_lot::Mutex::new(()),
            settings,
        }
    }

    /// The node at `endpoint`, created (without connecting) if new.
    pub fn node(&self, endpoint: &Endpoint) -> Arc<Node> {
        if let Some(node) = self.nodes.load().get(endpoint) {
            return node.clone();
        }
        let _adding = self.adding.lock();
        let current = self.nodes.load_full();
        if let Some(node) = current.get(endpoint) {
            return node.clone();
        }
        let node = Arc::new(Node::new(endpoint.clone(), self.settings.clone()));
        let mut next = (*current).clone();
        next.insert(endpoint.clone(), node.clone());
        self.nodes.store(Arc::new(next));
        node
    }

    /// Drops every node not in `keep`: their connections close once in-flight commands finish.
    pub fn retain(&self, keep: &dyn Fn(&Endpoint) -> bool) {
        let _adding = self.adding.lock();
        let current = self.nodes.load_full();
        if current.keys().all(keep) {
            return;
        }
        let next: HashMap<_, _> = current
            .iter()
            .filter(|(e, _)| keep(e))
            .map(|(e, n)| (e.clone(), n.clone()))
            .collect();
        for gone in current.keys().filter(|e| !keep(e)) {
            tracing::info!(node = %gone, "node left the topology; closing its connections");
        }
        self.nodes.store(Arc::new(next));
    }
}

#[cfg(test)]
mod tests {
    use redis::Value;
    use shardis_testkit::{FakeNode, FakeReply};

    use super::*;

    /// A fake node: `ECHO x` answers `x`, `BOOM` answers an error, `SILENT` nothing,
    /// `GARBAGE` bytes that are no RESP reply, anything else `+OK`. With `stall`, it answers
    /// no `ECHO` and drops the connection 200 ms after the first. Keep the handle: the node
    /// stops when it is dropped.
    async fn fake_node(stall: bool) -> (Endpoint, FakeNode) {
        let node = FakeNode::start(
            move |args, _| match args[0].to_ascii_uppercase().as_slice() {
                b"ECHO" if stall => FakeReply::CloseAfter(Duration::from_millis(200)),
                b"ECHO" => FakeReply::bulk(args.get(1).map_or(&b""[..], |a| a)),
                b"BOOM" => FakeReply::error("ERR boom"),
                b"SILENT" => FakeReply::Silence,
                b"GARBAGE" => FakeReply::Raw(b"?what\r\n".to_vec()),
                _ => FakeReply::ok(),
            },
        )
        .await
        .expect("fake node");
        (Endpoint::new("127.0.0.1", node.port()), node)
    }

    #[tokio::test]
    async fn tcp_keepalive_is_on_when_asked_for() {
        let (endpoint, _fake) = fake_node(false).await;
        let plain = super::super::conn::connect(&endpoint, &Settings::default())
            .await
            .expect("connect");
        assert!(
            !socket2::SockRef::from(&plain)
                .keepalive()
                .expect("getsockopt")
        );
        let settings = Settings {
            tcp_keepalive: Some(Duration::from_secs(30)),
            ..Settings::default()
        };
        let kept = super::super::conn::connect(&endpoint, &settings)
            .await
            .expect("connect");
        let sock = socket2::SockRef::from(&kept);
        assert!(sock.keepalive().expect("getsockopt"));
        assert_eq!(
            sock.tcp_keepalive_time().expect("getsockopt"),
            Duration::from_secs(30)
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_refused_client_name_does_not_fail_the_handshake() {
        // A proxy or an ACL that refuses CLIENT SETNAME: the connection still works.
        let fake = FakeNode::start(|args, _| match args[0].to_ascii_uppercase().as_slice() {
            b"CLIENT" => FakeReply::error("NOPERM this user has no permissions to run 'client'"),
            b"ECHO" => FakeReply::bulk(args.get(1).map_or(&b""[..], |a| a)),
            _ => FakeReply::ok(),
        })
        .await
        .expect("fake node");
        let node = Arc::new(Node::new(
            Endpoint::new("127.0.0.1", fake.port()),
            settings(),
        ));
        let conn = node
            .connection()
            .await
            .expect("the handshake goes on unnamed");
        let reply = conn.send(&echo("still here")).await.expect("ECHO");
        assert_eq!(reply, Value::BulkString(b"still here".to_vec()));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_push_frame_never_reaches_a_caller() {
        // The node sends a RESP3 invalidation push before each ECHO reply.
        let fake = FakeNode::start(|args, _| match args[0].to_ascii_uppercase().as_slice() {
            b"ECHO" => {
                let word = args.get(1).map_or(&b""[..], |a| a);
                let mut out = b">2\r\n$10\r\ninvalidate\r\n*1\r\n$1\r\nk\r\n".to_vec();
                out.extend_from_slice(format!("${}\r\n", word.len()).as_bytes());
                out.extend_from_slice(word);
                out.extend_from_slice(b"\r\n");
                FakeReply::Raw(out)
            }
            _ => FakeReply::ok(),
        })
        .await
        .expect("fake node");
        let node = Arc::new(Node::new(
            Endpoint::new("127.0.0.1", fake.port()),
            settings(),
        ));
        let conn = node.connection().await.expect("connection");
        for i in 0..50 {
            let word = format!("w{i}");
            let reply = conn.send(&echo(&word)).await.expect("ECHO");
            assert_eq!(reply, Value::BulkString(word.into_bytes()), "reply {i}");
        }
    }

    fn echo(arg: impl redis::ToRedisArgs) -> redis::Cmd {
        let mut cmd = redis::cmd("ECHO");
        cmd.arg(arg);
        cmd
    }

    /// A fake node (no stall) and an open connection to it.
    async fn connected() -> (Arc<Node>, Arc<Connection>, FakeNode) {
        let (endpoint, fake) = fake_node(false).await;
        let node = Arc::new(Node::new(endpoint, settings()));
        let conn = node.connection().await.unwrap();
        (node, conn, fake)
    }

    fn settings() -> Arc<Settings> {
        Arc::new(Settings {
            response_timeout: Duration::from_secs(5),
            ..Settings::default()
        })
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_sends_get_their_own_replies_in_order() {
        let (endpoint, fake) = fake_node(false).await;
        let node = Arc::new(Node::new(endpoint, settings()));
        let tasks: Vec<_> = (0..200)
            .map(|t| {
                let node = node.clone();
                tokio::spawn(async move {
                    for i in 0..20 {
                        let conn = node.connection().await.unwrap();
                        if (t + i) % 7 == 0 {
                            let reply = conn.send(&redis::cmd("BOOM")).await.unwrap();
                            match reply {
                                Value::ServerError(e) => assert_eq!(e.details(), Some("boom")),
                                other => panic!("task {t} #{i}: expected an error, got {other:?}"),
                            }
                        } else {
                            let word = format!("t{t}-{i}");
                            let reply = conn.send(redis::cmd("ECHO").arg(&word)).await.unwrap();
                            assert_eq!(
                                reply,
                                Value::BulkString(word.into_bytes()),
                                "task {t} #{i}"
                            );
                        }
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
        assert!(
            fake.max_commands_per_read() > 1,
            "commands were never coalesced into one write"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_dead_connection_fails_every_queued_request() {
        let (endpoint, _fake) = fake_node(true).await;
        let node = Arc::new(Node::new(endpoint, settings()));
        let conn = node.connection().await.unwrap();
        let started = Instant::now();
        let tasks: Vec<_> = (0..100)
            .map(|i| {
                let conn = conn.clone();
                tokio::spawn(async move { conn.send(redis::cmd("ECHO").arg(i)).await })
            })
            .collect();
        for task in tasks {
            let reply = task.await.unwrap();
            assert!(reply.is_err(), "expected a connection error, got {reply:?}");
        }
        // Failed by the dropped connection, not by the 5 s response timeout.
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "{:?}",
            started.elapsed()
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_reader_exits_with_its_connection() {
        let (endpoint, _fake) = fake_node(false).await;
        let metrics = tokio::runtime::Handle::current().metrics();
        let node = Arc::new(Node::new(endpoint, settings()));
        let conn = node.connection().await.unwrap();
        let with_conn = metrics.num_alive_tasks();
        conn.send(redis::cmd("ECHO").arg("x")).await.unwrap();
        drop(conn);
        node.discard();
        let deadline = Instant::now() + Duration::from_secs(2);
        while metrics.num_alive_tasks() >= with_conn {
            assert!(Instant::now() < deadline, "reader still running");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_pipeline_gets_its_slice_of_replies_between_other_callers() {
        let (_node, conn, _fake) = connected().await;
        let mut pipe = redis::pipe();
        pipe.cmd("ECHO")
            .arg("skip")
            .cmd("ECHO")
            .arg("a")
            .cmd("BOOM")
            .cmd("ECHO")
            .arg("b");
        let (before, after) = (echo("before"), echo("after"));
        let single = conn.send(&before);
        let piped = conn.send_pipeline(&pipe, 1, 3);
        let after = conn.send(&after);
        let (single, piped, after) = tokio::join!(single, piped, after);
        assert_eq!(single.unwrap(), Value::BulkString(b"before".to_vec()));
        let piped = piped.unwrap();
        assert_eq!(piped.len(), 3, "{piped:?}");
        assert_eq!(piped[0], Value::BulkString(b"a".to_vec()));
        assert!(matches!(&piped[1], Value::ServerError(e) if e.details() == Some("boom")));
        assert_eq!(piped[2], Value::BulkString(b"b".to_vec()));
        assert_eq!(after.unwrap(), Value::BulkString(b"after".to_vec()));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_pipeline_asking_for_fewer_replies_than_it_makes_does_not_shift_later_ones() {
        let (_node, conn, _fake) = connected().await;
        let mut pipe = redis::pipe();
        pipe.cmd("ECHO")
            .arg("a")
            .cmd("ECHO")
            .arg("b")
            .cmd("ECHO")
            .arg("c");
        let after = echo("after");
        let (piped, after) = tokio::join!(conn.send_pipeline(&pipe, 1, 1), conn.send(&after));
        assert_eq!(piped.unwrap(), vec![Value::BulkString(b"b".to_vec())]);
        assert_eq!(after.unwrap(), Value::BulkString(b"after".to_vec()));
        // Asking past the end gets what there is.
        let all = conn.send_pipeline(&pipe, 2, 5).await.unwrap();
        assert_eq!(all, vec![Value::BulkString(b"c".to_vec())]);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn values_larger_than_the_socket_buffer_go_through_whole() {
        let (_node, conn, _fake) = connected().await;
        let big: Vec<u8> = (0..16 * 1024 * 1024).map(|i| (i % 251) as u8).collect();
        let (big_cmd, small) = (echo(&big[..]), echo("small"));
        let (a, b) = tokio::join!(conn.send(&big_cmd), conn.send(&small));
        assert!(
            a.unwrap() == Value::BulkString(big),
            "big value came back changed"
        );
        assert_eq!(b.unwrap(), Value::BulkString(b"small".to_vec()));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_node_that_stops_answering_fails_its_callers_after_the_response_timeout() {
        let (endpoint, _fake) = fake_node(false).await;
        let settings = Arc::new(Settings {
            response_timeout: Duration::from_millis(200),
            ..Settings::default()
        });
        let node = Arc::new(Node::new(endpoint, settings));
        let conn = node.connection().await.unwrap();
        let started = Instant::now();
        let (silent, queued) = (redis::cmd("SILENT"), echo("x"));
        let (silent, queued) = tokio::join!(conn.send(&silent), conn.send(&queued));
        let elapsed = started.elapsed();
        let silent = silent.unwrap_err();
        assert!(silent.is_timeout(), "{silent}");
        assert!(queued.is_err(), "{queued:?}");
        assert!(elapsed >= Duration::from_millis(200), "{elapsed:?}");
        assert!(elapsed < Duration::from_secs(2), "{elapsed:?}");
        // Closed for good: the next send fails at once instead of waiting again.
        assert!(conn.send(redis::cmd("ECHO").arg("y")).await.is_err());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_stall_is_one_failure_however_many_waited_and_the_breaker_then_refuses() {
        let (endpoint, _fake) = fake_node(false).await;
        let settings = Arc::new(Settings {
            response_timeout: Duration::from_millis(200),
            down_policy: DownPolicy::FailFast,
            breaker: BreakerOptions::new()
                .consecutive_failures(2)
                .probe_after(Duration::from_secs(30)),
            ..Settings::default()
        });
        let node = Arc::new(Node::new(endpoint, settings));
        let stall = || {
            let node = node.clone();
            async move {
                let conn = node.connection().await.unwrap();
                let waiters: Vec<_> = (0..30)
                    .map(|_| {
                        let (node, conn) = (node.clone(), conn.clone());
                        tokio::spawn(async move {
                            let failed = conn.send(&redis::cmd("SILENT")).await.is_err();
                            node.connection_failed(&conn);
                            failed
                        })
                    })
                    .collect();
                for waiter in waiters {
                    assert!(waiter.await.unwrap(), "a stalled command succeeded");
                }
                node.discard();
            }
        };
        stall().await;
        assert!(
            !node.breaker_shut(),
            "one stall of 30 waiters opened the breaker"
        );
        node.admit().await.expect("closed breaker admits");
        stall().await;
        match node.admit().await {
            Err(Error::CircuitOpen {
                node: name,
                retry_in,
            }) => {
                assert_eq!(name, node.label());
                assert!(retry_in > Duration::from_secs(20), "{retry_in:?}");
            }
            other => panic!("expected CircuitOpen, got {other:?}"),
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_malformed_reply_closes_the_connection_with_a_clear_error() {
        let (node, conn, _fake) = connected().await;
        let error = conn.send(&redis::cmd("GARBAGE")).await.unwrap_err();
        assert!(error.to_string().contains("malformed reply"), "{error}");
        assert!(conn.send(redis::cmd("ECHO").arg("y")).await.is_err());
        // A fresh connection works.
        node.discard();
        let conn = node.connection().await.unwrap();
        let reply = conn.send(redis::cmd("ECHO").arg("z")).await.unwrap();
        assert_eq!(reply, Value::BulkString(b"z".to_vec()));
    }
}
