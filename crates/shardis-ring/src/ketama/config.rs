//! Ketama configuration: flavors, key hashes, servers, and the float32 point count.

/// Which implementation's server naming (and quirks) to follow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum KetamaFlavor {
    /// libmemcached weighted ketama: name `host` if port is 11211, else `host:port`.
    Libmemcached,
    /// libmemcached with spymemcached compatibility: name `/host:port`.
    Spymemcached,
    /// twemproxy: the server's explicit name if it has one, else the libmemcached rule; an
    /// empty key hashes to 0. Default key hash: [`KeyHash::TwemproxyFnv1a64`].
    Twemproxy,
}

/// The 32-bit key hash: twemproxy's `hash:` setting (every value it accepts), or MD5 for
/// libmemcached and spymemcached.
///
/// The names are twemproxy's ([`KeyHash::name`], [`str::parse`]); each function is the one
/// in [`crate::hash`], checked against a real nutcracker's placement.
///
/// ```
/// use shardis_ring::KeyHash;
///
/// let hash: KeyHash = "md5".parse()?;
/// assert_eq!(hash, KeyHash::Md5);
/// assert_eq!(KeyHash::TwemproxyFnv1a64.name(), "fnv1a_64");
/// assert_eq!(hash.hash(b"apple"), 3195025439);
/// assert!("sha1".parse::<KeyHash>().is_err());
/// # Ok::<(), shardis_ring::RingError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum KeyHash {
    /// `md5`: MD5 word 0, little-endian ([`crate::hash::md5`]); libmemcached, spymemcached.
    Md5,
    /// `fnv1a_64`: twemproxy's 32-bit `fnv1a_64` ([`crate::hash::twemproxy_fnv1a_64`]); its
    /// default.
    TwemproxyFnv1a64,
    /// `one_at_a_time` ([`crate::hash::twemproxy_one_at_a_time`]).
    OneAtATime,
    /// `fnv1_64` ([`crate::hash::twemproxy_fnv1_64`]).
    Fnv1_64,
    /// `fnv1_32` ([`crate::hash::twemproxy_fnv1_32`]).
    Fnv1_32,
    /// `fnv1a_32` ([`crate::hash::twemproxy_fnv1a_32`]).
    Fnv1a32,
    /// `crc16`: CRC-16/ARC ([`crate::hash::twemproxy_crc16`]).
    Crc16,
    /// `crc32`: libmemcached's 15-bit CRC-32 ([`crate::hash::twemproxy_crc32`]).
    Crc32,
    /// `crc32a`: the standard CRC-32 ([`crate::hash::twemproxy_crc32a`]).
    Crc32a,
    /// `hsieh` ([`crate::hash::twemproxy_hsieh`]).
    Hsieh,
    /// `murmur`: MurmurHash2 ([`crate::hash::twemproxy_murmur`]).
    Murmur,
    /// `jenkins`: lookup3 ([`crate::hash::twemproxy_jenkins`]).
    Jenkins,
}

impl KeyHash {
    /// Every key hash, in twemproxy's order of its `hash:` values.
    pub const ALL: [KeyHash; 12] = [
        KeyHash::OneAtATime,
        KeyHash::Md5,
        KeyHash::Crc16,
        KeyHash::Crc32,
        KeyHash::Crc32a,
        KeyHash::Fnv1_64,
        KeyHash::TwemproxyFnv1a64,
        KeyHash::Fnv1_32,
        KeyHash::Fnv1a32,
        KeyHash::Hsieh,
        KeyHash::Murmur,
        KeyHash::Jenkins,
    ];

    /// twemproxy's name for it (the `hash:` value in `nutcracker.yml`).
    ///
    /// ```
    /// assert_eq!(shardis_ring::KeyHash::OneAtATime.name(), "one_at_a_time");
    /// ```
    pub fn name(self) -> &'static str {
        match self {
            KeyHash::Md5 => "md5",
            KeyHash::TwemproxyFnv1a64 => "fnv1a_64",
            KeyHash::OneAtATime => "one_at_a_time",
            KeyHash::Fnv1_64 => "fnv1_64",
            KeyHash::Fnv1_32 => "fnv1_32",
            KeyHash::Fnv1a32 => "fnv1a_32",
            KeyHash::Crc16 => "crc16",
            KeyHash::Crc32 => "crc32",
            KeyHash::Crc32a => "crc32a",
            KeyHash::Hsieh => "hsieh",
            KeyHash::Murmur => "murmur",
            KeyHash::Jenkins => "jenkins",
        }
    }

    /// The 32-bit hash of `key` (no hash tag, no empty-key rule: see
    /// [`KetamaRing::hash_key`](crate::KetamaRing::hash_key) for what a ring hashes).
    ///
    /// ```
    /// use shardis_ring::KeyHash;
    /// assert_eq!(KeyHash::TwemproxyFnv1a64.hash(b"apple"), 1488911807);
    /// assert_eq!(KeyHash::Crc32a.hash(b"123456789"), 0xcbf4_3926);
    /// ```
    pub fn hash(self, key: &[u8]) -> u32 {
        use crate::hash as h;
        match self {
            KeyHash::Md5 => h::md5(key),
            KeyHash::TwemproxyFnv1a64 => h::twemproxy_fnv1a_64(key),
            KeyHash::OneAtATime => h::twemproxy_one_at_a_time(key),
            KeyHash::Fnv1_64 => h::twemproxy_fnv1_64(key),
            KeyHash::Fnv1_32 => h::twemproxy_fnv1_32(key),
            KeyHash::Fnv1a32 => h::twemproxy_fnv1a_32(key),
            KeyHash::Crc16 => h::twemproxy_crc16(key),
            KeyHash::Crc32 => h::twemproxy_crc32(key),
            KeyHash::Crc32a => h::twemproxy_crc32a(key),
            KeyHash::Hsieh => h::twemproxy_hsieh(key),
            KeyHash::Murmur => h::twemproxy_murmur(key),
            KeyHash::Jenkins => h::twemproxy_jenkins(key),
        }
    }
}

