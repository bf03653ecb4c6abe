//! Membership changes at runtime (`add_node`, `remove_node`, `set_weight`) and what a caller
//! can see of the ring. A change builds a new ring and swaps it in atomically: routing never
//! takes a lock, and only the keys the ring says must move, move.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use redis::Value;

use super::config::{self, RingNode};
use super::placement::{Health, Member, RingTable};
use super::rebalance::{self, RebalanceHandle};
use super::{HealthPolicy, RingRouter, Snapshot};
use crate::error::{Error, Result};

/// The outcome of a membership change.
#[derive(Debug)]
#[non_exhaustive]
pub struct MembershipChange {
    /// The exact fraction of the key space whose owner changed.
    pub moved_fraction: f64,
    /// The online rebalance moving those keys, when enabled with
    /// [`Builder::ring_rebalance`](crate::Builder::ring_rebalance).
    pub rebalance: Option<RebalanceHandle>,
}

/// The state of one ring node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum NodeState {
    /// Serving its keys.
    Up,
    /// Down under the fail-fast policy: its keys fail with [`Error::NodeDown`].
    Down,
    /// Ejected under the eject policy: its keys are served by the next node.
    Ejected,
}

/// One node as the client sees it now.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct RingNodeStatus {
    /// Its name.
    pub name: String,
    /// Its address.
    pub addr: String,
    /// Its weight.
    pub weight: u32,
    /// Its health.
    pub state: NodeState,
    /// The exact share of the key space it owns when every node is up.
    pub share: f64,
}

/// The ring as the client sees it now.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct RingStatus {
    /// Every member, in ring order.
    pub nodes: Vec<RingNodeStatus>,
    /// Nodes ejected so far.
    pub ejections: u64,
    /// Nodes re-admitted so far.
    pub readmissions: u64,
    /// Reads that found their key still on its previous owner during a rebalance (it was
    /// moved to its new owner first, then read there).
    pub fallback_hits: u64,
    /// Keys moved by rebalancing (and by writes during it).
    pub keys_moved: u64,
    /// Leftover copies removed: what stand-ins kept of an ejected node's keys once it was
    /// re-admitted, and keys a rebalance found on a node that never owned them.
    pub leftovers_removed: u64,
    /// Whether a rebalance is moving keys now.
    pub rebalancing: bool,
}

impl RingRouter {
    /// See [`Client::add_node`](crate::Client::add_node).
    pub(crate) async fn add_node(self: &Arc<Self>, node: RingNode) -> Result<MembershipChange> {
        self.change(|nodes| {
            nodes.push(node);
            Ok(())
        })
        .await
    }

    /// See [`Client::remove_node`](crate::Client::remove_node).
    pub(crate) async fn remove_node(self: &Arc<Self>, name: &str) -> Result<MembershipChange> {
        self.change(|nodes| {
            let before = nodes.len();
            nodes.retain(|n| n.name != name);
            if nodes.len() == before {
                return Err(Error::Config(format!("no ring node named {name:?}")));
            }
            Ok(())
        })
        .await
    }

    /// See [`Client::set_weight`](crate::Client::set_weight).
    pub(crate) async fn set_weight(
        self: &Arc<Self>,
        name: &str,
        weight: u32,
    ) -> Result<MembershipChange> {
        self.change(|nodes| match nodes.iter_mut().find(|n| n.name == name) {
            Some(node) => {
                node.weight = weight;
                Ok(())
            }
            None => Err(Error::Config(format!("no ring node named {name:?}"))),
        })
        .await
    }
}

