//! Loading the cluster topology: ask a few nodes, vote, and swap in a new routing snapshot.
//!
//! Refreshes are single-flight and rate-limited: callers only *ask* (a `Notify` permit, so a
//! storm of MOVED replies coalesces into one refresh), and one background task does the work
//! at most once per `refresh_min_interval`, plus once per `refresh_interval` regardless.

use std::sync::Arc;
use std::sync::Weak;
use std::time::Instant;

use futures::future::join_all;
use redis::Value;
use shardis_slots::{
    Endpoint, SlotMap, Topology, choose_view, parse_cluster_shards, parse_cluster_slots,
};
use tokio::sync::{Notify, watch};

use super::ClusterRouter;
use super::slots::SlotRoutes;
use crate::error::Error;

/// The handle callers use to ask for a refresh and to wait for one.
pub(crate) struct Refresher {
    wake: Notify,
    /// Bumped after every refresh attempt, so a caller can wait for "a refresh after now".
    generation: watch::Sender<u64>,
}

impl Refresher {
    pub fn new() -> Self {
        Refresher {
            wake: Notify::new(),
            generation: watch::channel(0).0,
        }
    }

    /// Asks for a refresh soon; never blocks. Many asks before the refresh runs make one.
    pub fn request(&self) {
        self.wake.notify_one();
    }

    /// Asks for a refresh and waits until one has completed (or the timeout passes).
    pub async fn request_and_wait(&self, until: tokio::time::Instant) {
        let mut rx = self.generation.subscribe();
        rx.mark_unchanged();
        self.request();
        let _ = tokio::time::timeout_at(until, rx.changed()).await;
    }

    pub fn wake_for_shutdown(&self) {
        self.wake.notify_one();
    }
}

/// Marks an answer that failed on credentials, so a load where no node answered and one refused
/// the credentials says so ([`Error::Auth`]) instead of "unreachable".
const AUTH_FAILED: &str = "credentials refused: ";

/// Asks one node for its view: `CLUSTER SHARDS` first, `CLUSTER SLOTS` when the server does
/// not know SHARDS (before 7.0).
async fn ask_node(state: &ClusterRouter, endpoint: &Endpoint) -> Result<Topology, String> {
    let node = state.pool.node(endpoint);
    let connect = tokio::time::timeout(state.settings.connect_timeout * 2, node.connection());
    let conn = match connect.await {
        Ok(Err(Error::Auth { message, .. })) => {
            return Err(format!("{AUTH_FAILED}{endpoint} {message}"));
        }
        Ok(conn) => conn.map_err(|e| e.to_string())?,
        Err(_) => {
            return Err(format!(
                "{endpoint}: no connection within {:?}",
                state.settings.connect_timeout * 2
            ));
        }
    };
    let deadline = state.settings.response_timeout;
    let shards =
        tokio::time::timeout(deadline, conn.send(redis::cmd("CLUSTER").arg("SHARDS"))).await;
    match shards {
        // An old server does not know SHARDS: ask for SLOTS below.
        Ok(Ok(Value::ServerError(e))) if e.code() == "ERR" => {}
        Ok(Ok(Value::ServerError(e))) => {
            return Err(format!("{endpoint}: CLUSTER SHARDS: {e}"));
        }
        Ok(Ok(reply)) => {
            return parse_cluster_shards(&reply, endpoint)
                .map_err(|e| format!("{endpoint}: CLUSTER SHARDS: {e}"));
        }
        Ok(Err(e)) => {
            node.discard();
            return Err(format!("{endpoint}: {e}"));
        }
        Err(_) => return Err(format!("{endpoint}: no reply within {deadline:?}")),
    }
    let mut slots = redis::cmd("CLUSTER");
    slots.arg("SLOTS");
    match tokio::time::timeout(deadline, conn.send(&slots)).await {
        Ok(Ok(Value::ServerError(e))) => Err(format!("{endpoint}: CLUSTER SLOTS: {e}")),
        Ok(Ok(reply)) => parse_cluster_slots(&reply, endpoint)
            .map_err(|e| format!("{endpoint}: CLUSTER SLOTS: {e}")),
        Ok(Err(e)) => Err(format!("{endpoint}: {e}")),
        Err(_) => Err(format!("{endpoint}: no reply within {deadline:?}")),
    }
}

