//! Pipelines. A non-atomic pipeline whose commands span nodes is cut into one sub-pipeline per
//! node, sent concurrently, and answered in the caller's order; a command whose part came back
//! with a redirect or a retryable error is then run again on its own, through the full
//! redirect logic. An atomic pipeline (`MULTI`/`EXEC`) must stay in one slot.

use std::collections::HashMap;
use std::sync::Arc;

use futures::future::join_all;
use redis::{Pipeline, Value};
use shardis_slots::Endpoint;

use super::exec::{Request, Target, execute};
use super::{ClusterState, Plan};
use crate::error::{Error, Result};
use crate::pool::NodeConn;

/// Replies that mean "this part did not run here; try it again properly".
fn needs_rerun(value: &Value) -> bool {
    matches!(value, Value::ServerError(e)
        if matches!(e.code(), "MOVED" | "ASK" | "TRYAGAIN" | "CLUSTERDOWN" | "LOADING" | "MASTERDOWN" | "READONLY"))
}

/// Runs `pipeline` and returns the `count` replies after `offset`, as
/// [`redis::aio::ConnectionLike::req_packed_commands`] must.
pub(crate) async fn run(
    state: &ClusterState,
    pipeline: &Pipeline,
    offset: usize,
    count: usize,
) -> Result<Vec<Value>> {
    if pipeline.is_transaction() {
        return run_transaction(state, pipeline)
            .await
            .map(|reply| vec![reply]);
    }
    let cmds: Vec<&redis::Cmd> = pipeline.cmd_iter().collect();
    let mut replies: Vec<Option<Value>> = vec![None; cmds.len()];

    // Group by the node that serves each command now; what cannot be grouped runs alone.
    let routes = state.routes.load_full();
    let mut groups: HashMap<Endpoint, (Arc<NodeConn>, Vec<usize>)> = HashMap::new();
    let mut alone = Vec::new();
    for (i, cmd) in cmds.iter().enumerate() {
        match state.plan(cmd).await? {
            Plan::Slot { slot, read } => {
                match routes.node_for(slot, read, state.settings.read_from) {
                    Some(node) => groups
                        .entry(node.endpoint.clone())
                        .or_insert_with(|| (node, Vec::new()))
                        .1
                        .push(i),
                    None => alone.push(i),
                }
            }
            Plan::Keyless | Plan::Split { .. } => alone.push(i),
        }
    }

    let sends = groups.into_values().map(|(node, indices)| {
        let cmds = &cmds;
        async move {
            let mut sub = redis::pipe();
            for &i in &indices {
                sub.add_command((*cmds[i]).clone());
            }
            let result = async {
                let conn = node.connection().await.map_err(|e| e.to_string())?;
                let sent = tokio::time::timeout(
                    state.settings.deadline,
                    conn.send_pipeline(&sub, 0, indices.len()),
                );
                match sent.await {
                    Ok(Ok(values)) => Ok(values),
                    Ok(Err(e)) => {
                        node.discard();
                        Err(e.to_string())
                    }
                    Err(_) => Err(format!("no reply within {:?}", state.settings.deadline)),
                }
            }
            .await;
            (node, indices, result)
        }
    });
    for (node, indices, result) in join_all(sends).await {
        match result {
            Ok(values) if values.len() == indices.len() => {
                for (i, value) in indices.into_iter().zip(values) {
                    if needs_rerun(&value) {
                        alone.push(i);
                    } else {
                        replies[i] = Some(value);
                    }
                }
            }
            Ok(values) => {
                return Err(Error::Protocol {
                    node: node.label().to_string(),
                    message: format!(
                        "{} replies for {} pipelined commands",
                        values.len(),
                        indices.len()
                    ),
                });
            }
            Err(message) => {
                state.refresher.request();
                // Safe to run again only if every part only reads.
                let all_reads = indices
                    .iter()
                    .all(|&i| crate::command::is_readonly(cmds[i]));
                if !all_reads {
                    return Err(Error::Connection {
                        node: node.label().to_string(),
                        slot: None,
                        message,
                    });
                }
                alone.extend(indices);
            }
        }
    }

    alone.sort_unstable();
    let reruns = join_all(alone.iter().map(|&i| state.run(cmds[i]))).await;
    for (i, reply) in alone.into_iter().zip(reruns) {
        replies[i] = Some(reply?);
    }
    Ok(replies
        .into_iter()
        .skip(offset)
        .take(count)
        .map(|r| r.unwrap_or(Value::Nil))
        .collect())
}

/// `MULTI` … `EXEC` on the node that owns the one slot all its keys share.
async fn run_transaction(state: &ClusterState, pipeline: &Pipeline) -> Result<Value> {
    let mut slot = None;
    for cmd in pipeline.cmd_iter() {
        match state.plan(cmd).await? {
            Plan::Slot { slot: s, .. } => match slot {
                None => slot = Some(s),
                Some(first) if first != s => {
                    return Err(Error::CrossSlot {
                        command: "MULTI".into(),
                        slots: vec![first, s],
                    });
                }
                Some(_) => {}
            },
            Plan::Keyless => {}
            Plan::Split { name, .. } => {
                return Err(Error::CrossSlot {
                    command: format!("MULTI ({name})"),
                    slots: Vec::new(),
                });
            }
        }
    }
    let target = match slot {
        Some(slot) => Target::Slot { slot, read: false },
        None => Target::AnyPrimary,
    };
    execute(state, Request::Transaction(pipeline), target, false).await
}
