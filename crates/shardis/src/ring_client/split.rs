//! Multi-key commands whose keys span ring nodes (`MGET`, `MSET`, `DEL`, `UNLINK`, `EXISTS`,
//! `TOUCH`): one sub-command per node, sent concurrently, replies reassembled in the caller's
//! key order.
//!
//! Split per node, not per slot as in cluster mode: a standalone node has no `CROSSSLOT`
//! rule, so one sub-command per node is the fewest round trips. (The reassembly mirrors
//! `cluster/split.rs`; the grouping key differs, so the logic is duplicated, not shared.)

use std::collections::HashMap;
use std::sync::Arc;

use futures::future::try_join_all;
use redis::{Cmd, Value};

use super::placement::Member;
use super::{RingState, Snapshot};
use crate::command::{self, Split};
use crate::error::{Error, Result};

/// One node's part: its member, its arguments (keys, or key/value pairs) in caller order,
/// and the positions of its keys in the caller's key list.
struct Part<'a> {
    member: Arc<Member>,
    args: Vec<&'a [u8]>,
    positions: Vec<usize>,
}

/// Groups the keys (or pairs) of `args` by their live owner, in order of first appearance.
fn parts<'a>(snap: &Snapshot, args: &[&'a [u8]], split: Split) -> Vec<Part<'a>> {
    let width = if split == Split::PairsToOk { 2 } else { 1 };
    let mut index: HashMap<&str, usize> = HashMap::new();
    let mut out: Vec<Part<'a>> = Vec::new();
    for (position, chunk) in args[1..].chunks(width).enumerate() {
        let owner = snap.live.owner(chunk[0]);
        let i = *index.entry(owner.name()).or_insert_with(|| {
            out.push(Part {
                member: owner.clone(),
                args: Vec::new(),
                positions: Vec::new(),
            });
            out.len() - 1
        });
        out[i].args.extend_from_slice(chunk);
        out[i].positions.push(position);
    }
    out
}

/// Runs a splittable command whose keys live on several nodes.
pub(crate) async fn run(
    state: &RingState,
    snap: &Snapshot,
    cmd: &Cmd,
    split: Split,
) -> Result<Value> {
    let args = command::args_of(cmd);
    let name = command::name_of(&args);
    if split == Split::PairsToOk && !(args.len() - 1).is_multiple_of(2) {
        // Let a server word the arity error, as a single Redis would.
        let member = state.any_live()?;
        return state.send(&member, cmd).await;
    }
    let parts = parts(snap, &args, split);
    let moving = !snap.previous.is_empty();
    if moving && split != Split::KeysToArray {
        // Writes (and EXISTS/TOUCH) act on the latest value: bring moving keys over first.
        let width = if split == Split::PairsToOk { 2 } else { 1 };
        let keys: Vec<&[u8]> = args[1..].chunks(width).map(|c| c[0]).collect();
        state.move_before_touch(snap, &keys).await;
    }
    let replies = try_join_all(parts.iter().map(|part| {
        let mut sub = redis::cmd(&name);
        for a in &part.args {
            sub.arg(*a);
        }
        async move { state.send(&part.member, &sub).await }
    }))
    .await?;
    // A command error (e.g. WRONGTYPE) in any part is the caller's reply, as on one node.
    if let Some(err) = replies.iter().find(|r| matches!(r, Value::ServerError(_))) {
        return Ok(err.clone());
    }
    match split {
        Split::KeysToArray => {
            let mut out = vec![Value::Nil; args.len() - 1];
            for (part, reply) in parts.iter().zip(replies) {
                let node = part.member.conn.label();
                let Value::Array(values) = reply else {
                    return Err(protocol(
                        node,
                        format!("{name} part did not reply an array"),
                    ));
                };
                if values.len() != part.positions.len() {
                    return Err(protocol(
                        node,
                        format!(
                            "{name} part replied {} values for {} keys",
                            values.len(),
                            part.positions.len()
                        ),
                    ));
                }
                for (position, value) in part.positions.iter().zip(values) {
                    out[*position] = value;
                }
            }
            if moving {
                fill_misses(state, snap, &args, &mut out).await?;
            }
            Ok(Value::Array(out))
        }
        Split::KeysToSum => {
            let mut sum = 0i64;
            for (part, reply) in parts.iter().zip(replies) {
                match reply {
                    Value::Int(n) => sum += n,
                    other => {
                        return Err(protocol(
                            part.member.conn.label(),
                            format!("{name} part replied {other:?}"),
                        ));
                    }
                }
            }
            Ok(Value::Int(sum))
        }
        Split::PairsToOk => Ok(Value::Okay),
    }
}

/// While keys move, an `MGET` entry that is nil on the new owner is read again with the
/// one-key fallback (`GET` new → old → new).
async fn fill_misses(
    state: &RingState,
    snap: &Snapshot,
    args: &[&[u8]],
    out: &mut [Value],
) -> Result<()> {
    let misses: Vec<usize> = (0..out.len())
        .filter(|&i| matches!(out[i], Value::Nil))
        .filter(|&i| {
            let owner = snap.live.owner(args[i + 1]);
            !snap.previous_owners(args[i + 1], owner).is_empty()
        })
        .collect();
    let reads = misses.iter().map(|&i| {
        let key = args[i + 1];
        let owner = snap.live.owner(key).clone();
        async move {
            let mut get = redis::cmd("GET");
            get.arg(key);
            state.read_with_fallback(snap, &owner, &get, key).await
        }
    });
    let values = try_join_all(reads).await?;
    for (i, value) in misses.into_iter().zip(values) {
        out[i] = value;
    }
    Ok(())
}

fn protocol(node: &str, message: String) -> Error {
    Error::Protocol {
        node: node.to_string(),
        message,
    }
}
