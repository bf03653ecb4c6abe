//! Detector behaviour over simulated time: delay, hysteresis, decay, declarations, exactness,
//! bounded memory.

use std::time::{Duration, Instant};

use shardis_hotkey::{Detector, DetectorConfig, key_hash};

const TICK: Duration = Duration::from_millis(100);

/// Feeds one tick of traffic: `per_tick` reads, of which the fraction `share` go to `hot`
/// (spread evenly) and the rest to `background` distinct keys, then ticks.
struct Sim {
    d: Detector,
    now: Instant,
    n: u64,
}

impl Sim {
    fn new(cfg: DetectorConfig) -> Sim {
        Sim {
            d: Detector::new(cfg),
            now: Instant::now(),
            n: 0,
        }
    }

    fn run_tick(&mut self, per_tick: u64, hot: &[u8], share: f64, background: u64) {
        let every = if share > 0.0 {
            (1.0 / share).round() as u64
        } else {
            u64::MAX
        };
        for i in 0..per_tick {
            self.n += 1;
            if share > 0.0 && i % every == 0 {
                self.d.record(key_hash(hot), hot);
            } else {
                let k = format!("bg:{}", self.n % background);
                self.d.record(key_hash(k.as_bytes()), k.as_bytes());
            }
        }
        self.now += TICK;
        self.d.tick(self.now);
    }

    fn hot(&self, key: &[u8]) -> bool {
        self.d.is_hot(key_hash(key), key)
    }
}

#[test]
fn detection_delay_is_one_tick() {
    // Fresh detector, default sampling (1/16), 10k reads/s, half of them on one key.
    let mut s = Sim::new(DetectorConfig::default());
    s.run_tick(1_000, b"celebrity", 0.5, 100_000);
    assert!(s.hot(b"celebrity"), "hot after the first tick");

    // Warm detector: 5 s of uniform traffic, then the key takes half of the reads.
    let mut s = Sim::new(DetectorConfig::default());
    for _ in 0..50 {
        s.run_tick(1_000, b"celebrity", 0.0, 100_000);
    }
    assert!(!s.hot(b"celebrity"));
    s.run_tick(1_000, b"celebrity", 0.5, 100_000);
    assert!(
        s.hot(b"celebrity"),
        "hot after the first tick once it takes 50%"
    );
    let hot = s.d.hot_keys();
    assert_eq!(hot.len(), 1, "{hot:?}");
    assert!(!hot[0].declared);
}

#[test]
fn quiet_process_needs_evidence() {
    // One sampled read is 100% of a quiet process's reads, but not evidence of anything.
    let s = Sim::new(DetectorConfig::default().with_sample_every(1));
    s.d.record(key_hash(b"k"), b"k");
    s.d.tick(s.now + TICK);
    assert!(!s.hot(b"k"));
}

#[test]
fn hysteresis_no_flapping_and_cool_after() {
    let cfg = DetectorConfig::default().with_sample_every(1);
    let mut s = Sim::new(cfg);
    // 2 s at 3%: hot.
    for _ in 0..20 {
        s.run_tick(10_000, b"k", 0.03, 1_000_000);
    }
    assert!(s.hot(b"k"));
    // 20 s oscillating around the hot threshold (0.6% .. 1.4%, above cool_share on average):
    // never cold, never flaps.
    let mut transitions = 0;
    let mut was = true;
    for i in 0..200 {
        let share = if (i / 5) % 2 == 0 { 0.006 } else { 0.014 };
        s.run_tick(10_000, b"k", share, 1_000_000);
        if s.hot(b"k") != was {
            transitions += 1;
            was = !was;
        }
    }
    assert_eq!(transitions, 0);
    // Now 0.1%: still hot for at least cool_after (10 s), cold within ~1 s of decay after that.
    let mut cold_after = None;
    for i in 1..=150 {
        s.run_tick(10_000, b"k", 0.001, 1_000_000);
        if !s.hot(b"k") {
            cold_after = Some(TICK * i);
            break;
        }
    }
    let cold_after = cold_after.expect("cold eventually");
    assert!(cold_after >= Duration::from_secs(10), "{cold_after:?}");
    assert!(cold_after <= Duration::from_secs(12), "{cold_after:?}");
    // A key that is cold again needs hot_share again.
    s.run_tick(10_000, b"k", 0.008, 1_000_000);
    assert!(!s.hot(b"k"));
}

