//! Exact arc arithmetic: who owns how much of the hash space, and what moves between rings.
//!
//! A ring maps hash `h` to the owner of the first point `>= h`, wrapping. So the point `p_i`
//! owns the hash values `(p_{i-1}, p_i]`, and the first point also owns `(p_last, 2^64)` and
//! `[0, p_0]`. Arc lengths are counts of hash values, so they sum to exactly 2^64 and all
//! comparisons are exact integers (`u128`), with no sampling.

use crate::index::Continuum;

/// The size of the native hash space, 2^64, as the denominator of every arc.
pub const HASH_SPACE: u128 = 1 << 64;

/// Arc length owned by each node index, summing to [`HASH_SPACE`].
pub(crate) fn arc_lengths(c: &Continuum, nodes: usize) -> Vec<u128> {
    let mut arcs = vec![0u128; nodes];
    let (points, owners) = (c.points(), c.owners());
    let (Some(&first), Some(&last)) = (points.first(), points.last()) else {
        return arcs;
    };
    let mut add = |owner: u16, len: u128| {
        if let Some(a) = arcs.get_mut(usize::from(owner)) {
            *a += len;
        }
    };
    add(owners[0], HASH_SPACE - u128::from(last) + u128::from(first));
    for i in 1..points.len() {
        add(owners[i], u128::from(points[i] - points[i - 1]));
    }
    arcs
}

/// Walks the common refinement of two rings' arcs: calls `f(owner_in_a, owner_in_b, length)`
/// for consecutive intervals covering the hash space once. O(points of a + points of b).
pub(crate) fn segments(a: &Continuum, b: &Continuum, mut f: impl FnMut(usize, usize, u128)) {
    let (pa, pb) = (a.points(), b.points());
    let (mut ia, mut ib) = (0usize, 0usize);
    // Next hash value not yet covered; intervals are (previous boundary, boundary].
    let mut from: u128 = 0;
    while ia < pa.len() || ib < pb.len() {
        let v = match (pa.get(ia), pb.get(ib)) {
            (Some(&x), Some(&y)) => x.min(y),
            (Some(&x), None) => x,
            (None, Some(&y)) => y,
            (None, None) => break,
        };
        // The first unconsumed point of each ring is its lower_bound for the whole interval;
        // past the end, both wrap to position 0.
        let oa = a.owner_at(if ia < pa.len() { ia } else { 0 });
        let ob = b.owner_at(if ib < pb.len() { ib } else { 0 });
        f(oa, ob, u128::from(v) + 1 - from);
        from = u128::from(v) + 1;
        while pa.get(ia) == Some(&v) {
            ia += 1;
        }
        while pb.get(ib) == Some(&v) {
            ib += 1;
        }
    }
    if from < HASH_SPACE {
        f(a.owner_at(0), b.owner_at(0), HASH_SPACE - from);
    }
}

/// Exact size of the hash space whose owner differs between `a` and `b`, over [`HASH_SPACE`].
/// Nodes are matched by name.
///
/// ```
/// use shardis_ring::{moved_arc, Ring};
///
/// let a = Ring::new([("a", 1), ("b", 1)])?;
/// let b = a.with_node("c", 1)?;
/// // Everything that moved went to "c", and "c" got nothing else.
/// assert_eq!(moved_arc(&a, &b), b.arc_lengths()[2]);
/// # Ok::<(), shardis_ring::RingError>(())
/// ```
pub fn moved_arc(a: &crate::Ring, b: &crate::Ring) -> u128 {
    let same = name_map(a, b);
    let mut moved = 0u128;
    segments(a.continuum(), b.continuum(), |oa, ob, len| {
        if same.get(oa).copied().flatten() != Some(ob) {
            moved += len;
        }
    });
    moved
}

/// The fraction of the key space whose owner differs between `a` and `b`:
/// [`moved_arc`] / 2^64. Computed from arcs, not by sampling keys.
///
/// ```
/// use shardis_ring::{moved_fraction, Ring};
///
/// let a = Ring::new((0..10).map(|i| (format!("node-{i}"), 1)))?;
/// let b = a.with_node("node-10", 1)?;
/// let f = moved_fraction(&a, &b);
/// assert!(f > 0.05 && f < 0.15, "about 1/11: {f}");
/// assert_eq!(moved_fraction(&a, &a), 0.0);
/// # Ok::<(), shardis_ring::RingError>(())
/// ```
pub fn moved_fraction(a: &crate::Ring, b: &crate::Ring) -> f64 {
    moved_arc(a, b) as f64 / HASH_SPACE as f64
}

/// A flow of key space from one node to another between two rings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transfer<'a> {
    /// The owner in the first ring.
    pub from: &'a str,
    /// The owner in the second ring.
    pub to: &'a str,
    /// Exact amount of hash space, over [`HASH_SPACE`].
    pub arc: u128,
}

/// Every flow of key space between two different owners, from `a` to `b`, summed per
/// `(from, to)` pair and sorted by names. Adding a node yields only flows `to` it; removing
/// one yields only flows `from` it.
///
/// ```
/// use shardis_ring::{transfers, Ring};
///
/// let a = Ring::new([("a", 1), ("b", 1), ("c", 1)])?;
/// let b = a.without_node("b")?;
/// assert!(transfers(&a, &b).iter().all(|t| t.from == "b"));
/// # Ok::<(), shardis_ring::RingError>(())
/// ```
pub fn transfers<'a>(a: &'a crate::Ring, b: &'a crate::Ring) -> Vec<Transfer<'a>> {
    let same = name_map(a, b);
    let mut flows = std::collections::BTreeMap::<(usize, usize), u128>::new();
    segments(a.continuum(), b.continuum(), |oa, ob, len| {
        if same.get(oa).copied().flatten() != Some(ob) {
            *flows.entry((oa, ob)).or_default() += len;
        }
    });
    let (na, nb) = (a.nodes(), b.nodes());
    flows
        .into_iter()
        .filter_map(|((oa, ob), arc)| {
            Some(Transfer {
                from: na.get(oa)?.name(),
                to: nb.get(ob)?.name(),
                arc,
            })
        })
        .collect()
}

/// For each node index of `a`, the index of the node with the same name in `b`.
fn name_map(a: &crate::Ring, b: &crate::Ring) -> Vec<Option<usize>> {
    a.nodes().iter().map(|n| b.index_of(n.name())).collect()
}
