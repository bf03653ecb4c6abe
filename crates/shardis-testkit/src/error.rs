//! The one error type of the crate.

use std::path::PathBuf;
use std::process::ExitStatus;
use std::time::Duration;

/// Result alias used throughout the testkit.
pub type Result<T, E = TestkitError> = std::result::Result<T, E>;

/// Everything that can go wrong while starting or driving test servers.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TestkitError {
    /// An executable could not be found. The message says how to install it.
    #[error(
        "{binary} not found on PATH: install it with `sudo apt-get install -y {packages}` \
         (Debian/Ubuntu) or set {env_var}=/path/to/{binary}{detail}"
    )]
    BinaryNotFound {
        /// `redis-server`, `redis-cli` or `nutcracker`.
        binary: &'static str,
        /// The Debian/Ubuntu packages that install it.
        packages: &'static str,
        /// The environment variable that overrides the lookup.
        env_var: &'static str,
        /// Extra detail, e.g. which explicitly configured path does not exist (may be empty).
        detail: String,
    },
    /// A local I/O operation (temp dir, config file, spawning a process) failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A command sent to a node failed.
    #[error("{context}: {source}")]
    Redis {
        /// The command and the node it was sent to.
        context: String,
        /// The underlying error.
        #[source]
        source: redis::RedisError,
    },
    /// A node replied with something this crate could not interpret.
    #[error("unexpected reply to {context}: {detail}")]
    UnexpectedReply {
        /// The command and the node it was sent to.
        context: String,
        /// What was wrong with the reply.
        detail: String,
    },
    /// A redis-server process exited while it was being started.
    #[error("redis-server on port {port} exited during startup ({status}); log tail:\n{log_tail}")]
    ServerExited {
        /// The port it was started on.
        port: u16,
        /// Its exit status.
        status: ExitStatus,
        /// The last lines of its log file and stderr.
        log_tail: String,
    },
    /// twemproxy (`nutcracker`) exited while it was being started.
    #[error("nutcracker on port {port} exited during startup ({status}); log tail:\n{log_tail}")]
    TwemproxyExited {
        /// The port it was to listen on.
        port: u16,
        /// Its exit status.
        status: ExitStatus,
        /// The last lines of its log file and stderr.
        log_tail: String,
    },
    /// No port pair could be leased, or redis-server kept failing to bind.
    #[error("no free port found after {attempts} attempts")]
    NoFreePort {
        /// How many candidates were tried.
        attempts: usize,
    },
    /// A condition polled for did not hold before the deadline.
    #[error("timed out after {waited:?} waiting for {what}; last observed state: {last_state}")]
    Timeout {
        /// The condition.
        what: String,
        /// How long it was polled.
        waited: Duration,
        /// What the last poll saw.
        last_state: String,
    },
    /// `redis-cli` exited unsuccessfully.
    #[error("{program:?} {args:?} failed ({status}):\nstdout:\n{stdout}\nstderr:\n{stderr}")]
    RedisCli {
        /// The redis-cli binary.
        program: PathBuf,
        /// Its arguments (a password, if any, is masked).
        args: Vec<String>,
        /// Its exit status.
        status: ExitStatus,
        /// What it printed on stdout.
        stdout: String,
        /// What it printed on stderr.
        stderr: String,
    },
    /// The node does not belong to this cluster or standalone set.
    #[error("node {addr} is not managed by this handle")]
    UnknownNode {
        /// The node's address.
        addr: String,
    },
    /// The operation needs a running node, but it was killed or paused.
    #[error("node {addr} is {state:?}, not running")]
    NotRunning {
        /// The node's address.
        addr: String,
        /// Its current process state.
        state: crate::ProcessState,
    },
    /// An argument or builder setting cannot work.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
}

impl TestkitError {
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Self::Io {
            context: context.into(),
            source,
        }
    }

    pub(crate) fn redis(context: impl Into<String>, source: redis::RedisError) -> Self {
        Self::Redis {
            context: context.into(),
            source,
        }
    }

    pub(crate) fn reply(context: impl Into<String>, detail: impl Into<String>) -> Self {
        Self::UnexpectedReply {
            context: context.into(),
            detail: detail.into(),
        }
    }
}
