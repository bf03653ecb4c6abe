//! P1 for the ketama mode: golden vectors from libmemcached, twemproxy, go-ketama and
//! uhashring (see tests/vectors/ and the reference's §1.3), all matched exactly.

use shardis_ring::hash::{ketama_points, md5, twemproxy_fnv1a_64};
use shardis_ring::ketama::point_count;
use shardis_ring::{KetamaFlavor, KetamaRing, KetamaServer, RingError};

/// libmemcached's `test/fixtures/ketama.hpp` servers, in configuration order.
const SERVERS: [(&str, u32); 8] = [
    ("10.0.1.1", 600),
    ("10.0.1.2", 300),
    ("10.0.1.3", 200),
    ("10.0.1.4", 350),
    ("10.0.1.5", 1000),
    ("10.0.1.6", 800),
    ("10.0.1.7", 950),
    ("10.0.1.8", 100),
];

fn fixture(flavor: KetamaFlavor) -> KetamaRing {
    KetamaRing::builder(flavor)
        .servers(SERVERS.iter().map(|&(h, w)| KetamaServer::new(h, 11211, w)))
        .build()
        .expect("fixture builds")
}

struct Row {
    key: Vec<u8>,
    hash1: u32,
    hash2: u32,
    server: String,
}

fn rows(tsv: &str) -> Vec<Row> {
    let hex = |s: &str| -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    };
    tsv.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            Row {
                key: hex(f[0]),
                hash1: f[1].parse().unwrap(),
                hash2: f[2].parse().unwrap(),
                server: f[3].into(),
            }
        })
        .collect()
}

#[test]
fn libmemcached_weighted_fixture_99_of_99() {
    let ring = fixture(KetamaFlavor::Libmemcached);
    assert_eq!(ring.point_count(), 1264);
    let rows = rows(include_str!("vectors/libmemcached.tsv"));
    assert_eq!(rows.len(), 99);
    for r in &rows {
        let key = String::from_utf8_lossy(&r.key);
        assert_eq!(ring.hash_key(&r.key), r.hash1, "hash1 of {key}");
        assert_eq!(ring.point_by_hash(r.hash1), r.hash2, "hash2 of {key}");
        assert_eq!(ring.get(&r.key).host, r.server, "server of {key}");
    }
    // VDEAAAAA hashes beyond the last point and wraps to the first.
    let last = ring.points().last().unwrap().0;
    let first = ring.points().next().unwrap().0;
    assert_eq!(last, 0xfffb_df7f);
    assert_eq!(ring.hash_key(b"VDEAAAAA"), 0xfffc_d1b5);
    assert_eq!(ring.point_by_hash(0xfffc_d1b5), first);
}

#[test]
fn libmemcached_spymemcached_fixture_99_of_99_servers() {
    // The spy table repeats the weighted table's hash2 column, so only the server is checked.
    let ring = fixture(KetamaFlavor::Spymemcached);
    let rows = rows(include_str!("vectors/libmemcached_spy.tsv"));
    assert_eq!(rows.len(), 99);
    for r in &rows {
        assert_eq!(ring.hash_key(&r.key), r.hash1);
        assert_eq!(
            ring.get(&r.key).host,
            r.server,
            "server of {}",
            String::from_utf8_lossy(&r.key)
        );
    }
}

#[test]
fn libmemcached_eject_and_restore() {
    // libmemcached "auto_eject_hosts": without server 2, no key maps to it; restored, all
    // 99 keys map as before.
    let full = fixture(KetamaFlavor::Libmemcached);
    let ejected = KetamaRing::builder(KetamaFlavor::Libmemcached)
        .servers(
            SERVERS
                .iter()
                .enumerate()
                .filter(|&(i, _)| i != 2)
                .map(|(_, &(h, w))| KetamaServer::new(h, 11211, w)),
        )
        .build()
        .unwrap();
    let rows = rows(include_str!("vectors/libmemcached.tsv"));
    assert!(rows.iter().all(|r| ejected.get(&r.key).host != "10.0.1.3"));
    let restored = fixture(KetamaFlavor::Libmemcached);
    assert_eq!(restored, full);
    assert!(rows.iter().all(|r| restored.get(&r.key).host == r.server));
}

#[test]
fn twemproxy_test_all_c() {
    assert_eq!(ketama_points(b"server1-8")[0], 3853726576);
    assert_eq!(ketama_points(b"server1-8")[3], 2667054752);
    assert_eq!(md5(b"apple"), 3195025439);
    assert_eq!(twemproxy_fnv1a_64(b"apple"), 1488911807);
}

#[test]
fn twemproxy_key_rules() {
    let ring = |n: usize| {
        KetamaRing::builder(KetamaFlavor::Twemproxy)
            .hash_tag(*b"{}")
            .servers((0..n).map(|i| {
                KetamaServer::new(format!("10.0.0.{i}"), 6379, 1).with_name(format!("s{i}"))
            }))
            .build()
            .unwrap()
    };
    let r = ring(5);
    assert_eq!(r.server_name(0), Some("s0"), "explicit names are hashed");
    assert_eq!(r.hash_key(b"apple"), 1488911807);
    assert_eq!(r.hash_key(b"user:{apple}:x"), 1488911807, "hash tag");
    assert_eq!(
        r.hash_key(b"a{}b"),
        twemproxy_fnv1a_64(b"a{}b"),
        "empty tag hashes the whole key"
    );
    assert_eq!(r.hash_key(b""), 0, "empty key hashes to 0");
    assert_eq!(r.get_index(b""), r.get_index_by_hash(0));
    // A one-server pool answers 0 without hashing.
    let one = ring(1);
    assert!(
        [&b""[..], b"x", b"{y}"]
            .iter()
            .all(|k| one.get_index(k) == 0)
    );
    // Without an explicit name, twemproxy follows libmemcached's port rule.
    let unnamed = KetamaServer::new("h", 11211, 1);
    assert_eq!(KetamaFlavor::Twemproxy.server_name(&unnamed), "h");
    assert_eq!(
        KetamaFlavor::Twemproxy.server_name(&KetamaServer::new("h", 22122, 1)),
        "h:22122"
    );
}

