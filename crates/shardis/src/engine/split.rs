//! Multi-key commands whose keys span shards (`MGET`, `MSET`, `DEL`, `UNLINK`, `EXISTS`,
//! `TOUCH`): one sub-command per shard, sent concurrently, replies reassembled in the caller's
//! key order.
//!
//! The shard is the router's: a slot in a cluster (a node refuses keys of different slots in
//! one command even when it owns them all), a member on a ring (a standalone node has no such
//! rule, so one sub-command per node is the fewest round trips).

use futures::future::try_join_all;
use redis::{Cmd, Value};

use crate::command::{self, ArgList, Split};
use crate::error::{Error, Result};

use super::{Keys, Request, Router, Shards, Target};

/// One shard's part of a split command.
#[derive(Debug, PartialEq)]
pub(crate) struct Part<'a, S> {
    pub shard: S,
    /// Its arguments (keys, or key/value pairs) in caller order.
    pub args: Vec<&'a [u8]>,
    /// Its keys.
    pub keys: ArgList<'a>,
    /// The positions of its keys in the caller's key list.
    pub positions: Vec<usize>,
}

/// Groups the keys (or pairs) of `args` by shard, in order of first appearance.
pub(crate) fn parts<'a, V: Shards>(
    shards: &V,
    args: &[&'a [u8]],
    split: Split,
) -> Vec<Part<'a, V::Shard>> {
    let width = if split == Split::PairsToOk { 2 } else { 1 };
    let mut out: Vec<Part<'a, V::Shard>> = Vec::new();
    for (position, chunk) in args[1..].chunks(width).enumerate() {
        let shard = shards.shard_of(chunk[0]);
        let i = match out.iter().position(|p| p.shard == shard) {
            Some(i) => i,
            None => {
                out.push(Part {
                    shard,
                    args: Vec::new(),
                    keys: ArgList::new(),
                    positions: Vec::new(),
                });
                out.len() - 1
            }
        };
        out[i].args.extend_from_slice(chunk);
        out[i].keys.push(chunk[0]);
        out[i].positions.push(position);
    }
    out
}

/// Runs a splittable command whose keys span shards (`primary_reads`: its reads on primaries).
pub(crate) async fn run<R: Router>(
    router: &R,
    shards: &R::Shards,
    args: &[&[u8]],
    split: Split,
    primary_reads: bool,
) -> Result<Value> {
    let name = command::name_of(args);
    if split == Split::PairsToOk && !(args.len() - 1).is_multiple_of(2) {
        // Let a server word the arity error, as a single Redis would. Sent whole, the command
        // would get `CROSSSLOT` from a cluster node (MSET counts its pairs after the cluster
        // checks the keys), so the server is asked an odd command on the first key only.
        let probe = odd_pairs_probe(args);
        let mut cmd = redis::cmd(&name);
        for a in &probe {
            cmd.arg(*a);
        }
        let keys: ArgList<'_> = std::iter::once(args[1]).collect();
        let target = Target::Keyed {
            shard: shards.shard_of(args[1]),
            read: false,
            fresh: true,
            keys: Keys::List(&keys),
        };
        return router.execute(shards, Request::Cmd(&cmd), target).await;
    }
    let read = split != Split::PairsToOk && &*name != "DEL" && &*name != "UNLINK";
    let parts = parts(shards, args, split);
    let subcommands: Vec<Cmd> = parts
        .iter()
        .map(|part| {
            let mut sub = redis::cmd(&name);
            for a in &part.args {
                sub.arg(*a);
            }
            sub
        })
        .collect();
    let replies = try_join_all(parts.iter().zip(&subcommands).map(|(part, sub)| {
        let target = Target::Keyed {
            shard: part.shard,
            read,
            fresh: primary_reads,
            keys: Keys::List(&part.keys),
        };
        router.execute(shards, Request::Cmd(sub), target)
    }))
    .await?;
    reassemble(&name, split, args.len() - 1, &parts, replies)
}

/// The arguments of a `MSET` with a dangling key, reduced to its first key so that one shard
/// answers the arity error: `k1 v1 k2 v2 k3` → `k1 v1 k1`. Nothing runs: the server refuses
/// an odd count of arguments before writing.
fn odd_pairs_probe<'a>(args: &[&'a [u8]]) -> Vec<&'a [u8]> {
    match args {
        [_, key, value, _, ..] => vec![*key, *value, *key],
        [_, rest @ ..] => rest.to_vec(),
        [] => Vec::new(),
    }
}

