//! Random ring operation sequences: build from arbitrary names and weights, then add,
//! remove, reweigh and look up. After every change the key space that moved is checked
//! exactly (from arcs): an add moves keys only to the new node, a remove only the removed
//! node's keys, a weight change only to (raise) or from (lower) that node. Nothing panics;
//! every rejected input is the typed error that input deserves.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use shardis_ring::{HASH_SPACE, Ring, RingError, moved_arc, transfers};

#[derive(Arbitrary, Debug)]
enum Op {
    Add { name: String, weight: u8 },
    Remove { pick: u8 },
    SetWeight { pick: u8, weight: u8 },
    Lookup { key: Vec<u8> },
    Replicas { hash: u64, n: u8 },
}

#[derive(Arbitrary, Debug)]
struct Input {
    points_per_weight: u8,
    nodes: Vec<(String, u8)>,
    ops: Vec<Op>,
}

/// Weights 0..=7: 0 exercises the typed error, small values keep rings (and runs) small.
fn weight_of(w: u8) -> u32 {
    u32::from(w % 8)
}

/// Owner by brute force: first point >= h, wrapping.
fn naive(ring: &Ring, h: u64) -> &str {
    let pts: Vec<_> = ring.points().collect();
    let i = pts.partition_point(|&(p, _)| p < h);
    pts[if i == pts.len() { 0 } else { i }].1.name()
}

fn check_ring(ring: &Ring) {
    assert_eq!(ring.arc_lengths().iter().sum::<u128>(), HASH_SPACE);
    assert!(
        ring.memory_bytes()
            <= 16 * ring.point_count()
                + 4096
                + ring
                    .nodes()
                    .iter()
                    .map(|n| n.name().len() + 32)
                    .sum::<usize>()
    );
}

fuzz_target!(|input: Input| {
    // Small point counts keep each run fast; collisions stay impossible in practice.
    let v = u32::from(input.points_per_weight % 16) + 1;
    let nodes = input
        .nodes
        .iter()
        .take(32)
        .map(|(n, w)| shardis_ring::Node::new(n.clone(), weight_of(*w)));
    let mut ring = match Ring::builder().points_per_weight(v).nodes(nodes).build() {
        Ok(r) => r,
        Err(RingError::Empty | RingError::DuplicateNode(_) | RingError::ZeroWeight(_)) => return,
        Err(e) => panic!("unexpected build error {e:?}"),
    };
    check_ring(&ring);
    for op in input.ops.iter().take(32) {
        let names: Vec<String> = ring.nodes().iter().map(|n| n.name().to_owned()).collect();
        let pick = |p: u8| names[usize::from(p) % names.len()].clone();
        match op {
            Op::Add { name, weight } => match ring.with_node(name.clone(), weight_of(*weight)) {
                Ok(next) => {
                    assert!(
                        transfers(&ring, &next)
                            .iter()
                            .all(|t| t.to == name.as_str())
                    );
                    let idx = next.index_of(name).expect("added node present");
                    assert_eq!(moved_arc(&ring, &next), next.arc_lengths()[idx]);
                    assert_eq!(
                        next.without_node(name).as_ref(),
                        Ok(&ring),
                        "add+remove is the identity"
                    );
                    ring = next;
                }
                Err(RingError::DuplicateNode(n)) => assert!(n == *name && names.contains(name)),
                Err(RingError::ZeroWeight(n)) => assert!(n == *name && weight_of(*weight) == 0),
                Err(e) => panic!("unexpected add error {e:?}"),
            },
            Op::Remove { pick: p } => {
                let gone = pick(*p);
                match ring.without_node(&gone) {
                    Ok(next) => {
                        assert!(
                            transfers(&ring, &next)
                                .iter()
                                .all(|t| t.from == gone.as_str())
                        );
                        let w = ring.nodes()[ring.index_of(&gone).expect("present")].weight();
                        assert_eq!(next.with_node(gone.clone(), w).as_ref(), Ok(&ring));
                        ring = next;
                    }
                    Err(RingError::Empty) => assert_eq!(names.len(), 1),
                    Err(e) => panic!("unexpected remove error {e:?}"),
                }
                assert_eq!(
                    ring.without_node("\u{0}never a name\u{0}").unwrap_err(),
                    RingError::UnknownNode("\u{0}never a name\u{0}".into())
                );
            }
            Op::SetWeight { pick: p, weight } => {
                let node = pick(*p);
                let old = ring.nodes()[ring.index_of(&node).expect("present")].weight();
                match ring.with_weight(&node, weight_of(*weight)) {
                    Ok(next) => {
                        let flows = transfers(&ring, &next);
                        if weight_of(*weight) >= old {
                            assert!(flows.iter().all(|t| t.to == node.as_str()));
                        } else {
                            assert!(flows.iter().all(|t| t.from == node.as_str()));
                        }
                        ring = next;
                    }
                    Err(RingError::ZeroWeight(n)) => assert!(n == node && weight_of(*weight) == 0),
                    Err(e) => panic!("unexpected reweigh error {e:?}"),
                }
            }
            Op::Lookup { key } => {
                let h = Ring::hash_key(key);
                assert_eq!(ring.get(key).name(), naive(&ring, h));
                assert_eq!(ring.get(key), &ring.nodes()[ring.get_index(key)]);
            }
            Op::Replicas { hash, n } => match ring.replicas_by_hash(*hash, usize::from(*n)) {
                Ok(r) => {
                    assert_eq!(r.len(), usize::from(*n).min(names.len()));
                    assert_eq!(r[0], ring.get_by_hash(*hash));
                    let mut seen: Vec<&str> = r.iter().map(|n| n.name()).collect();
                    seen.sort_unstable();
                    seen.dedup();
                    assert_eq!(seen.len(), r.len());
                }
                Err(RingError::ZeroReplicas) => assert_eq!(*n, 0),
                Err(e) => panic!("unexpected replicas error {e:?}"),
            },
        }
        check_ring(&ring);
    }
});
