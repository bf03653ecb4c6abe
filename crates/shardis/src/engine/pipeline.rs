//! Non-atomic pipelines, in the caller's order.
//!
//! A pipeline is cut into segments: a run of commands that each fit one shard is one segment,
//! sent as one sub-pipeline per node, concurrently (each node keeps the caller's order of its
//! commands, and a key lives on one node, so commands on a common key keep their order); a
//! command that must be split or can go anywhere is a segment of its own. Segments run one
//! after another. Inside a segment, a command whose reply says it did not run there (a
//! redirect), or a read whose node failed, runs again on its own, in order, before the next
//! segment starts.
//!
//! Under a replica `ReadFrom` a pipeline still answers as one Redis would: a read that follows
//! a write of the same pipeline goes to the primary (a replica may not have the write yet), and
//! so does a read of a shard its segment writes (sent concurrently with the write, a replica
//! read could miss it, or see a write queued after the read).

use futures::future::join_all;
use redis::{Cmd, Pipeline, Value};

use crate::command::{self, ArgList};
use crate::error::{Error, Result};

use super::plan::{self, Plan};
use super::{Engine, NodeOf, Router, ShardOf, View};

/// Runs every command of `pipeline` and returns one reply per command.
pub(crate) async fn run<R: Router>(engine: &Engine<R>, pipeline: &Pipeline) -> Result<Vec<Value>> {
    let router = &engine.router;
    let view = router.view();
    let cmds: Vec<&Cmd> = pipeline.cmd_iter().collect();
    let args: Vec<ArgList<'_>> = cmds.iter().map(|c| command::args_of(c)).collect();
    let mut plans = Vec::with_capacity(cmds.len());
    for a in &args {
        plans.push(plan::plan(engine, &view, a).await?);
    }
    let mut replies: Vec<Option<Value>> = vec![None; cmds.len()];
    // Whether a command that may write has run: every later read then goes to a primary.
    let mut wrote = false;
    let mut i = 0;
    while i < cmds.len() {
        if matches!(plans[i], Plan::Keyed { .. }) {
            let start = i;
            while i < cmds.len() && matches!(plans[i], Plan::Keyed { .. }) {
                i += 1;
            }
            let segment = Segment {
                cmds: &cmds[start..i],
                args: &args[start..i],
                plans: &plans[start..i],
            };
            let writes = !segment.plans.iter().all(only_reads);
            let done = run_segment(engine, &view, segment, wrote).await?;
            wrote |= writes;
            for (k, reply) in done.into_iter().enumerate() {
                replies[start + k] = Some(reply);
            }
        } else {
            let plan = std::mem::replace(&mut plans[i], Plan::Keyless);
            // Keyless, fan-out and split commands: any but a split MGET may write (counted
            // as a write when unsure: its later reads merely go to a primary).
            let writes = !matches!(plan, Plan::Split(crate::command::Split::KeysToArray));
            replies[i] = Some(
                engine
                    .run_planned(&R::shards_in(&view), cmds[i], &args[i], plan, wrote)
                    .await?,
            );
            wrote |= writes;
            i += 1;
        }
    }
    Ok(replies
        .into_iter()
        .map(|r| r.unwrap_or(Value::Nil))
        .collect())
}

/// Whether a keyed command only reads.
fn only_reads<S>(plan: &Plan<S>) -> bool {
    matches!(plan, Plan::Keyed { read: true, .. })
}

/// A run of commands that each fit one shard.
struct Segment<'s, 'a, S> {
    cmds: &'s [&'a Cmd],
    args: &'s [ArgList<'a>],
    plans: &'s [Plan<S>],
}

/// Commands of a segment grouped by the node that serves them: `(node, indices)`.
/// Commands per node: `(node, indices)`, in order of first appearance.
type Groups<N> = Vec<(N, Vec<usize>)>;

