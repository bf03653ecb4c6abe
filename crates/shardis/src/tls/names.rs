//! Which name a node's certificate is checked against (and sent as SNI): a pure rule.

use std::net::IpAddr;

use rustls::pki_types::ServerName;

/// The naming rule of one client; see [`TlsOptions`](crate::TlsOptions) for the user's view.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct NameRule {
    /// Used for every node when set.
    pub server_name: Option<String>,
    /// For a node known by IP: the first seed given by name (cluster mode, unless turned off).
    pub seed_name: Option<String>,
}

impl NameRule {
    /// The name to verify `host`'s certificate against: the override, else a host name as
    /// is, else (an IP) the seed's name when there is one, else the IP itself.
    pub fn name_for(&self, host: &str) -> Result<ServerName<'static>, String> {
        let chosen = match (&self.server_name, host.parse::<IpAddr>()) {
            (Some(name), _) => name.as_str(),
            (None, Ok(ip)) => match &self.seed_name {
                Some(seed) => seed.as_str(),
                None => return Ok(ServerName::IpAddress(ip.into())),
            },
            (None, Err(_)) => host,
        };
        ServerName::try_from(chosen.to_owned())
            .map_err(|e| format!("{chosen:?} is not a valid TLS server name: {e}"))
    }
}

/// The first seed host that is a name, not an IP: what a cluster's nodes announced by IP are
/// checked against.
pub(crate) fn seed_name<'a>(hosts: impl IntoIterator<Item = &'a str>) -> Option<String> {
    hosts
        .into_iter()
        .find(|host| host.parse::<IpAddr>().is_err())
        .map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shown(name: ServerName<'_>) -> String {
        match name {
            ServerName::DnsName(dns) => dns.as_ref().to_owned(),
            ServerName::IpAddress(ip) => format!("ip:{:?}", IpAddr::from(ip)),
            _ => "other".into(),
        }
    }

    #[test]
    fn an_override_names_every_node() {
        let rule = NameRule {
            server_name: Some("redis.internal".into()),
            seed_name: Some("seed.example.com".into()),
        };
        assert_eq!(shown(rule.name_for("10.0.0.1").unwrap()), "redis.internal");
        assert_eq!(
            shown(rule.name_for("other.host").unwrap()),
            "redis.internal"
        );
    }

    #[test]
    fn ips_take_the_seed_name_and_names_stay_themselves() {
        let rule = NameRule {
            server_name: None,
            seed_name: seed_name(["10.0.0.9", "cfg.cache.example.com"]),
        };
        assert_eq!(
            shown(rule.name_for("10.0.0.1").unwrap()),
            "cfg.cache.example.com"
        );
        assert_eq!(
            shown(rule.name_for("node-2.cache.example.com").unwrap()),
            "node-2.cache.example.com"
        );
        let plain = NameRule::default();
        assert_eq!(shown(plain.name_for("127.0.0.1").unwrap()), "ip:127.0.0.1");
        assert_eq!(shown(plain.name_for("::1").unwrap()), "ip:::1");
        assert!(seed_name(["10.0.0.1", "::1"]).is_none());
    }

    #[test]
    fn a_bad_override_is_an_error_not_a_panic() {
        let rule = NameRule {
            server_name: Some("not a name!".into()),
            seed_name: None,
        };
        assert!(rule.name_for("10.0.0.1").is_err());
    }
}
