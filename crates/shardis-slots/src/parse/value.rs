//! Typed access to `redis::Value` trees with error locations.
//!
//! Paths are built as a linked list on the stack and rendered to a `String`
//! only when an error is reported, so the happy path allocates nothing for
//! them.

use std::fmt::Write as _;
use std::net::IpAddr;

use redis::Value;

use crate::endpoint::{Endpoint, check_host};
use crate::error::TopologyError;
use crate::slot::MAX_SLOT;

/// Where we are inside a reply, e.g. `range[2].node[1].port`.
#[derive(Clone, Copy)]
pub(crate) struct Path<'a> {
    parent: Option<&'a Path<'a>>,
    seg: Seg,
}

#[derive(Clone, Copy)]
enum Seg {
    Root,
    Index(&'static str, usize),
    Field(&'static str),
}

impl<'a> Path<'a> {
    pub(crate) const ROOT: Path<'static> = Path {
        parent: None,
        seg: Seg::Root,
    };

    pub(crate) fn index(&'a self, name: &'static str, i: usize) -> Path<'a> {
        Path {
            parent: Some(self),
            seg: Seg::Index(name, i),
        }
    }

    pub(crate) fn field(&'a self, name: &'static str) -> Path<'a> {
        Path {
            parent: Some(self),
            seg: Seg::Field(name),
        }
    }

    pub(crate) fn render(&self) -> String {
        let mut segs = Vec::new();
        let mut cur = Some(self);
        while let Some(p) = cur {
            segs.push(p.seg);
            cur = p.parent;
        }
        let mut out = String::new();
        for seg in segs.iter().rev() {
            let sep = if out.is_empty() { "" } else { "." };
            let _ = match seg {
                Seg::Root => Ok(()),
                Seg::Index(name, i) => write!(out, "{sep}{name}[{i}]"),
                Seg::Field(name) => write!(out, "{sep}{name}"),
            };
        }
        out
    }
}

/// A short name of a value's RESP type, for error messages.
pub(crate) fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Nil => "null",
        Value::Int(_) => "integer",
        Value::BulkString(_) => "bulk string",
        Value::Array(_) => "array",
        Value::SimpleString(_) => "simple string",
        Value::Okay => "OK",
        Value::Map(_) => "map",
        Value::Attribute { .. } => "attribute",
        Value::Set(_) => "set",
        Value::Double(_) => "double",
        Value::Boolean(_) => "boolean",
        Value::VerbatimString { .. } => "verbatim string",
        Value::BigNumber(_) => "big number",
        Value::Push { .. } => "push",
        Value::ServerError(_) => "error",
        _ => "unknown",
    }
}

/// RESP3 attributes annotate a value; the value is what matters.
pub(crate) fn data(mut v: &Value) -> &Value {
    while let Value::Attribute { data, .. } = v {
        v = data;
    }
    v
}

pub(crate) fn unexpected(v: &Value, path: &Path<'_>, expected: &'static str) -> TopologyError {
    if let Value::ServerError(e) = v {
        // Most likely the whole reply is `-LOADING ...`: say so plainly.
        let detail = e.details().unwrap_or_default();
        return TopologyError::ServerError(format!("{} {}", e.code(), detail).trim().into());
    }
    TopologyError::UnexpectedType {
        path: path.render(),
        expected,
        found: type_name(v),
    }
}

pub(crate) fn array<'v>(v: &'v Value, path: &Path<'_>) -> Result<&'v [Value], TopologyError> {
    match data(v) {
        Value::Array(items) => Ok(items),
        other => Err(unexpected(other, path, "array")),
    }
}

pub(crate) fn int(v: &Value, path: &Path<'_>) -> Result<i64, TopologyError> {
    match data(v) {
        Value::Int(i) => Ok(*i),
        other => Err(unexpected(other, path, "integer")),
    }
}

/// A string field: bulk (must be UTF-8), simple or verbatim.
pub(crate) fn string<'v>(v: &'v Value, path: &Path<'_>) -> Result<&'v str, TopologyError> {
    match data(v) {
        Value::BulkString(b) => std::str::from_utf8(b).map_err(|_| TopologyError::BadString {
            path: path.render(),
            reason: "not UTF-8",
        }),
        Value::SimpleString(s) => Ok(s),
        Value::VerbatimString { text, .. } => Ok(text),
        other => Err(unexpected(other, path, "string")),
    }
}

/// A string that may be NULL (`$-1` / `_`).
pub(crate) fn opt_string<'v>(
    v: &'v Value,
    path: &Path<'_>,
) -> Result<Option<&'v str>, TopologyError> {
    match data(v) {
        Value::Nil => Ok(None),
        other => string(other, path).map(Some),
    }
}

