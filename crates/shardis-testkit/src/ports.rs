//! Leasing loopback ports that no other test, in this process or another, is using.
//!
//! Ports are drawn at random from 10000..22768 so that both the client port P and the
//! cluster bus port P+10000 stay below the kernel's ephemeral range (32768+ on Linux): ports
//! handed out for outgoing connections and `bind(:0)` never land on them. A lock file per
//! port under the temp dir keeps concurrent test processes apart; a bind test catches
//! foreign listeners. The remaining race (someone binds between our test and redis-server's
//! bind) is handled by the caller, which retries with a new lease when redis-server reports
//! "Address already in use".

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use crate::error::{Result, TestkitError};

const LOW: u16 = 10_000;
const HIGH: u16 = 22_768;
/// Offset of the cluster bus port, fixed by Redis unless `cluster-port` is set.
pub(crate) const BUS_OFFSET: u16 = 10_000;
const ATTEMPTS: usize = 200;
/// A lock file whose owner cannot be identified is considered abandoned after this long.
const STALE_AFTER: Duration = Duration::from_secs(3600);

/// A port (and, for cluster nodes, its bus port) reserved until dropped.
#[derive(Debug)]
pub(crate) struct PortLease {
    port: u16,
    lock: PathBuf,
}

impl PortLease {
    /// Leases a free port; with `bus`, P+10000 must be free too.
    pub(crate) fn acquire(bus: bool) -> Result<Self> {
        let dir = std::env::temp_dir().join("shardis-testkit-ports");
        std::fs::create_dir_all(&dir)
            .map_err(|e| TestkitError::io(format!("creating {}", dir.display()), e))?;
        for _ in 0..ATTEMPTS {
            let port = LOW + (random() % u64::from(HIGH - LOW)) as u16;
            let lock = dir.join(port.to_string());
            if !try_lock(&lock) {
                continue;
            }
            let lease = PortLease { port, lock };
            if bindable(port) && (!bus || bindable(port + BUS_OFFSET)) {
                return Ok(lease);
            }
            // Dropping the lease releases the lock file of a port someone else listens on.
        }
        Err(TestkitError::NoFreePort { attempts: ATTEMPTS })
    }

    pub(crate) fn port(&self) -> u16 {
        self.port
    }
}

impl Drop for PortLease {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.lock);
    }
}

fn random() -> u64 {
    // RandomState is seeded per instance from the OS, which is all the randomness we need.
    let mut h = RandomState::new().build_hasher();
    h.write_u32(std::process::id());
    h.finish()
}

fn bindable(port: u16) -> bool {
    TcpListener::bind(("127.0.0.1", port)).is_ok()
}

/// Creates the lock file, first clearing it if its owner is gone.
fn try_lock(lock: &Path) -> bool {
    if create(lock) {
        return true;
    }
    if is_stale(lock) {
        let _ = std::fs::remove_file(lock);
        return create(lock);
    }
    false
}

fn create(lock: &Path) -> bool {
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(lock)
    {
        Ok(mut f) => {
            let _ = write!(f, "{}", std::process::id());
            true
        }
        Err(_) => false,
    }
}

/// A lock is stale when the process that wrote it no longer exists (a test binary that was
/// killed before its destructors ran), or, if it names no process, when it is old.
fn is_stale(lock: &Path) -> bool {
    let owner = std::fs::read_to_string(lock)
        .ok()
        .and_then(|s| s.trim().parse::<i32>().ok());
    match owner {
        // A live owner keeps its lock however old it is (a long demo); a reused pid only
        // costs us one port.
        Some(pid) if pid > 0 => {
            nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None)
                == Err(nix::errno::Errno::ESRCH)
        }
        _ => age(lock).is_none_or(|a| a > STALE_AFTER),
    }
}

fn age(lock: &Path) -> Option<Duration> {
    let modified = std::fs::metadata(lock).and_then(|m| m.modified()).ok()?;
    SystemTime::now().duration_since(modified).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leases_are_distinct_bindable_and_released() {
        let a = PortLease::acquire(true).unwrap();
        let b = PortLease::acquire(true).unwrap();
        assert_ne!(a.port(), b.port());
        assert!((LOW..HIGH).contains(&a.port()));
        assert!(bindable(a.port()) && bindable(a.port() + BUS_OFFSET));
        let lock = a.lock.clone();
        assert!(lock.exists());
        drop(a);
        assert!(!lock.exists());
    }

    #[test]
    fn a_lock_left_by_a_dead_process_is_reclaimed() {
        let dir = tempfile::tempdir().unwrap();
        let lock = dir.path().join("12345");
        // A pid far above pid_max: no such process.
        std::fs::write(&lock, "2147483000").unwrap();
        assert!(try_lock(&lock));
        assert_eq!(
            std::fs::read_to_string(&lock).unwrap(),
            std::process::id().to_string()
        );
        // Now held by a live process (us): not reclaimable.
        assert!(!try_lock(&lock));
    }
}
