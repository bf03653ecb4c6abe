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
    Endpoint, SlotMap, Topology, choose_view_with_epochs, cluster_nodes_config_epoch,
    parse_cluster_shards, parse_cluster_shards_tls, parse_cluster_slots,
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

    /// Waits until the next refresh is due: asked for, or `interval` after `last`; never
    /// sooner than `min_interval` after `last` (for the background task).
    pub async fn due(
        &self,
        last: tokio::time::Instant,
        interval: std::time::Duration,
        min_interval: std::time::Duration,
    ) {
        tokio::select! {
            _ = tokio::time::sleep_until(last + interval) => {}
            _ = self.wake.notified() => {}
        }
        let not_before = last + min_interval;
        if tokio::time::Instant::now() < not_before {
            tokio::time::sleep_until(not_before).await;
        }
    }

    /// The body of a background refresh task: runs `round` whenever a refresh is due (see
    /// [`Refresher::due`], with `settings`' intervals) and marks it [`completed`](Self::completed),
    /// until `owner` is dropped.
    pub async fn serve<T, Fut>(
        &self,
        owner: Weak<T>,
        settings: fn(&T) -> &crate::settings::Settings,
        mut round: impl FnMut(Arc<T>) -> Fut,
    ) where
        Fut: std::future::Future<Output = ()>,
    {
        let mut last = tokio::time::Instant::now();
        loop {
            let Some((interval, min_interval)) = owner.upgrade().map(|o| {
                let s = settings(&o);
                (s.refresh_interval, s.refresh_min_interval)
            }) else {
                return;
            };
            self.due(last, interval, min_interval).await;
            let Some(owner) = owner.upgrade() else {
                return;
            };
            round(owner).await;
            self.completed();
            last = tokio::time::Instant::now();
        }
    }

    /// Marks a refresh attempt done: callers of [`Refresher::request_and_wait`] wake.
    pub fn completed(&self) {
        self.generation.send_modify(|g| *g += 1);
    }
}

/// Marks an answer that failed on credentials, so a load where no node answered and one refused
/// the credentials says so ([`Error::Auth`]) instead of "unreachable".
const AUTH_FAILED: &str = "credentials refused: ";
/// The same for a TLS handshake that failed ([`Error::Tls`]): a wrong CA is not "unreachable".
const TLS_FAILED: &str = "TLS failed: ";

/// Asks one node for its view and the config epoch it has seen (the highest `config-epoch`
/// of its `CLUSTER NODES`; `None` when it does not say).
async fn ask_node(
    state: &ClusterRouter,
    endpoint: &Endpoint,
) -> Result<(Topology, Option<u64>), String> {
    let view = ask_view(state, endpoint).await?;
    let node = state.pool.node(endpoint);
    let epoch = match node.connection().await {
        Ok(conn) => {
            let mut nodes = redis::cmd("CLUSTER");
            nodes.arg("NODES");
            match tokio::time::timeout(state.settings.response_timeout, conn.send(&nodes)).await {
                Ok(Ok(reply)) => cluster_nodes_config_epoch(&reply),
                _ => None,
            }
        }
        Err(_) => None,
    };
    Ok((view, epoch))
}