///
/// The reads of a shard the segment also writes go where its writes go (the primary): on a
/// replica, fetched concurrently with the writes, a read could miss the pipeline's own earlier
/// write or see a later one, a reply one Redis never gives. Reads of shards the segment only
/// reads may go to replicas.
/// With `primary_reads` (the pipeline wrote before this segment) every read goes to a primary.
fn group<V: View>(
    view: &V,
    plans: &[Plan<V::Shard>],
    primary_reads: bool,
) -> (Groups<V::Node>, Vec<usize>) {
    let mut written: Vec<V::Shard> = plans
        .iter()
        .filter_map(|plan| match plan {
            Plan::Keyed {
                shard, read: false, ..
            } => Some(*shard),
            _ => None,
        })
        .collect();
    written.sort_unstable();
    written.dedup();
    let mut groups: Groups<V::Node> = Vec::new();
    let mut unrouted = Vec::new();
    for (i, plan) in plans.iter().enumerate() {
        let Plan::Keyed { shard, read, .. } = plan else {
            unrouted.push(i);
            continue;
        };
        let read = *read && !primary_reads && written.binary_search(shard).is_err();
        match view.node_of(*shard, read) {
            Some(node) => match groups.iter_mut().find(|(n, _)| *n == node) {
                Some((_, indices)) => indices.push(i),
                None => groups.push((node, vec![i])),
            },
            None => unrouted.push(i),
        }
    }
    (groups, unrouted)
}

async fn run_segment<R: Router>(
    engine: &Engine<R>,
    view: &R::View,
    segment: Segment<'_, '_, ShardOf<R>>,
    primary_reads: bool,
) -> Result<Vec<Value>> {
    let router = &engine.router;
    let (groups, mut reruns) = group(view, segment.plans, primary_reads);
    // A command run again on its own after the segment's writes: its reads on primaries if
    // the segment wrote.
    let rerun_on_primary = primary_reads || !segment.plans.iter().all(only_reads);
    let sends = groups.iter().map(|(node, indices)| {
        let mut sub = redis::pipe();
        let mut keys: Vec<&[u8]> = Vec::new();
        for &i in indices {
            sub.add_command(segment.cmds[i].clone());
            if let Plan::Keyed { keys: k, .. } = &segment.plans[i] {
                keys.extend(k.iter().map(|&a| segment.args[i][a]));
            }
        }
        async move {
            let result = router.execute_batch(view, node, &sub, &keys).await;
            (node, indices, result)
        }
    });
    let mut replies: Vec<Option<Value>> = vec![None; segment.cmds.len()];
    for (node, indices, result) in join_all(sends).await {
        handle_batch::<R>(
            router,
            view,
            node,
            indices,
            result,
            &segment,
            &mut replies,
            &mut reruns,
        )?;
    }
    // One at a time, in the caller's order, against a fresh view.
    reruns.sort_unstable();
    for i in reruns {
        replies[i] = Some(engine.run(segment.cmds[i], rerun_on_primary).await?);
    }
    Ok(replies
        .into_iter()
        .map(|r| r.unwrap_or(Value::Nil))
        .collect())
}

