//! The one error type of the crate.

/// Everything that can go wrong when building or querying a ring.
///
/// Library code never panics on user input; every rejected input is one of these.
///
/// ```
/// use shardis_ring::{Ring, RingError};
///
/// let nodes: [(&str, u32); 0] = [];
/// assert_eq!(Ring::new(nodes).unwrap_err(), RingError::Empty);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RingError {
    /// The ring would have no node (or no point) at all.
    #[error("a ring needs at least one node")]
    Empty,
    /// Two nodes share one name (for ketama: one hashed server name).
    #[error("duplicate node name {0:?}")]
    DuplicateNode(String),
    /// A node was given weight 0; remove it instead.
    #[error("node {0:?} has weight 0")]
    ZeroWeight(String),
    /// The named node is not in the ring.
    #[error("node {0:?} is not in the ring")]
    UnknownNode(String),
    /// The builder was asked for 0 points per unit of weight.
    #[error("points per unit of weight must be at least 1")]
    ZeroPointsPerWeight,
    /// The weights ask for more points than a ring may hold ([`crate::MAX_POINTS`]).
    #[error("the ring would hold {points} points, more than the maximum {max}")]
    TooManyPoints {
        /// Points the nodes asked for.
        points: u64,
        /// The limit, [`crate::MAX_POINTS`].
        max: u64,
    },
    /// More nodes than a ring may hold ([`crate::MAX_NODES`]).
    #[error("the ring would hold {nodes} nodes, more than the maximum {max}")]
    TooManyNodes {
        /// Nodes given.
        nodes: usize,
        /// The limit, [`crate::MAX_NODES`].
        max: usize,
    },
    /// A key hash name that twemproxy does not have.
    #[error(
        "unknown key hash {0:?}: expected one of one_at_a_time, md5, crc16, crc32, crc32a, \
         fnv1_64, fnv1a_64, fnv1_32, fnv1a_32, hsieh, murmur, jenkins"
    )]
    UnknownKeyHash(String),
    /// `replicas` was asked for 0 replicas.
    #[error("the replica count must be at least 1")]
    ZeroReplicas,
}
