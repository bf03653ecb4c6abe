//! Commands about the whole keyspace: where they go and how their replies combine, following
//! the request and response policies Redis 7 gives in `COMMAND DOCS` tips
//! (`request_policy:all_shards|all_nodes`, `response_policy:agg_sum|all_succeeded|...`), with
//! this built-in table for the commands a cache uses. One Redis would answer `DBSIZE` for the
//! whole keyspace; a sharded deployment answers it only by asking every shard and summing.
//!
//! Pure: the table and the aggregation are tested from values alone.

use redis::Value;

use crate::error::{Error, Result};

/// Which nodes a command goes to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Nodes {
    /// Every primary (every ring node).
    Primaries,
    /// Every node, replicas included (every ring node).
    All,
}

/// How the nodes' replies become one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Aggregate {
    /// Integers, summed (`DBSIZE`).
    Sum,
    /// Arrays, concatenated (`KEYS`; the order across nodes is not one Redis's).
    Concat,
    /// Every node must succeed; the reply is the first node's (`FLUSHALL`, `SCRIPT LOAD`).
    AllSucceeded,
    /// One success is enough (`SCRIPT KILL`).
    OneSucceeded,
    /// Arrays of 0/1, combined element by element with AND (`SCRIPT EXISTS`).
    LogicalAnd,
    /// Any non-nil reply (`RANDOMKEY`).
    AnyNonNil,
}

/// Where a whole-keyspace command goes and how its replies combine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Fanout {
    pub nodes: Nodes,
    pub aggregate: Aggregate,
}

const fn fanout(nodes: Nodes, aggregate: Aggregate) -> Option<Fanout> {
    Some(Fanout { nodes, aggregate })
}

/// The fan-out of a command (`name` upper-case, `args[0]` the name), if it is one.
pub(crate) fn fanout_of(name: &str, args: &[&[u8]]) -> Option<Fanout> {
    use Aggregate::*;
    use Nodes::*;
    let sub = args
        .get(1)
        .map(|a| String::from_utf8_lossy(a).to_ascii_uppercase());
    match (name, sub.as_deref()) {
        ("DBSIZE", _) => fanout(Primaries, Sum),
        ("KEYS", _) => fanout(Primaries, Concat),
        ("FLUSHALL" | "FLUSHDB", _) => fanout(Primaries, AllSucceeded),
        ("RANDOMKEY", _) => fanout(Primaries, AnyNonNil),
        ("SCRIPT", Some("LOAD" | "FLUSH")) => fanout(All, AllSucceeded),
        ("SCRIPT", Some("EXISTS")) => fanout(All, LogicalAnd),
        ("SCRIPT", Some("KILL")) => fanout(All, OneSucceeded),
        ("FUNCTION", Some("LOAD" | "DELETE" | "FLUSH" | "RESTORE")) => {
            fanout(Primaries, AllSucceeded)
        }
        ("FUNCTION", Some("KILL")) => fanout(All, OneSucceeded),
        ("CONFIG", Some("SET" | "RESETSTAT")) => fanout(All, AllSucceeded),
        _ => None,
    }
}

/// Combines each node's outcome (its address and reply) into the one reply `command` gets, or
/// an error naming the nodes that failed and those that succeeded. Every node answering the
/// same command error is that error, as one Redis would answer.
pub(crate) fn aggregate(
    command: &str,
    how: Aggregate,
    outcomes: Vec<(String, Result<Value>)>,
) -> Result<Value> {
    let mut ok: Vec<(String, Value)> = Vec::new();
    let mut failed: Vec<String> = Vec::new();
    let mut server_errors: Vec<Value> = Vec::new();
    for (node, outcome) in outcomes {
        match outcome {
            Ok(value @ Value::ServerError(_)) => {
                failed.push(format!("{node}: {value:?}"));
                server_errors.push(value);
            }
            Ok(value) => ok.push((node, value)),
            Err(e) => failed.push(format!("{node}: {e}")),
        }
    }
    if ok.is_empty()
        && let Some(first) = server_errors.first()
        && server_errors.len() == failed.len()
        && server_errors.iter().all(|e| e == first)
    {
        return Ok(first.clone());
    }
    if how == Aggregate::OneSucceeded {
        if let Some((_, value)) = ok.into_iter().next() {
            return Ok(value);
        }
        return Err(partial(command, failed, Vec::new()));
    }
    if !failed.is_empty() {
        return Err(partial(
            command,
            failed,
            ok.into_iter().map(|(node, _)| node).collect(),
        ));
    }
    let wrong = |node: &str, value: &Value| {
        Error::protocol(node, format!("{command}: unexpected reply {value:?}"))
    };
    match how {
        Aggregate::Sum => {
            let mut sum = 0i64;
            for (node, value) in &ok {
                match value {
                    Value::Int(n) => sum = sum.saturating_add(*n),
                    other => return Err(wrong(node, other)),
                }
            }
            Ok(Value::Int(sum))
        }
        Aggregate::Concat => {
            let mut all = Vec::new();
            for (node, value) in ok {
                match value {
                    Value::Array(items) | Value::Set(items) => all.extend(items),
                    other => return Err(wrong(&node, &other)),
                }
            }
            Ok(Value::Array(all))
        }
        Aggregate::AllSucceeded | Aggregate::OneSucceeded => {
            Ok(ok.into_iter().next().map_or(Value::Nil, |(_, v)| v))
        }
        Aggregate::LogicalAnd => {
            let mut combined: Option<Vec<i64>> = None;
            for (node, value) in &ok {
                let Value::Array(items) = value else {
                    return Err(wrong(node, value));
                };
                let bits: Vec<i64> = items
                    .iter()
                    .map(|v| match v {
                        Value::Int(n) => Ok(*n),
                        other => Err(wrong(node, other)),
                    })
                    .collect::<Result<_>>()?;
                combined = Some(match combined {
                    None => bits,
                    Some(acc) if acc.len() == bits.len() => acc
                        .iter()
                        .zip(&bits)
                        .map(|(a, b)| i64::from(*a != 0 && *b != 0))
                        .collect(),
                    Some(_) => return Err(wrong(node, value)),
                });
            }
            Ok(Value::Array(
                combined
                    .unwrap_or_default()
                    .into_iter()
                    .map(Value::Int)
                    .collect(),
            ))
        }
        Aggregate::AnyNonNil => Ok(ok
            .into_iter()
            .map(|(_, v)| v)
            .find(|v| *v != Value::Nil)
            .unwrap_or(Value::Nil)),
    }
}

