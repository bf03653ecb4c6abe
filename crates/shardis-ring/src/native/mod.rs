//! The native ring: xxh3-64 points, nodes ordered by name, O(1) expected lookup.

use std::fmt;

mod builder;

pub use builder::RingBuilder;

use crate::arcs::{self, HASH_SPACE};
use crate::hash::xxh3;
use crate::index::Continuum;
use crate::{Node, RingError};

/// Points per unit of weight unless the builder says otherwise.
pub const DEFAULT_POINTS_PER_WEIGHT: u32 = 160;

/// An immutable consistent-hash ring of named, weighted nodes.
///
/// - Node `name` of weight `w` gets the points `xxh3_64(name + "-" + j)` for
///   `j in 0..w * points_per_weight` (see [`crate::hash::native_point`]).
/// - A key maps to the owner of the first point `>= xxh3_64(key)`, wrapping to the first point.
/// - If two nodes hash to the same point, the node whose name sorts first (byte order) wins,
///   so a ring depends only on its set of nodes, never on the order they were given.
/// - Membership changes ([`Ring::with_node`], [`Ring::without_node`], [`Ring::with_weight`])
///   return a new ring; keys move only to an added node or away from a removed one.
///
/// ```
/// use shardis_ring::Ring;
///
/// let ring = Ring::new([("redis-a:6379", 1), ("redis-b:6379", 1), ("redis-c:6379", 2)])?;
/// let node = ring.get(b"user:42");
/// assert!(ring.nodes().contains(node));
/// # Ok::<(), shardis_ring::RingError>(())
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct Ring {
    nodes: Vec<Node>,
    points_per_weight: u32,
    continuum: Continuum,
}

impl Ring {
    /// A builder, for a non-default number of points per weight.
    ///
    /// ```
    /// let ring = shardis_ring::Ring::builder().node("a", 1).build()?;
    /// assert_eq!(ring.point_count(), 160);
    /// # Ok::<(), shardis_ring::RingError>(())
    /// ```
    pub fn builder() -> RingBuilder {
        RingBuilder::default()
    }

    /// A ring of `(name, weight)` nodes with 160 points per unit of weight.
    ///
    /// ```
    /// let ring = shardis_ring::Ring::new([("a", 1), ("b", 1)])?;
    /// assert_eq!(ring.point_count(), 320);
    /// # Ok::<(), shardis_ring::RingError>(())
    /// ```
    pub fn new<S: Into<String>>(
        nodes: impl IntoIterator<Item = (S, u32)>,
    ) -> Result<Ring, RingError> {
        Ring::builder()
            .nodes(nodes.into_iter().map(|(n, w)| Node::new(n, w)))
            .build()
    }

    /// The key hash of the native ring, xxh3-64 (seed 0); pass it to [`Ring::get_by_hash`].
    ///
    /// ```
    /// let ring = shardis_ring::Ring::new([("a", 1), ("b", 1)])?;
    /// let h = shardis_ring::Ring::hash_key(b"k");
    /// assert_eq!(ring.get_by_hash(h), ring.get(b"k"));
    /// # Ok::<(), shardis_ring::RingError>(())
    /// ```
    #[inline]
    pub fn hash_key(key: &[u8]) -> u64 {
        xxh3(key)
    }

    /// The node that owns `key`.
    ///
    /// ```
    /// let ring = shardis_ring::Ring::new([("only", 1)])?;
    /// assert_eq!(ring.get(b"anything").name(), "only");
    /// # Ok::<(), shardis_ring::RingError>(())
    /// ```
    #[inline]
    pub fn get(&self, key: &[u8]) -> &Node {
        self.get_by_hash(xxh3(key))
    }

    /// The node that owns the precomputed key hash `hash`.
    ///
    /// ```
    /// let ring = shardis_ring::Ring::new([("a", 1), ("b", 1)])?;
    /// // Past the last point, the first point's owner takes over.
    /// let (first, owner) = ring.points().next().unwrap();
    /// assert_eq!(ring.get_by_hash(first), owner);
    /// # Ok::<(), shardis_ring::RingError>(())
    /// ```
    #[inline]
    pub fn get_by_hash(&self, hash: u64) -> &Node {
        &self.nodes[self.get_index_by_hash(hash)]
    }

    /// Index into [`Ring::nodes`] of the owner of `key`.
    ///
    /// ```
    /// let ring = shardis_ring::Ring::new([("a", 1), ("b", 1)])?;
    /// assert_eq!(&ring.nodes()[ring.get_index(b"k")], ring.get(b"k"));
    /// # Ok::<(), shardis_ring::RingError>(())
    /// ```
    #[inline]
    pub fn get_index(&self, key: &[u8]) -> usize {
        self.get_index_by_hash(xxh3(key))
    }

