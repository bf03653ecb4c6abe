//! `shardis ring` and `shardis locate --ring` (no servers involved).

mod common;

use common::ok;
use serde_json::Value;

#[test]
fn ring_shares_sum_to_one_and_moves_are_printed() {
    let json: Value = serde_json::from_str(&ok(&["ring", "--nodes", "4", "--json"], None)).unwrap();
    let nodes = json["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 4);
    let sum: f64 = nodes.iter().map(|n| n["share"].as_f64().unwrap()).sum();
    assert!((sum - 1.0).abs() < 1e-9, "{sum}");
    let changes = json["changes"].as_array().unwrap();
    assert_eq!(changes[0]["change"], "add node-5 (weight 1)");
    // Adding a node moves exactly the new node's share.
    let ring = shardis::ring::Ring::new((1..=4).map(|i| (format!("node-{i}"), 1))).unwrap();
    let bigger = ring.with_node("node-5", 1).unwrap();
    assert_eq!(
        changes[0]["moved_fraction"].as_f64().unwrap(),
        shardis::ring::moved_fraction(&ring, &bigger)
    );
    assert_eq!(changes.len(), 5);

    let text = ok(
        &["ring", "--nodes", "a:1,b:1=2,c:1", "--vnodes", "40"],
        None,
    );
    assert!(text.contains("shares sum to 1.000000"), "{text}");
    assert!(text.contains("add node-4 (weight 1)"), "{text}");
    assert!(text.contains("remove b:1"), "{text}");
    assert!(text.contains("keys moved"), "{text}");

    let dir = tempfile_dir();
    let svg = dir.join("shares.svg");
    ok(
        &[
            "ring",
            "--nodes",
            "6",
            "--ketama",
            "--plot",
            svg.to_str().unwrap(),
        ],
        None,
    );
    let content = std::fs::read_to_string(&svg).unwrap();
    assert!(
        content.starts_with("<svg") && content.contains("node-6"),
        "{content}"
    );
}

#[test]
fn locate_on_a_ring_matches_the_ring_crate() {
    let json: Value = serde_json::from_str(&ok(
        &[
            "locate",
            "--ring",
            "--nodes",
            "a:6379,b:6379=2,c:6379",
            "--json",
            "k1",
            "k2",
            "user:42",
        ],
        None,
    ))
    .unwrap();
    let ring = shardis::ring::Ring::new([("a:6379", 1), ("b:6379", 2), ("c:6379", 1)]).unwrap();
    for row in json.as_array().unwrap() {
        let key = row["key"].as_str().unwrap();
        assert_eq!(row["node"], ring.get(key.as_bytes()).name(), "{key}");
    }
}

fn tempfile_dir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("shardis-cli-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// `(key, node)` of each row of `locate --json`.
fn placements(args: &[&str]) -> Vec<(String, String)> {
    let json: Value = serde_json::from_str(&ok(args, None)).unwrap();
    json.as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["key"].as_str().unwrap().into(),
                r["node"].as_str().unwrap().into(),
            )
        })
        .collect()
}

#[test]
fn locate_takes_twemproxy_hash_and_hash_tag_or_a_nutcracker_pool() {
    use shardis::ring::{KetamaFlavor, KetamaRing, KetamaServer, KeyHash};
    let keys = ["k1", "user:{42}:a", "user:{42}:b", "session:9", "x{y}z"];
    // The pool as a library user would build it: cache-a named, the others unnamed.
    let ring = KetamaRing::builder(KetamaFlavor::Twemproxy)
        .key_hash(KeyHash::Md5)
        .hash_tag(*b"{}")
        .server(KetamaServer::new("10.0.0.1", 6379, 1).with_name("cache-a"))
        .server(KetamaServer::new("10.0.0.2", 6379, 2))
        .server(KetamaServer::new("10.0.0.3", 11211, 1))
        .build()
        .unwrap();
    let names = ["cache-a", "10.0.0.2:6379", "10.0.0.3:11211"];
    let expected: Vec<(String, String)> = keys
        .iter()
        .map(|k| {
            (
                k.to_string(),
                names[ring.get_index(k.as_bytes())].to_string(),
            )
        })
        .collect();

    let mut args = vec![
        "locate",
        "--ring",
        "--hash",
        "md5",
        "--hash-tag",
        "{}",
        "--json",
        "--nodes",
        "cache-a,10.0.0.2:6379=2,10.0.0.3:11211",
    ];
    args.extend(keys);
    assert_eq!(placements(&args), expected);

    let dir = tempfile_dir();
    let conf = dir.join("nutcracker.yml");
    std::fs::write(
        &conf,
        "other:\n  hash: fnv1a_64\n  servers:\n   - 127.0.0.1:1:1\n\
         web:\n  listen: 127.0.0.1:22121\n  hash: md5\n  hash_tag: \"{}\"\n  distribution: ketama\n  \
         servers:\n   - 10.0.0.1:6379:1 cache-a\n   - 10.0.0.2:6379:2\n   - 10.0.0.3:11211:1\n",
    )
    .unwrap();
    let conf = conf.to_string_lossy().into_owned();
    let mut args = vec![
        "locate",
        "--nutcracker-config",
        &conf,
        "--pool",
        "web",
        "--json",
    ];
    args.extend(keys);
    assert_eq!(placements(&args), expected);
    // `ring` reads the pool too, and names its hash.
    let out = ok(
        &["ring", "--nutcracker-config", &conf, "--pool", "web"],
        None,
    );
    assert!(out.contains("hash md5") && out.contains("cache-a"), "{out}");
    // A pool that is not there: the error lists those that are.
    let out = common::shardis(
        &["ring", "--nutcracker-config", &conf, "--pool", "nope"],
        None,
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("other, web"), "{err}");
    let out = common::shardis(
        &["locate", "--ring", "--hash", "sha1", "--nodes", "a", "k"],
        None,
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("fnv1a_64"), "{err}");
}
