//! CLUSTER NODES: one text line per node,
//! `<id> <ip>:<port>@<cport>[,<hostname>] <flags> <master-id|-> <ping> <pong>
//! <epoch> <link> [<slot>|<start>-<end>|[<slot>->-<id>]|[<slot>-<-<id>]]*`.

use std::collections::HashMap;

use redis::Value;

use super::ShardBuilder;
use super::value::{Path, data, resolve_endpoint, string, unexpected, usable_hostname, usable_ip};
use crate::endpoint::Endpoint;
use crate::error::TopologyError;
use crate::node::{Health, Node, Role};
use crate::range::SlotRange;
use crate::slot::MAX_SLOT;
use crate::topology::{Shard, Topology};

/// Parses a CLUSTER NODES reply: a bulk string (RESP2), a verbatim string
/// (RESP3, `txt:` already stripped by redis-rs) or a simple string. See
/// [`parse_cluster_nodes_text`] for the rules.
///
/// ```
/// use redis::Value;
/// use shardis_slots::{parse_cluster_nodes, Endpoint};
/// let text = "abc 10.0.0.1:7000@17000 myself,master - 0 0 1 connected 0-16383\n";
/// let t = parse_cluster_nodes(&Value::BulkString(text.into()), &Endpoint::new("x", 1)).unwrap();
/// assert!(t.is_complete());
/// ```
pub fn parse_cluster_nodes(reply: &Value, asked: &Endpoint) -> Result<Topology, TopologyError> {
    match data(reply) {
        v @ (Value::BulkString(_) | Value::SimpleString(_) | Value::VerbatimString { .. }) => {
            parse_cluster_nodes_text(string(v, &Path::ROOT)?, asked)
        }
        other => Err(unexpected(other, &Path::ROOT, "string")),
    }
}

/// The highest `config-epoch` (the 7th field) in a CLUSTER NODES reply: how recent a slot
/// configuration the answering node has seen. `None` when the reply is not CLUSTER NODES text
/// or lists no valid epoch. Used to compare views ([`choose_view_with_epochs`](crate::choose_view_with_epochs)).
///
/// ```
/// use redis::Value;
/// use shardis_slots::cluster_nodes_config_epoch;
/// let text = "a 10.0.0.1:7000@17000 myself,master - 0 0 3 connected 0-8191\n\
///             b 10.0.0.2:7000@17000 master - 0 0 7 connected 8192-16383\n";
/// assert_eq!(cluster_nodes_config_epoch(&Value::BulkString(text.into())), Some(7));
/// assert_eq!(cluster_nodes_config_epoch(&Value::Okay), None);
/// ```
pub fn cluster_nodes_config_epoch(reply: &Value) -> Option<u64> {
    let text = match data(reply) {
        v @ (Value::BulkString(_) | Value::SimpleString(_) | Value::VerbatimString { .. }) => {
            string(v, &Path::ROOT).ok()?
        }
        _ => return None,
    };
    text.split('\n')
        .map(|line| line.split_ascii_whitespace().collect::<Vec<_>>())
        .filter(|fields| fields.len() >= 8)
        .filter_map(|fields| fields[6].parse::<u64>().ok())
        .max()
}

