//! CLUSTER NODES over the live fixtures (checklist §7(b)) and hand-written
//! lines for the forms the fixtures lack (hostnames, migration markers, flags).

mod common;

use common::*;
use proptest::prelude::*;
use redis::{Value, VerbatimFormat};
use shardis_slots::{
    Endpoint, Health, TopologyError, parse_cluster_nodes, parse_cluster_nodes_text,
};

fn parse(name: &str) -> shardis_slots::Topology {
    let t = parse_cluster_nodes(&reply(name), &asked()).unwrap_or_else(|e| panic!("{name}: {e}"));
    check_invariants(&t);
    t
}

fn text(t: &str) -> Result<shardis_slots::Topology, TopologyError> {
    parse_cluster_nodes_text(t, &asked())
}

const A: &str = "6789e8773980b12b3ecfbbf93c2dcd0d83bf3d94";
const B: &str = "4df74a51974aebfa0b1627696d2d26ce26699afa";

#[test]
fn default_cluster_bulk_string() {
    let t = parse("nodes");
    assert_eq!(
        layout(&t),
        [
            (0, 5460, Some(32001)),
            (5461, 10922, Some(32002)),
            (10923, 16383, Some(32003))
        ]
    );
    assert_eq!(
        replica_ports(&t),
        [[Some(32006)], [Some(32004)], [Some(32005)]]
    );
    assert!(
        t.shards()
            .iter()
            .all(|s| s.primary.health == Health::Online)
    );
}

#[test]
fn from_replica_myself_slave_gives_same_map() {
    assert_eq!(parse("nodes_from_replica"), parse("nodes"));
}

#[test]
fn split_ranges_on_one_line() {
    let t = parse("nodes_split");
    assert_eq!(t.shards()[0].slots.len(), 2, "`0-5460 12182`");
    assert_eq!(t.shards()[2].slots.len(), 2, "`10923-12181 12183-16383`");
    assert_eq!(t.shard_index_for_slot(12182), Some(0));
}

#[test]
fn failed_master_without_slots_skipped() {
    let t = parse("nodes_with_failed");
    assert_eq!(t.shards().len(), 3);
    assert!(t.is_complete());
    assert!(
        t.shards()
            .iter()
            .all(|s| s.primary.endpoint.as_ref().unwrap().port != 32002)
    );
    assert_eq!(
        t.shards()[0].replicas[0].endpoint,
        Some(ep("127.0.0.1", 32001)),
        "myself,slave"
    );
}

#[test]
fn ipv6_address_split_at_last_colon() {
    let t = parse("ipv6_nodes");
    assert_eq!(t.shards()[1].primary.endpoint, Some(ep("::1", 32012)));
    assert_eq!(t.shards()[1].primary.ip.as_deref(), Some("::1"));
}

#[test]
fn empty_ip_is_asked_host_and_fresh_node_has_no_slots() {
    let asked = Endpoint::new("asked.test", 32007);
    let t = parse_cluster_nodes(&reply("single_partial_nodes"), &asked).unwrap();
    assert_eq!(
        t.shards()[0].primary.endpoint,
        Some(ep("asked.test", 32007))
    );
    assert_eq!(t.covered_slots(), 202);
    assert_eq!(
        parse_cluster_nodes(&reply("fresh_nodes"), &asked),
        Err(TopologyError::NoSlots)
    );
}

#[test]
fn hostname_suffix_and_migration_markers() {
    // Live forms from the reference §2.3.
    let t = text(&format!(
        "{B} 127.0.0.1:32003@42003,node3.test myself,master - 0 0 3 connected 10923-16383 [12182->-{A}]\n\
         {A} 127.0.0.1:32001@42001 master - 0 0 1 connected 0-5460 [12182-<-{B}]\n"
    ))
    .unwrap();
    check_invariants(&t);
    assert_eq!(
        t.shards()[1].primary.hostname.as_deref(),
        Some("node3.test")
    );
    assert_eq!(
        t.shards()[1].primary.endpoint,
        Some(ep("127.0.0.1", 32003)),
        "endpoint stays the ip"
    );
    assert_eq!(t.covered_slots(), 5461 + 5461, "markers are not slots");
}

#[test]
fn crlf_verbatim_and_simple_string_accepted() {
    let body = format!("{A} 10.0.0.1:7000@17000 master - 0 0 1 connected 0-16383\r\n");
    assert!(text(&body).unwrap().is_complete());
    let verbatim = Value::VerbatimString {
        format: VerbatimFormat::Text,
        text: body.clone(),
    };
    assert!(
        parse_cluster_nodes(&verbatim, &asked())
            .unwrap()
            .is_complete()
    );
    // RESP3 bytes as the server sends them (`=<len>\r\ntxt:...`).
    let wire = format!("={}\r\ntxt:{}\r\n", body.len() + 4, body);
    let parsed = redis::parse_redis_value(wire.as_bytes()).unwrap();
    assert!(matches!(parsed, Value::VerbatimString { .. }));
    assert!(
        parse_cluster_nodes(&parsed, &asked())
            .unwrap()
            .is_complete()
    );
    assert!(parse_cluster_nodes(&Value::SimpleString(body.trim_end().into()), &asked()).is_ok());
}

