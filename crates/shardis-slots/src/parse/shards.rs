//! CLUSTER SHARDS (7.0+): `[{slots: [s1, e1, ...], nodes: [{id, port, ...}]}]`,
//! maps in RESP3, flattened key/value arrays in RESP2.

use redis::Value;

use super::ShardBuilder;
use super::value::{
    Path, array, check_slot, data, key_values, opt_string, port, resolve_endpoint, string,
    unexpected, usable_hostname, usable_ip,
};
use crate::endpoint::Endpoint;
use crate::error::TopologyError;
use crate::node::{Health, Node, Role};
use crate::range::SlotRange;
use crate::topology::{Shard, Topology};

/// Parses a CLUSTER SHARDS reply (RESP2 or RESP3) into a [`Topology`].
///
/// - Shards whose `slots` is empty (a fresh node, a failed-over old master)
///   are skipped without looking at their nodes.
/// - `slots` is a flat list of `start, end` pairs: odd length, `start > end`
///   or a slot outside 0..=16383 is an error. Integers are expected; numeric
///   strings (servers before 7.0.1) are tolerated.
/// - Every node needs `id`, `ip` and `port` or `tls-port` (`port` preferred),
///   and `role` (`master`/`replica`, also `primary`/`slave`). Exactly one
///   node per shard must be the primary. Duplicate keys are an error.
/// - `endpoint`: `""` or NULL → the `asked` host; `"?"` → `ip` if usable,
///   else `endpoint: None`; missing → `ip`. Port 0 → `endpoint: None`.
/// - `health`: `online`, `fail` (and the documented `failed`), `loading`;
///   other values become [`Health::Unknown`] (forward compatible).
///
/// ```
/// use redis::Value;
/// use shardis_slots::{parse_cluster_shards, Endpoint};
/// let s = |x: &str| Value::BulkString(x.into());
/// let node = Value::Array(vec![s("id"), s("abc"), s("port"), Value::Int(7000),
///     s("ip"), s("10.0.0.1"), s("endpoint"), s("10.0.0.1"), s("role"), s("master"),
///     s("health"), s("online")]);
/// let shard = Value::Array(vec![s("slots"), Value::Array(vec![Value::Int(0), Value::Int(16383)]),
///     s("nodes"), Value::Array(vec![node])]);
/// let t = parse_cluster_shards(&Value::Array(vec![shard]), &Endpoint::new("x", 1)).unwrap();
/// assert!(t.is_complete());
/// ```
pub fn parse_cluster_shards(reply: &Value, asked: &Endpoint) -> Result<Topology, TopologyError> {
    parse(reply, asked, false)
}

/// As [`parse_cluster_shards`], for a client that speaks TLS: a node's `tls-port` is
/// preferred over its `port` (a cluster with `tls-cluster yes` and a plaintext port too lists
/// both, whatever the asking connection is).
///
/// ```
/// use redis::Value;
/// use shardis_slots::{parse_cluster_shards_tls, Endpoint};
/// let s = |x: &str| Value::BulkString(x.into());
/// let node = Value::Array(vec![s("id"), s("abc"), s("port"), Value::Int(7000),
///     s("tls-port"), Value::Int(8000), s("ip"), s("10.0.0.1"), s("role"), s("master")]);
/// let shard = Value::Array(vec![s("slots"), Value::Array(vec![Value::Int(0), Value::Int(16383)]),
///     s("nodes"), Value::Array(vec![node])]);
/// let t = parse_cluster_shards_tls(&Value::Array(vec![shard]), &Endpoint::new("x", 1)).unwrap();
/// assert_eq!(t.shards()[0].primary.endpoint, Some(Endpoint::new("10.0.0.1", 8000)));
/// ```
pub fn parse_cluster_shards_tls(
    reply: &Value,
    asked: &Endpoint,
) -> Result<Topology, TopologyError> {
    parse(reply, asked, true)
}

fn parse(reply: &Value, asked: &Endpoint, tls: bool) -> Result<Topology, TopologyError> {
    let root = Path::ROOT;
    let mut builder = ShardBuilder::default();
    for (i, entry) in array(reply, &root)?.iter().enumerate() {
        if let Some(shard) = shard(entry, &root.index("shard", i), asked, tls)? {
            builder.push_shard(shard);
        }
    }
    builder.finish()
}

fn shard(
    v: &Value,
    path: &Path<'_>,
    asked: &Endpoint,
    tls: bool,
) -> Result<Option<Shard>, TopologyError> {
    let (mut slots_v, mut nodes_v) = (None, None);
    for (key, value) in key_values(v, path)? {
        match key {
            "slots" => slots_v = Some(value),
            "nodes" => nodes_v = Some(value),
            _ => {}
        }
    }
    let missing = |field| TopologyError::MissingField {
        path: path.render(),
        field,
    };
    let slots = slot_pairs(
        slots_v.ok_or_else(|| missing("slots"))?,
        &path.field("slots"),
    )?;
    if slots.is_empty() {
        return Ok(None);
    }
    let nodes_path = path.field("nodes");
    let nodes = array(nodes_v.ok_or_else(|| missing("nodes"))?, &nodes_path)?
        .iter()
        .enumerate()
        .map(|(j, n)| node(n, &path.index("nodes", j), asked, tls))
        .collect::<Result<Vec<_>, _>>()?;
    let (mut primaries, replicas): (Vec<Node>, Vec<Node>) =
        nodes.into_iter().partition(|n| n.role == Role::Primary);
    if primaries.len() != 1 {
        return Err(TopologyError::PrimaryCount {
            path: path.render(),
            found: primaries.len(),
        });
    }
    let primary = primaries.remove(0);
    Ok(Some(Shard {
        primary,
        replicas,
        slots,
    }))
}

