//! Batch reads, write-through and warming.

use std::collections::HashMap;
use std::fmt::Display;
use std::future::Future;
use std::hash::Hash;
use std::sync::Arc;
use std::time::{Duration, Instant};

use redis::Value;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tracing::Instrument;

use crate::cache::{Cache, Inner, Keys, now_ms};
use crate::error::{BoxError, Error, Result};
use crate::scripts;

/// How [`Cache::warm`] paces itself and reports.
#[derive(Clone, Default)]
pub struct WarmOptions {
    /// Ids per loader call and per pipelined store (default 100).
    pub batch_size: Option<usize>,
    /// At most this many ids per second (default: unlimited).
    pub rate_per_sec: Option<f64>,
    /// Called after each batch.
    pub progress: Option<Arc<dyn Fn(WarmProgress) + Send + Sync>>,
}

impl std::fmt::Debug for WarmOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WarmOptions")
            .field("batch_size", &self.batch_size)
            .field("rate_per_sec", &self.rate_per_sec)
            .field("progress", &self.progress.is_some())
            .finish()
    }
}

/// Progress of a [`Cache::warm`], after each batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WarmProgress {
    /// Ids handled so far (stored or not).
    pub done: usize,
    /// Ids in total.
    pub total: usize,
    /// Values stored so far.
    pub stored: usize,
}

/// What a [`Cache::warm`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct WarmReport {
    /// Ids asked for.
    pub requested: usize,
    /// Values (or not-founds, with negative caching) stored.
    pub stored: usize,
    /// Ids the loader returned nothing for (and not cached, without negative caching).
    pub not_found: usize,
    /// Values not stored because the key was invalidated meanwhile.
    pub superseded: usize,
    /// Batches whose loader call or store failed.
    pub failed_batches: usize,
}

