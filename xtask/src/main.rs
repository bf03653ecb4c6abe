//! Project tasks, so that a newcomer needs nothing but the Rust toolchain:
//!
//! - `cargo xtask test`: brings `redis-server` (and `nutcracker`) when missing, then runs the
//!   whole test suite;
//! - `cargo xtask demo [ARGS]`: brings `redis-server`, then runs `shardis demo`;
//! - `cargo xtask fuzz-smoke [SECONDS]`: runs every fuzz target briefly (installs cargo-fuzz).
//!
//! std only, so it builds in a second on a fresh machine.

use std::env;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

/// Debian packages the tests and the demo need, and the binaries that prove they are there.
const PACKAGES: &[(&str, &str)] = &[
    ("redis-server", "redis-server"),
    ("redis-cli", "redis-tools"),
    ("nutcracker", "nutcracker"),
];

/// The fuzz targets declared in fuzz/Cargo.toml.
const FUZZ_TARGETS: &[&str] = &[
    "resp_topology",
    "cluster_nodes",
    "redirect",
    "ring_ops",
    "resp_reply",
];

fn main() -> ExitCode {
    let args: Vec<String> = env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("test") => ensure_packages().and_then(|()| test(&args[1..])),
        Some("demo") => ensure_packages().and_then(|()| demo(&args[1..])),
        Some("fuzz-smoke") => fuzz_smoke(args.get(1).map(String::as_str)),
        Some("deps") => ensure_packages(),
        _ => Err("usage: cargo xtask <test [CARGO TEST ARGS] | demo [ARGS] | fuzz-smoke [SECONDS] | deps>".into()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(msg) => {
            eprintln!("xtask: {msg}");
            ExitCode::FAILURE
        }
    }
}

fn workspace_root() -> PathBuf {
    // xtask/ sits directly under the workspace root.
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

fn on_path(binary: &str) -> bool {
    // Debian puts nutcracker in /usr/sbin, which is not on every user's PATH.
    let paths = env::var_os("PATH").unwrap_or_default();
    env::split_paths(&paths)
        .chain([PathBuf::from("/usr/sbin")])
        .any(|dir| dir.join(binary).is_file())
}

/// Installs the missing Debian packages with apt-get when this user may (root, or sudo without a
/// password); otherwise says exactly which command to run.
fn ensure_packages() -> Result<(), String> {
    let missing: Vec<&str> = PACKAGES
        .iter()
        .filter(|(binary, _)| !on_path(binary))
        .map(|(_, package)| *package)
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    let manual = format!("sudo apt-get install -y {}", missing.join(" "));
    if !on_path("apt-get") {
        return Err(format!(
            "missing {missing:?} and no apt-get here: install Redis 7 (redis-server, redis-cli) and twemproxy (nutcracker) and put them on PATH"
        ));
    }
    let is_root = Command::new("id")
        .arg("-u")
        .output()
        .map(|o| o.stdout.starts_with(b"0"))
        .unwrap_or(false);
    let prefix: Vec<&str> = if is_root {
        vec![]
    } else if Command::new("sudo")
        .args(["-n", "true"])
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
    {
        vec!["sudo", "-n"]
    } else {
        return Err(format!("missing {missing:?}; run: {manual}"));
    };
    eprintln!("xtask: installing {missing:?} with apt-get");
    let apt = |args: &[&str]| -> bool {
        let mut all: Vec<&str> = prefix.clone();
        all.push("apt-get");
        all.extend_from_slice(args);
        Command::new(all[0])
            .args(&all[1..])
            .env("DEBIAN_FRONTEND", "noninteractive")
            .status()
            .map(|s| s.success())
            .unwrap_or(false)
    };
    let mut install = vec!["install", "-y", "-q"];
    install.extend(missing.iter().copied());
    // A fresh machine may have empty package lists: update once, then try again.
    let installed = apt(&install) || (apt(&["update", "-q"]) && apt(&install));
    if !installed {
        return Err(format!(
            "apt-get could not install {missing:?}; run: {manual}"
        ));
    }
    Ok(())
}

fn run(cmd: &mut Command) -> Result<(), String> {
    let shown = format!("{cmd:?}");
    if cmd.get_current_dir().is_none() {
        cmd.current_dir(workspace_root());
    }
    let status = cmd.status().map_err(|e| format!("{shown}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{shown} failed: {status}"))
    }
}

fn cargo() -> Command {
    Command::new(env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
}

/// The whole suite: unit, property, integration and doc tests of every crate.
fn test(extra: &[String]) -> Result<(), String> {
    run(cargo().args(["test", "--workspace"]).args(extra))
}

fn demo(extra: &[String]) -> Result<(), String> {
    run(cargo()
        .args([
            "run",
            "--release",
            "--quiet",
            "-p",
            "shardis-cli",
            "--",
            "demo",
        ])
        .args(extra))
}

/// Runs each fuzz target for a few seconds from its checked-in seeds: a smoke test that the
/// targets build and do not crash at once. Long runs are `cargo fuzz run <target>` by hand.
fn fuzz_smoke(seconds: Option<&str>) -> Result<(), String> {
    let seconds = seconds.unwrap_or("10");
    if !Command::new("cargo")
        .args(["fuzz", "--version"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
    {
        run(cargo().args(["install", "--locked", "cargo-fuzz"]))?;
    }
    let fuzz_dir = workspace_root().join("fuzz");
    for target in FUZZ_TARGETS {
        let corpus = env::temp_dir().join(format!("shardis-fuzz-smoke-{target}"));
        std::fs::create_dir_all(&corpus).map_err(|e| format!("{}: {e}", corpus.display()))?;
        let seeds = fuzz_dir.join("seeds").join(target);
        run(cargo()
            .current_dir(&fuzz_dir)
            .env("RUSTC_BOOTSTRAP", "1")
            .args(["fuzz", "run", target])
            .arg(&corpus)
            .arg(&seeds)
            .arg("--")
            .arg(format!("-max_total_time={seconds}")))
        .map_err(|e| format!("fuzz target {target}: {e}"))?;
    }
    Ok(())
}
