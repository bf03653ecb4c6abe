//! `AUTH` with an ACL user and password: the client works, and the password appears in no
//! `Debug` output and no error.

use redis::AsyncCommands;
use shardis_testkit::Cluster;

const PASSWORD: &str = "pw-9f3c1e7a-do-not-leak";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acl_user_authenticates_and_the_password_never_leaks() {
    let cluster = Cluster::builder()
        .primaries(3)
        .replicas_per_primary(0)
        .acl_user("cache-app", PASSWORD)
        .start()
        .await
        .expect("cluster with ACL user");

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
