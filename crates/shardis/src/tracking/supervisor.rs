//! The task behind one [`InvalidationStream`](super::InvalidationStream): one tracking
//! connection per node that can serve a read, kept equal to the router's topology, with a
//! heartbeat on each.
//!
//! The stream is *complete* — every change of a tracked key on any node is delivered — only
//! while every node of the topology has a live tracking connection. The task says so with
//! [`Invalidation::Ready`], and says it stopped being so with [`Invalidation::Broken`]:
//!
//! - a connection ended (the reader sends `Broken` itself, first);
//! - a heartbeat `PING` went unanswered for the response timeout (a silent node or network);
//! - a node joined the topology (a new primary, a promoted replica we did not know, a new ring
//!   member): writes it took before its connection was up were not seen;
//! - a node left the topology.
//!
//! A slot that moves between two tracked nodes needs nothing: both report changes of their
//! keys (the source deletes the key it migrates, the target reports writes from then on).
//! Replicas are tracked too, so a failover promotes a node that was already reporting (a
//! replica reports the changes it replicates) and reads served by replicas are covered.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use shardis_slots::Endpoint;
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::Invalidation;
use super::conn::TrackConn;
use crate::pubsub::{Placement, Routes};

/// How often the topology, the connections and their heartbeats are looked at.
const TICK: Duration = Duration::from_millis(50);
/// How often each connection is pinged.
pub(crate) const HEARTBEAT: Duration = Duration::from_secs(1);
/// The first wait before retrying a node that could not be tracked; doubles up to the
/// reconnect backoff.
const FIRST_RETRY: Duration = Duration::from_millis(20);

/// Every node a read may be served by: cluster primaries and usable replicas (failed or
/// loading replicas serve nothing); primary+replicas (and Sentinel): the primary and its
/// replicas; ring: the live members.
pub(crate) fn wanted_nodes(routes: &Routes) -> BTreeSet<Endpoint> {
    match routes {
        Routes::Cluster(routes) => routes
            .map
            .topology()
            .shards()
            .iter()
            .flat_map(|shard| {
                let primary = shard.primary.endpoint.iter();
                let replicas = shard
                    .replicas
                    .iter()
                    .filter(|r| r.health.is_usable())
                    .filter_map(|r| r.endpoint.as_ref());
                primary.chain(replicas).cloned().collect::<Vec<_>>()
            })
            .collect(),
        Routes::Replicated(routes) => std::iter::once(&routes.primary)
            .chain(routes.replicas.iter())
            .map(|n| n.endpoint.clone())
            .collect(),
        Routes::Ring(snap) => snap
            .live
            .members()
            .iter()
            .map(|m| m.server.endpoint.clone())
            .collect(),
    }
}

/// What a new wanted set changes: nodes that joined, nodes that left.
pub(crate) fn diff(
    before: &BTreeSet<Endpoint>,
    now: &BTreeSet<Endpoint>,
) -> (Vec<Endpoint>, Vec<Endpoint>) {
    (
        now.difference(before).cloned().collect(),
        before.difference(now).cloned().collect(),
    )
}

struct Held {
    conn: TrackConn,
    /// When the outstanding `PING` was written, and the pong count then.
    ping: Option<(Instant, u64)>,
    last_ping: Instant,
}

pub(crate) struct Supervisor {
    place: Placement,
    prefixes: Vec<Vec<u8>>,
    out: mpsc::UnboundedSender<Invalidation>,
    conns: BTreeMap<Endpoint, Held>,
    wanted: BTreeSet<Endpoint>,
    routes: Option<Routes>,
    ready: bool,
    next_id: u64,
    retry_at: Instant,
    retry_wait: Duration,
}

impl Supervisor {
    pub fn new(
        place: Placement,
        prefixes: Vec<Vec<u8>>,
        out: mpsc::UnboundedSender<Invalidation>,
    ) -> Self {
        Supervisor {
            place,
            prefixes,
            out,
            conns: BTreeMap::new(),
            wanted: BTreeSet::new(),
            routes: None,
            ready: false,
            next_id: 0,
            retry_at: Instant::now(),
            retry_wait: FIRST_RETRY,
        }
    }