/// A slot number, strictly an integer in 0..=16383.
pub(crate) fn slot(v: &Value, path: &Path<'_>) -> Result<u16, TopologyError> {
    check_slot(int(v, path)?, path)
}

pub(crate) fn check_slot(n: i64, path: &Path<'_>) -> Result<u16, TopologyError> {
    match u16::try_from(n) {
        Ok(s) if s <= MAX_SLOT => Ok(s),
        _ => Err(TopologyError::SlotOutOfRange {
            path: path.render(),
            value: n,
        }),
    }
}

/// A port: integer in 0..=65535. 0 is returned as is (it means "no address"
/// and makes the node unusable, it is not a malformed reply).
pub(crate) fn port(v: &Value, path: &Path<'_>) -> Result<u16, TopologyError> {
    let n = int(v, path)?;
    u16::try_from(n).map_err(|_| TopologyError::BadPort {
        path: path.render(),
        value: n.to_string(),
    })
}

/// The key/value pairs of a RESP3 map or a RESP2 flattened `[k1, v1, ...]`
/// array. Keys must be strings; duplicate keys are rejected (which value
/// would be right?).
pub(crate) fn key_values<'v>(
    v: &'v Value,
    path: &Path<'_>,
) -> Result<Vec<(&'v str, &'v Value)>, TopologyError> {
    let mut out = Vec::new();
    match data(v) {
        Value::Map(pairs) => {
            out.reserve(pairs.len());
            for (i, (k, val)) in pairs.iter().enumerate() {
                out.push((string(k, &path.index("key", i))?, val));
            }
        }
        Value::Array(items) => {
            if items.len() % 2 != 0 {
                return Err(TopologyError::OddLength {
                    path: path.render(),
                    len: items.len(),
                });
            }
            out.reserve(items.len() / 2);
            for (i, kv) in items.chunks_exact(2).enumerate() {
                out.push((string(&kv[0], &path.index("key", i))?, &kv[1]));
            }
        }
        other => return Err(unexpected(other, path, "map or key/value array")),
    }
    for (i, (k, _)) in out.iter().enumerate() {
        if out[..i].iter().any(|(seen, _)| seen == k) {
            return Err(TopologyError::DuplicateField {
                path: path.render(),
                field: (*k).to_owned(),
            });
        }
    }
    Ok(out)
}

/// Hosts a server may advertise that mean "wherever you reached me".
fn is_wildcard(host: &str) -> bool {
    matches!(host, "0.0.0.0" | "::")
}

/// `Some(ip)` if `s` is a usable IP literal (not empty, `?`, or a wildcard).
pub(crate) fn usable_ip(s: &str) -> Option<&str> {
    let bare = s
        .strip_prefix('[')
        .and_then(|b| b.strip_suffix(']'))
        .unwrap_or(s);
    (bare.parse::<IpAddr>().is_ok() && !is_wildcard(bare)).then_some(bare)
}

/// `Some(name)` unless empty or `?` (neither can be a configured hostname).
pub(crate) fn usable_hostname(s: &str) -> Option<&str> {
    (!s.is_empty() && s != "?").then_some(s)
}

/// Turns the advertised endpoint into where to connect:
/// - port 0 → unknown (`None`);
/// - NULL, `""` or a wildcard address (`0.0.0.0`, `::`) → the host we
///   asked, with this port;
/// - `"?"` → the `ip` metadata if it is a usable IP, else unknown;
/// - anything else → that host (brackets stripped), which must be sane
///   (no whitespace, control characters or stray brackets).
pub(crate) fn resolve_endpoint(
    advertised: Option<&str>,
    ip: Option<&str>,
    port: u16,
    asked: &Endpoint,
    path: &Path<'_>,
) -> Result<Option<Endpoint>, TopologyError> {
    if port == 0 {
        return Ok(None);
    }
    // Strip brackets first so `[::]` and `[?]` get the same meaning as `::`, `?`.
    let advertised = match advertised {
        None | Some("") => None,
        Some(h) => Some(check_host(h).map_err(|_| TopologyError::BadString {
            path: path.render(),
            reason: "not a host name or address",
        })?),
    };
    let host = match advertised {
        None => asked.host.as_str(),
        Some(h) if is_wildcard(h) => asked.host.as_str(),
        Some("?") => match ip.and_then(usable_ip) {
            Some(ip) => ip,
            None => return Ok(None),
        },
        Some(h) => h,
    };
    if host.is_empty() {
        // `asked` itself had no host: we cannot know where this node is.
        return Ok(None);
    }
    Ok(Some(Endpoint::new(host, port)))
}
