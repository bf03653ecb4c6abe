//! Choosing one topology among the views several nodes returned.

use crate::error::ConsensusError;
use crate::topology::Topology;

/// The view [`choose_view`] picked and how well it is supported.
///
/// ```
/// # use shardis_slots::{choose_view, Endpoint, Node, Shard, SlotRange, Topology};
/// # let t = Topology::new(vec![Shard { primary: Node::primary(Endpoint::new("h", 1)),
/// #     replicas: vec![], slots: vec![SlotRange::new(0, 16383).unwrap()] }]).unwrap();
/// let views = vec![t.clone(), t];
/// let choice = choose_view(&views, None).unwrap();
/// assert_eq!((choice.agreeing, choice.responded), (2, 2));
/// ```
#[derive(Clone, Copy, Debug)]
pub struct ViewChoice<'a> {
    /// The chosen view (one member of the winning group).
    pub topology: &'a Topology,
    /// How many views agree with it (same [`Topology::fingerprint`]).
    pub agreeing: usize,
    /// How many views were supplied (including empty ones).
    pub responded: usize,
    /// The highest config epoch among the agreeing views, when their nodes reported one
    /// (see [`choose_view_with_epochs`]).
    pub epoch: Option<u64>,
}

impl ViewChoice<'_> {
    /// Whether a strict majority of responders agree.
    ///
    /// ```
    /// # use shardis_slots::{choose_view, Endpoint, Node, Shard, SlotRange, Topology};
    /// # let t = Topology::new(vec![Shard { primary: Node::primary(Endpoint::new("h", 1)),
    /// #     replicas: vec![], slots: vec![SlotRange::new(0, 16383).unwrap()] }]).unwrap();
    /// assert!(choose_view(&[t], None).unwrap().is_majority());
    /// ```
    pub fn is_majority(&self) -> bool {
        self.agreeing * 2 > self.responded
    }
}

struct Group<'a> {
    fingerprint: u64,
    members: Vec<&'a Topology>,
    /// The highest config epoch any member's node reported.
    epoch: Option<u64>,
}

/// Picks the topology most nodes agree on.
///
/// Views are compared by [`Topology::fingerprint`] (normalised: replica order,
/// endpoint style and health do not matter when node ids are present) and
/// grouped. Views covering no slot carry no information and never win; they
/// still count in `responded`.
///
/// Rules, in order:
/// 1. **Shrink guard.** With a `previous` map, a group covering *fewer* slots
///    than `previous` is only eligible if a strict majority of all responders
///    (`2 * agreeing > responded`) back it: a minority of lagging or isolated
///    nodes must not shrink a good map.
/// 2. The largest eligible group wins.
/// 3. Tie: the group covering more slots.
/// 4. Tie: the group equal to `previous` (by fingerprint), if any.
/// 5. Tie: the lowest fingerprint (arbitrary but deterministic).
///
/// Within the winning group the member with the most known endpoints is
/// returned (first in input order on a tie), so an endpoint-style variant
/// with `"?"` nodes is not preferred over an equivalent fuller one.
///
/// Errors: no views ([`ConsensusError::NoViews`]); every view empty
/// ([`ConsensusError::AllEmpty`]); nothing eligible under rule 1
/// ([`ConsensusError::ShrinkWithoutMajority`]).
///
/// ```
/// use shardis_slots::{choose_view, ConsensusError, Endpoint, Node, Shard, SlotRange, Topology};
/// let view = |end| Topology::new(vec![Shard { primary: Node::primary(Endpoint::new("h", 1)),
///     replicas: vec![], slots: vec![SlotRange::new(0, end).unwrap()] }]).unwrap();
/// let (full, part) = (view(16383), view(100));
/// // A 1-1 tie: the shrinking view lacks a majority, so the full one wins.
/// let views = [part.clone(), full.clone()];
/// assert_eq!(choose_view(&views, Some(&full)).unwrap().topology, &full);
/// // A shrinking view backed by 1 of 3 responders is refused.
/// let views = [part.clone(), Topology::empty(), Topology::empty()];
/// assert!(matches!(choose_view(&views, Some(&full)),
///     Err(ConsensusError::ShrinkWithoutMajority { agreeing: 1, responded: 3, .. })));
/// // Backed by 2 of 3 it is evidence: the cluster really shrank.
/// let views = [part.clone(), part.clone(), full.clone()];
/// assert_eq!(choose_view(&views, Some(&full)).unwrap().topology, &part);
/// ```
pub fn choose_view<'a>(
    views: &'a [Topology],
    previous: Option<&Topology>,
) -> Result<ViewChoice<'a>, ConsensusError> {
    choose_view_with_epochs(views, &[], previous, None)
}

