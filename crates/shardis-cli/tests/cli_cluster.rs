//! `shardis locate` and `shardis topology` against a real cluster.

mod common;

use common::ok;
use serde_json::Value;
use shardis::slots::key_slot;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn locate_and_topology_match_the_cluster() {
    let cluster = shardis_testkit::Cluster::builder()
        .primaries(3)
        .replicas_per_primary(1)
        .start()
        .await
        .expect("start cluster");
    let seed = cluster.seeds()[0].clone();
    let keys: Vec<String> = (0..12)
        .map(|i| format!("user:{i}"))
        .chain(["{user:1}:cart".to_string()])
        .collect();

    // --json: slot numbers are key_slot's, owners are the cluster's.
    let mut args = vec!["locate", "--cluster", seed.as_str(), "--json"];
    args.extend(keys.iter().map(String::as_str));
    let json: Value = serde_json::from_str(&ok(&args, None)).expect("locate --json parses");
    let rows = json.as_array().expect("array");
    assert_eq!(rows.len(), keys.len());
    for (row, key) in rows.iter().zip(&keys) {
        assert_eq!(row["key"], key.as_str());
        let slot = row["slot"].as_u64().unwrap() as u16;
        assert_eq!(slot, key_slot(key.as_bytes()), "{key}");
        let owner = cluster.node_for_slot(slot).await.unwrap();
        assert_eq!(row["primary"], owner.addr(), "{key} (slot {slot})");
        assert_eq!(row["replicas"].as_array().unwrap().len(), 1, "{row}");
    }

    // Table output, keys from stdin.
    let table = ok(&["locate", "--cluster", &seed], Some("user:0\nuser:1\n"));
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 3, "{table}");
    assert!(lines[0].starts_with("key"), "{table}");
    for (line, key) in lines[1..].iter().zip(["user:0", "user:1"]) {
        let slot = key_slot(key.as_bytes());
        let owner = cluster.node_for_slot(slot).await.unwrap();
        let fields: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(
            fields[..3],
            [key, &slot.to_string(), &owner.addr()],
            "{table}"
        );
    }

    // Topology: 3 shards, every node agrees.
    let text = ok(&["topology", "--cluster", &seed], None);
    assert!(
        text.starts_with("3 shards, 16384 of 16384 slots covered"),
        "{text}"
    );
    assert!(text.contains("all 6 nodes agree on the slot map"), "{text}");
    for node in cluster.nodes() {
        assert!(
            text.contains(&node.addr()),
            "{} missing from\n{text}",
            node.addr()
        );
    }
    let json: Value =
        serde_json::from_str(&ok(&["topology", "--cluster", &seed, "--json"], None)).unwrap();
    assert_eq!(json["agree"], true);
    assert_eq!(json["shards"].as_array().unwrap().len(), 3);
    assert_eq!(json["covered_slots"], 16384);
    assert_eq!(json["nodes"].as_array().unwrap().len(), 6);
}

