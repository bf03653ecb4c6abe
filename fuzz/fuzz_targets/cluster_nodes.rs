//! Arbitrary text → `parse_cluster_nodes_text`; on success the topology
//! invariants hold and the `SlotMap` agrees with it for every slot.
#![no_main]

use libfuzzer_sys::fuzz_target;
use shardis_slots::{Endpoint, parse_cluster_nodes_text};

#[path = "invariants.rs"]
mod invariants;
use invariants::check;

fuzz_target!(|data: &[u8]| {
    // NODES is text; invalid UTF-8 is rejected by `parse_cluster_nodes` before
    // reaching the text parser, so only lossless text is interesting here.
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    for asked in [Endpoint::new("127.0.0.1", 32001), Endpoint::new("", 1)] {
        if let Ok(t) = parse_cluster_nodes_text(text, &asked) {
            check(&t);
        }
    }
});
