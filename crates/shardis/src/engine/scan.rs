//! `SCAN` over the whole keyspace: every primary (every ring node) with a cursor of its own,
//! as one stream of keys.
//!
//! Redis promises that a key present for a whole `SCAN` of one node is returned at least once.
//! Over a sharded keyspace a key can move during the scan (a reshard, a failover, a ring
//! rebalance) from a node not scanned yet to one already scanned. So a pass that saw the
//! topology change, or ended while keys were still moving, is followed by another full pass,
//! until one pass starts and ends on the same settled topology: every key present for the whole
//! scan is returned at least once (some maybe more than once, as `SCAN` allows).

use std::collections::VecDeque;

use futures::Stream;
use redis::{Cmd, Value};

use crate::error::{Error, Result};

use super::{Router, View};

/// What to scan for: `MATCH`, `COUNT`, `TYPE`, as `SCAN` takes them.
///
/// ```
/// let options = shardis::ScanOptions::new().pattern("user:*").count(500).key_type("string");
/// ```
#[derive(Clone, Debug, Default)]
#[must_use]
pub struct ScanOptions {
    pattern: Option<String>,
    count: Option<usize>,
    key_type: Option<String>,
}

impl ScanOptions {
    /// Every key, with the server's default batch size.
    pub fn new() -> Self {
        Self::default()
    }

    /// Only keys matching this glob-style pattern (`MATCH`).
    pub fn pattern(mut self, pattern: impl Into<String>) -> Self {
        self.pattern = Some(pattern.into());
        self
    }

    /// How much work each `SCAN` call does (`COUNT`, a hint to the server).
    pub fn count(mut self, count: usize) -> Self {
        self.count = Some(count);
        self
    }

    /// Only keys of this type (`TYPE`: string, list, set, zset, hash, stream).
    pub fn key_type(mut self, key_type: impl Into<String>) -> Self {
        self.key_type = Some(key_type.into());
        self
    }

    fn command(&self, cursor: &[u8]) -> Cmd {
        let mut cmd = redis::cmd("SCAN");
        cmd.arg(cursor);
        if let Some(pattern) = &self.pattern {
            cmd.arg("MATCH").arg(pattern);
        }
        if let Some(count) = self.count {
            cmd.arg("COUNT").arg(count);
        }
        if let Some(key_type) = &self.key_type {
            cmd.arg("TYPE").arg(key_type);
        }
        cmd
    }
}

/// More passes than this, with the topology changing every time, end the scan with an error.
const MAX_PASSES: usize = 16;

/// The position of a scan: the pass's view and nodes, the node being scanned and its cursor.
struct Scan<R: Router> {
    view: R::View,
    epoch: u64,
    nodes: VecDeque<<R::View as View>::Node>,
    cursor: Vec<u8>,
    passes: usize,
}

