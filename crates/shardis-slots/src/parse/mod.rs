//! Parsers for the three topology replies. Each returns a validated
//! [`Topology`] or an error naming the offending element; none of them
//! silently drops a malformed entry, and none returns an empty map (a reply
//! that assigns no slot is [`TopologyError::NoSlots`]).

mod nodes;
mod shards;
mod slots;
pub(crate) mod value;

use std::collections::HashMap;

pub use nodes::{cluster_nodes_config_epoch, parse_cluster_nodes, parse_cluster_nodes_text};
pub use shards::{parse_cluster_shards, parse_cluster_shards_tls};
pub use slots::parse_cluster_slots;

use crate::endpoint::Endpoint;
use crate::error::TopologyError;
use crate::node::{Identity, Node};
use crate::range::SlotRange;
use crate::topology::{Shard, Topology};

/// Owned [`Identity`] for grouping ranges by primary.
#[derive(PartialEq, Eq, Hash)]
enum Key {
    Id(String),
    Endpoint(Endpoint),
}

/// Groups CLUSTER SLOTS ranges (one entry per contiguous run, replicas
/// repeated) into shards keyed by primary identity.
#[derive(Default)]
pub(crate) struct ShardBuilder {
    shards: Vec<Shard>,
    by_primary: HashMap<Key, usize>,
}

impl ShardBuilder {
    pub(crate) fn add(&mut self, primary: Node, replicas: Vec<Node>, range: SlotRange) {
        let key = match primary.identity() {
            Identity::Id(id) => Some(Key::Id(id.to_owned())),
            Identity::Endpoint(ep) => Some(Key::Endpoint(ep.clone())),
            // Nothing identifies it: it cannot be matched with other ranges.
            Identity::Unknown => None,
        };
        if let Some(&i) = key.as_ref().and_then(|k| self.by_primary.get(k)) {
            let shard = &mut self.shards[i];
            shard.slots.push(range);
            // Replica lists normally repeat per range; keep the union in case
            // they differ transiently.
            for r in replicas {
                if !shard.replicas.iter().any(|x| x.identity() == r.identity()) {
                    shard.replicas.push(r);
                }
            }
            return;
        }
        if let Some(k) = key {
            self.by_primary.insert(k, self.shards.len());
        }
        self.shards.push(Shard {
            primary,
            replicas,
            slots: vec![range],
        });
    }

    pub(crate) fn push_shard(&mut self, shard: Shard) {
        self.shards.push(shard);
    }

    pub(crate) fn finish(self) -> Result<Topology, TopologyError> {
        if self.shards.is_empty() {
            return Err(TopologyError::NoSlots);
        }
        Topology::new(self.shards)
    }
}
