//! [`TlsOptions`]: what a user says about TLS, and turning it into a rustls client config.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use super::names::NameRule;
use super::verify;
use crate::error::{Error, Result};

/// PEM text given inline or read from a file when the client is built.
#[derive(Clone)]
enum Pem {
    Bytes(Vec<u8>),
    File(PathBuf),
}

impl Pem {
    fn load(&self, what: &str) -> Result<Vec<u8>> {
        match self {
            Pem::Bytes(bytes) => Ok(bytes.clone()),
            Pem::File(path) => std::fs::read(path).map_err(|e| {
                Error::Config(format!(
                    "TLS: cannot read the {what} {}: {e}",
                    path.display()
                ))
            }),
        }
    }

    /// Where it came from, for `Debug` (never the contents: a key is a secret).
    fn describe(&self) -> String {
        match self {
            Pem::Bytes(bytes) => format!("<{} bytes of PEM>", bytes.len()),
            Pem::File(path) => path.display().to_string(),
        }
    }
}

/// TLS settings of a [`Client`](crate::Client), given to
/// [`Builder::tls`](crate::Builder::tls). Every connection the client opens (shared, dedicated,
/// subscribed, topology loads) then speaks TLS (rustls, TLS 1.2 and 1.3).
///
/// Defaults: the server's certificate must chain to a public root (the Mozilla set of
/// `webpki-roots`, the same on every host) unless CAs are given with [`ca_pem`](Self::ca_pem)
/// or [`ca_file`](Self::ca_file), which then are the only roots trusted; it must be valid for
/// the node's name (see below); no client certificate.
///
/// **Which name a node's certificate is checked against**: the [`server_name`](Self::server_name)
/// when one is set (SNI and verification, for every node); else the node's host as the client
/// knows it — a seed's host, a ring node's host, or what a cluster announces. A cluster that
/// announces its nodes by IP address (most do) would need the IPs in every certificate, so in
/// cluster mode a node announced by IP is checked against the first seed given by host name
/// (`cache.example.com`: the name of a managed cluster's configuration endpoint, which its
/// nodes' certificates carry); [`verify_ip_nodes_as_seed(false)`](Self::verify_ip_nodes_as_seed)
/// checks IPs as IPs instead. When every seed is an IP, an IP is checked as an IP.
///
/// ```no_run
/// # async fn run() -> Result<(), shardis::Error> {
/// use shardis::TlsOptions;
/// let client = shardis::Client::builder()
///     .cluster(["clustercfg.my-cache.abc123.use1.cache.amazonaws.com:6379"])
///     .tls(TlsOptions::new())
///     .username("app")
///     .password("auth-token")
///     .build()
///     .await?;
///
/// // A private CA and a client certificate (mutual TLS):
/// let tls = TlsOptions::new()
///     .ca_file("/etc/redis/ca.pem")
///     .client_identity_files("/etc/redis/client.pem", "/etc/redis/client.key")
///     .server_name("redis.internal");
/// # Ok(()) }
/// ```
#[derive(Clone, Default)]
#[must_use]
pub struct TlsOptions {
    cas: Vec<Pem>,
    identity: Option<(Pem, Pem)>,
    server_name: Option<String>,
    ip_nodes_as_plain_ips: bool,
    danger_accept_invalid_hostnames: bool,
    danger_accept_invalid_certificates: bool,
}

impl fmt::Debug for TlsOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsOptions")
            .field(
                "cas",
                &self.cas.iter().map(Pem::describe).collect::<Vec<_>>(),
            )
            .field(
                "client_certificate",
                &self.identity.as_ref().map(|(cert, _)| cert.describe()),
            )
            .field("client_key", &self.identity.as_ref().map(|_| "***"))
            .field("server_name", &self.server_name)
            .field("verify_ip_nodes_as_seed", &!self.ip_nodes_as_plain_ips)
            .field(
                "danger_accept_invalid_hostnames",
                &self.danger_accept_invalid_hostnames,
            )
            .field(
                "danger_accept_invalid_certificates",
                &self.danger_accept_invalid_certificates,
            )
            .finish()
    }
}

impl TlsOptions {
    /// TLS with the defaults: public roots, hostname verification, no client certificate.
    pub fn new() -> Self {
        Self::default()
    }

    /// Trusts the CA certificate(s) in this PEM text (one or more `CERTIFICATE` blocks)
    /// instead of the public roots. May be given several times.
    pub fn ca_pem(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.cas.push(Pem::Bytes(pem.into()));
        self
    }

