//! The continuum: sorted points, their owners, and an O(1) index over the top bits of a hash.
//!
//! Both ring flavours store their points here as `u64` (ketama scales its `u32` points, see
//! `ketama.rs`), so there is one lookup path to make fast and to test.
//!
//! Layout (structure of arrays, because a lookup touches one bucket entry, one or two points and
//! one owner, and each array should stay as small as possible to stay in cache):
//! - `points`: sorted ascending; ties sorted by owner, so the lowest owner index wins a tie;
//! - `owners`: `u16` node index per point;
//! - `starts`: `2^k + 1` offsets, `starts[b]` = first point whose top `k` bits are `>= b`, with
//!   `2^k` the largest power of two `<= points.len()` (1–2 points per bucket, <= 4 bytes/point).

use crate::RingError;

/// Most points a ring may hold: 2^26 (about 0.9 GiB of ring). Keeps `u32` offsets far from
/// overflow and turns absurd weights into an error instead of an allocation failure.
pub const MAX_POINTS: u64 = 1 << 26;

/// Most nodes a ring may hold: owners are stored as `u16` to keep the hot arrays small.
pub const MAX_NODES: usize = 1 << 16;

#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Continuum {
    points: Vec<u64>,
    owners: Vec<u16>,
    starts: Vec<u32>,
    shift: u32,
}

impl Continuum {
    /// Builds from `(point, owner)` pairs in any order. Callers have checked the limits.
    pub(crate) fn new(mut pairs: Vec<(u64, u16)>) -> Result<Self, RingError> {
        if pairs.is_empty() {
            return Err(RingError::Empty);
        }
        if pairs.len() as u64 > MAX_POINTS {
            return Err(RingError::TooManyPoints {
                points: pairs.len() as u64,
                max: MAX_POINTS,
            });
        }
        // Sorting by (point, owner) is the tie-break: the first of equal points, which a
        // lower_bound finds, belongs to the lowest owner index.
        pairs.sort_unstable();
        let points: Vec<u64> = pairs.iter().map(|&(p, _)| p).collect();
        let owners: Vec<u16> = pairs.iter().map(|&(_, o)| o).collect();
        drop(pairs);

        // k >= 1 so that the shift stays below 64; MAX_POINTS keeps k <= 26.
        let k = points.len().ilog2().max(1);
        let shift = 64 - k;
        let buckets = 1usize << k;
        let mut starts = Vec::with_capacity(buckets + 1);
        let mut i = 0usize;
        for b in 0..buckets as u64 {
            while i < points.len() && (points[i] >> shift) < b {
                i += 1;
            }
            starts.push(i as u32);
        }
        starts.push(points.len() as u32);
        Ok(Continuum {
            points,
            owners,
            starts,
            shift,
        })
    }

    /// Position of the first point `>= hash`, wrapping to 0 past the last point.
    ///
    /// Every point `>= hash` that is not in `hash`'s bucket lies in a later bucket, so if the
    /// scan of this bucket finds nothing, the answer is the first point of the next bucket,
    /// which is `starts[b + 1]`.
    #[inline]
    pub(crate) fn position(&self, hash: u64) -> usize {
        let b = (hash >> self.shift) as usize;
        let (start, end) = match self.starts.get(b..b + 2) {
            Some(&[s, e]) => (s as usize, e as usize),
            _ => (0, 0), // unreachable: b < 2^k by construction
        };
        let bucket = self.points.get(start..end).unwrap_or(&[]);
        let i = start + bucket.iter().take_while(|&&p| p < hash).count();
        if i == self.points.len() { 0 } else { i }
    }

    /// Owner (node index) of the point at `position`.
    #[inline]
    pub(crate) fn owner_at(&self, position: usize) -> usize {
        self.owners.get(position).map_or(0, |&o| usize::from(o))
    }

    /// Owner of `hash`: the owner of the first point `>= hash`, wrapping.
    #[inline]
    pub(crate) fn owner(&self, hash: u64) -> usize {
        self.owner_at(self.position(hash))
    }

    pub(crate) fn points(&self) -> &[u64] {
        &self.points
    }

    pub(crate) fn owners(&self) -> &[u16] {
        &self.owners
    }

