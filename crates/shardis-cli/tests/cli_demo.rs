//! `shardis demo` and `shardis bench` on the clusters they start themselves.

mod common;

use common::ok;

/// The `summary: k=v ...` line as pairs.
fn summary(text: &str) -> std::collections::HashMap<String, u64> {
    let line = text
        .lines()
        .find(|l| l.starts_with("summary: "))
        .unwrap_or_else(|| panic!("no summary line in\n{text}"));
    line["summary: ".len()..]
        .split_whitespace()
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap();
            (k.to_string(), v.parse().unwrap())
        })
        .collect()
}

#[test]
fn demo_sees_no_errors_across_reshard_and_failover() {
    let text = ok(&["demo", "--duration", "8", "--reshard-slots", "300"], None);
    let s = summary(&text);
    assert_eq!(s["errors"], 0, "{text}");
    assert!(s["ops"] > 1000, "{text}");
    assert!(text.contains("resharded 300 slots"), "{text}");
    assert!(text.contains("failover done"), "{text}");
    assert!(s["moved"] + s["ask"] > 0, "no redirect followed:\n{text}");
    assert!(text.contains("local cluster stopped"), "{text}");
}

#[test]
fn bench_reports_json() {
    let out = ok(
        &[
            "bench",
            "--duration",
            "1s",
            "--warmup",
            "200ms",
            "-c",
            "1,8",
            "--keys",
            "1000",
            "--json",
        ],
        None,
    );
    let json: serde_json::Value = serde_json::from_str(&out).expect("bench --json parses");
    let results = json["results"].as_array().unwrap();
    assert_eq!(results.len(), 2);
    for r in results {
        assert!(r["ops"].as_u64().unwrap() > 0, "{r}");
        assert_eq!(r["errors"], 0, "{r}");
        assert!(r["p99_us"].as_u64().unwrap() >= r["p50_us"].as_u64().unwrap());
    }
}
