//! Automatic warming from the fleet's hot ids ([`Builder::hot_ids`](crate::Builder::hot_ids)):
//! reads of ids are sampled into a [`Detector`]; a background task ticks it, publishes the ids
//! it finds hot to the namespace's hot set ([`Cache::publish_hot`]) every `publish_every`, and
//! once L1 first becomes active warms it with the fleet's top ids ([`Cache::warm_l1`]).
//!
//! The request path pays one thread-local countdown per read (`should_sample`); only a sampled
//! read hashes its id and records it. The task holds the cache weakly: it ends once the last
//! [`Cache`] clone is dropped.

use std::sync::Weak;
use std::time::{Duration, Instant};

use serde::Serialize;
use serde::de::DeserializeOwned;
use shardis_hotkey::{Detector, DetectorConfig, HotKey, key_hash, sampler};

use crate::cache::{Cache, Inner};

/// Settings of automatic L1 warming from the fleet's hot ids; see
/// [`Builder::hot_ids`](crate::Builder::hot_ids).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HotIds {
    /// How often this process adds the ids it reads most to the namespace's hot set in Redis
    /// (default 10 s). Each publication adds, per hot id, the reads it stood for since the
    /// previous one.
    pub publish_every: Duration,
    /// How many of the fleet's hottest ids are loaded into L1 once it first becomes active
    /// (default 100; 0 publishes without warming).
    pub warm_top: usize,
}

impl Default for HotIds {
    fn default() -> Self {
        HotIds {
            publish_every: Duration::from_secs(10),
            warm_top: 100,
        }
    }
}

/// How often the detector is ticked (and the task looks at L1 and the publish interval).
const TICK: Duration = Duration::from_millis(250);

/// The detector's settings for hot ids.
///
/// An id counts as hot from 0.1% of this process's reads: the namespace's hot set keeps 1,000
/// ids, and at most 1,000 ids can each take 0.1%, so every id that could earn a place there
/// is published, while the long tail (each id a tiny share) stays out of Redis. Space-Saving
/// counts any id above `1/capacity` of a table's samples per tick for sure, so the capacity
/// is twice `1/0.001`. The window is a few seconds, longer than the detector's default: warming
/// wants what stays hot, not a one-second burst.
pub(crate) fn detector_config() -> DetectorConfig {
    DetectorConfig {
        max_tracked: 4096,
        max_hot: 1000,
        ..DetectorConfig::default()
    }
    .with_hot_share(0.001)
    .with_tables(4, 2048)
    .with_window(Duration::from_secs(5))
}

/// The sampled record of reads, owned by a cache with hot ids on.
pub(crate) struct HotReads {
    detector: Detector,
    /// The detector's sampling rate, read on every read.
    every: u32,
}

impl HotReads {
    pub(crate) fn new() -> Self {
        let detector = Detector::new(detector_config());
        let every = detector.config().sample_every;
        HotReads { detector, every }
    }

    /// A read of `id`: sampled first (a thread-local countdown), hashed only when sampled.
    #[inline]
    pub(crate) fn read(&self, id: &str) {
        if sampler::should_sample(self.every) {
            self.detector
                .record_sampled(key_hash(id.as_bytes()), id.as_bytes());
        }
    }
}

/// What to publish: each hot id with the reads it stood for over `elapsed` (its estimated rate
/// times the time), ids that are not text and zero weights left out.
pub(crate) fn weights(hot: &[HotKey], elapsed: Duration) -> Vec<(String, f64)> {
    let secs = elapsed.as_secs_f64();
    hot.iter()
        .filter_map(|h| {
            let weight = h.rate_per_sec * secs;
            let id = std::str::from_utf8(&h.key).ok()?;
            (weight.is_finite() && weight > 0.0).then(|| (id.to_string(), weight))
        })
        .collect()
}

/// Starts the task of a cache with hot ids on. Needs a tokio runtime (the builder checked: L1
/// is on, and its feed started).
pub(crate) fn spawn_hot_task<V>(inner: Weak<Inner<V>>, options: HotIds)
where
    V: Serialize + DeserializeOwned + Clone + Send + Sync + 'static,
{
    tokio::spawn(run(inner, options));
}

