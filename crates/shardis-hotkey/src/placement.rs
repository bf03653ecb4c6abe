//! Where the copies of a hot key live: names chosen so that they land on distinct shards.
//!
//! # Copy naming
//!
//! Copy `m` of `key` is `key` with the marker `#hk{m}` (`m` in decimal) inserted:
//!
//! - inside the key's hash tag, just before its closing brace, if the key has one (the first
//!   `{` followed later by a `}` with at least one byte between, as Redis Cluster defines it):
//!   `{user1}:cart` → `{user1#hk3}:cart`. The tag is all that is hashed, so a marker outside
//!   it would leave every copy in the key's slot;
//! - at the end otherwise: `product:42` → `product:42#hk3`. The marker has no braces, so it
//!   never creates a tag.
//!
//! The marker namespace `#hk<digits>` is reserved: application keys should not use it.
//!
//! # Choice of markers
//!
//! The canonical key stays where it is and is returned first; copies are searched by trying
//! markers `0, 1, 2, …` in order and keeping a marker when its name lands on a shard that no
//! earlier name uses. The result depends only on the key, `n` and the topology, so every
//! process computes the same names for the same map, and a small topology change keeps most
//! names. The search is bounded (256 markers per wanted copy, 2^20 in all): a shard that owns
//! very few slots (or a ring node of tiny weight) may get no copy, and fewer than `n` names
//! are returned then. Call again when the topology changes.
//!
//! [`salted_copies`] starts the search at another marker (`salt, salt + 1, …`, wrapping): a
//! process that must be the only writer of its copies takes names no other process uses.

use shardis_ring::Ring;
use shardis_slots::key_slot;

/// The marker prefix of copy names (followed by the copy's decimal marker number).
///
/// ```
/// assert_eq!(shardis_hotkey::COPY_MARKER, b"#hk");
/// ```
pub const COPY_MARKER: &[u8] = b"#hk";

const TRIES_PER_COPY: usize = 256;
const MAX_TRIES: usize = 1 << 20;

/// The name of copy `marker` of `key` (see [copy naming](crate::placement#copy-naming)).
///
/// ```
/// use shardis_hotkey::copy_name;
/// assert_eq!(copy_name(b"product:42", 3), b"product:42#hk3");
/// assert_eq!(copy_name(b"{user1}:cart", 3), b"{user1#hk3}:cart");
/// assert_eq!(copy_name(b"a{}b", 0), b"a{}b#hk0"); // empty tag: the whole key is hashed
/// ```
pub fn copy_name(key: &[u8], marker: u32) -> Vec<u8> {
    let mut out = Vec::with_capacity(key.len() + COPY_MARKER.len() + 10);
    write_copy_name(key, marker, &mut out);
    out
}

fn write_copy_name(key: &[u8], marker: u32, out: &mut Vec<u8>) {
    out.clear();
    let mut digits = [0u8; 10];
    let mut at = digits.len();
    let mut m = marker;
    loop {
        at -= 1;
        digits[at] = b'0' + (m % 10) as u8;
        m /= 10;
        if m == 0 || at == 0 {
            break;
        }
    }
    let (head, tail) = key.split_at(tag_close(key).unwrap_or(key.len()));
    out.extend_from_slice(head);
    out.extend_from_slice(COPY_MARKER);
    out.extend_from_slice(digits.get(at..).unwrap_or_default());
    out.extend_from_slice(tail);
}

/// Index of the `}` closing a non-empty hash tag, as `shardis_slots::hash_tag` finds it.
fn tag_close(key: &[u8]) -> Option<usize> {
    let open = key.iter().position(|&b| b == b'{')?;
    let close = open + 1 + key.get(open + 1..)?.iter().position(|&b| b == b'}')?;
    (close > open + 1).then_some(close)
}

