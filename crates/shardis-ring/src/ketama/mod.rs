//! A ketama-compatible ring (MD5 points) that maps keys bit-for-bit as libmemcached weighted
//! ketama, its spymemcached naming, and twemproxy do, so a Rust client can join their fleets.
//!
//! Points are `u32` in those implementations. They are stored in the shared `u64` continuum as
//! `p << 32 | 0xffff_ffff` and a key hash `h` is looked up as `h << 32`: the order and the
//! lower_bound are unchanged (`p << 32 | m >= h << 32` iff `p >= h`), and each arc is exactly
//! 2^32 times its 32-bit length, so shares stay exact.

use std::fmt;

mod builder;
mod config;

pub use builder::KetamaBuilder;
pub use config::{KetamaFlavor, KetamaServer, KeyHash, point_count};

use crate::arcs;
use crate::hash::hash_tag;
use crate::index::Continuum;

/// An immutable ketama ring; see the [module docs](self) and [`KetamaRing::builder`].
///
/// Ties between equal points go to the server first in configuration order, as libmemcached
/// (and twemproxy with glibc's stable sort).
#[derive(Clone, PartialEq, Eq)]
pub struct KetamaRing {
    flavor: KetamaFlavor,
    key_hash: KeyHash,
    hash_tag: Option<[u8; 2]>,
    servers: Vec<KetamaServer>,
    names: Vec<String>,
    continuum: Continuum,
}

impl KetamaRing {
    /// A builder for `flavor`; the key hash defaults to MD5, or FNV for twemproxy.
    ///
    /// ```
    /// use shardis_ring::{KetamaFlavor, KetamaRing, KetamaServer};
    ///
    /// let ring = KetamaRing::builder(KetamaFlavor::Libmemcached)
    ///     .server(KetamaServer::new("10.0.1.1", 11211, 600))
    ///     .server(KetamaServer::new("10.0.1.2", 11211, 300))
    ///     .build()?;
    /// assert!(ring.get(b"key").host.starts_with("10.0.1."));
    /// # Ok::<(), shardis_ring::RingError>(())
    /// ```
    pub fn builder(flavor: KetamaFlavor) -> KetamaBuilder {
        KetamaBuilder::new(flavor)
    }

    /// The 32-bit key hash this ring uses: hash tag, then twemproxy's empty key rule, then
    /// the key hash function.
    ///
    /// ```
    /// use shardis_ring::{KetamaFlavor, KetamaRing, KetamaServer};
    ///
    /// let ring = KetamaRing::builder(KetamaFlavor::Twemproxy)
    ///     .server(KetamaServer::new("a", 11211, 1)).build()?;
    /// assert_eq!(ring.hash_key(b"apple"), 1488911807);
    /// assert_eq!(ring.hash_key(b""), 0);
    /// # Ok::<(), shardis_ring::RingError>(())
    /// ```
    pub fn hash_key(&self, key: &[u8]) -> u32 {
        let key = match self.hash_tag {
            Some(tag) => hash_tag(key, tag),
            None => key,
        };
        if key.is_empty() && self.flavor == KetamaFlavor::Twemproxy {
            return 0;
        }
        self.key_hash.hash(key)
    }

    /// The server that owns `key`.
    ///
    /// ```
    /// use shardis_ring::{KetamaFlavor, KetamaRing, KetamaServer};
    ///
    /// let ring = KetamaRing::builder(KetamaFlavor::Libmemcached)
    ///     .server(KetamaServer::new("only", 11211, 1)).build()?;
    /// assert_eq!(ring.get(b"k").host, "only");
    /// # Ok::<(), shardis_ring::RingError>(())
    /// ```
    pub fn get(&self, key: &[u8]) -> &KetamaServer {
        &self.servers[self.get_index(key)]
    }

    /// Configuration index of the server that owns `key` (what libmemcached returns).
    /// A one-server pool answers 0 without hashing, as twemproxy.
    ///
    /// ```
    /// use shardis_ring::{KetamaFlavor, KetamaRing, KetamaServer};
    ///
    /// let ring = KetamaRing::builder(KetamaFlavor::Libmemcached)
    ///     .server(KetamaServer::new("a", 11211, 1)).server(KetamaServer::new("b", 11211, 1))
    ///     .build()?;
    /// assert!(ring.get_index(b"k") < 2);
    /// # Ok::<(), shardis_ring::RingError>(())
    /// ```
    pub fn get_index(&self, key: &[u8]) -> usize {
        if self.servers.len() == 1 {
            return 0;
        }
        self.get_index_by_hash(self.hash_key(key))
    }

