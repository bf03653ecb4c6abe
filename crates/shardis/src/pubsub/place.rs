//! Where each subscription must be, now: the pure rule, and the routers' snapshots it reads.
//!
//! | mode | channel (`SUBSCRIBE`) | pattern (`PSUBSCRIBE`) | shard channel (`SSUBSCRIBE`) |
//! |---|---|---|---|
//! | cluster | one node for all of them (any node hears every `PUBLISH` over the cluster bus); kept while it stays in the cluster | as channels | the primary of the channel's slot |
//! | ring | the channel's ring owner (where `PUBLISH` of it is routed) | every live node (a pattern matches channels of every owner) | the channel's ring owner |
//! | primary+replicas | the primary (moved to the new one after a promotion) | the primary | the primary |

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use shardis_slots::{Endpoint, key_slot};

use super::{Kind, Sub};
use crate::cluster::ClusterRouter;
use crate::cluster::slots::SlotRoutes;
use crate::error::Error;
use crate::replicated::{ReplicaRoutes, ReplicatedRouter};
use crate::ring_router::{RingRouter, Snapshot as RingSnapshot};
use crate::settings::Settings;

/// What the rule needs from a routing snapshot.
pub(crate) trait Locate {
    /// The node that owns `name` (its slot's primary; its ring owner); `None` when no node does.
    fn owner(&self, name: &[u8]) -> Option<Endpoint>;
    /// Cluster: classic pub/sub is heard on every node, so one node serves every channel and
    /// pattern. Ring: each node is its own island.
    fn broadcast(&self) -> bool;
    /// Every node a pattern must be on (ring: every live node).
    fn every_node(&self) -> Vec<Endpoint>;
    /// Whether `node` is still part of the deployment.
    fn contains(&self, node: &Endpoint) -> bool;
}

/// Where every subscription in `wanted` must be. In cluster mode, channels and patterns stay on
/// `classic_at` (the node that holds them now) while it is part of the cluster. Subscriptions
/// no node can take now (an unassigned slot) are returned apart.
pub(crate) fn desired<L: Locate>(
    at: &L,
    wanted: &BTreeSet<Sub>,
    classic_at: Option<&Endpoint>,
) -> (BTreeMap<Endpoint, BTreeSet<Sub>>, Vec<Sub>) {
    let mut out: BTreeMap<Endpoint, BTreeSet<Sub>> = BTreeMap::new();
    let mut unplaced = Vec::new();
    let classic_home = || {
        if let Some(node) = classic_at.filter(|n| at.contains(n)) {
            return Some(node.clone());
        }
        let first = wanted.iter().find(|(kind, _)| *kind != Kind::Shard)?;
        at.owner(&first.1)
    };
    let classic_home = if at.broadcast() { classic_home() } else { None };
    for sub in wanted {
        let homes = match (sub.0, at.broadcast()) {
            (Kind::Shard, _) | (Kind::Channel, false) => at.owner(&sub.1).into_iter().collect(),
            (Kind::Pattern, false) => at.every_node(),
            (Kind::Channel | Kind::Pattern, true) => classic_home.clone().into_iter().collect(),
        };
        if homes.is_empty() {
            unplaced.push(sub.clone());
        }
        for home in homes {
            out.entry(home).or_default().insert(sub.clone());
        }
    }
    (out, unplaced)
}

/// The commands that (un)subscribe `subs`: one per kind, and for shard channels one per slot
/// (`SSUBSCRIBE` refuses channels of several slots).
pub(crate) fn commands<'a>(subs: impl IntoIterator<Item = &'a Sub>) -> Vec<(Kind, Vec<Vec<u8>>)> {
    let mut groups: BTreeMap<(Kind, u16), Vec<Vec<u8>>> = BTreeMap::new();
    for (kind, name) in subs {
        let slot = if *kind == Kind::Shard {
            key_slot(name)
        } else {
            0
        };
        groups.entry((*kind, slot)).or_default().push(name.clone());
    }
    groups
        .into_iter()
        .map(|((kind, _), names)| (kind, names))
        .collect()
}

/// The client's router, as subscriptions see it.
#[derive(Clone)]
pub(crate) enum Placement {
    Cluster(Arc<ClusterRouter>),
    Ring(Arc<RingRouter>),
    Replicated(Arc<ReplicatedRouter>),
}

