//! Starting a Redis Cluster of real processes and asking it who owns what.

use std::ffi::OsString;
use std::time::Instant;

use redis::Value;

use crate::error::{Result, TestkitError};
use crate::fleet::{Fleet, node_helpers};
use crate::node::{Node, Role, parse_role};
use crate::settings::{Settings, settings_methods};
use crate::wait::POLL_COMMAND_TIMEOUT;

/// Default `cluster-node-timeout`. 2000 ms keeps failure detection (and so kill-9 failover)
/// around 3–5 s while tolerating a loaded 2-core machine: with 1000 ms a test that pauses a
/// node for ~1.5 s already sees its shard marked failed and the cluster go down. Failover
/// tests that want speed set [`ClusterBuilder::node_timeout_ms`] lower.
pub const DEFAULT_NODE_TIMEOUT_MS: u64 = 2000;

/// Builds a [`Cluster`]; see [`Cluster::builder`].
#[derive(Debug, Clone)]
#[must_use]
pub struct ClusterBuilder {
    primaries: usize,
    replicas_per_primary: usize,
    node_timeout_ms: u64,
    redis_cli: Option<OsString>,
    settings: Settings,
}

impl ClusterBuilder {
    /// The number of primaries (default 3). Slots are split among them as
    /// `redis-cli --cluster create` does (0-5460, 5461-10922, 10923-16383 for 3).
    pub fn primaries(mut self, n: usize) -> Self {
        self.primaries = n;
        self
    }

    /// Replicas per primary (default 1).
    pub fn replicas_per_primary(mut self, n: usize) -> Self {
        self.replicas_per_primary = n;
        self
    }

    /// `cluster-node-timeout` in milliseconds (default [`DEFAULT_NODE_TIMEOUT_MS`]).
    pub fn node_timeout_ms(mut self, ms: u64) -> Self {
        self.node_timeout_ms = ms;
        self
    }

    /// Uses this redis-cli executable for [`Cluster::reshard`] instead of
    /// `$SHARDIS_REDIS_CLI` / `$PATH`.
    pub fn redis_cli(mut self, path: impl Into<OsString>) -> Self {
        self.redis_cli = Some(path.into());
        self
    }

    settings_methods!();

    /// Starts the processes, forms the cluster and waits until it is ready: every node is
    /// `cluster_state:ok`, all nodes return the same `CLUSTER SLOTS`, and every range lists
    /// all its replicas.
    pub async fn start(self) -> Result<Cluster> {
        if self.primaries == 0 || self.primaries > 16384 {
            return Err(TestkitError::InvalidArgument(format!(
                "{} primaries",
                self.primaries
            )));
        }
        let n = self.primaries * (1 + self.replicas_per_primary);
        // cluster-replica-validity-factor 0: a replica may always fail over, however long
        // its link was down, so slow machines never leave a shard without a successor.
        let role_lines = [
            "cluster-enabled yes".to_string(),
            "cluster-config-file nodes.conf".to_string(),
            format!("cluster-node-timeout {}", self.node_timeout_ms),
            "cluster-replica-validity-factor 0".to_string(),
        ];
        let specs = self.settings.specs(n, true, &role_lines)?;
        let started = Instant::now();
        let mut fleet = Fleet::start(&specs, self.settings.timeout).await?;
        let mut ids = Vec::with_capacity(n);
        for node in fleet.nodes() {
            ids.push(
                fleet
                    .query::<String>(node, redis::cmd("CLUSTER").arg("MYID"))
                    .await?,
            );
        }
        fleet.set_ids(ids);
        let cluster = Cluster {
            fleet,
            primaries: self.primaries,
            replicas_per_primary: self.replicas_per_primary,
            node_timeout_ms: self.node_timeout_ms,
            redis_cli: self.redis_cli,
        };
        cluster.form().await?;
        tracing::debug!(elapsed = ?started.elapsed(), nodes = n, "testkit cluster ready");
        Ok(cluster)
    }
}