impl<V> Cache<V>
where
    V: Serialize + DeserializeOwned + Clone + Send + Sync + 'static,
{
    /// The values of `ids`, in order (`None`: not found). Hits come from one pipelined read;
    /// all misses are loaded with **one** `loader` call (which returns what it found, keyed by
    /// id) and stored in one pipeline, each under its lease (a key invalidated meanwhile is not
    /// stored). Stale values are served when the loader fails. Batch loads do not take the
    /// fill lock and do not join single-key flights.
    ///
    /// ```no_run
    /// # use std::collections::HashMap;
    /// # async fn run(cache: shardis_cache::Cache<String>) -> Result<(), shardis_cache::Error> {
    /// let names = cache
    ///     .get_many_or_load(&[1u64, 2, 3], |missing: Vec<u64>| async move {
    ///         Ok::<_, std::io::Error>(missing.into_iter().map(|id| (id, format!("user {id}"))).collect::<HashMap<_, _>>())
    ///     })
    ///     .await?;
    /// assert_eq!(names.len(), 3);
    /// # Ok(()) }
    /// ```
    pub async fn get_many_or_load<K, F, Fut, E>(
        &self,
        ids: &[K],
        loader: F,
    ) -> Result<Vec<Option<V>>>
    where
        K: Display + Hash + Eq + Clone,
        F: FnOnce(Vec<K>) -> Fut,
        Fut: Future<Output = std::result::Result<HashMap<K, V>, E>>,
        E: Into<BoxError>,
    {
        let span = tracing::debug_span!(
            "shardis_cache.get_many",
            namespace = %self.inner.cfg.namespace,
            ids = ids.len()
        );
        self.get_many_inner(ids, loader).instrument(span).await
    }

    async fn get_many_inner<K, F, Fut, E>(&self, ids: &[K], loader: F) -> Result<Vec<Option<V>>>
    where
        K: Display + Hash + Eq + Clone,
        F: FnOnce(Vec<K>) -> Fut,
        Fut: Future<Output = std::result::Result<HashMap<K, V>, E>>,
        E: Into<BoxError>,
    {
        let inner = &self.inner;
        let mut out: Vec<Option<V>> = vec![None; ids.len()];
        if ids.is_empty() {
            return Ok(out);
        }
        let keys = match inner.ns_version().await {
            Ok(v) => Some(
                ids.iter()
                    .map(|id| {
                        let id = id.to_string();
                        if let Some(hot) = &inner.hot {
                            hot.read(&id);
                        }
                        Keys::new(&inner.cfg.namespace, v, &id)
                    })
                    .collect::<Vec<_>>(),
            ),
            Err(e) => {
                inner.redis_failed(&e)?;
                None
            }
        };
        let replies = match &keys {
            Some(keys) => {
                let mut pipe = redis::pipe();
                for k in keys {
                    pipe.cmd("GET").arg(&k.value);
                }
                match inner.pipeline(&pipe).await {
                    Ok(r) if r.len() == keys.len() => Some(r),
                    Ok(r) => {
                        inner.redis_failed(&Error::Reply(format!(
                            "{} replies to {} GETs",
                            r.len(),
                            keys.len()
                        )))?;
                        None
                    }
                    Err(e) => {
                        inner.redis_failed(&e)?;
                        None
                    }
                }
            }
            None => None,
        };
        let (Some(keys), Some(replies)) = (keys, replies) else {
            // Redis is down: one loader call, nothing stored.
            inner.m.misses.add(ids.len() as u64);
            inner.m.degraded_loads.inc();
            let found = inner.call_many(ids.to_vec(), loader).await?;
            for (slot, id) in out.iter_mut().zip(ids) {
                *slot = found.get(id).cloned();
            }
            return Ok(out);
        };
        let now = now_ms();
        let mut missing: Vec<usize> = Vec::new();
        let mut stale: HashMap<usize, Option<V>> = HashMap::new();
        for (i, reply) in replies.into_iter().enumerate() {
            match inner.decode_reply(&keys[i], reply) {
                Some((meta, value)) if now < meta.soft_expiry_ms => {
                    if value.is_some() {
                        inner.m.hits.inc();
                    } else {
                        inner.m.negative_hits.inc();
                    }
                    out[i] = value;
                }
                Some((_, value)) => {
                    stale.insert(i, value);
                    missing.push(i);
                }
                None => missing.push(i),
            }
        }
        if missing.is_empty() {
            return Ok(out);
        }
        inner.m.misses.add(missing.len() as u64);
        // Read each missing key's version (its lease) before loading.
        let versions = inner.versions(&keys, &missing).await;
        let wanted: Vec<K> = missing.iter().map(|&i| ids[i].clone()).collect();
        let found = match inner.call_many(wanted, loader).await {
            Ok(found) => found,
            Err(e) => {
                // Fail-safe: stale values where there are some, else the error.
                for &i in &missing {
                    match stale.remove(&i) {
                        Some(v) => {
                            inner.m.stale_served.inc();
                            out[i] = v;
                        }
                        None => return Err(e),
                    }
                }
                return Ok(out);
            }
        };
        for &i in &missing {
            out[i] = found.get(&ids[i]).cloned();
        }
        if let Ok(versions) = versions {
            let entries: Vec<(usize, Option<&V>)> =
                missing.iter().map(|&i| (i, out[i].as_ref())).collect();
            inner.store_many(&keys, &versions, &entries).await;
        }
        Ok(out)
    }

    /// Write-through: saves `value` with `save` (your database write) first; then writes it
    /// to the cache, bumping the key's version so no fill that began earlier can overwrite it.
    /// If the cache write fails it is retried, then the key is invalidated instead, within the
    /// [write deadline](crate::Builder::write_deadline); either failure is reported as
    /// [`Error::WriteThrough`] (the database write stands). A failed `save` is
    /// [`Error::Load`] and leaves the cache untouched.
    ///
    /// ```no_run
    /// # async fn run(cache: shardis_cache::Cache<String>) -> Result<(), shardis_cache::Error> {
    /// cache
    ///     .set_through("session:9", "token".to_string(), |v| async move {
    ///         // db.save(&v).await
    ///         Ok::<_, std::io::Error>(())
    ///     })
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub async fn set_through<K, F, Fut, E>(&self, id: &K, value: V, save: F) -> Result<()>
    where
        K: Display + ?Sized,
        F: FnOnce(V) -> Fut,
        Fut: Future<Output = std::result::Result<(), E>>,
        E: Into<BoxError>,
    {
        let inner = &self.inner;
        let span = tracing::debug_span!("shardis_cache.set_through", namespace = %inner.cfg.namespace, id = %id);
        async move {
            save(value.clone())
                .await
                .map_err(|e| Error::load(e.into()))?;
            let deadline = Instant::now() + inner.cfg.write_deadline;
            let (fresh, hard) = inner.ttls(false);
            let bytes = inner.envelope(Some(&value), fresh, 0)?;
            let mut pause = Duration::from_millis(10);
            let mut last_error = String::new();
            let mut keys = None;
            // Up to three write attempts, then invalidation until the deadline.
            for _ in 0..3 {
                match inner.ns_version().await {
                    Ok(v) => {
                        let k = Keys::new(&inner.cfg.namespace, v, id);
                        inner.forget_flight(&k);
                        match inner
                            .eval(&scripts::write(&k, &bytes, hard, inner.cfg.lease_ttl))
                            .await
                        {
                            Ok(_) => {
                                inner.forget_flight(&k);
                                return Ok(());
                            }
                            Err(e) => last_error = e.to_string(),
                        }
                        keys = Some(k);
                    }
                    Err(e) => last_error = e.to_string(),
                }
                inner.m.redis_errors.inc();
                if Instant::now() + pause >= deadline {
                    break;
                }
                tokio::time::sleep(pause).await;
                pause *= 2;
            }
            tracing::warn!(error = %last_error, "write-through: cache write failed; invalidating");
            let mut invalidated = false;
            loop {
                if let Some(k) = &keys
                    && inner.invalidate_keys(k).await.is_ok()
                {
                    invalidated = true;
                    break;
                }
                if keys.is_none()
                    && let Ok(v) = inner.ns_version().await
                {
                    keys = Some(Keys::new(&inner.cfg.namespace, v, id));
                    continue;
                }
                if Instant::now() + pause >= deadline {
                    break;
                }
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_millis(200));
            }
            Err(Error::WriteThrough {
                write: last_error,
                invalidated,
            })
        }
        .instrument(span)
        .await
    }

    /// Loads `ids` with `load_many` in batches and stores them (each under its lease), at most
    /// [`rate_per_sec`](WarmOptions::rate_per_sec) ids per second, reporting progress after
    /// each batch (callback and `shardis_cache_warmed_total`). A failing batch is counted and
    /// skipped.
    ///
    /// ```no_run
    /// # use std::collections::HashMap;
    /// # async fn run(cache: shardis_cache::Cache<String>) -> Result<(), shardis_cache::Error> {
    /// use shardis_cache::WarmOptions;
    /// let report = cache
    ///     .warm(
    ///         (0..10_000u64).collect(),
    ///         |batch: Vec<u64>| async move {
    ///             Ok::<_, std::io::Error>(batch.into_iter().map(|id| (id, id.to_string())).collect::<HashMap<_, _>>())
    ///         },
    ///         WarmOptions { rate_per_sec: Some(5_000.0), ..Default::default() },
    ///     )
    ///     .await?;
    /// println!("{} stored", report.stored);
    /// # Ok(()) }
    /// ```
    pub async fn warm<K, F, Fut, E>(
        &self,
        ids: Vec<K>,
        mut load_many: F,
        options: WarmOptions,
    ) -> Result<WarmReport>
    where
        K: Display + Hash + Eq + Clone,
        F: FnMut(Vec<K>) -> Fut,
        Fut: Future<Output = std::result::Result<HashMap<K, V>, E>>,
        E: Into<BoxError>,
    {
        let inner = &self.inner;
        let batch_size = options.batch_size.unwrap_or(100).max(1);
        let mut report = WarmReport {
            requested: ids.len(),
            ..WarmReport::default()
        };
        let started = Instant::now();
        let mut done = 0usize;
        for batch in ids.chunks(batch_size) {
            if let Some(rate) = options.rate_per_sec.filter(|r| *r > 0.0) {
                let due = started + Duration::from_secs_f64(done as f64 / rate);
                tokio::time::sleep_until(due.into()).await;
            }
            done += batch.len();
            let nsver = match inner.ns_version().await {
                Ok(v) => v,
                Err(_) => {
                    inner.m.redis_errors.inc();
                    report.failed_batches += 1;
                    continue;
                }
            };
            let keys: Vec<Keys> = batch
                .iter()
                .map(|id| Keys::new(&inner.cfg.namespace, nsver, id))
                .collect();
            let all: Vec<usize> = (0..batch.len()).collect();
            let versions = match inner.versions(&keys, &all).await {
                Ok(v) => v,
                Err(_) => {
                    report.failed_batches += 1;
                    continue;
                }
            };
            let found = match inner.call_many(batch.to_vec(), &mut load_many).await {
                Ok(f) => f,
                Err(_) => {
                    report.failed_batches += 1;
                    continue;
                }
            };
            let values: Vec<Option<V>> = batch.iter().map(|id| found.get(id).cloned()).collect();
            let entries: Vec<(usize, Option<&V>)> = values
                .iter()
                .enumerate()
                .map(|(i, v)| (i, v.as_ref()))
                .collect();
            let outcome = inner.store_many(&keys, &versions, &entries).await;
            report.stored += outcome.stored;
            report.superseded += outcome.superseded;
            report.not_found += outcome.skipped;
            if outcome.failed {
                report.failed_batches += 1;
            }
            inner.m.warmed.add(outcome.stored as u64);
            if let Some(progress) = &options.progress {
                progress(WarmProgress {
                    done,
                    total: ids.len(),
                    stored: report.stored,
                });
            }
        }
        Ok(report)
    }
}