#[test]
fn brief_dips_reset_the_cool_timer() {
    let cfg = DetectorConfig::default()
        .with_sample_every(1)
        .with_cool_after(Duration::from_secs(2));
    let mut s = Sim::new(cfg);
    let hot_phase = |s: &mut Sim| (0..10).for_each(|_| s.run_tick(10_000, b"k", 0.05, 1_000_000));
    hot_phase(&mut s);
    // 3.5 s without the key: its share (5%) falls under cool_share (0.5%) after ~2.3 s, so it
    // is under for ~1.2 s < cool_after; then back. Never cold.
    for _ in 0..5 {
        for _ in 0..35 {
            s.run_tick(10_000, b"k", 0.0, 1_000_000);
            assert!(s.hot(b"k"));
        }
        hot_phase(&mut s);
    }
    // A long absence: cold once the decayed share is under cool_share, plus cool_after.
    let rate = s.d.hot_keys().first().map_or(0.0, |h| h.rate_per_sec);
    let share = rate / s.d.stats().total_rate_per_sec;
    let expect = (share / 0.005).ln() + 2.0; // window 1 s
    let mut ticks = 0;
    while s.hot(b"k") && ticks < 100 {
        s.run_tick(10_000, b"k", 0.0, 1_000_000);
        ticks += 1;
    }
    let took = f64::from(ticks) * 0.1;
    assert!((took - expect).abs() <= 0.25, "{took} vs {expect}");
}

#[test]
fn rates_decay_exponentially() {
    let cfg = DetectorConfig::default().with_sample_every(1);
    let mut s = Sim::new(cfg);
    // 10k reads/s, 10% on the key: 1000/s.
    for _ in 0..50 {
        s.run_tick(1_000, b"k", 0.1, 100_000);
    }
    let rate = |s: &Sim| {
        s.d.hot_keys()
            .iter()
            .find(|h| h.key == b"k")
            .map(|h| h.rate_per_sec)
    };
    let r0 = rate(&s).expect("hot");
    assert!((900.0..1100.0).contains(&r0), "{r0}");
    let total = s.d.stats().total_rate_per_sec;
    assert!((9_000.0..11_000.0).contains(&total), "{total}");
    // The key stops; one window later its estimate has lost 1 - 1/e.
    for _ in 0..10 {
        s.run_tick(1_000, b"k", 0.0, 100_000);
    }
    let r1 = rate(&s).expect("still hot: cool_after not elapsed");
    let expect = r0 * (-1.0f64).exp();
    assert!((r1 - expect).abs() < 0.05 * expect, "{r1} vs {expect}");
}

#[test]
fn declared_keys_and_prefixes() {
    let d = Detector::default();
    d.declare_hot(b"flash-sale");
    d.declare_hot_prefix(b"promo:");
    assert!(d.is_hot(key_hash(b"flash-sale"), b"flash-sale"));
    assert!(d.is_hot(key_hash(b"promo:7"), b"promo:7"));
    assert!(!d.is_hot(key_hash(b"promo"), b"promo"));
    assert!(!d.is_hot(key_hash(b"flash-sale2"), b"flash-sale2"));
    let hot = d.hot_keys();
    assert_eq!(hot.len(), 1);
    assert!(hot[0].declared && hot[0].key == b"flash-sale");
    assert_eq!(d.declared_prefixes(), vec![b"promo:".to_vec()]);

    // A detected key under a declared prefix is reported as declared.
    let now = Instant::now();
    for _ in 0..64 {
        d.record_sampled(key_hash(b"promo:1"), b"promo:1");
    }
    d.tick(now);
    let hot = d.hot_keys();
    let p = hot.iter().find(|h| h.key == b"promo:1").expect("detected");
    assert!(p.declared && p.rate_per_sec > 0.0);

    assert!(d.undeclare_hot(b"flash-sale"));
    assert!(d.undeclare_hot_prefix(b"promo:"));
    assert!(!d.undeclare_hot_prefix(b"promo:"));
    assert!(!d.is_hot(key_hash(b"flash-sale"), b"flash-sale"));
    assert!(!d.is_hot(key_hash(b"promo:7"), b"promo:7"));
    // Still detected.
    assert!(d.is_hot(key_hash(b"promo:1"), b"promo:1"));
}

