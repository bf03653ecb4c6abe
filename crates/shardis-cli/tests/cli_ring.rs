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