/// [`choose_view`] where each view comes with the config epoch its node reported (the highest
/// `config-epoch` in its `CLUSTER NODES`; `None` when unknown), and the previous map with the
/// epoch it was chosen at. Redis Cluster settles conflicting slot claims by config epoch, so
/// epochs decide before numbers do:
///
/// - **Epoch guard.** When some responder reports an epoch at least `previous_epoch`, a group
///   whose epoch is known and lower than `previous_epoch` is never eligible: it predates the
///   map in use. (When every responder reports a lower epoch, the cluster was rebuilt and the
///   usual rules apply.)
/// - Among eligible groups, the higher known epoch wins (a view that has seen a newer config
///   beats lagging nodes, however many); then the rules of [`choose_view`].
///
/// `epochs[i]` belongs to `views[i]`; missing entries count as unknown.
///
/// ```
/// use shardis_slots::{choose_view_with_epochs, Endpoint, Node, Shard, SlotRange, Topology};
/// let owner = |port| Topology::new(vec![Shard { primary: Node::primary(Endpoint::new("h", port)),
///     replicas: vec![], slots: vec![SlotRange::new(0, 16383).unwrap()] }]).unwrap();
/// let (stale, fresh) = (owner(1), owner(2));
/// // Two lagging nodes (epoch 5) against one that saw the failover (epoch 7).
/// let views = [stale.clone(), stale.clone(), fresh.clone()];
/// let choice = choose_view_with_epochs(&views, &[Some(5), Some(5), Some(7)], None, None).unwrap();
/// assert_eq!((choice.topology, choice.epoch), (&fresh, Some(7)));
/// ```
pub fn choose_view_with_epochs<'a>(
    views: &'a [Topology],
    epochs: &[Option<u64>],
    previous: Option<&Topology>,
    previous_epoch: Option<u64>,
) -> Result<ViewChoice<'a>, ConsensusError> {
    if views.is_empty() {
        return Err(ConsensusError::NoViews);
    }
    let responded = views.len();
    let mut groups: Vec<Group<'a>> = Vec::new();
    let epoch_of = |i: usize| epochs.get(i).copied().flatten();
    for (i, view) in views.iter().enumerate() {
        if view.covered_slots() == 0 {
            continue;
        }
        let fingerprint = view.fingerprint();
        match groups.iter_mut().find(|g| g.fingerprint == fingerprint) {
            Some(g) => {
                g.members.push(view);
                g.epoch = g.epoch.max(epoch_of(i));
            }
            None => groups.push(Group {
                fingerprint,
                members: vec![view],
                epoch: epoch_of(i),
            }),
        }
    }
    if groups.is_empty() {
        return Err(ConsensusError::AllEmpty);
    }

    let previous_fp = previous.map(Topology::fingerprint);
    let previous_covered = previous.map_or(0, Topology::covered_slots);
    let covered = |g: &Group<'_>| g.members[0].covered_slots();
    // Some responder has seen the previous map's epoch (or a later one).
    let newest = (0..responded).filter_map(epoch_of).max();
    let guard_epoch = previous_epoch.filter(|p| newest.is_some_and(|n| n >= *p));
    let current = |g: &Group<'_>| match (g.epoch, guard_epoch) {
        (Some(e), Some(p)) => e >= p,
        _ => true,
    };
    let eligible = |g: &&Group<'_>| {
        current(g) && (covered(g) >= previous_covered || 2 * g.members.len() > responded)
    };

    let best = groups.iter().filter(eligible).max_by(|a, b| {
        a.epoch
            .cmp(&b.epoch)
            .then_with(|| a.members.len().cmp(&b.members.len()))
            .then_with(|| covered(a).cmp(&covered(b)))
            .then_with(|| {
                (Some(a.fingerprint) == previous_fp).cmp(&(Some(b.fingerprint) == previous_fp))
            })
            // Lower fingerprint wins: reverse so that max_by picks it.
            .then_with(|| b.fingerprint.cmp(&a.fingerprint))
    });

    let Some(best) = best else {
        if let (Some(previous), Some(g)) = (
            guard_epoch,
            groups
                .iter()
                .filter(|g| !current(g))
                .max_by_key(|g| g.epoch),
        ) && !groups.iter().any(current)
        {
            return Err(ConsensusError::OlderEpoch {
                epoch: g.epoch.unwrap_or(0),
                previous,
            });
        }
        // Report the strongest refused candidate.
        let g = groups
            .iter()
            .max_by_key(|g| (g.members.len(), covered(g)))
            .unwrap_or(&groups[0]);
        return Err(ConsensusError::ShrinkWithoutMajority {
            covered: covered(g),
            previous: previous_covered,
            agreeing: g.members.len(),
            responded,
        });
    };

    let known = |t: &Topology| {
        t.shards()
            .iter()
            .flat_map(|s| std::iter::once(&s.primary).chain(&s.replicas))
            .filter(|n| n.endpoint.is_some())
            .count()
    };
    // max_by_key returns the last maximum; iterate reversed to keep the first.
    let topology = best
        .members
        .iter()
        .rev()
        .max_by_key(|t| known(t))
        .copied()
        .unwrap_or(best.members[0]);
    Ok(ViewChoice {
        topology,
        agreeing: best.members.len(),
        responded,
        epoch: best.epoch,
    })
}