#[test]
fn go_ketama_basic_compat_100k_keys() {
    let ring = KetamaRing::builder(KetamaFlavor::Libmemcached)
        .servers((1..=10).map(|i| KetamaServer::new(format!("server{i}"), 11211, 1)))
        .build()
        .unwrap();
    let mut counts = [0u32; 10];
    for i in 0..100_000 {
        counts[ring.get_index(format!("foo{i}").as_bytes())] += 1;
    }
    // server1..server10, in that order.
    assert_eq!(
        counts,
        [
            8699, 10885, 9980, 10237, 9099, 10997, 10365, 10380, 9896, 9462
        ]
    );
}

#[test]
fn uhashring_hashi() {
    assert_eq!(md5(b"test"), 3446378249);
}

#[test]
fn float32_point_counts() {
    let short: Vec<usize> = (1..=1000)
        .filter(|&n| point_count(1, n as u64, n) == 156)
        .collect();
    assert_eq!(short.len(), 103);
    assert_eq!(
        &short[..11],
        &[25, 47, 50, 55, 61, 71, 94, 100, 107, 109, 110]
    );
    assert!(
        (1..=1000)
            .filter(|n| !short.contains(n))
            .all(|n| point_count(1, n as u64, n) == 160)
    );
    // twemproxy adds the epsilon in double; it never changes the result.
    for (w, total, n) in [
        (580, 4000, 10),
        (1, 3, 3),
        (7, 700, 100),
        (999, 1000, 2),
        (1, 65536, 65536),
    ] {
        let x = w as f32 / total as f32 * 160.0 / 4.0 * n as f32;
        assert_eq!(
            point_count(w, total, n),
            4 * ((f64::from(x) + 1e-10) as f32).floor() as u32
        );
    }
    // The uhashring integer formula gives 232 here; float32 gives 228.
    assert_eq!(point_count(580, 4000, 10), 228);
    // Nonsense inputs saturate instead of overflowing.
    assert_eq!(point_count(u32::MAX, 1, usize::MAX), u32::MAX);
    assert_eq!(point_count(1, 0, 1), u32::MAX);
}

#[test]
fn collision_goes_to_first_server_in_config_order() {
    assert_eq!(ketama_points(b"172.31.1.125-35")[2], 0x3c32_4158);
    assert_eq!(ketama_points(b"172.31.1.202-38")[0], 0x3c32_4158);
    let ring = |hosts: [&str; 2]| {
        KetamaRing::builder(KetamaFlavor::Libmemcached)
            .servers(hosts.iter().map(|h| KetamaServer::new(*h, 11211, 1)))
            .build()
            .unwrap()
    };
    let a = ring(["172.31.1.125", "172.31.1.202"]);
    let b = ring(["172.31.1.202", "172.31.1.125"]);
    assert_eq!(
        a.points().filter(|&(p, _)| p == 0x3c32_4158).count(),
        2,
        "both points kept"
    );
    assert_eq!(a.get_by_hash(0x3c32_4158).host, "172.31.1.125");
    assert_eq!(b.get_by_hash(0x3c32_4158).host, "172.31.1.202");
    // The losing point owns nothing: arcs still sum to the whole space.
    assert_eq!(a.arc_lengths().iter().sum::<u64>(), 1 << 32);
    // uhashring's shrink test: remove every colliding server and the ring is empty.
    assert_eq!(
        KetamaRing::builder(KetamaFlavor::Libmemcached)
            .build()
            .unwrap_err(),
        RingError::Empty
    );
}

#[test]
fn ketama_errors() {
    let b = || KetamaRing::builder(KetamaFlavor::Libmemcached);
    assert_eq!(
        b().server(KetamaServer::new("a", 1, 0))
            .build()
            .unwrap_err(),
        RingError::ZeroWeight("a:1".into())
    );
    // Spymemcached names include the port, so these two do not collide ...
    assert!(
        KetamaRing::builder(KetamaFlavor::Spymemcached)
            .server(KetamaServer::new("a", 11211, 1))
            .server(KetamaServer::new("a", 11212, 1))
            .build()
            .is_ok()
    );
    // ... but libmemcached's "a" vs "a:11211"-style names can: "a:1" as a host on 11211.
    let err = b()
        .server(KetamaServer::new("a", 1, 1))
        .server(KetamaServer::new("a:1", 11211, 1))
        .build();
    assert_eq!(err.unwrap_err(), RingError::DuplicateNode("a:1".into()));
}

#[test]
fn ketama_moved_fraction_is_exact_for_a_removal() {
    let full = fixture(KetamaFlavor::Libmemcached);
    assert_eq!(KetamaRing::moved_fraction(&full, &full), 0.0);
    // Removing 10.0.1.8 reweights everyone (float32 formula), so far more than its share moves.
    let smaller = KetamaRing::builder(KetamaFlavor::Libmemcached)
        .servers(
            SERVERS[..7]
                .iter()
                .map(|&(h, w)| KetamaServer::new(h, 11211, w)),
        )
        .build()
        .unwrap();
    let share = full.arc_lengths()[7] as f64 / 2f64.powi(32);
    assert!(KetamaRing::moved_fraction(&full, &smaller) >= share);
}