    /// The server that owns the 32-bit key hash `hash`.
    ///
    /// ```
    /// use shardis_ring::{KetamaFlavor, KetamaRing, KetamaServer};
    ///
    /// let ring = KetamaRing::builder(KetamaFlavor::Libmemcached)
    ///     .server(KetamaServer::new("a", 11211, 1)).build()?;
    /// assert_eq!(ring.get_by_hash(42).host, "a");
    /// # Ok::<(), shardis_ring::RingError>(())
    /// ```
    #[inline]
    pub fn get_by_hash(&self, hash: u32) -> &KetamaServer {
        &self.servers[self.get_index_by_hash(hash)]
    }

    /// Configuration index of the owner of the 32-bit key hash `hash`.
    ///
    /// ```
    /// use shardis_ring::{KetamaFlavor, KetamaRing, KetamaServer};
    ///
    /// let ring = KetamaRing::builder(KetamaFlavor::Libmemcached)
    ///     .server(KetamaServer::new("a", 11211, 1)).build()?;
    /// assert_eq!(ring.get_index_by_hash(u32::MAX), 0);
    /// # Ok::<(), shardis_ring::RingError>(())
    /// ```
    #[inline]
    pub fn get_index_by_hash(&self, hash: u32) -> usize {
        self.continuum.owner(u64::from(hash) << 32)
    }

    /// The continuum point chosen for `hash`: the first point `>= hash`, or the first point
    /// if there is none (libmemcached's `hash2`).
    ///
    /// ```
    /// use shardis_ring::{KetamaFlavor, KetamaRing, KetamaServer};
    ///
    /// let ring = KetamaRing::builder(KetamaFlavor::Libmemcached)
    ///     .server(KetamaServer::new("a", 11211, 1)).build()?;
    /// let first = ring.points().next().unwrap().0;
    /// assert_eq!(ring.point_by_hash(0), first);
    /// # Ok::<(), shardis_ring::RingError>(())
    /// ```
    pub fn point_by_hash(&self, hash: u32) -> u32 {
        let i = self.continuum.position(u64::from(hash) << 32);
        self.continuum
            .points()
            .get(i)
            .map_or(0, |&p| (p >> 32) as u32)
    }

    /// Servers in configuration order.
    ///
    /// ```
    /// use shardis_ring::{KetamaFlavor, KetamaRing, KetamaServer};
    ///
    /// let ring = KetamaRing::builder(KetamaFlavor::Libmemcached)
    ///     .server(KetamaServer::new("a", 11211, 1)).build()?;
    /// assert_eq!(ring.servers()[0].host, "a");
    /// # Ok::<(), shardis_ring::RingError>(())
    /// ```
    pub fn servers(&self) -> &[KetamaServer] {
        &self.servers
    }

    /// The hashed name of server `index` (see [`KetamaFlavor::server_name`]).
    ///
    /// ```
    /// use shardis_ring::{KetamaFlavor, KetamaRing, KetamaServer};
    ///
    /// let ring = KetamaRing::builder(KetamaFlavor::Spymemcached)
    ///     .server(KetamaServer::new("a", 11211, 1)).build()?;
    /// assert_eq!(ring.server_name(0), Some("/a:11211"));
    /// # Ok::<(), shardis_ring::RingError>(())
    /// ```
    pub fn server_name(&self, index: usize) -> Option<&str> {
        self.names.get(index).map(String::as_str)
    }

    /// The key hash this ring uses.
    ///
    /// ```
    /// use shardis_ring::{KetamaFlavor, KetamaRing, KetamaServer, KeyHash};
    ///
    /// let ring = KetamaRing::builder(KetamaFlavor::Twemproxy)
    ///     .server(KetamaServer::new("a", 11211, 1)).build()?;
    /// assert_eq!(ring.key_hash(), KeyHash::TwemproxyFnv1a64);
    /// # Ok::<(), shardis_ring::RingError>(())
    /// ```
    pub fn key_hash(&self) -> KeyHash {
        self.key_hash
    }

    /// The hash tag this ring applies, if any.
    ///
    /// ```
    /// use shardis_ring::{KetamaFlavor, KetamaRing, KetamaServer};
    ///
    /// let ring = KetamaRing::builder(KetamaFlavor::Twemproxy).hash_tag(*b"{}")
    ///     .server(KetamaServer::new("a", 11211, 1)).build()?;
    /// assert_eq!(ring.hash_tag(), Some(*b"{}"));
    /// # Ok::<(), shardis_ring::RingError>(())
    /// ```
    pub fn hash_tag(&self) -> Option<[u8; 2]> {
        self.hash_tag
    }

