//! Ring mode: a fleet of standalone Redis nodes sharded in-process by `shardis-ring`.
//!
//! RingTable reads one immutable [`Snapshot`] (an `ArcSwap` load, no lock): the ring of live
//! nodes, the ring of all members, and — while an online rebalance runs — the rings from
//! before the membership change, so a command on a key that moves first moves it from its old
//! owner. Every change (ejection, re-admission, `add_node`, ...) builds a new snapshot under
//! one writer lock and swaps it in.

mod config;
mod health;
mod membership;
mod placement;
mod readmit;
mod rebalance;
mod send;
mod sentinel;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

use arc_swap::ArcSwap;
use redis::{Cmd, Pipeline, Value};

use crate::engine::{BatchFailed, Keys, Request, Router, Shards, Target, View};
use crate::error::{Error, Result};
use crate::net::Pool;
use crate::settings::Settings;

pub(crate) use config::RingConfig;
pub use config::{HealthPolicy, RebalanceOptions, RingNode, RingPlacement};
pub use membership::{MembershipChange, NodeState, RingNodeStatus, RingStatus};
pub use rebalance::{RebalanceHandle, RebalanceProgress, RebalanceReport};

pub(crate) use placement::RingTable;
use placement::{Health, Member};

/// What routing reads: immutable, replaced as a whole.
pub(crate) struct Snapshot {
    /// Every member, down or not: where keys belong.
    pub members: Arc<RingTable>,
    /// The members commands go to: `members` minus ejected nodes (eject policy).
    pub live: Arc<RingTable>,
    /// Rings from before membership changes whose keys are still being moved, newest first.
    pub previous: Vec<Arc<RingTable>>,
    /// Bumped by every membership change (not by ejections).
    pub epoch: u64,
}

impl Snapshot {
    /// The owners `key` had in rings still being rebalanced, other than `current`, newest
    /// first and without repeats.
    pub fn previous_owners(&self, key: &[u8], current: &Member) -> Vec<Arc<Member>> {
        let mut out: Vec<Arc<Member>> = Vec::new();
        for ring in &self.previous {
            let owner = ring.owner(key);
            if owner.name() != current.name() && out.iter().all(|m| m.name() != owner.name()) {
                out.push(owner.clone());
            }
        }
        out
    }

    /// Whether a copy of `key` found on node `name` is one routing may still read: `name` owns
    /// the key (in the ring of all members), stands in for its ejected owner (in the live
    /// ring), or owned it in a ring still being rebalanced. Anything else is a leftover — a
    /// copy a stand-in kept after its owner was re-admitted, or a key a cancelled rebalance
    /// left behind — and is removed, never moved over its owner's newer state.
    pub fn belongs_on(&self, key: &[u8], name: &str) -> bool {
        self.members.owner(key).name() == name
            || self.live.owner(key).name() == name
            || self.previous.iter().any(|r| r.owner(key).name() == name)
    }
}

/// Counters of ring events (also sent to the `metrics` facade).
#[derive(Debug, Default)]
pub(crate) struct RingCounters {
    pub ejections: AtomicU64,
    pub readmissions: AtomicU64,
    pub fallback_hits: AtomicU64,
    pub keys_moved: AtomicU64,
    pub leftovers_removed: AtomicU64,
}

/// Everything ring mode shares between clones of the client.
pub(crate) struct RingRouter {
    pub settings: Arc<Settings>,
    pub config: RingConfig,
    pub pool: Pool,
    pub snapshot: ArcSwap<Snapshot>,
    /// Serialises snapshot writers (health transitions, membership changes); never held
    /// across an await.
    pub write: parking_lot::Mutex<()>,
    /// Serialises membership changes, which wait for a running rebalance to stop.
    pub membership: tokio::sync::Mutex<Option<Arc<rebalance::Shared>>>,
    pub counters: RingCounters,
    /// Per-key locks, striped, so a move by the rebalancer and a move-on-write of the same
    /// key never interleave.
    pub key_locks: Box<[tokio::sync::Mutex<()>]>,
    /// Round-robin position for keyless commands.
    next_keyless: AtomicUsize,
    pub closed: AtomicBool,
    /// The nodes whose addresses Sentinel gives, if any.
    pub sentinel: Option<sentinel::SentinelShards>,
}

