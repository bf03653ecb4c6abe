//! Polling until the cluster reaches a state, never sleeping for a fixed time.

use std::time::{Duration, Instant};

use redis::Value;

use crate::cluster::Cluster;
use crate::error::{Result, TestkitError};
use crate::node::Node;
use crate::topology::{SlotMap, cluster_info_field, parse_cluster_slots, short};

/// Poll interval: short enough to measure failovers to ~25 ms, long enough not to load
/// the nodes.
const INTERVAL: Duration = Duration::from_millis(25);
/// Per-command bound inside polls, so that one hung node cannot stall the whole wait.
pub(crate) const POLL_COMMAND_TIMEOUT: Duration = Duration::from_secs(1);

/// The outcome of one poll: done, or not yet (with what was seen, for the timeout error).
pub(crate) enum Check<T> {
    Done(T),
    NotYet(String),
}

/// The deadline of one wait. Polls are plain loops that call [`Deadline::retry`] when the
/// condition does not hold yet (a closure-taking helper would make the futures non-`Send`
/// through higher-ranked lifetimes, and callers spawn them).
pub(crate) struct Deadline {
    what: String,
    started: Instant,
    timeout: Duration,
}

impl Deadline {
    pub(crate) fn new(what: impl Into<String>, timeout: Duration) -> Self {
        Deadline {
            what: what.into(),
            started: Instant::now(),
            timeout,
        }
    }

    /// Sleeps one interval, or fails with `last_state` once the deadline has passed.
    pub(crate) async fn retry(&self, last_state: String) -> Result<()> {
        if self.started.elapsed() >= self.timeout {
            tracing::warn!(what = %self.what, %last_state, "testkit wait timed out");
            return Err(TestkitError::Timeout {
                what: self.what.clone(),
                waited: self.started.elapsed(),
                last_state,
            });
        }
        tokio::time::sleep(INTERVAL).await;
        Ok(())
    }
}

/// Re-evaluates `$check` (an expression of type `Check<T>`; hard errors leave through `?`
/// inside it) until it is done, evaluating to `T`; needs a `Result`-returning caller.
macro_rules! poll {
    ($deadline:expr, $check:expr) => {{
        let deadline = $deadline;
        loop {
            match $check {
                $crate::wait::Check::Done(value) => break value,
                $crate::wait::Check::NotYet(state) => deadline.retry(state).await?,
            }
        }
    }};
}
pub(crate) use poll;

/// One node's view of the cluster.
pub(crate) struct View {
    pub(crate) node: Node,
    pub(crate) state: String,
    pub(crate) map: SlotMap,
}

impl Cluster {
    /// `CLUSTER SLOTS` of one node, parsed.
    pub(crate) async fn slot_map(&self, node: &Node) -> Result<SlotMap> {
        let reply: Value = self
            .fleet
            .query_within(
                node,
                redis::cmd("CLUSTER").arg("SLOTS"),
                POLL_COMMAND_TIMEOUT,
            )
            .await?;
        parse_cluster_slots(&reply)
            .map_err(|d| TestkitError::reply(format!("CLUSTER SLOTS on {}", node.addr()), d))
    }

    /// The views of `nodes`; nodes that failed to answer are described in the error text.
    pub(crate) async fn observe(&self, nodes: &[Node]) -> std::result::Result<Vec<View>, String> {
        let mut views = Vec::with_capacity(nodes.len());
        let mut problems = Vec::new();
        for node in nodes {
            let info = self
                .fleet
                .query_within::<String>(
                    node,
                    redis::cmd("CLUSTER").arg("INFO"),
                    POLL_COMMAND_TIMEOUT,
                )
                .await;
            let map = self.slot_map(node).await;
            match (info, map) {
                (Ok(info), Ok(map)) => {
                    let state = cluster_info_field(&info, "cluster_state")
                        .unwrap_or("?")
                        .to_string();
                    views.push(View {
                        node: node.clone(),
                        state,
                        map,
                    });
                }
                (Err(e), _) | (_, Err(e)) => problems.push(format!("{}: {e}", node.addr())),
            }
        }
        if problems.is_empty() {
            Ok(views)
        } else {
            Err(problems.join("; "))
        }
    }

