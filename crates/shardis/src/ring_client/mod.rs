//! Ring mode: a fleet of standalone Redis nodes sharded in-process by `shardis-ring`.
//!
//! Routing reads one immutable [`Snapshot`] (an `ArcSwap` load, no lock): the ring of live
//! nodes, the ring of all members, and — while an online rebalance runs — the rings from
//! before the membership change, so reads that miss on a key's new owner can fall back to its
//! old one. Every change (ejection, re-admission, `add_node`, ...) builds a new snapshot under
//! one writer lock and swaps it in.

mod config;
mod exec;
mod health;
mod membership;
mod pipeline;
mod placement;
mod rebalance;
mod split;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

use arc_swap::ArcSwap;
use redis::{Cmd, Pipeline, Value};

use crate::command::{self, learned::Learned};
use crate::config::Settings;
use crate::error::{Error, Result};
use crate::pool::Pool;
use crate::stats::Stats;

pub(crate) use config::RingConfig;
pub use config::{HealthPolicy, RebalanceOptions, RingNode, RingPlacement};
pub use membership::{MembershipChange, NodeState, RingNodeStatus, RingStatus};
pub use rebalance::{RebalanceHandle, RebalanceProgress, RebalanceReport};

pub(crate) use placement::Routing;
use placement::{Health, Member};

/// What routing reads: immutable, replaced as a whole.
pub(crate) struct Snapshot {
    /// Every member, down or not: where keys belong.
    pub members: Arc<Routing>,
    /// The members commands go to: `members` minus ejected nodes (eject policy).
    pub live: Arc<Routing>,
    /// Rings from before membership changes whose keys are still being moved, newest first.
    pub previous: Vec<Arc<Routing>>,
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
}

/// Counters of ring events (also sent to the `metrics` facade).
#[derive(Debug, Default)]
pub(crate) struct RingCounters {
    pub ejections: AtomicU64,
    pub readmissions: AtomicU64,
    pub fallback_hits: AtomicU64,
    pub keys_moved: AtomicU64,
}

/// Everything ring mode shares between clones of the client.
pub(crate) struct RingState {
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
    learned: Learned,
    next_keyless: AtomicUsize,
    pub closed: AtomicBool,
}

impl Drop for RingState {
    fn drop(&mut self) {
        self.closed.store(true, Ordering::Relaxed);
    }
}

/// How one command is run.
pub(crate) enum Plan {
    /// No keys: any live node.
    Keyless,
    /// All keys on one node; `key` is the first (for fallback and moves).
    Single {
        keys: command::KeyIndices,
        readonly: bool,
    },
    /// Keys on several nodes, and the command can be split.
    Split(command::Split),
}

impl RingState {
    /// Checks every node, builds the first ring and starts the heartbeat.
    pub async fn connect(config: RingConfig, settings: Settings) -> Result<Arc<RingState>> {
        config.validate()?;
        let settings = Arc::new(settings);
        let pool = Pool::new(settings.clone());
        let mut members = Vec::with_capacity(config.nodes.len());
        for node in &config.nodes {
            let endpoint = config::parse_addr(node)?;
            members.push(Arc::new(Member {
                node: node.clone(),
                conn: pool.node(&endpoint),
                health: Arc::new(Health::default()),
            }));
        }
        let all = Arc::new(Routing::build(
            config.placement,
            config.hash_tag,
            members.clone(),
        )?);
        let state = RingState {
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
            learned: Learned::default(),
            next_keyless: AtomicUsize::new(0),
            closed: AtomicBool::new(false),
            config,
        };
        state.check_at_start(&members).await?;
        let state = Arc::new(state);
        tokio::spawn(health::heartbeat(Arc::downgrade(&state)));
        Ok(state)
    }

    /// Sends `cmd` to some live node and returns its reply (for `COMMAND INFO`).
    async fn ask_a_node(&self, cmd: Cmd) -> Option<Value> {
        let member = self.any_live().ok()?;
        self.send(&member, &cmd).await.ok()
    }

