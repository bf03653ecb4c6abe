//! The `Client`: cheap to clone, `Send + Sync`, and a [`redis::aio::ConnectionLike`], so
//! `redis::AsyncCommands` and `redis::pipe()` work on it unchanged. Every method of the client,
//! in both modes, is in this file; the work is done by the [engine](crate::engine) over the
//! mode's router.

use std::sync::Arc;

use redis::aio::ConnectionLike;
use redis::{Cmd, Pipeline, RedisFuture, Value};
use shardis_slots::Topology;

use crate::builder::{Builder, Mode};
use crate::cluster::ClusterRouter;
use crate::dedicated::DedicatedConnection;
use crate::engine::scan::ScanOptions;
use crate::engine::{Engine, Router, Shards, View};
use crate::error::{Error, Result};
use crate::hot::{CopyPlacement, Hot, Intercepted};
use crate::pubsub::{Kind, Placement, Subscription};
use crate::replicated::{ReplicatedRouter, Replication};
use crate::ring_router::{MembershipChange, RingNode, RingRouter, RingStatus};
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

/// The engine over the mode's router.
enum Inner {
    Cluster(Engine<Arc<ClusterRouter>>),
    Ring(Engine<Arc<RingRouter>>),
    Replicated(Engine<Arc<ReplicatedRouter>>),
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &*self.inner {
            Inner::Cluster(engine) => f
                .debug_struct("Client")
                .field("mode", &"cluster")
                .field("settings", &engine.router.settings)
                .finish_non_exhaustive(),
            Inner::Ring(engine) => f
                .debug_struct("Client")
                .field("mode", &"ring")
                .field("settings", &engine.router.settings)
                .finish_non_exhaustive(),
            Inner::Replicated(engine) => f
                .debug_struct("Client")
                .field("mode", &"replicated")
                .field("source", &engine.router.source)
                .field("settings", &engine.router.settings)
                .finish_non_exhaustive(),
        }
    }
}

/// Runs `$body` with `$engine` bound to the mode's engine (the engine is generic over the
/// router; each mode gets its own monomorphised copy, no dynamic dispatch per command).
macro_rules! with_engine {
    ($inner:expr, $engine:ident => $body:expr) => {
        match $inner {
            Inner::Cluster($engine) => $body,
            Inner::Ring($engine) => $body,
            Inner::Replicated($engine) => $body,
        }
    };
}

impl Client {
    /// Starts building a client.
    pub fn builder() -> Builder {
        Builder::default()
    }

    pub(crate) async fn from_builder(builder: Builder) -> Result<Client> {
        let builder = builder.resolved()?;
        let Some(mode) = builder.mode else {
            return Err(Error::Config("choose a deployment mode".into()));
        };
        let inner = match mode {
            Mode::Cluster { seeds } => Inner::Cluster(Engine::new(
                ClusterRouter::connect(&seeds, builder.settings).await?,
            )),
            Mode::Ring(mut config) => {
                config.sentinel_auth = builder.sentinel_auth;
                Inner::Ring(Engine::new(
                    RingRouter::connect(config, builder.settings).await?,
                ))
            }
            Mode::Replicated(source) => Inner::Replicated(Engine::new(
                ReplicatedRouter::connect(
                    source.with_sentinel_auth(builder.sentinel_auth),
                    builder.settings,
                )
                .await?,
            )),
        };
        let near_tracking = builder
            .hot
            .as_ref()
            .and_then(|options| options.near_tracking.clone());
        let hot = builder.hot.map(|options| {
            let hot = Hot::new(options);
            hot.spawn_ticker();
            hot
        });
        let client = Client {
            inner: Arc::new(inner),
            hot,
            commands: metrics::counter!("shardis_commands_total"),
        };
        if let (Some(prefixes), Some(hot)) = (near_tracking, &client.hot) {
            let stream = client.invalidations(prefixes)?;
            crate::hot::spawn_coherence(Arc::downgrade(hot), stream);
        }
        Ok(client)
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
        let Some(hot) = &self.hot else {
            return self.send_routed(cmd).await;
        };
        let cool = match hot.intercept(self, cmd).await {
            Intercepted::Done(reply) => return reply,
            Intercepted::Route(cool) => cool,
        };
        let reply = self.send_routed(cmd).await;
        // A write of keys without a state stays counted until answered (see `hot`).
        drop(cool);
        reply
    }