    /// Runs until the stream is dropped.
    pub async fn run(mut self) {
        let (ended_tx, mut ended) = mpsc::unbounded_channel::<u64>();
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = self.out.closed() => return,
                Some(id) = ended.recv() => {
                    // The reader sent `Broken` already.
                    self.conns.retain(|_, held| held.conn.shared.id != id);
                    self.ready = false;
                    self.retry_at = Instant::now();
                }
                _ = tick.tick() => self.maintain(&ended_tx).await,
            }
        }
    }

    fn broken(&mut self, node: &Endpoint, reason: impl Into<String>) {
        self.ready = false;
        let _ = self.out.send(Invalidation::Broken {
            node: node.to_string(),
            reason: reason.into(),
        });
    }

    async fn maintain(&mut self, ended: &mpsc::UnboundedSender<u64>) {
        let routes = self.place.routes();
        if !self.routes.as_ref().is_some_and(|r| r.same(&routes)) {
            let now = wanted_nodes(&routes);
            let (joined, left) = diff(&self.wanted, &now);
            for node in &left {
                if self.conns.remove(node).is_some() || self.ready {
                    self.broken(node, "the node left the topology");
                }
            }
            for node in &joined {
                if self.ready {
                    self.broken(
                        node,
                        "a node joined the topology; its first writes were not tracked",
                    );
                }
            }
            self.wanted = now;
            self.routes = Some(routes);
        }
        self.heartbeats().await;
        let missing: Vec<Endpoint> = self
            .wanted
            .iter()
            .filter(|n| !self.conns.contains_key(*n))
            .cloned()
            .collect();
        if !missing.is_empty() && Instant::now() >= self.retry_at {
            let mut failed = false;
            for node in missing {
                self.next_id += 1;
                let opened = TrackConn::open(
                    self.next_id,
                    &node,
                    self.place.settings(),
                    &self.prefixes,
                    self.out.clone(),
                    ended.clone(),
                )
                .await;
                match opened {
                    Ok(conn) => {
                        let now = Instant::now();
                        self.conns.insert(
                            node,
                            Held {
                                conn,
                                ping: None,
                                last_ping: now,
                            },
                        );
                    }
                    Err(error) => {
                        tracing::warn!(%node, %error, "cannot track invalidations of a node; retrying");
                        failed = true;
                    }
                }
            }
            if failed {
                self.place.request_refresh();
                self.retry_at = Instant::now() + self.retry_wait;
                self.retry_wait =
                    (self.retry_wait * 2).min(self.place.settings().reconnect_backoff_max);
            } else {
                self.retry_wait = FIRST_RETRY;
            }
        }
        if !self.ready
            && !self.wanted.is_empty()
            && self
                .wanted
                .iter()
                .all(|n| self.conns.get(n).is_some_and(|held| !held.conn.is_closed()))
        {
            self.ready = true;
            let _ = self.out.send(Invalidation::Ready);
        }
    }

    /// Pings each connection every [`HEARTBEAT`]; one whose ping is unanswered after the
    /// response timeout is dropped as broken.
    async fn heartbeats(&mut self) {
        let timeout = self.place.settings().response_timeout;
        let now = Instant::now();
        let mut dead = Vec::new();
        for (node, held) in self.conns.iter_mut() {
            if held.conn.is_closed() {
                // Its reader reports it.
                continue;
            }
            let pongs = held
                .conn
                .shared
                .pongs
                .load(std::sync::atomic::Ordering::Acquire);
            match held.ping {
                Some((_, before)) if pongs > before => held.ping = None,
                Some((sent, _)) if now.duration_since(sent) >= timeout => {
                    dead.push((node.clone(), "no answer to the heartbeat PING"));
                    continue;
                }
                Some(_) => continue,
                None => {}
            }
            if now.duration_since(held.last_ping) >= HEARTBEAT {
                held.last_ping = now;
                held.ping = Some((now, pongs));
                match tokio::time::timeout(timeout, held.conn.ping()).await {
                    Ok(Ok(())) => {}
                    _ => dead.push((node.clone(), "the heartbeat PING could not be written")),
                }
            }
        }
        for (node, why) in dead {
            // Dropping it stops its reader without a report: report it here.
            self.conns.remove(&node);
            tracing::info!(%node, why, "tracking connection dropped");
            self.broken(&node, why);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diff_names_joined_and_left_nodes() {
        let e = |p| Endpoint::new("127.0.0.1", p);
        let before: BTreeSet<Endpoint> = [e(1), e(2), e(3)].into();
        let now: BTreeSet<Endpoint> = [e(2), e(3), e(4)].into();
        assert_eq!(diff(&before, &now), (vec![e(4)], vec![e(1)]));
        assert_eq!(diff(&now, &now), (vec![], vec![]));
    }
}
