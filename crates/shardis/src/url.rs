//! Connection URLs: the one parser for every URL shardis accepts (pure, no I/O).
//!
//! ```text
//! redis://[[user][:password]@]host[:port][/db][?option=value&...]
//! rediss://...             TLS (turns TLS on: see Builder::tls)
//! ```
//!
//! The forms redis-rs and the managed services document are accepted: `redis://host:6379`,
//! `redis://user:password@host:6379`, `redis://:password@host:6379` (password only, as an
//! ElastiCache auth token or a Memorystore AUTH string), `redis://host:6379/0`,
//! `rediss://host:6379/#insecure`, `?protocol=resp2`, IPv6 as `[::1]`, and the `valkey://`,
//! `valkeys://` spellings. User and password are percent-decoded; a password may also hold
//! `@`, `#`, `/` or `?` unencoded (the host starts after the last `@`). Anything else is
//! refused with an [`Error::Config`] that says what was wrong, never showing the password.

use std::fmt;

use crate::error::{Error, Result};
use crate::settings::Secret;

/// The port of a URL that names none.
pub const DEFAULT_PORT: u16 = 6379;

/// A parsed connection URL. `Display` and `Debug` never show the password.
///
/// ```
/// use shardis::ConnectionUrl;
///
/// let url: ConnectionUrl = "rediss://app:s3cr%40t@cache.example.com:6380/0".parse()?;
/// assert!(url.tls());
/// assert_eq!(url.addr(), "cache.example.com:6380");
/// assert_eq!(url.username(), Some("app"));
/// assert!(url.has_password());
/// assert_eq!(url.to_string(), "rediss://app:***@cache.example.com:6380/0");
/// # Ok::<(), shardis::Error>(())
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct ConnectionUrl {
    tls: bool,
    insecure: bool,
    host: String,
    port: u16,
    username: Option<String>,
    password: Option<Secret>,
    db: u32,
}

impl ConnectionUrl {
    /// Parses `url`: `redis://[[user][:password]@]host[:port][/db][?option=value&...]`, or
    /// `rediss://...` for TLS (also spelled `valkey://`, `valkeys://`). User and password are
    /// percent-decoded; a password may hold `@`, `#`, `/` or `?` unencoded. Anything else is an
    /// [`Error::Config`] that says what was wrong, never showing the password.
    ///
    /// ```
    /// use shardis::ConnectionUrl;
    ///
    /// let url = ConnectionUrl::parse("redis://[::1]")?;
    /// assert_eq!((url.host(), url.port()), ("::1", 6379));
    /// let err = ConnectionUrl::parse("redis://:pw@host:6379?timeout=5").unwrap_err();
    /// assert!(err.to_string().contains("unknown option \"timeout\""));
    /// assert!(!err.to_string().contains("pw"));
    /// # Ok::<(), shardis::Error>(())
    /// ```
    pub fn parse(url: &str) -> Result<ConnectionUrl> {
        parse(url.trim()).map_err(|why| {
            Error::Config(format!("bad connection URL {}: {why}", redact(url.trim())))
        })
    }

    /// Whether the scheme asks for TLS (`rediss://`, `valkeys://`).
    pub fn tls(&self) -> bool {
        self.tls
    }

    /// Whether TLS certificate verification was turned off (`rediss://...#insecure`).
    pub fn tls_insecure(&self) -> bool {
        self.insecure
    }

    /// The host, without IPv6 brackets.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The port (6379 when the URL names none).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `host:port`, IPv6 in brackets (`[::1]:6379`): the form seeds and ring nodes take.
    ///
    /// ```
    /// let url: shardis::ConnectionUrl = "redis://[fe80::1]:7000".parse()?;
    /// assert_eq!(url.addr(), "[fe80::1]:7000");
    /// # Ok::<(), shardis::Error>(())
    /// ```
    pub fn addr(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// The ACL user name, if any.
    pub fn username(&self) -> Option<&str> {
        self.username.as_deref()
    }

    /// Whether the URL holds a password (the password itself is not shown).
    pub fn has_password(&self) -> bool {
        self.password.is_some()
    }

    /// The password, kept in a [`Secret`].
    pub fn password(&self) -> Option<&Secret> {
        self.password.as_ref()
    }

    /// The database number (0 when the URL names none).
    pub fn db(&self) -> u32 {
        self.db
    }
}

impl std::str::FromStr for ConnectionUrl {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        ConnectionUrl::parse(s)
    }
}

