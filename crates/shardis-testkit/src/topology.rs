//! Minimal parsing of `CLUSTER SLOTS`: just what the testkit needs to decide who owns what.
//! (The real parser lives in shardis-slots; the testkit deliberately does not depend on it.)

use std::fmt;

use redis::Value;

use crate::node::as_text;

/// One contiguous range of slots, as one node sees it. Endpoints are ignored (they differ
/// by `cluster-preferred-endpoint-type`); nodes are identified by id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct SlotRange {
    pub(crate) start: u16,
    pub(crate) end: u16,
    pub(crate) primary: String,
    /// Sorted, so that views listing replicas in different orders compare equal.
    pub(crate) replicas: Vec<String>,
}

/// One node's slot map, in ascending slot order.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub(crate) struct SlotMap(pub(crate) Vec<SlotRange>);

impl SlotMap {
    pub(crate) fn owner(&self, slot: u16) -> Option<&str> {
        self.0
            .iter()
            .find(|r| r.start <= slot && slot <= r.end)
            .map(|r| r.primary.as_str())
    }

    /// The assignment without replicas: what "agreeing on slots" means once replicas may
    /// legitimately differ (a failed replica, or one whose offset some node has not seen).
    pub(crate) fn owners(&self) -> Vec<(u16, u16, &str)> {
        self.0
            .iter()
            .map(|r| (r.start, r.end, r.primary.as_str()))
            .collect()
    }

    pub(crate) fn slots_of(&self, id: &str) -> Vec<(u16, u16)> {
        self.0
            .iter()
            .filter(|r| r.primary == id)
            .map(|r| (r.start, r.end))
            .collect()
    }
}

impl fmt::Display for SlotMap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self
            .0
            .iter()
            .map(|r| {
                format!(
                    "{}-{}→{}(+{})",
                    r.start,
                    r.end,
                    short(&r.primary),
                    r.replicas.len()
                )
            })
            .collect();
        write!(f, "[{}]", parts.join(" "))
    }
}

/// The first 8 characters of a node id, for readable state dumps.
pub(crate) fn short(id: &str) -> &str {
    &id[..id.len().min(8)]
}

/// Parses a `CLUSTER SLOTS` reply: `[[start, end, [ep, port, id, meta], replica*], ...]`.
pub(crate) fn parse_cluster_slots(reply: &Value) -> Result<SlotMap, String> {
    let Value::Array(ranges) = reply else {
        return Err(format!("not an array: {reply:?}"));
    };
    let mut out = Vec::with_capacity(ranges.len());
    for range in ranges {
        let Value::Array(items) = range else {
            return Err(format!("range is not an array: {range:?}"));
        };
        if items.len() < 3 {
            return Err(format!("range has {} elements: {range:?}", items.len()));
        }
        let slot = |v: &Value| match v {
            Value::Int(n) if (0..16384).contains(n) => Ok(*n as u16),
            other => Err(format!("bad slot {other:?}")),
        };
        let (start, end) = (slot(&items[0])?, slot(&items[1])?);
        let mut ids = items[2..]
            .iter()
            .map(node_id)
            .collect::<Result<Vec<_>, _>>()?;
        let primary = ids.remove(0);
        ids.sort();
        out.push(SlotRange {
            start,
            end,
            primary,
            replicas: ids,
        });
    }
    Ok(SlotMap(out))
}

fn node_id(node: &Value) -> Result<String, String> {
    match node {
        Value::Array(fields) => fields
            .get(2)
            .and_then(as_text)
            .ok_or_else(|| format!("node without id: {node:?}")),
        other => Err(format!("node is not an array: {other:?}")),
    }
}

/// A `field:value` line of `CLUSTER INFO`.
pub(crate) fn cluster_info_field<'a>(text: &'a str, field: &str) -> Option<&'a str> {
    text.lines()
        .find_map(|l| l.trim().strip_prefix(field)?.strip_prefix(':'))
}

/// The slot ranges of `primaries` primaries, split the way `redis-cli --cluster create` does.
pub(crate) fn initial_ranges(primaries: usize) -> Vec<(u16, u16)> {
    let per = 16384.0 / primaries as f64;
    let mut cursor = 0.0;
    let mut first = 0u16;
    (0..primaries)
        .map(|i| {
            let mut last = (cursor + per - 1.0).round() as i64;
            if last > 16383 || i == primaries - 1 {
                last = 16383;
            }
            let range = (first, last as u16);
            first = last as u16 + 1;
            cursor += per;
            range
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(id: &str) -> Value {
        Value::Array(vec![
            Value::Nil,
            Value::Int(1),
            Value::BulkString(id.into()),
            Value::Array(vec![]),
        ])
    }

    #[test]
    fn splits_like_redis_cli() {
        assert_eq!(
            initial_ranges(3),
            vec![(0, 5460), (5461, 10922), (10923, 16383)]
        );
        assert_eq!(initial_ranges(1), vec![(0, 16383)]);
        let five = initial_ranges(5);
        assert_eq!(five.first().unwrap().0, 0);
        assert_eq!(five.last().unwrap().1, 16383);
        assert!(five.windows(2).all(|w| w[0].1 + 1 == w[1].0));
    }

    #[test]
    fn parses_slots_and_sorts_replicas() {
        let reply = Value::Array(vec![Value::Array(vec![
            Value::Int(0),
            Value::Int(10),
            node("p"),
            node("r2"),
            node("r1"),
        ])]);
        let map = parse_cluster_slots(&reply).unwrap();
        assert_eq!(map.owner(5), Some("p"));
        assert_eq!(map.owner(11), None);
        assert_eq!(map.0[0].replicas, vec!["r1".to_string(), "r2".to_string()]);
        assert!(
            parse_cluster_slots(&Value::Array(vec![Value::Array(vec![Value::Int(0)])])).is_err()
        );
        assert!(
            parse_cluster_slots(&Value::Array(vec![Value::Array(vec![
                Value::Int(0),
                Value::Int(99999),
                node("p")
            ])]))
            .is_err()
        );
        assert_eq!(
            cluster_info_field(
                "cluster_state:ok\r\ncluster_known_nodes:6\r\n",
                "cluster_known_nodes"
            ),
            Some("6")
        );
    }
}
