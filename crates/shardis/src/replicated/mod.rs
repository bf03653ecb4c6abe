//! Primary + replicas mode, without Redis Cluster: one shard, its primary found by asking the
//! nodes (`ROLE`) or Redis Sentinel, reads spread over replicas per [`ReadFrom`].
//!
//! - `role.rs`: what a node says it is, and which node is the primary (pure);
//! - `retry.rs`: what an attempt's outcome means (pure);
//! - `send.rs`: the I/O shell that routes, sends and carries the decision out;
//! - `discover.rs`: finding the primary and replicas again (single-flight, rate-limited, in
//!   the background), from the known nodes or the sentinels;
//! - `sentinel.rs`: asking sentinels, and following `+switch-master` on them.
//!
//! The routing snapshot ([`ReplicaRoutes`]) is immutable and swapped whole, as in the other
//! modes. There is one shard, so multi-key commands, transactions and scripts never span
//! shards; whole-keyspace commands run on the primary only.

mod discover;
mod retry;
mod role;
mod send;
pub(crate) mod sentinel;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

use arc_swap::ArcSwap;
use redis::{Cmd, Pipeline, Value};
use shardis_slots::Endpoint;

use crate::cluster::refresh::Refresher;
use crate::engine::{BatchFailed, Request, Router, Shards, Target, View};
use crate::error::{Error, Result};
use crate::net::{Node, Pool};
use crate::settings::{ReadFrom, Settings};

pub(crate) use sentinel::SentinelAuth;

/// Where the primary and replicas are learned from.
#[derive(Clone, Debug)]
pub(crate) enum Source {
    /// The nodes given to the builder: the primary first (as given), then the replicas. Each
    /// rediscovery asks them (and every node learned since) for their `ROLE`.
    Nodes {
        primary: String,
        replicas: Vec<String>,
    },
    /// Redis Sentinel: the sentinels that watch the master `name`.
    Sentinel {
        name: String,
        sentinels: Vec<String>,
        auth: SentinelAuth,
    },
}

impl Source {
    /// The source with the sentinels' credentials set (sentinel mode; others unchanged).
    pub(crate) fn with_sentinel_auth(self, with: SentinelAuth) -> Source {
        match self {
            Source::Sentinel {
                name, sentinels, ..
            } => Source::Sentinel {
                name,
                sentinels,
                auth: with,
            },
            other => other,
        }
    }

    /// Refuses what cannot work, before connecting.
    pub(crate) fn validate(&self) -> Result<()> {
        let check = |what: &str, addr: &str| {
            Endpoint::parse(addr)
                .map(drop)
                .map_err(|e| Error::Config(format!("{what} {addr:?} is not host:port: {e}")))
        };
        match self {
            Source::Nodes { primary, replicas } => {
                check("primary", primary)?;
                replicas.iter().try_for_each(|r| check("replica", r))
            }
            Source::Sentinel {
                name,
                sentinels,
                auth,
            } => {
                if name.is_empty() {
                    return Err(Error::Config("the sentinel master name is empty".into()));
                }
                if sentinels.is_empty() {
                    return Err(Error::Config(
                        "sentinel mode needs at least one sentinel address".into(),
                    ));
                }
                auth.validate()?;
                sentinels.iter().try_for_each(|s| check("sentinel", s))
            }
        }
    }
}

/// The routing snapshot: the primary and the replicas reads may go to.
pub(crate) struct ReplicaRoutes {
    pub primary: Arc<Node>,
    pub replicas: Vec<Arc<Node>>,
    read_from: ReadFrom,
    next_replica: AtomicUsize,
    /// Changes whenever the primary or the replica set changes.
    epoch: u64,
}

impl ReplicaRoutes {
    fn new(primary: Arc<Node>, replicas: Vec<Arc<Node>>, read_from: ReadFrom) -> Self {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        primary.endpoint.hash(&mut h);
        for r in &replicas {
            r.endpoint.hash(&mut h);
        }
        ReplicaRoutes {
            epoch: h.finish(),
            primary,
            replicas,
            read_from,
            next_replica: AtomicUsize::new(0),
        }
    }

    /// The node for a request: the primary, or for a read under a replica [`ReadFrom`] a
    /// healthy replica in turn (the primary when none is).
    pub fn node_for(&self, read: bool) -> Arc<Node> {
        if read && self.read_from != ReadFrom::Primary && !self.replicas.is_empty() {
            let n = self.replicas.len();
            let start = self.next_replica.fetch_add(1, Ordering::Relaxed);
            for i in 0..n {
                let replica = &self.replicas[(start + i) % n];
                if replica.is_healthy() {
                    return replica.clone();
                }
            }
        }
        self.primary.clone()
    }