/// Puts the parts' replies back together as one node would have answered: values in key order
/// (`MGET`), a sum (`DEL`, `EXISTS`, ...), or `OK` (`MSET`). A command error (e.g.
/// `WRONGTYPE`) in any part is the caller's reply, as it would be on one node.
pub(crate) fn reassemble<S: std::fmt::Debug>(
    name: &str,
    split: Split,
    keys: usize,
    parts: &[Part<'_, S>],
    replies: Vec<Value>,
) -> Result<Value> {
    if let Some(err) = replies.iter().find(|r| matches!(r, Value::ServerError(_))) {
        return Ok(err.clone());
    }
    let protocol = |shard: &S, message: String| Error::Protocol {
        node: format!("{shard:?}"),
        message,
    };
    match split {
        Split::KeysToArray => {
            let mut out = vec![Value::Nil; keys];
            for (part, reply) in parts.iter().zip(replies) {
                let Value::Array(values) = reply else {
                    return Err(protocol(
                        &part.shard,
                        format!("{name} part did not reply with an array"),
                    ));
                };
                if values.len() != part.positions.len() {
                    return Err(protocol(
                        &part.shard,
                        format!(
                            "{name} part replied with {} values for {} keys",
                            values.len(),
                            part.positions.len()
                        ),
                    ));
                }
                for (&position, value) in part.positions.iter().zip(values) {
                    if let Some(slot) = out.get_mut(position) {
                        *slot = value;
                    }
                }
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
                            &part.shard,
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

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A view whose shard is a key's first byte: enough to test the engine's pure parts.
    pub(crate) struct Buckets;

    impl Shards for Buckets {
        type Shard = u8;
        fn shard_of(&self, key: &[u8]) -> u8 {
            key.first().copied().unwrap_or(0)
        }
        fn spread_error(&self, command: &str, a: u8, b: u8) -> Error {
            Error::CrossSlot {
                command: command.to_string(),
                slots: vec![a.into(), b.into()],
            }
        }
    }

    impl crate::engine::View for Buckets {
        type Node = u8;
        fn node_of(&self, shard: u8, _read: bool) -> Option<u8> {
            Some(shard)
        }
        fn fan_out_nodes(&self, _replicas: bool) -> Vec<u8> {
            vec![b'a', b'b']
        }
        fn node_label(&self, node: &u8) -> String {
            (*node as char).to_string()
        }
        fn server(&self, _node: &u8) -> Option<std::sync::Arc<crate::net::Node>> {
            None
        }
        fn epoch(&self) -> u64 {
            0
        }
    }

    #[test]
    fn parts_keep_caller_order_within_each_shard() {
        let args: Vec<&[u8]> = vec![b"MGET", b"a1", b"b1", b"a2", b"b2"];
        let parts = parts(&Buckets, &args, Split::KeysToArray);
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0].shard, b'a');
        assert_eq!(parts[0].args, vec![&b"a1"[..], &b"a2"[..]]);
        assert_eq!(parts[0].positions, vec![0, 2]);
        let pairs: Vec<&[u8]> = vec![b"MSET", b"a1", b"x", b"b1", b"y"];
        let parts = super::parts(&Buckets, &pairs, Split::PairsToOk);
        assert_eq!(parts[1].args, vec![&b"b1"[..], &b"y"[..]]);
        assert_eq!(parts[1].keys.as_slice(), &[&b"b1"[..]]);
    }

    #[test]
    fn a_dangling_mset_key_is_asked_on_one_shard() {
        let args: Vec<&[u8]> = vec![b"MSET", b"a1", b"x", b"b1", b"y", b"c1"];
        assert_eq!(
            odd_pairs_probe(&args),
            vec![&b"a1"[..], &b"x"[..], &b"a1"[..]]
        );
        let probe = odd_pairs_probe(&args);
        assert_eq!(
            probe[0], probe[2],
            "one key, one shard: no CROSSSLOT from a cluster"
        );
        let args: Vec<&[u8]> = vec![b"MSET", b"a1"];
        assert_eq!(odd_pairs_probe(&args), vec![&b"a1"[..]]);
    }

    #[test]
    fn replies_are_reassembled_in_key_order() {
        let args: Vec<&[u8]> = vec![b"MGET", b"a1", b"b1", b"a2"];
        let p = parts(&Buckets, &args, Split::KeysToArray);
        let bulk = |s: &str| Value::BulkString(s.as_bytes().to_vec());
        let replies = vec![
            Value::Array(vec![bulk("A1"), Value::Nil]),
            Value::Array(vec![bulk("B1")]),
        ];
        let out = reassemble("MGET", Split::KeysToArray, 3, &p, replies).unwrap();
        assert_eq!(out, Value::Array(vec![bulk("A1"), bulk("B1"), Value::Nil]));

        let sum = reassemble(
            "DEL",
            Split::KeysToSum,
            3,
            &p,
            vec![Value::Int(2), Value::Int(1)],
        );
        assert_eq!(sum.unwrap(), Value::Int(3));

        // A part with the wrong number of values is a protocol error, never a shifted reply.
        let short = vec![
            Value::Array(vec![bulk("A1")]),
            Value::Array(vec![bulk("B1")]),
        ];
        assert!(matches!(
            reassemble("MGET", Split::KeysToArray, 3, &p, short),
            Err(Error::Protocol { .. })
        ));
        // A command error in any part is the reply.
        let wrongtype = redis::parse_redis_value(b"-WRONGTYPE Operation against a key\r\n")
            .expect("an error reply");
        assert!(matches!(wrongtype, Value::ServerError(_)));
        let replies = vec![Value::Int(1), wrongtype.clone()];
        assert_eq!(
            reassemble("DEL", Split::KeysToSum, 3, &p, replies).unwrap(),
            wrongtype
        );
    }
}
