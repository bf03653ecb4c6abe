//! Real Redis Sentinels (`redis-server <conf> --sentinel`) watching a [`Replication`], with
//! short failure-detection and failover timeouts so that tests are fast.

use std::collections::HashMap;
use std::time::Duration;

use crate::binaries::{Binary, resolve};
use crate::error::{Result, TestkitError};
use crate::fleet::{Fleet, node_helpers};
use crate::node::{Auth, Node, Role};
use crate::replication::Replication;
use crate::server::ServerSpec;
use crate::settings::quote;
use crate::wait::{Check, Deadline, POLL_COMMAND_TIMEOUT, poll};

/// Builds [`Sentinels`]; see [`Sentinels::builder`].
#[derive(Debug, Clone)]
#[must_use]
pub struct SentinelsBuilder {
    count: usize,
    master: String,
    quorum: usize,
    down_after: Duration,
    failover_timeout: Duration,
    password: Option<String>,
    timeout: Duration,
}

impl SentinelsBuilder {
    /// How many sentinels (default 3).
    pub fn sentinels(mut self, n: usize) -> Self {
        self.count = n;
        self
    }

    /// The name they monitor the primary under (default `"m"`).
    pub fn master_name(mut self, name: impl Into<String>) -> Self {
        self.master = name.into();
        self
    }

    /// How many sentinels must agree the primary is down (default 2).
    pub fn quorum(mut self, quorum: usize) -> Self {
        self.quorum = quorum;
        self
    }

    /// `down-after-milliseconds` (default 1 s).
    pub fn down_after(mut self, after: Duration) -> Self {
        self.down_after = after;
        self
    }

    /// `failover-timeout` (default 5 s).
    pub fn failover_timeout(mut self, timeout: Duration) -> Self {
        self.failover_timeout = timeout;
        self
    }

    /// Makes the sentinels require `password` (`requirepass`, and `sentinel-pass` between
    /// them); the testkit's connections to them authenticate.
    pub fn password(mut self, password: impl Into<String>) -> Self {
        self.password = Some(password.into());
        self
    }

    /// The deadline of every wait (default 60 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Starts the sentinels monitoring the current primary of `set` (with its credentials)
    /// under the master name, and waits until every sentinel knows every replica and every
    /// other sentinel (a failover needs both).
    pub async fn start(self, set: &Replication) -> Result<Sentinels> {
        let name = self.master.clone();
        self.start_many(&[(name.as_str(), set)]).await
    }

    /// [`start`](Self::start) for several sets, each monitored under its own master name
    /// (a ring of Sentinel-managed shards); the first is the default of the handle's methods.
    pub async fn start_many(self, sets: &[(&str, &Replication)]) -> Result<Sentinels> {
        let binary = resolve(Binary::Server, None)?;
        let mut lines = Vec::new();
        for (m, set) in sets {
            let primary = set.primary().await?;
            lines.extend([
                format!(
                    "sentinel monitor {m} 127.0.0.1 {} {}",
                    primary.port, self.quorum
                ),
                format!(
                    "sentinel down-after-milliseconds {m} {}",
                    self.down_after.as_millis()
                ),
                format!(
                    "sentinel failover-timeout {m} {}",
                    self.failover_timeout.as_millis()
                ),
                format!("sentinel parallel-syncs {m} 1"),
            ]);
            if let Some(auth) = &primary.auth {
                lines.push(format!("sentinel auth-pass {m} {}", quote(&auth.password)));
                if let Some(user) = &auth.user {
                    lines.push(format!("sentinel auth-user {m} {user}"));
                }
            }
        }
        let auth = self.password.as_ref().map(|password| Auth {
            user: None,
            password: password.clone(),
        });
        if let Some(password) = &self.password {
            lines.push(format!("requirepass {}", quote(password)));
            lines.push(format!("sentinel sentinel-pass {}", quote(password)));
        }
        let spec = ServerSpec {
            binary,
            cluster: false,
            lines,
            auth,
            tls: false,
            startup_timeout: self.timeout,
            args: vec!["--sentinel".into()],
        };
        let specs = vec![spec; self.count];
        let sentinels = Sentinels {
            fleet: Fleet::start(&specs, self.timeout).await?,
            master: sets
                .first()
                .map(|(m, _)| m.to_string())
                .unwrap_or(self.master),
        };
        for (m, set) in sets {
            sentinels.wait_aware(m, set.nodes().len() - 1).await?;
        }
        Ok(sentinels)
    }
}

/// Sentinels on 127.0.0.1, each in its own temporary directory (where it rewrites its
/// config). Dropping the handle SIGKILLs and reaps them.
///
/// ```no_run
/// # async fn demo() -> shardis_testkit::Result<()> {
/// let set = shardis_testkit::Replication::builder().replicas(2).start().await?;
/// let sentinels = shardis_testkit::Sentinels::builder().start(&set).await?;
/// let old = set.primary().await?;
/// sentinels.failover().await?;
/// let new = sentinels.wait_for_new_primary(&set, &old).await?;
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Sentinels {
    fleet: Fleet,
    master: String,
}