    fn all_nodes(&self) -> Vec<Arc<Node>> {
        std::iter::once(&self.primary)
            .chain(&self.replicas)
            .cloned()
            .collect()
    }
}

/// The one shard of this mode: every key is on the primary (and copied to the replicas).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct OneShard;

/// Key → shard in this mode: always [`OneShard`], without loading the routes.
pub(crate) struct Single;

impl Shards for Single {
    type Shard = OneShard;

    fn shard_of(&self, _key: &[u8]) -> OneShard {
        OneShard
    }

    fn spread_error(&self, command: &str, _a: OneShard, _b: OneShard) -> Error {
        // Unreachable with one shard; kept honest rather than panicking.
        Error::Unsupported {
            command: command.to_string(),
            reason: "its keys cannot be placed on one node",
        }
    }
}

impl Shards for Arc<ReplicaRoutes> {
    type Shard = OneShard;

    fn shard_of(&self, key: &[u8]) -> OneShard {
        Single.shard_of(key)
    }

    fn spread_error(&self, command: &str, a: OneShard, b: OneShard) -> Error {
        Single.spread_error(command, a, b)
    }
}

impl View for Arc<ReplicaRoutes> {
    type Node = Arc<Node>;

    fn node_of(&self, _shard: OneShard, read: bool) -> Option<Arc<Node>> {
        Some(self.node_for(read))
    }

    fn fan_out_nodes(&self, replicas: bool) -> Vec<Arc<Node>> {
        if replicas {
            self.all_nodes()
        } else {
            vec![self.primary.clone()]
        }
    }

    fn node_label(&self, node: &Arc<Node>) -> String {
        node.label().to_string()
    }

    fn server(&self, node: &Arc<Node>) -> Option<Arc<Node>> {
        Some(node.clone())
    }

    fn epoch(&self) -> u64 {
        self.epoch
    }
}

impl crate::hot::CopyPlacement for ReplicaRoutes {
    fn shards(&self) -> usize {
        1
    }

    fn copy_names(&self, key: &[u8], _n: usize, _salt: u32) -> Vec<Vec<u8>> {
        vec![key.to_vec()]
    }
}

/// Where a primary+replicas client routes now, from
/// [`Client::replication`](crate::Client::replication).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Replication {
    /// The primary's address: writes go there.
    pub primary: String,
    /// The replicas' addresses: reads go there under a replica [`ReadFrom`].
    pub replicas: Vec<String>,
    /// How many times the primary changed since the client was built.
    pub primary_changes: u64,
}

/// Everything primary+replicas mode shares between clones of the client.
pub(crate) struct ReplicatedRouter {
    pub settings: Arc<Settings>,
    pub source: Source,
    pub pool: Pool,
    pub routes: ArcSwap<ReplicaRoutes>,
    pub rediscovery: Arc<Refresher>,
    /// Every data node ever learned (configured, reported by `ROLE` or the sentinels): each
    /// rediscovery asks them.
    known: parking_lot::Mutex<Vec<Endpoint>>,
    /// Sentinel mode: the sentinels' own pool (their credentials, not the data nodes').
    sentinels: Option<sentinel::Sentinels>,
    primary_changes: AtomicU64,
    /// Retries and rediscoveries, for [`Client::stats`](crate::Client::stats).
    pub stats: crate::stats::Counters,
    pub closed: AtomicBool,
}

impl Drop for ReplicatedRouter {
    fn drop(&mut self) {
        self.closed.store(true, Ordering::Relaxed);
        self.rediscovery.wake_for_shutdown();
    }
}

