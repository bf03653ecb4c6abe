//! `AUTH` with an ACL user and password, given to the builder or in connection URLs: the
//! client works, what cannot work is refused before anything connects with a sentence, and
//! the password appears in no `Debug` output and no error.

use redis::AsyncCommands;
use shardis::Error;
use shardis_testkit::Cluster;

const PASSWORD: &str = "pw-9f3c1e7a-do-not-leak";

async fn acl_cluster() -> Cluster {
    Cluster::builder()
        .primaries(3)
        .replicas_per_primary(0)
        .acl_user("cache-app", PASSWORD)
        .start()
        .await
        .expect("cluster with ACL user")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acl_user_authenticates_and_the_password_never_leaks() {
    let cluster = acl_cluster().await;

    let mut client = shardis::Client::builder()
        .cluster(cluster.seeds())
        .username("cache-app")
        .password(PASSWORD)
        .build()
        .await
        .expect("authenticated client");
    let _: () = client
        .set("auth:k", "v")
        .await
        .expect("write as the ACL user");
    let v: String = client.get("auth:k").await.unwrap();
    assert_eq!(v, "v");
    let shown = format!("{client:?}");
    assert!(
        !shown.contains(PASSWORD),
        "Debug shows the password: {shown}"
    );

    // A wrong password: a clear error that names the seed, and never shows the secret.
    let wrong = format!("{PASSWORD}-wrong");
    let err = shardis::Client::builder()
        .cluster(cluster.seeds())
        .username("cache-app")
        .password(wrong.clone())
        .build()
        .await
        .expect_err("wrong password refused");
    let text = format!("{err} {err:?}");
    assert!(!text.contains(PASSWORD), "error shows the password: {text}");
    assert!(text.contains(&cluster.seeds()[0]), "{text}");
    assert!(
        matches!(&err, shardis::Error::Auth { user: Some(u), .. } if u == "cache-app"),
        "a typed credentials error naming the user: {err}"
    );

    // No credentials at all: refused as well, as a credentials problem (NOAUTH), not as an
    // unreachable node.
    let err = shardis::Client::builder()
        .cluster(cluster.seeds())
        .build()
        .await
        .expect_err("no auth");
    assert!(
        matches!(&err, shardis::Error::Auth { user: None, message, .. } if message.contains("NOAUTH")),
        "{err}"
    );
}

/// The configuration error `build` gives for a cluster seeded by `url`.
async fn refused(url: String) -> String {
    match shardis::Client::builder().cluster([url]).build().await {
        Err(Error::Config(message)) => message,
        Err(other) => panic!("expected a config error, got {other}"),
        Ok(_) => panic!("expected a config error, got a client"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_url_with_user_and_password_logs_in_and_the_rest_is_refused_clearly() {
    let cluster = acl_cluster().await;
    let seed = &cluster.seeds()[0];
    // Every character of the password percent-encoded: decoding is what logs in.
    let encoded: String = PASSWORD.bytes().map(|b| format!("%{b:02X}")).collect();

    let mut client = shardis::Client::builder()
        .cluster([format!("redis://cache-app:{encoded}@{seed}/0")])
        .build()
        .await
        .expect("URL with user and password");
    let () = client.set("url:k", "v").await.expect("write as cache-app");
    let v: String = client.get("url:k").await.expect("read");
    assert_eq!(v, "v");
    assert!(!format!("{client:?}").contains(PASSWORD));

    // A wrong password in the URL: refused by the server, the secret not shown.
    let err = shardis::Client::builder()
        .cluster_urls([format!("redis://cache-app:{PASSWORD}-wrong@{seed}")])
        .build()
        .await
        .expect_err("wrong password");
    let text = format!("{err} {err:?}");
    assert!(!text.contains(PASSWORD), "{text}");
    assert!(text.contains(seed.as_str()), "{text}");

    // rediss:// asks for TLS, which this plaintext port does not speak: a TLS error naming
    // the seed, never a host-name lookup, and without the password.
    let tls = shardis::Client::builder()
        .cluster([format!("rediss://cache-app:{PASSWORD}@{seed}")])
        .build()
        .await
        .expect_err("TLS to a plaintext port");
    let text = format!("{tls} {tls:?}");
    assert!(matches!(tls, Error::Tls { .. }), "{text}");
    assert!(
        text.contains(seed.as_str()) && !text.contains(PASSWORD),
        "{text}"
    );
    // A user without a password: refused with what to do.
    let user = refused(format!("redis://cache-app@{seed}")).await;
    assert!(
        user.contains("without a password") && user.contains("give both"),
        "{user}"
    );
}
