//! `--tls`, `--cacert`, `--cert`/`--key`, `--sni`, `--insecure` and `rediss://` URLs for the
//! connecting subcommands, against a real TLS cluster (certificates generated at test time).

mod common;

use common::ok;
use shardis::slots::key_slot;

/// `shardis CMD --cluster CLUSTER EXTRA... [k]` (locate gets the key `k`).
fn run(cmd: &str, cluster: &str, extra: &[&str]) -> Vec<String> {
    let mut args = vec![cmd.to_string(), "--cluster".into(), cluster.to_string()];
    args.extend(extra.iter().map(|s| s.to_string()));
    if cmd == "locate" {
        args.push("k".into());
    }
    args
}

fn ok_args(args: Vec<String>) -> String {
    ok(&args.iter().map(String::as_str).collect::<Vec<_>>(), None)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_flags_and_urls_for_locate_and_topology() {
    const PW: &str = "cli-tls-pw-5c0a";
    let certs = shardis_testkit::TlsCerts::generate().unwrap();
    let cluster = shardis_testkit::Cluster::builder()
        .primaries(3)
        .replicas_per_primary(0)
        .tls(&certs)
        .tls_auth_clients(true)
        .acl_user("cache-app", PW)
        .start()
        .await
        .expect("TLS cluster");
    let seed = cluster.tls_addrs()[0].clone();
    let ca = certs.ca_file();
    let (cert, key) = (certs.client_cert_file(), certs.client_key_file());
    let (ca, cert, key) = (
        ca.to_str().unwrap(),
        cert.to_str().unwrap(),
        key.to_str().unwrap(),
    );
    let slot = key_slot(b"k").to_string();
    let tls_args = [
        "--cacert",
        ca,
        "--cert",
        cert,
        "--key",
        key,
        "--user",
        "cache-app",
        "-a",
        PW,
    ];

    // Every TLS flag works for locate and topology.
    let located = ok_args(run("locate", &seed, &tls_args));
    assert!(located.contains(&slot), "{located}");
    let topology = ok_args(run("topology", &seed, &tls_args));
    for addr in cluster.tls_addrs() {
        assert!(topology.contains(&addr), "{addr} missing: {topology}");
    }
    // --sni naming what the certificate holds; --insecure with only the client certificate.
    let mut with_sni = tls_args.to_vec();
    with_sni.extend(["--sni", "localhost"]);
    assert!(ok_args(run("locate", &seed, &with_sni)).contains(&slot));
    let insecure = [
        "--insecure",
        "--cert",
        cert,
        "--key",
        key,
        "--user",
        "cache-app",
        "-a",
        PW,
    ];
    assert!(ok_args(run("locate", &seed, &insecure)).contains(&slot));
    // A rediss:// URL turns TLS on; the flags add the CA and the client certificate.
    let url = format!("rediss://cache-app:{PW}@{seed}");
    let from_url = ["--cacert", ca, "--cert", cert, "--key", key];
    assert!(ok_args(run("locate", &url, &from_url)).contains(&slot));
    assert!(ok_args(run("topology", &url, &from_url)).contains(&seed));

    let failed = |args: Vec<String>| {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = common::shardis(&args, None);
        assert!(!out.status.success(), "{args:?} should fail");
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(!err.contains(PW), "the password shows: {err}");
        err
    };
    // A wrong name: a TLS error and a hint at the TLS flags.
    let mut wrong_sni = tls_args.to_vec();
    wrong_sni.extend(["--sni", "cache.example.com"]);
    let err = failed(run("locate", &seed, &wrong_sni));
    assert!(err.contains("TLS") && err.contains("--sni"), "{err}");
    // No client certificate on a server that requires one.
    let no_cert = ["--cacert", ca, "--user", "cache-app", "-a", PW];
    for cmd in ["locate", "topology"] {
        let err = failed(run(cmd, &seed, &no_cert));
        assert!(err.contains("TLS"), "{cmd}: {err}");
    }
    // Plaintext to a TLS port: the hint says to pass --tls.
    let err = failed(run("locate", &seed, &["--user", "cache-app", "-a", PW]));
    assert!(err.contains("--tls"), "{err}");
}
