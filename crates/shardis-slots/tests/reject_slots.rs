//! CLUSTER SLOTS rejection cases (checklist §7(b) "Reject" line, §5.3) built
//! by hand, and "never panics" properties over arbitrary `Value` trees.

mod common;

use common::*;
use proptest::prelude::*;
use redis::Value;
use shardis_slots::{TopologyError, parse_cluster_slots};

fn node(endpoint: Value, port: i64, id: &str, meta: Vec<Value>) -> Value {
    arr(vec![endpoint, i(port), s(id), arr(meta)])
}

fn err(reply: Value) -> TopologyError {
    parse_cluster_slots(&reply, &asked()).expect_err("must be rejected")
}

fn range(start: i64, end: i64) -> Value {
    arr(vec![
        i(start),
        i(end),
        node(s("10.0.0.1"), 7000, "p", vec![]),
    ])
}

#[test]
fn reject_non_array_top_level() {
    for v in [Value::Nil, i(1), Value::Map(vec![]), s("x"), Value::Okay] {
        assert!(matches!(err(v), TopologyError::UnexpectedType { .. }));
    }
    let loading =
        redis::parse_redis_value(b"-LOADING Redis is loading the dataset in memory\r\n").unwrap();
    assert!(matches!(err(loading), TopologyError::ServerError(m) if m.starts_with("LOADING")));
}

#[test]
fn reject_bad_range_entries() {
    let e = err(arr(vec![range(0, 5), i(7)]));
    assert_eq!(
        e,
        TopologyError::UnexpectedType {
            path: "range[1]".into(),
            expected: "array",
            found: "integer"
        }
    );
    let e = err(arr(vec![arr(vec![i(0), i(5)])]));
    assert!(matches!(
        e,
        TopologyError::TooFewElements {
            expected: 3,
            found: 2,
            ..
        }
    ));
}

#[test]
fn reject_bad_slot_numbers() {
    assert!(
        matches!(err(arr(vec![arr(vec![s("0"), i(5), node(s("h"), 1, "p", vec![])])])),
        TopologyError::UnexpectedType { ref path, .. } if path == "range[0].start")
    );
    assert!(matches!(
        err(arr(vec![range(-1, 5)])),
        TopologyError::SlotOutOfRange { value: -1, .. }
    ));
    assert!(matches!(
        err(arr(vec![range(0, 16384)])),
        TopologyError::SlotOutOfRange { value: 16384, .. }
    ));
    assert!(matches!(
        err(arr(vec![range(10, 5)])),
        TopologyError::InvertedRange {
            start: 10,
            end: 5,
            ..
        }
    ));
}

#[test]
fn reject_overlapping_and_duplicate_ranges() {
    assert!(matches!(
        err(arr(vec![range(0, 10), range(10, 20)])),
        TopologyError::OverlappingRanges { .. }
    ));
    assert!(matches!(
        err(arr(vec![range(0, 10), range(0, 10)])),
        TopologyError::OverlappingRanges { .. }
    ));
    let other = arr(vec![i(5), i(7), node(s("10.0.0.9"), 7009, "q", vec![])]);
    assert!(matches!(
        err(arr(vec![range(0, 10), other])),
        TopologyError::OverlappingRanges { .. }
    ));
}

#[test]
fn reject_bad_ports() {
    for p in [-1, 65536, i64::MAX] {
        let e = err(arr(vec![arr(vec![
            i(0),
            i(5),
            node(s("h"), 1, "p", vec![]),
            node(s("h"), p, "r", vec![]),
        ])]));
        assert!(
            matches!(e, TopologyError::BadPort { ref path, .. } if path == "range[0].node[1].port"),
            "{e}"
        );
    }
    let e = err(arr(vec![arr(vec![
        i(0),
        i(5),
        arr(vec![s("h"), s("7000")]),
    ])]));
    assert!(
        matches!(e, TopologyError::UnexpectedType { ref path, .. } if path == "range[0].node[0].port")
    );
}

#[test]
fn reject_bad_endpoint_types() {
    for bad in [
        i(1),
        arr(vec![]),
        Value::BulkString(vec![0xff, 0xfe]),
        s("a b"),
    ] {
        let e = err(arr(vec![arr(vec![i(0), i(5), arr(vec![bad, i(7000)])])]));
        assert!(
            matches!(&e, TopologyError::UnexpectedType { path, .. } | TopologyError::BadString { path, .. }
            if path == "range[0].node[0].endpoint"),
            "{e}"
        );
    }
}

#[test]
fn reject_bad_metadata() {
    let odd = node(s("h"), 7000, "p", vec![s("ip")]);
    assert!(matches!(
        err(arr(vec![arr(vec![i(0), i(5), odd])])),
        TopologyError::OddLength { len: 1, .. }
    ));
    let non_string_key = node(s("h"), 7000, "p", vec![i(1), s("x")]);
    assert!(matches!(
        err(arr(vec![arr(vec![i(0), i(5), non_string_key])])),
        TopologyError::UnexpectedType { .. }
    ));
    let not_a_map = arr(vec![s("h"), i(7000), s("p"), i(3)]);
    assert!(matches!(
        err(arr(vec![arr(vec![i(0), i(5), not_a_map])])),
        TopologyError::UnexpectedType { .. }
    ));
    // Unknown metadata keys are fine, in RESP3 map form too.
    let resp3 = arr(vec![
        s("h"),
        i(7000),
        s("p"),
        Value::Map(vec![(s("future"), i(1))]),
    ]);
    assert!(parse_cluster_slots(&arr(vec![arr(vec![i(0), i(5), resp3])]), &asked()).is_ok());
}

#[test]
fn reject_node_with_too_few_elements() {
    let e = err(arr(vec![arr(vec![i(0), i(5), arr(vec![s("h")])])]));
    assert!(matches!(
        e,
        TopologyError::TooFewElements {
            expected: 2,
            found: 1,
            ..
        }
    ));
}

/// Topology-shaped trees: the parser's deeper branches get exercised.
fn arb_slots_like() -> impl Strategy<Value = Value> {
    let node = (
        arb_value(),
        prop_oneof![(-1i64..70000).prop_map(i), arb_value()],
        prop::collection::vec(arb_value(), 0..3),
    )
        .prop_map(|(e, p, rest)| {
            let mut v = vec![e, p];
            v.extend(rest);
            arr(v)
        });
    let range =
        (0i64..16384, 0i64..16384, prop::collection::vec(node, 0..3)).prop_map(|(a, b, nodes)| {
            let mut v = vec![i(a), i(b)];
            v.extend(nodes);
            arr(v)
        });
    prop::collection::vec(range, 0..6).prop_map(arr)
}

proptest! {
    #[test]
    fn never_panics_on_arbitrary_values(v in arb_value()) {
        if let Ok(t) = parse_cluster_slots(&v, &asked()) {
            check_invariants(&t);
        }
    }

    #[test]
    fn never_panics_on_slots_shaped_values(v in arb_slots_like()) {
        if let Ok(t) = parse_cluster_slots(&v, &asked()) {
            check_invariants(&t);
        }
    }
}
