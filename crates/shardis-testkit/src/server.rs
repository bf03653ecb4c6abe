//! One redis-server process: its port lease, its directory, its config file, its lifecycle.
//!
//! The process is spawned in the foreground (`daemonize no`) so that we own it: `Drop`
//! SIGKILLs and reaps it, including when a test panics. Everything the server needs is
//! written to `<dir>/redis.conf`, so a restart uses exactly the same settings, and the
//! directory (with `nodes.conf`) outlives the process until the handle is dropped.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tempfile::TempDir;

use crate::error::{Result, TestkitError};
use crate::node::{Auth, connect};
use crate::ports::PortLease;

/// What the testkit last did to a node's process.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProcessState {
    /// Started (or resumed) and not since stopped.
    Running,
    /// Stopped with SIGSTOP; it holds its sockets but answers nothing.
    Paused,
    /// Killed with SIGKILL (and reaped), or exited on its own.
    Killed,
}

/// How to start a server; shared by all nodes of a cluster or standalone set.
#[derive(Clone, Debug)]
pub(crate) struct ServerSpec {
    pub(crate) binary: PathBuf,
    /// Whether a cluster bus port (P+10000) is needed.
    pub(crate) cluster: bool,
    /// `redis.conf` lines after the port/dir lines; later lines override earlier ones.
    pub(crate) lines: Vec<String>,
    pub(crate) auth: Option<Auth>,
    /// Whether the server gets a TLS port too (its TLS lines are in `lines`).
    pub(crate) tls: bool,
    /// How long to wait for the first PONG.
    pub(crate) startup_timeout: Duration,
    /// Command-line arguments after the config file (`--sentinel`).
    pub(crate) args: Vec<String>,
}

#[derive(Debug)]
struct Proc {
    child: Option<Child>,
    state: ProcessState,
}

#[derive(Debug)]
pub(crate) struct Server {
    lease: PortLease,
    /// The TLS port, when the spec asks for TLS.
    tls_lease: Option<PortLease>,
    dir: TempDir,
    spec: ServerSpec,
    proc: Mutex<Proc>,
}

/// Why a start attempt failed: a port conflict is retried with another port.
enum StartError {
    AddrInUse,
    Fatal(TestkitError),
}

const PORT_ATTEMPTS: usize = 8;
const POLL: Duration = Duration::from_millis(20);

impl Server {
    /// Starts a server on a fresh port and waits until it answers PING.
    pub(crate) async fn start(spec: &ServerSpec) -> Result<Server> {
        for _ in 0..PORT_ATTEMPTS {
            let lease = PortLease::acquire(spec.cluster)?;
            let tls_lease = if spec.tls {
                Some(PortLease::acquire(false)?)
            } else {
                None
            };
            let dir = tempfile::Builder::new()
                .prefix(&format!("shardis-testkit-{}-", lease.port()))
                .tempdir()
                .map_err(|e| TestkitError::io("creating a node directory", e))?;
            let server = Server {
                lease,
                tls_lease,
                dir,
                spec: spec.clone(),
                proc: Mutex::new(Proc {
                    child: None,
                    state: ProcessState::Killed,
                }),
            };
            server.write_config()?;
            match server.launch().await {
                Ok(()) => return Ok(server),
                Err(StartError::AddrInUse) => {
                    tracing::debug!(port = server.port(), "port taken, retrying with another");
                    continue;
                }
                Err(StartError::Fatal(e)) => return Err(e),
            }
        }
        Err(TestkitError::NoFreePort {
            attempts: PORT_ATTEMPTS,
        })
    }

    pub(crate) fn port(&self) -> u16 {
        self.lease.port()
    }

    pub(crate) fn tls_port(&self) -> Option<u16> {
        self.tls_lease.as_ref().map(PortLease::port)
    }

    pub(crate) fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The state, noticing a process that exited on its own (reported as `Killed`).
    pub(crate) fn state(&self) -> ProcessState {
        self.exited();
        self.lock().state
    }

    pub(crate) fn pid(&self) -> Option<u32> {
        self.lock().child.as_ref().map(Child::id)
    }

    /// SIGKILL, then reap, so the pid is gone when this returns.
    pub(crate) fn kill(&self) {
        let mut proc = self.lock();
        if let Some(mut child) = proc.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        proc.state = ProcessState::Killed;
    }

    pub(crate) fn pause(&self) -> Result<()> {
        self.signal(Signal::SIGSTOP, ProcessState::Paused)
    }

    pub(crate) fn resume(&self) -> Result<()> {
        self.signal(Signal::SIGCONT, ProcessState::Running)
    }

    /// Kills the process if it runs, then starts it again on the same port and directory.
    pub(crate) async fn restart(&self) -> Result<()> {
        self.kill();
        match self.launch().await {
            Ok(()) => Ok(()),
            Err(StartError::AddrInUse) => Err(TestkitError::InvalidArgument(format!(
                "cannot restart 127.0.0.1:{}: the port is now used by another process",
                self.port()
            ))),
            Err(StartError::Fatal(e)) => Err(e),
        }
    }

