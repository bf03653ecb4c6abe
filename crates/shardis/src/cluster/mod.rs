//! Redis Cluster mode: the slot-map router.
//!
//! - [`slots`]: the routing snapshot (slot map + node handles), swapped atomically;
//! - [`redirect`]: the pure retry policy (what a reply or an I/O outcome means);
//! - [`follow`]: the I/O shell that sends a request and carries the policy out, one
//!   [`attempt`] after another;
//! - [`refresh`]: loading the topology from several nodes, in the background.

pub(crate) mod attempt;
pub(crate) mod follow;
pub(crate) mod redirect;
pub(crate) mod refresh;
pub(crate) mod slots;
#[cfg(test)]
pub(crate) mod test_support;

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use arc_swap::ArcSwap;
use redis::{Cmd, Pipeline, Value};
use shardis_slots::Endpoint;

use crate::engine::{BatchFailed, Request, Router, Target};
use crate::error::{Error, Result};
use crate::net::{Connection, Node, Pool};
use crate::settings::Settings;
use crate::stats::Counters;
use refresh::Refresher;
use slots::{SlotRoutes, Slots};

/// Everything cluster mode shares between clones of the client.
pub(crate) struct ClusterRouter {
    pub settings: Arc<Settings>,
    pub seeds: Vec<Endpoint>,
    pub pool: Pool,
    pub routes: ArcSwap<SlotRoutes>,
    pub refresher: Arc<Refresher>,
    pub stats: Counters,
    pub closed: AtomicBool,
}

impl Drop for ClusterRouter {
    fn drop(&mut self) {
        self.closed
            .store(true, std::sync::atomic::Ordering::Relaxed);
        self.refresher.wake_for_shutdown();
    }
}

impl ClusterRouter {
    /// A router with no topology yet.
    pub(crate) fn new(settings: Arc<Settings>, seeds: Vec<Endpoint>) -> ClusterRouter {
        ClusterRouter {
            pool: Pool::new(settings.clone()),
            routes: ArcSwap::from_pointee(SlotRoutes::empty(settings.read_from)),
            settings,
            seeds,
            refresher: Arc::new(Refresher::new()),
            stats: Counters::default(),
            closed: AtomicBool::new(false),
        }
    }

    /// Connects to the seeds, loads the first topology and starts the refresher.
    pub async fn connect(seeds: &[String], settings: Settings) -> Result<Arc<ClusterRouter>> {
        let mut endpoints = Vec::new();
        for seed in seeds {
            let endpoint = Endpoint::parse(seed)
                .map_err(|e| Error::Config(format!("seed {seed:?} is not host:port: {e}")))?;
            endpoints.push(endpoint);
        }
        let settings = Arc::new(settings);
        let router = ClusterRouter::new(settings.clone(), endpoints);
        let refresher = router.refresher.clone();
        let limit = settings.connect_timeout * 2 + settings.response_timeout;
        let (map, epoch) = match tokio::time::timeout(limit, refresh::load(&router, None, 0)).await
        {
            Ok(Ok(loaded)) => loaded,
            Ok(Err(e)) => return Err(e),
            Err(_) => {
                return Err(Error::NoSeedReachable {
                    seeds: seeds.to_vec(),
                    errors: vec![format!("no usable answer within {limit:?}")],
                });
            }
        };
        router.install(map);
        router.routes.rcu(|routes| {
            Arc::new(routes.refreshed(&routes.map, routes.last_move, epoch, &router.pool))
        });
        let router = Arc::new(router);
        tokio::spawn(refresh::run(Arc::downgrade(&router), refresher));
        Ok(router)
    }

    /// Swaps in a snapshot built from `map`.
    pub(crate) fn install(&self, map: shardis_slots::SlotMap) {
        self.routes.store(Arc::new(SlotRoutes::new(
            map,
            &self.pool,
            self.settings.read_from,
        )));
    }

    /// A node that takes over the slots of a node that failed (a promoted replica) gets them
    /// along the breaker's ramp, not all at once: under fail-fast the refused commands fail
    /// with `CircuitOpen`, under wait the commands that waited are released at the ramp's
    /// rate. A manual failover (the old primary healthy) does not ramp.
    pub(crate) fn ramp_takeovers(&self, old: &SlotRoutes, new: &SlotRoutes) {
        let mut ramped: Vec<Arc<Node>> = Vec::new();
        for slot in 0..=shardis_slots::MAX_SLOT {
            let (Some(before), Some(after)) =
                (old.node_for(slot, false), new.node_for(slot, false))
            else {
                continue;
            };
            if before != after && before.looks_failed() && !ramped.contains(&after) {
                tracing::info!(
                    from = before.label(),
                    to = after.label(),
                    "a node takes over slots of a node that failed; traffic ramps up"
                );
                after.start_ramp();
                ramped.push(after);
            }
        }
    }