/// twemproxy's name; see [`KeyHash::name`].
impl std::fmt::Display for KeyHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Parses twemproxy's names (`md5`, `fnv1a_64`, ...), case-insensitively; anything else is
/// [`RingError::UnknownKeyHash`](crate::RingError::UnknownKeyHash).
impl std::str::FromStr for KeyHash {
    type Err = crate::RingError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let wanted = s.trim();
        KeyHash::ALL
            .into_iter()
            .find(|h| h.name().eq_ignore_ascii_case(wanted))
            .ok_or_else(|| crate::RingError::UnknownKeyHash(wanted.to_string()))
    }
}

/// A server in configuration order: where it is, its weight, and (twemproxy) its name.
///
/// ```
/// use shardis_ring::KetamaServer;
///
/// let s = KetamaServer::new("10.0.1.1", 11211, 600).with_name("cache-1");
/// assert_eq!(s.name(), Some("cache-1"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct KetamaServer {
    /// Host as configured (never resolved; it is hashed as written).
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// Weight, at least 1.
    pub weight: u32,
    name: Option<String>,
}

impl KetamaServer {
    /// A server without an explicit name.
    ///
    /// ```
    /// let s = shardis_ring::KetamaServer::new("cache", 11211, 1);
    /// assert_eq!((s.port, s.name()), (11211, None));
    /// ```
    pub fn new(host: impl Into<String>, port: u16, weight: u32) -> Self {
        KetamaServer {
            host: host.into(),
            port,
            weight,
            name: None,
        }
    }

    /// Gives the server twemproxy's explicit name (`host:port:weight name`); other flavors
    /// ignore it.
    ///
    /// ```
    /// let s = shardis_ring::KetamaServer::new("10.0.0.1", 6379, 1).with_name("a");
    /// assert_eq!(s.name(), Some("a"));
    /// ```
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// The explicit name, if any.
    ///
    /// ```
    /// assert_eq!(shardis_ring::KetamaServer::new("h", 1, 1).name(), None);
    /// ```
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }
}

impl KetamaFlavor {
    /// The string whose labels `"{name}-{j}"` are hashed into this server's points.
    ///
    /// ```
    /// use shardis_ring::{KetamaFlavor, KetamaServer};
    ///
    /// let s = KetamaServer::new("10.0.1.1", 11211, 1);
    /// assert_eq!(KetamaFlavor::Libmemcached.server_name(&s), "10.0.1.1");
    /// assert_eq!(KetamaFlavor::Spymemcached.server_name(&s), "/10.0.1.1:11211");
    /// let t = KetamaServer::new("10.0.1.1", 6379, 1);
    /// assert_eq!(KetamaFlavor::Twemproxy.server_name(&t), "10.0.1.1:6379");
    /// assert_eq!(KetamaFlavor::Twemproxy.server_name(&t.with_name("a")), "a");
    /// ```
    pub fn server_name(self, server: &KetamaServer) -> String {
        let classic = || match server.port {
            11211 => server.host.clone(),
            port => format!("{}:{port}", server.host),
        };
        match self {
            KetamaFlavor::Libmemcached => classic(),
            KetamaFlavor::Spymemcached => format!("/{}:{}", server.host, server.port),
            KetamaFlavor::Twemproxy => server.name.clone().unwrap_or_else(classic),
        }
    }
}

/// Points given to a server of `weight` among `live` servers of total weight `total`:
/// `4 * floor(pct * 160 / 4 * live + 1e-10)` with `pct = weight / total`, all in IEEE float32
/// as libmemcached and twemproxy compute it. With equal weights this is 156, not 160, for
/// some server counts (25, 47, 50, ...).
///
/// twemproxy adds the epsilon in double and libmemcached in float; the results never differ:
/// for x >= 1 the epsilon is far below half an ulp of x, and for x < 1 the sum stays below 1.
///
/// ```
/// use shardis_ring::ketama::point_count;
///
/// assert_eq!(point_count(1, 10, 10), 160);
/// assert_eq!(point_count(1, 25, 25), 156);
/// ```
pub fn point_count(weight: u32, total: u64, live: usize) -> u32 {
    let pct = weight as f32 / total as f32;
    let k = (pct * 160.0 / 4.0 * live as f32 + 1e-10_f32).floor();
    // In a ring k <= 40 * live; for any other input `as` and the multiply saturate.
    (k as u32).saturating_mul(4)
}
