//! The set of server processes behind a [`Cluster`](crate::Cluster) or
//! [`Standalone`](crate::Standalone), plus cached connections the testkit uses to drive them,
//! and the per-node helpers both handles expose.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::{Cmd, FromRedisValue};

use crate::error::{Result, TestkitError};
use crate::info::{parse_commandstats, parse_db0_keys, parse_info};
use crate::node::{Auth, Node, connect};
use crate::server::{ProcessState, Server, ServerSpec};

/// Response timeout of the testkit's own connections. MIGRATE is sent with a 5 s timeout,
/// so this must be longer; polls wrap their commands in shorter timeouts.
const INTERNAL_RESPONSE_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug)]
pub(crate) struct Fleet {
    servers: Vec<Server>,
    nodes: Vec<Node>,
    pub(crate) auth: Option<Arc<Auth>>,
    /// Overall deadline of every wait.
    pub(crate) timeout: Duration,
    conns: Mutex<HashMap<u16, MultiplexedConnection>>,
}

impl Fleet {
    /// Starts one server per spec, one after the other (each answers PING within ~10–30 ms).
    pub(crate) async fn start(specs: &[ServerSpec], timeout: Duration) -> Result<Fleet> {
        let mut servers = Vec::with_capacity(specs.len());
        for spec in specs {
            // On error, the servers started so far are dropped, which kills them.
            servers.push(Server::start(spec).await?);
        }
        let auth = specs.first().and_then(|s| s.auth.clone()).map(Arc::new);
        let nodes = servers
            .iter()
            .map(|s| Node {
                port: s.port(),
                id: String::new(),
                tls_port: s.tls_port(),
                auth: auth.clone(),
            })
            .collect();
        Ok(Fleet {
            servers,
            nodes,
            auth,
            timeout,
            conns: Mutex::default(),
        })
    }

    pub(crate) fn nodes(&self) -> &[Node] {
        &self.nodes
    }

    pub(crate) fn set_ids(&mut self, ids: Vec<String>) {
        for (node, id) in self.nodes.iter_mut().zip(ids) {
            node.id = id;
        }
    }

    pub(crate) fn server(&self, node: &Node) -> Result<&Server> {
        self.servers
            .iter()
            .find(|s| s.port() == node.port)
            .ok_or_else(|| TestkitError::UnknownNode { addr: node.addr() })
    }

    pub(crate) fn by_id(&self, id: &str) -> Option<&Node> {
        self.nodes.iter().find(|n| n.id == id)
    }

    pub(crate) fn by_port(&self, port: u16) -> Option<&Node> {
        self.nodes.iter().find(|n| n.port == port)
    }

    pub(crate) fn state(&self, node: &Node) -> Result<ProcessState> {
        Ok(self.server(node)?.state())
    }

    /// Nodes whose process runs and is not paused: the ones that can answer.
    pub(crate) fn live(&self) -> Vec<&Node> {
        self.nodes.iter().filter(|n| self.is_live(n)).collect()
    }

    pub(crate) fn is_live(&self, node: &Node) -> bool {
        self.state(node).is_ok_and(|s| s == ProcessState::Running)
    }

    pub(crate) fn require_live(&self, node: &Node) -> Result<()> {
        match self.state(node)? {
            ProcessState::Running => Ok(()),
            state => Err(TestkitError::NotRunning {
                addr: node.addr(),
                state,
            }),
        }
    }