/// The URL with the password replaced by `***`.
impl fmt::Display for ConnectionUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.tls { "rediss://" } else { "redis://" })?;
        match (&self.username, &self.password) {
            (Some(user), Some(_)) => write!(f, "{user}:***@")?,
            (Some(user), None) => write!(f, "{user}@")?,
            (None, Some(_)) => f.write_str(":***@")?,
            (None, None) => {}
        }
        write!(f, "{}/{}", self.addr(), self.db)?;
        if self.insecure {
            f.write_str("#insecure")?;
        }
        Ok(())
    }
}

impl fmt::Debug for ConnectionUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ConnectionUrl({self})")
    }
}

/// What the builder took from connection URLs, checked by `Builder::validate`.
#[derive(Clone, Debug, Default)]
pub(crate) struct FromUrls {
    /// Every URL that parsed.
    pub urls: Vec<ConnectionUrl>,
    /// Why the others did not (already redacted).
    pub errors: Vec<String>,
}

impl FromUrls {
    /// Parses `seeds`: URLs are parsed (their `host:port` returned in their place), plain
    /// `host:port` seeds are returned as they are.
    pub fn take(&mut self, seeds: Vec<String>) -> Vec<String> {
        seeds
            .into_iter()
            .map(|seed| {
                if !is_url(&seed) {
                    return seed;
                }
                match ConnectionUrl::parse(&seed) {
                    Ok(url) => {
                        let addr = url.addr();
                        self.urls.push(url);
                        addr
                    }
                    Err(e) => {
                        self.errors.push(match e {
                            Error::Config(message) => message,
                            other => other.to_string(),
                        });
                        // Never connected to: validate() fails first.
                        String::new()
                    }
                }
            })
            .collect()
    }

    /// The credentials the URLs agree on: `Err` when two URLs name different ones.
    pub fn credentials(&self) -> Result<Option<(Option<String>, Secret)>> {
        let mut found: Option<(Option<String>, Secret)> = None;
        for url in &self.urls {
            let Some(password) = &url.password else {
                if let Some(user) = &url.username {
                    return Err(Error::Config(username_without_password(user)));
                }
                continue;
            };
            let this = (url.username.clone(), password.clone());
            match &found {
                Some(seen) if *seen != this => {
                    return Err(Error::Config(
                        "the URLs carry different credentials: give every seed the same \
                         user and password (or put them in one URL only)"
                            .into(),
                    ));
                }
                _ => found = Some(this),
            }
        }
        Ok(found)
    }

    /// Refuses what the URLs ask for that this version cannot do.
    pub fn check(&self) -> Result<()> {
        if let Some(first) = self.errors.first() {
            return Err(Error::Config(
                first.trim_start_matches("invalid configuration: ").into(),
            ));
        }
        self.credentials()?;
        self.tls()?;
        for url in &self.urls {
            if url.db != 0 {
                return Err(Error::Config(format!(
                    "{url} selects database {}: shardis uses database 0 only (Redis Cluster \
                     has no other); drop the /{} from the URL",
                    url.db, url.db
                )));
            }
        }
        Ok(())
    }
}

impl FromUrls {
    /// The TLS the URLs ask for: none (`redis://`), the defaults (`rediss://`), or no
    /// certificate checks at all (`rediss://...#insecure` in any of them). `Err` when some
    /// URLs ask for TLS and others do not.
    pub fn tls(&self) -> Result<Option<crate::TlsOptions>> {
        let with = self.urls.iter().filter(|u| u.tls).count();
        if with == 0 {
            return Ok(None);
        }
        if with < self.urls.len() {
            return Err(Error::Config(
                "some URLs are rediss:// (TLS) and others redis://: a client speaks TLS to \
                 every node or to none; give every seed the same scheme"
                    .into(),
            ));
        }
        let options = crate::TlsOptions::new();
        Ok(Some(if self.urls.iter().any(|u| u.insecure) {
            options.danger_accept_invalid_certificates()
        } else {
            options
        }))
    }
}

