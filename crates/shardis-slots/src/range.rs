//! Inclusive slot ranges.

use std::fmt;

use crate::slot::MAX_SLOT;

/// An inclusive range of slots `start..=end`, with `start <= end <= 16383`.
///
/// The fields are public for pattern matching and literals; [`SlotRange::new`]
/// is the checked constructor, and [`Topology::new`](crate::Topology::new)
/// re-validates every range it is given.
///
/// ```
/// use shardis_slots::SlotRange;
/// let r = SlotRange::new(0, 5460).unwrap();
/// assert_eq!(r.len(), 5461);
/// assert!(r.contains(5460));
/// assert!(SlotRange::new(5, 4).is_none());
/// assert!(SlotRange::new(0, 16384).is_none());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SlotRange {
    /// First slot (inclusive).
    pub start: u16,
    /// Last slot (inclusive).
    pub end: u16,
}

impl SlotRange {
    /// A validated range: `None` unless `start <= end <= 16383`.
    ///
    /// ```
    /// assert!(shardis_slots::SlotRange::new(7, 7).is_some());
    /// ```
    pub fn new(start: u16, end: u16) -> Option<SlotRange> {
        (start <= end && end <= MAX_SLOT).then_some(SlotRange { start, end })
    }

    /// The single-slot range `slot..=slot` (`None` if `slot > 16383`).
    ///
    /// ```
    /// assert_eq!(shardis_slots::SlotRange::single(9).unwrap().len(), 1);
    /// ```
    pub fn single(slot: u16) -> Option<SlotRange> {
        SlotRange::new(slot, slot)
    }

    /// Whether the fields satisfy `start <= end <= 16383` (they are public, so
    /// a literal may not).
    ///
    /// ```
    /// use shardis_slots::SlotRange;
    /// assert!(!SlotRange { start: 3, end: 2 }.is_valid());
    /// ```
    pub fn is_valid(&self) -> bool {
        self.start <= self.end && self.end <= MAX_SLOT
    }

    /// Number of slots in the range (0 for an invalid literal).
    ///
    /// ```
    /// assert_eq!(shardis_slots::SlotRange::new(0, 16383).unwrap().len(), 16384);
    /// ```
    #[allow(clippy::len_without_is_empty)] // a valid range is never empty
    pub fn len(&self) -> usize {
        if self.start <= self.end {
            usize::from(self.end - self.start) + 1
        } else {
            0
        }
    }

    /// Whether `slot` lies in the range.
    ///
    /// ```
    /// let r = shardis_slots::SlotRange::new(10, 20).unwrap();
    /// assert!(r.contains(10) && r.contains(20) && !r.contains(21));
    /// ```
    pub fn contains(&self, slot: u16) -> bool {
        self.start <= slot && slot <= self.end
    }
}

impl fmt::Display for SlotRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.start == self.end {
            write!(f, "{}", self.start)
        } else {
            write!(f, "{}-{}", self.start, self.end)
        }
    }
}