/// Files one node's batch result: replies in place, redirected commands (and, when the batch
/// failed, its reads) to be run again.
#[allow(clippy::too_many_arguments)]
fn handle_batch<R: Router>(
    router: &R,
    view: &R::View,
    node: &NodeOf<R>,
    indices: &[usize],
    result: Result<Vec<Value>, super::BatchFailed>,
    segment: &Segment<'_, '_, ShardOf<R>>,
    replies: &mut [Option<Value>],
    reruns: &mut Vec<usize>,
) -> Result<()> {
    match result {
        Ok(values) if values.len() == indices.len() => {
            for (&i, value) in indices.iter().zip(values) {
                if router.needs_rerun(&value) {
                    reruns.push(i);
                } else {
                    replies[i] = Some(value);
                }
            }
            Ok(())
        }
        Ok(values) => Err(Error::Protocol {
            node: view.node_label(node),
            message: format!(
                "{} replies for {} pipelined commands",
                values.len(),
                indices.len()
            ),
        }),
        // Nothing was written: every command runs on its own, waiting or failing exactly as it
        // would alone (one error, naming the node once).
        Err(e) if e.unsent => {
            tracing::debug!(node = %view.node_label(node), error = %e.error, "pipeline part not sent; its commands run on their own");
            reruns.extend_from_slice(indices);
            Ok(())
        }
        // Running again is safe only if every part only reads (the node may be gone: the
        // reads then go where the fresh view says).
        Err(e)
            if indices
                .iter()
                .all(|&i| matches!(segment.plans[i], Plan::Keyed { read: true, .. })) =>
        {
            tracing::debug!(node = %view.node_label(node), error = %e.error, "pipeline part failed; its reads run again");
            reruns.extend_from_slice(indices);
            Ok(())
        }
        Err(e) => Err(e.error),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::Split;
    use crate::engine::split::tests::Buckets;

    #[test]
    fn commands_are_grouped_per_node_in_caller_order() {
        let keyed = |shard: u8| Plan::Keyed {
            shard,
            read: true,
            keys: crate::command::KeyIndices::from_slice(&[1]),
        };
        let plans = vec![
            keyed(b'a'),
            keyed(b'b'),
            keyed(b'a'),
            Plan::Split(Split::KeysToSum),
        ];
        let (groups, unrouted) = group(&Buckets, &plans, false);
        assert_eq!(groups, vec![(b'a', vec![0, 2]), (b'b', vec![1])]);
        assert_eq!(unrouted, vec![3]);
    }

    /// [`Buckets`] whose reads go to a replica: node `A` serves reads of shard `a`.
    struct ReadsOnReplicas;

    impl crate::engine::Shards for ReadsOnReplicas {
        type Shard = u8;
        fn shard_of(&self, key: &[u8]) -> u8 {
            Buckets.shard_of(key)
        }
        fn spread_error(&self, command: &str, a: u8, b: u8) -> Error {
            Buckets.spread_error(command, a, b)
        }
    }

    impl View for ReadsOnReplicas {
        type Node = u8;
        fn node_of(&self, shard: u8, read: bool) -> Option<u8> {
            Some(if read {
                shard.to_ascii_uppercase()
            } else {
                shard
            })
        }
        fn fan_out_nodes(&self, replicas: bool) -> Vec<u8> {
            Buckets.fan_out_nodes(replicas)
        }
        fn node_label(&self, node: &u8) -> String {
            Buckets.node_label(node)
        }
        fn server(&self, node: &u8) -> Option<std::sync::Arc<crate::net::Node>> {
            Buckets.server(node)
        }
        fn epoch(&self) -> u64 {
            0
        }
    }

    #[test]
    fn reads_of_a_shard_the_pipeline_writes_go_with_its_writes() {
        let plan = |shard: u8, read: bool| Plan::Keyed {
            shard,
            read,
            keys: crate::command::KeyIndices::from_slice(&[1]),
        };
        // GET a ; SET a ; GET a ; GET b: both reads of `a` on a's primary (the first could
        // otherwise see the SET that follows it, the second miss it); `b` on its replica.
        let plans = vec![
            plan(b'a', true),
            plan(b'a', false),
            plan(b'a', true),
            plan(b'b', true),
        ];
        let (groups, unrouted) = group(&ReadsOnReplicas, &plans, false);
        assert_eq!(groups, vec![(b'a', vec![0, 1, 2]), (b'B', vec![3])]);
        assert!(unrouted.is_empty());
        // After an earlier write of the pipeline, every read is on a primary.
        let (groups, _) = group(&ReadsOnReplicas, &plans[3..], true);
        assert_eq!(groups, vec![(b'b', vec![0])]);
    }
}