/// The sentence for an ACL user name given without its password.
pub(crate) fn username_without_password(user: &str) -> String {
    format!(
        "user {user:?} was given without a password: give both (.username(..).password(..), \
         or redis://{user}:PASSWORD@host:port); to log in as the default user, give only the \
         password"
    )
}

/// Whether `seed` is written as a URL rather than `host:port`.
pub(crate) fn is_url(seed: &str) -> bool {
    seed.contains("://")
}

/// `raw` with whatever stands between the first `:` of the user part and the last `@`
/// replaced by `***`: safe to show even when `raw` did not parse.
fn redact(raw: &str) -> String {
    let (scheme, rest) = match raw.split_once("://") {
        Some((scheme, rest)) => (Some(scheme), rest),
        None => (None, raw),
    };
    let shown = match rest.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{user}:***@{host}"),
            None => format!("{userinfo}@{host}"),
        },
        None => rest.to_string(),
    };
    match scheme {
        Some(scheme) => format!("{scheme}://{shown}"),
        None => shown,
    }
}

fn parse(raw: &str) -> std::result::Result<ConnectionUrl, String> {
    let Some((scheme, rest)) = raw.split_once("://") else {
        return Err("expected redis://[user[:password]@]host[:port][/db]".into());
    };
    let tls = match scheme.to_ascii_lowercase().as_str() {
        "redis" | "valkey" => false,
        "rediss" | "valkeys" => true,
        "redis+unix" | "unix" | "valkey+unix" => {
            return Err("Unix sockets are not supported: use redis://host:port".into());
        }
        other => {
            return Err(format!(
                "unknown scheme {other:?}: expected redis:// or rediss:// (TLS)"
            ));
        }
    };
    // The host starts after the last `@`, so a password may hold `@`, `#`, `/` or `?`.
    let (userinfo, rest) = match rest.rsplit_once('@') {
        Some((userinfo, rest)) => (Some(userinfo), rest),
        None => (None, rest),
    };
    let (rest, fragment) = match rest.split_once('#') {
        Some((rest, fragment)) => (rest, Some(fragment)),
        None => (rest, None),
    };
    let (rest, query) = match rest.split_once('?') {
        Some((rest, query)) => (rest, Some(query)),
        None => (rest, None),
    };
    let (authority, path) = match rest.find('/') {
        Some(at) => (&rest[..at], &rest[at + 1..]),
        None => (rest, ""),
    };

    let (username, password) = match userinfo {
        None => (None, None),
        Some(info) => {
            let (user, pass) = match info.split_once(':') {
                Some((user, pass)) => (user, Some(pass)),
                None => (info, None),
            };
            let user = decode(user).map_err(|e| format!("the user name {e}"))?;
            let pass = match pass {
                Some(pass) => Some(decode(pass).map_err(|e| format!("the password {e}"))?),
                None => None,
            };
            (
                Some(user).filter(|u| !u.is_empty()),
                pass.filter(|p| !p.is_empty()).map(Secret::new),
            )
        }
    };

    let (host, port) = host_port(authority)?;
    let mut db = match path {
        "" => None,
        digits => Some(
            digits
                .parse::<u32>()
                .map_err(|_| format!("the path {digits:?} is not a database number"))?,
        ),
    };
    for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        match key {
            "db" => {
                let n = value
                    .parse::<u32>()
                    .map_err(|_| format!("db={value:?} is not a database number"))?;
                if db.is_some_and(|d| d != n) {
                    return Err(format!(
                        "the path names database {} and ?db= names {n}: give one",
                        db.unwrap_or_default()
                    ));
                }
                db = Some(n);
            }
            "protocol" => match value.to_ascii_lowercase().as_str() {
                "resp2" | "2" => {}
                _ => {
                    return Err(format!(
                        "protocol={value:?}: shardis speaks RESP2 only (protocol=resp2)"
                    ));
                }
            },
            other => {
                return Err(format!(
                    "unknown option {other:?}: a URL may set db and protocol; set timeouts \
                     and the rest on the Builder"
                ));
            }
        }
    }
    let insecure = match fragment {
        None | Some("") => false,
        Some("insecure") if tls => true,
        Some("insecure") => return Err("#insecure applies to rediss:// only".into()),
        Some(other) => {
            return Err(format!(
                "unknown fragment #{other}: only rediss://...#insecure is understood"
            ));
        }
    };
    Ok(ConnectionUrl {
        tls,
        insecure,
        host,
        port,
        username,
        password,
        db: db.unwrap_or(0),
    })
}

