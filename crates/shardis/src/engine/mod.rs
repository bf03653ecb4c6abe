//! The routing engine: one implementation, for every deployment, of what happens to a command
//! between the [`Client`](crate::Client) and a node.
//!
//! The engine plans each command once ([`plan`]: its keys, whether it reads, which shard), splits
//! multi-key commands whose keys span shards ([`split`]), groups pipelines per node and keeps
//! their order ([`pipeline`]), checks that a transaction stays on one shard ([`transaction`]),
//! fans out to every node ([`fanout`]) and reassembles replies. What differs between
//! deployments is behind the small [`Router`] trait:
//!
//! | router | shard | one request reaches its node by |
//! |---|---|---|
//! | [`cluster::ClusterRouter`](crate::cluster::ClusterRouter) | a slot | the slot map, following `MOVED`/`ASK` and retrying per [`cluster::redirect`](crate::cluster::redirect) |
//! | [`ring_router::RingRouter`](crate::ring_router::RingRouter) | a ring member | the hash ring, with health accounting and the rebalance hooks |
//!
//! The engine never talks to a socket itself: routers do, through [`crate::net`].
//!
//! **Future sizes.** An `async fn`'s future holds the state of every `.await` in it (the
//! largest at once), and a future of several kilobytes is copied and initialised on every
//! command. So the common path of one command (plan, route, send on an open connection, a
//! final reply) awaits only small futures, and every rare path (a blocking command, a split,
//! a fan-out, asking a server about an unknown command, opening a connection, a breaker
//! probe, a redirect's wait, keys moving in a ring) is awaited through `Box::pin`: an
//! allocation on that path only. Layers cost too: an `async fn` that only awaits another
//! future keeps its own arguments beside it, so a command is planned without awaiting
//! ([`Engine::run`]) and the routers' `execute` are plain functions returning the common
//! path's future.

pub(crate) mod fanout;
pub(crate) mod pipeline;
pub(crate) mod plan;
pub(crate) mod request;
pub(crate) mod scan;
pub(crate) mod split;
pub(crate) mod transaction;

use std::fmt::Debug;
use std::future::Future;
use std::hash::Hash;

use redis::{Cmd, Pipeline, Value};

use crate::command::class::{self, Class};
use crate::command::learned::Learned;
use crate::error::Result;
pub(crate) use plan::Plan;
pub(crate) use request::{Keys, Request, Target};

/// Why a per-node batch failed, and whether any of it may have been written.
#[derive(Debug)]
pub(crate) struct BatchFailed {
    pub error: crate::error::Error,
    /// Nothing of the batch was written (the node refused it before sending, or no
    /// connection could be had): each command may run again, writes included.
    pub unsent: bool,
}

impl From<crate::error::Error> for BatchFailed {
    fn from(error: crate::error::Error) -> Self {
        BatchFailed {
            error,
            unsent: false,
        }
    }
}

impl BatchFailed {
    /// Failed before anything was written.
    pub fn unsent(error: crate::error::Error) -> Self {
        BatchFailed {
            error,
            unsent: true,
        }
    }
}

/// Key → shard: all that planning one command needs of a routing snapshot.
///
/// Separate from [`View`] because it can be free: a cluster's shard (a slot) is CRC16 of the
/// key whatever the map says, so a single command takes no reference to the slot map (a
/// reference count shared by every task is a cache line two cores fight over, measured as a
/// visible share of a command's cost). A ring's shard is a member of one ring snapshot, so its
/// `Shards` is that snapshot.
pub(crate) trait Shards: Send + Sync + 'static {
    /// The unit one command may not span: a slot (cluster) or a ring member (ring). Keys of
    /// one shard may share a command.
    type Shard: Copy + Eq + Ord + Hash + Debug + Send + Sync;

    /// The shard of `key`.
    fn shard_of(&self, key: &[u8]) -> Self::Shard;

    /// The refusal of a command whose keys span shards and which cannot be split.
    fn spread_error(&self, command: &str, a: Self::Shard, b: Self::Shard) -> crate::Error;
}

