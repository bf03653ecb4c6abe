//! choose_view: normalisation, majority, tie rules, shrink guard.

mod common;

use common::*;
use shardis_slots::{
    ConsensusError, Endpoint, Node, Shard, SlotRange, Topology, choose_view, parse_cluster_shards,
    parse_cluster_slots,
};

fn node(id: Option<&str>, host: &str, port: u16) -> Node {
    let n = Node::primary(Endpoint::new(host, port));
    match id {
        Some(id) => n.with_id(id),
        None => n,
    }
}

fn shard(primary: Node, replicas: Vec<Node>, ranges: &[(u16, u16)]) -> Shard {
    Shard {
        primary,
        replicas,
        slots: ranges
            .iter()
            .map(|&(a, b)| SlotRange::new(a, b).unwrap())
            .collect(),
    }
}

/// Two shards; `end` is where the first shard's slots stop.
fn view(end: u16, replicas: &[&str]) -> Topology {
    let reps = replicas
        .iter()
        .map(|r| Node::replica(Endpoint::new(*r, 1)).with_id(*r))
        .collect();
    Topology::new(vec![
        shard(node(Some("a"), "10.0.0.1", 1), reps, &[(0, end)]),
        shard(node(Some("b"), "10.0.0.2", 1), vec![], &[(end + 1, 16383)]),
    ])
    .unwrap()
}

#[test]
fn replica_order_hashes_equal() {
    let (x, y) = (
        view(8000, &["r1", "r2", "r3"]),
        view(8000, &["r3", "r1", "r2"]),
    );
    assert_eq!(x, y, "normalised");
    assert_eq!(x.fingerprint(), y.fingerprint());
    let views = [x, y];
    assert_eq!(choose_view(&views, None).unwrap().agreeing, 2);
}

#[test]
fn endpoint_style_differences_with_same_ids_agree() {
    let ip = Topology::new(vec![shard(
        node(Some("a"), "127.0.0.1", 7000),
        vec![],
        &[(0, 16383)],
    )])
    .unwrap();
    let name = Topology::new(vec![shard(
        node(Some("a"), "node1.test", 7000),
        vec![],
        &[(0, 16383)],
    )])
    .unwrap();
    let mut unknown_primary = node(Some("a"), "x", 7000);
    unknown_primary.endpoint = None;
    let unknown = Topology::new(vec![shard(unknown_primary, vec![], &[(0, 16383)])]).unwrap();
    let views = [unknown, ip.clone(), name];
    let c = choose_view(&views, None).unwrap();
    assert_eq!((c.agreeing, c.responded), (3, 3));
    assert!(
        c.topology.shards()[0].primary.endpoint.is_some(),
        "the member with known endpoints is returned"
    );
    assert_eq!(c.topology, &ip, "first of the equally complete members");
}

#[test]
fn live_views_in_different_styles_and_formats_agree() {
    let views: Vec<Topology> = vec![
        parse_cluster_slots(&reply("slots_resp2_split"), &asked()).unwrap(),
        parse_cluster_slots(&reply("slots_resp3_pref_hostname"), &asked()).unwrap(),
        parse_cluster_slots(&reply("slots_resp2_pref_unknown"), &asked()).unwrap(),
        parse_cluster_shards(&reply("shards_resp2_split"), &asked()).unwrap(),
    ];
    let c = choose_view(&views, None).unwrap();
    assert_eq!(c.agreeing, 4);
}

#[test]
fn majority_wins() {
    let (a, b) = (view(8000, &[]), view(9000, &[]));
    let views = [a.clone(), b.clone(), b.clone()];
    let c = choose_view(&views, None).unwrap();
    assert_eq!((c.topology, c.agreeing, c.responded), (&b, 2, 3));
    assert!(c.is_majority());
}

#[test]
fn tie_prefers_more_slots() {
    let full = view(8000, &[]);
    let partial = Topology::new(vec![shard(
        node(Some("a"), "10.0.0.1", 1),
        vec![],
        &[(0, 8000)],
    )])
    .unwrap();
    for views in [
        [full.clone(), partial.clone()],
        [partial.clone(), full.clone()],
    ] {
        assert_eq!(choose_view(&views, None).unwrap().topology, &full);
    }
}

#[test]
fn tie_same_coverage_prefers_previous_then_lowest_fingerprint() {
    let (a, b) = (view(8000, &[]), view(9000, &[]));
    assert_eq!(a.covered_slots(), b.covered_slots());
    let views = [a.clone(), b.clone()];
    assert_eq!(choose_view(&views, Some(&b)).unwrap().topology, &b);
    assert_eq!(choose_view(&views, Some(&a)).unwrap().topology, &a);
    let lowest = if a.fingerprint() < b.fingerprint() {
        &a
    } else {
        &b
    };
    assert_eq!(choose_view(&views, None).unwrap().topology, lowest);
    let reversed = [b.clone(), a.clone()];
    assert_eq!(
        choose_view(&reversed, None).unwrap().topology,
        lowest,
        "independent of input order"
    );
}

#[test]
fn fewer_slots_rejected_without_majority() {
    let full = view(8000, &[]);
    let shrunk = Topology::new(vec![shard(
        node(Some("a"), "10.0.0.1", 1),
        vec![],
        &[(0, 8000)],
    )])
    .unwrap();
    // 1 of 2 is not a strict majority, and there is nothing else.
    let views = [shrunk.clone(), Topology::empty()];
    assert_eq!(
        choose_view(&views, Some(&full)).unwrap_err(),
        ConsensusError::ShrinkWithoutMajority {
            covered: 8001,
            previous: 16384,
            agreeing: 1,
            responded: 2
        }
    );
    // Without a previous map the same input is acceptable.
    assert_eq!(choose_view(&views, None).unwrap().topology, &shrunk);
    // 2 of 3 agreeing is evidence.
    let views = [shrunk.clone(), shrunk.clone(), full.clone()];
    assert_eq!(choose_view(&views, Some(&full)).unwrap().topology, &shrunk);
    // Even as the largest group, 2 of 4 is not enough: the full view wins.
    let views = [
        shrunk.clone(),
        shrunk.clone(),
        full.clone(),
        Topology::empty(),
    ];
    assert_eq!(choose_view(&views, Some(&full)).unwrap().topology, &full);
}

#[test]
fn empty_views_never_win() {
    let good = view(8000, &[]);
    let views = [Topology::empty(), Topology::empty(), good.clone()];
    let c = choose_view(&views, Some(&good)).unwrap();
    assert_eq!((c.topology, c.agreeing, c.responded), (&good, 1, 3));
    assert_eq!(
        choose_view(&[Topology::empty()], Some(&good)).unwrap_err(),
        ConsensusError::AllEmpty
    );
    assert_eq!(
        choose_view(&[Topology::empty()], None).unwrap_err(),
        ConsensusError::AllEmpty
    );
}

#[test]
fn empty_input_is_an_error() {
    assert_eq!(choose_view(&[], None).unwrap_err(), ConsensusError::NoViews);
    assert_eq!(
        choose_view(&[], Some(&view(1, &[]))).unwrap_err(),
        ConsensusError::NoViews
    );
}

#[test]
fn fresh_node_reply_cannot_replace_a_good_map() {
    // Fresh nodes answer `*0`: the parser refuses it, so it never becomes a view.
    assert!(parse_cluster_slots(&reply("fresh_slots"), &asked()).is_err());
    assert!(parse_cluster_shards(&reply("fresh_shards"), &asked()).is_err());
}