    fn signal(&self, signal: Signal, new_state: ProcessState) -> Result<()> {
        let mut proc = self.lock();
        let Some(child) = proc.child.as_ref() else {
            return Err(TestkitError::NotRunning {
                addr: self.addr(),
                state: proc.state,
            });
        };
        let pid = Pid::from_raw(child.id() as i32);
        kill(pid, signal).map_err(|e| {
            TestkitError::io(format!("sending {signal} to {}", self.addr()), e.into())
        })?;
        proc.state = new_state;
        Ok(())
    }

    fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port())
    }

    fn lock(&self) -> MutexGuard<'_, Proc> {
        // A panic while holding the lock cannot leave Proc inconsistent; keep going.
        self.proc
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn write_config(&self) -> Result<()> {
        let dir = self.dir();
        let mut conf = format!(
            "port {port}\nbind 127.0.0.1\nprotected-mode no\ndaemonize no\ndir {d}\nlogfile {log}\n",
            port = self.port(),
            d = quote_path(dir),
            log = quote_path(&dir.join("redis.log")),
        );
        if let Some(tls_port) = self.tls_port() {
            conf.push_str(&format!("tls-port {tls_port}\n"));
            if self.spec.cluster {
                // With tls-cluster the bus would follow the TLS port; keep it at P+10000,
                // where the lease reserved it and where CLUSTER MEET looks.
                conf.push_str(&format!(
                    "cluster-port {}\n",
                    self.port() + crate::ports::BUS_OFFSET
                ));
            }
        }
        for line in &self.spec.lines {
            conf.push_str(line);
            conf.push('\n');
        }
        let path = dir.join("redis.conf");
        std::fs::write(&path, conf)
            .map_err(|e| TestkitError::io(format!("writing {}", path.display()), e))
    }

    /// Spawns the process and polls PING; watches for an early exit.
    async fn launch(&self) -> std::result::Result<(), StartError> {
        let fatal = StartError::Fatal;
        let dir = self.dir();
        let child = spawn_in(
            dir,
            &self.spec.binary,
            std::iter::once(dir.join("redis.conf").into_os_string())
                .chain(self.spec.args.iter().map(std::ffi::OsString::from)),
        )
        .map_err(fatal)?;
        *self.lock() = Proc {
            child: Some(child),
            state: ProcessState::Running,
        };

        let started = Instant::now();
        loop {
            if let Some(status) = self.exited() {
                let log_tail = self.log_tail();
                return Err(if log_tail.contains("Address already in use") {
                    StartError::AddrInUse
                } else {
                    fatal(TestkitError::ServerExited {
                        port: self.port(),
                        status,
                        log_tail,
                    })
                });
            }
            if self.pings().await {
                return Ok(());
            }
            if started.elapsed() > self.spec.startup_timeout {
                self.kill();
                return Err(fatal(TestkitError::Timeout {
                    what: format!("redis-server on port {} to answer PING", self.port()),
                    waited: started.elapsed(),
                    last_state: self.log_tail(),
                }));
            }
            tokio::time::sleep(POLL).await;
        }
    }

    fn exited(&self) -> Option<std::process::ExitStatus> {
        let mut proc = self.lock();
        let status = proc.child.as_mut()?.try_wait().ok()??;
        proc.child = None;
        proc.state = ProcessState::Killed;
        Some(status)
    }

    async fn pings(&self) -> bool {
        let Ok(mut conn) =
            connect(self.port(), self.spec.auth.as_ref(), Duration::from_secs(1)).await
        else {
            return false;
        };
        redis::cmd("PING")
            .query_async::<String>(&mut conn)
            .await
            .is_ok()
    }

    /// The last lines of the server's log and stderr, for error messages.
    pub(crate) fn log_tail(&self) -> String {
        log_tail(self.dir(), &["redis.log", "stderr.log"])
    }
}

/// Spawns `binary args` in the foreground in `dir`, stdin and stdout to /dev/null, stderr to
/// `dir/stderr.log`.
pub(crate) fn spawn_in(
    dir: &Path,
    binary: &Path,
    args: impl IntoIterator<Item = impl AsRef<std::ffi::OsStr>>,
) -> Result<Child> {
    let stderr = std::fs::File::create(dir.join("stderr.log"))
        .map_err(|e| TestkitError::io("creating stderr.log", e))?;
    Command::new(binary)
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .map_err(|e| TestkitError::io(format!("spawning {}", binary.display()), e))
}

/// The last 15 lines of each of the files `names` in `dir` (missing files count as empty),
/// for error messages.
pub(crate) fn log_tail(dir: &Path, names: &[&str]) -> String {
    let mut out = String::new();
    for name in names {
        let text = std::fs::read_to_string(dir.join(name)).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        for line in &lines[lines.len().saturating_sub(15)..] {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Quotes a path for redis.conf.
fn quote_path(path: &Path) -> String {
    crate::settings::quote(&path.display().to_string())
}
