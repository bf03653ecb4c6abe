//! Real `redis-server` processes for shardis integration tests and demos.
//!
//! [`Cluster`] starts a Redis Cluster (default 3 primaries × 1 replica) and drives real
//! operations on it: slot migration step by step or held half-way ([`Migration`]),
//! `redis-cli --cluster reshard`, `CLUSTER FAILOVER` in every mode, SIGKILL / SIGSTOP /
//! SIGCONT / restart of single nodes, and waits that poll until every node agrees.
//! [`Standalone`] starts independent non-cluster nodes with the same process helpers.
//! [`Replication`] starts a primary with replicas (`REPLICAOF`), and [`Sentinels`] real
//! sentinels watching it. [`Twemproxy`] starts twemproxy (`nutcracker`) in front of such nodes. [`FakeNode`] is no
//! server at all: a RESP peer whose every reply a test scripts, for unit tests of clients.
//!
//! Every process runs in the foreground on a leased 127.0.0.1 port (bus port +10000 free
//! too, no collision with parallel tests in this or other processes), in its own temporary
//! directory, and is SIGKILLed and reaped when its handle is dropped, also on panic.
//!
//! `redis-server` (and `redis-cli` for [`Cluster::reshard`], `nutcracker` for [`Twemproxy`])
//! are looked up in `$SHARDIS_REDIS_SERVER` / `$SHARDIS_REDIS_CLI` / `$SHARDIS_NUTCRACKER`,
//! else on `$PATH`; if missing, starting fails with [`TestkitError::BinaryNotFound`], whose
//! message names the Debian package to install.
//!
//! ```no_run
//! # async fn demo() -> shardis_testkit::Result<()> {
//! let cluster = shardis_testkit::Cluster::builder().primaries(3).replicas_per_primary(1).start().await?;
//! let seeds: Vec<String> = cluster.seeds();
//! let target = cluster.primaries().await?.remove(1);
//! let m = cluster.begin_migration(866, &target).await?;
//! m.migrate_some(10).await?;
//! m.finish().await?;
//! let victim = cluster.primaries().await?.remove(0);
//! cluster.kill(&victim)?;
//! cluster.wait_for_failover_of(&victim).await?;
//! let stats = cluster.commandstats(&cluster.nodes()[0]).await?;
//! # Ok(()) }
//! ```
#![deny(missing_docs)]

mod binaries;
mod cluster;
mod error;
mod failover;
mod fake;
mod fleet;
mod form;
mod info;
mod migrate;
mod node;
mod ports;
mod replication;
mod sentinel;
mod server;
mod settings;
mod standalone;
mod tls;
mod topology;
mod twemproxy;
mod wait;

pub use binaries::{Binary, locate};
pub use cluster::{Cluster, ClusterBuilder, DEFAULT_NODE_TIMEOUT_MS};
pub use error::{Result, TestkitError};
pub use failover::FailoverMode;
pub use fake::{FakeCommand, FakeCtx, FakeNode, FakeReply};
pub use migrate::Migration;
pub use node::{Node, Role};
pub use replication::{Replication, ReplicationBuilder};
pub use sentinel::{Sentinels, SentinelsBuilder};
pub use server::ProcessState;
pub use standalone::{Standalone, StandaloneBuilder};
pub use tls::TlsCerts;
pub use twemproxy::{Twemproxy, TwemproxyBuilder, TwemproxyHash};
