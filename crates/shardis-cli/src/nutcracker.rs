//! Reading one pool of a twemproxy `nutcracker.yml`: its servers (names and weights), `hash`,
//! `hash_tag` and `distribution`, so that `locate` and `ring` place keys as that pool does.
//!
//! nutcracker's configuration is a small, fixed shape of YAML (pools of `key: value` pairs and
//! a `servers:` list), so it is read here by a parser of that shape rather than a YAML crate:
//! serde_yaml, the usual one, is archived and unmaintained, and the shape is all nutcracker
//! itself accepts. Anything outside it is refused with the line number.

use shardis::ring::KeyHash;

use crate::error::{Result, bail};
use crate::nodes::RingEntry;

/// One pool of a nutcracker configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pool {
    /// Its name (the top-level key).
    pub name: String,
    /// `hash:` (default `fnv1a_64`, as nutcracker's).
    pub hash: KeyHash,
    /// `hash_tag:`, two characters.
    pub hash_tag: Option<[u8; 2]>,
    /// `distribution:` (default `ketama`).
    pub distribution: String,
    /// Servers in order: the name is the explicit one, else `host:port` (which the ring hashes
    /// as twemproxy does: `host` alone on port 11211).
    pub servers: Vec<RingEntry>,
}

/// `value` without surrounding quotes.
fn unquote(value: &str) -> &str {
    let v = value.trim();
    for q in ['"', '\''] {
        if v.len() >= 2 && v.starts_with(q) && v.ends_with(q) {
            return &v[1..v.len() - 1];
        }
    }
    v
}

/// The line without a trailing comment (a `#` at the start or after a blank, outside quotes).
fn strip_comment(line: &str) -> &str {
    let mut quote = None;
    let mut prev_blank = true;
    for (i, c) in line.char_indices() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (None, '"' | '\'') => quote = Some(c),
            (None, '#') if prev_blank => return &line[..i],
            _ => {}
        }
        prev_blank = c.is_whitespace();
    }
    line
}

/// `host:port:weight [name]`.
fn server(value: &str, at: usize) -> Result<RingEntry> {
    let (addr, name) = match value.split_once(char::is_whitespace) {
        Some((addr, name)) => (addr, Some(name.trim())),
        None => (value, None),
    };
    if addr.starts_with('/') {
        bail!("line {at}: server {addr:?} is a Unix socket; shardis connects over TCP only");
    }
    let mut parts = addr.rsplitn(3, ':');
    let (Some(weight), Some(port), Some(host)) = (parts.next(), parts.next(), parts.next()) else {
        bail!("line {at}: server {value:?}: expected host:port:weight [name]");
    };
    let weight = match weight.parse::<u32>() {
        Ok(w) if w >= 1 => w,
        _ => bail!("line {at}: server {value:?}: the weight must be a number >= 1"),
    };
    if host.is_empty() || port.parse::<u16>().is_err() {
        bail!("line {at}: server {value:?}: expected host:port:weight [name]");
    }
    Ok(RingEntry {
        name: name.map_or_else(|| format!("{host}:{port}"), str::to_string),
        weight,
    })
}