/// A Redis Cluster of real `redis-server` processes on 127.0.0.1, each in its own temporary
/// directory. Dropping it SIGKILLs and reaps every process and deletes the directories.
///
/// ```no_run
/// # async fn demo() -> shardis_testkit::Result<()> {
/// use shardis_testkit::{Cluster, FailoverMode};
/// let cluster = Cluster::builder().primaries(3).replicas_per_primary(1).start().await?;
/// let owner = cluster.node_for_slot(866).await?;
/// let mut conn = cluster.connection(&owner).await?;
/// let _: () = redis::cmd("SET").arg("hello").arg(1).query_async(&mut conn).await.unwrap();
/// let replica = cluster.replicas().await?.remove(0);
/// cluster.failover(&replica, FailoverMode::Default).await?;
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Cluster {
    pub(crate) fleet: Fleet,
    pub(crate) primaries: usize,
    pub(crate) replicas_per_primary: usize,
    node_timeout_ms: u64,
    pub(crate) redis_cli: Option<OsString>,
}

node_helpers!(Cluster);

impl Cluster {
    /// A builder for 3 primaries × 1 replica with [`DEFAULT_NODE_TIMEOUT_MS`].
    pub fn builder() -> ClusterBuilder {
        ClusterBuilder {
            primaries: 3,
            replicas_per_primary: 1,
            node_timeout_ms: DEFAULT_NODE_TIMEOUT_MS,
            redis_cli: None,
            settings: Settings::default(),
        }
    }

    /// Seed addresses for a client: `"127.0.0.1:<port>"` of every node started (including
    /// replicas, and nodes killed since).
    pub fn seeds(&self) -> Vec<String> {
        self.addrs()
    }

    /// The configured `cluster-node-timeout` in milliseconds.
    pub fn node_timeout_ms(&self) -> u64 {
        self.node_timeout_ms
    }

    /// The running nodes that currently say (`ROLE`) they are primaries, in start order.
    pub async fn primaries(&self) -> Result<Vec<Node>> {
        self.with_role(|r| *r == Role::Primary).await
    }

    /// The running nodes that currently say (`ROLE`) they are replicas, in start order.
    pub async fn replicas(&self) -> Result<Vec<Node>> {
        self.with_role(|r| matches!(r, Role::Replica { .. })).await
    }

    /// `ROLE` of `node`, over the testkit's cached connection.
    pub async fn role(&self, node: &Node) -> Result<Role> {
        self.fleet.require_live(node)?;
        let reply: Value = self
            .fleet
            .query_within(node, &redis::cmd("ROLE"), POLL_COMMAND_TIMEOUT * 2)
            .await?;
        parse_role(&reply).map_err(|d| TestkitError::reply(format!("ROLE on {}", node.addr()), d))
    }

    async fn with_role(&self, keep: impl Fn(&Role) -> bool) -> Result<Vec<Node>> {
        let mut out = Vec::new();
        for node in self.fleet.live() {
            if keep(&self.role(node).await?) {
                out.push(node.clone());
            }
        }
        Ok(out)
    }

    /// The primary that owns `slot` right now. Asks a running node's `CLUSTER SLOTS`, then
    /// confirms with the claimed owner (whose own view is authoritative right after a
    /// migration, before replicas have heard by gossip), following it if it disagrees.
    pub async fn node_for_slot(&self, slot: u16) -> Result<Node> {
        if slot >= 16384 {
            return Err(TestkitError::InvalidArgument(format!(
                "slot {slot} out of range"
            )));
        }
        let live = self.fleet.live();
        let mut asked = *live.first().ok_or_else(|| {
            TestkitError::InvalidArgument("no node of the cluster is running".into())
        })?;
        for _ in 0..5 {
            let map = self.slot_map(asked).await?;
            let owner_id = map.owner(slot).ok_or_else(|| {
                TestkitError::reply(
                    format!("CLUSTER SLOTS on {}", asked.addr()),
                    format!("slot {slot} is unassigned"),
                )
            })?;
            let owner = self.fleet.by_id(owner_id).ok_or_else(|| {
                TestkitError::reply(
                    format!("CLUSTER SLOTS on {}", asked.addr()),
                    format!("owner {owner_id} is not a testkit node"),
                )
            })?;
            if owner == asked || !self.fleet.is_live(owner) {
                return Ok(owner.clone());
            }
            asked = owner;
        }
        Ok(asked.clone())
    }
}