    /// [`Client::send`] with a timeout of its own for this one command, instead of the
    /// client's deadline: at `timeout` the call fails with [`Error::Timeout`] (for a blocking
    /// command with timeout 0, this is how long it may wait). The connections are unaffected:
    /// a late reply is dropped, and a dedicated connection left waiting is closed.
    ///
    /// ```no_run
    /// # async fn run(client: shardis::Client) -> Result<(), shardis::Error> {
    /// use std::time::Duration;
    /// let job = client
    ///     .send_with_timeout(redis::cmd("BLPOP").arg("jobs").arg(0), Duration::from_secs(10))
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub async fn send_with_timeout(
        &self,
        cmd: &Cmd,
        timeout: std::time::Duration,
    ) -> Result<Value> {
        match tokio::time::timeout(timeout, self.send(cmd)).await {
            Ok(result) => result,
            Err(_) => {
                let result = Err(Error::timeout(
                    timeout,
                    1,
                    None,
                    None,
                    "no reply within the command's timeout",
                ));
                count_error(&result);
                result
            }
        }
    }

    /// An exclusive connection to the node that serves `key` (its slot's primary; in ring
    /// mode its node), for `WATCH`/`MULTI`/`EXEC`, a write followed by `WAIT`, or anything that
    /// must see one connection's state. See [`DedicatedConnection`].
    ///
    /// ```no_run
    /// # async fn run(client: shardis::Client) -> Result<(), Box<dyn std::error::Error>> {
    /// use redis::AsyncCommands;
    /// let mut conn = client.dedicated("{cart:1}").await?;
    /// let _: () = conn.set("{cart:1}:total", 42).await?;
    /// # Ok(()) }
    /// ```
    pub async fn dedicated(&self, key: impl AsRef<[u8]>) -> Result<DedicatedConnection> {
        let key = key.as_ref();
        let server = with_engine!(&*self.inner, engine => {
            let view = engine.router.view();
            let shard = view.shard_of(key);
            view.node_of(shard, false).and_then(|node| view.server(&node))
        });
        let Some(server) = server else {
            return Err(Error::SlotUnassigned {
                slot: shardis_slots::key_slot(key),
            });
        };
        let conn = server.dedicated().await?;
        Ok(DedicatedConnection::new(
            conn,
            self.clone(),
            key,
            server.label().to_string(),
        ))
    }

    /// An optimistic transaction, as redis-rs' `transaction` on a single Redis: on a dedicated
    /// connection to the keys' node, `WATCH`es `keys`, runs `body` (which reads what it needs
    /// and returns the result of an atomic pipeline: `None` when `EXEC` found a watched key
    /// changed), and runs it again while it returns `None` (at most 32 times, then
    /// [`Error::TransactionConflict`]). Every key must share one slot (one ring node).
    ///
    /// ```no_run
    /// # async fn run(client: shardis::Client) -> redis::RedisResult<()> {
    /// use redis::AsyncCommands;
    /// let key = "{acct:1}:balance";
    /// let new: i64 = client
    ///     .transaction(&[key], async |conn, mut pipe| {
    ///         let balance: i64 = conn.get(key).await?;
    ///         pipe.set(key, balance + 10).ignore().get(key);
    ///         let done: Option<(i64,)> = pipe.query_async(conn).await?;
    ///         Ok(done.map(|(v,)| v))
    ///     })
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub async fn transaction<K, T>(
        &self,
        keys: &[K],
        mut body: impl AsyncFnMut(&mut DedicatedConnection, Pipeline) -> redis::RedisResult<Option<T>>,
    ) -> redis::RedisResult<T>
    where
        K: AsRef<[u8]>,
    {
        let Some(first) = keys.first() else {
            return Err(
                Error::Config("a transaction needs at least one key to watch".into()).into(),
            );
        };
        for key in &keys[1..] {
            if !self.same_shard(first.as_ref(), key.as_ref()) {
                return Err(self
                    .spread_error("WATCH", first.as_ref(), key.as_ref())
                    .into());
            }
        }
        let mut conn = self.dedicated(first).await?;
        for attempt in 1..=crate::dedicated::TRANSACTION_ATTEMPTS {
            let mut watch = redis::cmd("WATCH");
            for key in keys {
                watch.arg(key.as_ref());
            }
            conn.req_packed_command(&watch).await?;
            let mut pipe = redis::pipe();
            pipe.atomic();
            match body(&mut conn, pipe).await {
                Ok(Some(value)) => return Ok(value),
                Ok(None) => {
                    metrics::counter!("shardis_transaction_retries_total").increment(1);
                    tokio::time::sleep(crate::dedicated::transaction_backoff(attempt)).await;
                }
                Err(e) => {
                    // Leave nothing watched on a connection that may be reused.
                    let _ = conn.req_packed_command(&redis::cmd("UNWATCH")).await;
                    return Err(e);
                }
            }
        }
        Err(Error::TransactionConflict {
            attempts: crate::dedicated::TRANSACTION_ATTEMPTS,
        }
        .into())
    }

