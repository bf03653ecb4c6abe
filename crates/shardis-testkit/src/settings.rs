//! Settings shared by the cluster and standalone builders, turned into `redis.conf` lines.

use std::ffi::OsString;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::binaries::{Binary, resolve};
use crate::error::{Result, TestkitError};
use crate::node::Auth;
use crate::server::ServerSpec;

/// Per-node extra configuration: node index → `(key, value)` pairs.
pub(crate) type PerNode = Arc<dyn Fn(usize) -> Vec<(String, String)> + Send + Sync>;

#[derive(Clone)]
pub(crate) struct Settings {
    pub(crate) config: Vec<(String, String)>,
    pub(crate) per_node: Option<PerNode>,
    pub(crate) auth: Option<Auth>,
    pub(crate) redis_server: Option<OsString>,
    pub(crate) timeout: Duration,
    /// TLS certificates, and whether clients must present one (`tls-auth-clients`).
    pub(crate) tls: Option<(crate::tls::TlsCerts, bool)>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            config: Vec::new(),
            per_node: None,
            auth: None,
            redis_server: None,
            timeout: Duration::from_secs(30),
            tls: None,
        }
    }
}

impl fmt::Debug for Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Settings")
            .field("config", &self.config)
            .field("per_node", &self.per_node.is_some())
            .field("auth", &self.auth.as_ref().map(|a| &a.user))
            .field("redis_server", &self.redis_server)
            .field("timeout", &self.timeout)
            .field("tls", &self.tls.as_ref().map(|(_, auth)| auth))
            .finish()
    }
}

/// Settings every node gets regardless of the builder: no persistence (tests are
/// throw-away), fast replication start and replica offsets that move every second (replicas
/// with offset 0 are hidden from CLUSTER SLOTS), and DEBUG for tests that want it.
const BASE: &[&str] = &[
    "save \"\"",
    "appendonly no",
    "repl-diskless-sync-delay 0",
    "repl-ping-replica-period 1",
    "enable-debug-command yes",
];

impl Settings {
    /// One spec per node: base lines, `role_lines`, auth, the shared config, then the
    /// per-node config (later lines win in redis.conf).
    pub(crate) fn specs(
        &self,
        n: usize,
        cluster: bool,
        role_lines: &[String],
    ) -> Result<Vec<ServerSpec>> {
        let binary = resolve(Binary::Server, self.redis_server.as_ref())?;
        let mut common: Vec<String> = BASE.iter().map(|s| s.to_string()).collect();
        common.extend(role_lines.iter().cloned());
        if let Some(auth) = &self.auth {
            let pw = quote(&auth.password);
            match &auth.user {
                None => common.extend([format!("requirepass {pw}"), format!("masterauth {pw}")]),
                Some(user) => common.extend([
                    format!(
                        "user {user} on {} ~* &* +@all",
                        quote(&format!(">{}", auth.password))
                    ),
                    "user default off".to_string(),
                    format!("masteruser {user}"),
                    format!("masterauth {pw}"),
                ]),
            }
        }
        if let Some((certs, auth_clients)) = &self.tls {
            common.extend(certs.server_lines(*auth_clients, cluster));
        }
        for (k, v) in &self.config {
            common.push(line(k, v)?);
        }
        (0..n)
            .map(|i| {
                let mut lines = common.clone();
                if let Some(per_node) = &self.per_node {
                    for (k, v) in per_node(i) {
                        lines.push(line(&k, &v)?);
                    }
                }
                Ok(ServerSpec {
                    binary: binary.clone(),
                    cluster,
                    lines,
                    auth: self.auth.clone(),
                    tls: self.tls.is_some(),
                    startup_timeout: self.timeout,
                    args: Vec::new(),
                })
            })
            .collect()
    }
}

/// `key value` verbatim: the value may hold several arguments and redis.conf quoting.
fn line(key: &str, value: &str) -> Result<String> {
    if key.is_empty() || key.contains(char::is_whitespace) || value.contains(['\n', '\r']) {
        return Err(TestkitError::InvalidArgument(format!(
            "bad config line {key:?} {value:?}"
        )));
    }
    Ok(if value.is_empty() {
        format!("{key} \"\"")
    } else {
        format!("{key} {value}")
    })
}

/// Double-quotes a value for redis.conf (sdssplitargs syntax).
pub(crate) fn quote(value: &str) -> String {
    format!("\"{}\"", value.replace('\\', "\\\\").replace('"', "\\\""))
}

/// Generates the builder methods shared by the cluster and standalone builders.
macro_rules! settings_methods {
    () => {
        /// Adds `key value` to every node's `redis.conf`, after the testkit's own settings (so
        /// it overrides them). The value is written verbatim: several arguments and quoting
        /// work as in redis.conf, e.g. `.config("user", "alice on >pw ~* +@all")`.
        pub fn config(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
            self.settings.config.push((key.into(), value.into()));
            self
        }

        /// Adds per-node configuration: `f(index)` returns `(key, value)` pairs for the node
        /// at `index` in start order, written after the shared [`config`](Self::config).
        pub fn node_config<F>(mut self, f: F) -> Self
        where
            F: Fn(usize) -> Vec<(String, String)> + Send + Sync + 'static,
        {
            self.settings.per_node = Some(std::sync::Arc::new(f));
            self
        }

        /// Requires `password` for the default user (`requirepass`, plus `masterauth` for
        /// replication). The testkit's connections, MIGRATE and redis-cli authenticate.
        pub fn password(mut self, password: impl Into<String>) -> Self {
            self.settings.auth = Some($crate::node::Auth {
                user: None,
                password: password.into(),
            });
            self
        }

        /// Creates ACL user `user` with `password` and all permissions, disables the default
        /// user, and makes the testkit (and replication) authenticate as `user`.
        pub fn acl_user(mut self, user: impl Into<String>, password: impl Into<String>) -> Self {
            self.settings.auth = Some($crate::node::Auth {
                user: Some(user.into()),
                password: password.into(),
            });
            self
        }

        /// Uses this redis-server executable instead of `$SHARDIS_REDIS_SERVER` / `$PATH`.
        pub fn redis_server(mut self, path: impl Into<std::ffi::OsString>) -> Self {
            self.settings.redis_server = Some(path.into());
            self
        }

        /// Serves TLS too, with `certs`: each node keeps its plain port (the testkit's own
        /// connections use it) and gets a TLS port ([`Node::tls_port`](crate::Node::tls_port));
        /// in cluster mode the bus and replication use TLS too (`tls-cluster yes`), and
        /// nodes announce their TLS ports to TLS clients. Clients need no certificate unless
        /// [`tls_auth_clients`](Self::tls_auth_clients) says so.
        pub fn tls(mut self, certs: &$crate::TlsCerts) -> Self {
            let auth = self.settings.tls.as_ref().is_some_and(|(_, auth)| *auth);
            self.settings.tls = Some((certs.clone(), auth));
            self
        }

        /// Whether TLS clients must present a certificate signed by the test CA
        /// (`tls-auth-clients yes`: mutual TLS). Needs [`tls`](Self::tls) first.
        pub fn tls_auth_clients(mut self, yes: bool) -> Self {
            if let Some((_, auth)) = &mut self.settings.tls {
                *auth = yes;
            }
            self
        }

        /// The deadline of every wait (startup, readiness, failover, stability); default 30 s.
        pub fn timeout(mut self, timeout: std::time::Duration) -> Self {
            self.settings.timeout = timeout;
            self
        }
    };
}
pub(crate) use settings_methods;
