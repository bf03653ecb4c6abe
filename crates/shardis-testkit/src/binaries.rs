//! Finding the `redis-server`, `redis-cli` and `nutcracker` (twemproxy) executables.

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};

use crate::error::{Result, TestkitError};

/// One of the executables the testkit runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Binary {
    /// `redis-server`, overridden by `SHARDIS_REDIS_SERVER`.
    Server,
    /// `redis-cli`, overridden by `SHARDIS_REDIS_CLI`.
    Cli,
    /// `nutcracker` (twemproxy), overridden by `SHARDIS_NUTCRACKER`. Debian installs it in
    /// `/usr/sbin`, which is searched after `$PATH`.
    Nutcracker,
}

impl Binary {
    /// The executable's file name.
    pub fn name(self) -> &'static str {
        match self {
            Binary::Server => "redis-server",
            Binary::Cli => "redis-cli",
            Binary::Nutcracker => "nutcracker",
        }
    }

    /// The environment variable that, when set, names the executable to use.
    pub fn env_var(self) -> &'static str {
        match self {
            Binary::Server => "SHARDIS_REDIS_SERVER",
            Binary::Cli => "SHARDIS_REDIS_CLI",
            Binary::Nutcracker => "SHARDIS_NUTCRACKER",
        }
    }

    /// The Debian/Ubuntu packages that install it (and its companions).
    pub fn packages(self) -> &'static str {
        match self {
            Binary::Server | Binary::Cli => "redis-server redis-tools",
            Binary::Nutcracker => "nutcracker",
        }
    }

    /// Directories searched after `$PATH`: where Debian puts it when that is not on every
    /// user's `$PATH`.
    fn fallback_dirs(self) -> &'static [&'static str] {
        match self {
            Binary::Server | Binary::Cli => &[],
            Binary::Nutcracker => &["/usr/sbin"],
        }
    }

    /// Looks the executable up from the real environment: its override variable
    /// ([`env_var`](Self::env_var)) if set, else `$PATH` (then the fallback directories).
    pub fn locate(self) -> Result<PathBuf> {
        locate(
            self,
            std::env::var_os(self.env_var()).as_deref(),
            std::env::var_os("PATH").as_deref(),
        )
    }
}

/// Looks `binary` up without reading the environment, so tests can exercise every branch
/// without mutating process-global state.
///
/// `override_path` is the value of the override variable (an explicit path that must exist);
/// otherwise every directory of `path_var` (a `$PATH`-style list) is searched, then the
/// binary's fallback directories (`/usr/sbin` for `nutcracker`).
///
/// ```
/// use shardis_testkit::{Binary, TestkitError, locate};
/// let err = locate(Binary::Server, Some("/nonexistent/redis-server".as_ref()), None).unwrap_err();
/// assert!(matches!(err, TestkitError::BinaryNotFound { .. }));
/// assert!(err.to_string().starts_with("redis-server not found on PATH: install it with"));
/// ```
pub fn locate(
    binary: Binary,
    override_path: Option<&OsStr>,
    path_var: Option<&OsStr>,
) -> Result<PathBuf> {
    let not_found = |detail: String| TestkitError::BinaryNotFound {
        binary: binary.name(),
        packages: binary.packages(),
        env_var: binary.env_var(),
        detail,
    };
    if let Some(explicit) = override_path.filter(|p| !p.is_empty()) {
        let path = PathBuf::from(explicit);
        return if is_executable(&path) {
            Ok(path)
        } else {
            Err(not_found(format!(
                " (the configured {} is not an executable file)",
                path.display()
            )))
        };
    }
    let mut dirs: Vec<PathBuf> = path_var
        .map(|p| std::env::split_paths(p).collect())
        .unwrap_or_default();
    dirs.extend(binary.fallback_dirs().iter().map(PathBuf::from));
    dirs.iter()
        .map(|dir| dir.join(binary.name()))
        .find(|candidate| is_executable(candidate))
        .ok_or_else(|| not_found(String::new()))
}

/// Resolves an explicit path configured on a builder, falling back to the environment.
pub(crate) fn resolve(binary: Binary, explicit: Option<&OsString>) -> Result<PathBuf> {
    match explicit {
        Some(path) => locate(binary, Some(path), None),
        None => binary.locate(),
    }
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}