    /// As [`ca_pem`](Self::ca_pem), read from a file when the client is built.
    pub fn ca_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.cas.push(Pem::File(path.into()));
        self
    }

    /// A client certificate (chain, PEM) and its private key (PEM: PKCS#8, PKCS#1 or SEC1),
    /// sent to servers that ask for one (`tls-auth-clients yes`: mutual TLS). The key never
    /// appears in `Debug`, logs or errors.
    pub fn client_identity_pem(
        mut self,
        certificate: impl Into<Vec<u8>>,
        key: impl Into<Vec<u8>>,
    ) -> Self {
        self.identity = Some((Pem::Bytes(certificate.into()), Pem::Bytes(key.into())));
        self
    }

    /// As [`client_identity_pem`](Self::client_identity_pem), read from files when the client
    /// is built.
    pub fn client_identity_files(
        mut self,
        certificate: impl Into<PathBuf>,
        key: impl Into<PathBuf>,
    ) -> Self {
        self.identity = Some((Pem::File(certificate.into()), Pem::File(key.into())));
        self
    }

    /// The name sent as SNI and checked in every node's certificate, whatever address the
    /// node is reached at (an IP, a name behind a tunnel or a load balancer).
    pub fn server_name(mut self, name: impl Into<String>) -> Self {
        self.server_name = Some(name.into());
        self
    }

    /// In cluster mode, whether a node announced by IP is checked against the first seed's
    /// host name (`true`, the default) or against its IP (`false`). See the type's docs.
    pub fn verify_ip_nodes_as_seed(mut self, yes: bool) -> Self {
        self.ip_nodes_as_plain_ips = !yes;
        self
    }

    /// **Dangerous**: accepts a certificate valid for any name, as long as it chains to a
    /// trusted root. A server with a certificate for another host (of the same CA) is then
    /// indistinguishable from the right one. For tests and broken deployments only.
    pub fn danger_accept_invalid_hostnames(mut self) -> Self {
        self.danger_accept_invalid_hostnames = true;
        self
    }

    /// **Dangerous**: accepts any certificate at all (`rediss://...#insecure`, the CLI's
    /// `--insecure`): the connection is encrypted but anyone on the path can read and change
    /// it. For tests only.
    pub fn danger_accept_invalid_certificates(mut self) -> Self {
        self.danger_accept_invalid_certificates = true;
        self
    }

    /// The rustls config and naming rule these options describe; `seed_name` is the first seed
    /// host that is a name (cluster mode), for nodes announced by IP.
    pub(crate) fn resolve(&self, seed_name: Option<String>) -> Result<TlsSettings> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| Error::Config(format!("TLS: {e}")))?;
        let mut roots = rustls::RootCertStore::empty();
        if self.cas.is_empty() {
            roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        }
        for ca in &self.cas {
            let pem = ca.load("CA file")?;
            let mut found = 0;
            for cert in CertificateDer::pem_slice_iter(&pem) {
                let cert = cert.map_err(|e| {
                    Error::Config(format!("TLS: bad CA PEM ({}): {e}", ca.describe()))
                })?;
                roots.add(cert).map_err(|e| {
                    Error::Config(format!("TLS: unusable CA ({}): {e}", ca.describe()))
                })?;
                found += 1;
            }
            if found == 0 {
                return Err(Error::Config(format!(
                    "TLS: no CERTIFICATE in the CA PEM ({})",
                    ca.describe()
                )));
            }
        }
        let verifier = verify::server_verifier(
            roots,
            provider,
            self.danger_accept_invalid_hostnames,
            self.danger_accept_invalid_certificates,
        )?;
        let builder = builder
            .dangerous()
            .with_custom_certificate_verifier(verifier);
        let config = match &self.identity {
            None => builder.with_no_client_auth(),
            Some((cert, key)) => {
                let cert_pem = cert.load("client certificate")?;
                let chain = CertificateDer::pem_slice_iter(&cert_pem)
                    .collect::<std::result::Result<Vec<_>, _>>()
                    .map_err(|e| {
                        Error::Config(format!(
                            "TLS: bad client certificate PEM ({}): {e}",
                            cert.describe()
                        ))
                    })?;
                if chain.is_empty() {
                    return Err(Error::Config(format!(
                        "TLS: no CERTIFICATE in the client certificate PEM ({})",
                        cert.describe()
                    )));
                }
                // The key's own parse errors are not shown: they could quote key material.
                let key_pem = key.load("client key")?;
                let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|_| {
                    Error::Config(format!(
                        "TLS: no usable private key (PKCS#8, PKCS#1 or SEC1 PEM) in {}",
                        key.describe()
                    ))
                })?;
                builder
                    .with_client_auth_cert(chain, key)
                    .map_err(|e| Error::Config(format!("TLS: client certificate: {e}")))?
            }
        };
        Ok(TlsSettings {
            config: Arc::new(config),
            names: NameRule {
                server_name: self.server_name.clone(),
                seed_name: if self.ip_nodes_as_plain_ips {
                    None
                } else {
                    seed_name
                },
            },
        })
    }
}

/// Resolved TLS settings, shared by every connection of a client.
#[derive(Clone)]
pub(crate) struct TlsSettings {
    pub config: Arc<rustls::ClientConfig>,
    pub names: NameRule,
}

impl fmt::Debug for TlsSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsSettings")
            .field("names", &self.names)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_never_shows_in_debug() {
        let options = TlsOptions::new()
            .client_identity_pem("CERT", "-----BEGIN PRIVATE KEY-----\nSECRETKEY")
            .server_name("redis.internal");
        let shown = format!("{options:?}");
        assert!(!shown.contains("SECRETKEY"), "{shown}");
        assert!(shown.contains("redis.internal"), "{shown}");
    }

    #[test]
    fn unusable_pem_is_a_config_error_that_does_not_quote_the_key() {
        let err = TlsOptions::new().ca_pem("not a pem").resolve(None);
        assert!(
            matches!(&err, Err(Error::Config(m)) if m.contains("no CERTIFICATE")),
            "{err:?}"
        );
        let err = TlsOptions::new()
            .ca_file("/nonexistent/ca.pem")
            .resolve(None);
        assert!(
            matches!(&err, Err(Error::Config(m)) if m.contains("/nonexistent/ca.pem")),
            "{err:?}"
        );
        let err = TlsOptions::new()
            .client_identity_pem("nothing", "-----BEGIN PRIVATE KEY-----\nSECRETKEY\n")
            .resolve(None);
        assert!(
            matches!(&err, Err(Error::Config(m)) if !m.contains("SECRETKEY")),
            "{err:?}"
        );
    }

    #[test]
    fn defaults_use_the_public_roots() {
        assert!(TlsOptions::new().resolve(None).is_ok());
    }
}