/// The nodes to ask, best first: known primaries, then replicas, then the seeds. The start is
/// rotated per refresh so one slow node does not answer every time.
fn candidates(state: &ClusterRouter, routes: Option<&SlotRoutes>, turn: usize) -> Vec<Endpoint> {
    let mut known: Vec<Endpoint> = Vec::new();
    if let Some(routes) = routes {
        let mut primaries: Vec<Endpoint> = routes
            .primaries()
            .iter()
            .map(|n| n.endpoint.clone())
            .collect();
        if !primaries.is_empty() {
            let k = turn % primaries.len();
            primaries.rotate_left(k);
        }
        known.extend(primaries);
        known.extend(routes.all_nodes().iter().map(|n| n.endpoint.clone()));
    }
    known.extend(state.seeds.iter().cloned());
    let mut seen = std::collections::HashSet::new();
    known.retain(|e| seen.insert(e.clone()));
    known
}

/// Loads a topology by asking up to `refresh_fanout` nodes at a time until some answer, then
/// voting among the answers. Never returns a map with fewer slots than `previous` unless a
/// majority of the answering nodes agree on it (see [`shardis_slots::choose_view`]).
pub(crate) async fn load(
    state: &ClusterRouter,
    previous: Option<&SlotRoutes>,
    turn: usize,
) -> Result<SlotMap, Error> {
    let candidates = candidates(state, previous, turn);
    let mut errors = Vec::new();
    for batch in candidates.chunks(state.settings.refresh_fanout) {
        let answers = join_all(batch.iter().map(|e| ask_node(state, e))).await;
        let mut views = Vec::new();
        for answer in answers {
            match answer {
                Ok(view) => views.push(view),
                Err(e) => errors.push(e),
            }
        }
        if views.is_empty() {
            continue;
        }
        let previous_topology = previous.map(|r| r.map.topology());
        match choose_view(&views, previous_topology) {
            Ok(choice) => {
                tracing::debug!(
                    agreeing = choice.agreeing,
                    responded = choice.responded,
                    "topology chosen"
                );
                return Ok(SlotMap::new(choice.topology.clone()));
            }
            Err(e) => errors.push(format!("vote: {e}")),
        }
    }
    if let Some((node, message)) = errors
        .iter()
        .find_map(|e| e.strip_prefix(AUTH_FAILED)?.split_once(' '))
    {
        return Err(Error::Auth {
            node: node.to_string(),
            user: state.settings.username.clone(),
            message: message.to_string(),
        });
    }
    Err(Error::NoSeedReachable {
        seeds: candidates.iter().map(ToString::to_string).collect(),
        errors,
    })
}

/// One refresh: load, swap in if it changed, close connections to nodes that left.
pub(crate) async fn refresh_once(state: &ClusterRouter, turn: usize) {
    let started = Instant::now();
    let current = state.routes.load_full();
    match load(state, Some(&current), turn).await {
        Ok(map) => {
            let changed = map.topology().fingerprint() != current.map.topology().fingerprint();
            if changed {
                let routes = Arc::new(SlotRoutes::new(map, &state.pool, state.settings.read_from));
                let keep: std::collections::HashSet<Endpoint> = routes
                    .all_nodes()
                    .iter()
                    .map(|n| n.endpoint.clone())
                    .chain(state.seeds.iter().cloned())
                    .collect();
                state.routes.store(routes);
                state.pool.retain(&|e| keep.contains(e));
                tracing::info!(elapsed = ?started.elapsed(), "cluster topology changed");
            }
            state
                .stats
                .refreshes
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            metrics::counter!("shardis_topology_refreshes_total", "result" => if changed { "changed" } else { "unchanged" }).increment(1);
        }
        Err(e) => {
            state
                .stats
                .refresh_failures
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            metrics::counter!("shardis_topology_refreshes_total", "result" => "failed")
                .increment(1);
            tracing::warn!(error = %e, "topology refresh failed; keeping the last good map");
        }
    }
    state.refresher.generation.send_modify(|g| *g += 1);
}