    /// Whether all live nodes are `cluster_state:ok`, agree on slot owners, and every owner
    /// is a running node; `extra` adds a condition on the agreed map.
    pub(crate) async fn check_stable(
        &self,
        extra: impl Fn(&SlotMap) -> Option<String>,
    ) -> Result<Check<SlotMap>> {
        let live: Vec<Node> = self.fleet.live().into_iter().cloned().collect();
        if live.is_empty() {
            return Err(TestkitError::InvalidArgument(
                "no node of the cluster is running".into(),
            ));
        }
        let views = match self.observe(&live).await {
            Ok(views) => views,
            Err(problems) => return Ok(Check::NotYet(problems)),
        };
        let dump = || describe(&views);
        if views.iter().any(|v| v.state != "ok") {
            return Ok(Check::NotYet(format!("not every node is ok: {}", dump())));
        }
        if views
            .windows(2)
            .any(|w| w[0].map.owners() != w[1].map.owners())
        {
            return Ok(Check::NotYet(format!(
                "nodes disagree on slot owners: {}",
                dump()
            )));
        }
        let map = &views[0].map;
        if let Some(dead) = map.0.iter().find(|r| {
            !self
                .fleet
                .by_id(&r.primary)
                .is_some_and(|n| self.fleet.is_live(n))
        }) {
            return Ok(Check::NotYet(format!(
                "slots {}-{} are owned by {}, which is not running: {}",
                dead.start,
                dead.end,
                short(&dead.primary),
                dump()
            )));
        }
        if let Some(problem) = extra(map) {
            return Ok(Check::NotYet(format!("{problem}: {}", dump())));
        }
        Ok(Check::Done(map.clone()))
    }

    /// Waits until every running node (neither killed nor paused) reports
    /// `cluster_state:ok`, all of them agree on which primary owns each slot, and every
    /// owner is itself running. Use after [`kill`](Self::kill), [`pause`](Self::pause),
    /// [`restart`](Self::restart), resharding, or anything else that changes the topology.
    pub async fn wait_stable(&self) -> Result<()> {
        poll!(
            Deadline::new("the cluster to be stable", self.fleet.timeout),
            self.check_stable(|_| None).await?
        );
        Ok(())
    }

    /// Waits until the slots of `dead_primary` (killed or paused) have been taken over: a
    /// replica was promoted, and every running node reports `cluster_state:ok` and agrees on
    /// the new owners (as [`wait_stable`](Self::wait_stable)), with no slot left on
    /// `dead_primary`. Returns the new primary of the first of its slots when that can be
    /// told (i.e. when it still owned slots as this call began), else `None`.
    pub async fn wait_for_failover_of(&self, dead_primary: &Node) -> Result<Option<Node>> {
        let before = self.agreed_owner_view(dead_primary).await;
        let what = format!("a replica to take over from {}", dead_primary.addr());
        let map = poll!(
            Deadline::new(what, self.fleet.timeout),
            self.check_stable(|map| {
                let left = map.slots_of(&dead_primary.id);
                (!left.is_empty()).then(|| format!("{} still owns {left:?}", dead_primary.addr()))
            })
            .await?
        );
        Ok(before
            .and_then(|slot| map.owner(slot))
            .and_then(|id| self.fleet.by_id(id))
            .cloned())
    }

    /// One slot `node` owns in some running node's view, if any.
    async fn agreed_owner_view(&self, node: &Node) -> Option<u16> {
        for live in self.fleet.live() {
            if let Ok(map) = self.slot_map(live).await {
                return map.slots_of(&node.id).first().map(|(start, _)| *start);
            }
        }
        None
    }
}

/// `127.0.0.1:P state [ranges]` per view, for error messages.
pub(crate) fn describe(views: &[View]) -> String {
    views
        .iter()
        .map(|v| format!("{} {} {}", v.node.addr(), v.state, v.map))
        .collect::<Vec<_>>()
        .join("; ")
}
