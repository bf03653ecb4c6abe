//! Warming a new process's L1 from the fleet's hot keys: processes publish the ids they find
//! hot to a small sorted set per namespace (`{shardis-cache:hot:<ns>}`), whose scores decay
//! (halved every `half_life`, applied lazily by the script that adds to it) and which keeps
//! only the top entries; a process starting up reads the top N and loads them into its L1.

use std::fmt::Display;
use std::time::Duration;

use redis::Value;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::cache::{Cache, now_ms};
use crate::error::{Error, Result};

/// Adds weights to ids in the decaying hot set. KEYS[1]: the set; ARGV: the time key (same
/// hash tag), now (ms), half-life (ms), entries kept, then id/weight pairs.
const PUBLISH: &str = r"
local z, t = KEYS[1], ARGV[1]
local now, half, keep = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local last = tonumber(redis.call('GET', t) or ARGV[2])
local f = 0.5 ^ ((now - last) / half)
if f < 0.999 then
  local all = redis.call('ZRANGE', z, 0, -1, 'WITHSCORES')
  for i = 1, #all, 2 do redis.call('ZADD', z, tonumber(all[i + 1]) * f, all[i]) end
  redis.call('SET', t, ARGV[2])
elseif not redis.call('GET', t) then
  redis.call('SET', t, ARGV[2])
end
for i = 5, #ARGV, 2 do redis.call('ZINCRBY', z, ARGV[i + 1], ARGV[i]) end
redis.call('ZREMRANGEBYRANK', z, 0, -(keep + 1))
return redis.call('ZCARD', z)
";

/// How fast published hotness fades, and how many ids the set keeps.
const HALF_LIFE: Duration = Duration::from_secs(600);
const KEEP: usize = 1000;

fn hot_key(namespace: &str) -> String {
    format!("{{shardis-cache:hot:{namespace}}}")
}

impl<V> Cache<V>
where
    V: Serialize + DeserializeOwned + Clone + Send + Sync + 'static,
{
    /// Adds `weight` (e.g. hits seen since the last call) to each id in the namespace's hot
    /// set, a sorted set in Redis whose scores halve every 10 minutes and which keeps the top
    /// 1,000 ids. Returns the set's size. A process starting up loads the top of it into its
    /// L1 with [`warm_l1`](Self::warm_l1).
    ///
    /// ```no_run
    /// # async fn run(cache: shardis_cache::Cache<String>) -> Result<(), shardis_cache::Error> {
    /// cache.publish_hot([("user:1", 120.0), ("user:7", 45.0)]).await?;
    /// # Ok(()) }
    /// ```
    pub async fn publish_hot<I, K>(&self, ids: I) -> Result<u64>
    where
        I: IntoIterator<Item = (K, f64)>,
        K: Display,
    {
        let set = hot_key(&self.inner.cfg.namespace);
        let mut cmd = redis::cmd("EVAL");
        cmd.arg(PUBLISH)
            .arg(1)
            .arg(&set)
            .arg(format!("{set}:t"))
            .arg(now_ms())
            .arg(HALF_LIFE.as_millis() as u64)
            .arg(KEEP);
        for (id, weight) in ids {
            if weight.is_finite() && weight > 0.0 {
                cmd.arg(id.to_string()).arg(weight);
            }
        }
        match self.inner.eval(&cmd).await? {
            Value::Int(n) => Ok(n.max(0) as u64),
            other => Err(Error::Reply(format!("publish_hot: {other:?}"))),
        }
    }

    /// Loads the `top` hottest ids of the namespace's hot set (see
    /// [`publish_hot`](Self::publish_hot)) from Redis into this process's L1, so its first
    /// reads of them are local. Call it once L1 is active ([`l1_active`](Self::l1_active)):
    /// values read before are not kept. Returns how many ids had a value in Redis.
    ///
    /// ```no_run
    /// # async fn run(cache: shardis_cache::Cache<String>) -> Result<(), shardis_cache::Error> {
    /// let warmed = cache.warm_l1(500).await?;
    /// # Ok(()) }
    /// ```
    pub async fn warm_l1(&self, top: usize) -> Result<usize> {
        if top == 0 {
            return Ok(0);
        }
        let set = hot_key(&self.inner.cfg.namespace);
        let ids: Vec<String> = match self
            .inner
            .client
            .send(
                redis::cmd("ZRANGE")
                    .arg(&set)
                    .arg(0)
                    .arg(top - 1)
                    .arg("REV"),
            )
            .await?
        {
            Value::Array(items) => items
                .into_iter()
                .filter_map(|v| match v {
                    Value::BulkString(b) => String::from_utf8(b).ok(),
                    _ => None,
                })
                .collect(),
            other => return Err(Error::Reply(format!("ZRANGE of the hot set: {other:?}"))),
        };
        let mut found = 0;
        for id in ids {
            // Past the recording of reads: warming is not this process's traffic.
            if Box::pin(self.get_slow(&id)).await?.is_some() {
                found += 1;
            }
        }
        Ok(found)
    }
}