    /// Index into [`Ring::nodes`] of the owner of `hash`.
    ///
    /// ```
    /// let ring = shardis_ring::Ring::new([("a", 1)])?;
    /// assert_eq!(ring.get_index_by_hash(u64::MAX), 0);
    /// # Ok::<(), shardis_ring::RingError>(())
    /// ```
    #[inline]
    pub fn get_index_by_hash(&self, hash: u64) -> usize {
        self.continuum.owner(hash)
    }

    /// The first `n` distinct nodes clockwise from `key` (all nodes if `n` exceeds them);
    /// the first is [`Ring::get`]. `n == 0` is an error.
    ///
    /// ```
    /// let ring = shardis_ring::Ring::new([("a", 1), ("b", 1), ("c", 1)])?;
    /// let r = ring.replicas(b"k", 2)?;
    /// assert_eq!(r.len(), 2);
    /// assert_eq!(r[0], ring.get(b"k"));
    /// assert_ne!(r[0], r[1]);
    /// # Ok::<(), shardis_ring::RingError>(())
    /// ```
    pub fn replicas(&self, key: &[u8], n: usize) -> Result<Vec<&Node>, RingError> {
        self.replicas_by_hash(xxh3(key), n)
    }

    /// [`Ring::replicas`] for a precomputed key hash.
    ///
    /// ```
    /// let ring = shardis_ring::Ring::new([("a", 1), ("b", 1)])?;
    /// assert_eq!(ring.replicas_by_hash(7, 5)?.len(), 2);
    /// # Ok::<(), shardis_ring::RingError>(())
    /// ```
    pub fn replicas_by_hash(&self, hash: u64, n: usize) -> Result<Vec<&Node>, RingError> {
        let mut idx = Vec::with_capacity(n.min(self.nodes.len()));
        self.replicas_by_hash_into(hash, n, &mut idx)?;
        Ok(idx.into_iter().filter_map(|i| self.nodes.get(i)).collect())
    }

    /// [`Ring::replicas_by_hash`] into a caller-owned buffer of node indices: reuse `out`
    /// and no allocation happens for `n <= 16`.
    ///
    /// ```
    /// let ring = shardis_ring::Ring::new([("a", 1), ("b", 1)])?;
    /// let mut out = Vec::with_capacity(2);
    /// ring.replicas_by_hash_into(shardis_ring::Ring::hash_key(b"k"), 2, &mut out)?;
    /// assert_eq!(out[0], ring.get_index(b"k"));
    /// # Ok::<(), shardis_ring::RingError>(())
    /// ```
    pub fn replicas_by_hash_into(
        &self,
        hash: u64,
        n: usize,
        out: &mut Vec<usize>,
    ) -> Result<(), RingError> {
        if n == 0 {
            return Err(RingError::ZeroReplicas);
        }
        self.continuum.replicas_into(hash, n, self.nodes.len(), out);
        Ok(())
    }

    /// A new ring with one more node. Keys move only to it.
    ///
    /// ```
    /// let a = shardis_ring::Ring::new([("a", 1)])?;
    /// let b = a.with_node("b", 1)?;
    /// assert_eq!(b.without_node("b")?, a);
    /// # Ok::<(), shardis_ring::RingError>(())
    /// ```
    pub fn with_node(&self, name: impl Into<String>, weight: u32) -> Result<Ring, RingError> {
        self.rebuild(self.nodes.iter().cloned().chain([Node::new(name, weight)]))
    }

    /// A new ring without the node `name`. Only that node's keys move.
    ///
    /// ```
    /// use shardis_ring::{Ring, RingError};
    ///
    /// let a = Ring::new([("a", 1)])?;
    /// assert_eq!(a.without_node("x").unwrap_err(), RingError::UnknownNode("x".into()));
    /// assert_eq!(a.without_node("a").unwrap_err(), RingError::Empty);
    /// # Ok::<(), RingError>(())
    /// ```
    pub fn without_node(&self, name: &str) -> Result<Ring, RingError> {
        let i = self
            .index_of(name)
            .ok_or_else(|| RingError::UnknownNode(name.to_owned()))?;
        self.rebuild(
            self.nodes
                .iter()
                .enumerate()
                .filter(|&(j, _)| j != i)
                .map(|(_, n)| n.clone()),
        )
    }

    /// A new ring where node `name` has `weight`. Raising a weight only adds points (keys
    /// move only to that node); lowering it only removes points.
    ///
    /// ```
    /// let a = shardis_ring::Ring::new([("a", 1), ("b", 1)])?;
    /// let b = a.with_weight("a", 3)?;
    /// assert_eq!(b.point_count(), 640);
    /// # Ok::<(), shardis_ring::RingError>(())
    /// ```
    pub fn with_weight(&self, name: &str, weight: u32) -> Result<Ring, RingError> {
        let i = self
            .index_of(name)
            .ok_or_else(|| RingError::UnknownNode(name.to_owned()))?;
        let mut nodes = self.nodes.clone();
        nodes[i].set_weight(weight);
        self.rebuild(nodes)
    }