impl RingRouter {
    /// Applies `edit` to the node list and swaps in the new ring.
    async fn change(
        self: &Arc<Self>,
        edit: impl FnOnce(&mut Vec<RingNode>) -> Result<()>,
    ) -> Result<MembershipChange> {
        let mut running = self.membership.lock().await;
        let current = self.snapshot.load_full();
        let mut nodes: Vec<RingNode> = current
            .members
            .members()
            .iter()
            .map(|m| m.node.clone())
            .collect();
        // Keep configuration order (ketama ties depend on it), not ring order.
        let order = |n: &RingNode| self.config.nodes.iter().position(|c| c.name == n.name);
        nodes.sort_by_key(|n| order(n).unwrap_or(usize::MAX));
        edit(&mut nodes)?;
        if nodes.is_empty() {
            return Err(Error::Config("a ring needs at least one node".into()));
        }
        config::validate_nodes(&nodes)?;
        let mut members = Vec::with_capacity(nodes.len());
        for node in nodes {
            let known = current.members.member(&node.name);
            let member = match known {
                Some(m) if m.node.addr == node.addr => Arc::new(Member {
                    server: m.server.clone(),
                    health: m.health.clone(),
                    node,
                }),
                _ => self.new_member(node).await?,
            };
            members.push(member);
        }
        let routing = Arc::new(RingTable::build(&self.config, members)?);
        // Stop a running rebalance before its rings are superseded; its unmoved keys stay
        // covered, as its previous rings are kept below.
        if let Some(shared) = running.take() {
            shared.superseded.store(true, Ordering::Relaxed);
            shared.cancel();
            shared.stopped().await;
        }
        let moved_fraction = current.members.moved_fraction(&routing);
        let epoch = {
            let _write = self.write.lock();
            let now = self.snapshot.load_full();
            let previous = match self.config.rebalance {
                Some(_) => std::iter::once(now.members.clone())
                    .chain(now.previous.iter().cloned())
                    .collect(),
                None => Vec::new(),
            };
            let epoch = now.epoch + 1;
            self.snapshot.store(Arc::new(Snapshot {
                live: self.live_routing(&routing),
                members: routing.clone(),
                previous,
                epoch,
            }));
            epoch
        };
        tracing::info!(
            nodes = routing.members().len(),
            moved_fraction,
            "ring membership changed"
        );
        metrics::counter!("shardis_ring_membership_changes_total").increment(1);
        let rebalance = match self.config.rebalance {
            Some(options) => {
                let snap = self.snapshot.load_full();
                let mut sources: Vec<Arc<Member>> = Vec::new();
                for ring in &snap.previous {
                    for m in ring.members() {
                        if sources.iter().all(|s| s.name() != m.name()) {
                            sources.push(m.clone());
                        }
                    }
                }
                let (handle, shared) = rebalance::start(self, epoch, sources, options);
                *running = Some(shared);
                Some(handle)
            }
            None => {
                self.close_departed();
                None
            }
        };
        Ok(MembershipChange {
            moved_fraction,
            rebalance,
        })
    }

    /// A member for a node new to the ring (or at a new address), checked with `PING`.
    async fn new_member(&self, node: RingNode) -> Result<Arc<Member>> {
        let endpoint = config::parse_addr(&node)?;
        let member = Arc::new(Member {
            server: self.pool.node(&endpoint),
            health: Arc::new(Health::default()),
            node,
        });
        let ping = self.send(&member, &redis::cmd("PING")).await;
        let failure = match ping {
            Ok(Value::ServerError(e)) => e.to_string(),
            Ok(_) => return Ok(member),
            Err(e) => e.to_string(),
        };
        if matches!(self.config.health, HealthPolicy::FailFast) {
            return Err(Error::connection(
                &member.node.addr,
                format!("new ring node {:?} unreachable: {failure}", member.name()),
            ));
        }
        member.health.down.store(true, Ordering::Relaxed);
        *member.health.down_since.lock() = Some(std::time::Instant::now());
        tracing::warn!(node = member.name(), %failure, "new ring node unreachable; it joins ejected");
        Ok(member)
    }

    /// Called by a rebalance that ran to its end (or was cancelled by its caller): routing
    /// forgets the previous rings, and connections to departed nodes close.
    pub(crate) fn finish_rebalance(&self, epoch: u64) {
        {
            let _write = self.write.lock();
            let now = self.snapshot.load_full();
            if now.epoch != epoch {
                return;
            }
            self.snapshot.store(Arc::new(Snapshot {
                members: now.members.clone(),
                live: now.live.clone(),
                previous: Vec::new(),
                epoch,
            }));
        }
        self.close_departed();
    }

    /// Drops pool entries of nodes no ring in the snapshot mentions.
    fn close_departed(&self) {
        let snap = self.snapshot.load_full();
        let rings = std::iter::once(&snap.members).chain(snap.previous.iter());
        let keep: Vec<String> = rings
            .flat_map(|r| r.members().iter().map(|m| m.server.label().to_string()))
            .collect();
        self.pool
            .retain(&|endpoint| keep.iter().any(|k| *k == endpoint.to_string()));
    }

    pub(crate) fn status(&self) -> RingStatus {
        let snap = self.snapshot.load_full();
        let eject = matches!(self.config.health, HealthPolicy::Eject { .. });
        let nodes = snap
            .members
            .members()
            .iter()
            .map(|m| RingNodeStatus {
                name: m.name().to_string(),
                addr: m.node.addr.clone(),
                weight: m.node.weight,
                state: match (m.health.is_down(), eject) {
                    (false, _) => NodeState::Up,
                    (true, false) => NodeState::Down,
                    (true, true) => NodeState::Ejected,
                },
                share: snap.members.share(m.name()),
            })
            .collect();
        let read = |c: &std::sync::atomic::AtomicU64| c.load(Ordering::Relaxed);
        RingStatus {
            nodes,
            ejections: read(&self.counters.ejections),
            readmissions: read(&self.counters.readmissions),
            fallback_hits: read(&self.counters.fallback_hits),
            keys_moved: read(&self.counters.keys_moved),
            leftovers_removed: read(&self.counters.leftovers_removed),
            rebalancing: !snap.previous.is_empty(),
        }
    }
}
