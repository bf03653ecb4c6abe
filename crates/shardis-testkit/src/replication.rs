//! One primary with replicas (`REPLICAOF`), no cluster mode: for primary+replicas and
//! Sentinel clients. Promotions by hand ([`Replication::promote`]) or by
//! [`Sentinels`](crate::Sentinels).

use std::time::Duration;

use crate::error::{Result, TestkitError};
use crate::fleet::{Fleet, node_helpers};
use crate::node::{Node, Role};
use crate::settings::{Settings, settings_methods};
use crate::wait::{Check, Deadline, POLL_COMMAND_TIMEOUT, poll};

/// Builds a [`Replication`]; see [`Replication::builder`].
#[derive(Debug, Clone)]
#[must_use]
pub struct ReplicationBuilder {
    replicas: usize,
    settings: Settings,
}

impl ReplicationBuilder {
    /// How many replicas of the primary to start (default 2).
    pub fn replicas(mut self, n: usize) -> Self {
        self.replicas = n;
        self
    }

    settings_methods!();

    /// Starts the primary and the replicas, points every replica at the primary, and waits
    /// until each replica's link is up and the primary lists them all.
    pub async fn start(self) -> Result<Replication> {
        let specs = self.settings.specs(1 + self.replicas, false, &[])?;
        let set = Replication {
            fleet: Fleet::start(&specs, self.settings.timeout).await?,
        };
        let primary = set.nodes()[0].clone();
        for replica in &set.nodes()[1..] {
            set.replicate(replica, &primary).await?;
        }
        set.wait_synced(&primary).await?;
        Ok(set)
    }
}

/// A primary (the first of [`nodes`](Self::nodes)) and its replicas, independent
/// redis-server processes on 127.0.0.1, each in its own temporary directory. Dropping it
/// SIGKILLs and reaps every process.
///
/// ```no_run
/// # async fn demo() -> shardis_testkit::Result<()> {
/// let set = shardis_testkit::Replication::builder().replicas(2).start().await?;
/// let primary = set.nodes()[0].clone();
/// let replica = set.nodes()[1].clone();
/// set.promote(&replica).await?;
/// assert_eq!(set.primary().await?, replica);
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Replication {
    fleet: Fleet,
}

node_helpers!(Replication);

impl Replication {
    /// A builder: one primary, two replicas.
    pub fn builder() -> ReplicationBuilder {
        ReplicationBuilder {
            replicas: 2,
            settings: Settings::default(),
        }
    }

    /// `REPLICAOF 127.0.0.1 <primary>` on `node`.
    pub async fn replicate(&self, node: &Node, primary: &Node) -> Result<()> {
        let mut cmd = redis::cmd("REPLICAOF");
        cmd.arg("127.0.0.1").arg(primary.port);
        self.fleet.query::<()>(node, &cmd).await
    }

    /// The node that says (`ROLE`) it is a primary, among the running ones; an error if none
    /// or several do.
    pub async fn primary(&self) -> Result<Node> {
        let mut primaries = Vec::new();
        for node in self.fleet.live() {
            if node.role().await? == Role::Primary {
                primaries.push(node.clone());
            }
        }
        match primaries.as_slice() {
            [one] => Ok(one.clone()),
            _ => Err(TestkitError::InvalidArgument(format!(
                "expected one primary, found {:?}",
                primaries.iter().map(Node::addr).collect::<Vec<_>>()
            ))),
        }
    }

    /// A promotion by hand, as an operator does it: `REPLICAOF NO ONE` on `replica`, then
    /// every other running node replicates it; waits until they are in sync.
    pub async fn promote(&self, replica: &Node) -> Result<()> {
        self.fleet.require_live(replica)?;
        self.fleet
            .query::<()>(replica, redis::cmd("REPLICAOF").arg("NO").arg("ONE"))
            .await?;
        for node in self.fleet.live() {
            if node != replica {
                self.replicate(node, replica).await?;
            }
        }
        self.wait_synced(replica).await
    }

    /// Waits until every running node other than `primary` replicates it with its link up,
    /// and `primary` lists as many connected replicas.
    pub async fn wait_synced(&self, primary: &Node) -> Result<()> {
        let deadline = Deadline::new(
            format!("replicas of {} in sync", primary.addr()),
            self.fleet.timeout,
        );
        // A node too slow to answer one poll (a loaded machine) is polled again.
        poll!(deadline, {
            let mut lagging = Vec::new();
            for (node, info) in self.replica_infos(primary).await {
                let up = info.get("master_port").map(String::as_str)
                    == Some(primary.port.to_string().as_str())
                    && info.get("master_link_status").map(String::as_str) == Some("up");
                if !up {
                    lagging.push(node.addr());
                }
            }
            let info = self
                .info_within(primary, "replication")
                .await
                .unwrap_or_default();
            let connected: usize = info
                .get("connected_slaves")
                .and_then(|n| n.parse().ok())
                .unwrap_or(0);
            let expected = self.fleet.live().len() - 1;
            if lagging.is_empty() && connected == expected {
                Check::Done(())
            } else {
                Check::NotYet(format!(
                    "not in sync: {lagging:?}; {connected}/{expected} connected"
                ))
            }
        });
        Ok(())
    }

    /// Waits until every running replica of `primary` has applied everything the primary had
    /// written when the wait began (`slave_repl_offset` at least the primary's
    /// `master_repl_offset`): a read on any replica then sees every earlier write.
    pub async fn wait_caught_up(&self, primary: &Node) -> Result<()> {
        let offset = |info: &std::collections::HashMap<String, String>, field: &str| {
            info.get(field).and_then(|n| n.parse::<i64>().ok())
        };
        let written = offset(
            &self.info_within(primary, "replication").await?,
            "master_repl_offset",
        )
        .ok_or_else(|| {
            TestkitError::InvalidArgument(format!(
                "{} reports no master_repl_offset",
                primary.addr()
            ))
        })?;
        // Polled every 2 ms, not at the testkit's usual interval: replicas on loopback
        // catch up within a millisecond or two, and tests wait for this after every step.
        let started = std::time::Instant::now();
        loop {
            let mut behind = Vec::new();
            for (node, info) in self.replica_infos(primary).await {
                let applied = offset(&info, "slave_repl_offset").unwrap_or(-1);
                if applied < written {
                    behind.push((node.addr(), applied));
                }
            }
            if behind.is_empty() {
                return Ok(());
            }
            if started.elapsed() >= self.fleet.timeout {
                return Err(TestkitError::Timeout {
                    what: format!("replicas of {} at offset {written}", primary.addr()),
                    waited: started.elapsed(),
                    last_state: format!("behind: {behind:?}"),
                });
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    /// `INFO replication` of every running node but `primary` (empty for a node too slow to
    /// answer this time: polled again).
    async fn replica_infos(
        &self,
        primary: &Node,
    ) -> Vec<(&Node, std::collections::HashMap<String, String>)> {
        let mut out = Vec::new();
        for node in self.fleet.live() {
            if node != primary {
                let info = self
                    .info_within(node, "replication")
                    .await
                    .unwrap_or_default();
                out.push((node, info));
            }
        }
        out
    }

    async fn info_within(
        &self,
        node: &Node,
        section: &str,
    ) -> Result<std::collections::HashMap<String, String>> {
        let text: String = self
            .fleet
            .query_within(node, redis::cmd("INFO").arg(section), POLL_COMMAND_TIMEOUT)
            .await?;
        Ok(crate::info::parse_info(&text))
    }

    /// The deadline of every wait.
    pub fn timeout(&self) -> Duration {
        self.fleet.timeout
    }
}