    fn rebuild(&self, nodes: impl IntoIterator<Item = Node>) -> Result<Ring, RingError> {
        Ring::builder()
            .points_per_weight(self.points_per_weight)
            .nodes(nodes)
            .build()
    }

    /// The nodes, sorted by name; indices returned by lookups refer to this slice.
    ///
    /// ```
    /// let ring = shardis_ring::Ring::new([("b", 1), ("a", 1)])?;
    /// assert_eq!(ring.nodes()[0].name(), "a");
    /// # Ok::<(), shardis_ring::RingError>(())
    /// ```
    pub fn nodes(&self) -> &[Node] {
        &self.nodes
    }

    /// Index of the node called `name`, if present.
    ///
    /// ```
    /// let ring = shardis_ring::Ring::new([("b", 1), ("a", 1)])?;
    /// assert_eq!(ring.index_of("b"), Some(1));
    /// assert_eq!(ring.index_of("z"), None);
    /// # Ok::<(), shardis_ring::RingError>(())
    /// ```
    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.nodes.binary_search_by(|n| n.name().cmp(name)).ok()
    }

    /// Number of nodes (always at least 1).
    ///
    /// ```
    /// assert_eq!(shardis_ring::Ring::new([("a", 1)])?.node_count(), 1);
    /// # Ok::<(), shardis_ring::RingError>(())
    /// ```
    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }

    /// Number of points (the sum of weight × points per weight).
    ///
    /// ```
    /// assert_eq!(shardis_ring::Ring::new([("a", 2)])?.point_count(), 320);
    /// # Ok::<(), shardis_ring::RingError>(())
    /// ```
    pub fn point_count(&self) -> usize {
        self.continuum.points().len()
    }

    /// Points per unit of weight this ring was built with.
    ///
    /// ```
    /// assert_eq!(shardis_ring::Ring::new([("a", 1)])?.points_per_weight(), 160);
    /// # Ok::<(), shardis_ring::RingError>(())
    /// ```
    pub fn points_per_weight(&self) -> u32 {
        self.points_per_weight
    }

    /// The points in ring order with their owners; equal points appear with the winner first.
    ///
    /// ```
    /// let ring = shardis_ring::Ring::new([("a", 1), ("b", 1)])?;
    /// let pts: Vec<u64> = ring.points().map(|(p, _)| p).collect();
    /// assert!(pts.windows(2).all(|w| w[0] <= w[1]));
    /// # Ok::<(), shardis_ring::RingError>(())
    /// ```
    pub fn points(&self) -> impl ExactSizeIterator<Item = (u64, &Node)> + '_ {
        let owners = self.continuum.owners().iter();
        self.continuum
            .points()
            .iter()
            .zip(owners)
            .map(|(&p, &o)| (p, &self.nodes[usize::from(o)]))
    }

    /// Exact arc length owned by each node (aligned with [`Ring::nodes`]), over 2^64
    /// ([`crate::HASH_SPACE`]); the lengths sum to exactly 2^64.
    ///
    /// ```
    /// let ring = shardis_ring::Ring::new([("a", 1), ("b", 1)])?;
    /// assert_eq!(ring.arc_lengths().iter().sum::<u128>(), shardis_ring::HASH_SPACE);
    /// # Ok::<(), shardis_ring::RingError>(())
    /// ```
    pub fn arc_lengths(&self) -> Vec<u128> {
        arcs::arc_lengths(&self.continuum, self.nodes.len())
    }

    /// The exact share of the key space owned by node `name` (its arcs over 2^64).
    ///
    /// ```
    /// let ring = shardis_ring::Ring::new([("a", 1)])?;
    /// assert_eq!(ring.share("a"), Some(1.0));
    /// assert_eq!(ring.share("b"), None);
    /// # Ok::<(), shardis_ring::RingError>(())
    /// ```
    pub fn share(&self, name: &str) -> Option<f64> {
        let i = self.index_of(name)?;
        Some(*self.arc_lengths().get(i)? as f64 / HASH_SPACE as f64)
    }

    /// Heap bytes held by the ring: points (8 B), owners (2 B), the bucket index (<= 4 B per
    /// point) and the node table.
    ///
    /// ```
    /// let ring = shardis_ring::Ring::new((0..100).map(|i| (format!("n{i}"), 1)))?;
    /// assert!(ring.memory_bytes() as f64 / ring.point_count() as f64 <= 16.0);
    /// # Ok::<(), shardis_ring::RingError>(())
    /// ```
    pub fn memory_bytes(&self) -> usize {
        let nodes: usize = self
            .nodes
            .iter()
            .map(|n| size_of::<Node>() + n.name().len())
            .sum();
        self.continuum.memory_bytes() + nodes
    }

    pub(crate) fn continuum(&self) -> &Continuum {
        &self.continuum
    }
}

/// A summary: printing 160 000 points helps nobody.
impl fmt::Debug for Ring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ring")
            .field("nodes", &self.nodes)
            .field("points_per_weight", &self.points_per_weight)
            .field("points", &self.point_count())
            .finish()
    }
}