    /// Fills `out` with the first `min(n, nodes)` distinct owners clockwise from `hash`.
    /// Allocation-free for `n <= 16` when `out` has capacity; a bitset beyond that keeps the
    /// walk O(points) instead of O(points * n).
    pub(crate) fn replicas_into(&self, hash: u64, n: usize, nodes: usize, out: &mut Vec<usize>) {
        out.clear();
        let want = n.min(nodes);
        let len = self.points.len();
        let first = self.position(hash);
        let mut seen = if want > 16 {
            vec![0u64; nodes.div_ceil(64)]
        } else {
            Vec::new()
        };
        for step in 0..len {
            if out.len() >= want {
                break;
            }
            let at = first + step;
            let owner = self.owner_at(if at >= len { at - len } else { at });
            let new = if seen.is_empty() {
                !out.contains(&owner)
            } else {
                let (word, bit) = (owner / 64, 1u64 << (owner % 64));
                match seen.get_mut(word) {
                    Some(w) if *w & bit == 0 => {
                        *w |= bit;
                        true
                    }
                    _ => false,
                }
            };
            if new {
                out.push(owner);
            }
        }
    }

    /// Heap bytes of the three arrays (their lengths, not spare capacity: they are built exact).
    pub(crate) fn memory_bytes(&self) -> usize {
        self.points.len() * size_of::<u64>()
            + self.owners.len() * size_of::<u16>()
            + self.starts.len() * size_of::<u32>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lower_bound(c: &Continuum, h: u64) -> usize {
        let i = c.points.partition_point(|&p| p < h);
        if i == c.points.len() { 0 } else { i }
    }

    #[test]
    fn matches_binary_search_on_edges() {
        let pairs: Vec<(u64, u16)> = [5u64, 9, 9, 100, u64::MAX - 3, 1 << 63]
            .iter()
            .enumerate()
            .map(|(i, &p)| (p, i as u16))
            .collect();
        let c = Continuum::new(pairs).unwrap();
        for h in [
            0,
            4,
            5,
            6,
            9,
            10,
            100,
            101,
            1 << 63,
            (1 << 63) + 1,
            u64::MAX - 3,
            u64::MAX - 2,
            u64::MAX,
        ] {
            assert_eq!(c.position(h), lower_bound(&c, h), "hash {h}");
        }
        assert_eq!(c.position(u64::MAX), 0, "above the last point wraps");
    }

    #[test]
    fn duplicate_point_goes_to_lowest_owner_whatever_the_input_order() {
        let a = Continuum::new(vec![(7, 3), (7, 1), (3, 2), (7, 2)]).unwrap();
        let b = Continuum::new(vec![(7, 2), (3, 2), (7, 1), (7, 3)]).unwrap();
        assert!(a == b);
        assert_eq!(a.owner(7), 1);
        assert_eq!(a.owner(4), 1);
        assert_eq!(a.owner(8), 2, "wraps to point 3");
        let mut out = Vec::new();
        a.replicas_into(5, 3, 4, &mut out);
        assert_eq!(out, vec![1, 2, 3], "tied losers follow in owner order");
    }

    #[test]
    fn single_point_owns_everything() {
        let c = Continuum::new(vec![(42, 0)]).unwrap();
        assert_eq!(c.starts.len(), 3);
        for h in [0, 41, 42, 43, u64::MAX] {
            assert_eq!(c.position(h), 0);
        }
    }

    #[test]
    fn empty_is_an_error() {
        assert!(matches!(Continuum::new(Vec::new()), Err(RingError::Empty)));
    }

    #[test]
    fn bucketed_equals_binary_search_on_a_dense_ring() {
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let pairs: Vec<(u64, u16)> = (0..5000).map(|i| (next(), (i % 7) as u16)).collect();
        let c = Continuum::new(pairs).unwrap();
        assert!(c.starts.len() - 1 <= c.points.len());
        for _ in 0..20000 {
            let h = next();
            assert_eq!(c.position(h), lower_bound(&c, h));
        }
        for &p in c.points.clone().iter() {
            assert_eq!(c.position(p), lower_bound(&c, p), "exact hit");
            assert_eq!(
                c.position(p.wrapping_add(1)),
                lower_bound(&c, p.wrapping_add(1))
            );
        }
    }
}
