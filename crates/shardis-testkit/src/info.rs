//! Parsing `INFO` output.

use std::collections::HashMap;

/// Parses `INFO` text into `field → value`, skipping `# Section` headers and blank lines.
pub(crate) fn parse_info(text: &str) -> HashMap<String, String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Extracts `calls` per command from parsed `INFO commandstats`: `cmdstat_get:calls=3,...`
/// becomes `"get" → 3`, `cmdstat_cluster|slots:...` becomes `"cluster|slots" → n`.
pub(crate) fn parse_commandstats(info: &HashMap<String, String>) -> HashMap<String, u64> {
    info.iter()
        .filter_map(|(k, v)| Some((k.strip_prefix("cmdstat_")?.to_string(), field(v, "calls")?)))
        .collect()
}

/// The `keys` count of `db0` in parsed `INFO keyspace` (0 when db0 is absent, i.e. empty).
pub(crate) fn parse_db0_keys(info: &HashMap<String, String>) -> u64 {
    info.get("db0").and_then(|v| field(v, "keys")).unwrap_or(0)
}

/// `name=value` from a comma-separated INFO value like `keys=1,expires=0,avg_ttl=0`.
fn field(value: &str, name: &str) -> Option<u64> {
    value
        .split(',')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == name)?
        .1
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_sections() {
        let text = "# Commandstats\r\ncmdstat_get:calls=3,usec=10,usec_per_call=3.33,rejected_calls=0,failed_calls=0\r\n\
                    cmdstat_cluster|slots:calls=2,usec=1\r\n\r\n# Keyspace\r\ndb0:keys=7,expires=0,avg_ttl=0\r\n";
        let info = parse_info(text);
        let stats = parse_commandstats(&info);
        assert_eq!(stats["get"], 3);
        assert_eq!(stats["cluster|slots"], 2);
        assert_eq!(stats.len(), 2);
        assert_eq!(parse_db0_keys(&info), 7);
        assert_eq!(parse_db0_keys(&HashMap::new()), 0);
    }
}
