//! Ketama with every twemproxy key hash, against placements recorded from a real nutcracker
//! (`tests/vectors/twemproxy/`, made by `tests/examples/record_twemproxy_vectors.rs`): for every
//! key, the server twemproxy stored it on is the server this ring names.

use shardis_ring::{KetamaFlavor, KetamaRing, KetamaServer, KeyHash};

/// A recorded pool: its servers (as `nutcracker.yml` lines), hash tag, the hash of each
/// column, and per key the server index of each column.
struct Vectors {
    servers: Vec<KetamaServer>,
    tag: Option<[u8; 2]>,
    hashes: Vec<KeyHash>,
    rows: Vec<(Vec<u8>, Vec<usize>)>,
}

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect()
}

/// `host:port:weight [name]`, as twemproxy reads a server line.
fn server(line: &str) -> KetamaServer {
    let (addr, name) = match line.split_once(' ') {
        Some((addr, name)) => (addr, Some(name)),
        None => (line, None),
    };
    let mut parts = addr.rsplitn(3, ':');
    let weight = parts.next().and_then(|w| w.parse().ok()).expect("weight");
    let port = parts.next().and_then(|p| p.parse().ok()).expect("port");
    let host = parts.next().expect("host");
    let s = KetamaServer::new(host, port, weight);
    match name {
        Some(name) => s.with_name(name),
        None => s,
    }
}

fn parse(tsv: &str) -> Vectors {
    let mut v = Vectors {
        servers: Vec::new(),
        tag: None,
        hashes: Vec::new(),
        rows: Vec::new(),
    };
    for line in tsv.lines() {
        if let Some(line) = line.strip_prefix("# server\t") {
            v.servers.push(server(line));
        } else if let Some(tag) = line.strip_prefix("# hash_tag\t") {
            v.tag = Some(tag.as_bytes().try_into().expect("two-byte tag"));
        } else if let Some(cols) = line.strip_prefix("# key (hex)\t") {
            v.hashes = cols
                .split('\t')
                .map(|h| h.parse().expect("hash name"))
                .collect();
        } else if !line.starts_with('#') && !line.is_empty() {
            let mut f = line.split('\t');
            let key = hex(f.next().expect("key"));
            let at = f.map(|i| i.parse().expect("index")).collect();
            v.rows.push((key, at));
        }
    }
    v
}

fn ring(v: &Vectors, hash: KeyHash, servers: &[KetamaServer]) -> KetamaRing {
    let mut b = KetamaRing::builder(KetamaFlavor::Twemproxy).key_hash(hash);
    if let Some(tag) = v.tag {
        b = b.hash_tag(tag);
    }
    b.servers(servers.iter().cloned()).build().expect("ring")
}

/// Keys (of `v`, column `col`) that `ring` places elsewhere than twemproxy did.
fn misses(v: &Vectors, col: usize, ring: &KetamaRing) -> Vec<String> {
    v.rows
        .iter()
        .filter(|(key, at)| ring.get_index(key) != at[col])
        .map(|(key, at)| {
            format!(
                "{:?}: twemproxy {}, ring {}",
                String::from_utf8_lossy(key),
                at[col],
                ring.get_index(key)
            )
        })
        .collect()
}

/// Column `col` of `v`, rebuilt with the recorded servers: no key placed elsewhere.
fn assert_column_matches(v: &Vectors, col: usize) {
    let hash = v.hashes[col];
    let bad = misses(v, col, &ring(v, hash, &v.servers));
    assert!(
        bad.is_empty(),
        "{hash}: {} of {} keys differ, e.g. {:?}",
        bad.len(),
        v.rows.len(),
        &bad[..bad.len().min(5)]
    );
}

#[test]
fn every_key_hash_places_every_key_where_nutcracker_did() {
    let v = parse(include_str!("vectors/twemproxy/all_hashes.tsv"));
    assert_eq!(v.servers.len(), 5);
    assert!(v.rows.len() >= 1600, "{} rows", v.rows.len());
    let mut seen: Vec<KeyHash> = v.hashes.clone();
    seen.sort_by_key(|h| h.name());
    let mut all = KeyHash::ALL.to_vec();
    all.sort_by_key(|h| h.name());
    assert_eq!(seen, all, "a column for every key hash twemproxy has");
    for (col, &hash) in v.hashes.iter().enumerate() {
        assert_column_matches(&v, col);
        if hash != KeyHash::Crc32 {
            // Every server got keys, so a wrong index anywhere would have shown.
            let mut got = [0usize; 5];
            v.rows.iter().for_each(|(_, at)| got[at[col]] += 1);
            assert!(got.iter().all(|&n| n > 0), "{hash}: {got:?}");
        }
    }
}

#[test]
fn the_hash_matters_fnv_placement_is_not_md5_placement() {
    // What issue 15 saw: a ring with the wrong hash misses most keys.
    let v = parse(include_str!("vectors/twemproxy/all_hashes.tsv"));
    let md5 = v
        .hashes
        .iter()
        .position(|&h| h == KeyHash::Md5)
        .expect("md5");
    let wrong = ring(&v, KeyHash::TwemproxyFnv1a64, &v.servers);
    let bad = misses(&v, md5, &wrong).len();
    assert!(bad > v.rows.len() / 2, "only {bad} differ");
}

#[test]
fn hash_tag_places_tagged_keys_where_nutcracker_did() {
    let v = parse(include_str!("vectors/twemproxy/hash_tag.tsv"));
    assert_eq!(v.tag, Some(*b"{}"));
    for col in 0..v.hashes.len() {
        assert_column_matches(&v, col);
    }
    // And a ring without the tag does not: the tag is doing the work.
    let untagged = KetamaRing::builder(KetamaFlavor::Twemproxy)
        .key_hash(v.hashes[0])
        .servers(v.servers.iter().cloned())
        .build()
        .expect("ring");
    assert!(!misses(&v, 0, &untagged).is_empty());
}

#[test]
fn an_unnamed_server_on_port_11211_is_hashed_by_its_host_alone() {
    let v = parse(include_str!("vectors/twemproxy/port_11211.tsv"));
    let ports: Vec<u16> = v.servers.iter().map(|s| s.port).collect();
    assert_eq!(&ports[..3], &[11211; 3]);
    assert_ne!(ports[3], 11211);
    let r = ring(&v, KeyHash::Md5, &v.servers);
    assert_eq!(r.server_name(0), Some("127.0.0.2"));
    assert_eq!(r.server_name(3).map(|n| n.contains(':')), Some(true));
    for (col, &hash) in v.hashes.iter().enumerate() {
        assert_column_matches(&v, col);
        // Hashing `host:11211` instead (naming the servers so) places keys elsewhere.
        let with_port: Vec<KetamaServer> = v
            .servers
            .iter()
            .map(|s| s.clone().with_name(format!("{}:{}", s.host, s.port)))
            .collect();
        let wrong = ring(&v, hash, &with_port);
        assert!(
            misses(&v, col, &wrong).len() > v.rows.len() / 10,
            "{hash}: host:11211 would place keys the same way"
        );
    }
}
