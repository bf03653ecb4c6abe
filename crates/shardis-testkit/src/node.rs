//! Handles to nodes, and opening connections to them.

use std::sync::Arc;
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::{
    AsyncConnectionConfig, ConnectionAddr, IntoConnectionInfo, RedisConnectionInfo, Value,
};

use crate::error::{Result, TestkitError};

/// Credentials every node requires (see the builders' `password` / `acl_user`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Auth {
    pub(crate) user: Option<String>,
    pub(crate) password: String,
}

/// A redis-server started by the testkit. Cheap to clone; it does not own the process (the
/// [`Cluster`](crate::Cluster) or [`Standalone`](crate::Standalone) that returned it does).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Node {
    /// The client port on 127.0.0.1. The cluster bus, if any, listens on `port + 10000`.
    pub port: u16,
    /// The cluster node id (`CLUSTER MYID`, 40 hex chars); the empty string for standalone
    /// nodes. It survives [`restart`](crate::Cluster::restart) because `nodes.conf` is kept.
    pub id: String,
    /// The TLS port on 127.0.0.1, when the node was started with TLS
    /// ([`tls`](crate::StandaloneBuilder::tls)).
    pub tls_port: Option<u16>,
    pub(crate) auth: Option<Arc<Auth>>,
}

/// What `ROLE` says a node currently is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Role {
    /// A master (`ROLE` → `master`).
    Primary,
    /// A replica of the master listening on `primary_port`.
    Replica {
        /// The port of the master it replicates from.
        primary_port: u16,
        /// The replication link state (`connect`, `connecting`, `sync`, `connected`, ...).
        link: String,
    },
}

/// Connection timeout used for every connection the testkit opens.
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// Response timeout of connections handed to callers: long enough for a slow, loaded 2-core
/// machine, short enough that a test talking to a paused node fails instead of hanging.
pub(crate) const USER_RESPONSE_TIMEOUT: Duration = Duration::from_secs(5);

impl Node {
    /// `"127.0.0.1:<port>"`.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// `"127.0.0.1:<tls port>"`, when the node serves TLS.
    pub fn tls_addr(&self) -> Option<String> {
        self.tls_port.map(|port| format!("127.0.0.1:{port}"))
    }

    /// Opens a new connection to this node (authenticated if the nodes require it), with a
    /// 1 s connect timeout and a 5 s response timeout.
    pub async fn connection(&self) -> Result<MultiplexedConnection> {
        self.connect(USER_RESPONSE_TIMEOUT).await
    }

    /// Asks the node for its current role (`ROLE`), over a new connection.
    pub async fn role(&self) -> Result<Role> {
        let mut conn = self.connect(Duration::from_secs(2)).await?;
        let reply: Value = redis::cmd("ROLE")
            .query_async(&mut conn)
            .await
            .map_err(|e| TestkitError::redis(format!("ROLE on {}", self.addr()), e))?;
        parse_role(&reply).map_err(|d| TestkitError::reply(format!("ROLE on {}", self.addr()), d))
    }

    pub(crate) async fn connect(
        &self,
        response_timeout: Duration,
    ) -> Result<MultiplexedConnection> {
        connect(self.port, self.auth.as_deref(), response_timeout)
            .await
            .map_err(|e| TestkitError::redis(format!("connecting to {}", self.addr()), e))
    }
}

/// Opens a connection without `CLIENT SETINFO`, so that the only commands in a node's
/// `INFO commandstats` are the ones tests and the testkit actually sent.
pub(crate) async fn connect(
    port: u16,
    auth: Option<&Auth>,
    response_timeout: Duration,
) -> redis::RedisResult<MultiplexedConnection> {
    let mut settings = RedisConnectionInfo::default().set_skip_set_lib_name();
    if let Some(auth) = auth {
        settings = settings.set_password(&auth.password);
        if let Some(user) = &auth.user {
            settings = settings.set_username(user);
        }
    }
    let info = ConnectionAddr::Tcp("127.0.0.1".into(), port)
        .into_connection_info()?
        .set_redis_settings(settings);
    let config = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(CONNECT_TIMEOUT))
        .set_response_timeout(Some(response_timeout));
    redis::Client::open(info)?
        .get_multiplexed_async_connection_with_config(&config)
        .await
}

/// Parses a `ROLE` reply: `["master", offset, replicas]` or
/// `["slave", host, port, state, offset]`.
pub(crate) fn parse_role(reply: &Value) -> std::result::Result<Role, String> {
    let Value::Array(items) = reply else {
        return Err(format!("not an array: {reply:?}"));
    };
    match items.first().and_then(as_text).as_deref() {
        Some("master") => Ok(Role::Primary),
        Some("slave") => {
            let primary_port = match items.get(2) {
                Some(Value::Int(p)) => u16::try_from(*p).map_err(|_| format!("bad port {p}"))?,
                other => return Err(format!("bad master port {other:?}")),
            };
            let link = items.get(3).and_then(as_text).unwrap_or_default();
            Ok(Role::Replica { primary_port, link })
        }
        other => Err(format!("unknown role {other:?}")),
    }
}

/// A bulk or simple string as UTF-8 text.
pub(crate) fn as_text(v: &Value) -> Option<String> {
    match v {
        Value::BulkString(b) => Some(String::from_utf8_lossy(b).into_owned()),
        Value::SimpleString(s) => Some(s.clone()),
        Value::VerbatimString { text, .. } => Some(text.clone()),
        Value::Okay => Some("OK".into()),
        _ => None,
    }
}
