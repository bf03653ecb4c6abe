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

/// The 32-bit key hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum KeyHash {
    /// MD5 word 0, little-endian ([`crate::hash::md5`]); libmemcached, spymemcached.
    Md5,
    /// twemproxy's 32-bit `fnv1a_64` ([`crate::hash::twemproxy_fnv1a_64`]); its default.
    TwemproxyFnv1a64,
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