/// A node that does not answer (SIGSTOPped) is named, and the command exits non-zero.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topology_names_nodes_that_do_not_answer() {
    let cluster = shardis_testkit::Cluster::builder()
        .primaries(3)
        .replicas_per_primary(0)
        .start()
        .await
        .expect("start cluster");
    let seed = cluster.seeds()[0].clone();
    let frozen = cluster.nodes()[2].clone();
    cluster.pause(&frozen).unwrap();
    let out = common::shardis(&["topology", "--cluster", &seed], None);
    cluster.resume(&frozen).unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{text}");
    assert!(text.contains("1 of 3 nodes disagree"), "{text}");
    assert!(
        text.contains(&format!("{}: no answer", frozen.addr())),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_on_an_existing_cluster_touches_only_its_own_keys() {
    let cluster = shardis_testkit::Cluster::builder()
        .primaries(3)
        .replicas_per_primary(1)
        .start()
        .await
        .expect("start cluster");
    let seed = cluster.seeds()[0].clone();
    // Somebody else's key, and who owns which slots, before the demo.
    let theirs = "theirs:1";
    let owner = cluster
        .node_for_slot(key_slot(theirs.as_bytes()))
        .await
        .unwrap();
    let mut conn = owner.connection().await.unwrap();
    let _: () = redis::cmd("SET")
        .arg(theirs)
        .arg("keep")
        .query_async(&mut conn)
        .await
        .unwrap();
    let mut owners_before = Vec::new();
    for slot in (0..16384u16).step_by(512) {
        owners_before.push(cluster.node_for_slot(slot).await.unwrap().addr());
    }

    let text = ok(
        &[
            "demo",
            "--cluster",
            &seed,
            "--duration",
            "2s",
            "--prefix",
            "demo-test:",
        ],
        None,
    );

    let summary = text
        .lines()
        .find(|l| l.starts_with("summary:"))
        .unwrap_or_else(|| panic!("no summary line:\n{text}"));
    assert!(summary.contains(" errors=0 "), "{summary}");
    assert!(text.contains("removed "), "{text}");
    // Not told to: no reshard, no failover of a cluster it did not start.
    let mut owners_after = Vec::new();
    for slot in (0..16384u16).step_by(512) {
        owners_after.push(cluster.node_for_slot(slot).await.unwrap().addr());
    }
    assert_eq!(owners_before, owners_after, "slot owners changed:\n{text}");
    // Its own keys are gone, the other key is untouched.
    let mut keys = 0;
    for node in cluster.primaries().await.unwrap() {
        keys += cluster.dbsize(&node).await.unwrap();
    }
    assert_eq!(keys, 1, "keys left behind:\n{text}");
    let value: Option<String> = redis::cmd("GET")
        .arg(theirs)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(value.as_deref(), Some("keep"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_by_flag_env_or_url_for_every_connecting_command() {
    const PW: &str = "cli-pw-7d2e-not-shown";
    let cluster = shardis_testkit::Cluster::builder()
        .primaries(3)
        .replicas_per_primary(0)
        .acl_user("cache-app", PW)
        .start()
        .await
        .expect("cluster with an ACL user");
    let seed = cluster.seeds()[0].clone();
    let url = format!("redis://cache-app:{PW}@{seed}");
    let failed = |args: &[&str], env: &[(&str, &str)]| {
        let out = common::shardis_env(args, None, env);
        assert!(!out.status.success(), "{args:?} should fail");
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(!err.contains(PW), "the password shows: {err}");
        err
    };

    // Without credentials: the hint says to give a password, not that nothing listens.
    for cmd in ["locate", "topology"] {
        let mut args = vec![cmd, "--cluster", seed.as_str()];
        if cmd == "locate" {
            args.push("k");
        }
        let err = failed(&args, &[]);
        assert!(
            err.contains("-a PASSWORD") && err.contains("REDISCLI_AUTH"),
            "{err}"
        );
        assert!(!err.contains("listening"), "{err}");
    }
    // A wrong password: the hint says the credentials were refused.
    let err = failed(
        &[
            "locate",
            "--cluster",
            &seed,
            "--user",
            "cache-app",
            "-a",
            "wrong",
            "k",
        ],
        &[],
    );
    assert!(err.contains("refused these credentials"), "{err}");

    // -a/--pass with --user; REDISCLI_AUTH; a URL: each works, for locate and topology.
    let slot = key_slot(b"k").to_string();
    let with_flags = ok(
        &[
            "locate",
            "--cluster",
            &seed,
            "--user",
            "cache-app",
            "--pass",
            PW,
            "k",
        ],
        None,
    );
    assert!(with_flags.contains(&slot), "{with_flags}");
    // The password from the environment only, as redis-cli reads it.
    let with_env = |args: &[&str]| {
        let out = common::shardis_env(args, None, &[("REDISCLI_AUTH", PW)]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{args:?}: {stderr}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert_eq!(
        with_env(&["locate", "--cluster", &seed, "--user", "cache-app", "k"]),
        with_flags
    );
    assert_eq!(ok(&["locate", "--cluster", &url, "k"], None), with_flags);
    let topology = ok(&["topology", "--cluster", &url], None);
    assert!(topology.contains(&seed), "{topology}");
    let topology = with_env(&["topology", "--cluster", &seed, "--user", "cache-app"]);
    assert!(topology.contains(&seed), "{topology}");
}
