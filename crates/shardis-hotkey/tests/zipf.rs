//! The detector finds the true top 10 of a Zipf(1.2) stream over 1M keys.

use std::time::{Duration, Instant};

use rand::SeedableRng;
use rand::rngs::StdRng;
use rand_distr::{Distribution, Zipf};
use shardis_hotkey::{Detector, DetectorConfig, key_hash};

const KEYS: usize = 1_000_000;
const ACCESSES: usize = 5_000_000;
/// Simulated 1M reads/s: a tick every 100k reads is every 100 ms.
const PER_TICK: usize = 100_000;

fn key(rank: u64) -> [u8; 16] {
    let mut k = *b"product:\0\0\0\0\0\0\0\0";
    k[8..].copy_from_slice(&rank.to_be_bytes());
    k
}

#[test]
fn zipf_top10_found() {
    let d = Detector::new(DetectorConfig::default()); // samples 1 in 16
    let zipf = Zipf::new(KEYS as f64, 1.2).expect("valid zipf");
    let mut rng = StdRng::seed_from_u64(12);
    let mut counts = vec![0u32; KEYS + 1];
    let mut now = Instant::now();
    for i in 0..ACCESSES {
        let rank = zipf.sample(&mut rng) as u64;
        counts[rank as usize] += 1;
        let k = key(rank);
        d.record(key_hash(&k), &k);
        if (i + 1) % PER_TICK == 0 {
            now += Duration::from_millis(100);
            d.tick(now);
        }
    }
    let mut ranked: Vec<(u32, u64)> = counts
        .iter()
        .enumerate()
        .map(|(r, &c)| (c, r as u64))
        .collect();
    ranked.sort_unstable_by(|a, b| b.cmp(a));
    let hot = d.hot_keys();
    let found: Vec<Vec<u8>> = hot.iter().map(|h| h.key.clone()).collect();
    eprintln!("true top 12 (rank, share, estimated/true rate):");
    for &(c, r) in &ranked[..12] {
        let est = hot
            .iter()
            .find(|h| h.key == key(r))
            .map_or(0.0, |h| h.rate_per_sec);
        let share = f64::from(c) / ACCESSES as f64;
        eprintln!(
            "  {r:>3} {:>6.2}% {:>8.0}/s vs {:>8.0}/s",
            share * 100.0,
            est,
            share * 1e6
        );
    }
    eprintln!("hot keys reported: {}", hot.len());
    for &(_, r) in &ranked[..10] {
        assert!(
            found.contains(&key(r).to_vec()),
            "rank {r} missing; hot: {}",
            hot.len()
        );
    }
    // Nothing far below the threshold is reported.
    assert!(hot.len() <= 20, "{}", hot.len());
}