node_helpers!(Sentinels);

impl Sentinels {
    /// Three sentinels, quorum 2, master name `m`, down after 1 s, failover timeout 5 s.
    pub fn builder() -> SentinelsBuilder {
        SentinelsBuilder {
            count: 3,
            master: "m".into(),
            quorum: 2,
            down_after: Duration::from_secs(1),
            failover_timeout: Duration::from_secs(5),
            password: None,
            timeout: Duration::from_secs(60),
        }
    }

    /// The name the primary is monitored under.
    pub fn master_name(&self) -> &str {
        &self.master
    }

    /// `SENTINEL MASTER <name>` of `sentinel`, as field → value.
    pub async fn master_state(
        &self,
        sentinel: &Node,
        name: &str,
    ) -> Result<HashMap<String, String>> {
        let mut cmd = redis::cmd("SENTINEL");
        cmd.arg("MASTER").arg(name);
        self.fleet
            .query_within(sentinel, &cmd, POLL_COMMAND_TIMEOUT)
            .await
    }

    /// The port of the primary `sentinel` names now for master `name`.
    pub async fn primary_port(&self, sentinel: &Node, name: &str) -> Result<u16> {
        let mut cmd = redis::cmd("SENTINEL");
        cmd.arg("GET-MASTER-ADDR-BY-NAME").arg(name);
        let (_host, port): (String, u16) = self
            .fleet
            .query_within(sentinel, &cmd, POLL_COMMAND_TIMEOUT)
            .await?;
        Ok(port)
    }

    /// `SENTINEL FAILOVER <name>` on the first running sentinel: a failover without asking
    /// the others (the primary may be up). Sent again while a previous one is in progress.
    pub async fn failover(&self) -> Result<()> {
        self.failover_of(&self.master).await
    }

    /// [`failover`](Self::failover) of master `name`.
    pub async fn failover_of(&self, name: &str) -> Result<()> {
        let sentinel = self
            .fleet
            .live()
            .first()
            .map(|n| (*n).clone())
            .ok_or_else(|| TestkitError::InvalidArgument("no sentinel runs".into()))?;
        let mut cmd = redis::cmd("SENTINEL");
        cmd.arg("FAILOVER").arg(name);
        self.fleet.query::<()>(&sentinel, &cmd).await
    }

    /// Waits until every running sentinel names the same primary other than `old`, that node
    /// says (`ROLE`) it is a primary, and every other running node of `set` replicates it
    /// with its link up. Returns it.
    pub async fn wait_for_new_primary(&self, set: &Replication, old: &Node) -> Result<Node> {
        self.wait_for_new_primary_of(&self.master, set, old).await
    }

    /// [`wait_for_new_primary`](Self::wait_for_new_primary) of master `name`, whose nodes are
    /// `set`.
    pub async fn wait_for_new_primary_of(
        &self,
        name: &str,
        set: &Replication,
        old: &Node,
    ) -> Result<Node> {
        let deadline = Deadline::new(
            format!("sentinels to promote a node other than {}", old.addr()),
            self.fleet.timeout,
        );
        let new = poll!(deadline, {
            let mut named = Vec::new();
            for sentinel in self.fleet.live() {
                named.push(self.primary_port(sentinel, name).await.ok());
            }
            let agreed = named
                .first()
                .copied()
                .flatten()
                .filter(|port| *port != old.port && named.iter().all(|n| *n == Some(*port)));
            let node = agreed.and_then(|port| set.nodes().iter().find(|n| n.port == port));
            match node {
                Some(node) if node.role().await.ok() == Some(Role::Primary) => {
                    Check::Done(node.clone())
                }
                _ => Check::NotYet(format!("sentinels name ports {named:?}")),
            }
        });
        set.wait_synced(&new).await?;
        Ok(new)
    }

    /// Waits until every running sentinel sees `replicas` replicas of master `name` and every
    /// other sentinel.
    async fn wait_aware(&self, name: &str, replicas: usize) -> Result<()> {
        let others = self.fleet.nodes().len() - 1;
        let deadline = Deadline::new("sentinels to know each other", self.fleet.timeout);
        poll!(deadline, {
            let mut behind = Vec::new();
            for sentinel in self.fleet.live() {
                // A sentinel too slow to answer one poll (a loaded machine) is polled again.
                let state = self.master_state(sentinel, name).await.unwrap_or_default();
                let count = |field: &str| {
                    state
                        .get(field)
                        .and_then(|n| n.parse::<usize>().ok())
                        .unwrap_or(0)
                };
                if count("num-other-sentinels") < others || count("num-slaves") < replicas {
                    behind.push(format!(
                        "{}: {} sentinels, {} replicas",
                        sentinel.addr(),
                        count("num-other-sentinels"),
                        count("num-slaves")
                    ));
                }
            }
            if behind.is_empty() {
                Check::Done(())
            } else {
                Check::NotYet(behind.join("; "))
            }
        });
        Ok(())
    }
}
