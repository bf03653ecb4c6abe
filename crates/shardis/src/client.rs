//! The `Client`: cheap to clone, `Send + Sync`, and a [`redis::aio::ConnectionLike`], so
//! `redis::AsyncCommands` and `redis::pipe()` work on it unchanged.

use std::sync::Arc;

use redis::aio::ConnectionLike;
use redis::{Cmd, Pipeline, RedisFuture, Value};
use shardis_slots::Topology;

use crate::cluster::ClusterState;
use crate::config::{Builder, Mode};
use crate::error::{Error, Result};
use crate::hot::Hot;
use crate::ring_client::RingState;
use crate::stats::Stats;

/// A client for a sharded Redis deployment.
///
/// Build one with [`Client::builder`]; clone it freely (clones share connections, topology and
/// counters). Use it through [`redis::AsyncCommands`], [`redis::pipe`], or [`Client::send`].
///
/// ```no_run
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// use redis::AsyncCommands;
///
/// let mut client = shardis::Client::builder().cluster(["127.0.0.1:7000"]).build().await?;
/// let _: () = client.set_ex("user:1:name", "Ada", 60).await?;
/// let name: Option<String> = client.get("user:1:name").await?;
/// assert_eq!(name.as_deref(), Some("Ada"));
///
/// // Keys in different slots: split per slot, sent concurrently, answered in order.
/// let values: Vec<Option<String>> = client.mget(&["a", "b", "c"]).await?;
///
/// // Pipelines across nodes work too.
/// let (x, y): (i64, i64) = redis::pipe().incr("x", 1).incr("y", 1).query_async(&mut client).await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
    hot: Option<Arc<Hot>>,
    /// `shardis_commands_total`, registered once: looking it up per command costs more than
    /// counting.
    commands: metrics::Counter,
}

enum Inner {
    Cluster(Arc<ClusterState>),
    Ring(Arc<RingState>),
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &*self.inner {
            Inner::Cluster(state) => f
                .debug_struct("Client")
                .field("mode", &"cluster")
                .field("settings", &state.settings)
                .finish_non_exhaustive(),
            Inner::Ring(_) => f
                .debug_struct("Client")
                .field("mode", &"ring")
                .finish_non_exhaustive(),
        }
    }
}

impl Client {
    /// The ring-mode state, when this client is in ring mode.
    #[allow(dead_code)]
    pub(crate) fn ring_state(&self) -> Option<&Arc<RingState>> {
        match &*self.inner {
            Inner::Ring(state) => Some(state),
            Inner::Cluster(_) => None,
        }
    }

    /// Starts building a client.
    pub fn builder() -> Builder {
        Builder::default()
    }

    pub(crate) async fn from_builder(builder: Builder) -> Result<Client> {
        builder.validate()?;
        let Some(mode) = builder.mode else {
            return Err(Error::Config("choose a deployment mode".into()));
        };
        let inner = match mode {
            Mode::Cluster { seeds } => {
                Inner::Cluster(ClusterState::connect(&seeds, builder.settings).await?)
            }
            Mode::Ring(config) => Inner::Ring(RingState::connect(config, builder.settings).await?),
        };
        let hot = builder.hot.map(|options| {
            let hot = Hot::new(options);
            hot.spawn_ticker();
            hot
        });
        Ok(Client {
            inner: Arc::new(inner),
            hot,
            commands: metrics::counter!("shardis_commands_total"),
        })
    }

    /// Sends one command where it belongs and returns the raw reply. Command errors of the
    /// server (`WRONGTYPE`, ...) come back as [`Value::ServerError`]; failures of the client
    /// (unreachable node, deadline, cross-slot keys) as [`Error`].
    ///
    /// ```no_run
    /// # async fn run(client: shardis::Client) -> Result<(), shardis::Error> {
    /// let reply = client.send(redis::cmd("GET").arg("greeting")).await?;
    /// # Ok(()) }
    /// ```
    pub async fn send(&self, cmd: &Cmd) -> Result<Value> {
        if let Some(hot) = &self.hot
            && let Some(reply) = hot.intercept(self, cmd).await
        {
            return reply;
        }
        self.send_routed(cmd).await
    }

    /// Sends one command to where its key lives, bypassing the hot-key layer.
    pub(crate) async fn send_routed(&self, cmd: &Cmd) -> Result<Value> {
        self.commands.increment(1);
        let result = match &*self.inner {
            Inner::Cluster(state) => state.run(cmd).await,
            Inner::Ring(state) => state.run(cmd).await,
        };
        if let Err(e) = &result {
            metrics::counter!("shardis_errors_total", "kind" => e.kind_label()).increment(1);
            tracing::debug!(error = %e, "command failed");
        }
        result
    }

    /// Runs `cmd` on every primary (in ring mode: every node) concurrently; returns each
    /// node's address and reply.
    ///
    /// ```no_run
    /// # async fn run(client: shardis::Client) -> Result<(), shardis::Error> {
    /// for (node, reply) in client.on_all_primaries(&redis::cmd("DBSIZE")).await? {
    ///     println!("{node}: {reply:?}");
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn on_all_primaries(&self, cmd: &Cmd) -> Result<Vec<(String, Value)>> {
        match &*self.inner {
            Inner::Cluster(state) => fan_out(state, state.routes.load().primaries(), cmd).await,
            Inner::Ring(state) => state.on_all_nodes(cmd).await,
        }
    }