/// Reads pool `pool` of the configuration `text`.
pub fn parse_pool(text: &str, pool: &str) -> Result<Pool> {
    let mut pools: Vec<String> = Vec::new();
    let mut found: Option<Pool> = None;
    let mut in_servers = false;
    for (i, raw) in text.lines().enumerate() {
        let at = i + 1;
        let line = strip_comment(raw).trim_end();
        if line.trim().is_empty() || line.trim() == "---" {
            continue;
        }
        if !line.starts_with([' ', '\t']) {
            let Some(name) = line.strip_suffix(':') else {
                bail!("line {at}: expected a pool name followed by ':', found {line:?}");
            };
            in_servers = false;
            pools.push(name.trim().to_string());
            if name.trim() == pool {
                found = Some(Pool {
                    name: pool.to_string(),
                    hash: KeyHash::TwemproxyFnv1a64,
                    hash_tag: None,
                    distribution: "ketama".into(),
                    servers: Vec::new(),
                });
            }
            continue;
        }
        let is_current = pools.last().is_some_and(|p| p == pool);
        let Some(current) = found.as_mut().filter(|_| is_current) else {
            continue;
        };
        let item = line.trim();
        if let Some(value) = item.strip_prefix('-') {
            if !in_servers {
                bail!("line {at}: a list item outside servers:");
            }
            current.servers.push(server(unquote(value), at)?);
            continue;
        }
        let Some((key, value)) = item.split_once(':') else {
            bail!("line {at}: expected key: value, found {item:?}");
        };
        let value = unquote(value);
        in_servers = false;
        match key.trim() {
            "servers" if value.is_empty() => in_servers = true,
            "servers" => {
                bail!("line {at}: write servers: as a list, one `- host:port:weight` per line")
            }
            "hash" => {
                current.hash = value
                    .parse()
                    .map_err(|e| crate::error::CliError::new(format!("line {at}: {e}")))?;
            }
            "hash_tag" => match value.as_bytes() {
                &[a, b] => current.hash_tag = Some([a, b]),
                _ => bail!("line {at}: hash_tag must be two characters, e.g. \"{{}}\""),
            },
            "distribution" => current.distribution = value.to_string(),
            _ => {}
        }
    }
    let Some(found) = found else {
        if pools.is_empty() {
            bail!("no pool in this nutcracker configuration");
        }
        bail!(
            "no pool named {pool:?}; the pools are: {}",
            pools.join(", ")
        );
    };
    if found.servers.is_empty() {
        bail!("pool {pool:?} has no servers");
    }
    if found.distribution != "ketama" {
        bail!(
            "pool {pool:?} uses distribution: {}; shardis places keys as ketama only",
            found.distribution
        );
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONF: &str = r#"
# from twemproxy's conf/nutcracker.yml
alpha:
  listen: 127.0.0.1:22121
  hash: fnv1a_64
  distribution: ketama
  auto_eject_hosts: true
  redis: true
  servers:
   - 127.0.0.1:6379:1

beta:
  listen: 127.0.0.1:22122
  hash: md5   # libmemcached's
  hash_tag: "{}"
  distribution: ketama
  servers:
   - 127.0.0.1:6380:1 server1
   - 127.0.0.1:6381:2 server2
   - "10.0.0.3:11211:1"

gamma:
  hash: fnv1a_64
  distribution: modula
  servers:
   - 127.0.0.1:6382:1
"#;

    #[test]
    fn reads_a_pool() {
        let p = parse_pool(CONF, "beta").unwrap();
        assert_eq!(p.hash, KeyHash::Md5);
        assert_eq!(p.hash_tag, Some(*b"{}"));
        let names: Vec<(&str, u32)> = p
            .servers
            .iter()
            .map(|e| (e.name.as_str(), e.weight))
            .collect();
        assert_eq!(
            names,
            [("server1", 1), ("server2", 2), ("10.0.0.3:11211", 1)]
        );
        let a = parse_pool(CONF, "alpha").unwrap();
        assert_eq!((a.hash, a.hash_tag), (KeyHash::TwemproxyFnv1a64, None));
        assert_eq!(a.servers[0].name, "127.0.0.1:6379");
    }

    #[test]
    fn refuses_what_it_cannot_follow() {
        let err = |pool: &str| parse_pool(CONF, pool).unwrap_err().to_string();
        assert!(err("delta").contains("alpha, beta, gamma"));
        assert!(err("gamma").contains("modula"));
        let bad = "p:\n  hash: sha1\n  servers:\n   - a:1:1\n";
        assert!(
            parse_pool(bad, "p")
                .unwrap_err()
                .to_string()
                .contains("unknown key hash")
        );
        let bad = "p:\n  servers:\n   - a:1:0\n";
        assert!(
            parse_pool(bad, "p")
                .unwrap_err()
                .to_string()
                .contains("line 3")
        );
        let bad = "p:\n  servers:\n   - /tmp/r.sock:1\n";
        assert!(
            parse_pool(bad, "p")
                .unwrap_err()
                .to_string()
                .contains("Unix socket")
        );
    }
}
