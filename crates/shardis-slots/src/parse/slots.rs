//! CLUSTER SLOTS: `[[start, end, primary, replica*]*]`, node =
//! `[endpoint, port, id?, metadata?, extra*]`.

use redis::Value;

use super::ShardBuilder;
use super::value::{
    Path, array, key_values, opt_string, port, resolve_endpoint, slot, string, usable_hostname,
    usable_ip,
};
use crate::endpoint::Endpoint;
use crate::error::TopologyError;
use crate::node::{Health, Node, Role};
use crate::range::SlotRange;
use crate::topology::Topology;

/// Parses a CLUSTER SLOTS reply (RESP2 or RESP3) into a [`Topology`].
///
/// `asked` is the address the command was sent to: a NULL or `""` endpoint
/// (the `unknown-endpoint` preference, or a node that does not know its IP)
/// means "that host, with the given port".
///
/// - Node entries may have 2 (`ip, port`), 3 (`+ id`) or 4+ (`+ metadata`)
///   elements; extras are ignored. Metadata is a RESP3 map or a RESP2 flat
///   array (odd length is an error); `ip` and `hostname` are read from it.
/// - `"?"` endpoints use the `ip` metadata when present, else the node gets
///   `endpoint: None`. A primary without endpoint keeps its range: a replica
///   is never promoted in its place.
/// - Port 0 means "no address" (`endpoint: None`); negative or > 65535 is an
///   error. Slots must be integers in 0..=16383 with `start <= end`;
///   overlapping or duplicate ranges are an error.
/// - Ranges of one primary (same id, else same endpoint) form one shard.
/// - `*0` (a node that owns nothing) is [`TopologyError::NoSlots`].
/// - Nodes get [`Health::Unknown`]: the reply does not carry health.
///
/// ```
/// use redis::Value;
/// use shardis_slots::{parse_cluster_slots, Endpoint};
/// let node = |host: &str, port| Value::Array(vec![
///     Value::BulkString(host.into()), Value::Int(port)]);
/// let reply = Value::Array(vec![Value::Array(vec![
///     Value::Int(0), Value::Int(16383), node("", 7000), node("10.0.0.2", 7001)])]);
/// let t = parse_cluster_slots(&reply, &Endpoint::new("10.0.0.1", 7000)).unwrap();
/// assert_eq!(t.shards()[0].primary.endpoint, Some(Endpoint::new("10.0.0.1", 7000)));
/// assert_eq!(t.shards()[0].replicas.len(), 1);
/// ```
pub fn parse_cluster_slots(reply: &Value, asked: &Endpoint) -> Result<Topology, TopologyError> {
    let root = Path::ROOT;
    let mut builder = ShardBuilder::default();
    for (i, entry) in array(reply, &root)?.iter().enumerate() {
        let path = root.index("range", i);
        let items = array(entry, &path)?;
        if items.len() < 3 {
            return Err(TopologyError::TooFewElements {
                path: path.render(),
                expected: 3,
                found: items.len(),
            });
        }
        let start = slot(&items[0], &path.field("start"))?;
        let end = slot(&items[1], &path.field("end"))?;
        let range = SlotRange::new(start, end).ok_or_else(|| TopologyError::InvertedRange {
            path: path.render(),
            start,
            end,
        })?;
        let primary = node(&items[2], &path.index("node", 0), Role::Primary, asked)?;
        let replicas = items[3..]
            .iter()
            .enumerate()
            .map(|(j, v)| node(v, &path.index("node", j + 1), Role::Replica, asked))
            .collect::<Result<Vec<_>, _>>()?;
        builder.add(primary, replicas, range);
    }
    builder.finish()
}

fn node(v: &Value, path: &Path<'_>, role: Role, asked: &Endpoint) -> Result<Node, TopologyError> {
    let items = array(v, path)?;
    if items.len() < 2 {
        return Err(TopologyError::TooFewElements {
            path: path.render(),
            expected: 2,
            found: items.len(),
        });
    }
    let endpoint_path = path.field("endpoint");
    let advertised = opt_string(&items[0], &endpoint_path)?;
    let port = port(&items[1], &path.field("port"))?;
    let id = match items.get(2) {
        Some(v) => opt_string(v, &path.field("id"))?
            .filter(|s| !s.is_empty())
            .map(str::to_owned),
        None => None,
    };
    let (mut ip, mut hostname) = (None, None);
    if let Some(meta) = items.get(3) {
        let meta_path = path.field("metadata");
        for (key, value) in key_values(meta, &meta_path)? {
            // Unknown keys are ignored: later servers may add more.
            match key {
                "ip" => ip = Some(string(value, &meta_path.field("ip"))?),
                "hostname" => hostname = Some(string(value, &meta_path.field("hostname"))?),
                _ => {}
            }
        }
    }
    let endpoint = resolve_endpoint(advertised, ip, port, asked, &endpoint_path)?;
    Ok(Node {
        id,
        endpoint,
        // Under the default `ip` preference the endpoint *is* the IP.
        ip: ip.or(advertised).and_then(usable_ip).map(str::to_owned),
        hostname: hostname.and_then(usable_hostname).map(str::to_owned),
        role,
        health: Health::Unknown,
    })
}