/// One routing snapshot. Held (not just compared by address), so a new one is always noticed.
pub(crate) enum Routes {
    Cluster(Arc<SlotRoutes>),
    Ring(Arc<RingSnapshot>),
    Replicated(Arc<ReplicaRoutes>),
}

impl Placement {
    pub fn settings(&self) -> &Arc<Settings> {
        match self {
            Placement::Cluster(router) => &router.settings,
            Placement::Ring(router) => &router.settings,
            Placement::Replicated(router) => &router.settings,
        }
    }

    /// The router's snapshot now.
    pub fn routes(&self) -> Routes {
        match self {
            Placement::Cluster(router) => Routes::Cluster(router.routes.load_full()),
            Placement::Ring(router) => Routes::Ring(router.snapshot.load_full()),
            Placement::Replicated(router) => Routes::Replicated(router.routes.load_full()),
        }
    }

    /// Cluster mode: reloads the topology and waits for it (bounded by the deadline). A ring's
    /// topology is the client's own: nothing to load.
    pub async fn refresh(&self) {
        match self {
            Placement::Cluster(router) => {
                let until = tokio::time::Instant::now() + router.settings.deadline;
                router.refresher.request_and_wait(until).await;
            }
            Placement::Replicated(router) => {
                let until = tokio::time::Instant::now() + router.settings.deadline;
                router.rediscovery.request_and_wait(until).await;
            }
            Placement::Ring(_) => {}
        }
    }

    /// Cluster mode: asks for a topology reload soon, without waiting (reloads are
    /// rate-limited and shared with the client's commands).
    pub fn request_refresh(&self) {
        match self {
            Placement::Cluster(router) => router.refresher.request(),
            Placement::Replicated(router) => router.rediscovery.request(),
            Placement::Ring(_) => {}
        }
    }

    /// A node answered `MOVED slot endpoint`: route the slot there now, and reload the rest.
    pub fn moved(&self, slot: u16, endpoint: &Endpoint) {
        if let Placement::Cluster(router) = self {
            crate::cluster::follow::patch_moved(router, slot, endpoint);
            router.refresher.request();
        }
    }

    /// The error of a subscription no node takes now.
    pub fn unplaced(&self, sub: &Sub) -> Error {
        match self {
            Placement::Cluster(_) => Error::SlotUnassigned {
                slot: key_slot(&sub.1),
            },
            Placement::Ring(_) => Error::NodeDown {
                node: "every ring node".into(),
            },
            Placement::Replicated(router) => Error::NodeDown {
                node: router.routes.load().primary.label().to_string(),
            },
        }
    }
}

impl Routes {
    /// Whether `self` and `other` are the same snapshot.
    pub fn same(&self, other: &Routes) -> bool {
        match (self, other) {
            (Routes::Cluster(a), Routes::Cluster(b)) => Arc::ptr_eq(a, b),
            (Routes::Ring(a), Routes::Ring(b)) => Arc::ptr_eq(a, b),
            (Routes::Replicated(a), Routes::Replicated(b)) => Arc::ptr_eq(a, b),
            _ => false,
        }
    }
}

impl Locate for Routes {
    fn owner(&self, name: &[u8]) -> Option<Endpoint> {
        match self {
            Routes::Cluster(routes) => routes
                .node_for(key_slot(name), false)
                .map(|n| n.endpoint.clone()),
            Routes::Ring(snap) => {
                if snap.live.members().is_empty() {
                    return None;
                }
                Some(snap.live.owner(name).server.endpoint.clone())
            }
            Routes::Replicated(routes) => Some(routes.primary.endpoint.clone()),
        }
    }

    fn broadcast(&self) -> bool {
        matches!(self, Routes::Cluster(_))
    }

    fn every_node(&self) -> Vec<Endpoint> {
        match self {
            Routes::Cluster(routes) => routes
                .primaries()
                .iter()
                .map(|n| n.endpoint.clone())
                .collect(),
            Routes::Ring(snap) => snap
                .live
                .members()
                .iter()
                .map(|m| m.server.endpoint.clone())
                .collect(),
            Routes::Replicated(routes) => vec![routes.primary.endpoint.clone()],
        }
    }

