//! shardis-hotkey micro-benchmarks: the per-command cost of hot-key detection beside the plain
//! routing path (key → slot, key → ring node) on the same 16–40 B keys, in the same run.
//!
//! Run: `CARGO_TARGET_DIR=/work/targets/hotkey cargo bench -p shardis-benches --bench hotkey`
//!
//! Criterion reports each operation; a table of ns per operation (best of 3 plain timed loops
//! of the same closures) is printed at the end. Targets: a recorded (sampled) access <= 20 ns,
//! an access that is not sampled <= 5 ns.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::Criterion;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use shardis_hotkey::{Detector, DetectorConfig, SpaceSaving, key_hash};
use shardis_ring::Ring;
use shardis_slots::key_slot;

/// Accesses per sequence (a power of two: the index is masked). Small enough that the keys
/// stay in cache, as they are when the hot-key layer runs right after routing hashed the key:
/// the figures are the cost each operation adds, not a cache miss on the key they all share.
const SEQ: usize = 1 << 12;
const KEYS: usize = 100_000;
/// Iterations of each plain timed loop.
const LOOP: usize = 2_000_000;
/// Accesses between two ticks of the detector.
const TICK_EVERY: usize = 1 << 16;

struct Access {
    hash: u64,
    key: Vec<u8>,
}

/// Keys of 16..=40 printable bytes.
fn keyspace() -> Vec<Vec<u8>> {
    let mut rng = StdRng::seed_from_u64(7);
    (0..KEYS)
        .map(|_| {
            let len = rng.random_range(16..=40);
            (0..len).map(|_| rng.random_range(b'a'..=b'z')).collect()
        })
        .collect()
}

/// `SEQ` accesses over the key space: Zipf(1.2) (a few keys dominate, as when something is
/// hot) or uniform (every sample is a newcomer: the Space-Saving worst case).
fn sequence(keys: &[Vec<u8>], zipf: bool) -> Vec<Access> {
    let mut rng = StdRng::seed_from_u64(11);
    // Zipf by inverse CDF (rand_distr is not a dependency of this crate): rank r has weight r^-1.2.
    let mut cdf: Vec<f64> = (1..=KEYS).map(|r| (r as f64).powf(-1.2)).collect();
    for i in 1..KEYS {
        cdf[i] += cdf[i - 1];
    }
    let sum = cdf[KEYS - 1];
    (0..SEQ)
        .map(|_| {
            let i = if zipf {
                let u = rng.random::<f64>() * sum;
                cdf.partition_point(|&c| c < u).min(KEYS - 1)
            } else {
                rng.random_range(0..KEYS)
            };
            let key = keys[i].clone();
            Access {
                hash: key_hash(&key),
                key,
            }
        })
        .collect()
}

fn run<R>(
    c: &mut Criterion,
    table: &mut Vec<(String, f64)>,
    name: &str,
    seq: &[Access],
    mut f: impl FnMut(&Access) -> R,
) {
    c.bench_function(name, |b| {
        let mut i = 0usize;
        b.iter(|| {
            let a = &seq[i & (SEQ - 1)];
            i = i.wrapping_add(1);
            black_box(f(black_box(a)))
        })
    });
    let mut best = f64::MAX;
    for _ in 0..3 {
        let t = Instant::now();
        for j in 0..LOOP {
            black_box(f(black_box(&seq[j & (SEQ - 1)])));
        }
        best = best.min(t.elapsed().as_nanos() as f64 / LOOP as f64);
    }
    table.push((name.to_string(), best));
}

fn detector(sample_every: u32) -> Detector {
    Detector::new(DetectorConfig::default().with_sample_every(sample_every))
}

