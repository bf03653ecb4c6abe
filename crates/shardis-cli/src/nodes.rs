//! Addresses and node lists from the command line; connecting to a cluster; starting a local
//! one through the testkit.

use std::time::Duration;

use shardis::slots::Endpoint;

use crate::error::{CliError, Result, bail};

/// Parses `HOST:PORT` (IPv6 as `[::1]:7000`).
pub fn parse_addr(s: &str) -> Result<Endpoint> {
    match Endpoint::parse(s.trim()) {
        Ok(e) if e.port != 0 => Ok(e),
        _ => bail!("bad address {s:?}: expected HOST:PORT, e.g. 127.0.0.1:7000"),
    }
}

/// A shardis client for the cluster that `addr` belongs to.
pub async fn connect_cluster(addr: &str) -> Result<shardis::Client> {
    let endpoint = parse_addr(addr)?;
    shardis::Client::builder()
        .cluster([endpoint.to_string()])
        .connect_timeout(Duration::from_secs(2))
        .response_timeout(Duration::from_secs(2))
        .build()
        .await
        .map_err(|e| {
            CliError::new(format!(
                "cannot use the Redis Cluster at {endpoint}: {e} (is a cluster node listening there? \
                 `shardis demo` starts a local one)"
            ))
        })
}

/// Starts a local cluster of `primaries` × (1 + `replicas`) redis-server processes.
pub async fn start_cluster(primaries: usize, replicas: usize) -> Result<shardis_testkit::Cluster> {
    shardis_testkit::Cluster::builder()
        .primaries(primaries)
        .replicas_per_primary(replicas)
        .start()
        .await
        .map_err(|e| CliError::new(format!("cannot start a local cluster: {e}")))
}

/// Starts `n` local standalone redis-server processes (for a ring).
pub async fn start_standalone(n: usize) -> Result<shardis_testkit::Standalone> {
    shardis_testkit::Standalone::start(n)
        .await
        .map_err(|e| CliError::new(format!("cannot start local redis-server nodes: {e}")))
}

/// One node of a ring given on the command line: `NAME[=WEIGHT]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RingEntry {
    /// What the ring hashes, and (when it is `host:port`) where the node is.
    pub name: String,
    /// Weight, at least 1.
    pub weight: u32,
}

/// Parses `a:6379,b:6379=2` (comma- or whitespace-separated, optional `=WEIGHT`).
pub fn parse_ring_nodes(list: &[String]) -> Result<Vec<RingEntry>> {
    let mut out: Vec<RingEntry> = Vec::new();
    for item in list.iter().flat_map(|s| s.split([',', ' '])) {
        let item = item.trim();
        if item.is_empty() {
            continue;
        }
        let (name, weight) = match item.rsplit_once('=') {
            Some((name, w)) => match w.parse::<u32>() {
                Ok(w) if w >= 1 => (name, w),
                _ => bail!(
                    "bad weight in {item:?}: expected NAME=WEIGHT with WEIGHT >= 1, e.g. cache-a:6379=2"
                ),
            },
            None => (item, 1),
        };
        if name.is_empty() {
            bail!("empty node name in {item:?}");
        }
        if out.iter().any(|e| e.name == name) {
            bail!("node {name:?} is listed twice");
        }
        out.push(RingEntry {
            name: name.to_string(),
            weight,
        });
    }
    if out.is_empty() {
        bail!("no ring nodes given: pass e.g. --nodes 10.0.0.1:6379,10.0.0.2:6379=2");
    }
    Ok(out)
}

/// Reads keys from the arguments, or from stdin (one per line) when there are none.
pub fn keys_from_args_or_stdin(keys: &[String]) -> Result<Vec<String>> {
    use std::io::{BufRead, IsTerminal};
    if !keys.is_empty() {
        return Ok(keys.to_vec());
    }
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        bail!("no keys given: pass them as arguments or one per line on stdin");
    }
    let mut out = Vec::new();
    for line in stdin.lock().lines() {
        let line = line.map_err(|e| CliError::new(format!("reading keys from stdin: {e}")))?;
        let line = line.trim_end_matches('\r');
        if !line.is_empty() {
            out.push(line.to_string());
        }
    }
    if out.is_empty() {
        bail!("no keys given: pass them as arguments or one per line on stdin");
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ring_lists() {
        let nodes = parse_ring_nodes(&["a:6379,b:6379=2".into(), "c".into()]).unwrap();
        assert_eq!(
            nodes,
            vec![
                RingEntry {
                    name: "a:6379".into(),
                    weight: 1
                },
                RingEntry {
                    name: "b:6379".into(),
                    weight: 2
                },
                RingEntry {
                    name: "c".into(),
                    weight: 1
                },
            ]
        );
        assert!(parse_ring_nodes(&["a=0".into()]).is_err());
        assert!(parse_ring_nodes(&["a,a".into()]).is_err());
        assert!(parse_ring_nodes(&[]).is_err());
    }

    #[test]
    fn addresses() {
        assert_eq!(parse_addr("127.0.0.1:7000").unwrap().port, 7000);
        assert!(parse_addr("nonsense").is_err());
        assert!(parse_addr("host:0").is_err());
    }
}
