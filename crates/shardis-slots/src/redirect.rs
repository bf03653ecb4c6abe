//! `MOVED` / `ASK` redirections: `-<CODE> <slot> <endpoint>:<port>`.

use crate::endpoint::{Endpoint, check_host, parse_port, split_host_port};
use crate::error::{EndpointError, RedirectError};
use crate::slot::MAX_SLOT;

/// Which redirection the server sent.
///
/// ```
/// assert_ne!(shardis_slots::RedirectKind::Moved, shardis_slots::RedirectKind::Ask);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RedirectKind {
    /// The slot has a new owner: retry there and update the map.
    Moved,
    /// The slot is migrating: retry this one command there, preceded by
    /// `ASKING` on the same connection; do not update the map.
    Ask,
}

/// Where the redirection points.
///
/// ```
/// use shardis_slots::{parse_redirect, RedirectTarget};
/// assert_eq!(parse_redirect("MOVED 866 :32001").unwrap().target,
///            RedirectTarget::SameHost { port: 32001 });
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RedirectTarget {
    /// A concrete address (IPv6 unbracketed).
    Endpoint(Endpoint),
    /// `:port`: the node's endpoint is unknown to the server; use the host of
    /// the connection that received the redirect.
    SameHost {
        /// Port to use.
        port: u16,
    },
    /// `?:port`: hostname preference without a hostname. The target cannot be
    /// reached by name; refresh the topology instead.
    Unknown {
        /// Port that was given.
        port: u16,
    },
}

/// A parsed `MOVED`/`ASK` error.
///
/// ```
/// use shardis_slots::{parse_redirect, Endpoint, RedirectKind, RedirectTarget};
/// let r = parse_redirect("-MOVED 12182 ::1:32013").unwrap();
/// assert_eq!(r.kind, RedirectKind::Moved);
/// assert_eq!(r.slot, 12182);
/// assert_eq!(r.target, RedirectTarget::Endpoint(Endpoint::new("::1", 32013)));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Redirect {
    /// MOVED or ASK.
    pub kind: RedirectKind,
    /// The slot, 0..=16383.
    pub slot: u16,
    /// Where to go.
    pub target: RedirectTarget,
}

impl Redirect {
    /// The address to retry at: `SameHost` takes `current`'s host (the node
    /// that sent the redirect); `Unknown` gives `None`.
    ///
    /// ```
    /// use shardis_slots::{parse_redirect, Endpoint};
    /// let here = Endpoint::new("10.0.0.1", 7000);
    /// assert_eq!(parse_redirect("ASK 1 :7001").unwrap().resolve(&here),
    ///            Some(Endpoint::new("10.0.0.1", 7001)));
    /// assert_eq!(parse_redirect("MOVED 1 ?:7001").unwrap().resolve(&here), None);
    /// ```
    pub fn resolve(&self, current: &Endpoint) -> Option<Endpoint> {
        match &self.target {
            RedirectTarget::Endpoint(ep) => Some(ep.clone()),
            RedirectTarget::SameHost { port } => Some(Endpoint::new(current.host.clone(), *port)),
            RedirectTarget::Unknown { .. } => None,
        }
    }

    /// Parses a `redis::ServerError` (as redis-rs reports replies such as
    /// `-MOVED ...`). Same rules as [`parse_redirect_parts`].
    ///
    /// ```
    /// # use shardis_slots::Redirect;
    /// let v = redis::parse_redis_value(b"-ASK 866 127.0.0.1:32001\r\n").unwrap();
    /// let redis::Value::ServerError(e) = v else { unreachable!() };
    /// assert_eq!(Redirect::from_server_error(&e).unwrap().slot, 866);
    /// ```
    pub fn from_server_error(err: &redis::ServerError) -> Result<Redirect, RedirectError> {
        parse_redirect_parts(err.code(), err.details().unwrap_or(""))
    }
}

/// Parses a redirect error line, with or without the leading `-` and with or
/// without a trailing `\r\n`: `MOVED 12182 127.0.0.1:32003`, `-ASK 866 :32001`.
///
/// Grammar: `CODE SP slot SP address [SP extra...]`. Fields are separated by
/// exactly one space (leading, trailing or doubled spaces are errors); text
/// after the address, which 7.0 never sends, is tolerated and ignored. The
/// slot is a decimal in 0..=16383; the address is `host:port` split at the
/// last `:`, `[v6]:port`, `:port` ([`RedirectTarget::SameHost`]) or `?:port`
/// ([`RedirectTarget::Unknown`]); the port is a decimal in 1..=65535.
///
/// ```
/// use shardis_slots::{parse_redirect, RedirectError};
/// assert!(parse_redirect("MOVED 15495 node3.test:32003").is_ok());
/// assert!(matches!(parse_redirect("MOVED 1 h:0"), Err(RedirectError::BadAddress { .. })));
/// assert!(matches!(parse_redirect("MOVED  1 h:1"), Err(RedirectError::Malformed(_))));
/// ```
pub fn parse_redirect(line: &str) -> Result<Redirect, RedirectError> {
    let line = line.strip_prefix('-').unwrap_or(line);
    let line = line
        .strip_suffix("\r\n")
        .or_else(|| line.strip_suffix('\n'))
        .unwrap_or(line);
    let (code, detail) = line
        .split_once(' ')
        .ok_or(RedirectError::Malformed("expected `CODE slot address`"))?;
    parse_redirect_parts(code, detail)
}

/// Parses a redirect given as `(code, detail)`, the way
/// `redis::ServerError::code()` / `details()` split it:
/// `("MOVED", "12182 127.0.0.1:32003")`. See [`parse_redirect`].
///
/// ```
/// use shardis_slots::{parse_redirect_parts, RedirectKind};
/// let r = parse_redirect_parts("ASK", "12182 127.0.0.1:32001").unwrap();
/// assert_eq!((r.kind, r.slot), (RedirectKind::Ask, 12182));
/// ```
pub fn parse_redirect_parts(code: &str, detail: &str) -> Result<Redirect, RedirectError> {
    let kind = match code {
        "MOVED" => RedirectKind::Moved,
        "ASK" => RedirectKind::Ask,
        other => return Err(RedirectError::NotARedirect(other.into())),
    };
    let mut fields = detail.split(' ');
    let (Some(slot), Some(address)) = (fields.next(), fields.next()) else {
        return Err(RedirectError::Malformed("missing slot or address"));
    };
    if slot.is_empty() || address.is_empty() || fields.any(str::is_empty) {
        return Err(RedirectError::Malformed("empty field (extra space?)"));
    }
    let slot = parse_slot(slot)?;
    let target = parse_target(address).map_err(|reason| RedirectError::BadAddress {
        address: address.into(),
        reason,
    })?;
    Ok(Redirect { kind, slot, target })
}

fn parse_slot(s: &str) -> Result<u16, RedirectError> {
    let digits = s.len() <= 5 && s.bytes().all(|b| b.is_ascii_digit());
    match s.parse::<u16>() {
        Ok(slot) if digits && slot <= MAX_SLOT => Ok(slot),
        _ => Err(RedirectError::BadSlot(s.into())),
    }
}

fn parse_target(address: &str) -> Result<RedirectTarget, EndpointError> {
    let (host, port) = split_host_port(address)?;
    let port = parse_port(port)?;
    if host.is_empty() {
        return Ok(RedirectTarget::SameHost { port });
    }
    // Brackets stripped first: `[?]` is as unknown as `?`.
    Ok(match check_host(host)? {
        "?" => RedirectTarget::Unknown { port },
        host => RedirectTarget::Endpoint(Endpoint::new(host, port)),
    })
}