impl Drop for RingRouter {
    fn drop(&mut self) {
        self.closed.store(true, Ordering::Relaxed);
        if let Some(shards) = &self.sentinel {
            shards.recheck.wake_for_shutdown();
        }
    }
}

impl RingRouter {
    /// Checks every node, builds the first ring and starts the heartbeat.
    pub async fn connect(mut config: RingConfig, settings: Settings) -> Result<Arc<RingRouter>> {
        config.validate()?;
        let settings = Arc::new(settings);
        let pool = Pool::new(settings.clone());
        let sentinel = sentinel::SentinelShards::new(&config, &settings);
        if let Some(shards) = &sentinel {
            shards.resolve(&mut config.nodes, &pool).await?;
            config::validate_nodes(&config.nodes)?;
        }
        let mut members = Vec::with_capacity(config.nodes.len());
        for node in &config.nodes {
            let endpoint = config::parse_addr(node)?;
            members.push(Arc::new(Member {
                node: node.clone(),
                server: pool.node(&endpoint),
                health: Arc::new(Health::default()),
            }));
        }
        let all = Arc::new(RingTable::build(&config, members.clone())?);
        let state = RingRouter {
            settings,
            pool,
            snapshot: ArcSwap::from_pointee(Snapshot {
                members: all.clone(),
                live: all,
                previous: Vec::new(),
                epoch: 0,
            }),
            write: parking_lot::Mutex::new(()),
            membership: tokio::sync::Mutex::new(None),
            counters: RingCounters::default(),
            key_locks: (0..256).map(|_| tokio::sync::Mutex::new(())).collect(),
            next_keyless: AtomicUsize::new(0),
            closed: AtomicBool::new(false),
            sentinel,
            config,
        };
        state.check_at_start(&members).await?;
        let state = Arc::new(state);
        tokio::spawn(health::heartbeat(Arc::downgrade(&state)));
        if let Some(shards) = &state.sentinel {
            shards.start(&state);
        }
        Ok(state)
    }

    /// A live node for a keyless command, round-robin, skipping nodes marked down.
    fn any_live(&self) -> Result<Arc<Member>> {
        let snap = self.snapshot.load();
        let members = snap.live.members();
        let start = self.next_keyless.fetch_add(1, Ordering::Relaxed);
        (0..members.len())
            .map(|k| &members[(start + k) % members.len()])
            .find(|m| !m.health.is_down())
            .cloned()
            .ok_or_else(|| Error::NodeDown {
                node: members
                    .iter()
                    .map(|m| m.name())
                    .collect::<Vec<_>>()
                    .join(", "),
            })
    }

    /// The lock of `key`'s stripe.
    pub fn key_lock(&self, key: &[u8]) -> &tokio::sync::Mutex<()> {
        let i = shardis_ring::hash::xxh3(key) as usize % self.key_locks.len();
        &self.key_locks[i]
    }
}

impl Shards for Arc<Snapshot> {
    /// The index of the owner in the live ring.
    type Shard = usize;

    fn shard_of(&self, key: &[u8]) -> usize {
        self.live.owner_index(key)
    }

    fn spread_error(&self, command: &str, _a: usize, _b: usize) -> Error {
        tracing::debug!(command, "keys on several ring nodes");
        let reason = if command.starts_with("MULTI") {
            "a transaction's keys must all live on one ring node; give them one hash tag"
        } else {
            "its keys live on different ring nodes; give them one hash tag \
             (e.g. {user1}) with .ring_hash_tag(*b\"{}\")"
        };
        Error::Unsupported {
            command: command.split(' ').next().unwrap_or(command).to_string(),
            reason,
        }
    }
}

impl View for Arc<Snapshot> {
    type Node = usize;

    fn node_of(&self, shard: usize, _read: bool) -> Option<usize> {
        Some(shard)
    }

    fn fan_out_nodes(&self, _replicas: bool) -> Vec<usize> {
        (0..self.live.members().len()).collect()
    }

    fn node_label(&self, node: &usize) -> String {
        match self.live.members().get(*node) {
            Some(member) => member.server.label().to_string(),
            None => format!("ring member #{node}"),
        }
    }