/// Parses the text of a CLUSTER NODES reply.
///
/// - Lines end with `\n` (a trailing `\r` is tolerated); blank lines are
///   skipped. A line needs at least 8 space-separated fields.
/// - The address is split at `@` (required), then host and port at the
///   *last* `:` (IPv6 hosts are unbracketed); `,hostname` may follow the bus
///   port. An empty host (`:32007@42007`) is the `asked` host; port 0 or the
///   `noaddr` flag makes the node unusable (`endpoint: None`).
/// - Flags: `master`/`slave` give the role; `fail` → [`Health::Failed`],
///   `fail?` → [`Health::Unknown`]; `handshake` lines are skipped (their ids
///   are temporary); unknown flags are ignored.
/// - Masters owning slots become shards; masters without slots (e.g. a failed
///   old master) are skipped. Replicas attach to their master by id and are
///   dropped if it is not a shard. Slots on a non-master line, duplicate ids
///   and bad slot tokens are errors; `[slot->-id]` / `[slot-<-id]` migration
///   markers are skipped.
///
/// ```
/// use shardis_slots::{parse_cluster_nodes_text, Endpoint};
/// let text = "a ::1:7000@17000 master - 0 0 1 connected 0-100 200\n\
///             b ::1:7001@17001,r.test slave a 0 0 1 connected\n";
/// let t = parse_cluster_nodes_text(text, &Endpoint::new("x", 1)).unwrap();
/// assert_eq!(t.covered_slots(), 102);
/// assert_eq!(t.shards()[0].primary.endpoint, Some(Endpoint::new("::1", 7000)));
/// assert_eq!(t.shards()[0].replicas[0].hostname.as_deref(), Some("r.test"));
/// ```
pub fn parse_cluster_nodes_text(text: &str, asked: &Endpoint) -> Result<Topology, TopologyError> {
    let mut masters: Vec<(Node, Vec<SlotRange>)> = Vec::new();
    let mut replicas: Vec<(Node, &str)> = Vec::new();
    let mut seen: HashMap<&str, usize> = HashMap::new();

    for (i, raw) in text.split('\n').enumerate() {
        let line = i + 1;
        let bad = |reason: String| TopologyError::BadNodeLine { line, reason };
        let fields: Vec<&str> = raw.split_ascii_whitespace().collect();
        if fields.is_empty() {
            continue;
        }
        if fields.len() < 8 {
            return Err(bad(format!(
                "expected at least 8 fields, found {}",
                fields.len()
            )));
        }
        let id = fields[0];
        if let Some(first) = seen.insert(id, line) {
            return Err(bad(format!("node id {id} already on line {first}")));
        }
        let flags: Vec<&str> = fields[2].split(',').collect();
        if flags.contains(&"handshake") {
            continue;
        }
        let addr = address(fields[1], asked).map_err(bad)?;
        let role = if flags.contains(&"master") {
            Some(Role::Primary)
        } else if flags.contains(&"slave") {
            Some(Role::Replica)
        } else {
            None
        };
        let health = if flags.contains(&"fail") {
            Health::Failed
        } else if flags.contains(&"fail?") {
            Health::Unknown
        } else {
            Health::Online
        };
        let mut slots = Vec::new();
        for token in &fields[8..] {
            if !token.starts_with('[') {
                slots.push(slot_token(token).map_err(bad)?);
            }
        }
        let node = Node {
            id: Some(id.to_owned()),
            endpoint: if flags.contains(&"noaddr") {
                None
            } else {
                addr.endpoint
            },
            ip: addr.ip,
            hostname: addr.hostname,
            role: role.unwrap_or(Role::Replica),
            health,
        };
        match role {
            Some(Role::Primary) => masters.push((node, slots)),
            _ if !slots.is_empty() => {
                return Err(bad("slots listed on a node that is not a master".into()));
            }
            Some(Role::Replica) => replicas.push((node, fields[3])),
            None => {} // `noflags`: not part of any shard
        }
    }

    let mut shards: Vec<Shard> = Vec::new();
    let mut shard_of: HashMap<String, usize> = HashMap::new();
    for (primary, slots) in masters {
        if slots.is_empty() {
            continue;
        }
        if let Some(id) = &primary.id {
            shard_of.insert(id.clone(), shards.len());
        }
        shards.push(Shard {
            primary,
            replicas: Vec::new(),
            slots,
        });
    }
    for (replica, master) in replicas {
        if let Some(&i) = shard_of.get(master) {
            shards[i].replicas.push(replica);
        }
    }
    let mut builder = ShardBuilder::default();
    shards.into_iter().for_each(|s| builder.push_shard(s));
    builder.finish()
}

struct Address {
    endpoint: Option<Endpoint>,
    ip: Option<String>,
    hostname: Option<String>,
}

/// `ip:port@cport[,hostname]`.
fn address(field: &str, asked: &Endpoint) -> Result<Address, String> {
    let (host_port, bus) = field
        .split_once('@')
        .ok_or_else(|| format!("address `{field}` has no `@cport`"))?;
    let (host, port) = host_port
        .rsplit_once(':')
        .ok_or_else(|| format!("address `{field}` has no `:port`"))?;
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let port = match port.parse::<u16>() {
        Ok(p) if digits(port) => p,
        _ => return Err(format!("bad port `{port}`")),
    };
    let (cport, hostname) = match bus.split_once(',') {
        Some((cport, name)) => (cport, usable_hostname(name).map(str::to_owned)),
        None => (bus, None),
    };
    if !digits(cport) {
        return Err(format!("bad bus port `{cport}`"));
    }
    // Same rules as the other formats: "" or a wildcard is the node we asked,
    // `?` is unknown, port 0 is unusable.
    let endpoint = resolve_endpoint(Some(host), None, port, asked, &Path::ROOT)
        .map_err(|_| format!("bad host `{host}`"))?;
    Ok(Address {
        endpoint,
        ip: usable_ip(host).map(str::to_owned),
        hostname,
    })
}

/// `n` or `a-b`, decimal, within 0..=16383, `a <= b`.
fn slot_token(token: &str) -> Result<SlotRange, String> {
    let num = |s: &str| -> Option<u16> {
        if s.is_empty() || s.len() > 5 || !s.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        s.parse::<u16>().ok().filter(|&n| n <= MAX_SLOT)
    };
    let (a, b) = token.split_once('-').unwrap_or((token, token));
    match (num(a), num(b)) {
        (Some(a), Some(b)) => {
            SlotRange::new(a, b).ok_or_else(|| format!("inverted range `{token}`"))
        }
        _ => Err(format!("bad slot `{token}`")),
    }
}
