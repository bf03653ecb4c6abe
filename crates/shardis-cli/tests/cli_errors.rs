//! Failures are one line on stderr and a non-zero exit.

mod common;

use common::shardis;

fn one_line_error(args: &[&str], expect: &str) {
    one_line_error_env(args, &[], expect);
}

fn one_line_error_env(args: &[&str], env: &[(&str, &str)], expect: &str) {
    let out = common::shardis_env(args, None, env);
    assert!(!out.status.success(), "{args:?} succeeded");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{args:?}: {stderr}");
    assert!(lines[0].starts_with("error: "), "{stderr}");
    assert!(lines[0].contains(expect), "{args:?}: {stderr}");
}

#[test]
fn bad_addresses_and_arguments_give_one_line() {
    one_line_error(
        &["locate", "--cluster", "not-an-address", "k"],
        "expected HOST:PORT",
    );
    one_line_error(
        &["topology", "--cluster", "localhost:99999"],
        "expected HOST:PORT",
    );
    // Nothing listens on port 1.
    one_line_error(
        &["locate", "--cluster", "127.0.0.1:1", "k"],
        "cannot use the Redis Cluster at 127.0.0.1:1",
    );
    one_line_error(
        &["topology", "--cluster", "127.0.0.1:1"],
        "cannot read the slot map of 127.0.0.1:1",
    );
    one_line_error(
        &["demo", "--cluster", "127.0.0.1:1", "--duration", "1s"],
        "127.0.0.1:1",
    );
    one_line_error(&["ring", "--nodes", "a=0"], "bad weight");
    one_line_error(
        &["ring", "--nodes", "3", "--weights", "1,2"],
        "--weights has 2 values for 3 nodes",
    );
    one_line_error(&["locate", "k"], "--cluster HOST:PORT");
}

#[test]
fn every_command_has_examples_in_its_help() {
    for cmd in ["demo", "locate", "topology", "ring", "bench"] {
        let out = shardis(&[cmd, "--help"], None);
        assert!(out.status.success());
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.contains("Examples:\n  shardis"),
            "{cmd} --help:\n{text}"
        );
    }
}

#[test]
fn a_missing_redis_server_says_how_to_install_it() {
    let env = [("SHARDIS_REDIS_SERVER", "/nonexistent/redis-server")];
    one_line_error_env(
        &["demo", "--duration", "1s"],
        &env,
        "apt-get install -y redis-server",
    );
    one_line_error_env(
        &["bench", "--duration", "1s"],
        &env,
        "SHARDIS_REDIS_SERVER=",
    );
}
