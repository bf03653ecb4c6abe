//! Ring lookup, end to end (xxh3 of a 16–40 byte key + locate) and by precomputed hash, for
//! 10 / 100 / 1000 nodes × 160 points, against a plain sorted-array binary search over the
//! same points and against the `hashring` crate, in one run. Also ketama-mode lookups.
//!
//! `CARGO_TARGET_DIR=/work/targets/ring cargo bench -p shardis-benches --bench ring`
//!
//! Every benchmark walks the same 1024 keys per iteration; criterion reports time per key
//! (throughput = independent lookups). The `latency` group chains lookups (the next key
//! depends on the previous owner), which is what one request sees.

use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use shardis_ring::{KetamaFlavor, KetamaRing, KetamaServer, Ring};

const SIZES: [usize; 3] = [10, 100, 1000];
const KEYS: usize = 1024;

fn keys() -> Vec<Vec<u8>> {
    let mut rng = StdRng::seed_from_u64(42);
    (0..KEYS)
        .map(|_| {
            let len = rng.random_range(16..=40);
            (0..len).map(|_| rng.random_range(b'!'..=b'~')).collect()
        })
        .collect()
}

fn names(n: usize) -> Vec<String> {
    (0..n)
        .map(|i| format!("redis-{i}.cache.internal:6379"))
        .collect()
}

/// The baseline: the same points, sorted `u64` + `u32` owners, `partition_point`, wrap.
struct BinarySearch {
    points: Vec<u64>,
    owners: Vec<u32>,
}

impl BinarySearch {
    fn of(ring: &Ring) -> Self {
        let (points, owners) = ring
            .points()
            .map(|(p, n)| (p, ring.index_of(n.name()).unwrap_or(0) as u32))
            .unzip();
        BinarySearch { points, owners }
    }

    #[inline]
    fn get_by_hash(&self, h: u64) -> usize {
        let i = self.points.partition_point(|&p| p < h);
        self.owners[if i == self.points.len() { 0 } else { i }] as usize
    }
}

fn hashring_of(n: usize) -> hashring::HashRing<String> {
    let mut r = hashring::HashRing::new();
    // `batch_add` = `add` for each vnode, but sorts once instead of once per vnode.
    r.batch_add(
        (0..n)
            .flat_map(|i| (0..160).map(move |j| format!("node-{i}-{j}")))
            .collect(),
    );
    r
}

fn bench(c: &mut Criterion) {
    let keys = keys();
    let hashes: Vec<u64> = keys.iter().map(|k| Ring::hash_key(k)).collect();
    for &n in &SIZES {
        let ring = Ring::new(names(n).into_iter().map(|s| (s, 1))).expect("ring builds");
        let bs = BinarySearch::of(&ring);
        let hr = hashring_of(n);
        let ketama =
            |flavor| {
                KetamaRing::builder(flavor)
                    .servers((0..n).map(|i| {
                        KetamaServer::new(format!("10.0.{}.{}", i / 256, i % 256), 11211, 1)
                    }))
                    .build()
                    .expect("ketama ring builds")
            };
        let (libmemcached, twemproxy) = (
            ketama(KetamaFlavor::Libmemcached),
            ketama(KetamaFlavor::Twemproxy),
        );
        eprintln!(
            "ring N={n}: {} points, {} bytes, {:.2} bytes/point (ketama {:.2})",
            ring.point_count(),
            ring.memory_bytes(),
            ring.memory_bytes() as f64 / ring.point_count() as f64,
            libmemcached.memory_bytes() as f64 / libmemcached.point_count() as f64,
        );
        for (k, &h) in keys.iter().zip(&hashes) {
            assert_eq!(
                ring.get_index(k),
                bs.get_by_hash(h),
                "baseline agrees with the ring"
            );
        }

        let mut g = c.benchmark_group("key");
        g.throughput(Throughput::Elements(KEYS as u64));
        g.bench_with_input(BenchmarkId::new("ring", n), &n, |b, _| {
            b.iter(|| {
                keys.iter()
                    .map(|k| ring.get_index(black_box(k)))
                    .sum::<usize>()
            })
        });
        g.bench_with_input(BenchmarkId::new("binary_search", n), &n, |b, _| {
            b.iter(|| {
                keys.iter()
                    .map(|k| bs.get_by_hash(Ring::hash_key(black_box(k))))
                    .sum::<usize>()
            })
        });
        g.bench_with_input(BenchmarkId::new("hashring", n), &n, |b, _| {
            b.iter(|| {
                keys.iter()
                    .map(|k| hr.get(black_box(k)).map_or(0, String::len))
                    .sum::<usize>()
            })
        });
        g.bench_with_input(BenchmarkId::new("ketama_md5", n), &n, |b, _| {
            b.iter(|| {
                keys.iter()
                    .map(|k| libmemcached.get_index(black_box(k)))
                    .sum::<usize>()
            })
        });
        g.bench_with_input(BenchmarkId::new("ketama_fnv", n), &n, |b, _| {
            b.iter(|| {
                keys.iter()
                    .map(|k| twemproxy.get_index(black_box(k)))
                    .sum::<usize>()
            })
        });
        g.finish();

        let mut g = c.benchmark_group("hash");
        g.throughput(Throughput::Elements(KEYS as u64));
        g.bench_with_input(BenchmarkId::new("ring", n), &n, |b, _| {
            b.iter(|| {
                hashes
                    .iter()
                    .map(|&h| ring.get_index_by_hash(black_box(h)))
                    .sum::<usize>()
            })
        });
        g.bench_with_input(BenchmarkId::new("binary_search", n), &n, |b, _| {
            b.iter(|| {
                hashes
                    .iter()
                    .map(|&h| bs.get_by_hash(black_box(h)))
                    .sum::<usize>()
            })
        });
        g.finish();

        // Membership change: a new ring with one more node (a full rebuild).
        let mut g = c.benchmark_group("build");
        g.sample_size(10);
        g.bench_with_input(BenchmarkId::new("with_node", n), &n, |b, _| {
            b.iter(|| {
                ring.with_node("redis-new.cache.internal:6379", 1)
                    .map(|r| r.point_count())
            })
        });
        g.finish();

        // Dependent chain: which key comes next depends on the previous lookup's owner.
        let mut g = c.benchmark_group("latency");
        g.throughput(Throughput::Elements(KEYS as u64));
        g.bench_with_input(BenchmarkId::new("ring", n), &n, |b, _| {
            b.iter(|| {
                let mut owner = 0usize;
                for i in 0..KEYS {
                    owner = ring.get_index(&keys[(i + owner) % KEYS]);
                }
                owner
            })
        });
        g.bench_with_input(BenchmarkId::new("binary_search", n), &n, |b, _| {
            b.iter(|| {
                let mut owner = 0usize;
                for i in 0..KEYS {
                    owner = bs.get_by_hash(Ring::hash_key(&keys[(i + owner) % KEYS]));
                }
                owner
            })
        });
        g.finish();
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .measurement_time(Duration::from_secs(2))
        .warm_up_time(Duration::from_secs(1))
        .sample_size(30);
    targets = bench
}
criterion_main!(benches);
