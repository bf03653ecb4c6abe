//! Multi-key commands whose keys span slots (`MGET`, `MSET`, `DEL`, `UNLINK`, `EXISTS`,
//! `TOUCH`): one sub-command per slot, sent concurrently (the node connections coalesce
//! them), replies reassembled in the caller's key order.
//!
//! Split by slot, not by node: a node refuses keys of different slots in one command
//! (`CROSSSLOT`) even when it owns them all.

use std::collections::BTreeMap;

use futures::future::try_join_all;
use redis::{Cmd, Value};
use shardis_slots::key_slot;

use super::ClusterState;
use super::exec::{Request, Target, execute};
use crate::command::{self, Split};
use crate::error::{Error, Result};

/// The per-slot groups of a split: for each slot, the argument groups (one key, or a key and
/// its value) in caller order, and their positions in the caller's key list.
fn groups<'a>(args: &[&'a [u8]], split: Split) -> BTreeMap<u16, (Vec<&'a [u8]>, Vec<usize>)> {
    let width = if split == Split::PairsToOk { 2 } else { 1 };
    let mut by_slot: BTreeMap<u16, (Vec<&[u8]>, Vec<usize>)> = BTreeMap::new();
    for (position, chunk) in args[1..].chunks(width).enumerate() {
        let entry = by_slot.entry(key_slot(chunk[0])).or_default();
        entry.0.extend_from_slice(chunk);
        entry.1.push(position);
    }
    by_slot
}

/// Runs a splittable command whose keys span slots.
pub(crate) async fn run(
    state: &ClusterState,
    cmd: &Cmd,
    split: Split,
    name: &str,
) -> Result<Value> {
    let args = command::args_of(cmd);
    if split == Split::PairsToOk && !(args.len() - 1).is_multiple_of(2) {
        // Let the server say what is wrong with the arity, as a single Redis would.
        return execute(state, Request::Cmd(cmd), Target::AnyPrimary, false).await;
    }
    let read = split != Split::PairsToOk && name != "DEL" && name != "UNLINK";
    let groups = groups(&args, split);
    let subcommands: Vec<(u16, Cmd, Vec<usize>)> = groups
        .into_iter()
        .map(|(slot, (sub_args, positions))| {
            let mut sub = redis::cmd(name);
            for a in sub_args {
                sub.arg(a);
            }
            (slot, sub, positions)
        })
        .collect();
    let replies = try_join_all(subcommands.iter().map(|(slot, sub, _)| {
        execute(
            state,
            Request::Cmd(sub),
            Target::Slot { slot: *slot, read },
            read,
        )
    }))
    .await?;
    // A command error (e.g. WRONGTYPE) in any part is the caller's reply, as it would be on one node.
    if let Some(err) = replies.iter().find(|r| matches!(r, Value::ServerError(_))) {
        return Ok(err.clone());
    }
    match split {
        Split::KeysToArray => {
            let total = args.len() - 1;
            let mut out = vec![Value::Nil; total];
            for ((_, _, positions), reply) in subcommands.iter().zip(replies) {
                let Value::Array(values) = reply else {
                    return Err(Error::Protocol {
                        node: String::from("cluster"),
                        message: format!("{name} part did not reply with an array"),
                    });
                };
                if values.len() != positions.len() {
                    return Err(Error::Protocol {
                        node: String::from("cluster"),
                        message: format!(
                            "{name} part replied with {} values for {} keys",
                            values.len(),
                            positions.len()
                        ),
                    });
                }
                for (position, value) in positions.iter().zip(values) {
                    out[*position] = value;
                }
            }
            Ok(Value::Array(out))
        }
        Split::KeysToSum => {
            let mut sum = 0i64;
            for reply in replies {
                match reply {
                    Value::Int(n) => sum += n,
                    other => {
                        return Err(Error::Protocol {
                            node: String::from("cluster"),
                            message: format!("{name} part replied {other:?}"),
                        });
                    }
                }
            }
            Ok(Value::Int(sum))
        }
        Split::PairsToOk => Ok(Value::Okay),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_keep_caller_order_within_each_slot() {
        let args: Vec<&[u8]> = vec![b"MGET", b"{a}1", b"{b}1", b"{a}2", b"{b}2"];
        let g = groups(&args, Split::KeysToArray);
        let a = &g[&key_slot(b"a")];
        assert_eq!(a.0, vec![&b"{a}1"[..], &b"{a}2"[..]]);
        assert_eq!(a.1, vec![0, 2]);
        let pairs: Vec<&[u8]> = vec![b"MSET", b"{a}1", b"x", b"{b}1", b"y"];
        let g = groups(&pairs, Split::PairsToOk);
        assert_eq!(g[&key_slot(b"b")].0, vec![&b"{b}1"[..], &b"y"[..]]);
    }
}