#[test]
fn no_false_positives_for_shared_hashes() {
    // Every key gets the same hash: tables and the hot set must compare bytes.
    let cfg = DetectorConfig {
        key_hash: |_| 42,
        ..DetectorConfig::default().with_sample_every(1)
    };
    let d = Detector::new(cfg);
    for i in 0..10_000u32 {
        if i % 4 == 0 {
            d.record(42, b"hot");
        } else {
            d.record(42, format!("other:{}", i % 500).as_bytes());
        }
    }
    d.tick(Instant::now());
    d.declare_hot(b"declared");
    assert!(d.is_hot(42, b"hot"));
    assert!(d.is_hot(42, b"declared"));
    for i in 0..500 {
        assert!(!d.is_hot(42, format!("other:{i}").as_bytes()));
    }
    assert!(!d.is_hot(42, b"ho"));
    assert!(!d.is_hot(42, b"hott"));
    assert_eq!(d.hot_keys().len(), 2);
}

#[test]
fn memory_bounded_under_unique_keys() {
    let cfg = DetectorConfig::default().with_sample_every(1);
    let (tables, capacity, max_tracked) = (cfg.tables, cfg.capacity, cfg.max_tracked);
    let d = Detector::new(cfg);
    let mut now = Instant::now();
    let mut peak = 0;
    for t in 0..100u64 {
        for i in 0..20_000u64 {
            let k = format!("unique:{t}:{i}:padding-to-about-forty-b");
            d.record(key_hash(k.as_bytes()), k.as_bytes());
        }
        now += TICK;
        d.tick(now);
        peak = peak.max(d.stats().tracked_keys);
    }
    let s = d.stats();
    assert!(peak <= max_tracked, "{peak}");
    // Keys are < 48 bytes; a reused buffer at most doubles when a longer key takes it over.
    assert!(
        s.table_key_bytes <= tables * capacity * 2 * 48,
        "{}",
        s.table_key_bytes
    );
    assert_eq!(s.hot_keys, 0);
    assert!(d.hot_keys().is_empty());
}

#[test]
fn long_keys_are_not_tracked_but_can_be_declared() {
    let d = Detector::new(DetectorConfig {
        max_key_len: 8,
        ..DetectorConfig::default()
    });
    let long = vec![b'x'; 9];
    assert!(!d.record_sampled(key_hash(&long), &long));
    d.declare_hot(&long);
    assert!(d.is_hot(key_hash(&long), &long));
}

#[test]
fn max_hot_keeps_the_largest() {
    let cfg = DetectorConfig {
        max_hot: 2,
        ..DetectorConfig::default().with_sample_every(1)
    };
    let d = Detector::new(cfg);
    for (key, n) in [(&b"a"[..], 300), (b"b", 200), (b"c", 100)] {
        for _ in 0..n {
            d.record(key_hash(key), key);
        }
    }
    d.tick(Instant::now());
    let keys: Vec<_> = d.hot_keys().into_iter().map(|h| h.key).collect();
    assert_eq!(keys, vec![b"a".to_vec(), b"b".to_vec()]);
}

#[test]
fn concurrent_recording_and_ticks() {
    let d = std::sync::Arc::new(Detector::new(DetectorConfig::default().with_tables(2, 64)));
    let start = Instant::now();
    let workers: Vec<_> = (0..4)
        .map(|w| {
            let d = d.clone();
            std::thread::spawn(move || {
                for i in 0..200_000u32 {
                    let k = if i % 3 == 0 {
                        b"hot".to_vec()
                    } else {
                        format!("{w}:{i}").into_bytes()
                    };
                    d.record(key_hash(&k), &k);
                    let _ = d.is_hot(key_hash(&k), &k);
                }
            })
        })
        .collect();
    let mut now = start;
    while !workers.iter().all(|w| w.is_finished()) {
        now += TICK;
        d.tick(now);
        std::thread::yield_now();
    }
    for w in workers {
        w.join().expect("worker");
    }
    d.tick(now + TICK);
    assert!(d.is_hot(key_hash(b"hot"), b"hot"));
}

#[test]
fn time_going_backwards_is_harmless() {
    let d = Detector::new(DetectorConfig::default().with_sample_every(1));
    let now = Instant::now();
    for _ in 0..100 {
        d.record(key_hash(b"k"), b"k");
    }
    d.tick(now + Duration::from_secs(5));
    d.tick(now);
    assert!(d.is_hot(key_hash(b"k"), b"k"));
}