    /// Every key of the keyspace (every primary, every ring node), as a stream: `SCAN` with a
    /// cursor per node and the options' `MATCH`/`COUNT`/`TYPE`. A key present for the whole
    /// scan is returned at least once, across a reshard, a failover or a ring rebalance (the
    /// scan makes another pass when the topology changed under it); some keys may come twice.
    /// `SCAN` sent as a command is refused: one node's cursor is not the keyspace's.
    ///
    /// ```no_run
    /// # async fn run(client: shardis::Client) -> Result<(), shardis::Error> {
    /// use futures::StreamExt;
    /// let mut keys = client.scan(shardis::ScanOptions::new().pattern("session:*"));
    /// while let Some(key) = keys.next().await {
    ///     println!("{}", String::from_utf8_lossy(&key?));
    /// }
    /// # Ok(()) }
    /// ```
    pub fn scan(
        &self,
        options: ScanOptions,
    ) -> futures::stream::BoxStream<'static, Result<Vec<u8>>> {
        use futures::StreamExt;
        match &*self.inner {
            Inner::Cluster(engine) => {
                crate::engine::scan::stream(Box::new(engine.router.clone()), options).boxed()
            }
            Inner::Ring(engine) => {
                crate::engine::scan::stream(Box::new(engine.router.clone()), options).boxed()
            }
            Inner::Replicated(engine) => {
                crate::engine::scan::stream(Box::new(engine.router.clone()), options).boxed()
            }
        }
    }

    /// Whether `a` and `b` route to the same shard now.
    pub(crate) fn same_shard(&self, a: &[u8], b: &[u8]) -> bool {
        with_engine!(&*self.inner, engine => {
            let shards = engine.router.shards();
            shards.shard_of(a) == shards.shard_of(b)
        })
    }

    /// The refusal of `command` over keys `a` and `b` of different shards.
    pub(crate) fn spread_error(&self, command: &str, a: &[u8], b: &[u8]) -> Error {
        with_engine!(&*self.inner, engine => {
            let shards = engine.router.shards();
            shards.spread_error(command, shards.shard_of(a), shards.shard_of(b))
        })
    }

    /// Sends one command to where its key lives, bypassing the hot-key layer.
    pub(crate) async fn send_routed(&self, cmd: &Cmd) -> Result<Value> {
        self.commands.increment(1);
        let result = with_engine!(&*self.inner, engine => engine.run(cmd, false).await);
        count_error(&result);
        result
    }

    /// Runs a pipeline (atomic or not) and returns replies `offset .. offset + count`.
    pub(crate) async fn send_pipeline(
        &self,
        pipeline: &Pipeline,
        offset: usize,
        count: usize,
    ) -> Result<Vec<Value>> {
        match &self.hot {
            Some(hot) => hot.run_pipeline(self, pipeline, offset, count).await,
            None => self.send_pipeline_routed(pipeline, offset, count).await,
        }
    }

    /// Runs a pipeline, bypassing the hot-key layer.
    pub(crate) async fn send_pipeline_routed(
        &self,
        pipeline: &Pipeline,
        offset: usize,
        count: usize,
    ) -> Result<Vec<Value>> {
        use tracing::Instrument;
        self.commands.increment(pipeline.len() as u64);
        let span = tracing::debug_span!(
            "shardis.pipeline",
            commands = pipeline.len(),
            atomic = pipeline.is_transaction()
        );
        let run = async {
            with_engine!(&*self.inner, engine => engine.run_pipeline(pipeline, offset, count).await)
        };
        let result = if span.is_disabled() {
            run.await
        } else {
            run.instrument(span).await
        };
        count_error(&result);
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
        with_engine!(&*self.inner, engine => engine.fan_out(cmd, false).await)
    }

    /// Runs `cmd` on every node (primaries and replicas; in ring mode every node) concurrently.
    pub async fn on_all_nodes(&self, cmd: &Cmd) -> Result<Vec<(String, Value)>> {
        with_engine!(&*self.inner, engine => engine.fan_out(cmd, true).await)
    }

    /// The cluster topology the client routes by right now. A ring or a primary with replicas
    /// has no cluster topology: in those modes this is empty; see [`Client::ring_status`] and
    /// [`Client::replication`].
    pub fn topology(&self) -> Topology {
        match &*self.inner {
            Inner::Cluster(engine) => engine.router.routes.load().map.topology().clone(),
            Inner::Ring(_) | Inner::Replicated(_) => Topology::empty(),
        }
    }

    /// Reloads the cluster topology now and waits for it (bounded by the command deadline);
    /// in primary+replicas and Sentinel modes, finds the primary and replicas again.
    ///
    /// Fails with [`Error::Config`] in ring mode, where the client owns the topology (see
    /// [`Client::add_node`]).
    pub async fn refresh_topology(&self) -> Result<()> {
        match &*self.inner {
            Inner::Cluster(engine) => {
                let router = &engine.router;
                let until = tokio::time::Instant::now() + router.settings.deadline;
                router.refresher.request_and_wait(until).await;
                Ok(())
            }
            Inner::Replicated(engine) => {
                let router = &engine.router;
                let until = tokio::time::Instant::now() + router.settings.deadline;
                router.rediscovery.request_and_wait(until).await;
                Ok(())
            }
            Inner::Ring(_) => Err(Error::Config(
                "refresh_topology is for cluster mode: a ring's topology is the client's own \
                 (see add_node, remove_node, ring_status)"
                    .into(),
            )),
        }
    }

    /// What the client has done so far: redirects followed, retries, refreshes (cluster mode;
    /// in primary+replicas and Sentinel modes retries and rediscoveries of the primary; ring
    /// events are in [`Client::ring_status`]), hot-key copy reads.
    pub fn stats(&self) -> Stats {
        let mut stats = match &*self.inner {
            Inner::Cluster(engine) => engine.router.stats.snapshot(),
            Inner::Replicated(engine) => engine.router.stats.snapshot(),
            Inner::Ring(_) => Stats::default(),
        };
        if let Some(hot) = &self.hot {
            hot.add_to(&mut stats);
        }
        stats
    }

    /// Where a primary+replicas or Sentinel client routes now: the primary, the replicas
    /// reads may use, and how many promotions it followed; `None` in the other modes.
    ///
    /// ```no_run
    /// # fn run(client: shardis::Client) {
    /// if let Some(replication) = client.replication() {
    ///     println!("writes go to {}", replication.primary);
    /// }
    /// # }
    /// ```
    pub fn replication(&self) -> Option<Replication> {
        match &*self.inner {
            Inner::Replicated(engine) => Some(engine.router.replication()),
            Inner::Cluster(_) | Inner::Ring(_) => None,
        }
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

    /// The routing snapshot hot-key copies are placed against.
    pub(crate) fn copy_placement(&self) -> Arc<dyn CopyPlacement> {
        match &*self.inner {
            Inner::Cluster(engine) => engine.router.routes.load_full(),
            Inner::Ring(engine) => engine.router.snapshot.load().live.clone(),
            Inner::Replicated(engine) => engine.router.routes.load_full(),
        }
    }

    fn ring_router(&self) -> Result<&Arc<RingRouter>> {
        match &*self.inner {
            Inner::Ring(engine) => Ok(&engine.router),
            Inner::Cluster(_) | Inner::Replicated(_) => Err(Error::Config(
                "ring membership changes need a ring-mode client".into(),
            )),
        }
    }

    /// Adds a node to the ring (ring mode). Keys move only to it. Under fail-fast the node
    /// must answer `PING`; under eject an unreachable node joins ejected.
    ///
    /// ```no_run
    /// # async fn run(client: shardis::Client) -> Result<(), shardis::Error> {
    /// let change = client.add_node(shardis::RingNode::new("e", "10.0.0.5:6379", 1)).await?;
    /// println!("{:.1}% of keys moved", change.moved_fraction * 100.0);
    /// # Ok(()) }
    /// ```
    pub async fn add_node(&self, node: RingNode) -> Result<MembershipChange> {
        self.ring_router()?.add_node(node).await
    }

    /// Removes the node `name` from the ring (ring mode). Only its keys move.
    pub async fn remove_node(&self, name: &str) -> Result<MembershipChange> {
        self.ring_router()?.remove_node(name).await
    }

    /// Gives node `name` a new weight (ring mode). Raising it moves keys only to that node;
    /// lowering it, only away from it.
    pub async fn set_weight(&self, name: &str, weight: u32) -> Result<MembershipChange> {
        self.ring_router()?.set_weight(name, weight).await
    }

    /// The ring's nodes, their health and ring events so far; `None` in cluster mode.
    pub fn ring_status(&self) -> Option<RingStatus> {
        self.ring_router().ok().map(|router| router.status())
    }

    /// The name of the node that serves `key` now (ring mode): its owner, or the next node
    /// clockwise while its owner is ejected. `None` in cluster mode.
    ///
    /// ```no_run
    /// # fn run(client: shardis::Client) {
    /// println!("user:42 lives on {:?}", client.ring_node_for(b"user:42"));
    /// # }
    /// ```
    pub fn ring_node_for(&self, key: &[u8]) -> Option<String> {
        let router = self.ring_router().ok()?;
        Some(router.snapshot.load().live.owner(key).name().to_string())
    }

    // --- Pub/sub (see `pubsub/`) ---

    /// Subscribes to `channels` (`SUBSCRIBE`) on connections of the subscription's own;
    /// returns once the server confirmed them. Messages from `PUBLISH` (through this client or
    /// any other) arrive on the returned [`Subscription`], a [`futures::Stream`]; it is set up
    /// again after reconnects and topology changes (see [`Subscription`] for where it runs and
    /// what a gap is).
    ///
    /// ```no_run
    /// # async fn run(client: shardis::Client) -> Result<(), Box<dyn std::error::Error>> {
    /// use futures::StreamExt;
    ///
    /// let mut news = client.subscribe(["news"]).await?;
    /// let _ = client.send(redis::cmd("PUBLISH").arg("news").arg("hello")).await?;
    /// if let Some(message) = news.next().await {
    ///     assert_eq!(message.payload(), b"hello");
    /// }
    /// news.unsubscribe(["news"]).await?;
    /// # Ok(()) }
    /// ```
    pub async fn subscribe<I, C>(&self, channels: I) -> Result<Subscription>
    where
        I: IntoIterator<Item = C>,
        C: AsRef<[u8]>,
    {
        let subscription = Subscription::open(self.placement(), Kind::Channel, Vec::new()).await?;
        subscription.subscribe(channels).await?;
        Ok(subscription)
    }

    /// Subscribes to glob `patterns` (`PSUBSCRIBE`); see [`Client::subscribe`]. In ring mode a
    /// pattern is subscribed on every live node (each node hears the channels it owns).
    ///
    /// ```no_run
    /// # async fn run(client: shardis::Client) -> Result<(), shardis::Error> {
    /// let alerts = client.psubscribe(["alerts:*"]).await?;
    /// # Ok(()) }
    /// ```
    pub async fn psubscribe<I, C>(&self, patterns: I) -> Result<Subscription>
    where
        I: IntoIterator<Item = C>,
        C: AsRef<[u8]>,
    {
        let subscription = Subscription::open(self.placement(), Kind::Pattern, Vec::new()).await?;
        subscription.psubscribe(patterns).await?;
        Ok(subscription)
    }

    /// Subscribes to shard `channels` (`SSUBSCRIBE`, Redis 7): in cluster mode on the primary
    /// of each channel's slot, followed across reshards and failovers; in ring mode on each
    /// channel's ring owner. Publish with `SPUBLISH` through the client.
    ///
    /// ```no_run
    /// # async fn run(client: shardis::Client) -> Result<(), shardis::Error> {
    /// let orders = client.ssubscribe(["orders:{eu}", "refunds:{eu}"]).await?;
    /// client.send(redis::cmd("SPUBLISH").arg("orders:{eu}").arg("order 7")).await?;
    /// # Ok(()) }
    /// ```
    pub async fn ssubscribe<I, C>(&self, channels: I) -> Result<Subscription>
    where
        I: IntoIterator<Item = C>,
        C: AsRef<[u8]>,
    {
        let subscription = Subscription::open(self.placement(), Kind::Shard, Vec::new()).await?;
        subscription.ssubscribe(channels).await?;
        Ok(subscription)
    }

    /// A stream of the invalidations of every key starting with one of `prefixes`, from
    /// every node that can serve a read (cluster: primaries and replicas; primary+replicas and
    /// Sentinel: the primary and its replicas; ring: live members),
    /// through Redis server-assisted client-side caching in broadcast mode (`CLIENT TRACKING
    /// on REDIRECT <own id> BCAST PREFIX ...`, one RESP2 connection per node, named
    /// [`TRACKING_CLIENT_NAME`](crate::TRACKING_CLIENT_NAME)). It follows the topology and
    /// says when it is complete ([`Invalidation::Ready`](crate::Invalidation::Ready)) and when
    /// changes may have gone unreported ([`Invalidation::Broken`](crate::Invalidation::Broken):
    /// a lost connection, a heartbeat unanswered for the response timeout, a node that joined
    /// or left). No prefix tracks every key.
    ///
    /// Must be called inside a tokio runtime. Prefixes that overlap are refused by Redis: the
    /// stream then never becomes ready (logged).
    ///
    /// ```no_run
    /// # async fn run(client: shardis::Client) -> Result<(), shardis::Error> {
    /// use futures::StreamExt;
    /// use shardis::Invalidation;
    ///
    /// let mut changes = client.invalidations(["user:"])?;
    /// while let Some(event) = changes.next().await {
    ///     match event {
    ///         Invalidation::Keys(keys) => { /* drop those keys */ }
    ///         Invalidation::Ready => { /* complete from here on */ }
    ///         _ => { /* Broken or Flush: drop everything */ }
    ///     }
    /// }
    /// # Ok(()) }
    /// ```
    pub fn invalidations<I, P>(&self, prefixes: I) -> Result<crate::InvalidationStream>
    where
        I: IntoIterator<Item = P>,
        P: AsRef<[u8]>,
    {
        let prefixes = prefixes.into_iter().map(|p| p.as_ref().to_vec()).collect();
        crate::InvalidationStream::open(self.placement(), prefixes)
    }

    /// The router, as subscriptions see it.
    fn placement(&self) -> Placement {
        match &*self.inner {
            Inner::Cluster(engine) => Placement::Cluster(engine.router.clone()),
            Inner::Ring(engine) => Placement::Ring(engine.router.clone()),
            Inner::Replicated(engine) => Placement::Replicated(engine.router.clone()),
        }
    }
}

