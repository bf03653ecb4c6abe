//! Certificates for TLS-enabled test servers, generated at test time with `rcgen`.
//!
//! One CA signs a server certificate (for `localhost` and `127.0.0.1`, usable as a client
//! certificate too, as redis-server presents it on replication and cluster-bus links) and a
//! client certificate for mutual TLS. A second, unrelated CA is there for "wrong CA" tests.
//! Every file lives in a temporary directory removed when the last handle goes.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};
use tempfile::TempDir;

use crate::error::{Result, TestkitError};

/// Test certificates on disk; cheap to clone. Give them to a builder with
/// [`tls`](crate::StandaloneBuilder::tls).
///
/// ```no_run
/// # async fn demo() -> shardis_testkit::Result<()> {
/// let certs = shardis_testkit::TlsCerts::generate()?;
/// let nodes = shardis_testkit::Standalone::builder().tls(&certs).start().await?;
/// let tls_addr: String = nodes.nodes()[0].tls_addr().expect("TLS is on");
/// let ca: &str = certs.ca_pem();
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct TlsCerts {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    dir: TempDir,
    ca_pem: String,
    client_cert_pem: String,
    client_key_pem: String,
    other_ca_pem: String,
}

impl TlsCerts {
    /// Generates a CA, a server certificate, a client certificate and an unrelated CA, and
    /// writes them (PEM) into a new temporary directory.
    pub fn generate() -> Result<TlsCerts> {
        let fail = |what: &str, e: rcgen::Error| {
            TestkitError::InvalidArgument(format!("generating the test {what}: {e}"))
        };
        let (ca_pem, ca_key, ca_params) = ca("shardis test CA").map_err(|e| fail("CA", e))?;
        let issuer = Issuer::new(ca_params, ca_key);
        let (other_ca_pem, _, _) = ca("an unrelated CA").map_err(|e| fail("other CA", e))?;

        let mut server = CertificateParams::new(vec!["localhost".to_string()])
            .map_err(|e| fail("server certificate", e))?;
        server
            .subject_alt_names
            .push(SanType::IpAddress([127, 0, 0, 1].into()));
        server
            .distinguished_name
            .push(DnType::CommonName, "localhost");
        server.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let server_key = KeyPair::generate().map_err(|e| fail("server key", e))?;
        let server_cert = server
            .signed_by(&server_key, &issuer)
            .map_err(|e| fail("server certificate", e))?;

        let mut client = CertificateParams::new(Vec::<String>::new())
            .map_err(|e| fail("client certificate", e))?;
        client
            .distinguished_name
            .push(DnType::CommonName, "shardis test client");
        client.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let client_key = KeyPair::generate().map_err(|e| fail("client key", e))?;
        let client_cert = client
            .signed_by(&client_key, &issuer)
            .map_err(|e| fail("client certificate", e))?;

        let dir = tempfile::Builder::new()
            .prefix("shardis-testkit-tls-")
            .tempdir()
            .map_err(|e| TestkitError::io("creating the certificates directory", e))?;
        let certs = TlsCerts {
            inner: Arc::new(Inner {
                dir,
                ca_pem,
                client_cert_pem: client_cert.pem(),
                client_key_pem: client_key.serialize_pem(),
                other_ca_pem,
            }),
        };
        let files = [
            ("ca.pem", certs.inner.ca_pem.clone()),
            ("server.pem", server_cert.pem()),
            ("server.key", server_key.serialize_pem()),
            ("client.pem", certs.inner.client_cert_pem.clone()),
            ("client.key", certs.inner.client_key_pem.clone()),
        ];
        for (name, pem) in files {
            let path = certs.dir().join(name);
            std::fs::write(&path, pem)
                .map_err(|e| TestkitError::io(format!("writing {}", path.display()), e))?;
        }
        Ok(certs)
    }

    fn dir(&self) -> &Path {
        self.inner.dir.path()
    }

    /// The CA that signed the server and client certificates (PEM).
    pub fn ca_pem(&self) -> &str {
        &self.inner.ca_pem
    }

    /// [`ca_pem`](Self::ca_pem) as a file.
    pub fn ca_file(&self) -> PathBuf {
        self.dir().join("ca.pem")
    }

    /// A CA that signed nothing here: trusting only it must fail every handshake.
    pub fn other_ca_pem(&self) -> &str {
        &self.inner.other_ca_pem
    }

    /// The client certificate (PEM), for mutual TLS.
    pub fn client_cert_pem(&self) -> &str {
        &self.inner.client_cert_pem
    }

    /// The client certificate's private key (PKCS#8 PEM).
    pub fn client_key_pem(&self) -> &str {
        &self.inner.client_key_pem
    }

    /// [`client_cert_pem`](Self::client_cert_pem) as a file.
    pub fn client_cert_file(&self) -> PathBuf {
        self.dir().join("client.pem")
    }

    /// [`client_key_pem`](Self::client_key_pem) as a file.
    pub fn client_key_file(&self) -> PathBuf {
        self.dir().join("client.key")
    }

    /// The `redis.conf` lines of a TLS server using these certificates (the ports are the
    /// server's own): `tls-auth-clients yes` when `auth_clients`, else `no`; in cluster mode,
    /// TLS on the cluster bus and on replication too.
    pub(crate) fn server_lines(&self, auth_clients: bool, cluster: bool) -> Vec<String> {
        let path = |name: &str| crate::settings::quote(&self.dir().join(name).to_string_lossy());
        let mut lines = vec![
            format!("tls-cert-file {}", path("server.pem")),
            format!("tls-key-file {}", path("server.key")),
            format!("tls-ca-cert-file {}", path("ca.pem")),
            format!(
                "tls-auth-clients {}",
                if auth_clients { "yes" } else { "no" }
            ),
            "tls-replication yes".to_string(),
        ];
        if cluster {
            lines.push("tls-cluster yes".to_string());
        }
        lines
    }
}

/// A self-signed CA: its PEM, key and parameters (to sign with).
fn ca(name: &str) -> std::result::Result<(String, KeyPair, CertificateParams), rcgen::Error> {
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params.distinguished_name.push(DnType::CommonName, name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let key = KeyPair::generate()?;
    let cert = params.self_signed(&key)?;
    Ok((cert.pem(), key, params))
}
