//! Connections to nodes: a few multiplexed (pipelined) connections per node, opened lazily,
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
use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, ConnectionAddr, IntoConnectionInfo, RedisConnectionInfo};
use shardis_slots::Endpoint;

use crate::config::Settings;
use crate::error::{Error, Result};

/// One node and its connections.
pub(crate) struct NodeConn {
    pub endpoint: Endpoint,
    label: String,
    slots: Box<[ArcSwapOption<MultiplexedConnection>]>,
    next: AtomicUsize,
    opening: tokio::sync::Mutex<()>,
    /// Consecutive failures to connect; 0 when healthy.
    failures: AtomicU32,
    last_failure: parking_lot::Mutex<Option<Instant>>,
    settings: Arc<Settings>,
    /// Reply latency of this node, registered once so recording is cheap.
    pub latency: metrics::Histogram,
}

impl NodeConn {
    fn new(endpoint: Endpoint, settings: Arc<Settings>) -> Self {
        let slots = (0..settings.connections_per_node)
            .map(|_| ArcSwapOption::empty())
            .collect();
        let latency =
            metrics::histogram!("shardis_node_latency_seconds", "node" => endpoint.to_string());
        NodeConn {
            label: endpoint.to_string(),
            endpoint,
            slots,
            next: AtomicUsize::new(0),
            opening: tokio::sync::Mutex::new(()),
            failures: AtomicU32::new(0),
            last_failure: parking_lot::Mutex::new(None),
            latency,
            settings,
        }
    }

    /// The node's address as text, for errors, logs and metric labels.
    pub fn label(&self) -> &str {
        &self.label
    }

    /// False while the node is in reconnect backoff after failing to connect.
    pub fn is_healthy(&self) -> bool {
        self.failures.load(Ordering::Relaxed) == 0
    }

    /// A connection to this node, opening one if needed.
    ///
    /// While the node is in reconnect backoff this fails at once instead of queueing: callers
    /// must not wait behind each other on a dead node (their deadline is better spent on a
    /// topology refresh that routes them elsewhere).
    pub async fn connection(&self) -> Result<MultiplexedConnection> {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.slots.len();
        if let Some(conn) = self.slots[i].load_full() {
            return Ok((*conn).clone());
        }
        if let Some(message) = self.backoff_remaining() {
            return Err(Error::Connection {
                node: self.label.clone(),
                slot: None,
                message,
            });
        }
        // One caller opens; the others wait for that attempt (bounded by the connect timeout).
        let _opening = self.opening.lock().await;
        if let Some(conn) = self.slots[i].load_full() {
            return Ok((*conn).clone());
        }
        if let Some(message) = self.backoff_remaining() {
            return Err(Error::Connection {
                node: self.label.clone(),
                slot: None,
                message,
            });
        }
        match self.open().await {
            Ok(conn) => {
                self.failures.store(0, Ordering::Relaxed);
                self.slots[i].store(Some(Arc::new(conn.clone())));
                Ok(conn)
            }
            Err(message) => {
                let failures = self.failures.fetch_add(1, Ordering::Relaxed) + 1;
                *self.last_failure.lock() = Some(Instant::now());
                tracing::debug!(node = %self.label, failures, %message, "connect failed");
                metrics::counter!("shardis_connect_failures_total").increment(1);
                Err(Error::Connection {
                    node: self.label.clone(),
                    slot: None,
                    message,
                })
            }
        }
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

    async fn open(&self) -> std::result::Result<MultiplexedConnection, String> {
        let s = &self.settings;
        let mut redis_info =
            RedisConnectionInfo::default().set_lib_name("shardis", env!("CARGO_PKG_VERSION"));
        if let Some(user) = &s.username {
            redis_info = redis_info.set_username(user);
        }
        if let Some(password) = &s.password {
            redis_info = redis_info.set_password(password.expose());
        }
        let info = ConnectionAddr::Tcp(self.endpoint.host.clone(), self.endpoint.port)
            .into_connection_info()
            .map_err(|e| e.to_string())?
            .set_redis_settings(redis_info);
        let client = redis::Client::open(info).map_err(|e| e.to_string())?;
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(s.connect_timeout))
            .set_response_timeout(Some(s.response_timeout));
        let connect = client.get_multiplexed_async_connection_with_config(&config);
        let mut conn =
            match tokio::time::timeout(s.connect_timeout + s.response_timeout, connect).await {
                Ok(Ok(conn)) => conn,
                Ok(Err(e)) => return Err(e.to_string()),
                Err(_) => return Err(format!("connect timed out after {:?}", s.connect_timeout)),
            };
        // Named, so operators (and tests) can tell shardis connections apart in CLIENT LIST;
        // CLIENT SETINFO lib-name only exists from Redis 7.2 on.
        redis::cmd("CLIENT")
            .arg("SETNAME")
            .arg("shardis")
            .exec_async(&mut conn)
            .await
            .map_err(|e| e.to_string())?;
        if s.read_from != crate::ReadFrom::Primary {
            // READONLY once per connection: replicas then serve reads of their shard. On a
            // primary it is harmless, and a node's role can change under us anyway.
            redis::cmd("READONLY")
                .exec_async(&mut conn)
                .await
                .map_err(|e| e.to_string())?;
        }
        Ok(conn)
    }

    /// Forgets this node's connections after one failed, so the next caller opens a fresh
    /// one. (A broken multiplexed connection usually means the node went away: its siblings
    /// are broken too.)
    pub fn discard(&self) {
        for slot in self.slots.iter() {
            slot.store(None);
        }
    }
}

/// All nodes the client knows, by address.
pub(crate) struct Pool {
    nodes: ArcSwap<HashMap<Endpoint, Arc<NodeConn>>>,
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
    pub fn node(&self, endpoint: &Endpoint) -> Arc<NodeConn> {
        if let Some(node) = self.nodes.load().get(endpoint) {
            return node.clone();
        }
        let _adding = self.adding.lock();
        let current = self.nodes.load_full();
        if let Some(node) = current.get(endpoint) {
            return node.clone();
        }
        let node = Arc::new(NodeConn::new(endpoint.clone(), self.settings.clone()));
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
