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
