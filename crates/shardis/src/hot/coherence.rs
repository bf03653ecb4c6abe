//! The near cache kept coherent with the whole deployment (not only this client's writes):
//! the client's own [`InvalidationStream`](crate::InvalidationStream) reports every change of
//! a tracked key; the near cache serves only while that stream is complete, and only values
//! read after the last change reported for their key. The TTL stays as a backstop. A change
//! reported for a hot key also counts as a write of it (`dirty`), so its copies are re-synced
//! before they are read again.
//!
//! A value is stamped with a [`Stamp`] taken *before* its read (the global generation and its
//! key's stripe generation); a change bumps the generation, so a value read before it — even
//! one inserted after the change arrived — no longer matches and is never served.

use std::sync::Weak;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use futures::StreamExt;
use shardis_hotkey::key_hash;

use super::Hot;
use crate::tracking::{Invalidation, InvalidationStream};

const STRIPES: usize = 1024;

/// The generations a near-cache value was read under.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Stamp {
    global: u64,
    stripe: u64,
}

pub(crate) struct Coherence {
    ready: AtomicBool,
    global: AtomicU64,
    stripes: Box<[AtomicU64]>,
}

fn stripe_of(key: &[u8]) -> usize {
    (key_hash(key) as usize) % STRIPES
}

impl Coherence {
    pub fn new() -> Self {
        Coherence {
            ready: AtomicBool::new(false),
            global: AtomicU64::new(0),
            stripes: (0..STRIPES).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    /// The stamp of a read of `key` beginning now; `None` while the stream is incomplete
    /// (what is read now must not be kept).
    pub fn stamp(&self, key: &[u8]) -> Option<Stamp> {
        if !self.ready.load(Ordering::SeqCst) {
            return None;
        }
        Some(Stamp {
            global: self.global.load(Ordering::SeqCst),
            stripe: self.stripes[stripe_of(key)].load(Ordering::SeqCst),
        })
    }

    /// Whether a value of `key` read under `stamp` may be served now.
    #[cfg(test)]
    pub fn holds(&self, key: &[u8], stamp: Stamp) -> bool {
        self.stamp(key) == Some(stamp)
    }

    /// Applies one event; returns what the near cache must drop.
    fn apply(&self, event: &Invalidation) -> Drop {
        match event {
            Invalidation::Keys(keys) => {
                for key in keys {
                    self.stripes[stripe_of(key)].fetch_add(1, Ordering::SeqCst);
                }
                Drop::Keys
            }
            Invalidation::Ready => {
                self.ready.store(true, Ordering::SeqCst);
                Drop::Nothing
            }
            Invalidation::Flush { .. } => {
                self.global.fetch_add(1, Ordering::SeqCst);
                Drop::All("flush")
            }
            // Broken, and anything newer this version does not know: assume the worst.
            _ => {
                self.ready.store(false, Ordering::SeqCst);
                self.global.fetch_add(1, Ordering::SeqCst);
                Drop::All("broken")
            }
        }
    }
}

enum Drop {
    Nothing,
    Keys,
    All(&'static str),
}

/// Applies `stream` to the near cache of `hot` until either is gone.
pub(crate) fn spawn(hot: Weak<Hot>, mut stream: InvalidationStream) {
    tokio::spawn(async move {
        // The stream holds the router and its connections: look now and then whether the
        // client is gone, even when no event comes.
        let mut alive = tokio::time::interval(std::time::Duration::from_secs(1));
        loop {
            let event = tokio::select! {
                event = stream.next() => event,
                _ = alive.tick() => {
                    if hot.strong_count() == 0 {
                        return;
                    }
                    continue;
                }
            };
            let Some(event) = event else { break };
            let Some(hot) = hot.upgrade() else { return };
            let (Some(coherence), Some(near)) = (&hot.coherence, &hot.near) else {
                return;
            };
            match coherence.apply(&event) {
                Drop::Nothing => {}
                Drop::Keys => {
                    if let Invalidation::Keys(keys) = &event {
                        let states = hot.states.read();
                        for key in keys {
                            near.invalidate(key);
                            // Changed elsewhere: as after an own write, reads go to the
                            // canonical key until a sync round has rewritten the copies (the
                            // next read wakes the syncer).
                            if let Some(state) = states.get(key) {
                                state.dirty.fetch_add(1, Ordering::SeqCst);
                            }
                        }
                    }
                }
                Drop::All(reason) => {
                    near.invalidate_all();
                    metrics::counter!("shardis_hot_near_cache_flushed_total", "reason" => reason)
                        .increment(1);
                }
            }
        }
        // The stream ended (the client is gone): nothing more may be served.
        if let Some(hot) = hot.upgrade()
            && let Some(coherence) = &hot.coherence
        {
            coherence.apply(&Invalidation::Broken {
                node: String::new(),
                reason: "the invalidation stream ended".into(),
            });
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_read_before_a_change_or_a_loss_is_never_served() {
        let c = Coherence::new();
        assert!(
            c.stamp(b"k").is_none(),
            "nothing kept before the stream is complete"
        );
        let _ = c.apply(&Invalidation::Ready);
        let before = c.stamp(b"k").unwrap();
        let other = c.stamp(b"other").unwrap();
        let _ = c.apply(&Invalidation::Keys(vec![b"k".to_vec()]));
        assert!(!c.holds(b"k", before));
        if stripe_of(b"other") != stripe_of(b"k") {
            assert!(c.holds(b"other", other));
        }
        let after = c.stamp(b"k").unwrap();
        assert!(c.holds(b"k", after));
        let _ = c.apply(&Invalidation::Broken {
            node: "n".into(),
            reason: "lost".into(),
        });
        assert!(!c.holds(b"k", after));
        assert!(c.stamp(b"k").is_none());
        let _ = c.apply(&Invalidation::Ready);
        assert!(!c.holds(b"k", after), "a loss outlives the recovery");
    }
}