    /// One exchange on a connection to `node`, bounded by the deadline; a broken connection
    /// is dropped and a refresh asked for (the node may have left).
    async fn once<T>(
        &self,
        node: &Node,
        exchange: impl AsyncFnOnce(&Connection) -> redis::RedisResult<T>,
    ) -> Result<T> {
        let deadline = self.settings.deadline;
        let conn = node.connection().await?;
        match tokio::time::timeout(deadline, exchange(&conn)).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => {
                node.discard();
                self.refresher.request();
                Err(Error::connection(node.label(), e.to_string()))
            }
            Err(_) => Err(Error::timeout(
                deadline,
                1,
                None,
                Some(node.label()),
                "no reply",
            )),
        }
    }
}

impl Router for Arc<ClusterRouter> {
    type Shards = Slots;
    type View = Arc<SlotRoutes>;

    fn shards(&self) -> Slots {
        Slots
    }

    fn shards_in(_: &Arc<SlotRoutes>) -> Slots {
        Slots
    }

    fn view(&self) -> Arc<SlotRoutes> {
        self.routes.load_full()
    }

    async fn ask_any(&self, cmd: Cmd) -> Option<Value> {
        let node = self.routes.load().primaries().first()?.clone();
        let conn = node.connection().await.ok()?;
        let reply = tokio::time::timeout(self.settings.response_timeout, conn.send(&cmd));
        reply.await.ok()?.ok()
    }

    fn execute(
        &self,
        _: &Slots,
        request: Request<'_>,
        target: Target<'_, u16>,
    ) -> impl Future<Output = Result<Value>> + Send {
        // Every attempt routes by the map of its time, not the caller's snapshot: a MOVED
        // patched in by another command is used at once. Not an `async fn`: the command's
        // future is `follow`'s own, with no layer of state around it.
        follow::follow(self, request, target)
    }

    async fn execute_batch(
        &self,
        _: &Arc<SlotRoutes>,
        node: &Arc<Node>,
        pipe: &Pipeline,
        _: &[&[u8]],
    ) -> Result<Vec<Value>, BatchFailed> {
        // Refused by the breaker, or no connection: nothing was written, and each command
        // then runs on its own through `follow`, under the same rules as a single command.
        if let Err(refused) = node.admit().await {
            self.refresher.request();
            return Err(BatchFailed::unsent(refused));
        }
        let conn = match node.ready_connection() {
            Some(conn) => conn,
            None => node.connection().await.map_err(BatchFailed::unsent)?,
        };
        let deadline = self.settings.deadline;
        let sent = tokio::time::timeout(deadline, conn.send_pipeline(pipe, 0, pipe.len()));
        match sent.await {
            Ok(Ok(values)) => {
                node.record_success();
                Ok(values)
            }
            Ok(Err(e)) if crate::net::was_not_sent(&e) => Err(BatchFailed::unsent(
                Error::connection(node.label(), e.to_string()),
            )),
            Ok(Err(e)) => {
                node.connection_failed(&conn);
                node.discard();
                self.refresher.request();
                Err(Error::connection(node.label(), e.to_string()).into())
            }
            Err(_) => Err(Error::timeout(deadline, 1, None, Some(node.label()), "no reply").into()),
        }
    }

    async fn execute_on(&self, _: &Arc<SlotRoutes>, node: &Arc<Node>, cmd: &Cmd) -> Result<Value> {
        self.once(node, async |conn| conn.send(cmd).await).await
    }

    async fn keys_moving(&self, routes: &Arc<SlotRoutes>) -> bool {
        // The map may be older than a reshard that finished during the scan (no command
        // of this client was redirected): load it now, so the scan sees the move.
        let until = tokio::time::Instant::now() + self.settings.deadline;
        self.refresher.request_and_wait(until).await;
        // A slot being migrated shows in CLUSTER NODES as `[slot->-id]` / `[slot-<-id]`.
        let mut nodes = redis::cmd("CLUSTER");
        nodes.arg("NODES");
        for primary in routes.primaries() {
            let reply = self
                .once(&primary, async |conn| conn.send(&nodes).await)
                .await;
            let text = match reply {
                Ok(Value::BulkString(text)) => text,
                Ok(Value::VerbatimString { text, .. }) => text.into_bytes(),
                _ => return true,
            };
            if text.windows(3).any(|w| w == b"->-" || w == b"-<-") {
                return true;
            }
        }
        false
    }

    fn needs_rerun(&self, reply: &Value) -> bool {
        matches!(reply, Value::ServerError(e)
            if matches!(e.code(), "MOVED" | "ASK" | "TRYAGAIN" | "CLUSTERDOWN" | "LOADING" | "MASTERDOWN" | "READONLY"))
    }
}
