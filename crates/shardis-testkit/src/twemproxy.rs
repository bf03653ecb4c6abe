//! twemproxy (`nutcracker`): one proxy process in front of standalone nodes, for benchmarks
//! against the proxy hop and for checking that a ring places keys as twemproxy does.
//!
//! The proxy listens on a leased 127.0.0.1 port (its stats port is leased too), runs in the
//! foreground from a config written to its own temporary directory, and is SIGKILLed and reaped
//! when its handle is dropped, also on panic.

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use tempfile::TempDir;

use crate::binaries::{Binary, resolve};
use crate::error::{Result, TestkitError};
use crate::node::{USER_RESPONSE_TIMEOUT, connect};
use crate::ports::PortLease;
use crate::server::{log_tail, spawn_in};
use crate::wait::{Check, Deadline, poll};

/// How many times a start is retried on fresh ports when a port turns out to be taken.
const PORT_ATTEMPTS: usize = 8;

/// The key hash of a twemproxy pool (its `hash:` setting).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TwemproxyHash {
    /// `one_at_a_time`
    OneAtATime,
    /// `md5` (what libmemcached's ketama uses)
    Md5,
    /// `crc16`
    Crc16,
    /// `crc32` (the libmemcached flavour)
    Crc32,
    /// `crc32a` (the crc32 of the standard)
    Crc32a,
    /// `fnv1_64`
    Fnv1_64,
    /// `fnv1a_64`
    Fnv1a64,
    /// `fnv1_32`
    Fnv1_32,
    /// `fnv1a_32`
    Fnv1a32,
    /// `hsieh`
    Hsieh,
    /// `murmur`
    Murmur,
    /// `jenkins`
    Jenkins,
}

impl TwemproxyHash {
    /// The name twemproxy's config uses for it.
    pub fn name(self) -> &'static str {
        match self {
            TwemproxyHash::OneAtATime => "one_at_a_time",
            TwemproxyHash::Md5 => "md5",
            TwemproxyHash::Crc16 => "crc16",
            TwemproxyHash::Crc32 => "crc32",
            TwemproxyHash::Crc32a => "crc32a",
            TwemproxyHash::Fnv1_64 => "fnv1_64",
            TwemproxyHash::Fnv1a64 => "fnv1a_64",
            TwemproxyHash::Fnv1_32 => "fnv1_32",
            TwemproxyHash::Fnv1a32 => "fnv1a_32",
            TwemproxyHash::Hsieh => "hsieh",
            TwemproxyHash::Murmur => "murmur",
            TwemproxyHash::Jenkins => "jenkins",
        }
    }
}

/// One backend of the pool: `addr:port:weight [name]` in twemproxy's config. With a name,
/// ketama places keys by the name rather than by `addr:port`.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Backend {
    addr: String,
    weight: u32,
    name: Option<String>,
}

/// Builds a [`Twemproxy`]; see [`Twemproxy::builder`].
#[derive(Clone, Debug)]
#[must_use]
pub struct TwemproxyBuilder {
    servers: Vec<Backend>,
    hash: TwemproxyHash,
    hash_tag: Option<String>,
    options: Vec<(String, String)>,
    nutcracker: Option<OsString>,
    timeout: Duration,
}

impl TwemproxyBuilder {
    /// Adds a backend `addr` (`host:port`) with `weight`, unnamed: ketama places keys by its
    /// `host:port`.
    pub fn server(mut self, addr: impl Into<String>, weight: u32) -> Self {
        self.servers.push(Backend {
            addr: addr.into(),
            weight,
            name: None,
        });
        self
    }

    /// Adds a backend `addr` (`host:port`) with `weight` and a `name`: ketama places keys by
    /// the name, so the placement survives a change of address.
    pub fn named_server(
        mut self,
        addr: impl Into<String>,
        weight: u32,
        name: impl Into<String>,
    ) -> Self {
        self.servers.push(Backend {
            addr: addr.into(),
            weight,
            name: Some(name.into()),
        });
        self
    }

    /// The key hash (default [`TwemproxyHash::Fnv1a64`]).
    pub fn hash(mut self, hash: TwemproxyHash) -> Self {
        self.hash = hash;
        self
    }

    /// Hashes only the part of a key between these two characters when present, e.g. `"{}"`.
    pub fn hash_tag(mut self, tag: impl Into<String>) -> Self {
        self.hash_tag = Some(tag.into());
        self
    }

    /// Sets another pool setting (e.g. `"distribution", "modula"`, `"server_connections",
    /// "4"`), replacing the default or an earlier value. The defaults are
    /// `distribution: ketama`, `redis: true`, `auto_eject_hosts: false`, `timeout: 5000`,
    /// `server_connections: 1`. The value is written as it is (YAML).
    pub fn option(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        let (key, value) = (key.into(), value.into());
        match self.options.iter_mut().find(|(k, _)| *k == key) {
            Some(slot) => slot.1 = value,
            None => self.options.push((key, value)),
        }
        self
    }