    /// Runs `cmd` on every node (primaries and replicas) concurrently.
    pub async fn on_all_nodes(&self, cmd: &Cmd) -> Result<Vec<(String, Value)>> {
        match &*self.inner {
            Inner::Cluster(state) => fan_out(state, state.routes.load().all_nodes(), cmd).await,
            Inner::Ring(state) => state.on_all_nodes(cmd).await,
        }
    }

    /// The cluster topology the client routes by right now (empty in ring mode).
    pub fn topology(&self) -> Topology {
        match &*self.inner {
            Inner::Cluster(state) => state.routes.load().map.topology().clone(),
            Inner::Ring(_) => Topology::empty(),
        }
    }

    /// Reloads the topology now and waits for it (bounded by the command deadline).
    pub async fn refresh_topology(&self) {
        match &*self.inner {
            Inner::Cluster(state) => {
                let until = tokio::time::Instant::now() + state.settings.deadline;
                state.refresher.request_and_wait(until).await;
            }
            Inner::Ring(_) => {}
        }
    }

    /// What the client has done so far: redirects followed, retries, refreshes, hot-key
    /// copy reads.
    pub fn stats(&self) -> Stats {
        let mut stats = match &*self.inner {
            Inner::Cluster(state) => state.stats.snapshot(),
            Inner::Ring(state) => state.stats(),
        };
        if let Some(hot) = &self.hot {
            hot.add_to(&mut stats);
        }
        stats
    }

    /// The keys that are hot now (detected or declared), with their estimated read rates.
    /// Empty unless [`Builder::hot_keys`](crate::Builder::hot_keys) was set.
    ///
    /// ```no_run
    /// # fn run(client: shardis::Client) {
    /// for hot in client.hot_keys() {
    ///     println!("{} at {:.0}/s", String::from_utf8_lossy(&hot.key), hot.rate_per_sec);
    /// }
    /// # }
    /// ```
    pub fn hot_keys(&self) -> Vec<shardis_hotkey::HotKey> {
        self.hot.as_ref().map(|h| h.hot_keys()).unwrap_or_default()
    }

    /// The routing snapshot copies are placed against, and how many shards it has.
    pub(crate) fn placement_view(&self) -> (Arc<dyn std::any::Any + Send + Sync>, usize) {
        match &*self.inner {
            Inner::Cluster(state) => {
                let routes = state.routes.load_full();
                let shards = routes.shards.len();
                (routes, shards)
            }
            Inner::Ring(state) => {
                let live = state.snapshot.load().live.clone();
                let nodes = live.members().len();
                (live, nodes)
            }
        }
    }

    /// Up to `n` names for `key` on distinct shards of `view` (from [`Self::placement_view`]).
    pub(crate) fn copy_names(
        &self,
        view: &Arc<dyn std::any::Any + Send + Sync>,
        key: &[u8],
        n: usize,
    ) -> Vec<Vec<u8>> {
        if let Some(routes) = view.downcast_ref::<crate::cluster::routes::Routes>() {
            return shardis_hotkey::cluster_copies(key, n, |slot| routes.map.shard_index(slot));
        }
        if let Some(ring) = view.downcast_ref::<crate::ring_client::Routing>() {
            return shardis_hotkey::copies_with(key, n, |name| {
                let owner = ring.owner(name);
                ring.members().iter().position(|m| Arc::ptr_eq(m, owner))
            });
        }
        vec![key.to_vec()]
    }
}

async fn fan_out(
    state: &ClusterState,
    nodes: Vec<Arc<crate::pool::NodeConn>>,
    cmd: &Cmd,
) -> Result<Vec<(String, Value)>> {
    let deadline = state.settings.deadline;
    let calls = nodes.iter().map(|node| async move {
        let conn = node.connection().await?;
        match tokio::time::timeout(deadline, conn.send(cmd)).await {
            Ok(Ok(value)) => Ok((node.label().to_string(), value)),
            Ok(Err(e)) => Err(Error::Connection {
                node: node.label().to_string(),
                slot: None,
                message: e.to_string(),
            }),
            Err(_) => Err(Error::Timeout {
                deadline,
                attempts: 1,
                slot: None,
                node: Some(node.label().to_string()),
                last: "no reply".into(),
            }),
        }
    });
    futures::future::try_join_all(calls).await
}

impl ConnectionLike for Client {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        Box::pin(async move { self.send(cmd).await.map_err(Into::into) })
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        Box::pin(async move {
            let result = match &*self.inner {
                Inner::Cluster(state) => {
                    crate::cluster::pipeline::run(state, pipeline, offset, count).await
                }
                Inner::Ring(state) => state.run_pipeline(pipeline, offset, count).await,
            };
            result.map_err(Into::into)
        })
    }

    fn get_db(&self) -> i64 {
        0
    }
}

// A client is shared across tasks and threads: keep it so.
const _: fn() = || {
    fn check<T: Send + Sync + Clone + 'static>() {}
    check::<Client>();
};