/// Up to `n` names for `key` on distinct shards, the first being `key` itself, for any
/// routing function `shard_of_key` (`None`: the name is not routable now, skip it).
///
/// Use it for topologies other than a slot map or a native [`Ring`], e.g. a ketama ring.
///
/// ```
/// // Four "shards" by the last byte of the name.
/// let names = shardis_hotkey::copies_with(b"k", 4, |name| Some(usize::from(name[name.len() - 1] % 4)));
/// assert_eq!(names.len(), 4);
/// assert_eq!(names[0], b"k");
/// ```
pub fn copies_with(
    key: &[u8],
    n: usize,
    shard_of_key: impl Fn(&[u8]) -> Option<usize>,
) -> Vec<Vec<u8>> {
    salted_copies(key, n, 0, shard_of_key)
}

/// [`copies_with`] whose marker search starts at `salt` (wrapping) instead of 0: copy names
/// of their own for whoever picks a salt of its own (e.g. at random per process), so that no
/// other writer's copy can land on them.
///
/// ```
/// let shard = |name: &[u8]| Some(usize::from(name[name.len() - 1] % 4));
/// let mine = shardis_hotkey::salted_copies(b"k", 4, 1_000_000, shard);
/// let theirs = shardis_hotkey::salted_copies(b"k", 4, 2_000_000, shard);
/// assert_eq!((mine[0].as_slice(), theirs[0].as_slice()), (&b"k"[..], &b"k"[..]));
/// assert!(mine[1..].iter().all(|name| !theirs.contains(name)));
/// ```
pub fn salted_copies(
    key: &[u8],
    n: usize,
    salt: u32,
    shard_of_key: impl Fn(&[u8]) -> Option<usize>,
) -> Vec<Vec<u8>> {
    if n == 0 {
        return Vec::new();
    }
    let mut out = vec![key.to_vec()];
    // Sorted, for O(log n) membership: n can be in the hundreds for a large cluster.
    let mut used: Vec<usize> = shard_of_key(key).into_iter().collect();
    let mut buf = Vec::with_capacity(key.len() + 16);
    let tries = n.saturating_mul(TRIES_PER_COPY).min(MAX_TRIES);
    for i in 0..tries {
        if out.len() >= n {
            break;
        }
        write_copy_name(key, salt.wrapping_add(i as u32), &mut buf);
        if let Some(shard) = shard_of_key(&buf)
            && let Err(at) = used.binary_search(&shard)
        {
            used.insert(at, shard);
            out.push(buf.clone());
        }
    }
    out
}

/// Up to `n` names for `key` on distinct Redis Cluster shards: `key` first, then copies on
/// other shards. `shard_of_slot` maps a slot to its shard (e.g. `SlotMap::shard_index`).
///
/// ```
/// use shardis_hotkey::cluster_copies;
/// use shardis_slots::key_slot;
///
/// // Three shards splitting the slots evenly.
/// let shard = |slot: u16| Some(usize::from(slot) * 3 / 16384);
/// let names = cluster_copies(b"{user1}:cart", 3, shard);
/// assert_eq!(names.len(), 3);
/// assert_eq!(names[0], b"{user1}:cart");
/// let mut shards: Vec<_> = names.iter().map(|k| shard(key_slot(k)).unwrap()).collect();
/// shards.sort();
/// assert_eq!(shards, [0, 1, 2]);
/// assert!(names[1].starts_with(b"{user1#hk"));
/// ```
pub fn cluster_copies(
    key: &[u8],
    n: usize,
    shard_of_slot: impl Fn(u16) -> Option<usize>,
) -> Vec<Vec<u8>> {
    copies_with(key, n.min(shardis_slots::SLOT_COUNT), |name| {
        shard_of_slot(key_slot(name))
    })
}