fn partial(command: &str, failed: Vec<String>, succeeded: Vec<String>) -> Error {
    Error::PartialFailure {
        command: command.to_string(),
        failed,
        succeeded,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(line: &str) -> Vec<&[u8]> {
        line.split(' ').map(str::as_bytes).collect()
    }

    fn node(i: usize, v: Result<Value>) -> (String, Result<Value>) {
        (format!("10.0.0.{i}:6379"), v)
    }

    #[test]
    fn whole_keyspace_commands_reach_every_shard() {
        let of = |line: &str| {
            fanout_of(
                &line.split(' ').next().unwrap_or("").to_ascii_uppercase(),
                &args(line),
            )
        };
        assert_eq!(of("DBSIZE"), fanout(Nodes::Primaries, Aggregate::Sum));
        assert_eq!(
            of("KEYS scan:*"),
            fanout(Nodes::Primaries, Aggregate::Concat)
        );
        assert_eq!(
            of("FLUSHALL"),
            fanout(Nodes::Primaries, Aggregate::AllSucceeded)
        );
        assert_eq!(
            of("SCRIPT LOAD x"),
            fanout(Nodes::All, Aggregate::AllSucceeded)
        );
        assert_eq!(
            of("script exists a b"),
            fanout(Nodes::All, Aggregate::LogicalAnd)
        );
        assert_eq!(
            of("FUNCTION LOAD x"),
            fanout(Nodes::Primaries, Aggregate::AllSucceeded)
        );
        assert_eq!(of("GET k"), None);
        assert_eq!(of("CONFIG GET maxmemory"), None);
    }

    #[test]
    fn replies_combine_as_one_redis_would_answer() {
        let sum = aggregate(
            "DBSIZE",
            Aggregate::Sum,
            vec![
                node(1, Ok(Value::Int(100))),
                node(2, Ok(Value::Int(97))),
                node(3, Ok(Value::Int(103))),
            ],
        );
        assert_eq!(sum.unwrap(), Value::Int(300));
        let bulk = |s: &str| Value::BulkString(s.as_bytes().to_vec());
        let keys = aggregate(
            "KEYS",
            Aggregate::Concat,
            vec![
                node(1, Ok(Value::Array(vec![bulk("a")]))),
                node(2, Ok(Value::Array(vec![]))),
                node(3, Ok(Value::Array(vec![bulk("b"), bulk("c")]))),
            ],
        );
        assert_eq!(
            keys.unwrap(),
            Value::Array(vec![bulk("a"), bulk("b"), bulk("c")])
        );
        let exists = aggregate(
            "SCRIPT",
            Aggregate::LogicalAnd,
            vec![
                node(1, Ok(Value::Array(vec![Value::Int(1), Value::Int(1)]))),
                node(2, Ok(Value::Array(vec![Value::Int(1), Value::Int(0)]))),
            ],
        );
        assert_eq!(
            exists.unwrap(),
            Value::Array(vec![Value::Int(1), Value::Int(0)])
        );
        let random = aggregate(
            "RANDOMKEY",
            Aggregate::AnyNonNil,
            vec![node(1, Ok(Value::Nil)), node(2, Ok(bulk("k")))],
        );
        assert_eq!(random.unwrap(), bulk("k"));
    }

    #[test]
    fn a_partial_failure_names_who_failed_and_who_succeeded() {
        let err = aggregate(
            "FLUSHALL",
            Aggregate::AllSucceeded,
            vec![
                node(1, Ok(Value::Okay)),
                node(2, Err(Error::connection("10.0.0.2:6379", "refused"))),
                node(3, Ok(Value::Okay)),
            ],
        )
        .expect_err("partial");
        match err {
            Error::PartialFailure {
                command,
                failed,
                succeeded,
            } => {
                assert_eq!(command, "FLUSHALL");
                assert_eq!(failed.len(), 1);
                assert!(failed[0].starts_with("10.0.0.2:6379"));
                assert_eq!(succeeded, vec!["10.0.0.1:6379", "10.0.0.3:6379"]);
            }
            other => panic!("{other}"),
        }
        // The same command error everywhere is that error.
        let unknown = redis::parse_redis_value(b"-ERR unknown subcommand\r\n").expect("error");
        let same = aggregate(
            "SCRIPT",
            Aggregate::AllSucceeded,
            vec![node(1, Ok(unknown.clone())), node(2, Ok(unknown.clone()))],
        );
        assert_eq!(same.unwrap(), unknown);
    }
}
