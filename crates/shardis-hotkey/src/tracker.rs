//! Merged, decayed counts of the candidate keys, and the hot/cold decision with hysteresis.
//!
//! At each tick every count (and the total) is multiplied by `exp(-dt / window)` and the
//! tick's new counts are added. A key's share is its decayed count over the decayed total:
//! both decay alike, so the share is the key's fraction of the reads over roughly the last
//! `window`, weighted towards recent ones. A key turns hot at `hot_share` (with at least
//! `min_samples` of evidence) and cold only after `cool_after` continuously under `cool_share`,
//! so a key oscillating around the threshold does not flap.

use std::collections::HashMap;
use std::time::Instant;

use crate::DetectorConfig;

#[derive(Debug)]
struct Tracked {
    hash: u64,
    /// Decayed count, in estimated accesses (samples × sample_every).
    count: f64,
    /// Added at the current tick (kept for pruning: a new key has little decayed history).
    fresh: f64,
    hot: bool,
    below_since: Option<Instant>,
}

/// A tracked key that is hot now, with its estimated rate.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct HotEntry {
    pub hash: u64,
    pub key: Vec<u8>,
    pub rate_per_sec: f64,
}

#[derive(Debug, Default)]
pub(crate) struct Tracker {
    keys: HashMap<Vec<u8>, Tracked>,
    total: f64,
    tick_total: f64,
    last_tick: Option<Instant>,
    /// Seconds of traffic the decayed counts stand for: count / this = rate.
    span_secs: f64,
}

impl Tracker {
    /// Starts a tick at `now`: decays everything by the time since the previous tick.
    pub fn begin(&mut self, now: Instant, cfg: &DetectorConfig) {
        let tau = cfg.window.as_secs_f64().max(1e-3);
        let dt = self
            .last_tick
            .map_or(0.0, |t| now.saturating_duration_since(t).as_secs_f64());
        let keep = (-dt / tau).exp();
        // For a steady rate r the decayed count converges to r·dt/(1-keep); before any
        // interval is known, assume the window.
        self.span_secs = if dt > 0.0 { dt / (1.0 - keep) } else { tau };
        self.total *= keep;
        self.tick_total = 0.0;
        for t in self.keys.values_mut() {
            t.count *= keep;
            t.fresh = 0.0;
        }
        self.last_tick = Some(self.last_tick.map_or(now, |t| t.max(now)));
    }

    /// Adds `weight` estimated accesses of `key` at this tick.
    pub fn add(&mut self, hash: u64, key: &[u8], weight: f64) {
        if weight <= 0.0 {
            return;
        }
        // Look up by slice first: no allocation for keys already tracked.
        if let Some(t) = self.keys.get_mut(key) {
            t.hash = hash;
            t.count += weight;
            t.fresh += weight;
            return;
        }
        let t = Tracked {
            hash,
            count: weight,
            fresh: weight,
            hot: false,
            below_since: None,
        };
        self.keys.insert(key.to_vec(), t);
    }

    /// Adds `weight` accesses (of any key) at this tick.
    pub fn add_total(&mut self, weight: f64) {
        self.total += weight;
        self.tick_total += weight;
    }

    /// Ends the tick: decides hot/cold and bounds memory. Returns whether the hot set changed.
    pub fn finish(&mut self, now: Instant, cfg: &DetectorConfig) -> bool {
        let total = self.total;
        let share = |c: f64| if total > 0.0 { c / total } else { 0.0 };
        let evidence = f64::from(cfg.min_samples) * f64::from(cfg.sample_every);
        let mut changed = false;
        let mut hot_count = 0usize;
        let mut candidates: Vec<(f64, &Vec<u8>)> = Vec::new();
        for (key, t) in self.keys.iter_mut() {
            let s = share(t.count);
            if t.hot {
                if s >= cfg.cool_share {
                    t.below_since = None;
                } else {
                    let since = *t.below_since.get_or_insert(now);
                    if now.saturating_duration_since(since) >= cfg.cool_after {
                        t.hot = false;
                        t.below_since = None;
                        changed = true;
                    }
                }
                hot_count += usize::from(t.hot);
            } else if s >= cfg.hot_share && s > 0.0 && t.count >= evidence {
                candidates.push((s, key));
            }
        }
        // Highest shares first, up to `max_hot`.
        candidates.sort_unstable_by(|a, b| b.0.total_cmp(&a.0));
        let admit: Vec<Vec<u8>> = candidates
            .into_iter()
            .take(cfg.max_hot.saturating_sub(hot_count))
            .map(|(_, k)| k.clone())
            .collect();
        for key in admit {
            if let Some(t) = self.keys.get_mut(&key) {
                t.hot = true;
                t.below_since = None;
                changed = true;
            }
        }
        self.prune(cfg);
        changed
    }

    /// Forgets keys too small to matter, then the smallest ones beyond `max_tracked`.
    fn prune(&mut self, cfg: &DetectorConfig) {
        let floor = cfg.cool_share / 4.0;
        let (total, tick_total) = (self.total, self.tick_total);
        // A key stays if its decayed share or this tick's share is above the floor: a key
        // that just appeared has a small decayed share but may be on its way up.
        self.keys.retain(|_, t| {
            t.hot
                || (t.count >= 1e-3
                    && (t.count >= floor * total
                        || (tick_total > 0.0 && t.fresh >= floor * tick_total)))
        });
        if self.keys.len() <= cfg.max_tracked {
            return;
        }
        let mut counts: Vec<f64> = self
            .keys
            .values()
            .filter(|t| !t.hot)
            .map(|t| t.count)
            .collect();
        let hot = self.keys.len() - counts.len();
        let keep = cfg.max_tracked.saturating_sub(hot);
        if keep == 0 {
            self.keys.retain(|_, t| t.hot);
            return;
        }
        if keep >= counts.len() {
            return;
        }
        // Keep the `keep` largest counts (ties at the threshold may drop a few more).
        let nth = counts.len() - keep;
        counts.select_nth_unstable_by(nth, f64::total_cmp);
        let threshold = counts.get(nth).copied().unwrap_or(0.0);
        self.keys.retain(|_, t| t.hot || t.count > threshold);
    }

    /// Estimated rate of a tracked key, accesses per second.
    pub fn rate(&self, key: &[u8]) -> Option<f64> {
        self.keys.get(key).map(|t| self.rate_of(t.count))
    }

    fn rate_of(&self, count: f64) -> f64 {
        if self.span_secs > 0.0 {
            count / self.span_secs
        } else {
            0.0
        }
    }

    /// The hot keys, highest rate first.
    pub fn hot(&self) -> Vec<HotEntry> {
        let mut v: Vec<HotEntry> = self
            .keys
            .iter()
            .filter(|(_, t)| t.hot)
            .map(|(k, t)| HotEntry {
                hash: t.hash,
                key: k.clone(),
                rate_per_sec: self.rate_of(t.count),
            })
            .collect();
        v.sort_by(|a, b| {
            b.rate_per_sec
                .total_cmp(&a.rate_per_sec)
                .then_with(|| a.key.cmp(&b.key))
        });
        v
    }

    /// Number of keys tracked.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Estimated total rate, accesses per second.
    pub fn total_rate(&self) -> f64 {
        self.rate_of(self.total)
    }
}