#[derive(Debug, Default)]
pub(crate) struct StoreOutcome {
    stored: usize,
    superseded: usize,
    skipped: usize,
    failed: bool,
}

impl<V> Inner<V>
where
    V: Serialize + DeserializeOwned + Clone + Send + Sync + 'static,
{
    pub(crate) async fn pipeline(&self, pipe: &redis::Pipeline) -> Result<Vec<Value>> {
        let mut client = self.client.clone();
        Ok(pipe.query_async::<Vec<Value>>(&mut client).await?)
    }

    /// The versions (leases) of `keys[i]` for each `i` in `which`, read without locking.
    async fn versions(&self, keys: &[Keys], which: &[usize]) -> Result<HashMap<usize, String>> {
        let mut pipe = redis::pipe();
        for &i in which {
            pipe.add_command(scripts::prepare(&keys[i], "", 0, false));
        }
        let replies = self.pipeline(&pipe).await?;
        let mut out = HashMap::with_capacity(which.len());
        for (&i, reply) in which.iter().zip(replies) {
            out.insert(i, scripts::Prepared::parse(reply)?.version);
        }
        Ok(out)
    }

    async fn call_many<K, F, Fut, E>(&self, ids: Vec<K>, loader: F) -> Result<HashMap<K, V>>
    where
        F: FnOnce(Vec<K>) -> Fut,
        Fut: Future<Output = std::result::Result<HashMap<K, V>, E>>,
        E: Into<BoxError>,
    {
        self.m.loads.inc();
        let started = Instant::now();
        let result = loader(ids).await;
        self.m.load_seconds.record(started.elapsed().as_secs_f64());
        result.map_err(|e| {
            self.m.load_errors.inc();
            let e = e.into();
            tracing::warn!(error = %e, "batch loader failed");
            Error::load(e)
        })
    }

    /// Stores `entries` (`(index into keys, value or not-found)`) in one pipeline, each under
    /// the version read before its load.
    async fn store_many(
        &self,
        keys: &[Keys],
        versions: &HashMap<usize, String>,
        entries: &[(usize, Option<&V>)],
    ) -> StoreOutcome {
        let mut outcome = StoreOutcome::default();
        let mut pipe = redis::pipe();
        let mut sent = 0;
        for &(i, value) in entries {
            if value.is_none() && self.cfg.negative_ttl.is_none() {
                outcome.skipped += 1;
                continue;
            }
            let Some(version) = versions.get(&i) else {
                continue;
            };
            let (fresh, hard) = self.ttls(value.is_none());
            let Ok(bytes) = self.envelope(value, fresh, 0) else {
                self.m.store_failures.inc();
                continue;
            };
            pipe.add_command(scripts::store(&keys[i], version, &bytes, hard, ""));
            sent += 1;
        }
        if sent == 0 {
            return outcome;
        }
        match self.pipeline(&pipe).await {
            Ok(replies) => {
                for r in replies {
                    match r {
                        Value::Int(1) => outcome.stored += 1,
                        Value::Int(0) => {
                            self.m.lease_rejections.inc();
                            outcome.superseded += 1;
                        }
                        _ => self.m.store_failures.inc(),
                    }
                }
            }
            Err(e) => {
                self.m.store_failures.add(sent as u64);
                self.m.redis_errors.inc();
                tracing::warn!(error = %e, "batch store failed");
                outcome.failed = true;
            }
        }
        outcome
    }
}
