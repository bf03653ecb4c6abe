//! Learning key specs from the server's `COMMAND INFO` for commands the built-in table lacks.

use redis::Value;

use super::policy::{Aggregate, Fanout, Nodes};
use super::{Begin, CommandSpec, Find, KeySpec};

/// Field/value pairs of a RESP3 map or a RESP2 flattened array.
fn pairs(v: &Value) -> Option<Vec<(&Value, &Value)>> {
    match v {
        Value::Map(items) => Some(items.iter().map(|(k, v)| (k, v)).collect()),
        Value::Array(items) if items.len() % 2 == 0 => {
            Some(items.chunks_exact(2).map(|c| (&c[0], &c[1])).collect())
        }
        _ => None,
    }
}

fn text(v: &Value) -> Option<String> {
    match v {
        Value::BulkString(b) => Some(String::from_utf8_lossy(b).into_owned()),
        Value::SimpleString(s) => Some(s.clone()),
        Value::Okay => Some("OK".into()),
        _ => None,
    }
}

fn int(v: &Value) -> Option<i64> {
    match v {
        Value::Int(i) => Some(*i),
        other => text(other)?.parse().ok(),
    }
}

fn field<'a>(map: &[(&'a Value, &'a Value)], name: &str) -> Option<&'a Value> {
    map.iter()
        .find(|(k, _)| text(k).is_some_and(|k| k.eq_ignore_ascii_case(name)))
        .map(|(_, v)| *v)
}

fn key_spec(v: &Value) -> Option<KeySpec> {
    let spec = pairs(v)?;
    let begin = pairs(field(&spec, "begin_search")?)?;
    let begin_args = pairs(field(&begin, "spec")?)?;
    let begin = match text(field(&begin, "type")?)?.as_str() {
        "index" => Begin::Index(usize::try_from(int(field(&begin_args, "index")?)?).ok()?),
        "keyword" => Begin::Keyword {
            keyword: text(field(&begin_args, "keyword")?)?.into_bytes().into(),
            start_from: isize::try_from(int(field(&begin_args, "startfrom")?)?).ok()?,
        },
        _ => return None,
    };
    let find = pairs(field(&spec, "find_keys")?)?;
    let find_args = pairs(field(&find, "spec")?)?;
    let find = match text(field(&find, "type")?)?.as_str() {
        "range" => Find::Range {
            last_key: isize::try_from(int(field(&find_args, "lastkey")?)?).ok()?,
            step: usize::try_from(int(field(&find_args, "keystep")?)?).ok()?,
            limit: usize::try_from(int(field(&find_args, "limit")?)?).ok()?,
        },
        "keynum" => Find::KeyNum {
            keynum_idx: usize::try_from(int(field(&find_args, "keynumidx")?)?).ok()?,
            first_key: usize::try_from(int(field(&find_args, "firstkey")?)?).ok()?,
            step: usize::try_from(int(field(&find_args, "keystep")?)?).ok()?,
        },
        _ => return None,
    };
    Some(KeySpec { begin, find })
}

/// Parses one entry of a `COMMAND INFO` reply. `None` when the server does not know the
/// command (a nil entry) or the entry has an unexpected shape.
pub(crate) fn parse_command_info(entry: &Value) -> Option<CommandSpec> {
    let Value::Array(items) = entry else {
        return None;
    };
    let flags = match items.get(2)? {
        Value::Array(f) | Value::Set(f) => f.iter().filter_map(text).collect::<Vec<_>>(),
        _ => Vec::new(),
    };
    let readonly = flags.iter().any(|f| f.eq_ignore_ascii_case("readonly"));
    let keys = match items.get(8) {
        Some(Value::Array(specs)) => specs.iter().filter_map(key_spec).collect(),
        _ => {
            // Before Redis 7: first key, last key, step.
            let first = int(items.get(3)?)?;
            let last = int(items.get(4)?)?;
            let step = int(items.get(5)?)?;
            if first <= 0 {
                Vec::new()
            } else {
                vec![KeySpec {
                    begin: Begin::Index(first as usize),
                    find: Find::Range {
                        last_key: if last < 0 {
                            last as isize
                        } else {
                            (last - first) as isize
                        },
                        step: step.max(1) as usize,
                        limit: 0,
                    },
                }]
            }
        }
    };
    let tips = match items.get(7) {
        Some(Value::Array(t) | Value::Set(t)) => t.iter().filter_map(text).collect(),
        _ => Vec::new(),
    };
    Some(CommandSpec {
        fanout: if keys.is_empty() {
            fanout_of_tips(&tips)
        } else {
            None
        },
        keys,
        readonly,
        split: None,
    })
}