/// `host[:port]` or `[v6][:port]`.
fn host_port(authority: &str) -> std::result::Result<(String, u16), String> {
    let (host, port) = if let Some(bracketed) = authority.strip_prefix('[') {
        let Some((host, after)) = bracketed.split_once(']') else {
            return Err(format!(
                "{authority:?}: an IPv6 address needs its closing ]"
            ));
        };
        let port = match after {
            "" => None,
            p => Some(
                p.strip_prefix(':')
                    .ok_or_else(|| format!("{authority:?}: expected [address]:port"))?,
            ),
        };
        (host, port)
    } else {
        match authority.split_once(':') {
            Some((_, p)) if p.contains(':') => {
                return Err(format!(
                    "{authority:?}: write an IPv6 address in brackets, e.g. redis://[::1]:6379"
                ));
            }
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        }
    };
    if host.is_empty() {
        return Err("no host: expected e.g. redis://127.0.0.1:6379".into());
    }
    let port = match port {
        None => DEFAULT_PORT,
        Some(p) => match p.parse::<u16>() {
            Ok(port) if port != 0 => port,
            _ => return Err(format!("port {p:?} is not a port number (1-65535)")),
        },
    };
    Ok((decode(host).map_err(|e| format!("the host {e}"))?, port))
}

/// Percent-decodes `s` as UTF-8; the error never repeats `s` (it may be a password).
fn decode(s: &str) -> std::result::Result<String, &'static str> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or("has a % not followed by two hex digits (write % as %25)")?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| "is not UTF-8 once percent-decoded")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(url: &str) -> ConnectionUrl {
        ConnectionUrl::parse(url).unwrap_or_else(|e| panic!("{url}: {e}"))
    }

    fn err(url: &str) -> String {
        match ConnectionUrl::parse(url) {
            Err(Error::Config(message)) => message,
            other => panic!("{url}: expected a config error, got {other:?}"),
        }
    }

    #[test]
    fn redis_rs_documented_forms() {
        let u = ok("redis://127.0.0.1:6379");
        assert_eq!(
            (u.addr(), u.tls(), u.db()),
            ("127.0.0.1:6379".into(), false, 0)
        );
        assert_eq!((u.username(), u.has_password()), (None, false));
        let u = ok("redis://user:password@127.0.0.1:6379");
        assert_eq!(u.username(), Some("user"));
        assert_eq!(u.password().map(Secret::expose), Some("password"));
        let u = ok("redis://:password@127.0.0.1:6379");
        assert_eq!((u.username(), u.has_password()), (None, true));
        assert_eq!(ok("redis://127.0.0.1:6379/0").db(), 0);
        assert_eq!(ok("redis://127.0.0.1:6379/3").db(), 3);
        assert!(ok("rediss://127.0.0.1:6379").tls());
        let u = ok("rediss://127.0.0.1:6379/#insecure");
        assert!(u.tls() && u.tls_insecure());
        assert_eq!(ok("redis://127.0.0.1:6379/?protocol=resp2").db(), 0);
        assert!(ok("valkeys://h:1").tls());
        assert_eq!(ok("redis://localhost").addr(), "localhost:6379");
    }

    #[test]
    fn managed_service_forms() {
        // ElastiCache, cluster mode enabled: the configuration endpoint with an auth token
        // (16-128 printable characters; `!&#$^<>-` allowed).
        let u = ok(
            "rediss://:Tok3n-With!Marks%23and%26@clustercfg.my-cache.abc123.use1.cache.amazonaws.com:6379",
        );
        assert_eq!(
            u.addr(),
            "clustercfg.my-cache.abc123.use1.cache.amazonaws.com:6379"
        );
        assert_eq!(
            u.password().map(Secret::expose),
            Some("Tok3n-With!Marks#and&")
        );
        // The same token unencoded: `#` and `&` before the host are still the password.
        let u = ok("rediss://:Tok3n#x&y^<z>@master.rg.abc123.use1.cache.amazonaws.com:6379");
        assert_eq!(u.password().map(Secret::expose), Some("Tok3n#x&y^<z>"));
        assert_eq!(u.host(), "master.rg.abc123.use1.cache.amazonaws.com");
        // ElastiCache RBAC user.
        let u =
            ok("rediss://app-user:p%40ss%3Aword@replica.rg.abc123.use1.cache.amazonaws.com:6379");
        assert_eq!(u.username(), Some("app-user"));
        assert_eq!(u.password().map(Secret::expose), Some("p@ss:word"));
        // Memorystore: AUTH string (a UUID), TLS on port 6378, by IP.
        let u = ok("rediss://:0a1b2c3d-4e5f-6789-abcd-ef0123456789@10.0.0.3:6378");
        assert_eq!((u.addr(), u.tls()), ("10.0.0.3:6378".into(), true));
        assert_eq!(
            ok("redis://default:pw@10.0.0.3:6379/0").username(),
            Some("default")
        );
    }

    #[test]
    fn ipv6_and_percent_decoding() {
        let u = ok("redis://[::1]:7000");
        assert_eq!(
            (u.host(), u.port(), u.addr()),
            ("::1", 7000, "[::1]:7000".into())
        );
        assert_eq!(ok("redis://[::1]").port(), 6379);
        assert_eq!(ok("redis://us%65r:pw@h").username(), Some("user"));
        assert_eq!(
            ok("redis://:%E2%82%AC@h").password().map(Secret::expose),
            Some("€")
        );
        assert!(err("redis://::1:7000").contains("in brackets"));
        assert!(err("redis://[::1:7000").contains("closing ]"));
    }

    #[test]
    fn refuses_what_it_does_not_understand() {
        assert!(err("http://h:1").contains("unknown scheme"));
        assert!(err("redis+unix:///tmp/redis.sock").contains("Unix sockets"));
        assert!(err("h:6379").contains("expected redis://"));
        assert!(err("redis://:6379").contains("no host"));
        assert!(err("redis://h:0").contains("port"));
        assert!(err("redis://h:99999").contains("port"));
        assert!(err("redis://h/x").contains("database number"));
        assert!(err("redis://h/1?db=2").contains("give one"));
        assert!(err("redis://h?protocol=resp3").contains("RESP2"));
        assert!(err("redis://h?timeout=5").contains("unknown option \"timeout\""));
        assert!(err("redis://h#insecure").contains("rediss://"));
        assert!(err("redis://h#x").contains("unknown fragment"));
    }

    #[test]
    fn the_password_never_shows() {
        const PW: &str = "hunter2-do-not-show";
        let u = ok(&format!("redis://app:{PW}@h:1/2"));
        for shown in [u.to_string(), format!("{u:?}")] {
            assert!(!shown.contains(PW), "{shown}");
        }
        assert_eq!(u.to_string(), "redis://app:***@h:1/2");
        for bad in [
            format!("redis://app:{PW}@h:1?bogus=1"),
            format!("redis://app:{PW}%zz@h:1"),
            format!("redis://app:{PW}@:1"),
            format!("redis://:{PW}@h:99999"),
        ] {
            let message = err(&bad);
            assert!(!message.contains(PW), "{message}");
            assert!(message.contains("***"), "{message}");
        }
    }
}
