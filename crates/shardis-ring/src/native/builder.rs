//! [`RingBuilder`]: validation, and the placement of every node's points.

use super::{DEFAULT_POINTS_PER_WEIGHT, Ring};
use crate::hash::{point_label, xxh3};
use crate::index::{Continuum, MAX_NODES, MAX_POINTS};
use crate::{Node, RingError};

/// Builds a [`Ring`]; see [`Ring::builder`].
#[derive(Debug, Clone)]
pub struct RingBuilder {
    nodes: Vec<Node>,
    points_per_weight: u32,
}

impl Default for RingBuilder {
    fn default() -> Self {
        RingBuilder {
            nodes: Vec::new(),
            points_per_weight: DEFAULT_POINTS_PER_WEIGHT,
        }
    }
}

impl RingBuilder {
    /// Points per unit of weight (default 160). More points: better balance, more memory.
    ///
    /// ```
    /// let ring = shardis_ring::Ring::builder().points_per_weight(10).node("a", 3).build()?;
    /// assert_eq!(ring.point_count(), 30);
    /// # Ok::<(), shardis_ring::RingError>(())
    /// ```
    pub fn points_per_weight(mut self, points: u32) -> Self {
        self.points_per_weight = points;
        self
    }

    /// Adds a node.
    ///
    /// ```
    /// let ring = shardis_ring::Ring::builder().node("a", 1).node("b", 2).build()?;
    /// assert_eq!(ring.node_count(), 2);
    /// # Ok::<(), shardis_ring::RingError>(())
    /// ```
    pub fn node(mut self, name: impl Into<String>, weight: u32) -> Self {
        self.nodes.push(Node::new(name, weight));
        self
    }

    /// Adds nodes.
    ///
    /// ```
    /// use shardis_ring::{Node, Ring};
    ///
    /// let ring = Ring::builder().nodes([Node::new("a", 1), Node::new("b", 1)]).build()?;
    /// assert_eq!(ring.node_count(), 2);
    /// # Ok::<(), shardis_ring::RingError>(())
    /// ```
    pub fn nodes(mut self, nodes: impl IntoIterator<Item = Node>) -> Self {
        self.nodes.extend(nodes);
        self
    }

    /// Builds the ring, or says why not: no node, a duplicate name, a zero weight, zero
    /// points per weight, more than [`MAX_NODES`] nodes or more than [`MAX_POINTS`] points.
    ///
    /// ```
    /// use shardis_ring::{Ring, RingError};
    ///
    /// let err = Ring::builder().node("a", 1).node("a", 2).build().unwrap_err();
    /// assert_eq!(err, RingError::DuplicateNode("a".into()));
    /// ```
    pub fn build(self) -> Result<Ring, RingError> {
        let RingBuilder {
            mut nodes,
            points_per_weight,
        } = self;
        if points_per_weight == 0 {
            return Err(RingError::ZeroPointsPerWeight);
        }
        if nodes.is_empty() {
            return Err(RingError::Empty);
        }
        if nodes.len() > MAX_NODES {
            return Err(RingError::TooManyNodes {
                nodes: nodes.len(),
                max: MAX_NODES,
            });
        }
        // Node index = rank by name: this is what makes ties (and the whole ring)
        // independent of the order the nodes were given in.
        nodes.sort_unstable_by(|a, b| a.name().cmp(b.name()));
        if let Some(w) = nodes.windows(2).find(|w| w[0].name() == w[1].name()) {
            return Err(RingError::DuplicateNode(w[0].name().to_owned()));
        }
        let mut total = 0u64;
        for n in &nodes {
            if n.weight() == 0 {
                return Err(RingError::ZeroWeight(n.name().to_owned()));
            }
            total += u64::from(n.weight()) * u64::from(points_per_weight);
        }
        if total > MAX_POINTS {
            return Err(RingError::TooManyPoints {
                points: total,
                max: MAX_POINTS,
            });
        }
        let mut pairs = Vec::with_capacity(total as usize);
        let mut label = Vec::new();
        for (owner, n) in nodes.iter().enumerate() {
            label.clear();
            label.extend_from_slice(n.name().as_bytes());
            let count = u64::from(n.weight()) * u64::from(points_per_weight);
            for j in 0..count {
                // owner < MAX_NODES = 2^16, checked above.
                pairs.push((
                    xxh3(point_label(&mut label, n.name().len(), j)),
                    owner as u16,
                ));
            }
        }
        let continuum = Continuum::new(pairs)?;
        Ok(Ring {
            nodes,
            points_per_weight,
            continuum,
        })
    }
}