/// Counts a failed call in `shardis_errors_total{kind}`.
fn count_error<T>(result: &Result<T>) {
    if let Err(e) = result {
        metrics::counter!("shardis_errors_total", "kind" => e.kind_label()).increment(1);
        tracing::debug!(error = %e, "command failed");
    }
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
            self.send_pipeline(pipeline, offset, count)
                .await
                .map_err(Into::into)
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

#[cfg(test)]
mod future_size {
    use super::*;

    /// What one command's future may weigh: it is built, moved and dropped on every call,
    /// so its size is a cost every command pays, and the cache boxes a lookup that holds it
    /// (see `shardis-cache`'s `future_size`). Rare paths are boxed to keep it small (see
    /// `engine`); this catches a rare path that grows it again. Measured 704 bytes for
    /// `send` (the same in debug and release builds: a future's layout is fixed before
    /// optimisation); 1,408 before the routers' futures were awaited without layers around
    /// them, 7,096 before the rare paths were boxed.
    const LIMIT: usize = 800;

    #[tokio::test]
    async fn one_command_future_stays_small() {
        let mut get = redis::cmd("GET");
        get.arg("k");
        let node = shardis_testkit::Standalone::start(1)
            .await
            .expect("redis-server");
        let client = Client::builder()
            .ring([crate::RingNode::new("a", node.nodes()[0].addr(), 1)])
            .build()
            .await
            .expect("client");
        // One future type for every mode (the engine is chosen inside it): its size is the
        // largest mode's.
        let send = std::mem::size_of_val(&client.send(&get));
        assert!(send <= LIMIT, "Client::send is {send} bytes");
        assert_eq!(client.send(&get).await.expect("GET"), Value::Nil);
    }
}