/// Up to `n` names for `key` on distinct nodes of a native ring: `key` first (on its owner),
/// then copies on the next distinct nodes clockwise from the key ([`Ring::replicas`]), in
/// that order. If a node cannot be reached within the marker bound, the next one clockwise
/// takes its place.
///
/// ```
/// use shardis_hotkey::ring_copies;
/// use shardis_ring::Ring;
///
/// let ring = Ring::new([("a", 1), ("b", 1), ("c", 1), ("d", 1)])?;
/// let names = ring_copies(b"product:42", 3, &ring);
/// let want = ring.replicas(b"product:42", 3)?;
/// let got: Vec<_> = names.iter().map(|k| ring.get(k)).collect();
/// assert_eq!(got, want);
/// # Ok::<(), shardis_ring::RingError>(())
/// ```
pub fn ring_copies(key: &[u8], n: usize, ring: &Ring) -> Vec<Vec<u8>> {
    let nodes = ring.node_count();
    let n = n.min(nodes);
    if n == 0 {
        return Vec::new();
    }
    // All nodes clockwise from the key: order[0] is the owner.
    let mut order = Vec::with_capacity(nodes);
    if ring
        .replicas_by_hash_into(Ring::hash_key(key), nodes, &mut order)
        .is_err()
    {
        return vec![key.to_vec()];
    }
    let mut rank = vec![usize::MAX; nodes];
    for (pos, &node) in order.iter().enumerate() {
        if let Some(r) = rank.get_mut(node) {
            *r = pos;
        }
    }
    let mut found: Vec<Option<Vec<u8>>> = vec![None; order.len()];
    if let Some(f) = found.first_mut() {
        *f = Some(key.to_vec());
    }
    let mut missing = n - 1;
    let mut buf = Vec::with_capacity(key.len() + 16);
    let tries = n.saturating_mul(TRIES_PER_COPY).min(MAX_TRIES);
    for marker in 0..tries {
        if missing == 0 {
            break;
        }
        write_copy_name(key, marker as u32, &mut buf);
        let pos = rank
            .get(ring.get_index(&buf))
            .copied()
            .unwrap_or(usize::MAX);
        if let Some(slot) = found.get_mut(pos)
            && slot.is_none()
        {
            *slot = Some(buf.clone());
            if pos < n {
                missing -= 1;
            }
        }
    }
    found.into_iter().flatten().take(n).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marker_digits() {
        assert_eq!(copy_name(b"k", 0), b"k#hk0");
        assert_eq!(copy_name(b"k", 1234567890), b"k#hk1234567890");
        assert_eq!(copy_name(b"k", u32::MAX), b"k#hk4294967295");
        assert_eq!(copy_name(b"", 7), b"#hk7");
    }

    #[test]
    fn tag_rules_match_redis() {
        // Only the first `{` counts; `}{` is not a tag; `{{x}` has tag `{x`.
        assert_eq!(copy_name(b"a}{b", 1), b"a}{b#hk1");
        assert_eq!(copy_name(b"{{x}y", 1), b"{{x#hk1}y");
        assert_eq!(copy_name(b"x{a}{b}", 1), b"x{a#hk1}{b}");
        assert_eq!(copy_name(b"{", 1), b"{#hk1");
        for key in [&b"a}{b"[..], b"{{x}y", b"x{a}{b}", b"{", b"{}", b"{a}"] {
            let tag = shardis_slots::hash_tag(key);
            let copy = copy_name(key, 1);
            let copy_tag = shardis_slots::hash_tag(&copy);
            if tag.len() < key.len() {
                assert_eq!(copy_tag, [tag, b"#hk1"].concat(), "{key:?}");
            } else {
                assert_eq!(copy_tag, &copy[..], "{key:?}");
            }
        }
    }

    #[test]
    fn n_edge_cases() {
        let shard = |s: u16| Some(usize::from(s) % 5);
        assert!(cluster_copies(b"k", 0, shard).is_empty());
        assert_eq!(cluster_copies(b"k", 1, shard), vec![b"k".to_vec()]);
        // More copies than shards: one per shard.
        assert_eq!(cluster_copies(b"k", 50, shard).len(), 5);
        // Unassigned slots: only the canonical name.
        assert_eq!(cluster_copies(b"k", 3, |_| None), vec![b"k".to_vec()]);
        assert_eq!(cluster_copies(b"k", usize::MAX, shard).len(), 5);
    }

    #[test]
    fn tiny_shard_may_be_skipped_but_never_duplicated() {
        // Shard 1 owns one slot out of 16384.
        let shard = |s: u16| Some(usize::from(s == 100));
        let names = cluster_copies(b"k", 2, shard);
        assert!(!names.is_empty() && names.len() <= 2);
        let shards: Vec<_> = names.iter().map(|k| shard(key_slot(k))).collect();
        assert!(shards.len() < 2 || shards[0] != shards[1]);
    }
}
