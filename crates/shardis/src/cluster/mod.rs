//! Redis Cluster mode: the slot-map router.

pub(crate) mod exec;
pub(crate) mod pipeline;
pub(crate) mod refresh;
pub(crate) mod routes;
pub(crate) mod split;
#[cfg(test)]
pub(crate) mod test_support;

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use arc_swap::ArcSwap;
use redis::{Cmd, Value};
use shardis_slots::{Endpoint, key_slot};

use crate::command::{self, learned::Learned};
use crate::config::Settings;
use crate::error::{Error, Result};
use crate::pool::Pool;
use crate::stats::Counters;
use exec::{Request, Target, execute};
use refresh::Refresher;
use routes::Routes;

/// Everything cluster mode shares between clones of the client.
pub(crate) struct ClusterState {
    pub settings: Arc<Settings>,
    pub seeds: Vec<Endpoint>,
    pub pool: Pool,
    pub routes: ArcSwap<Routes>,
    pub refresher: Arc<Refresher>,
    pub stats: Counters,
    /// Key specs learned from `COMMAND INFO` for commands the built-in table lacks.
    learned: Learned,
    pub closed: AtomicBool,
}

impl Drop for ClusterState {
    fn drop(&mut self) {
        self.closed
            .store(true, std::sync::atomic::Ordering::Relaxed);
        self.refresher.wake_for_shutdown();
    }
}

/// How one command will be run.
pub(crate) enum Plan {
    /// On the owner of one slot.
    Slot { slot: u16, read: bool },
    /// On any primary.
    Keyless,
    /// Split per slot and reassembled.
    Split { split: command::Split, name: String },
}

impl ClusterState {
    /// A state with no topology yet.
    pub(crate) fn new(settings: Arc<Settings>, seeds: Vec<Endpoint>) -> ClusterState {
        ClusterState {
            pool: Pool::new(settings.clone()),
            settings,
            seeds,
            routes: ArcSwap::from_pointee(Routes::empty()),
            refresher: Arc::new(Refresher::new()),
            stats: Counters::default(),
            learned: Learned::default(),
            closed: AtomicBool::new(false),
        }
    }

    /// Connects to the seeds, loads the first topology and starts the refresher.
    pub async fn connect(seeds: &[String], settings: Settings) -> Result<Arc<ClusterState>> {
        let mut endpoints = Vec::new();
        for seed in seeds {
            let endpoint = Endpoint::parse(seed)
                .map_err(|e| Error::Config(format!("seed {seed:?} is not host:port: {e}")))?;
            endpoints.push(endpoint);
        }
        let settings = Arc::new(settings);
        let state = ClusterState::new(settings.clone(), endpoints);
        let refresher = state.refresher.clone();
        let connect = refresh::load(&state, None, 0);
        let map = match tokio::time::timeout(
            settings.connect_timeout * 2 + settings.response_timeout,
            connect,
        )
        .await
        {
            Ok(Ok(map)) => map,
            Ok(Err(e)) => return Err(e),
            Err(_) => {
                return Err(Error::NoSeedReachable {
                    seeds: seeds.to_vec(),
                    errors: vec![format!(
                        "no usable answer within {:?}",
                        settings.connect_timeout * 2 + settings.response_timeout
                    )],
                });
            }
        };
        state.routes.store(Arc::new(Routes::new(map, &state.pool)));
        let state = Arc::new(state);
        tokio::spawn(refresh::run(Arc::downgrade(&state), refresher));
        Ok(state)
    }

    /// Sends `cmd` to some primary and returns its reply (for `COMMAND INFO`).
    async fn ask_a_primary(&self, cmd: Cmd) -> Option<Value> {
        let node = self.routes.load().primaries().first()?.clone();
        let conn = node.connection().await.ok()?;
        let reply = tokio::time::timeout(self.settings.response_timeout, conn.send(&cmd));
        reply.await.ok()?.ok()
    }

    /// Decides where `cmd` runs. Cross-slot commands that cannot be split are refused here,
    /// before anything is sent.
    pub async fn plan(&self, cmd: &Cmd) -> Result<Plan> {
        let args = command::args_of(cmd);
        let name = command::name_of(&args);
        // Unknown to us and to the server's COMMAND INFO: send it to a primary; a keyed command
        // will be redirected to its owner.
        let Some(spec) = self.learned.resolve(&name, |q| self.ask_a_primary(q)).await else {
            return Ok(Plan::Keyless);
        };
        let keys = spec.key_indices(&args);
        let Some(&first) = keys.first() else {
            return Ok(Plan::Keyless);
        };
        let slot = key_slot(args[first]);
        let mut other = None;
        for &i in &keys[1..] {
            let s = key_slot(args[i]);
            if s != slot {
                other = Some(s);
                break;
            }
        }
        match (other, spec.split) {
            (None, _) => Ok(Plan::Slot {
                slot,
                read: spec.readonly,
            }),
            (Some(_), Some(split)) => Ok(Plan::Split {
                split,
                name: name.to_string(),
            }),
            (Some(other), None) => Err(Error::CrossSlot {
                command: name.to_string(),
                slots: vec![slot, other],
            }),
        }
    }

    /// Runs one command wherever it belongs.
    pub async fn run(&self, cmd: &Cmd) -> Result<Value> {
        match self.plan(cmd).await? {
            Plan::Slot { slot, read } => {
                execute(self, Request::Cmd(cmd), Target::Slot { slot, read }, read).await
            }
            Plan::Keyless => execute(self, Request::Cmd(cmd), Target::AnyPrimary, false).await,
            Plan::Split { split, name } => split::run(self, cmd, split, &name).await,
        }
    }
}

impl Routes {
    /// A snapshot with no slots: only used until the first topology is loaded.
    pub(crate) fn empty() -> Self {
        Routes {
            map: shardis_slots::SlotMap::new(shardis_slots::Topology::empty()),
            shards: Vec::new(),
        }
    }
}