/// The stream of keys of a whole-keyspace scan over `router`.
pub(crate) fn stream<R, G>(router: G, options: ScanOptions) -> impl Stream<Item = Result<Vec<u8>>>
where
    R: Router,
    G: std::ops::Deref<Target = R> + Send + 'static,
{
    let start = |router: &R, passes: usize| {
        let view = router.view();
        let nodes = view.fan_out_nodes(false).into_iter().collect();
        Scan::<R> {
            epoch: view.epoch(),
            view,
            nodes,
            cursor: b"0".to_vec(),
            passes,
        }
    };
    let first = start(&router, 1);
    futures::stream::unfold(
        (router, Some(first), VecDeque::<Vec<u8>>::new()),
        move |(router, mut scan, mut ready)| {
            let options = options.clone();
            async move {
                loop {
                    if let Some(key) = ready.pop_front() {
                        return Some((Ok(key), (router, scan, ready)));
                    }
                    let current = scan.as_mut()?;
                    let Some(node) = current.nodes.front().cloned() else {
                        // The pass is over: done if the topology held still and settled.
                        // Asked first: it also brings the router's view up to date (the
                        // client may not have seen a reshard that happened meanwhile).
                        let moving = router.keys_moving(&current.view).await;
                        let now = router.view();
                        if now.epoch() == current.epoch && !moving {
                            return None;
                        }
                        if current.passes >= MAX_PASSES {
                            let error = Error::Unsupported {
                                command: "SCAN".into(),
                                reason: "the topology kept changing during every pass of the \
                                         scan; try again once the reshard or rebalance is over",
                            };
                            return Some((Err(error), (router, None, ready)));
                        }
                        if moving {
                            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                        }
                        metrics::counter!("shardis_scan_passes_total").increment(1);
                        *current = start(&router, current.passes + 1);
                        continue;
                    };
                    let cmd = options.command(&current.cursor);
                    let reply = router.execute_on(&current.view, &node, &cmd).await;
                    match reply.and_then(|r| parse(&current.view.node_label(&node), r)) {
                        Ok((next, keys)) => {
                            ready.extend(keys);
                            if next == b"0" {
                                current.nodes.pop_front();
                                current.cursor = b"0".to_vec();
                            } else {
                                current.cursor = next;
                            }
                        }
                        // A node that fails mid-scan (a failover): the topology will change, and
                        // the next pass covers its keys where they are now.
                        Err(e) if current.passes < MAX_PASSES => {
                            tracing::debug!(error = %e, "scan of a node failed; another pass follows");
                            current.nodes.pop_front();
                            current.cursor = b"0".to_vec();
                            current.epoch = u64::MAX;
                            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                        }
                        Err(e) => return Some((Err(e), (router, None, ready))),
                    }
                }
            }
        },
    )
}

/// A `SCAN` reply: the next cursor and the keys.
fn parse(node: &str, reply: Value) -> Result<(Vec<u8>, Vec<Vec<u8>>)> {
    let wrong = |what: &str| Error::protocol(node, format!("SCAN replied {what}"));
    let Value::Array(mut parts) = reply else {
        return Err(match reply {
            Value::ServerError(e) => wrong(&e.to_string()),
            other => wrong(&format!("{other:?}")),
        });
    };
    if parts.len() != 2 {
        return Err(wrong("an array that is not [cursor, keys]"));
    }
    let keys = parts.pop().unwrap_or(Value::Nil);
    let cursor = match parts.pop() {
        Some(Value::BulkString(c)) => c,
        Some(Value::SimpleString(c)) => c.into_bytes(),
        _ => return Err(wrong("no cursor")),
    };
    let Value::Array(keys) = keys else {
        return Err(wrong("no key list"));
    };
    let keys = keys
        .into_iter()
        .map(|k| match k {
            Value::BulkString(k) => Ok(k),
            other => Err(wrong(&format!("a key {other:?}"))),
        })
        .collect::<Result<_>>()?;
    Ok((cursor, keys))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scan_replies_parse_or_fail_clearly() {
        let reply = redis::parse_redis_value(b"*2\r\n$2\r\n17\r\n*2\r\n$1\r\na\r\n$1\r\nb\r\n")
            .expect("RESP");
        let (cursor, keys) = parse("n", reply).expect("a SCAN reply");
        assert_eq!(cursor, b"17");
        assert_eq!(keys, vec![b"a".to_vec(), b"b".to_vec()]);
        assert!(parse("n", Value::Int(3)).is_err());
        assert!(parse("n", Value::Array(vec![Value::Int(0)])).is_err());
    }

    #[test]
    fn options_become_the_scan_command() {
        let cmd = ScanOptions::new()
            .pattern("u:*")
            .count(10)
            .key_type("hash")
            .command(b"0");
        let args: Vec<Vec<u8>> = cmd
            .args_iter()
            .map(|a| match a {
                redis::Arg::Simple(b) => b.to_vec(),
                _ => b"cursor".to_vec(),
            })
            .collect();
        let want: Vec<&[u8]> = vec![
            b"SCAN", b"0", b"MATCH", b"u:*", b"COUNT", b"10", b"TYPE", b"hash",
        ];
        assert_eq!(args, want);
    }
}
