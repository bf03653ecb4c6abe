//! Error types. Every parser error names *what* is wrong and *where*, so that a
//! bad reply from a node can be logged and that node's view discarded without
//! guessing.

use crate::range::SlotRange;

/// Why a topology reply (CLUSTER SLOTS / SHARDS / NODES) or a hand-built
/// [`Topology`](crate::Topology) was rejected.
///
/// `path` fields locate the offending element inside the reply, e.g.
/// `range[2].node[1].port` (CLUSTER SLOTS) or `shard[0].nodes[1].id`
/// (CLUSTER SHARDS). An empty path is the reply itself.
///
/// ```
/// use shardis_slots::{parse_cluster_slots, Endpoint, TopologyError};
/// let err = parse_cluster_slots(&redis::Value::Int(1), &Endpoint::new("h", 1)).unwrap_err();
/// assert!(matches!(err, TopologyError::UnexpectedType { .. }));
/// ```
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TopologyError {
    /// An element has the wrong RESP type.
    #[error("{path}: expected {expected}, found {found}")]
    UnexpectedType {
        /// Location of the element.
        path: String,
        /// What the parser accepts there.
        expected: &'static str,
        /// The RESP type that was found.
        found: &'static str,
    },
    /// An array is shorter than the format requires.
    #[error("{path}: expected at least {expected} elements, found {found}")]
    TooFewElements {
        /// Location of the array.
        path: String,
        /// Minimum number of elements.
        expected: usize,
        /// Number found.
        found: usize,
    },
    /// A required map field is absent.
    #[error("{path}: missing field `{field}`")]
    MissingField {
        /// Location of the map.
        path: String,
        /// The absent key.
        field: &'static str,
    },
    /// A map key appears twice (ambiguous: which value is right?).
    #[error("{path}: duplicate field `{field}`")]
    DuplicateField {
        /// Location of the map.
        path: String,
        /// The repeated key.
        field: String,
    },
    /// A key/value list (RESP2-flattened map) has an odd number of elements.
    #[error("{path}: key/value list has odd length {len}")]
    OddLength {
        /// Location of the list.
        path: String,
        /// Its length.
        len: usize,
    },
    /// A slot number is negative or above 16383.
    #[error("{path}: slot {value} outside 0..=16383")]
    SlotOutOfRange {
        /// Location of the slot number.
        path: String,
        /// The value found.
        value: i64,
    },
    /// A range has `start > end`.
    #[error("{path}: inverted slot range {start}-{end}")]
    InvertedRange {
        /// Location of the range.
        path: String,
        /// Start slot.
        start: u16,
        /// End slot.
        end: u16,
    },
    /// Two ranges share at least one slot (including exact duplicates).
    #[error("overlapping slot ranges {a} and {b}")]
    OverlappingRanges {
        /// The range seen first (lower start).
        a: SlotRange,
        /// The range that overlaps it.
        b: SlotRange,
    },
    /// A port is not an integer in 0..=65535 (0 itself means "no address" and
    /// makes the node unusable rather than being an error).
    #[error("{path}: bad port {value}")]
    BadPort {
        /// Location of the port.
        path: String,
        /// The text or number found.
        value: String,
    },
    /// A string is not valid UTF-8, or holds characters a host/id cannot hold.
    #[error("{path}: bad string: {reason}")]
    BadString {
        /// Location of the string.
        path: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A string field holds a value outside its known set (e.g. `role`).
    #[error("{path}: unknown value `{value}`")]
    UnknownValue {
        /// Location of the field.
        path: String,
        /// The value found.
        value: String,
    },
    /// A shard lists no primary (CLUSTER SHARDS: no node with role master),
    /// or more than one.
    #[error("{path}: expected exactly one primary, found {found}")]
    PrimaryCount {
        /// Location of the shard.
        path: String,
        /// Number of primaries found.
        found: usize,
    },
    /// A CLUSTER NODES line is malformed. `line` is 1-based.
    #[error("line {line}: {reason}")]
    BadNodeLine {
        /// 1-based line number.
        line: usize,
        /// What is wrong with it.
        reason: String,
    },
    /// The node answered with an error (e.g. `-LOADING`) instead of a topology.
    #[error("server error: {0}")]
    ServerError(String),
    /// The reply assigns no slot at all (e.g. `*0` from a fresh node). This is
    /// an error so that such a reply can never replace a known-good map.
    #[error("reply assigns no slots")]
    NoSlots,
    /// [`Topology::new`](crate::Topology::new): a shard has no slot range.
    #[error("shard {shard} has no slot ranges")]
    ShardWithoutSlots {
        /// Index of the shard in the input vector.
        shard: usize,
    },
    /// [`Topology::new`](crate::Topology::new): two shards have the same
    /// primary (same node id, or same endpoint when there is no id).
    #[error("node `{node}` is the primary of shards {first} and {second}")]
    DuplicatePrimary {
        /// The primary's id or endpoint.
        node: String,
        /// Index of the first shard in the input vector.
        first: usize,
        /// Index of the second shard.
        second: usize,
    },
    /// [`Topology::new`](crate::Topology::new): a node's endpoint has an empty
    /// host or port 0. Use `endpoint: None` for an unknown endpoint.
    #[error("shard {shard}: unusable endpoint `{endpoint}` (use None for unknown)")]
    BadEndpoint {
        /// Index of the shard in the input vector.
        shard: usize,
        /// The endpoint, formatted.
        endpoint: String,
    },
}

/// Why [`Endpoint::parse`](crate::Endpoint::parse) rejected a string.
///
/// ```
/// use shardis_slots::{Endpoint, EndpointError};
/// assert_eq!(Endpoint::parse("host"), Err(EndpointError::MissingPort));
/// ```
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EndpointError {
    /// There is no `:` separating host and port.
    #[error("missing `:port`")]
    MissingPort,
    /// The host part is empty (`:6379`) or `[]`.
    #[error("empty host")]
    EmptyHost,
    /// The host contains whitespace, control characters or stray brackets.
    #[error("bad host `{0}`")]
    BadHost(String),
    /// The port is not a decimal in 1..=65535.
    #[error("bad port `{0}`")]
    BadPort(String),
}

/// Why a `MOVED`/`ASK` line was rejected.
///
/// ```
/// use shardis_slots::{parse_redirect, RedirectError};
/// assert!(matches!(parse_redirect("MOVED 99999 h:1"), Err(RedirectError::BadSlot(_))));
/// ```
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RedirectError {
    /// The error code is neither `MOVED` nor `ASK`.
    #[error("not a redirect: `{0}`")]
    NotARedirect(String),
    /// Fields are missing (`MOVED 12182`) or separated by more than one space.
    #[error("malformed redirect: {0}")]
    Malformed(&'static str),
    /// The slot is not a decimal in 0..=16383.
    #[error("bad slot `{0}`")]
    BadSlot(String),
    /// The address has no `:port`, a bad host, or a port outside 1..=65535.
    #[error("bad address `{address}`: {reason}")]
    BadAddress {
        /// The address field as received.
        address: String,
        /// What is wrong with it.
        reason: EndpointError,
    },
}

/// Why [`choose_view`](crate::choose_view) could not pick a topology.
///
/// ```
/// use shardis_slots::{choose_view, ConsensusError};
/// assert_eq!(choose_view(&[], None).err(), Some(ConsensusError::NoViews));
/// ```
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConsensusError {
    /// No view was supplied.
    #[error("no topology views")]
    NoViews,
    /// Every supplied view covers zero slots.
    #[error("every view is empty")]
    AllEmpty,
    /// Every candidate covers fewer slots than the previous map and none is
    /// backed by a strict majority of responders.
    #[error(
        "best view covers {covered} slots < previous {previous}, backed by only {agreeing} of {responded}"
    )]
    ShrinkWithoutMajority {
        /// Slots covered by the best candidate.
        covered: usize,
        /// Slots covered by the previous map.
        previous: usize,
        /// Views agreeing with the best candidate.
        agreeing: usize,
        /// Views supplied.
        responded: usize,
    },
    /// Every candidate predates the previous map: its config epoch is lower than the one
    /// the previous map was chosen at, while some responder has seen that epoch.
    #[error("best view has config epoch {epoch} < previous {previous}")]
    OlderEpoch {
        /// The best refused candidate's epoch.
        epoch: u64,
        /// The previous map's epoch.
        previous: u64,
    },
}