    /// Number of points on the continuum.
    ///
    /// ```
    /// use shardis_ring::{KetamaFlavor, KetamaRing, KetamaServer};
    ///
    /// let ring = KetamaRing::builder(KetamaFlavor::Libmemcached)
    ///     .server(KetamaServer::new("a", 11211, 1)).build()?;
    /// assert_eq!(ring.point_count(), 160);
    /// # Ok::<(), shardis_ring::RingError>(())
    /// ```
    pub fn point_count(&self) -> usize {
        self.continuum.points().len()
    }

    /// `(point, server index)` in continuum order; equal points list the winner first.
    ///
    /// ```
    /// use shardis_ring::{KetamaFlavor, KetamaRing, KetamaServer};
    ///
    /// let ring = KetamaRing::builder(KetamaFlavor::Libmemcached)
    ///     .server(KetamaServer::new("a", 11211, 1)).build()?;
    /// assert!(ring.points().all(|(_, s)| s == 0));
    /// # Ok::<(), shardis_ring::RingError>(())
    /// ```
    pub fn points(&self) -> impl ExactSizeIterator<Item = (u32, usize)> + '_ {
        let owners = self.continuum.owners().iter();
        self.continuum
            .points()
            .iter()
            .zip(owners)
            .map(|(&p, &o)| ((p >> 32) as u32, usize::from(o)))
    }

    /// Exact 32-bit arc length owned by each server (configuration order); sums to 2^32.
    ///
    /// ```
    /// use shardis_ring::{KetamaFlavor, KetamaRing, KetamaServer};
    ///
    /// let ring = KetamaRing::builder(KetamaFlavor::Libmemcached)
    ///     .server(KetamaServer::new("a", 11211, 1)).server(KetamaServer::new("b", 11211, 1))
    ///     .build()?;
    /// assert_eq!(ring.arc_lengths().iter().sum::<u64>(), 1 << 32);
    /// # Ok::<(), shardis_ring::RingError>(())
    /// ```
    pub fn arc_lengths(&self) -> Vec<u64> {
        let arcs = arcs::arc_lengths(&self.continuum, self.servers.len());
        arcs.into_iter().map(|a| (a >> 32) as u64).collect()
    }

    /// Exact fraction of the 32-bit key space whose server (matched by hashed name) differs
    /// between `a` and `b`.
    ///
    /// ```
    /// use shardis_ring::{KetamaFlavor, KetamaRing, KetamaServer};
    ///
    /// let ring = |n: usize| KetamaRing::builder(KetamaFlavor::Twemproxy)
    ///     .servers((0..n).map(|i| KetamaServer::new(format!("s{i}"), 11211, 1))).build();
    /// let f = KetamaRing::moved_fraction(&ring(101)?, &ring(100)?);
    /// assert!(f > 0.03, "float32 point counts move far more than 1/101: {f}");
    /// # Ok::<(), shardis_ring::RingError>(())
    /// ```
    pub fn moved_fraction(a: &KetamaRing, b: &KetamaRing) -> f64 {
        let in_b: std::collections::HashMap<&str, usize> = b
            .names
            .iter()
            .enumerate()
            .map(|(i, n)| (n.as_str(), i))
            .collect();
        let same: Vec<Option<usize>> = a
            .names
            .iter()
            .map(|n| in_b.get(n.as_str()).copied())
            .collect();
        let mut moved = 0u128;
        arcs::segments(&a.continuum, &b.continuum, |oa, ob, len| {
            if same.get(oa).copied().flatten() != Some(ob) {
                moved += len;
            }
        });
        moved as f64 / arcs::HASH_SPACE as f64
    }

    /// Heap bytes of the continuum (8 B points, 2 B owners, bucket index) and server table.
    ///
    /// ```
    /// use shardis_ring::{KetamaFlavor, KetamaRing, KetamaServer};
    ///
    /// let ring = KetamaRing::builder(KetamaFlavor::Libmemcached)
    ///     .server(KetamaServer::new("a", 11211, 1)).build()?;
    /// assert!(ring.memory_bytes() >= 160 * 10);
    /// # Ok::<(), shardis_ring::RingError>(())
    /// ```
    pub fn memory_bytes(&self) -> usize {
        let servers: usize = self
            .servers
            .iter()
            .zip(&self.names)
            .map(|(s, n)| size_of::<KetamaServer>() + size_of::<String>() + s.host.len() + n.len())
            .sum();
        self.continuum.memory_bytes() + servers
    }
}

/// A summary instead of every point.
impl fmt::Debug for KetamaRing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KetamaRing")
            .field("flavor", &self.flavor)
            .field("key_hash", &self.key_hash)
            .field("hash_tag", &self.hash_tag)
            .field("servers", &self.servers)
            .field("points", &self.point_count())
            .finish()
    }
}