    /// The `nutcracker` executable to run (default: `$SHARDIS_NUTCRACKER`, else `nutcracker` on
    /// `$PATH` or in `/usr/sbin`).
    pub fn nutcracker(mut self, path: impl Into<OsString>) -> Self {
        self.nutcracker = Some(path.into());
        self
    }

    /// How long to wait for the proxy to listen (default 10 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Writes the config, starts `nutcracker` and waits until it accepts connections.
    pub async fn start(self) -> Result<Twemproxy> {
        let binary = resolve(Binary::Nutcracker, self.nutcracker.as_ref())?;
        self.validate()?;
        for _ in 0..PORT_ATTEMPTS {
            let lease = PortLease::acquire(false)?;
            let stats = PortLease::acquire(false)?;
            match self.launch(&binary, lease, stats).await {
                Err(Launch::AddrInUse) => {
                    tracing::debug!("nutcracker found a port taken, retrying with another");
                }
                Err(Launch::Fatal(e)) => return Err(e),
                Ok(proxy) => return Ok(proxy),
            }
        }
        Err(TestkitError::NoFreePort {
            attempts: PORT_ATTEMPTS,
        })
    }

    fn validate(&self) -> Result<()> {
        let invalid = |what: String| Err(TestkitError::InvalidArgument(what));
        if self.servers.is_empty() {
            return invalid("twemproxy needs at least one server".into());
        }
        for s in &self.servers {
            if s.weight == 0 {
                return invalid(format!("twemproxy server {}: weight must be >= 1", s.addr));
            }
            let (host, port) = s.addr.rsplit_once(':').unwrap_or((&s.addr, ""));
            if host.is_empty() || port.parse::<u16>().is_err() || !plain(&s.addr) {
                return invalid(format!("twemproxy server {:?}: expected host:port", s.addr));
            }
            if let Some(name) = &s.name
                && (name.is_empty() || !plain(name) || name.contains(':'))
            {
                return invalid(format!(
                    "twemproxy server name {name:?}: no spaces, colons or control characters"
                ));
            }
        }
        if let Some(tag) = &self.hash_tag
            && (tag.chars().count() != 2 || !plain(tag))
        {
            return invalid(format!(
                "twemproxy hash_tag {tag:?}: two characters, e.g. \"{{}}\""
            ));
        }
        for (key, value) in &self.options {
            if !plain(key) || value.contains(['\n', '\r']) {
                return invalid(format!("twemproxy option {key:?}: {value:?}"));
            }
        }
        Ok(())
    }

    /// The YAML config of a pool named `shardis` listening on `port`.
    fn config(&self, port: u16) -> String {
        let mut conf = format!(
            "shardis:\n  listen: 127.0.0.1:{port}\n  hash: {}\n",
            self.hash.name()
        );
        if let Some(tag) = &self.hash_tag {
            conf.push_str(&format!("  hash_tag: {}\n", crate::settings::quote(tag)));
        }
        for (key, value) in &self.options {
            conf.push_str(&format!("  {key}: {value}\n"));
        }
        conf.push_str("  servers:\n");
        for s in &self.servers {
            conf.push_str(&format!("   - {}:{}", s.addr, s.weight));
            if let Some(name) = &s.name {
                conf.push(' ');
                conf.push_str(name);
            }
            conf.push('\n');
        }
        conf
    }

    async fn launch(
        &self,
        binary: &Path,
        lease: PortLease,
        stats: PortLease,
    ) -> std::result::Result<Twemproxy, Launch> {
        let fatal = Launch::Fatal;
        let dir = tempfile::Builder::new()
            .prefix(&format!("shardis-testkit-nutcracker-{}-", lease.port()))
            .tempdir()
            .map_err(|e| fatal(TestkitError::io("creating a nutcracker directory", e)))?;
        let config = self.config(lease.port());
        let conf_path = dir.path().join("nutcracker.yml");
        std::fs::write(&conf_path, &config).map_err(|e| {
            fatal(TestkitError::io(
                format!("writing {}", conf_path.display()),
                e,
            ))
        })?;
        let stats_port = stats.port().to_string();
        let log = dir.path().join("nutcracker.log");
        let args = [
            OsStr::new("-c"),
            conf_path.as_os_str(),
            OsStr::new("-s"),
            OsStr::new(&stats_port),
            OsStr::new("-a"),
            OsStr::new("127.0.0.1"),
            OsStr::new("-o"),
            log.as_os_str(),
        ];
        let child = spawn_in(dir.path(), binary, args).map_err(fatal)?;
        // From here on, dropping `proxy` (on any error) kills and reaps the process.
        let mut proxy = Twemproxy {
            child,
            lease,
            stats,
            config,
            dir,
            binary: binary.to_path_buf(),
        };
        let deadline = Deadline::new(
            format!("nutcracker to listen on {}", proxy.addr()),
            self.timeout,
        );
        poll!(deadline, {
            if let Some(status) = proxy.child.try_wait().ok().flatten() {
                let log_tail = proxy.log_tail();
                if log_tail.contains("Address already in use") {
                    return Err(Launch::AddrInUse);
                }
                return Err(fatal(TestkitError::TwemproxyExited {
                    port: proxy.port(),
                    status,
                    log_tail,
                }));
            }
            match tokio::net::TcpStream::connect(proxy.addr()).await {
                Ok(_) => Check::Done(()),
                Err(e) => Check::NotYet(format!("connecting: {e}; log:\n{}", proxy.log_tail())),
            }
        });
        Ok(proxy)
    }
}

