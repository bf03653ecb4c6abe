//! The Rust clients under test, behind one `call`: shardis, redis-rs `cluster_async`, fred,
//! and a plain redis-rs multiplexed connection (to twemproxy or to one node).

use std::time::Duration;

use fred::prelude::{ClientLike, KeysInterface};
use redis::Value;

/// A Rust client under test; cloned into every task.
#[derive(Clone)]
pub(crate) enum Peer {
    Shardis(shardis::Client),
    RedisCluster(redis::cluster_async::ClusterConnection),
    Fred(fred::prelude::Client),
    Multiplexed(redis::aio::MultiplexedConnection),
}

impl Peer {
    /// `SET key value` when `value` is given, else `GET key`; a server error is an `Err`.
    pub(crate) async fn call(&mut self, key: &[u8], value: Option<&[u8]>) -> Result<(), String> {
        let cmd = || {
            // Sized up front: growing the buffer argument by argument was ~4% of the client
            // CPU in the profile, for shardis and redis-rs alike.
            let size = 3 + key.len() + value.map_or(0, <[u8]>::len);
            let mut c = redis::Cmd::with_capacity(3, size);
            c.arg(if value.is_some() { "SET" } else { "GET" });
            c.arg(key);
            if let Some(v) = value {
                c.arg(v);
            }
            c
        };
        let reply = match self {
            Peer::Shardis(c) => c.send(&cmd()).await.map_err(|e| e.to_string())?,
            Peer::RedisCluster(c) => cmd()
                .query_async::<Value>(c)
                .await
                .map_err(|e| e.to_string())?,
            Peer::Multiplexed(c) => cmd()
                .query_async::<Value>(c)
                .await
                .map_err(|e| e.to_string())?,
            Peer::Fred(c) => {
                // Bytes keys/values, raw reply: no conversion cost beyond the protocol's.
                let key = fred::bytes::Bytes::copy_from_slice(key);
                let r = match value {
                    Some(v) => {
                        c.set::<fred::prelude::Value, _, _>(
                            key,
                            fred::bytes::Bytes::copy_from_slice(v),
                            None,
                            None,
                            false,
                        )
                        .await
                    }
                    None => c.get::<fred::prelude::Value, _>(key).await,
                };
                return r.map(|_| ()).map_err(|e| e.to_string());
            }
        };
        match reply {
            Value::ServerError(e) => Err(format!("{e:?}")),
            _ => Ok(()),
        }
    }
}

/// redis-rs connected to a cluster: one `cluster_async` connection over `seeds`; over TLS
/// (`rediss://`, rustls) trusting `ca` when given.
pub(crate) async fn connect_redis_cluster(
    seeds: &[String],
    ca: Option<&str>,
) -> Result<redis::cluster_async::ClusterConnection, String> {
    let scheme = if ca.is_some() { "rediss" } else { "redis" };
    let mut builder =
        redis::cluster::ClusterClient::builder(seeds.iter().map(|s| format!("{scheme}://{s}/")));
    if let Some(ca) = ca {
        builder = builder.certs(redis::TlsCertificates {
            client_tls: None,
            root_cert: Some(ca.as_bytes().to_vec()),
        });
    }
    builder
        .build()
        .map_err(|e| format!("redis-rs cluster client: {e}"))?
        .get_async_connection()
        .await
        .map_err(|e| format!("redis-rs cluster_async: {e}"))
}

/// fred in cluster mode, seeded with one node; over TLS (rustls) trusting `ca` when given.
pub(crate) async fn connect_fred(
    host: &str,
    port: u16,
    ca: Option<&str>,
) -> Result<fred::prelude::Client, String> {
    let mut config = fred::prelude::Config {
        server: fred::prelude::ServerConfig::new_clustered(vec![(host.to_string(), port)]),
        ..Default::default()
    };
    if let Some(ca) = ca {
        config.tls = Some(fred::types::config::TlsConnector::from(rustls_config(ca)?).into());
    }
    let client = fred::prelude::Builder::from_config(config)
        .build()
        .map_err(|e| format!("fred: {e}"))?;
    client.init().await.map_err(|e| format!("fred: {e}"))?;
    Ok(client)
}

/// A rustls client config (ring provider) trusting only the CA in `ca_pem`.
fn rustls_config(ca_pem: &str) -> Result<rustls::ClientConfig, String> {
    use rustls::pki_types::{CertificateDer, pem::PemObject};
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots
            .add(cert.map_err(|e| e.to_string())?)
            .map_err(|e| e.to_string())?;
    }
    Ok(
        rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth(),
    )
}

/// One redis-rs multiplexed connection to `addr` (a node or a proxy).
pub(crate) async fn connect_plain(addr: &str) -> Result<redis::aio::MultiplexedConnection, String> {
    // No CLIENT SETINFO: twemproxy rejects commands it does not know and closes the connection.
    let info = redis::IntoConnectionInfo::into_connection_info(format!("redis://{addr}/"))
        .map_err(|e| e.to_string())?;
    let settings = info.redis_settings().clone().set_skip_set_lib_name();
    let info = info.set_redis_settings(settings);
    let config = redis::AsyncConnectionConfig::new()
        .set_connection_timeout(Some(Duration::from_secs(2)))
        .set_response_timeout(Some(Duration::from_secs(5)));
    redis::Client::open(info)
        .map_err(|e| e.to_string())?
        .get_multiplexed_async_connection_with_config(&config)
        .await
        .map_err(|e| format!("connecting to {addr}: {e}"))
}
