//! A named, weighted member of a native ring.

/// A ring member: a unique name (what its points are hashed from) and a weight >= 1.
///
/// A node of weight `w` gets `w * points_per_weight` points.
///
/// ```
/// use shardis_ring::Node;
///
/// let n = Node::new("redis-a:6379", 2);
/// assert_eq!((n.name(), n.weight()), ("redis-a:6379", 2));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Node {
    name: String,
    weight: u32,
}

impl Node {
    /// A node called `name` with `weight` (validated when a ring is built).
    ///
    /// ```
    /// let n = shardis_ring::Node::new(String::from("b"), 1);
    /// assert_eq!(n.name(), "b");
    /// ```
    pub fn new(name: impl Into<String>, weight: u32) -> Self {
        Node {
            name: name.into(),
            weight,
        }
    }

    /// The node's name.
    ///
    /// ```
    /// assert_eq!(shardis_ring::Node::new("a", 1).name(), "a");
    /// ```
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The node's weight.
    ///
    /// ```
    /// assert_eq!(shardis_ring::Node::new("a", 3).weight(), 3);
    /// ```
    pub fn weight(&self) -> u32 {
        self.weight
    }

    pub(crate) fn set_weight(&mut self, weight: u32) {
        self.weight = weight;
    }
}