/// No whitespace or control characters: safe to write unquoted in the YAML config.
fn plain(s: &str) -> bool {
    !s.chars().any(|c| c.is_whitespace() || c.is_control())
}

/// Why one launch failed: a port conflict is retried with other ports.
enum Launch {
    AddrInUse,
    Fatal(TestkitError),
}

impl From<TestkitError> for Launch {
    fn from(e: TestkitError) -> Self {
        Launch::Fatal(e)
    }
}

/// A running twemproxy (`nutcracker`) with one pool, named `shardis`, on 127.0.0.1. Dropping
/// it SIGKILLs and reaps the process and removes its directory.
///
/// ```no_run
/// # async fn demo() -> Result<()> {
/// use shardis_testkit::{Standalone, Twemproxy, TwemproxyHash};
/// let nodes = Standalone::start(2).await?;
/// let proxy = Twemproxy::builder()
///     .named_server(nodes.addrs()[0].clone(), 1, "a")
///     .named_server(nodes.addrs()[1].clone(), 1, "b")
///     .hash(TwemproxyHash::Md5)
///     .hash_tag("{}")
///     .start()
///     .await?;
/// let mut conn = proxy.connection().await?;
/// let _: () = redis::cmd("SET").arg("{user:1}:name").arg("Ada").query_async(&mut conn).await?;
/// # Ok(()) }
/// # type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;
/// ```
#[derive(Debug)]
pub struct Twemproxy {
    child: Child,
    lease: PortLease,
    stats: PortLease,
    config: String,
    dir: TempDir,
    binary: PathBuf,
}

impl Twemproxy {
    /// A builder with no servers, `hash: fnv1a_64`, `distribution: ketama`, no hash tag.
    pub fn builder() -> TwemproxyBuilder {
        TwemproxyBuilder {
            servers: Vec::new(),
            hash: TwemproxyHash::Fnv1a64,
            hash_tag: None,
            options: [
                ("distribution", "ketama"),
                ("redis", "true"),
                ("auto_eject_hosts", "false"),
                ("timeout", "5000"),
                ("server_connections", "1"),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
            nutcracker: None,
            timeout: Duration::from_secs(10),
        }
    }

    /// Starts a proxy with the builder's defaults over `addrs` (`host:port`, weight 1 each,
    /// unnamed).
    pub async fn start<S: AsRef<str>>(addrs: &[S]) -> Result<Twemproxy> {
        addrs
            .iter()
            .fold(Self::builder(), |b, a| b.server(a.as_ref(), 1))
            .start()
            .await
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.lease.port()
    }

    /// `"127.0.0.1:<port>"`.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port())
    }

    /// The port of its stats server (JSON on connect).
    pub fn stats_port(&self) -> u16 {
        self.stats.port()
    }

    /// The config it was started with (YAML).
    pub fn config(&self) -> &str {
        &self.config
    }

    /// Its directory: `nutcracker.yml`, `nutcracker.log`, `stderr.log`.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The executable that runs.
    pub fn binary(&self) -> &Path {
        &self.binary
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The last lines of its log and stderr.
    pub fn log_tail(&self) -> String {
        log_tail(self.dir(), &["nutcracker.log", "stderr.log"])
    }

    /// Opens a connection through the proxy (1 s connect, 5 s response timeout). It sends no
    /// `CLIENT SETINFO`: twemproxy closes connections that send commands it does not know.
    pub async fn connection(&self) -> Result<MultiplexedConnection> {
        connect(self.port(), None, USER_RESPONSE_TIMEOUT)
            .await
            .map_err(|e| TestkitError::redis(format!("connecting to {}", self.addr()), e))
    }
}

impl Drop for Twemproxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