    fn epoch(&self) -> u64 {
        // Membership changes bump the epoch; ejections change the live ring.
        let live = self.live.members().iter().fold(0u64, |h, m| {
            h.rotate_left(5) ^ shardis_ring::hash::xxh3(m.name().as_bytes())
        });
        self.epoch ^ live
    }

    fn server(&self, node: &usize) -> Option<Arc<crate::net::Node>> {
        self.live.members().get(*node).map(|m| m.server.clone())
    }
}

impl RingRouter {
    /// The live member at `index` of the snapshot's live ring.
    fn live_member(snap: &Snapshot, index: usize) -> Result<Arc<Member>> {
        snap.live
            .members()
            .get(index)
            .cloned()
            .ok_or_else(|| Error::protocol("ring", format!("no live member #{index}")))
    }

    /// [`Router::execute`] past its common case: a keyless command, keys moving in a
    /// rebalance, or an owner missing from the snapshot (an error).
    async fn execute_rest(
        &self,
        snap: &Snapshot,
        request: Request<'_>,
        target: Target<'_, usize>,
    ) -> Result<Value> {
        let (shard, read, keys) = match target {
            Target::Any => {
                let member = self.any_live()?;
                return self.send_request(&member, request).await;
            }
            Target::Keyed {
                shard, read, keys, ..
            } => (shard, read, keys),
        };
        // A settled ring's keyed commands never come here (`execute` sends them at once).
        let owner = RingRouter::live_member(snap, shard)?;
        if request.is_blocking() {
            // Bounded by its own timeout, not the client's deadline.
            Box::pin(self.move_before_touch(snap, keys)).await;
            return self.send_request(&owner, request).await;
        }
        // Keys are moving: every command, read or write, first moves its keys to their new
        // owner, so all commands on a key see one owner (a read fallback would need to know
        // what "absent" looks like for every command: EXISTS 0, TTL -2, TYPE none, STRLEN 0).
        Box::pin(self.within_deadline(async {
            let found = self.move_before_touch(snap, keys).await;
            if read && found > 0 {
                self.counters
                    .fallback_hits
                    .fetch_add(found, Ordering::Relaxed);
                metrics::counter!("shardis_ring_fallback_hits_total").increment(found);
            }
            self.send_request(&owner, request).await
        }))
        .await
    }

    /// `work` bounded by the command deadline.
    async fn within_deadline<T>(&self, work: impl Future<Output = Result<T>>) -> Result<T> {
        let deadline = self.settings.deadline;
        tokio::time::timeout(deadline, work)
            .await
            .unwrap_or_else(|_| Err(Error::timeout(deadline, 1, None, None, "no reply")))
    }
}

impl Router for Arc<RingRouter> {
    type Shards = Arc<Snapshot>;
    type View = Arc<Snapshot>;

    fn shards(&self) -> Arc<Snapshot> {
        self.snapshot.load_full()
    }

    fn shards_in(view: &Arc<Snapshot>) -> Arc<Snapshot> {
        view.clone()
    }

    fn view(&self) -> Arc<Snapshot> {
        self.snapshot.load_full()
    }

    async fn ask_any(&self, cmd: Cmd) -> Option<Value> {
        let member = self.any_live().ok()?;
        self.send(&member, &cmd).await.ok()
    }

    fn execute(
        &self,
        snap: &Arc<Snapshot>,
        request: Request<'_>,
        target: Target<'_, usize>,
    ) -> impl Future<Output = Result<Value>> + Send {
        // The common case, one request to the owner in a ring whose keys are not moving, is
        // `send_request`'s future itself (not an `async fn` around it: no layer of state on
        // every command); the rest, keyless commands included, is boxed.
        use futures::future::Either;
        if let Target::Keyed { shard, .. } = target
            && snap.previous.is_empty()
            && let Some(owner) = snap.live.members().get(shard)
        {
            // One request to one node: already bounded by the connection's stall watchdog.
            return Either::Left(self.send_request(owner, request));
        }
        Either::Right(Box::pin(self.execute_rest(snap, request, target)))
    }