impl ReplicatedRouter {
    /// Finds the primary and replicas, then starts the background rediscovery (and, with
    /// sentinels, the `+switch-master` watchers).
    pub async fn connect(source: Source, settings: Settings) -> Result<Arc<ReplicatedRouter>> {
        source.validate()?;
        let read_from = settings.read_from;
        // Standalone replicas serve reads without `READONLY` (a cluster-only command they
        // refuse): the connections' handshake must not send it.
        let mut pool_settings = settings;
        pool_settings.read_from = ReadFrom::Primary;
        let settings = Arc::new(pool_settings);
        let pool = Pool::new(settings.clone());
        let (known, sentinels) = match &source {
            Source::Nodes { primary, replicas } => {
                let known = std::iter::once(primary)
                    .chain(replicas)
                    .filter_map(|a| Endpoint::parse(a).ok())
                    .collect();
                (known, None)
            }
            Source::Sentinel {
                name,
                sentinels,
                auth,
            } => (
                Vec::new(),
                Some(sentinel::Sentinels::new(name, sentinels, auth, &settings)),
            ),
        };
        let limit = settings.connect_timeout * 2 + settings.response_timeout * 2;
        let router = ReplicatedRouter {
            // A placeholder until the first discovery, never routed to.
            routes: ArcSwap::from_pointee(ReplicaRoutes::new(
                pool.node(&Endpoint::new("0.0.0.0", 0)),
                Vec::new(),
                read_from,
            )),
            settings,
            source,
            pool,
            rediscovery: Arc::new(Refresher::new()),
            known: parking_lot::Mutex::new(known),
            sentinels,
            primary_changes: AtomicU64::new(0),
            stats: crate::stats::Counters::default(),
            closed: AtomicBool::new(false),
        };
        let found = match tokio::time::timeout(limit, router.discover()).await {
            Ok(found) => found?,
            Err(_) => {
                return Err(Error::NoPrimary {
                    from: router.describe_source(),
                    errors: vec![format!("no usable answer within {limit:?}")],
                });
            }
        };
        router.install(found, read_from);
        router.pool.retain(&|e| e.port != 0);
        let router = Arc::new(router);
        tokio::spawn(discover::run(
            Arc::downgrade(&router),
            router.rediscovery.clone(),
        ));
        if let Some(sentinels) = &router.sentinels {
            let weak = Arc::downgrade(&router);
            let on_switch: sentinel::OnSwitch = Arc::new(move |_| {
                if let Some(router) = weak.upgrade() {
                    router.rediscovery.request();
                }
            });
            sentinel::watch_switches(
                sentinels,
                vec![sentinels.name().to_string()],
                Arc::downgrade(&router),
                on_switch,
            );
        }
        Ok(router)
    }

    /// What the primary is learned from, for errors.
    fn describe_source(&self) -> String {
        match &self.source {
            Source::Nodes { primary, replicas } => {
                let mut all = vec![primary.clone()];
                all.extend(replicas.iter().cloned());
                format!("nodes {}", all.join(", "))
            }
            Source::Sentinel {
                name, sentinels, ..
            } => format!("master {name:?} of sentinels {}", sentinels.join(", ")),
        }
    }

    /// Where the client routes now.
    pub fn replication(&self) -> Replication {
        let routes = self.routes.load();
        Replication {
            primary: routes.primary.label().to_string(),
            replicas: routes
                .replicas
                .iter()
                .map(|r| r.label().to_string())
                .collect(),
            primary_changes: self.primary_changes.load(Ordering::Relaxed),
        }
    }

    /// A node of the pool for an address the servers reported.
    fn node(&self, endpoint: &Endpoint) -> Arc<Node> {
        self.pool.node(endpoint)
    }
}

impl Router for Arc<ReplicatedRouter> {
    type Shards = Single;
    type View = Arc<ReplicaRoutes>;

    fn shards(&self) -> Single {
        Single
    }

    fn shards_in(_: &Arc<ReplicaRoutes>) -> Single {
        Single
    }

    fn view(&self) -> Arc<ReplicaRoutes> {
        self.routes.load_full()
    }

    async fn ask_any(&self, cmd: Cmd) -> Option<Value> {
        let node = self.routes.load().primary.clone();
        let conn = node.connection().await.ok()?;
        let reply = tokio::time::timeout(self.settings.response_timeout, conn.send(&cmd));
        reply.await.ok()?.ok()
    }

    fn execute(
        &self,
        _: &Single,
        request: Request<'_>,
        target: Target<'_, OneShard>,
    ) -> impl Future<Output = Result<Value>> + Send {
        // Every attempt routes by the routes of its time: a promotion learned meanwhile is
        // used at once. `send::execute`'s future itself, not one more layer of state around it.
        send::execute(self, request, target)
    }

    async fn execute_batch(
        &self,
        _: &Arc<ReplicaRoutes>,
        node: &Arc<Node>,
        pipe: &Pipeline,
        _: &[&[u8]],
    ) -> Result<Vec<Value>, BatchFailed> {
        send::batch(self, node, pipe).await
    }

    async fn execute_on(
        &self,
        _: &Arc<ReplicaRoutes>,
        node: &Arc<Node>,
        cmd: &Cmd,
    ) -> Result<Value> {
        send::once(self, node, cmd).await
    }

    async fn keys_moving(&self, _: &Arc<ReplicaRoutes>) -> bool {
        // Keys never move between nodes; a promotion changes the epoch, which a scan sees.
        false
    }

    fn needs_rerun(&self, reply: &Value) -> bool {
        // Replies of commands that did not run: a demoted primary, a node loading its data.
        matches!(reply, Value::ServerError(e)
            if matches!(e.code(), "READONLY" | "LOADING" | "MASTERDOWN"))
    }
}
