//! Properties of copy placement: distinct shards, determinism, markers inside tags.

use proptest::prelude::*;
use shardis_hotkey::{cluster_copies, copy_name, ring_copies, salted_copies};
use shardis_ring::Ring;
use shardis_slots::{SLOT_COUNT, hash_tag, key_slot};

/// A slot map of `shards` shards: sorted cut points, each shard owning >= 1% of the slots
/// (with tinier shards the bounded search may skip one; see the unit tests), plus a shuffle
/// of which shard owns which run.
fn slot_map() -> impl Strategy<Value = Vec<usize>> {
    (2usize..=20)
        .prop_flat_map(|shards| {
            (
                Just(shards),
                proptest::collection::vec(any::<u16>(), shards - 1),
                any::<u64>(),
            )
        })
        .prop_map(|(shards, cuts, seed)| {
            let min = SLOT_COUNT / 100;
            let free = SLOT_COUNT - min * shards;
            let mut cuts: Vec<usize> = cuts
                .into_iter()
                .map(|c| usize::from(c) % (free + 1))
                .collect();
            cuts.sort_unstable();
            let mut owner = Vec::with_capacity(SLOT_COUNT);
            let mut prev = 0;
            for s in 0..shards {
                let end = cuts.get(s).copied().unwrap_or(free);
                let id = (s as u64).wrapping_mul(seed | 1) as usize; // arbitrary shard ids
                owner.extend(std::iter::repeat_n(id, end - prev + min));
                prev = end;
            }
            owner
        })
}

fn key() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..40),
        ("[a-z:]{0,8}", "[a-z0-9]{1,8}", "[a-z:]{0,8}")
            .prop_map(|(a, t, b)| format!("{a}{{{t}}}{b}").into_bytes()),
    ]
}

fn distinct(v: &[usize]) -> bool {
    let mut s = v.to_vec();
    s.sort_unstable();
    s.dedup();
    s.len() == v.len()
}

proptest! {
    #[test]
    fn salted_copies_are_on_distinct_shards_and_disjoint_from_other_salts(
        owner in slot_map(), key in key(), n in 1usize..25, a in any::<u32>(), b in any::<u32>()
    ) {
        let shard = |name: &[u8]| owner.get(usize::from(key_slot(name))).copied();
        let mine = salted_copies(&key, n, a, shard);
        prop_assert_eq!(&mine[0], &key);
        let shards: Vec<usize> = mine.iter().filter_map(|k| shard(k)).collect();
        prop_assert_eq!(shards.len(), mine.len());
        prop_assert!(distinct(&shards));
        prop_assert_eq!(salted_copies(&key, n, a, shard), mine.clone());
        // Salts whose marker windows (at most 2^20 wide) do not overlap share no copy name.
        if a.wrapping_sub(b) > (1 << 20) && b.wrapping_sub(a) > (1 << 20) {
            let theirs = salted_copies(&key, n, b, shard);
            prop_assert!(mine[1..].iter().all(|name| !theirs.contains(name)));
        }
    }
}

proptest! {
    #[test]
    fn cluster_copies_on_distinct_shards(owner in slot_map(), key in key(), n in 1usize..25) {
        let shard = |slot: u16| owner.get(usize::from(slot)).copied();
        let names = cluster_copies(&key, n, shard);
        let mut shards_in_map = owner.clone();
        shards_in_map.sort_unstable();
        shards_in_map.dedup();
        prop_assert_eq!(names.len(), n.min(shards_in_map.len()));
        prop_assert_eq!(&names[0], &key);
        let shards: Vec<usize> = names.iter().filter_map(|k| shard(key_slot(k))).collect();
        prop_assert_eq!(shards.len(), names.len());
        prop_assert!(distinct(&shards));
        // Deterministic: same inputs, same names (another process would agree).
        prop_assert_eq!(cluster_copies(&key, n, shard), names.clone());
        // Tagged keys keep the marker inside the tag.
        let tag = hash_tag(&key);
        if tag.len() < key.len() {
            for c in &names[1..] {
                let ct = hash_tag(c);
                prop_assert!(ct.starts_with(tag) && ct[tag.len()..].starts_with(b"#hk"));
                prop_assert_eq!(c.len(), key.len() + (ct.len() - tag.len()));
            }
        }
    }

    #[test]
    fn ring_copies_on_distinct_clockwise_nodes(
        nodes in proptest::collection::btree_set("[a-z]{1,6}:[0-9]{4}", 1..12),
        weights in proptest::collection::vec(1u32..4, 12),
        key in key(),
        n in 1usize..15,
    ) {
        let ring = Ring::new(nodes.iter().zip(&weights).map(|(n, &w)| (n.as_str(), w)))
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        let names = ring_copies(&key, n, &ring);
        let want = n.min(nodes.len());
        prop_assert_eq!(names.len(), want);
        prop_assert_eq!(&names[0], &key);
        let got: Vec<usize> = names.iter().map(|k| ring.get_index(k)).collect();
        prop_assert!(distinct(&got));
        let expect: Vec<usize> = ring.replicas(&key, want)
            .map_err(|e| TestCaseError::fail(e.to_string()))?
            .iter()
            .filter_map(|node| ring.index_of(node.name()))
            .collect();
        prop_assert_eq!(got, expect);
        prop_assert_eq!(ring_copies(&key, n, &ring), names);
    }

    #[test]
    fn copy_names_never_panic_and_keep_the_key(key in proptest::collection::vec(any::<u8>(), 0..64), m in any::<u32>()) {
        let c = copy_name(&key, m);
        let marker = format!("#hk{m}");
        prop_assert_eq!(c.len(), key.len() + marker.len());
        // The copy is the key with the marker inserted somewhere.
        let m = marker.as_bytes();
        let found = (0..=key.len()).any(|p| c == [&key[..p], m, &key[p..]].concat());
        prop_assert!(found);
    }
}
