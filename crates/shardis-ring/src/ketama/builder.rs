//! [`KetamaBuilder`]: validation, names, float32 point counts and MD5 points.

use super::{KetamaFlavor, KetamaRing, KetamaServer, KeyHash, point_count};
use crate::RingError;
use crate::hash::ketama_points;
use crate::index::{Continuum, MAX_NODES};

/// Builds a [`KetamaRing`].
#[derive(Debug, Clone)]
pub struct KetamaBuilder {
    flavor: KetamaFlavor,
    key_hash: KeyHash,
    hash_tag: Option<[u8; 2]>,
    servers: Vec<KetamaServer>,
}

impl KetamaBuilder {
    pub(super) fn new(flavor: KetamaFlavor) -> Self {
        let key_hash = match flavor {
            KetamaFlavor::Twemproxy => KeyHash::TwemproxyFnv1a64,
            _ => KeyHash::Md5,
        };
        KetamaBuilder {
            flavor,
            key_hash,
            hash_tag: None,
            servers: Vec::new(),
        }
    }

    /// Overrides the flavor's default key hash (twemproxy's `hash:` option).
    ///
    /// ```
    /// use shardis_ring::{KetamaFlavor, KetamaRing, KeyHash};
    ///
    /// let ring = KetamaRing::builder(KetamaFlavor::Twemproxy).key_hash(KeyHash::Md5)
    ///     .server(shardis_ring::KetamaServer::new("a", 11211, 1)).build()?;
    /// assert_eq!(ring.hash_key(b"apple"), 3195025439);
    /// # Ok::<(), shardis_ring::RingError>(())
    /// ```
    pub fn key_hash(mut self, key_hash: KeyHash) -> Self {
        self.key_hash = key_hash;
        self
    }

    /// twemproxy's `hash_tag` (e.g. `*b"{}"`); see [`crate::hash::hash_tag`].
    ///
    /// ```
    /// use shardis_ring::{KetamaFlavor, KetamaRing, KetamaServer};
    ///
    /// let ring = KetamaRing::builder(KetamaFlavor::Twemproxy).hash_tag(*b"{}")
    ///     .server(KetamaServer::new("a", 11211, 1)).build()?;
    /// assert_eq!(ring.hash_key(b"x{apple}y"), ring.hash_key(b"apple"));
    /// # Ok::<(), shardis_ring::RingError>(())
    /// ```
    pub fn hash_tag(mut self, tag: [u8; 2]) -> Self {
        self.hash_tag = Some(tag);
        self
    }

    /// Adds the next server in configuration order.
    ///
    /// ```
    /// use shardis_ring::{KetamaFlavor, KetamaRing, KetamaServer};
    ///
    /// let ring = KetamaRing::builder(KetamaFlavor::Libmemcached)
    ///     .server(KetamaServer::new("a", 11211, 1)).build()?;
    /// assert_eq!(ring.servers().len(), 1);
    /// # Ok::<(), shardis_ring::RingError>(())
    /// ```
    pub fn server(mut self, server: KetamaServer) -> Self {
        self.servers.push(server);
        self
    }

    /// Adds servers in configuration order.
    ///
    /// ```
    /// use shardis_ring::{KetamaFlavor, KetamaRing, KetamaServer};
    ///
    /// let ring = KetamaRing::builder(KetamaFlavor::Libmemcached)
    ///     .servers((1..=3).map(|i| KetamaServer::new(format!("server{i}"), 11211, 1))).build()?;
    /// assert_eq!(ring.point_count(), 480);
    /// # Ok::<(), shardis_ring::RingError>(())
    /// ```
    pub fn servers(mut self, servers: impl IntoIterator<Item = KetamaServer>) -> Self {
        self.servers.extend(servers);
        self
    }

    /// Builds the continuum: errors on no server, a zero weight, two servers with one
    /// hashed name, or more than [`MAX_NODES`] servers.
    ///
    /// ```
    /// use shardis_ring::{KetamaFlavor, KetamaRing, KetamaServer, RingError};
    ///
    /// let err = KetamaRing::builder(KetamaFlavor::Libmemcached)
    ///     .server(KetamaServer::new("a", 11211, 1)).server(KetamaServer::new("a", 11211, 2))
    ///     .build().unwrap_err();
    /// assert_eq!(err, RingError::DuplicateNode("a".into()));
    /// ```
    pub fn build(self) -> Result<KetamaRing, RingError> {
        let KetamaBuilder {
            flavor,
            key_hash,
            hash_tag,
            servers,
        } = self;
        if servers.is_empty() {
            return Err(RingError::Empty);
        }
        if servers.len() > MAX_NODES {
            return Err(RingError::TooManyNodes {
                nodes: servers.len(),
                max: MAX_NODES,
            });
        }
        let names: Vec<String> = servers.iter().map(|s| flavor.server_name(s)).collect();
        let mut sorted: Vec<&String> = names.iter().collect();
        sorted.sort_unstable();
        if let Some(w) = sorted.windows(2).find(|w| w[0] == w[1]) {
            return Err(RingError::DuplicateNode(w[0].clone()));
        }
        if let Some(s) = servers.iter().zip(&names).find(|(s, _)| s.weight == 0) {
            return Err(RingError::ZeroWeight(s.1.clone()));
        }
        let total: u64 = servers.iter().map(|s| u64::from(s.weight)).sum();
        let mut pairs = Vec::new();
        for (owner, (s, name)) in servers.iter().zip(&names).enumerate() {
            for j in 0..point_count(s.weight, total, servers.len()) / 4 {
                for p in ketama_points(format!("{name}-{j}").as_bytes()) {
                    // Config order is the owner index, so ties go to the first server.
                    pairs.push((u64::from(p) << 32 | 0xffff_ffff, owner as u16));
                }
            }
        }
        let continuum = Continuum::new(pairs)?;
        Ok(KetamaRing {
            flavor,
            key_hash,
            hash_tag,
            servers,
            names,
            continuum,
        })
    }
}
