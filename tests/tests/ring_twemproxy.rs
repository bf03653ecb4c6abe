//! Ring mode joins a twemproxy fleet: keys written through a real nutcracker are read back
//! through shardis (and the other way round) with no miss, for every key hash twemproxy
//! offers, with named and unnamed servers, weights and a hash tag.

use shardis::ring::{KetamaFlavor, KeyHash};
use shardis::{RingNode, RingPlacement};
use shardis_testkit::{Standalone, Twemproxy, TwemproxyHash};

const WEIGHTS: [u32; 4] = [1, 2, 1, 3];
/// Servers 0 and 2 are named in `nutcracker.yml`; 1 and 3 are not (hashed as `host:port`).
const NAMES: [Option<&str>; 4] = [Some("cache-a"), None, Some("cache-c"), None];

fn twemproxy_hash(hash: KeyHash) -> TwemproxyHash {
    match hash {
        KeyHash::Md5 => TwemproxyHash::Md5,
        KeyHash::TwemproxyFnv1a64 => TwemproxyHash::Fnv1a64,
        KeyHash::OneAtATime => TwemproxyHash::OneAtATime,
        KeyHash::Fnv1_64 => TwemproxyHash::Fnv1_64,
        KeyHash::Fnv1_32 => TwemproxyHash::Fnv1_32,
        KeyHash::Fnv1a32 => TwemproxyHash::Fnv1a32,
        KeyHash::Crc16 => TwemproxyHash::Crc16,
        KeyHash::Crc32 => TwemproxyHash::Crc32,
        KeyHash::Crc32a => TwemproxyHash::Crc32a,
        KeyHash::Hsieh => TwemproxyHash::Hsieh,
        KeyHash::Murmur => TwemproxyHash::Murmur,
        KeyHash::Jenkins => TwemproxyHash::Jenkins,
        other => panic!("no twemproxy hash for {other:?}"),
    }
}

/// The ring nodes a user writes for this pool: the twemproxy name when there is one, else
/// the address as written in `nutcracker.yml` (`RingNode::at`).
fn ring_nodes(fleet: &Standalone) -> Vec<RingNode> {
    fleet
        .addrs()
        .into_iter()
        .zip(NAMES.iter().zip(WEIGHTS))
        .map(|(addr, (name, weight))| match name {
            Some(name) => RingNode::new(*name, addr, weight),
            None => RingNode::new(addr.clone(), addr, weight),
        })
        .collect()
}

async fn proxy(fleet: &Standalone, hash: KeyHash) -> Twemproxy {
    let builder = fleet
        .addrs()
        .into_iter()
        .zip(NAMES.iter().zip(WEIGHTS))
        .fold(
            Twemproxy::builder()
                .hash(twemproxy_hash(hash))
                .hash_tag("{}"),
            |b, (addr, (name, weight))| match name {
                Some(name) => b.named_server(addr, weight, *name),
                None => b.server(addr, weight),
            },
        );
    builder.start().await.expect("nutcracker")
}

async fn client(fleet: &Standalone, hash: Option<KeyHash>) -> shardis::Client {
    let mut builder = shardis::Client::builder()
        .ring(ring_nodes(fleet))
        .ring_placement(RingPlacement::Ketama(KetamaFlavor::Twemproxy))
        .ring_hash_tag(*b"{}");
    if let Some(hash) = hash {
        builder = builder.ring_key_hash(hash);
    }
    builder.build().await.expect("ring client")
}

async fn flush(fleet: &Standalone) {
    for node in fleet.nodes() {
        let mut conn = node.connection().await.expect("direct connection");
        let () = redis::cmd("FLUSHALL")
            .query_async(&mut conn)
            .await
            .expect("FLUSHALL");
    }
}

/// Plain keys, tagged keys, and keys with bytes >= 0x80.
fn keys(n: usize) -> Vec<Vec<u8>> {
    (0..n)
        .map(|i| match i % 4 {
            0 => format!("key:{i}").into_bytes(),
            1 => format!("user:{{{}}}:field{i}", i / 8).into_bytes(),
            2 => format!("clé:{i}:ключ").into_bytes(),
            _ => {
                let mut k = format!("bin:{i}:").into_bytes();
                k.extend([0x80, 0xff, (i % 251) as u8]);
                k
            }
        })
        .collect()
}

async fn write(conn: &mut impl redis::aio::ConnectionLike, keys: &[Vec<u8>]) {
    for chunk in keys.chunks(500) {
        let mut pipe = redis::pipe();
        for key in chunk {
            pipe.set(key.as_slice(), key.as_slice()).ignore();
        }
        let () = pipe.query_async(conn).await.expect("pipelined SETs");
    }
}

/// How many of `keys` read back as something other than the value written.
async fn misses(conn: &mut impl redis::aio::ConnectionLike, keys: &[Vec<u8>]) -> usize {
    let mut missed = 0;
    for chunk in keys.chunks(500) {
        let mut pipe = redis::pipe();
        for key in chunk {
            pipe.get(key.as_slice());
        }
        let values: Vec<Option<Vec<u8>>> = pipe.query_async(conn).await.expect("pipelined GETs");
        missed += chunk
            .iter()
            .zip(values)
            .filter(|(k, v)| v.as_deref() != Some(k.as_slice()))
            .count();
    }
    missed
}

/// Written through nutcracker, read through shardis; written through shardis, read through
/// nutcracker: no miss either way.
async fn round_trip(fleet: &Standalone, hash: KeyHash, n: usize) {
    flush(fleet).await;
    let keys = keys(n);
    let proxy = proxy(fleet, hash).await;
    let mut through_proxy = proxy.connection().await.expect("proxy connection");
    let mut shardis = client(fleet, Some(hash)).await;

    write(&mut through_proxy, &keys[..n / 2]).await;
    write(&mut shardis, &keys[n / 2..]).await;
    let total: u64 = {
        let mut t = 0;
        for node in fleet.nodes() {
            t += fleet.dbsize(node).await.expect("DBSIZE");
        }
        t
    };
    assert_eq!(total, n as u64, "{hash}: every key stored once");
    assert_eq!(
        misses(&mut shardis, &keys[..n / 2]).await,
        0,
        "{hash}: keys nutcracker wrote, read through shardis"
    );
    assert_eq!(
        misses(&mut through_proxy, &keys[n / 2..]).await,
        0,
        "{hash}: keys shardis wrote, read through nutcracker"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn md5_and_fnv1a_64_pools_read_back_every_key_through_shardis() {
    let fleet = Standalone::start(4).await.expect("4 standalone nodes");
    for hash in [KeyHash::Md5, KeyHash::TwemproxyFnv1a64] {
        round_trip(&fleet, hash, 20_000).await;
    }

    // The failure issue 15 reported: the default hash (fnv1a_64) against an md5 pool.
    flush(&fleet).await;
    let keys = keys(4_000);
    let proxy = proxy(&fleet, KeyHash::Md5).await;
    write(&mut proxy.connection().await.expect("proxy"), &keys).await;
    let mut default_hash = client(&fleet, None).await;
    let missed = misses(&mut default_hash, &keys).await;
    assert!(
        missed > keys.len() / 2,
        "a ring hashing with fnv1a_64 should miss most keys of an md5 pool: {missed}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_other_twemproxy_hash_reads_back_every_key() {
    let fleet = Standalone::start(4).await.expect("4 standalone nodes");
    for hash in KeyHash::ALL {
        if hash != KeyHash::Md5 && hash != KeyHash::TwemproxyFnv1a64 {
            round_trip(&fleet, hash, 2_000).await;
        }
    }
}
