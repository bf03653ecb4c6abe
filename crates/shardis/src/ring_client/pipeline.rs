//! Pipelines. A non-atomic pipeline is cut into one sub-pipeline per node (each node keeps
//! the caller's order of its commands), sent concurrently and answered in the caller's order;
//! commands whose keys span nodes run on their own afterwards. An atomic pipeline
//! (`MULTI`/`EXEC`) must have all its keys on one node.

use std::collections::HashMap;
use std::sync::Arc;

use futures::future::join_all;
use redis::{Cmd, Pipeline, Value};

use super::placement::Member;
use super::{Plan, RingState};
use crate::command;
use crate::error::{Error, Result};

/// Runs `pipeline` and returns the `count` replies after `offset`, as
/// [`redis::aio::ConnectionLike::req_packed_commands`] must.
pub(crate) async fn run(
    state: &RingState,
    pipeline: &Pipeline,
    offset: usize,
    count: usize,
) -> Result<Vec<Value>> {
    if pipeline.is_transaction() {
        return run_transaction(state, pipeline, offset, count).await;
    }
    let snap = state.snapshot.load_full();
    let cmds: Vec<&Cmd> = pipeline.cmd_iter().collect();
    let mut groups: Vec<(Arc<Member>, Vec<usize>)> = Vec::new();
    let mut by_name: HashMap<String, usize> = HashMap::new();
    let mut alone = Vec::new();
    let mut touched: Vec<Vec<u8>> = Vec::new();
    for (i, cmd) in cmds.iter().enumerate() {
        match state.plan(cmd, &snap).await? {
            Plan::Single { keys, .. } => {
                let args = command::args_of(cmd);
                let owner = snap.live.owner(args[keys[0]]);
                let g = *by_name.entry(owner.name().to_string()).or_insert_with(|| {
                    groups.push((owner.clone(), Vec::new()));
                    groups.len() - 1
                });
                groups[g].1.push(i);
                if !snap.previous.is_empty() {
                    touched.extend(keys.iter().map(|&k| args[k].to_vec()));
                }
            }
            Plan::Keyless | Plan::Split(_) => alone.push(i),
        }
    }
    // While keys move, bring this pipeline's moving keys to their new owners first: then the
    // sub-pipelines run unchanged, in order, on the new owners.
    if !touched.is_empty() {
        let keys: Vec<&[u8]> = touched.iter().map(Vec::as_slice).collect();
        state.move_before_touch(&snap, &keys).await;
    }

    let mut replies: Vec<Option<Value>> = vec![None; cmds.len()];
    let sends = groups.into_iter().map(|(member, indices)| {
        let cmds = &cmds;
        async move {
            let mut sub = redis::pipe();
            for &i in &indices {
                sub.add_command((*cmds[i]).clone());
            }
            let result = state.send_pipeline(&member, &sub, 0, indices.len()).await;
            (member, indices, result)
        }
    });
    for (member, indices, result) in join_all(sends).await {
        match result {
            Ok(values) if values.len() == indices.len() => {
                for (i, value) in indices.into_iter().zip(values) {
                    replies[i] = Some(value);
                }
            }
            Ok(values) => {
                return Err(Error::Protocol {
                    node: member.conn.label().to_string(),
                    message: format!(
                        "{} replies for {} pipelined commands",
                        values.len(),
                        indices.len()
                    ),
                });
            }
            // Running again is safe only if every part only reads (e.g. the node was just
            // ejected: the reads then go to the next node).
            Err(e) if indices.iter().all(|&i| command::is_readonly(cmds[i])) => {
                tracing::debug!(node = member.name(), error = %e, "pipeline part failed; reads run again");
                alone.extend(indices);
            }
            Err(e) => return Err(e),
        }
    }

    // One at a time, in the caller's order, so commands on one key keep their order.
    alone.sort_unstable();
    for i in alone {
        replies[i] = Some(state.run(cmds[i]).await?);
    }
    Ok(replies
        .into_iter()
        .skip(offset)
        .take(count)
        .map(|r| r.unwrap_or(Value::Nil))
        .collect())
}

/// `MULTI` … `EXEC` on the one node that owns every key of the transaction.
async fn run_transaction(
    state: &RingState,
    pipeline: &Pipeline,
    offset: usize,
    count: usize,
) -> Result<Vec<Value>> {
    let snap = state.snapshot.load_full();
    let mut owner: Option<Arc<Member>> = None;
    let mut keys: Vec<Vec<u8>> = Vec::new();
    for cmd in pipeline.cmd_iter() {
        let args = command::args_of(cmd);
        match state.plan(cmd, &snap).await? {
            Plan::Keyless => {}
            Plan::Single { keys: indices, .. } => {
                let this = snap.live.owner(args[indices[0]]);
                match &owner {
                    Some(first) if first.name() != this.name() => {
                        return Err(spread(format!("{} and {}", first.name(), this.name())));
                    }
                    Some(_) => {}
                    None => owner = Some(this.clone()),
                }
                keys.extend(indices.iter().map(|&i| args[i].to_vec()));
            }
            Plan::Split(_) => return Err(spread(command::name_of(&args).to_string())),
        }
    }
    if !snap.previous.is_empty() {
        let keys: Vec<&[u8]> = keys.iter().map(Vec::as_slice).collect();
        state.move_before_touch(&snap, &keys).await;
    }
    let member = match owner {
        Some(member) => member,
        None => state.any_live()?,
    };
    state.send_pipeline(&member, pipeline, offset, count).await
}

fn spread(what: String) -> Error {
    tracing::debug!(%what, "transaction keys on several ring nodes");
    Error::Unsupported {
        command: "MULTI".into(),
        reason: "a transaction's keys must all live on one ring node; give them one hash tag",
    }
}
