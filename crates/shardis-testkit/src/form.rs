//! Forming a new cluster: slots, MEET, REPLICATE, then waiting until it is ready.

use std::time::{Duration, Instant};

use crate::cluster::Cluster;
use crate::error::Result;
use crate::node::Node;
use crate::topology::{cluster_info_field, initial_ranges};
use crate::wait::{Check, Deadline, POLL_COMMAND_TIMEOUT, describe, poll};

/// How often formation writes to the primaries to make replica offsets move.
const NUDGE_EVERY: Duration = Duration::from_millis(200);

impl Cluster {
    /// Forms the cluster from fresh nodes (primaries first, then the replicas of primary 0,
    /// of primary 1, ...) and waits until it is ready.
    pub(crate) async fn form(&self) -> Result<()> {
        let nodes = self.fleet.nodes();
        let (primaries, replicas) = nodes.split_at(self.primaries);
        for (node, (first, last)) in primaries.iter().zip(initial_ranges(self.primaries)) {
            let cmd = redis::cmd("CLUSTER")
                .arg("ADDSLOTSRANGE")
                .arg(first)
                .arg(last)
                .to_owned();
            self.fleet.query::<()>(node, &cmd).await?;
        }
        // Every pair meets directly: learning about third nodes by gossip takes ~1 s (a
        // node pings a random peer once a second), a full mesh of MEETs ~100 ms.
        for (i, node) in nodes.iter().enumerate() {
            for other in &nodes[i + 1..] {
                let cmd = redis::cmd("CLUSTER")
                    .arg("MEET")
                    .arg("127.0.0.1")
                    .arg(other.port)
                    .to_owned();
                self.fleet.query::<()>(node, &cmd).await?;
            }
        }
        let timeout = self.fleet.timeout;
        poll!(
            Deadline::new("every node to know every other", timeout),
            self.check_known().await
        );

        // REPLICATE fails with "Unknown node" until the replica has completed the handshake
        // with its master, so each replica is retried until it has accepted once.
        let mut pending: Vec<(&Node, &Node)> = replicas
            .iter()
            .enumerate()
            .map(|(i, r)| (r, &primaries[i / self.replicas_per_primary.max(1)]))
            .collect();
        poll!(
            Deadline::new("every replica to accept CLUSTER REPLICATE", timeout),
            {
                let mut errors = Vec::new();
                let mut still = Vec::new();
                for (replica, primary) in pending.drain(..) {
                    let cmd = redis::cmd("CLUSTER")
                        .arg("REPLICATE")
                        .arg(&primary.id)
                        .to_owned();
                    if let Err(e) = self
                        .fleet
                        .query_within::<()>(replica, &cmd, POLL_COMMAND_TIMEOUT)
                        .await
                    {
                        errors.push(format!("{}: {e}", replica.addr()));
                        still.push((replica, primary));
                    }
                }
                pending = still;
                if pending.is_empty() {
                    Check::Done(())
                } else {
                    Check::NotYet(errors.join("; "))
                }
            }
        );

        // Replicas stay hidden from CLUSTER SLOTS until their offset is past 0, which takes
        // the master's first replication PING (1 s period) unless something is written:
        // FLUSHALL is always propagated and leaves no key behind.
        let mut nudged: Option<Instant> = None;
        poll!(Deadline::new("the new cluster to be ready", timeout), {
            if nudged.is_none_or(|at| at.elapsed() > NUDGE_EVERY) {
                for primary in primaries {
                    // Best effort: if FLUSHALL is renamed, readiness just takes longer.
                    let _ = self
                        .fleet
                        .query::<()>(primary, &redis::cmd("FLUSHALL"))
                        .await;
                }
                nudged = Some(Instant::now());
            }
            self.check_ready().await
        });
        Ok(())
    }

    /// Every node reports `cluster_known_nodes` equal to the number of nodes.
    async fn check_known(&self) -> Check<()> {
        let total = self.fleet.nodes().len().to_string();
        let mut seen = Vec::new();
        for node in self.fleet.nodes() {
            let info = self
                .fleet
                .query_within::<String>(
                    node,
                    redis::cmd("CLUSTER").arg("INFO"),
                    POLL_COMMAND_TIMEOUT,
                )
                .await;
            seen.push(match info {
                Ok(info) => cluster_info_field(&info, "cluster_known_nodes")
                    .unwrap_or("?")
                    .to_string(),
                Err(e) => e.to_string(),
            });
        }
        if seen.iter().all(|k| *k == total) {
            Check::Done(())
        } else {
            Check::NotYet(format!("cluster_known_nodes per node: {seen:?}"))
        }
    }

    /// All nodes ok, identical slot maps including replicas, every range with all replicas.
    async fn check_ready(&self) -> Check<()> {
        let views = match self.observe(self.fleet.nodes()).await {
            Ok(views) => views,
            Err(problems) => return Check::NotYet(problems),
        };
        let state = describe(&views);
        if views.iter().any(|v| v.state != "ok") {
            Check::NotYet(format!("not every node is ok: {state}"))
        } else if views.windows(2).any(|w| w[0].map != w[1].map) {
            Check::NotYet(format!("CLUSTER SLOTS differs between nodes: {state}"))
        } else if views[0]
            .map
            .0
            .iter()
            .any(|r| r.replicas.len() != self.replicas_per_primary)
        {
            Check::NotYet(format!("not every replica is visible yet: {state}"))
        } else {
            Check::Done(())
        }
    }
}
