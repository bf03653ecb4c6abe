//! Host + port of a node. IPv6 hosts are stored *without* brackets (the form
//! the server sends: `::1`), and bracketed only when formatted.

use std::fmt;

use crate::error::EndpointError;

/// A node address: host (IP or name) and TCP port.
///
/// The host is never bracketed internally; [`Display`](fmt::Display) adds
/// brackets for IPv6 so the output can be used as `host:port` in a URL.
///
/// ```
/// use shardis_slots::Endpoint;
/// assert_eq!(Endpoint::new("127.0.0.1", 6379).to_string(), "127.0.0.1:6379");
/// assert_eq!(Endpoint::new("::1", 6379).to_string(), "[::1]:6379");
/// assert_eq!(Endpoint::parse("[::1]:6379").unwrap(), Endpoint::new("::1", 6379));
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Endpoint {
    /// Host name or IP address, unbracketed.
    pub host: String,
    /// TCP port.
    pub port: u16,
}

impl Endpoint {
    /// An endpoint from its parts. No validation: see [`Endpoint::is_usable`].
    ///
    /// ```
    /// let e = shardis_slots::Endpoint::new("node3.test", 32003);
    /// assert_eq!(e.to_string(), "node3.test:32003");
    /// ```
    pub fn new(host: impl Into<String>, port: u16) -> Self {
        Endpoint {
            host: host.into(),
            port,
        }
    }

    /// Parses `host:port`, `[v6]:port` or an unbracketed `v6:port` (split at
    /// the last `:`). The port must be a decimal in 1..=65535; the host must be
    /// non-empty and free of whitespace, control characters and stray brackets.
    ///
    /// ```
    /// use shardis_slots::{Endpoint, EndpointError};
    /// assert_eq!(Endpoint::parse("::1:32013").unwrap(), Endpoint::new("::1", 32013));
    /// assert_eq!(Endpoint::parse(":6379"), Err(EndpointError::EmptyHost));
    /// assert!(matches!(Endpoint::parse("h:0"), Err(EndpointError::BadPort(_))));
    /// ```
    pub fn parse(s: &str) -> Result<Endpoint, EndpointError> {
        let (host, port) = split_host_port(s)?;
        let host = check_host(host)?;
        Ok(Endpoint::new(host, parse_port(port)?))
    }

    /// Whether a connection could be attempted: non-empty host and port > 0.
    ///
    /// ```
    /// use shardis_slots::Endpoint;
    /// assert!(Endpoint::new("h", 1).is_usable());
    /// assert!(!Endpoint::new("", 1).is_usable() && !Endpoint::new("h", 0).is_usable());
    /// ```
    pub fn is_usable(&self) -> bool {
        !self.host.is_empty() && self.port != 0
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

impl std::str::FromStr for Endpoint {
    type Err = EndpointError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Endpoint::parse(s)
    }
}

/// Splits `host:port` at the last `:`, honouring `[v6]:port`. The host part is
/// returned as written (brackets included); [`check_host`] strips them.
pub(crate) fn split_host_port(s: &str) -> Result<(&str, &str), EndpointError> {
    if s.starts_with('[') {
        // `[v6]:port`: the port follows the closing bracket, nothing else may.
        let close = s
            .find(']')
            .ok_or_else(|| EndpointError::BadHost(s.into()))?;
        let (host, rest) = s.split_at(close + 1);
        return match rest.strip_prefix(':') {
            Some(port) => Ok((host, port)),
            None if rest.is_empty() => Err(EndpointError::MissingPort),
            None => Err(EndpointError::BadHost(s.into())),
        };
    }
    s.rsplit_once(':').ok_or(EndpointError::MissingPort)
}

/// Validates a host and strips one pair of surrounding brackets.
pub(crate) fn check_host(host: &str) -> Result<&str, EndpointError> {
    let inner = match host.strip_prefix('[') {
        Some(rest) => rest
            .strip_suffix(']')
            .ok_or_else(|| EndpointError::BadHost(host.into()))?,
        None => host,
    };
    if inner.is_empty() {
        return Err(EndpointError::EmptyHost);
    }
    let bad = |c: char| c.is_whitespace() || c.is_control() || c == '[' || c == ']';
    if inner.chars().any(bad) {
        return Err(EndpointError::BadHost(host.into()));
    }
    Ok(inner)
}

/// A decimal port in 1..=65535. Signs, spaces and empty strings are rejected
/// (`u16::from_str` alone would accept `+80`).
pub(crate) fn parse_port(s: &str) -> Result<u16, EndpointError> {
    let bad = || EndpointError::BadPort(s.into());
    if s.is_empty() || s.len() > 5 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    match s.parse::<u16>() {
        Ok(0) | Err(_) => Err(bad()),
        Ok(port) => Ok(port),
    }
}