    async fn execute_batch(
        &self,
        snap: &Arc<Snapshot>,
        node: &usize,
        pipeline: &Pipeline,
        keys: &[&[u8]],
    ) -> Result<Vec<Value>, BatchFailed> {
        let member = RingRouter::live_member(snap, *node)?;
        // A node that is down or cannot be connected to got nothing: each command then runs
        // on its own, under the same rules as a single command.
        if member.health.is_down() {
            return Err(BatchFailed::unsent(Error::NodeDown {
                node: member.name().to_string(),
            }));
        }
        member.server.admit().await.map_err(BatchFailed::unsent)?;
        if member.server.ready_connection().is_none() {
            member
                .server
                .connection()
                .await
                .map_err(BatchFailed::unsent)?;
        }
        if !snap.previous.is_empty() {
            // Bring this batch's moving keys over first: the batch then runs unchanged, in
            // order, on the new owner.
            self.move_before_touch(snap, Keys::List(keys)).await;
        }
        Ok(self
            .send_pipeline(&member, pipeline, 0, pipeline.len())
            .await?)
    }

    async fn execute_on(&self, snap: &Arc<Snapshot>, node: &usize, cmd: &Cmd) -> Result<Value> {
        let member = RingRouter::live_member(snap, *node)?;
        self.send(&member, cmd).await
    }

    async fn keys_moving(&self, snap: &Arc<Snapshot>) -> bool {
        !snap.previous.is_empty()
    }

    fn needs_rerun(&self, _reply: &Value) -> bool {
        // Standalone nodes never redirect.
        false
    }
}

#[cfg(test)]
mod tests {
    use shardis_slots::Endpoint;

    use super::*;

    /// Members `a`, `b`, `c` (no connection is opened).
    fn members() -> (RingConfig, Vec<Arc<Member>>) {
        let pool = Pool::new(Arc::new(Settings::default()));
        let members: Vec<Arc<Member>> = ["a", "b", "c"]
            .iter()
            .zip(7000u16..)
            .map(|(name, port)| {
                Arc::new(Member {
                    node: RingNode::new(*name, format!("127.0.0.1:{port}"), 1),
                    server: pool.node(&Endpoint::new("127.0.0.1", port)),
                    health: Arc::new(Health::default()),
                })
            })
            .collect();
        let config = RingConfig::new(members.iter().map(|m| m.node.clone()).collect());
        (config, members)
    }

    fn snapshot(
        members: &Arc<RingTable>,
        live: &Arc<RingTable>,
        previous: &[&Arc<RingTable>],
    ) -> Snapshot {
        Snapshot {
            members: members.clone(),
            live: live.clone(),
            previous: previous.iter().map(|r| (*r).clone()).collect(),
            epoch: 0,
        }
    }

    #[test]
    fn a_copy_belongs_on_its_owner_its_stand_in_or_a_previous_owner_only() {
        let (config, members) = members();
        let all = Arc::new(RingTable::build(&config, members.clone()).expect("ring"));
        let without_b = Arc::new(
            RingTable::build(&config, vec![members[0].clone(), members[2].clone()]).expect("ring"),
        );
        let key = (0..)
            .map(|i| format!("k{i}"))
            .find(|k| all.owner(k.as_bytes()).name() == "b")
            .expect("a key of b");
        let key = key.as_bytes();
        let stand_in = without_b.owner(key).name().to_string();
        let third = if stand_in == "a" { "c" } else { "a" };

        let steady = snapshot(&all, &all, &[]);
        assert!(steady.belongs_on(key, "b"));
        // After a re-admission, the stand-in's copy is a leftover.
        assert!(!steady.belongs_on(key, &stand_in));
        assert!(!steady.belongs_on(key, third));

        // While b is ejected, its stand-in serves the key.
        let ejected = snapshot(&all, &without_b, &[]);
        assert!(ejected.belongs_on(key, &stand_in));
        assert!(!ejected.belongs_on(key, third));

        // While a membership change is rebalanced, the previous owner still holds it.
        let rebalancing = snapshot(&all, &all, &[&without_b]);
        assert!(rebalancing.belongs_on(key, &stand_in));
        assert!(!rebalancing.belongs_on(key, third));
    }
}
