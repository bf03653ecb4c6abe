//! twemproxy (`nutcracker`) over standalone nodes: keys go through it to exactly one node, a
//! hash tag keeps related keys together, and dropping the handle ends the process.

use shardis_testkit::{Binary, Standalone, TestkitError, Twemproxy, TwemproxyHash, locate};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn set_and_get_through_nutcracker_over_two_nodes() {
    let nodes = Standalone::start(2).await.unwrap();
    let addrs = nodes.addrs();
    let proxy = Twemproxy::builder()
        .named_server(addrs[0].clone(), 1, "a")
        .named_server(addrs[1].clone(), 2, "b")
        .hash(TwemproxyHash::Md5)
        .hash_tag("{}")
        .start()
        .await
        .unwrap();
    let config = proxy.config();
    for line in [
        "hash: md5",
        "distribution: ketama",
        "hash_tag: \"{}\"",
        &format!("   - {}:1 a", addrs[0]),
        &format!("   - {}:2 b", addrs[1]),
    ] {
        assert!(config.contains(line), "{line:?} missing in:\n{config}");
    }

    let mut conn = proxy.connection().await.unwrap();
    let _: () = redis::cmd("SET")
        .arg("greeting")
        .arg("hello *3\r\n")
        .query_async(&mut conn)
        .await
        .unwrap();
    let back: Option<String> = redis::cmd("GET")
        .arg("greeting")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(back.as_deref(), Some("hello *3\r\n"));
    let mut sizes = Vec::new();
    for node in nodes.nodes() {
        sizes.push(nodes.dbsize(node).await.unwrap());
    }
    sizes.sort();
    assert_eq!(sizes, [0, 1], "the key is on exactly one node");

    // Keys with the same {tag} land on the same node, whatever follows the tag.
    for i in 0..20 {
        let _: () = redis::cmd("SET")
            .arg(format!("{{user:7}}:{i}"))
            .arg(i)
            .query_async(&mut conn)
            .await
            .unwrap();
    }
    let mut sizes = Vec::new();
    for node in nodes.nodes() {
        sizes.push(nodes.dbsize(node).await.unwrap());
    }
    assert!(
        sizes.contains(&20) || sizes.contains(&21),
        "tagged keys split over nodes: {sizes:?}"
    );

    let addr = proxy.addr();
    drop(conn);
    drop(proxy);
    assert!(
        tokio::net::TcpStream::connect(&addr).await.is_err(),
        "nutcracker still listens on {addr} after drop"
    );
}

#[tokio::test]
async fn a_missing_nutcracker_names_its_debian_package() {
    let err = Twemproxy::builder()
        .server("127.0.0.1:6379", 1)
        .nutcracker("/nonexistent/nutcracker")
        .start()
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            TestkitError::BinaryNotFound {
                binary: "nutcracker",
                packages: "nutcracker",
                ..
            }
        ),
        "{err:?}"
    );
    assert!(
        err.to_string().starts_with(
            "nutcracker not found on PATH: install it with `sudo apt-get install -y nutcracker` \
             (Debian/Ubuntu) or set SHARDIS_NUTCRACKER=/path/to/nutcracker"
        ),
        "{err}"
    );
    // Not found anywhere: PATH holds nothing, and neither does the fallback unless the
    // package is installed there.
    if !std::path::Path::new("/usr/sbin/nutcracker").exists() {
        assert!(locate(Binary::Nutcracker, None, Some("/nonexistent-dir".as_ref())).is_err());
    }
}

#[tokio::test]
async fn a_bad_pool_is_refused_before_anything_starts() {
    for builder in [
        Twemproxy::builder(),
        Twemproxy::builder().server("127.0.0.1:6379", 0),
        Twemproxy::builder().server("no-port", 1),
        Twemproxy::builder().named_server("127.0.0.1:6379", 1, "a b"),
        Twemproxy::builder()
            .server("127.0.0.1:6379", 1)
            .hash_tag("{"),
    ] {
        let err = builder.start().await.unwrap_err();
        assert!(matches!(err, TestkitError::InvalidArgument(_)), "{err:?}");
    }
}

#[tokio::test]
async fn a_config_nutcracker_rejects_is_an_error_with_its_log() {
    let err = Twemproxy::builder()
        .server("127.0.0.1:6379", 1)
        .option("distribution", "nonsense")
        .start()
        .await
        .unwrap_err();
    assert!(
        matches!(err, TestkitError::TwemproxyExited { .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("distribution"), "{err}");
}
