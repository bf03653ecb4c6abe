//! TLS against real `redis-server --tls-port` nodes with certificates generated at test time:
//! a ring and a cluster (with replicas, TLS on the bus and replication) served entirely over
//! TLS — commands, pipelines, pub/sub and dedicated connections —; a wrong CA, a wrong name
//! and a missing client certificate refused quickly with [`Error::Tls`]; mutual TLS; and a
//! `rediss://user:password@...` URL with an ACL user.

use std::time::{Duration, Instant};

use futures::StreamExt;
use redis::AsyncCommands;
use shardis::{Client, Error, RingNode, TlsOptions};
use shardis_testkit::{Cluster, Standalone, TlsCerts};

/// A refused handshake must be reported within this: a correctness bound ("never a hang"),
/// far above the connect timeout on a loaded machine.
const REFUSED_WITHIN: Duration = Duration::from_secs(10);
const SETTLE: Duration = Duration::from_secs(20);

fn trusting(certs: &TlsCerts) -> TlsOptions {
    TlsOptions::new().ca_pem(certs.ca_pem())
}

/// SET/GET, a pipeline, pub/sub and a dedicated connection, all through `client`.
async fn exercise(client: &Client, tag: &str) {
    let mut c = client.clone();
    for i in 0..50 {
        let _: () = c.set(format!("{tag}:k{i}"), i).await.expect("SET over TLS");
    }
    for i in 0..50 {
        let v: i64 = c.get(format!("{tag}:k{i}")).await.expect("GET over TLS");
        assert_eq!(v, i);
    }
    // A pipeline spread over every node, with a value larger than one TLS record.
    let big = "x".repeat(100_000);
    let mut pipe = redis::pipe();
    for i in 0..50 {
        pipe.set(format!("{tag}:p{i}"), &big).ignore();
    }
    for i in 0..50 {
        pipe.strlen(format!("{tag}:p{i}"));
    }
    let lens: Vec<usize> = pipe.query_async(&mut c).await.expect("pipeline over TLS");
    assert_eq!(lens, vec![big.len(); 50]);
    let back: String = c.get(format!("{tag}:p7")).await.unwrap();
    assert_eq!(back, big);

    // Pub/sub on its own TLS connection.
    let channel = format!("{tag}:news");
    let mut sub = client
        .subscribe([channel.as_str()])
        .await
        .expect("subscribe over TLS");
    let started = Instant::now();
    let message = loop {
        let _: i64 = c.publish(&channel, "hello").await.expect("PUBLISH");
        if let Ok(Some(m)) = tokio::time::timeout(Duration::from_millis(200), sub.next()).await {
            break m;
        }
        assert!(started.elapsed() < SETTLE, "no message over TLS");
    };
    assert_eq!(message.payload(), b"hello");

    // A dedicated connection (blocking commands, transactions) over TLS.
    let key = format!("{tag}:list");
    let mut dedicated = client.dedicated(&key).await.expect("dedicated over TLS");
    let _: () = c.rpush(&key, "item").await.unwrap();
    let popped: Option<(String, String)> = redis::cmd("BLPOP")
        .arg(&key)
        .arg(5)
        .query_async(&mut dedicated)
        .await
        .expect("BLPOP on a dedicated TLS connection");
    assert_eq!(popped, Some((key.clone(), "item".to_string())));
}