    /// Sends `cmd` to `node` over a cached connection. A connection that failed at the
    /// transport level is dropped; if it was a cached one (its node may have restarted, or
    /// the runtime that drove it may be gone), the command is retried once on a new one.
    pub(crate) async fn query<T: FromRedisValue>(&self, node: &Node, cmd: &Cmd) -> Result<T> {
        let context = || format!("{} on {}", describe(cmd), node.addr());
        let cached = self
            .conns
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&node.port)
            .cloned();
        let was_cached = cached.is_some();
        let mut conn = match cached {
            Some(conn) => conn,
            None => self
                .open(node)
                .await
                .map_err(|e| TestkitError::redis(format!("connecting for {}", context()), e))?,
        };
        let mut result = cmd.query_async(&mut conn).await;
        if let Err(e) = &result {
            let broken = e.is_io_error() || e.is_connection_dropped();
            if broken || e.is_timeout() {
                self.forget(node.port);
            }
            if broken && was_cached {
                let mut conn = self.open(node).await.map_err(|e| {
                    TestkitError::redis(format!("reconnecting for {}", context()), e)
                })?;
                result = cmd.query_async(&mut conn).await;
            }
        }
        result.map_err(|e| TestkitError::redis(context(), e))
    }

    async fn open(&self, node: &Node) -> redis::RedisResult<MultiplexedConnection> {
        let conn = connect(node.port, self.auth.as_deref(), INTERNAL_RESPONSE_TIMEOUT).await?;
        self.conns
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(node.port, conn.clone());
        Ok(conn)
    }

    /// [`query`](Self::query) bounded by `limit`, for polls that must not hang on one node.
    pub(crate) async fn query_within<T: FromRedisValue>(
        &self,
        node: &Node,
        cmd: &Cmd,
        limit: Duration,
    ) -> Result<T> {
        match tokio::time::timeout(limit, self.query(node, cmd)).await {
            Ok(result) => result,
            Err(_) => {
                self.forget(node.port);
                Err(TestkitError::Timeout {
                    what: describe(cmd),
                    waited: limit,
                    last_state: format!("{} did not answer", node.addr()),
                })
            }
        }
    }

    fn forget(&self, port: u16) {
        self.conns
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&port);
    }

    pub(crate) fn kill(&self, node: &Node) -> Result<()> {
        self.server(node)?.kill();
        self.forget(node.port);
        Ok(())
    }

    pub(crate) fn pause(&self, node: &Node) -> Result<()> {
        self.server(node)?.pause()
    }

    pub(crate) fn resume(&self, node: &Node) -> Result<()> {
        self.server(node)?.resume()
    }

    pub(crate) async fn restart(&self, node: &Node) -> Result<()> {
        let server = self.server(node)?;
        self.forget(node.port);
        server.restart().await
    }

    pub(crate) async fn info(&self, node: &Node, section: &str) -> Result<HashMap<String, String>> {
        let text: String = self.query(node, redis::cmd("INFO").arg(section)).await?;
        Ok(parse_info(&text))
    }

    pub(crate) async fn commandstats(&self, node: &Node) -> Result<HashMap<String, u64>> {
        Ok(parse_commandstats(&self.info(node, "commandstats").await?))
    }

    pub(crate) async fn keyspace_keys(&self, node: &Node) -> Result<u64> {
        Ok(parse_db0_keys(&self.info(node, "keyspace").await?))
    }

    pub(crate) async fn dbsize(&self, node: &Node) -> Result<u64> {
        self.query(node, &redis::cmd("DBSIZE")).await
    }

    pub(crate) async fn config_resetstat(&self, node: &Node) -> Result<()> {
        self.query(node, redis::cmd("CONFIG").arg("RESETSTAT"))
            .await
    }

    pub(crate) async fn config_set(&self, node: &Node, name: &str, value: &str) -> Result<()> {
        self.query(node, redis::cmd("CONFIG").arg("SET").arg(name).arg(value))
            .await
    }
}

/// The command name and up to three arguments, for error messages.
pub(crate) fn describe(cmd: &Cmd) -> String {
    let words: Vec<String> = cmd
        .args_iter()
        .take(4)
        .map(|a| match a {
            redis::Arg::Simple(bytes) => String::from_utf8_lossy(bytes).into_owned(),
            _ => "<cursor>".into(),
        })
        .collect();
    words.join(" ")
}