/// An immutable routing snapshot, loaded once per pipeline, fan-out or scan pass so that every
/// part of one call is routed against the same topology.
pub(crate) trait View: Shards {
    /// A node that commands of several shards may share a pipeline to.
    type Node: Clone + Eq + Hash + Send + Sync;

    /// The node that serves `shard` now (`read`: a replica may serve it); `None` when no node
    /// is known.
    fn node_of(&self, shard: Self::Shard, read: bool) -> Option<Self::Node>;

    /// The nodes a fan-out reaches: every primary, or with `replicas` every node.
    fn fan_out_nodes(&self, replicas: bool) -> Vec<Self::Node>;

    /// A node's name for errors and fan-out replies.
    fn node_label(&self, node: &Self::Node) -> String;

    /// The server behind `node`, for a dedicated connection.
    fn server(&self, node: &Self::Node) -> Option<std::sync::Arc<crate::net::Node>>;

    /// A number that changes whenever the topology changes (which node owns what).
    fn epoch(&self) -> u64;
}

/// The shard type of a router's view.
pub(crate) type ShardOf<R> = <<R as Router>::Shards as Shards>::Shard;
/// The node type of a router's view.
pub(crate) type NodeOf<R> = <<R as Router>::View as View>::Node;

/// One deployment's way of reaching nodes. Everything else is the engine's.
pub(crate) trait Router: Send + Sync + 'static {
    /// Key → shard for one command (see [`Shards`]).
    type Shards: Shards;
    /// The routing snapshot.
    type View: View<Shard = ShardOf<Self>>;

    /// Key → shard now, for planning and running one command.
    fn shards(&self) -> Self::Shards;

    /// The key → shard part of `view`, for running one of its commands on its own.
    fn shards_in(view: &Self::View) -> Self::Shards;

    /// The current snapshot.
    fn view(&self) -> Self::View;

    /// Sends `cmd` to some node and returns its reply, for `COMMAND INFO`.
    fn ask_any(&self, cmd: Cmd) -> impl Future<Output = Option<Value>> + Send;

    /// Runs one request on the node of `target`, with this deployment's redirects, retries,
    /// health accounting and deadline.
    fn execute(
        &self,
        shards: &Self::Shards,
        request: Request<'_>,
        target: Target<'_, ShardOf<Self>>,
    ) -> impl Future<Output = Result<Value>> + Send;

    /// Sends `pipeline` (commands that all route to `node`; `keys` are theirs) as one write
    /// and returns one reply per command. A reply for which [`Router::needs_rerun`] holds is
    /// run again on its own; an `Err` fails the batch: when nothing of it was written
    /// ([`BatchFailed::unsent`]) every command runs again on its own (so it waits or fails
    /// exactly as it would alone), else only its reads do.
    fn execute_batch(
        &self,
        view: &Self::View,
        node: &NodeOf<Self>,
        pipeline: &Pipeline,
        keys: &[&[u8]],
    ) -> impl Future<Output = Result<Vec<Value>, BatchFailed>> + Send;

    /// Sends `cmd` to `node` once (a fan-out part).
    fn execute_on(
        &self,
        view: &Self::View,
        node: &NodeOf<Self>,
        cmd: &Cmd,
    ) -> impl Future<Output = Result<Value>> + Send;

    /// Whether keys are moving between nodes now (a slot migrating, a ring rebalancing): a
    /// whole-keyspace scan then needs another pass. Brings the router's view up to date first
    /// (a cluster reloads its slot map), so a move that already finished shows in the next
    /// [`Router::view`].
    fn keys_moving(&self, view: &Self::View) -> impl Future<Output = bool> + Send;

    /// Whether a reply inside a pipeline means "this command did not run there; run it again
    /// through [`Router::execute`]" (a redirect, a retryable cluster state).
    fn needs_rerun(&self, reply: &Value) -> bool;
}

