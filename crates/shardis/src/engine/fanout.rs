//! Commands sent to every primary (or every node) at once, each node's reply kept.

use redis::{Cmd, Value};

use crate::error::Result;

use super::{Router, View};

/// Sends `cmd` to every primary (`replicas`: every node) concurrently; each node's label and
/// reply, or the first failure.
pub(crate) async fn run<R: Router>(
    router: &R,
    cmd: &Cmd,
    replicas: bool,
) -> Result<Vec<(String, Value)>> {
    let view = router.view();
    let nodes = view.fan_out_nodes(replicas);
    let calls = nodes.iter().map(|node| {
        let view = &view;
        async move {
            let value = router.execute_on(view, node, cmd).await?;
            Ok((view.node_label(node), value))
        }
    });
    futures::future::try_join_all(calls).await
}

/// Sends `cmd` to the nodes `policy` names, concurrently, and combines their replies as the
/// policy says (see [`crate::command::policy`]).
pub(crate) async fn run_policy<R: Router>(
    router: &R,
    cmd: &Cmd,
    name: &str,
    policy: crate::command::policy::Fanout,
) -> Result<Value> {
    use crate::command::policy::{Nodes, aggregate};
    let view = router.view();
    let nodes = view.fan_out_nodes(policy.nodes == Nodes::All);
    let calls = nodes.iter().map(|node| {
        let view = &view;
        async move {
            (
                view.node_label(node),
                router.execute_on(view, node, cmd).await,
            )
        }
    });
    let outcomes = futures::future::join_all(calls).await;
    aggregate(name, policy.aggregate, outcomes)
}
