//! A missing redis-server is one clear error that says how to install it, not a skip.

use shardis_testkit::{Binary, Cluster, Standalone, TestkitError, locate};

const ADVICE: &str = "redis-server not found on PATH: install it with `sudo apt-get install -y redis-server redis-tools` \
                      (Debian/Ubuntu) or set SHARDIS_REDIS_SERVER=/path/to/redis-server";

#[tokio::test]
async fn a_missing_redis_server_fails_start_with_install_advice() {
    for err in [
        Cluster::builder()
            .redis_server("/nonexistent/redis-server")
            .start()
            .await
            .unwrap_err(),
        Standalone::builder()
            .redis_server("/nonexistent/redis-server")
            .start()
            .await
            .unwrap_err(),
    ] {
        assert!(
            matches!(
                err,
                TestkitError::BinaryNotFound {
                    binary: "redis-server",
                    ..
                }
            ),
            "{err:?}"
        );
        assert!(err.to_string().starts_with(ADVICE), "{err}");
        assert!(
            err.to_string().contains("/nonexistent/redis-server"),
            "names the bad path: {err}"
        );
    }
}

#[test]
fn lookup_uses_the_override_then_path_without_touching_the_environment() {
    // Nothing on an empty PATH, no override: exactly the advice.
    let err = locate(Binary::Server, None, Some("/nonexistent-dir".as_ref())).unwrap_err();
    assert_eq!(err.to_string(), ADVICE);
    let err = locate(Binary::Cli, None, None).unwrap_err();
    assert!(
        err.to_string().starts_with("redis-cli not found on PATH"),
        "{err}"
    );
    assert!(
        err.to_string()
            .contains("SHARDIS_REDIS_CLI=/path/to/redis-cli"),
        "{err}"
    );
    // A directory is not an executable.
    assert!(locate(Binary::Server, Some("/tmp".as_ref()), None).is_err());
    // The override wins over PATH; PATH is searched in order.
    let dir = tempfile::tempdir().unwrap();
    let fake = dir.path().join("redis-server");
    std::fs::write(&fake, "#!/bin/sh\n").unwrap();
    std::fs::set_permissions(&fake, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let path =
        std::env::join_paths([std::path::Path::new("/nonexistent-dir"), dir.path()]).unwrap();
    assert_eq!(locate(Binary::Server, None, Some(&path)).unwrap(), fake);
    assert_eq!(
        locate(Binary::Server, Some(fake.as_os_str()), None).unwrap(),
        fake
    );
}
