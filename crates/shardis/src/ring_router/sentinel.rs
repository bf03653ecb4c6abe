//! Ring nodes named by Redis Sentinel ([`RingNode::sentinel`]): each is the primary of a
//! master the ring's sentinels watch. The ring hashes the master name, so a failover changes
//! the node's address and moves no key: the member is swapped for one at the new address
//! (fresh health, same place on the ring) in a new snapshot.
//!
//! The addresses are asked for at start, again on each `+switch-master` of one of the
//! masters, after a failure of such a node, and every `refresh_interval`.

use std::sync::{Arc, Weak};

use shardis_slots::Endpoint;

use super::config::{RingConfig, RingNode};
use super::placement::{Health, Member, RingTable};
use super::{RingRouter, Snapshot};
use crate::cluster::refresh::Refresher;
use crate::error::{Error, Result};
use crate::net::Pool;
use crate::replicated::sentinel::{self, Sentinels};
use crate::settings::Settings;

/// The sentinel-named nodes of a ring: one [`Sentinels`] per master.
pub(crate) struct SentinelShards {
    masters: Vec<Sentinels>,
    pub recheck: Arc<Refresher>,
}

impl SentinelShards {
    /// `None` when no node of `config` is named by Sentinel.
    pub fn new(config: &RingConfig, settings: &Settings) -> Option<SentinelShards> {
        let masters: Vec<Sentinels> = config
            .nodes
            .iter()
            .filter(|n| n.sentinel)
            .map(|n| Sentinels::new(&n.name, &config.sentinels, &config.sentinel_auth, settings))
            .collect();
        (!masters.is_empty()).then(|| SentinelShards {
            masters,
            recheck: Arc::new(Refresher::new()),
        })
    }

    /// Fills in the address of every sentinel-named node (at start): a node no sentinel names
    /// (or whose named primary denies it) fails the start, as an unreachable seed would.
    pub async fn resolve(&self, nodes: &mut [RingNode], data: &Pool) -> Result<()> {
        for master in &self.masters {
            let (found, errors) = master.ask(data).await;
            let Some(found) = found else {
                return Err(Error::NoPrimary {
                    from: format!("ring node {:?} (a Sentinel master)", master.name()),
                    errors,
                });
            };
            if let Some(node) = nodes.iter_mut().find(|n| n.name == master.name()) {
                node.addr = found.primary.to_string();
            }
        }
        Ok(())
    }

    /// Starts the `+switch-master` watchers and the recheck task.
    pub fn start(&self, router: &Arc<RingRouter>) {
        let Some(first) = self.masters.first() else {
            return;
        };
        let recheck = self.recheck.clone();
        let on_switch: sentinel::OnSwitch = Arc::new(move |_| recheck.request());
        let names = self.masters.iter().map(|m| m.name().to_string()).collect();
        sentinel::watch_switches(first, names, Arc::downgrade(router), on_switch);
        tokio::spawn(run(Arc::downgrade(router), self.recheck.clone()));
    }
}

/// Rechecks every sentinel-named node on request (rate-limited) and periodically, until the
/// client is dropped.
async fn run(router: Weak<RingRouter>, recheck: Arc<Refresher>) {
    recheck
        .serve(
            router,
            |r| &r.settings,
            |router| async move {
                recheck_once(&router).await;
            },
        )
        .await;
}

/// Asks the sentinels for every sentinel-named node's primary, and follows any that moved.
async fn recheck_once(router: &RingRouter) {
    let Some(shards) = &router.sentinel else {
        return;
    };
    for master in &shards.masters {
        match master.ask(&router.pool).await {
            (Some(found), _) => router.readdress(master.name(), &found.primary),
            (None, errors) => tracing::warn!(
                master = master.name(),
                errors = errors.join("; "),
                "no sentinel named a primary for a ring node; keeping its address"
            ),
        }
    }
}

impl RingRouter {
    /// Moves ring node `name` to `to` (its new primary), in a new snapshot; nothing when it is
    /// already there. Keys stay: the ring hashes names.
    pub(crate) fn readdress(&self, name: &str, to: &Endpoint) {
        let _write = self.write.lock();
        let now = self.snapshot.load_full();
        let Some(old) = now.members.member(name) else {
            return;
        };
        if old.server.endpoint == *to {
            return;
        }
        let member = Arc::new(Member {
            node: RingNode {
                addr: to.to_string(),
                ..old.node.clone()
            },
            server: self.pool.node(to),
            health: Arc::new(Health::default()),
        });
        let members: Vec<Arc<Member>> = now
            .members
            .members()
            .iter()
            .map(|m| {
                if m.name() == name {
                    member.clone()
                } else {
                    m.clone()
                }
            })
            .collect();
        let table = match RingTable::build(&self.config, members) {
            Ok(table) => Arc::new(table),
            Err(e) => {
                tracing::warn!(node = name, error = %e, "cannot move a ring node to its new primary");
                return;
            }
        };
        tracing::info!(node = name, from = %old.server.endpoint, to = %to, "ring node follows its new primary");
        metrics::counter!("shardis_primary_changes_total").increment(1);
        self.snapshot.store(Arc::new(Snapshot {
            live: self.live_routing(&table),
            members: table,
            previous: now.previous.clone(),
            // Not a membership change: keys do not move, a running rebalance goes on.
            epoch: now.epoch,
        }));
    }
}