#[test]
fn flags_health_handshake_noaddr() {
    let t = text(&format!(
        "{A} 10.0.0.1:7000@17000 master,fail? - 0 0 1 connected 0-100\n\
         r1 10.0.0.2:7001@17001 slave,fail {A} 0 0 1 disconnected\n\
         r2 10.0.0.3:7002@17002 slave,nofailover {A} 0 0 1 connected\n\
         r3 :0@0 slave,noaddr {A} 0 0 1 disconnected\n\
         hs 10.0.0.9:7009@17009 handshake - 0 0 0 connected\n\
         orphan 10.0.0.4:7003@17003 slave nosuchmaster 0 0 1 connected\n\
         nf 10.0.0.5:7004@17004 noflags - 0 0 0 connected\n"
    ))
    .unwrap();
    check_invariants(&t);
    let sh = &t.shards()[0];
    assert_eq!(
        sh.primary.health,
        Health::Unknown,
        "fail? is only a suspicion"
    );
    let by_id = |id: &str| {
        sh.replicas
            .iter()
            .find(|r| r.id.as_deref() == Some(id))
            .unwrap()
    };
    assert_eq!(by_id("r1").health, Health::Failed);
    assert_eq!(by_id("r2").health, Health::Online);
    assert_eq!(by_id("r3").endpoint, None, ":0@0 noaddr is unusable");
    assert_eq!(
        sh.replicas.len(),
        3,
        "handshake, orphan and noflags nodes are not attached"
    );
}

fn line_err(body: &str) -> (usize, String) {
    match text(body) {
        Err(TopologyError::BadNodeLine { line, reason }) => (line, reason),
        other => panic!("expected BadNodeLine for {body:?}, got {other:?}"),
    }
}

#[test]
fn reject_malformed_lines() {
    let ok = format!("{A} 10.0.0.1:7000@17000 master - 0 0 1 connected 0-5\n");
    for (bad, needle) in [
        ("x 10.0.0.1:7000@17000 master - 0 0", "8 fields"),
        ("x 10.0.0.1:7000 master - 0 0 1 connected 10", "@"),
        ("x 10.0.0.1@17000 master - 0 0 1 connected 10", ":port"),
        ("x 10.0.0.1:99999@17000 master - 0 0 1 connected 10", "port"),
        ("x 10.0.0.1:70a@17000 master - 0 0 1 connected 10", "port"),
        ("x 10.0.0.1:7001@x master - 0 0 1 connected 10", "bus port"),
        ("x 10.0.0.1:7001@17001 master - 0 0 1 connected abc", "slot"),
        (
            "x 10.0.0.1:7001@17001 master - 0 0 1 connected 9-7",
            "inverted",
        ),
        (
            "x 10.0.0.1:7001@17001 master - 0 0 1 connected 16384",
            "slot",
        ),
        ("x 10.0.0.1:7001@17001 master - 0 0 1 connected -5", "slot"),
        (
            "x 10.0.0.1:7001@17001 slave y 0 0 1 connected 10",
            "not a master",
        ),
        (
            &format!("{A} 10.0.0.1:7001@17001 master - 0 0 1 connected 10"),
            "already",
        ),
    ] {
        let (line, reason) = line_err(&format!("{ok}{bad}\n"));
        assert_eq!(line, 2, "{bad}");
        assert!(reason.contains(needle), "{bad}: {reason}");
    }
}

#[test]
fn reject_overlap_and_bad_reply_types() {
    let body = format!(
        "{A} 10.0.0.1:7000@17000 master - 0 0 1 connected 0-10\n{B} 10.0.0.2:7001@17001 master - 0 0 1 connected 10\n"
    );
    assert!(matches!(
        text(&body),
        Err(TopologyError::OverlappingRanges { .. })
    ));
    assert!(matches!(
        parse_cluster_nodes(&i(3), &asked()),
        Err(TopologyError::UnexpectedType { .. })
    ));
    assert!(matches!(
        parse_cluster_nodes(&Value::Array(vec![]), &asked()),
        Err(TopologyError::UnexpectedType { .. })
    ));
    assert!(matches!(
        parse_cluster_nodes(&Value::BulkString(vec![0xff]), &asked()),
        Err(TopologyError::BadString { .. })
    ));
}

proptest! {
    #[test]
    fn never_panics_on_arbitrary_text(t in "\\PC{0,200}") {
        if let Ok(top) = text(&t) { check_invariants(&top); }
    }

    #[test]
    fn never_panics_on_node_like_lines(lines in prop::collection::vec((
        "[a-c]{1,2}",
        "[0-9.:?]{0,6}:[0-9]{0,6}@[0-9]{0,3}(,[a-z]{0,3})?",
        prop::sample::select(vec!["master", "slave", "myself,master", "master,fail", "handshake", "noaddr,slave", "noflags"]),
        "[a-c-]{1,2}",
        prop::collection::vec("[0-9]{1,5}(-[0-9]{1,5})?|\\[[0-9]{1,3}-[<>]-[a-c]\\]", 0..4),
    ), 0..6)) {
        let body: String = lines.iter().map(|(id, addr, flags, master, slots)| {
            format!("{id} {addr} {flags} {master} 0 0 1 connected {}\n", slots.join(" "))
        }).collect();
        if let Ok(top) = text(&body) { check_invariants(&top); }
    }

    #[test]
    fn never_panics_on_arbitrary_values(v in arb_value()) {
        if let Ok(t) = parse_cluster_nodes(&v, &asked()) { check_invariants(&t); }
    }
}