/// Asks one node for its view: `CLUSTER SHARDS` first, `CLUSTER SLOTS` when the server does
/// not know SHARDS (before 7.0).
async fn ask_view(state: &ClusterRouter, endpoint: &Endpoint) -> Result<Topology, String> {
    let node = state.pool.node(endpoint);
    let connect = tokio::time::timeout(state.settings.connect_timeout * 2, node.connection());
    let conn = match connect.await {
        Ok(Err(Error::Auth { message, .. })) => {
            return Err(format!("{AUTH_FAILED}{endpoint} {message}"));
        }
        Ok(Err(Error::Tls { node, message })) => {
            return Err(format!("{TLS_FAILED}{endpoint} {node}: {message}"));
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
            let parsed = if state.settings.tls.is_some() {
                parse_cluster_shards_tls(&reply, endpoint)
            } else {
                parse_cluster_shards(&reply, endpoint)
            };
            return parsed.map_err(|e| format!("{endpoint}: CLUSTER SHARDS: {e}"));
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
/// majority of the answering nodes agree on it, nor one from a lower config epoch than
/// `previous` while some node has seen that epoch (see
/// [`shardis_slots::choose_view_with_epochs`]). Returns the map and its epoch.
pub(crate) async fn load(
    state: &ClusterRouter,
    previous: Option<&SlotRoutes>,
    turn: usize,
) -> Result<(SlotMap, Option<u64>), Error> {
    let candidates = candidates(state, previous, turn);
    let mut errors = Vec::new();
    for batch in candidates.chunks(state.settings.refresh_fanout) {
        let asks = batch.iter().map(|e| ask_node(state, e));
        let answers = if previous.is_none() {
            // The first load (`build`): a slow or hung seed must not hold it up once the
            // answers in hand settle the topology.
            first_answers(asks, batch.len()).await
        } else {
            join_all(asks).await
        };
        let (mut views, mut epochs) = (Vec::new(), Vec::new());
        for answer in answers {
            match answer {
                Ok((view, epoch)) => {
                    views.push(view);
                    epochs.push(epoch);
                }
                Err(e) => errors.push(e),
            }
        }
        if views.is_empty() {
            continue;
        }
        let previous_topology = previous.map(|r| r.map.topology());
        let previous_epoch = previous.and_then(|r| r.epoch);
        match choose_view_with_epochs(&views, &epochs, previous_topology, previous_epoch) {
            Ok(choice) => {
                tracing::debug!(
                    agreeing = choice.agreeing,
                    responded = choice.responded,
                    epoch = choice.epoch,
                    "topology chosen"
                );
                return Ok((SlotMap::new(choice.topology.clone()), choice.epoch));
            }
            Err(e) => errors.push(format!("vote: {e}")),
        }
    }
    // The first node, in the order they were asked (seeds first at start-up), that refused
    // the credentials: answers arrive in any order, the error should not.
    let refused: Vec<(&str, &str)> = errors
        .iter()
        .filter_map(|e| e.strip_prefix(AUTH_FAILED)?.split_once(' '))
        .collect();
    let first_refused = candidates.iter().find_map(|c| {
        let c = c.to_string();
        refused
            .iter()
            .find(|(node, _)| *node == c)
            .map(|(node, message)| (node.to_string(), message.to_string()))
    });
    if let Some((node, message)) = first_refused {
        return Err(Error::Auth {
            node,
            user: state.settings.username.clone(),
            message,
        });
    }
    let tls_failed = candidates.iter().find_map(|c| {
        let c = c.to_string();
        errors.iter().find_map(|e| {
            let (node, rest) = e.strip_prefix(TLS_FAILED)?.split_once(' ')?;
            let (named, message) = rest.split_once(": ")?;
            (node == c).then(|| Error::Tls {
                node: named.to_string(),
                message: message.to_string(),
            })
        })
    });
    if let Some(err) = tls_failed {
        return Err(err);
    }
    Err(Error::NoSeedReachable {
        seeds: candidates.iter().map(ToString::to_string).collect(),
        errors,
    })
}

/// How long the first load waits for more seeds once one gave a usable answer.
const SEED_GRACE: std::time::Duration = std::time::Duration::from_millis(50);

/// The answers of `asks` (of `count` nodes) that came in until a majority of the nodes gave a
/// usable answer, or [`SEED_GRACE`] after the first usable one, or all answered.
async fn first_answers<F, T>(asks: impl Iterator<Item = F>, count: usize) -> Vec<Result<T, String>>
where
    F: std::future::Future<Output = Result<T, String>>,
{
    use futures::StreamExt;
    let mut pending: futures::stream::FuturesUnordered<F> = asks.collect();
    let mut answers = Vec::with_capacity(count);
    let mut usable = 0;
    let mut grace_ends: Option<tokio::time::Instant> = None;
    loop {
        let next = match grace_ends {
            Some(end) => match tokio::time::timeout_at(end, pending.next()).await {
                Ok(next) => next,
                Err(_) => break,
            },
            None => pending.next().await,
        };
        let Some(answer) = next else { break };
        if answer.is_ok() {
            usable += 1;
            grace_ends.get_or_insert_with(|| tokio::time::Instant::now() + SEED_GRACE);
        }
        answers.push(answer);
        if usable * 2 > count {
            break;
        }
    }
    answers
}

/// One refresh: load, swap in if it changed, close connections to nodes that left. A slot
/// owner learned from a MOVED after the load began stays (the views may predate it).
pub(crate) async fn refresh_once(state: &ClusterRouter, turn: usize) {
    let started = Instant::now();
    let current = state.routes.load_full();
    let since = current.last_move;
    match load(state, Some(&current), turn).await {
        Ok((map, epoch)) => {
            let mut changed = false;
            let installed = state.routes.rcu(|now| {
                let next = now.refreshed(&map, since, epoch, &state.pool);
                changed = next.map.topology().fingerprint() != now.map.topology().fingerprint();
                if changed || next.epoch != now.epoch || next.moves != now.moves {
                    Arc::new(next)
                } else {
                    now.clone()
                }
            });
            drop(installed);
            if changed {
                let routes = state.routes.load();
                let keep: std::collections::HashSet<Endpoint> = routes
                    .all_nodes()
                    .iter()
                    .map(|n| n.endpoint.clone())
                    .chain(state.seeds.iter().cloned())
                    .collect();
                state.ramp_takeovers(&current, &routes);
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
}

/// The background task: refresh on request (rate-limited) and periodically, until the client
/// is dropped.
pub(crate) async fn run(state: Weak<ClusterRouter>, refresher: Arc<Refresher>) {
    let mut turn = 0usize;
    refresher
        .serve(
            state,
            |s| &s.settings,
            |state| {
                turn = turn.wrapping_add(1);
                let turn = turn;
                async move {
                    if !state.closed.load(std::sync::atomic::Ordering::Relaxed) {
                        refresh_once(&state, turn).await;
                    }
                }
            },
        )
        .await;
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
        let (map, _) = load(&state, None, 0)
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
    /// A node that owns every slot by CLUSTER SLOTS (pre-7.0: no SHARDS, no epochs).
    async fn whole_range_node() -> (Endpoint, shardis_testkit::FakeNode) {
        fake_node(|command, port| {
            if command.contains("SLOTS") {
                format!("*1\r\n*3\r\n:0\r\n:16383\r\n*2\r\n$9\r\n127.0.0.1\r\n:{port}\r\n")
            } else if command.contains("CLUSTER") {
                "-ERR unknown subcommand\r\n".to_string()
            } else {
                "+OK\r\n".to_string()
            }
        })
        .await
    }

    #[tokio::test]
    async fn a_refresh_loaded_before_a_moved_patch_keeps_the_patch() {
        let (a, _fake) = whole_range_node().await;
        let state = ClusterRouter::new(Arc::new(Settings::default()), vec![a.clone()]);
        let b = Endpoint::new("127.0.0.1", 1);
        // Before: a owns every slot but 200, which b owns (so the refresh changes the map).
        state.install(
            SlotMap::new(
                Topology::new(vec![Shard {
                    primary: Node::primary(a.clone()),
                    replicas: vec![],
                    slots: vec![SlotRange::new(0, 16383).unwrap()],
                }])
                .unwrap(),
            )
            .with_slot_moved(200, &b),
        );
        // The refresh starts (its view, from node a, still says a owns slot 100)...
        let mut refresh = std::pin::pin!(refresh_once(&state, 0));
        assert!(futures::poll!(&mut refresh).is_pending());
        // ...a MOVED says slot 100 is b's now...
        crate::cluster::follow::patch_moved(&state, 100, &b);
        // ...and the refresh, loaded before it, completes.
        refresh.await;
        let owner = |slot| {
            state
                .routes
                .load()
                .map
                .shard(slot)
                .and_then(|s| s.primary.endpoint.clone())
        };
        assert_eq!(owner(100), Some(b), "the newer MOVED stays");
        assert_eq!(
            owner(200),
            Some(a.clone()),
            "the rest of the refresh applies"
        );
        // A refresh that starts after the MOVED decides alone.
        refresh_once(&state, 0).await;
        assert_eq!(owner(100), Some(a));
    }
}