/// Redis 7's request and response policy tips (`request_policy:all_shards`,
/// `response_policy:agg_sum`, ...) as a fan-out; `None` when the command goes to one node, or
/// its response policy is one the client cannot combine (`special`): it then runs on one node,
/// as before tips existed.
fn fanout_of_tips(tips: &[String]) -> Option<Fanout> {
    let tip = |prefix: &str| {
        tips.iter()
            .find_map(|t| t.strip_prefix(prefix).map(str::to_ascii_lowercase))
    };
    let nodes = match tip("request_policy:")?.as_str() {
        "all_shards" => Nodes::Primaries,
        "all_nodes" => Nodes::All,
        _ => return None,
    };
    let aggregate = match tip("response_policy:").as_deref() {
        // No response policy: replies are arrays to concatenate (as KEYS).
        None => Aggregate::Concat,
        Some("agg_sum") => Aggregate::Sum,
        Some("all_succeeded") => Aggregate::AllSucceeded,
        Some("one_succeeded") => Aggregate::OneSucceeded,
        Some("agg_logical_and") => Aggregate::LogicalAnd,
        Some(_) => return None,
    };
    Some(Fanout { nodes, aggregate })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(s: &str) -> Value {
        Value::BulkString(s.as_bytes().to_vec())
    }

    #[test]
    fn parses_a_redis7_key_spec() {
        // The shape of `COMMAND INFO GETEX` from Redis 7.0 (RESP2).
        let entry = Value::Array(vec![
            bulk("getex"),
            Value::Int(-2),
            Value::Array(vec![
                Value::SimpleString("write".into()),
                Value::SimpleString("fast".into()),
            ]),
            Value::Int(1),
            Value::Int(1),
            Value::Int(1),
            Value::Array(vec![]),
            Value::Array(vec![]),
            Value::Array(vec![Value::Array(vec![
                bulk("flags"),
                Value::Array(vec![]),
                bulk("begin_search"),
                Value::Array(vec![
                    bulk("type"),
                    bulk("index"),
                    bulk("spec"),
                    Value::Array(vec![bulk("index"), Value::Int(1)]),
                ]),
                bulk("find_keys"),
                Value::Array(vec![
                    bulk("type"),
                    bulk("range"),
                    bulk("spec"),
                    Value::Array(vec![
                        bulk("lastkey"),
                        Value::Int(0),
                        bulk("keystep"),
                        Value::Int(1),
                        bulk("limit"),
                        Value::Int(0),
                    ]),
                ]),
            ])]),
            Value::Array(vec![]),
        ]);
        let spec = parse_command_info(&entry).expect("parses");
        assert!(!spec.readonly);
        assert_eq!(
            spec.key_indices(&[b"GETEX", b"k", b"EX", b"1"]).to_vec(),
            vec![1]
        );
        assert!(parse_command_info(&Value::Nil).is_none());
        assert_eq!(spec.fanout, None);
    }

    #[test]
    fn learns_whole_keyspace_commands_from_their_tips() {
        // A keyless command with Redis 7 tips (the shape of `COMMAND INFO DBSIZE`).
        let entry = |tips: &[&str]| {
            Value::Array(vec![
                bulk("mycount"),
                Value::Int(1),
                Value::Array(vec![Value::SimpleString("readonly".into())]),
                Value::Int(0),
                Value::Int(0),
                Value::Int(0),
                Value::Array(vec![]),
                Value::Array(tips.iter().map(|t| bulk(t)).collect()),
                Value::Array(vec![]),
                Value::Array(vec![]),
            ])
        };
        let spec = parse_command_info(&entry(&[
            "request_policy:all_shards",
            "response_policy:agg_sum",
        ]))
        .expect("parses");
        assert_eq!(
            spec.fanout,
            Some(Fanout {
                nodes: Nodes::Primaries,
                aggregate: Aggregate::Sum
            })
        );
        let all_nodes = parse_command_info(&entry(&["request_policy:all_nodes"])).expect("parses");
        assert_eq!(
            all_nodes.fanout,
            Some(Fanout {
                nodes: Nodes::All,
                aggregate: Aggregate::Concat
            })
        );
        let special = parse_command_info(&entry(&[
            "request_policy:all_shards",
            "response_policy:special",
        ]))
        .expect("parses");
        assert_eq!(special.fanout, None);
        assert_eq!(
            parse_command_info(&entry(&["nondeterministic_output"]))
                .expect("parses")
                .fanout,
            None
        );
    }
}
