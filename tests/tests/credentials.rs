//! A [`CredentialsProvider`] is asked on every new connection: when the server's ACL password
//! rotates (`ACL SETUSER ... resetpass >new`) and old connections are killed, connections
//! opened with the old token are refused with [`Error::Auth`], and once the provider hands out
//! the new token every new connection (shared, dedicated, subscribed) authenticates — without
//! rebuilding the client. The tokens appear in no error and no `Debug` output.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use redis::Value;
use shardis::{Client, Credentials, CredentialsError, CredentialsProvider, Error, RingNode};
use shardis_testkit::Standalone;

const OLD: &str = "token-old-7e1f";
const NEW: &str = "token-new-93ab";
const SETTLE: Duration = Duration::from_secs(20);

/// The current token, and how often the provider was asked.
struct Rotating {
    token: std::sync::Mutex<String>,
    asked: AtomicUsize,
}

/// Hands out whatever token is current.
struct Provider(Arc<Rotating>);

impl CredentialsProvider for Provider {
    fn credentials(&self) -> BoxFuture<'_, Result<Credentials, CredentialsError>> {
        Box::pin(async move {
            self.0.asked.fetch_add(1, Ordering::SeqCst);
            let token = self.0.token.lock().unwrap().clone();
            Ok(Credentials::new(Some("app"), token))
        })
    }
}

/// A provider that cannot give anything.
struct Broken;

impl CredentialsProvider for Broken {
    fn credentials(&self) -> BoxFuture<'_, Result<Credentials, CredentialsError>> {
        Box::pin(async { Err("vault sealed".into()) })
    }
}

fn set(key: &str, value: &str) -> redis::Cmd {
    let mut cmd = redis::cmd("SET");
    cmd.arg(key).arg(value);
    cmd
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_password_is_picked_up_by_new_connections() {
    let nodes = Standalone::builder()
        .acl_user("app", OLD)
        .start()
        .await
        .unwrap();
    let node = nodes.nodes()[0].clone();
    let provider = Arc::new(Rotating {
        token: std::sync::Mutex::new(OLD.to_string()),
        asked: AtomicUsize::new(0),
    });
    let client = Client::builder()
        .ring([RingNode::at(node.addr())])
        .ring_failure_limit(1_000)
        .credentials_provider(Provider(provider.clone()))
        .build()
        .await
        .expect("client with a credentials provider");
    client
        .send(&set("k", "1"))
        .await
        .expect("SET with the old token");
    assert!(provider.asked.load(Ordering::SeqCst) >= 1);

    // The operator rotates the password and drops every connection of the user (but this
    // one, opened before the change).
    let mut admin = nodes.connection(&node).await.unwrap();
    let _: () = redis::cmd("ACL")
        .arg("SETUSER")
        .arg("app")
        .arg("resetpass")
        .arg(format!(">{NEW}"))
        .query_async(&mut admin)
        .await
        .unwrap();
    let _: i64 = redis::cmd("CLIENT")
        .arg("KILL")
        .arg("USER")
        .arg("app")
        .arg("SKIPME")
        .arg("yes")
        .query_async(&mut admin)
        .await
        .unwrap();

    // The provider still gives the old token: new connections are refused, as credentials.
    let started = Instant::now();
    let refused = loop {
        match client.send(&set("k", "2")).await {
            Err(e @ Error::Auth { .. }) => break e,
            Err(_) => {}
            Ok(reply) => panic!("a connection authenticated with the old token: {reply:?}"),
        }
        assert!(started.elapsed() < SETTLE, "no Error::Auth seen");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let shown = format!("{refused} {refused:?}");
    assert!(!shown.contains(OLD) && !shown.contains(NEW), "{shown}");

    // The token rotates in the provider: the next connections authenticate, no rebuild.
    let asked_before = provider.asked.load(Ordering::SeqCst);
    *provider.token.lock().unwrap() = NEW.to_string();
    let started = Instant::now();
    loop {
        match client.send(&set("k", "3")).await {
            Ok(Value::Okay) => break,
            other => assert!(
                started.elapsed() < SETTLE,
                "never authenticated with the new token: {other:?}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(provider.asked.load(Ordering::SeqCst) > asked_before);
    let mut dedicated = client.dedicated("k").await.expect("dedicated, new token");
    let v: String = redis::cmd("GET")
        .arg("k")
        .query_async(&mut dedicated)
        .await
        .unwrap();
    assert_eq!(v, "3");
    client
        .subscribe(["news"])
        .await
        .expect("subscribed connection, new token");
    assert!(!format!("{client:?}").contains(NEW));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_provider_is_an_auth_error_with_its_reason() {
    let nodes = Standalone::builder()
        .acl_user("app", OLD)
        .start()
        .await
        .unwrap();
    let err = Client::builder()
        .ring([RingNode::at(nodes.nodes()[0].addr())])
        .credentials_provider(Broken)
        .build()
        .await
        .expect_err("no credentials");
    assert!(
        matches!(&err, Error::Auth { message, .. } if message.contains("vault sealed")),
        "{err}"
    );
    // A password and a provider together are refused before connecting.
    let both = Client::builder()
        .ring([RingNode::at(nodes.nodes()[0].addr())])
        .password(OLD)
        .credentials_provider(Broken)
        .build()
        .await
        .expect_err("both");
    assert!(
        matches!(&both, Error::Config(m) if !m.contains(OLD)),
        "{both}"
    );
}