async fn run<V>(inner: Weak<Inner<V>>, options: HotIds)
where
    V: Serialize + DeserializeOwned + Clone + Send + Sync + 'static,
{
    let mut tick = tokio::time::interval(TICK.min(options.publish_every));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_publish = Instant::now();
    // Warming is tried once L1 is active; after a failure, again a publish interval later.
    let mut warm_at = (options.warm_top > 0).then(Instant::now);
    loop {
        tick.tick().await;
        // Held only for this round: the cache's last clone going ends the task.
        let Some(inner) = inner.upgrade() else {
            return;
        };
        let cache = Cache { inner };
        let Some(hot) = &cache.inner.hot else {
            return;
        };
        let now = Instant::now();
        hot.detector.tick(now);
        if let Some(at) = warm_at
            && now >= at
            && cache.l1_active()
        {
            warm_at = warm(&cache, options.warm_top)
                .await
                .then_some(now + options.publish_every);
        }
        let elapsed = now.saturating_duration_since(last_publish);
        if elapsed >= options.publish_every {
            last_publish = now;
            publish(&cache, &weights(&hot.detector.hot_keys(), elapsed)).await;
        }
    }
}

/// Loads the fleet's top ids into L1; `true` if it must be tried again.
async fn warm<V>(cache: &Cache<V>, top: usize) -> bool
where
    V: Serialize + DeserializeOwned + Clone + Send + Sync + 'static,
{
    match cache.warm_l1(top).await {
        Ok(warmed) => {
            cache.inner.m.l1_warmed.add(warmed as u64);
            tracing::debug!(namespace = %cache.inner.cfg.namespace, warmed, "L1 warmed from the fleet's hot ids");
            false
        }
        Err(error) => {
            tracing::warn!(%error, namespace = %cache.inner.cfg.namespace, "L1 not warmed from the fleet's hot ids; retrying");
            true
        }
    }
}

async fn publish<V>(cache: &Cache<V>, ids: &[(String, f64)])
where
    V: Serialize + DeserializeOwned + Clone + Send + Sync + 'static,
{
    if ids.is_empty() {
        return;
    }
    match cache
        .publish_hot(ids.iter().map(|(id, w)| (id.as_str(), *w)))
        .await
    {
        Ok(_) => cache.inner.m.hot_ids_published.add(ids.len() as u64),
        Err(error) => {
            cache.inner.m.hot_publish_failures.inc();
            tracing::warn!(%error, namespace = %cache.inner.cfg.namespace, ids = ids.len(), "hot ids not published; trying again at the next interval");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_with_a_tenth_of_a_percent_of_reads_are_hot_and_the_tail_is_not() {
        let reads = HotReads::new();
        let t0 = Instant::now();
        // 40,000 reads per 250 ms tick: "big" takes 1%, "small" 0.2%, and 4,999 other ids
        // share the rest evenly (0.02% each).
        for tick in 1..=20u32 {
            for i in 0..40_000u32 {
                let id = match i % 1000 {
                    0..=9 => "big".to_string(),
                    10 | 11 => "small".to_string(),
                    _ => format!("tail:{}", i % 4999),
                };
                reads.read(&id);
            }
            reads.detector.tick(t0 + TICK * tick);
        }
        let hot = reads.detector.hot_keys();
        let names: Vec<&[u8]> = hot.iter().map(|h| h.key.as_slice()).collect();
        assert_eq!(names.first(), Some(&&b"big"[..]), "{names:?}");
        assert!(names.contains(&&b"small"[..]), "{names:?}");
        assert!(!names.iter().any(|n| n.starts_with(b"tail:")), "{names:?}");
        // 40,000 reads per 250 ms are 160,000/s; "big" is 1% of them.
        let big = &hot[0];
        assert!(
            (800.0..3200.0).contains(&big.rate_per_sec),
            "{}",
            big.rate_per_sec
        );
    }

    #[test]
    fn weights_are_the_reads_each_id_stood_for_since_the_last_publish() {
        let hot = [
            HotKey {
                key: b"a".to_vec(),
                rate_per_sec: 100.0,
                declared: false,
            },
            HotKey {
                key: b"idle".to_vec(),
                rate_per_sec: 0.0,
                declared: false,
            },
            HotKey {
                key: vec![0xff, 0xfe],
                rate_per_sec: 5.0,
                declared: false,
            },
        ];
        assert_eq!(
            weights(&hot, Duration::from_millis(2500)),
            vec![("a".to_string(), 250.0)]
        );
        assert!(weights(&hot, Duration::ZERO).is_empty());
    }
}