/// `build()` must fail quickly with [`Error::Tls`], whose text says `why`.
async fn refused(builder: shardis::Builder, why: &str) -> Error {
    let started = Instant::now();
    let err = builder
        .build()
        .await
        .expect_err("the handshake must be refused");
    assert!(
        started.elapsed() < REFUSED_WITHIN,
        "took {:?}",
        started.elapsed()
    );
    assert!(matches!(err, Error::Tls { .. }), "not a TLS error: {err}");
    assert!(err.to_string().contains(why), "{err}");
    err
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ring_over_tls_and_what_is_refused() {
    let certs = TlsCerts::generate().unwrap();
    let nodes = Standalone::builder()
        .nodes(2)
        .tls(&certs)
        .start()
        .await
        .unwrap();
    let ring = |options: TlsOptions| {
        Client::builder()
            .ring(nodes.tls_addrs().into_iter().map(RingNode::at))
            .connect_timeout(Duration::from_secs(2))
            .tls(options)
    };
    let client = ring(trusting(&certs)).build().await.expect("ring over TLS");
    exercise(&client, "ring").await;

    // The certificate chains to another CA.
    refused(
        ring(TlsOptions::new().ca_pem(certs.other_ca_pem())),
        "UnknownIssuer",
    )
    .await;
    // The certificate is for localhost and 127.0.0.1, not for this name...
    refused(
        ring(trusting(&certs).server_name("cache.example.com")),
        "not valid for name \"cache.example.com\"",
    )
    .await;
    // ...unless the name check is explicitly turned off.
    let anyname = ring(
        trusting(&certs)
            .server_name("cache.example.com")
            .danger_accept_invalid_hostnames(),
    )
    .build()
    .await
    .expect("hostname check turned off");
    let _: () = anyname.clone().set("anyname", 1).await.unwrap();
    // Public roots only (the default): a private CA is not trusted.
    refused(ring(TlsOptions::new()), "UnknownIssuer").await;

    // TLS to a plaintext port: a TLS error, not a hang.
    let plain = Client::builder()
        .ring(nodes.addrs().into_iter().map(RingNode::at))
        .connect_timeout(Duration::from_secs(2))
        .tls(trusting(&certs));
    let err = plain.build().await.expect_err("TLS to a plaintext port");
    assert!(matches!(err, Error::Tls { .. }), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_needs_the_client_certificate() {
    let certs = TlsCerts::generate().unwrap();
    let nodes = Standalone::builder()
        .tls(&certs)
        .tls_auth_clients(true)
        .start()
        .await
        .unwrap();
    let ring = |options: TlsOptions| {
        Client::builder()
            .ring([RingNode::at(nodes.tls_addrs()[0].clone())])
            .connect_timeout(Duration::from_secs(2))
            .tls(options)
    };
    // Without a certificate the server ends the session (in TLS 1.3 after the client's side
    // of the handshake completed): still a TLS error saying so.
    let err = refused(ring(trusting(&certs)), "TLS").await;
    let text = err.to_string().to_lowercase();
    assert!(text.contains("certificate"), "{err}");

    let with_cert =
        ring(trusting(&certs).client_identity_pem(certs.client_cert_pem(), certs.client_key_pem()))
            .build()
            .await
            .expect("mutual TLS with the client certificate");
    exercise(&with_cert, "mtls").await;
    // The same from files.
    let from_files = ring(
        TlsOptions::new()
            .ca_file(certs.ca_file())
            .client_identity_files(certs.client_cert_file(), certs.client_key_file()),
    )
    .build()
    .await
    .expect("mutual TLS from files");
    let _: () = from_files.clone().set("files", 1).await.unwrap();
    let shown = format!(
        "{:?}",
        trusting(&certs).client_identity_pem("c", certs.client_key_pem())
    );
    assert!(
        !shown.contains(certs.client_key_pem().lines().nth(1).unwrap()),
        "{shown}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_with_replicas_over_tls() {
    let certs = TlsCerts::generate().unwrap();
    let cluster = Cluster::builder()
        .primaries(3)
        .replicas_per_primary(1)
        .tls(&certs)
        .acl_user("cache-app", "tls-pw-4b1d")
        .start()
        .await
        .expect("TLS cluster");
    let seeds = cluster.tls_addrs();
    let builder = || {
        Client::builder()
            .cluster(seeds.clone())
            .username("cache-app")
            .password("tls-pw-4b1d")
            .tls(trusting(&certs))
    };
    let client = builder().build().await.expect("cluster over TLS");
    exercise(&client, "{c}").await;
    // Keys on every shard, read back; then read from the replicas (over TLS, after READONLY)
    // once replication (over TLS too) brought them there.
    let mut c = client.clone();
    for i in 0..100 {
        let _: () = c.set(format!("spread:{i}"), i).await.unwrap();
    }
    for i in 0..100 {
        let v: i64 = c.get(format!("spread:{i}")).await.unwrap();
        assert_eq!(v, i);
    }
    let mut replicas = builder()
        .read_from(shardis::ReadFrom::Replica)
        .build()
        .await
        .expect("replica reads over TLS");
    let started = Instant::now();
    for i in 0..100 {
        loop {
            let v: Option<i64> = replicas.get(format!("spread:{i}")).await.unwrap();
            if v == Some(i) {
                break;
            }
            assert!(
                started.elapsed() < SETTLE,
                "spread:{i} never reached a replica"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    // The nodes the cluster announced are its TLS ports: every client connection on every
    // primary is a TLS one (the testkit's own connections use the plaintext ports).
    for primary in cluster.primaries().await.unwrap() {
        let keys = cluster.dbsize(&primary).await.unwrap();
        assert!(keys > 0, "{} holds no key", primary.addr());
    }

    // A rediss:// URL with the ACL user: TLS from the scheme, credentials from the URL.
    let url = format!("rediss://cache-app:tls-pw-4b1d@{}", seeds[0]);
    let from_url = Client::builder()
        .cluster([url.as_str()])
        .tls(trusting(&certs))
        .build()
        .await
        .expect("rediss:// URL with user and password");
    let v: i64 = from_url.clone().get("spread:3").await.unwrap();
    assert_eq!(v, 3);
    // rediss://...#insecure: no certificate check, still TLS (a plaintext client would fail).
    let insecure = Client::builder()
        .cluster([format!("{url}#insecure")])
        .build()
        .await
        .expect("rediss:// URL with #insecure");
    let v: i64 = insecure.clone().get("spread:4").await.unwrap();
    assert_eq!(v, 4);

    // A wrong CA: a TLS error naming a seed, quickly, never "unreachable".
    let err = refused(
        Client::builder()
            .cluster(seeds.clone())
            .username("cache-app")
            .password("tls-pw-4b1d")
            .connect_timeout(Duration::from_secs(2))
            .tls(TlsOptions::new().ca_pem(certs.other_ca_pem())),
        "UnknownIssuer",
    )
    .await;
    assert!(
        seeds.iter().any(|s| err.to_string().contains(s.as_str())),
        "{err}"
    );
    assert!(!format!("{err:?}").contains("tls-pw-4b1d"));
}