/// The engine over one router. Cheap to share: the client holds it in an `Arc`.
pub(crate) struct Engine<R> {
    pub router: R,
    /// Key specs learned from the servers for commands the built-in table lacks.
    learned: Learned,
}

impl<R: Router> Engine<R> {
    pub fn new(router: R) -> Self {
        Engine {
            router,
            learned: Learned::default(),
        }
    }

    /// Runs one command wherever it belongs; refuses, before sending anything, a command
    /// that would leave state on a shared connection (see [`crate::command::class`]). With
    /// `primary_reads`, a read goes to a primary even under a replica
    /// [`ReadFrom`](crate::ReadFrom) (a pipeline's read after its own write).
    pub(crate) async fn run(&self, cmd: &Cmd, primary_reads: bool) -> Result<Value> {
        let shards = self.router.shards();
        // Planned without awaiting in the common case (a command whose spec is known), so
        // that the argument list, the name and the plan do not all sit in this future's state
        // beside the router's (see the module docs on future sizes).
        let plan = match self.plan_now(&shards, cmd) {
            Some(plan) => plan?,
            None => return Box::pin(self.run_rest(&shards, cmd, primary_reads)).await,
        };
        // One shard (or any node): the router's future awaited here, not inside
        // `run_planned`'s, whose state would hold a second copy of the plan around it.
        let request = Request::Cmd(cmd);
        match &plan {
            Plan::Keyless => self.router.execute(&shards, request, Target::Any).await,
            Plan::Keyed { shard, read, keys } => {
                let target = keyed(*shard, *read, primary_reads, cmd, keys);
                self.router.execute(&shards, request, target).await
            }
            Plan::Fanout(_) | Plan::Split(_) => {
                Box::pin(async {
                    let args = crate::command::args_of(cmd);
                    self.run_planned(&shards, cmd, &args, plan, primary_reads)
                        .await
                })
                .await
            }
        }
    }

    /// The plan of a shared command whose spec is known, or its refusal; `None` for the
    /// rest ([`Engine::run_rest`]: a blocking command, a command to ask a server about).
    #[inline]
    fn plan_now(&self, shards: &R::Shards, cmd: &Cmd) -> Option<Result<Plan<ShardOf<R>>>> {
        let args = crate::command::args_of(cmd);
        let name = crate::command::name_of(&args);
        match class::class_of(&name, &args) {
            Class::Shared => plan::plan_known(self, shards, &args, &name),
            Class::Blocking { .. } => None,
            Class::Refused { alternative } => Some(Err(refusal(&args, alternative))),
        }
    }

    /// [`Engine::run`] of a command [`Engine::plan_now`] left: a blocking command, or one
    /// whose spec a server is asked for.
    async fn run_rest(&self, shards: &R::Shards, cmd: &Cmd, primary_reads: bool) -> Result<Value> {
        let args = crate::command::args_of(cmd);
        let name = crate::command::name_of(&args);
        match class::class_of(&name, &args) {
            Class::Shared => {
                let plan = plan::plan_named(self, shards, &args, &name).await?;
                self.run_planned(shards, cmd, &args, plan, primary_reads)
                    .await
            }
            Class::Blocking { wait } => self.run_blocking(shards, cmd, &args, wait).await,
            Class::Refused { alternative } => Err(refusal(&args, alternative)),
        }
    }

    /// A blocking command: on a dedicated connection to its keys' node, never retried once
    /// sent, bounded by its own timeout.
    pub(crate) async fn run_blocking(
        &self,
        view: &R::Shards,
        cmd: &Cmd,
        args: &[&[u8]],
        wait: Option<std::time::Duration>,
    ) -> Result<Value> {
        let request = Request::Blocking { cmd, wait };
        match plan::plan(self, view, args).await? {
            Plan::Keyed { shard, keys, .. } => {
                let target = keyed(shard, false, true, cmd, &keys);
                self.router.execute(view, request, target).await
            }
            Plan::Keyless | Plan::Fanout(_) => {
                self.router.execute(view, request, Target::Any).await
            }
            Plan::Split(_) => Err(view.spread_error(
                &crate::command::name_of(args),
                view.shard_of(args.get(1).copied().unwrap_or_default()),
                view.shard_of(args.get(2).copied().unwrap_or_default()),
            )),
        }
    }