/// Generates the per-node helpers shared by [`Cluster`](crate::Cluster) and
/// [`Standalone`](crate::Standalone), so both document and behave the same.
macro_rules! node_helpers {
    ($handle:ty) => {
        impl $handle {
            /// Every node started, in start order, whatever its current state.
            pub fn nodes(&self) -> &[$crate::Node] {
                self.fleet.nodes()
            }

            /// `"127.0.0.1:<port>"` of every node, in [`nodes`](Self::nodes) order.
            pub fn addrs(&self) -> Vec<String> {
                self.fleet.nodes().iter().map($crate::Node::addr).collect()
            }

            /// `"127.0.0.1:<tls port>"` of every node started with TLS, in
            /// [`nodes`](Self::nodes) order.
            pub fn tls_addrs(&self) -> Vec<String> {
                self.fleet
                    .nodes()
                    .iter()
                    .filter_map($crate::Node::tls_addr)
                    .collect()
            }

            /// A new connection to `node` (1 s connect timeout, 5 s response timeout),
            /// separate from the ones the testkit itself uses.
            pub async fn connection(
                &self,
                node: &$crate::Node,
            ) -> $crate::Result<redis::aio::MultiplexedConnection> {
                self.fleet.server(node)?;
                node.connection().await
            }

            /// What the testkit last did to `node`'s process.
            pub fn state(&self, node: &$crate::Node) -> $crate::Result<$crate::ProcessState> {
                self.fleet.state(node)
            }

            /// The OS pid of `node`'s process, `None` once killed.
            pub fn pid(&self, node: &$crate::Node) -> $crate::Result<Option<u32>> {
                Ok(self.fleet.server(node)?.pid())
            }

            /// The node's directory: `redis.conf`, `redis.log`, `stderr.log`, `nodes.conf`.
            pub fn dir(&self, node: &$crate::Node) -> $crate::Result<std::path::PathBuf> {
                Ok(self.fleet.server(node)?.dir().to_path_buf())
            }

            /// SIGKILLs `node` and reaps it; the port and directory stay reserved for
            /// [`restart`](Self::restart).
            pub fn kill(&self, node: &$crate::Node) -> $crate::Result<()> {
                self.fleet.kill(node)
            }

            /// SIGSTOPs `node`: it keeps its sockets open but answers nothing, like a hung host.
            pub fn pause(&self, node: &$crate::Node) -> $crate::Result<()> {
                self.fleet.pause(node)
            }

            /// SIGCONTs a paused `node`.
            pub fn resume(&self, node: &$crate::Node) -> $crate::Result<()> {
                self.fleet.resume(node)
            }

            /// Starts `node` again on the same port and directory (killing it first if it
            /// runs) and waits until it answers PING. A cluster node rejoins with its
            /// `nodes.conf`; wait for [`Cluster::wait_stable`](crate::Cluster::wait_stable)
            /// if the test needs the cluster to have noticed.
            pub async fn restart(&self, node: &$crate::Node) -> $crate::Result<()> {
                self.fleet.restart(node).await
            }

            /// `INFO <section>` as a `field → value` map (`"all"` for everything).
            pub async fn info(
                &self,
                node: &$crate::Node,
                section: &str,
            ) -> $crate::Result<std::collections::HashMap<String, String>> {
                self.fleet.info(node, section).await
            }

            /// `INFO commandstats` as `command → calls`, keyed like `"get"` or
            /// `"cluster|slots"`. Includes the commands the testkit itself sent.
            pub async fn commandstats(
                &self,
                node: &$crate::Node,
            ) -> $crate::Result<std::collections::HashMap<String, u64>> {
                self.fleet.commandstats(node).await
            }

            /// The number of keys in db0 according to `INFO keyspace`.
            pub async fn keyspace_keys(&self, node: &$crate::Node) -> $crate::Result<u64> {
                self.fleet.keyspace_keys(node).await
            }

            /// `DBSIZE`.
            pub async fn dbsize(&self, node: &$crate::Node) -> $crate::Result<u64> {
                self.fleet.dbsize(node).await
            }

            /// `CONFIG SET name value` on every node started (a killed one is skipped).
            pub async fn config_set_all(&self, name: &str, value: &str) -> $crate::Result<()> {
                for node in self.fleet.nodes() {
                    if self.fleet.server(node)?.pid().is_some() {
                        self.fleet.config_set(node, name, value).await?;
                    }
                }
                Ok(())
            }

            /// `CONFIG RESETSTAT`: zeroes `INFO commandstats` and friends.
            pub async fn config_resetstat(&self, node: &$crate::Node) -> $crate::Result<()> {
                self.fleet.config_resetstat(node).await
            }
        }
    };
}
pub(crate) use node_helpers;
