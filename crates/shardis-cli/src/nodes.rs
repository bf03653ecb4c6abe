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

/// A password from the command line or the environment; never shown by `Debug`.
#[derive(Clone)]
pub struct Password(String);

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Password(***)")
    }
}

/// TLS, as redis-cli takes it, for every subcommand that connects.
#[derive(clap::Args, Clone, Debug, Default)]
pub struct TlsArgs {
    /// Speak TLS to every node (rediss:// URLs turn it on too).
    #[arg(long)]
    tls: bool,
    /// Trust the CA certificate(s) in this PEM file instead of the public roots.
    #[arg(long, value_name = "FILE")]
    cacert: Option<std::path::PathBuf>,
    /// Client certificate (PEM) for mutual TLS; give its key with --key.
    #[arg(long, value_name = "FILE", requires = "key")]
    cert: Option<std::path::PathBuf>,
    /// Private key (PEM) of --cert.
    #[arg(long, value_name = "FILE", requires = "cert")]
    key: Option<std::path::PathBuf>,
    /// Name sent as SNI and checked in every node's certificate (default: the node's host;
    /// nodes announced by IP are checked against the seed's host name).
    #[arg(long, value_name = "NAME")]
    sni: Option<String>,
    /// Accept any server certificate: encrypted but not authenticated (tests only).
    #[arg(long)]
    insecure: bool,
}

impl TlsArgs {
    /// The `--sni` name, if given.
    pub fn sni(&self) -> Option<&str> {
        self.sni.as_deref()
    }

    /// The TLS options these flags ask for; `None` when no flag asks for TLS (a `rediss://`
    /// URL may still turn it on). Any TLS flag implies `--tls`.
    pub fn options(&self) -> Option<shardis::TlsOptions> {
        let asked = self.tls
            || self.cacert.is_some()
            || self.cert.is_some()
            || self.sni.is_some()
            || self.insecure;
        if !asked {
            return None;
        }
        let mut options = shardis::TlsOptions::new();
        if let Some(ca) = &self.cacert {
            options = options.ca_file(ca);
        }
        if let (Some(cert), Some(key)) = (&self.cert, &self.key) {
            options = options.client_identity_files(cert, key);
        }
        if let Some(name) = &self.sni {
            options = options.server_name(name.clone());
        }
        if self.insecure {
            options = options.danger_accept_invalid_certificates();
        }
        Some(options)
    }
}

/// Credentials and TLS, as redis-cli takes them, for every subcommand that connects.
#[derive(clap::Args, Clone, Debug, Default)]
pub struct AuthArgs {
    /// Password for AUTH (default: $REDISCLI_AUTH, as redis-cli). A URL may carry it too.
    #[arg(short = 'a', long = "pass", value_name = "PASSWORD", value_parser = |s: &str| Ok::<_, std::convert::Infallible>(Password(s.to_string())))]
    pass: Option<Password>,
    /// ACL user name (give its password with -a/--pass or REDISCLI_AUTH).
    #[arg(long, value_name = "USER")]
    user: Option<String>,
    #[command(flatten)]
    pub tls: TlsArgs,
}

impl AuthArgs {
    /// Credentials from flags only (tests).
    #[cfg(test)]
    pub fn new(user: Option<&str>, pass: Option<&str>) -> Self {
        AuthArgs {
            pass: pass.map(|p| Password(p.into())),
            user: user.map(Into::into),
            tls: TlsArgs::default(),
        }
    }

    /// The password: `-a/--pass`, else a non-empty `$REDISCLI_AUTH`.
    pub fn password(&self) -> Option<String> {
        self.pass.as_ref().map(|p| p.0.clone()).or_else(|| {
            std::env::var("REDISCLI_AUTH")
                .ok()
                .filter(|p| !p.is_empty())
        })
    }

    /// `builder` with these credentials and TLS options (they take precedence over a URL's).
    pub fn apply(&self, mut builder: shardis::Builder) -> shardis::Builder {
        if let Some(tls) = self.tls.options() {
            builder = builder.tls(tls);
        }
        if let Some(user) = &self.user {
            builder = builder.username(user.clone());
        }
        if let Some(password) = self.password() {
            builder = builder.password(password);
        }
        builder
    }