fn main() {
    let mut c = Criterion::default()
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1))
        .sample_size(20)
        .configure_from_args();
    let keys = keyspace();
    let zipf = sequence(&keys, true);
    let uniform = sequence(&keys, false);
    let ring = Ring::new((0..16).map(|i| (format!("10.0.0.{i}:6379"), 1))).expect("ring");
    let mut t = Vec::new();

    // Plain routing path, for scale.
    run(&mut c, &mut t, "route/key_slot", &zipf, |a| {
        key_slot(&a.key)
    });
    run(&mut c, &mut t, "route/ring_get", &zipf, |a| {
        ring.get(&a.key).weight()
    });
    run(&mut c, &mut t, "route/key_hash (xxh3)", &zipf, |a| {
        key_hash(&a.key)
    });

    // An access that is not sampled: sampling so rare that it never happens here.
    let d = detector(1 << 30);
    run(&mut c, &mut t, "hotkey/record not sampled", &zipf, |a| {
        d.record(a.hash, &a.key)
    });
    // The tables are emptied at each tick. Tick every 2^16 accesses (a busy process at 100 ms
    // ticks: 655k accesses/s, or samples/s for the record-every-access rows); without ticks
    // counts grow without bound, which a running detector never sees.
    let now = Instant::now();
    let ticking = |d: Detector, sampled: bool| {
        let mut n = 0usize;
        move |a: &Access| {
            n += 1;
            if n.is_multiple_of(TICK_EVERY) {
                d.tick(now);
            }
            if sampled {
                d.record_sampled(a.hash, &a.key)
            } else {
                d.record(a.hash, &a.key)
            }
        }
    };
    // Default: 1 in 16 sampled, amortised over all accesses.
    run(
        &mut c,
        &mut t,
        "hotkey/record 1/16 zipf",
        &zipf,
        ticking(detector(16), false),
    );
    run(
        &mut c,
        &mut t,
        "hotkey/record 1/16 uniform",
        &uniform,
        ticking(detector(16), false),
    );
    // Every access recorded: the cost of one sampled access.
    run(
        &mut c,
        &mut t,
        "hotkey/recorded access zipf",
        &zipf,
        ticking(detector(1), true),
    );
    run(
        &mut c,
        &mut t,
        "hotkey/recorded access uniform",
        &uniform,
        ticking(detector(1), true),
    );

    // The same without the table's lock (try_lock + unlock): the Space-Saving update alone.
    let clearing = || {
        let mut ss = SpaceSaving::new(DetectorConfig::default().capacity);
        let mut n = 0usize;
        move |a: &Access| {
            n += 1;
            if n.is_multiple_of(TICK_EVERY) {
                ss.clear();
            }
            ss.record(a.hash, &a.key)
        }
    };
    run(
        &mut c,
        &mut t,
        "hotkey/space-saving only zipf",
        &zipf,
        clearing(),
    );
    run(
        &mut c,
        &mut t,
        "hotkey/space-saving only uniform",
        &uniform,
        clearing(),
    );

    // Lookups: nothing hot (the common case), and 100 hot keys (the 100 most frequent of the
    // Zipf stream), so many lookups hit.
    let d = detector(16);
    run(&mut c, &mut t, "hotkey/is_hot (none hot)", &zipf, |a| {
        d.is_hot(a.hash, &a.key)
    });
    let d = detector(16);
    for k in keys.iter().take(100) {
        d.declare_hot(k);
    }
    run(&mut c, &mut t, "hotkey/is_hot (100 hot)", &zipf, |a| {
        d.is_hot(a.hash, &a.key)
    });

    // What a cluster client adds per command: hash, record, check.
    run(&mut c, &mut t, "hotkey/cluster per command", &zipf, |a| {
        let h = key_hash(&a.key);
        d.record(h, &a.key);
        d.is_hot(h, &a.key)
    });
    // What a ring client adds (it already has the hash).
    run(&mut c, &mut t, "hotkey/ring per command", &zipf, |a| {
        d.record(a.hash, &a.key);
        d.is_hot(a.hash, &a.key)
    });

    c.final_summary();

    let base = t.first().map_or(1.0, |(_, ns)| *ns);
    println!("\nns per operation (16–40 B keys, best of 3 loops of {LOOP}):");
    println!("{:<34} {:>8} {:>12}", "operation", "ns", "x key_slot");
    for (name, ns) in &t {
        println!("{name:<34} {ns:>8.2} {:>12.2}", ns / base);
    }
}