    /// Runs `cmd` as `plan` says; with `primary_reads` its reads go to primaries.
    pub(crate) async fn run_planned(
        &self,
        view: &R::Shards,
        cmd: &Cmd,
        args: &[&[u8]],
        plan: Plan<ShardOf<R>>,
        primary_reads: bool,
    ) -> Result<Value> {
        let request = Request::Cmd(cmd);
        match plan {
            Plan::Keyless => self.router.execute(view, request, Target::Any).await,
            Plan::Fanout(policy) => {
                let name = crate::command::name_of(args);
                Box::pin(fanout::run_policy(&self.router, cmd, &name, policy)).await
            }
            Plan::Keyed { shard, read, keys } => {
                let target = keyed(shard, read, primary_reads, cmd, &keys);
                self.router.execute(view, request, target).await
            }
            Plan::Split(how) => {
                Box::pin(split::run(&self.router, view, args, how, primary_reads)).await
            }
        }
    }

    /// Runs a pipeline and returns replies `offset .. offset + count`, as
    /// [`redis::aio::ConnectionLike::req_packed_commands`] must.
    pub async fn run_pipeline(
        &self,
        pipeline: &Pipeline,
        offset: usize,
        count: usize,
    ) -> Result<Vec<Value>> {
        // Nothing is sent when one command cannot be: a pipeline is not half run.
        for cmd in pipeline.cmd_iter() {
            let args = crate::command::args_of(cmd);
            match class::class_of(&crate::command::name_of(&args), &args) {
                Class::Shared => {}
                // Inside MULTI a blocking command does not block: it answers at once.
                Class::Blocking { .. } if pipeline.is_transaction() => {}
                Class::Blocking { .. } => {
                    return Err(refusal(
                        &args,
                        "a blocking command in a pipeline would hold every reply queued behind \
                         it: send it on its own (it then runs on a dedicated connection)",
                    ));
                }
                Class::Refused { alternative } => return Err(refusal(&args, alternative)),
            }
        }
        if pipeline.is_transaction() {
            let reply = transaction::run(self, pipeline).await?;
            return Ok(vec![reply]);
        }
        let replies = pipeline::run(self, pipeline).await?;
        Ok(replies.into_iter().skip(offset).take(count).collect())
    }

    /// Runs `cmd` on every primary (or every node) at once; each node's label and reply.
    pub async fn fan_out(&self, cmd: &Cmd, replicas: bool) -> Result<Vec<(String, Value)>> {
        fanout::run(&self.router, cmd, replicas).await
    }
}

/// The target of `cmd` whose keys (`indices` among its arguments) are all in `shard`;
/// `fresh`: its reads go to a primary.
fn keyed<'a, S>(
    shard: S,
    read: bool,
    fresh: bool,
    cmd: &'a Cmd,
    indices: &'a [usize],
) -> Target<'a, S> {
    Target::Keyed {
        shard,
        read,
        fresh,
        keys: Keys::At { cmd, indices },
    }
}

/// The refusal of a command that may not run on a shared connection.
fn refusal(args: &[&[u8]], alternative: &'static str) -> crate::Error {
    let name = crate::command::name_of(args);
    // Name the subcommand too: `CLIENT TRACKING`, not `CLIENT`.
    let command = match args.get(1) {
        Some(sub) if &*name == "CLIENT" => {
            format!(
                "CLIENT {}",
                String::from_utf8_lossy(sub).to_ascii_uppercase()
            )
        }
        _ => name.to_string(),
    };
    crate::Error::Unsupported {
        command,
        reason: alternative,
    }
}