/// `path` is the shard's; elements are reported as `shard[i].slots[k]`.
fn slot_pairs(v: &Value, path: &Path<'_>) -> Result<Vec<SlotRange>, TopologyError> {
    let items = array(v, &path.field("slots"))?;
    if items.len() % 2 != 0 {
        return Err(TopologyError::OddLength {
            path: path.field("slots").render(),
            len: items.len(),
        });
    }
    let mut out = Vec::with_capacity(items.len() / 2);
    for (i, pair) in items.chunks_exact(2).enumerate() {
        let start = lenient_slot(&pair[0], &path.index("slots", 2 * i))?;
        let end = lenient_slot(&pair[1], &path.index("slots", 2 * i + 1))?;
        out.push(
            SlotRange::new(start, end).ok_or_else(|| TopologyError::InvertedRange {
                path: path.index("slots", 2 * i).render(),
                start,
                end,
            })?,
        );
    }
    Ok(out)
}

/// An integer slot, or a decimal string (SHARDS before 7.0.1 sent strings).
fn lenient_slot(v: &Value, path: &Path<'_>) -> Result<u16, TopologyError> {
    match data(v) {
        Value::Int(n) => check_slot(*n, path),
        Value::BulkString(_) | Value::SimpleString(_) => {
            let s = string(v, path)?;
            let digits = !s.is_empty() && s.len() <= 5 && s.bytes().all(|b| b.is_ascii_digit());
            match s.parse::<i64>() {
                Ok(n) if digits => check_slot(n, path),
                _ => Err(TopologyError::UnexpectedType {
                    path: path.render(),
                    expected: "integer",
                    found: "non-numeric string",
                }),
            }
        }
        other => Err(unexpected(other, path, "integer")),
    }
}

fn node(v: &Value, path: &Path<'_>, asked: &Endpoint, tls: bool) -> Result<Node, TopologyError> {
    let mut f = Fields::default();
    for (key, value) in key_values(v, path)? {
        match key {
            "id" => f.id = Some(string(value, &path.field("id"))?),
            "port" => f.port = Some(port(value, &path.field("port"))?),
            "tls-port" => f.tls_port = Some(port(value, &path.field("tls-port"))?),
            "ip" => f.ip = Some(string(value, &path.field("ip"))?),
            "endpoint" => f.endpoint = Some(opt_string(value, &path.field("endpoint"))?),
            "hostname" => f.hostname = Some(string(value, &path.field("hostname"))?),
            "role" => f.role = Some(string(value, &path.field("role"))?),
            "health" => f.health = Some(string(value, &path.field("health"))?),
            _ => {} // replication-offset and anything newer
        }
    }
    let missing = |field| TopologyError::MissingField {
        path: path.render(),
        field,
    };
    let id =
        f.id.filter(|s| !s.is_empty())
            .ok_or_else(|| missing("id"))?;
    let ip = f.ip.ok_or_else(|| missing("ip"))?;
    // The port of the client's kind first, then the other, then a 0 (an unusable endpoint).
    let (first, second) = if tls {
        (f.tls_port, f.port)
    } else {
        (f.port, f.tls_port)
    };
    let port = (first.filter(|&p| p != 0).or(second.filter(|&p| p != 0)))
        .or(f.port)
        .or(f.tls_port)
        .ok_or_else(|| missing("port"))?;
    let role = match f.role.ok_or_else(|| missing("role"))? {
        "master" | "primary" => Role::Primary,
        "replica" | "slave" => Role::Replica,
        other => {
            return Err(TopologyError::UnknownValue {
                path: path.field("role").render(),
                value: other.to_owned(),
            });
        }
    };
    let health = match f.health {
        Some("online") => Health::Online,
        Some("fail" | "failed") => Health::Failed,
        Some("loading") => Health::Loading,
        _ => Health::Unknown,
    };
    // A missing `endpoint` (not sent by 7.0) falls back to `ip`.
    let advertised = f.endpoint.unwrap_or(Some(ip));
    let endpoint = resolve_endpoint(advertised, Some(ip), port, asked, &path.field("endpoint"))?;
    Ok(Node {
        id: Some(id.to_owned()),
        endpoint,
        ip: usable_ip(ip).map(str::to_owned),
        hostname: f.hostname.and_then(usable_hostname).map(str::to_owned),
        role,
        health,
    })
}

#[derive(Default)]
struct Fields<'v> {
    id: Option<&'v str>,
    port: Option<u16>,
    tls_port: Option<u16>,
    ip: Option<&'v str>,
    endpoint: Option<Option<&'v str>>,
    hostname: Option<&'v str>,
    role: Option<&'v str>,
    health: Option<&'v str>,
}