    fn contains(&self, node: &Endpoint) -> bool {
        match self {
            Routes::Cluster(routes) => routes.all_nodes().iter().any(|n| n.endpoint == *node),
            Routes::Ring(snap) => snap
                .live
                .members()
                .iter()
                .any(|m| m.server.endpoint == *node),
            Routes::Replicated(routes) => routes.primary.endpoint == *node,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Names go to the node of their first letter; nodes `a`..`c` exist.
    struct Letters {
        broadcast: bool,
    }

    fn node(letter: u8) -> Endpoint {
        Endpoint::new("10.0.0.1", 7000 + u16::from(letter - b'a'))
    }

    impl Locate for Letters {
        fn owner(&self, name: &[u8]) -> Option<Endpoint> {
            name.first()
                .filter(|c| (b'a'..=b'c').contains(c))
                .map(|&c| node(c))
        }
        fn broadcast(&self) -> bool {
            self.broadcast
        }
        fn every_node(&self) -> Vec<Endpoint> {
            (b'a'..=b'c').map(node).collect()
        }
        fn contains(&self, n: &Endpoint) -> bool {
            self.every_node().contains(n)
        }
    }

    fn subs(list: &[(Kind, &str)]) -> BTreeSet<Sub> {
        list.iter()
            .map(|(k, n)| (*k, n.as_bytes().to_vec()))
            .collect()
    }

    #[test]
    fn cluster_keeps_classic_on_one_node_and_shard_channels_on_their_owner() {
        let at = Letters { broadcast: true };
        let wanted = subs(&[
            (Kind::Channel, "b1"),
            (Kind::Channel, "c1"),
            (Kind::Pattern, "a*"),
            (Kind::Shard, "c2"),
            (Kind::Shard, "z"),
        ]);
        // No node yet: the owner of the first classic name (patterns sort after channels).
        let (map, unplaced) = desired(&at, &wanted, None);
        assert_eq!(
            map.get(&node(b'b')),
            Some(&subs(&[
                (Kind::Channel, "b1"),
                (Kind::Channel, "c1"),
                (Kind::Pattern, "a*")
            ]))
        );
        assert_eq!(map.get(&node(b'c')), Some(&subs(&[(Kind::Shard, "c2")])));
        assert_eq!(unplaced, vec![(Kind::Shard, b"z".to_vec())]);

        // Classic subscriptions stay where they are while that node is in the cluster...
        let (map, _) = desired(&at, &wanted, Some(&node(b'a')));
        assert!(map[&node(b'a')].contains(&(Kind::Channel, b"c1".to_vec())));
        // ...and move when it left.
        let gone = Endpoint::new("10.0.0.9", 1);
        let (map, _) = desired(&at, &wanted, Some(&gone));
        assert!(!map.contains_key(&gone));
        assert!(map[&node(b'b')].contains(&(Kind::Pattern, b"a*".to_vec())));
    }

    #[test]
    fn ring_puts_channels_on_their_owner_and_patterns_everywhere() {
        let at = Letters { broadcast: false };
        let wanted = subs(&[
            (Kind::Channel, "a1"),
            (Kind::Pattern, "x*"),
            (Kind::Shard, "c"),
        ]);
        let (map, unplaced) = desired(&at, &wanted, Some(&node(b'b')));
        assert!(unplaced.is_empty());
        assert_eq!(
            map[&node(b'a')],
            subs(&[(Kind::Channel, "a1"), (Kind::Pattern, "x*")])
        );
        assert_eq!(map[&node(b'b')], subs(&[(Kind::Pattern, "x*")]));
        assert_eq!(
            map[&node(b'c')],
            subs(&[(Kind::Pattern, "x*"), (Kind::Shard, "c")])
        );
    }

    #[test]
    fn shard_channels_are_subscribed_one_slot_per_command() {
        let wanted = subs(&[
            (Kind::Shard, "{t}a"),
            (Kind::Shard, "{t}b"),
            (Kind::Shard, "other"),
            (Kind::Channel, "x"),
            (Kind::Channel, "y"),
        ]);
        let mut cmds = commands(&wanted);
        cmds.sort();
        let names = |list: &[&str]| {
            list.iter()
                .map(|n| n.as_bytes().to_vec())
                .collect::<Vec<_>>()
        };
        assert!(cmds.contains(&(Kind::Channel, names(&["x", "y"]))));
        assert!(cmds.contains(&(Kind::Shard, names(&["{t}a", "{t}b"]))));
        assert!(cmds.contains(&(Kind::Shard, names(&["other"]))));
        assert_eq!(cmds.len(), 3);
    }
}