    /// Where `cmd` runs, given the current live ring.
    pub async fn plan(&self, cmd: &Cmd, snap: &Snapshot) -> Result<Plan> {
        let args = command::args_of(cmd);
        let name = command::name_of(&args);
        let Some(spec) = self.learned.resolve(&name, |q| self.ask_a_node(q)).await else {
            return Ok(Plan::Keyless);
        };
        let keys = spec.key_indices(&args);
        let Some(&first) = keys.first() else {
            return Ok(Plan::Keyless);
        };
        let owner = snap.live.owner(args[first]);
        let spread = keys[1..]
            .iter()
            .any(|&i| snap.live.owner(args[i]).name() != owner.name());
        match (spread, spec.split) {
            (false, _) => Ok(Plan::Single {
                keys,
                readonly: spec.readonly,
            }),
            (true, Some(split)) => Ok(Plan::Split(split)),
            (true, None) => Err(Error::Unsupported {
                command: name.to_string(),
                reason: "its keys live on different ring nodes; give them one hash tag \
                         (e.g. {user1}) with .ring_hash_tag(*b\"{}\")",
            }),
        }
    }

    /// Runs one command wherever it belongs, within the command deadline (a read that falls
    /// back to an old owner sends up to three requests).
    pub async fn run(&self, cmd: &Cmd) -> Result<Value> {
        let snap = self.snapshot.load_full();
        // One request to one node is already bounded by the connection's stall watchdog: only
        // the plans that take several requests run under a timer.
        match self.plan(cmd, &snap).await? {
            Plan::Keyless => {
                let member = self.any_live()?;
                self.send(&member, cmd).await
            }
            Plan::Single { keys, readonly } => {
                let args = command::args_of(cmd);
                let owner = snap.live.owner(args[keys[0]]).clone();
                if snap.previous.is_empty() {
                    return self.send(&owner, cmd).await;
                }
                self.within_deadline(async {
                    if readonly && keys.len() == 1 {
                        return self
                            .read_with_fallback(&snap, &owner, cmd, args[keys[0]])
                            .await;
                    }
                    let keys: Vec<&[u8]> = keys.iter().map(|&i| args[i]).collect();
                    self.move_before_touch(&snap, &keys).await;
                    self.send(&owner, cmd).await
                })
                .await
            }
            Plan::Split(split) => {
                self.within_deadline(split::run(self, &snap, cmd, split))
                    .await
            }
        }
    }

    /// `work` bounded by the command deadline.
    async fn within_deadline(&self, work: impl Future<Output = Result<Value>>) -> Result<Value> {
        let deadline = self.settings.deadline;
        tokio::time::timeout(deadline, work)
            .await
            .unwrap_or_else(|_| {
                Err(Error::Timeout {
                    deadline,
                    attempts: 1,
                    slot: None,
                    node: None,
                    last: "no reply".into(),
                })
            })
    }

    /// See [`pipeline::run`].
    pub async fn run_pipeline(
        &self,
        pipeline: &Pipeline,
        offset: usize,
        count: usize,
    ) -> Result<Vec<Value>> {
        pipeline::run(self, pipeline, offset, count).await
    }

    /// Runs `cmd` on every live node concurrently; a node marked down fails the call.
    pub async fn on_all_nodes(&self, cmd: &Cmd) -> Result<Vec<(String, Value)>> {
        let snap = self.snapshot.load_full();
        let calls = snap.live.members().iter().map(|member| async move {
            let value = self.send(member, cmd).await?;
            Ok::<_, Error>((member.conn.label().to_string(), value))
        });
        futures::future::try_join_all(calls).await
    }

    /// Ring mode has no redirects or topology refreshes; its own events are in
    /// [`RingStatus`].
    pub fn stats(&self) -> Stats {
        Stats::default()
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
