//! The cache's one error type.

use std::sync::Arc;

/// A loader's error, shared by every caller waiting on the same load.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// What can go wrong in a cache call. Cheap to clone: one failed load is handed to every
/// caller that waited for it.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The loader (your database call) failed, and no stale value could be served in its place.
    #[error("loader failed: {0}")]
    Load(Arc<dyn std::error::Error + Send + Sync + 'static>),
    /// Redis failed and the cache is configured not to fall back to the loader
    /// ([`RedisDown::Fail`](crate::RedisDown::Fail)), or a write had to reach Redis.
    #[error("redis: {0}")]
    Redis(Arc<shardis::Error>),
    /// Redis answered with an error reply (for example to a script).
    #[error("redis replied with an error: {0}")]
    Server(String),
    /// Redis answered with a reply of an unexpected shape.
    #[error("unexpected reply from redis: {0}")]
    Reply(String),
    /// The value could not be encoded with the cache's codec.
    #[error("value does not encode: {0}")]
    Encode(String),
    /// The key is cached as absent (negative caching) or the loader found nothing, in a call
    /// that needs a value ([`Cache::get_or_load`](crate::Cache::get_or_load)).
    #[error("not found")]
    NotFound,
    /// Another process held the fill lock for longer than the configured wait and the policy
    /// is [`LockTimeout::Fail`](crate::LockTimeout::Fail).
    #[error("waited {0:?} for another process's fill of this key")]
    LockTimeout(std::time::Duration),
    /// The load task panicked or was cancelled by the runtime shutting down.
    #[error("load aborted: {0}")]
    Aborted(String),
    /// Write-through: the database write succeeded but the cache could not be updated within
    /// the write deadline. `invalidated` says whether the key was invalidated instead (so
    /// readers load the new value); if not, readers may see the previous value until its TTL
    /// ends.
    #[error("saved to the database; cache write failed ({write}); key invalidated: {invalidated}")]
    WriteThrough {
        /// Why the cache write failed.
        write: String,
        /// Whether the key was invalidated instead.
        invalidated: bool,
    },
    /// Write-behind: the partition's backlog (changes the sink has not acknowledged) is at its
    /// bound. Nothing was queued or stored; retry later or slow down.
    #[error(
        "write-behind backlog of partition {partition} is full ({backlog} of {bound}) after waiting {waited:?}"
    )]
    Backpressure {
        /// The partition (stream) of the key.
        partition: u32,
        /// Its backlog when the write was refused.
        backlog: u64,
        /// Its bound.
        bound: u64,
        /// How long the writer waited for room.
        waited: std::time::Duration,
    },
    /// Write-behind: the change was queued (and the cache updated) but fewer replicas than
    /// asked confirmed it before the timeout: a failover now could lose it.
    #[error("write-behind change queued, but {got} of {wanted} replicas confirmed it")]
    NotReplicated {
        /// Replicas asked for.
        wanted: u32,
        /// Replicas that confirmed.
        got: u32,
    },
    /// Write-behind: the change was queued (it will reach the sink) but the cache could not be
    /// updated within the write deadline. `invalidated` says whether the key was invalidated
    /// instead (so readers load the new value); if not, readers may see the previous value
    /// until its TTL ends or the next write.
    #[error(
        "write-behind change queued; cache write failed ({cache_write}); key invalidated: {invalidated}"
    )]
    Queued {
        /// Why the cache write failed.
        cache_write: String,
        /// Whether the key was invalidated instead.
        invalidated: bool,
    },
    /// The builder's settings are not usable.
    #[error("invalid cache configuration: {0}")]
    Config(String),
}

impl Error {
    pub(crate) fn load(e: BoxError) -> Error {
        Error::Load(Arc::from(e))
    }
}

impl From<shardis::Error> for Error {
    fn from(e: shardis::Error) -> Self {
        Error::Redis(Arc::new(e))
    }
}

impl From<redis::RedisError> for Error {
    fn from(e: redis::RedisError) -> Self {
        Error::Server(e.to_string())
    }
}

/// Shorthand for `Result<T, shardis_cache::Error>`.
pub type Result<T, E = Error> = std::result::Result<T, E>;