    /// What to try when connecting failed with `message`: the hint points at credentials
    /// when the server asked for them or refused them, at the address otherwise.
    pub fn hint(&self, message: &str) -> &'static str {
        let given = self.password().is_some();
        if message.contains("NOAUTH") || (message.contains("Authentication required") && !given) {
            "the server requires a password: pass -a PASSWORD (or set REDISCLI_AUTH), and \
             --user NAME for an ACL user"
        } else if message.contains("WRONGPASS") || message.contains("invalid password") {
            "the server refused these credentials: check --user and -a/--pass (or REDISCLI_AUTH)"
        } else if message.contains("invalid configuration") {
            ""
        } else if message.contains("TLS") {
            "check --cacert (the CA that signed the server's certificate), --sni, and --cert/--key \
             when the server asks for a client certificate"
        } else if self.tls.options().is_none()
            && ["sent no reply", "closed the connection", "reset by peer"]
                .iter()
                .any(|m| message.contains(m))
        {
            // A TLS port answers a plaintext client by closing (or resetting) the connection.
            "is that a TLS port? then pass --tls (and --cacert for a private CA)"
        } else {
            "is a cluster node listening there? `shardis demo` starts a local one"
        }
    }
}

/// `HOST:PORT` as given, or a `redis://` URL (which may carry credentials).
pub fn seed(addr: &str) -> Result<String> {
    if addr.contains("://") {
        return Ok(addr.trim().to_string());
    }
    Ok(parse_addr(addr)?.to_string())
}

/// The node `addr` (`HOST:PORT` or a URL) names, the user and password to log in with (the
/// flags' or `$REDISCLI_AUTH`, else the URL's), and whether TLS is on (a flag or `rediss://`).
pub fn endpoint_and_credentials(
    addr: &str,
    auth: &AuthArgs,
) -> Result<(Endpoint, Option<String>, Option<String>, bool)> {
    let flagged_tls = auth.tls.options().is_some();
    if !addr.contains("://") {
        return Ok((
            parse_addr(addr)?,
            auth.user.clone(),
            auth.password(),
            flagged_tls,
        ));
    }
    let url =
        shardis::ConnectionUrl::parse(addr.trim()).map_err(|e| CliError::new(e.to_string()))?;
    let user = auth
        .user
        .clone()
        .or_else(|| url.username().map(str::to_string));
    let password = auth
        .password()
        .or_else(|| url.password().map(|p| p.expose().to_string()));
    if let (Some(user), None) = (&user, &password) {
        bail!("user {user:?} was given without a password: add -a PASSWORD (or REDISCLI_AUTH)");
    }
    Ok((
        parse_addr(&url.addr())?,
        user,
        password,
        flagged_tls || url.tls(),
    ))
}

/// A shardis client for the cluster that `addr` (`HOST:PORT` or a URL) belongs to.
pub async fn connect_cluster(addr: &str, auth: &AuthArgs) -> Result<shardis::Client> {
    let seed = seed(addr)?;
    let shown = shardis::ConnectionUrl::parse(&seed).map_or_else(|_| seed.clone(), |u| u.addr());
    auth.apply(shardis::Client::builder().cluster([seed]))
        .connect_timeout(Duration::from_secs(2))
        .response_timeout(Duration::from_secs(2))
        .build()
        .await
        .map_err(|e| {
            let message = e.to_string();
            match auth.hint(&message) {
                "" => CliError::new(format!(
                    "cannot use the Redis Cluster at {shown}: {message}"
                )),
                hint => CliError::new(format!(
                    "cannot use the Redis Cluster at {shown}: {message} ({hint})"
                )),
            }
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
    fn the_hint_points_at_credentials_when_the_server_asks_for_them() {
        let none = AuthArgs::new(None, None);
        // What a password-protected cluster answers a client without credentials.
        let noauth = "no seed answered: CLIENT failed: NOAUTH Authentication required.";
        assert!(none.hint(noauth).contains("-a PASSWORD"));
        assert!(!none.hint(noauth).contains("listening"));
        let wrong = "AUTH failed: WRONGPASS invalid username-password pair or user is disabled.";
        let given = AuthArgs::new(Some("app"), Some("nope"));
        assert!(given.hint(wrong).contains("refused these credentials"));
        assert!(
            none.hint("Connection refused (os error 111)")
                .contains("listening")
        );
        assert!(format!("{given:?}").contains("Password(***)"));
        assert!(!format!("{given:?}").contains("nope"));
        assert_eq!(seed("redis://:pw@h:1").unwrap(), "redis://:pw@h:1");
        assert_eq!(seed("127.0.0.1:7000").unwrap(), "127.0.0.1:7000");
    }

    #[test]
    fn addresses() {
        assert_eq!(parse_addr("127.0.0.1:7000").unwrap().port, 7000);
        assert!(parse_addr("nonsense").is_err());
        assert!(parse_addr("host:0").is_err());
    }
}