/// The background task: refresh on request (rate-limited) and periodically, until the client
/// is dropped.
pub(crate) async fn run(state: Weak<ClusterRouter>, refresher: Arc<Refresher>) {
    let mut turn = 0usize;
    let mut last = tokio::time::Instant::now();
    loop {
        let (interval, min_interval) = match state.upgrade() {
            Some(s) => (s.settings.refresh_interval, s.settings.refresh_min_interval),
            None => return,
        };
        tokio::select! {
            _ = tokio::time::sleep_until(last + interval) => {}
            _ = refresher.wake.notified() => {}
        }
        let not_before = last + min_interval;
        if tokio::time::Instant::now() < not_before {
            tokio::time::sleep_until(not_before).await;
        }
        let Some(state) = state.upgrade() else { return };
        if state.closed.load(std::sync::atomic::Ordering::Relaxed) {
            return;
        }
        turn = turn.wrapping_add(1);
        refresh_once(&state, turn).await;
        last = tokio::time::Instant::now();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::test_support::fake_node;
    use crate::settings::Settings;
    use shardis_slots::{Health, Node, Role, Shard, SlotRange};

    /// Answers topology commands with a slot range no parser accepts.
    async fn garbage_node() -> (Endpoint, shardis_testkit::FakeNode) {
        fake_node(|command, _| {
            if command.contains("CLUSTER") {
                "*1\r\n*2\r\n:70000\r\n:-1\r\n"
            } else {
                "+OK\r\n"
            }
            .to_string()
        })
        .await
    }

    #[tokio::test]
    async fn falls_back_to_cluster_slots_when_shards_is_unknown() {
        // A pre-7.0 node: no CLUSTER SHARDS, a CLUSTER SLOTS reply with a "" endpoint.
        let (old, _fake) = fake_node(|command, port| {
            if command.contains("SHARDS") {
                "-ERR unknown subcommand 'SHARDS'. Try CLUSTER HELP.\r\n".to_string()
            } else if command.contains("SLOTS") {
                format!("*1\r\n*3\r\n:0\r\n:16383\r\n*2\r\n$0\r\n\r\n:{port}\r\n")
            } else {
                "+OK\r\n".to_string()
            }
        })
        .await;
        let state = ClusterRouter::new(Arc::new(Settings::default()), vec![old.clone()]);
        let map = load(&state, None, 0)
            .await
            .expect("topology from CLUSTER SLOTS");
        assert!(map.topology().is_complete());
        let owner = map.shard(0).and_then(|s| s.primary.endpoint.clone());
        assert_eq!(
            owner,
            Some(old),
            "the empty endpoint means the node that was asked"
        );
    }

    #[tokio::test]
    async fn a_malformed_reply_keeps_the_last_good_map_and_is_reported() {
        let (garbage, _fake) = garbage_node().await;
        let primary = Node {
            id: Some("a".repeat(40)),
            endpoint: Some(garbage.clone()),
            ip: None,
            hostname: None,
            role: Role::Primary,
            health: Health::Online,
        };
        let good = Topology::new(vec![Shard {
            primary,
            replicas: vec![],
            slots: vec![SlotRange::new(0, 16383).unwrap()],
        }])
        .expect("valid topology");
        let state = ClusterRouter::new(Arc::new(Settings::default()), vec![garbage]);
        state.install(SlotMap::new(good.clone()));

        refresh_once(&state, 0).await;

        assert_eq!(
            state.routes.load().map.topology(),
            &good,
            "the good map stays"
        );
        let stats = state.stats.snapshot();
        assert_eq!((stats.refresh_failures, stats.refreshes), (1, 0));
        // And the error names the node and what was wrong.
        let err = load(&state, Some(&state.routes.load()), 0)
            .await
            .expect_err("garbage");
        assert!(err.to_string().contains("127.0.0.1"), "{err}");
    }
}
