//! Records the golden vectors of twemproxy's placement that `shardis-ring` is tested against
//! without a server (`crates/shardis-ring/tests/vectors/twemproxy/`).
//!
//! Method: real standalone redis-servers behind a real `nutcracker`; every key is `SET`
//! through the proxy, then each server is asked `KEYS *`: the server that holds a key is
//! where twemproxy placed it. One pool (weighted, named and unnamed servers) is run once per
//! key hash; a second pool checks `hash_tag`; a third puts unnamed servers on port 11211 (on
//! 127.0.0.2..4, the rest of the loopback network) to see which name twemproxy hashes.
//!
//! It is not a test: run it by hand when the vectors must be made again, and commit them.
//!
//! ```text
//! cargo run -p shardis-tests --example record_twemproxy_vectors
//! ```

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use shardis_testkit::{Standalone, Twemproxy, TwemproxyHash};

const ALL: [TwemproxyHash; 12] = [
    TwemproxyHash::OneAtATime,
    TwemproxyHash::Md5,
    TwemproxyHash::Crc16,
    TwemproxyHash::Crc32,
    TwemproxyHash::Crc32a,
    TwemproxyHash::Fnv1_64,
    TwemproxyHash::Fnv1a64,
    TwemproxyHash::Fnv1_32,
    TwemproxyHash::Fnv1a32,
    TwemproxyHash::Hsieh,
    TwemproxyHash::Murmur,
    TwemproxyHash::Jenkins,
];

/// A backend of a pool: address, weight, optional name (as in `nutcracker.yml`).
struct Backend {
    addr: String,
    weight: u32,
    name: Option<&'static str>,
}

impl Backend {
    fn line(&self) -> String {
        match self.name {
            Some(name) => format!("{}:{} {name}", self.addr, self.weight),
            None => format!("{}:{}", self.addr, self.weight),
        }
    }
}

/// xorshift64*: deterministic keys without a dependency on a RNG's stream stability.
struct Keys(u64);

impl Keys {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

/// ASCII keys, random bytes of every length 1..=40 (all tail cases of the block hashes, and
/// bytes >= 0x80 that a signed `char` sign-extends), and UTF-8 keys.
fn main_keys() -> Vec<Vec<u8>> {
    let mut keys: Vec<Vec<u8>> = (0..400).map(|i| format!("key:{i}").into_bytes()).collect();
    keys.extend(["user:1000:name", "session:abc", "é", "ключ", "キー:42", "a"].map(Vec::from));
    let mut rng = Keys(0x9e37_79b9_7f4a_7c15);
    for i in 0..1200u64 {
        let len = 1 + (i % 40) as usize;
        keys.push((0..len).map(|_| (rng.next() >> 56) as u8).collect());
    }
    dedup(keys)
}

/// Keys with and without a `{}` tag, and the edge cases of the tag rule.
fn tag_keys() -> Vec<Vec<u8>> {
    let mut keys: Vec<Vec<u8>> = Vec::new();
    for i in 0..300 {
        keys.push(format!("user:{{{i}}}:name").into_bytes());
        keys.push(format!("{{{i}}}").into_bytes());
        keys.push(format!("plain:{i}").into_bytes());
        keys.push(format!("a{{}}b:{i}").into_bytes());
        keys.push(format!("open{{{i}").into_bytes());
        keys.push(format!("}}{{x{i}}}").into_bytes());
        keys.push(format!("{{a{i}}}{{b}}").into_bytes());
    }
    dedup(keys)
}

fn dedup(keys: Vec<Vec<u8>>) -> Vec<Vec<u8>> {
    let mut seen = std::collections::HashSet::new();
    keys.into_iter()
        .filter(|k| seen.insert(k.clone()))
        .collect()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// `redis-server` on `ip:port` (any loopback address), killed on drop.
struct Server {
    child: Child,
    addr: String,
}

impl Server {
    async fn start(ip: &str, port: u16) -> Server {
        let binary = shardis_testkit::Binary::Server
            .locate()
            .expect("redis-server");
        let child = Command::new(binary)
            .args(["--bind", ip, "--port", &port.to_string()])
            .args(["--save", "", "--appendonly", "no", "--protected-mode", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn redis-server");
        let server = Server {
            child,
            addr: format!("{ip}:{port}"),
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if server.connection().await.is_ok() {
                return server;
            }
            assert!(Instant::now() < deadline, "{} does not answer", server.addr);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn connection(&self) -> redis::RedisResult<redis::aio::MultiplexedConnection> {
        redis::Client::open(format!("redis://{}/", self.addr))?
            .get_multiplexed_async_connection()
            .await
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn connect(addr: &str) -> redis::aio::MultiplexedConnection {
    redis::Client::open(format!("redis://{addr}/"))
        .expect("url")
        .get_multiplexed_async_connection()
        .await
        .expect("connect")
}

/// Routes `keys` through a nutcracker over `pool` with `hash` and returns, per key, the index
/// of the backend that holds it.
async fn placement(
    pool: &[Backend],
    hash: TwemproxyHash,
    tag: Option<&str>,
    keys: &[Vec<u8>],
) -> Vec<usize> {
    let mut direct = Vec::new();
    for b in pool {
        let mut conn = connect(&b.addr).await;
        let () = redis::cmd("FLUSHALL")
            .query_async(&mut conn)
            .await
            .expect("FLUSHALL");
        direct.push(conn);
    }
    let mut builder = pool
        .iter()
        .fold(Twemproxy::builder().hash(hash), |b, s| match s.name {
            Some(name) => b.named_server(s.addr.clone(), s.weight, name),
            None => b.server(s.addr.clone(), s.weight),
        });
    if let Some(tag) = tag {
        builder = builder.hash_tag(tag);
    }
    let proxy = builder.start().await.expect("nutcracker");
    let mut conn = proxy.connection().await.expect("proxy connection");
    for chunk in keys.chunks(200) {
        let mut pipe = redis::pipe();
        for key in chunk {
            pipe.set(key.as_slice(), 1).ignore();
        }
        let () = pipe
            .query_async(&mut conn)
            .await
            .unwrap_or_else(|e| panic!("SET through nutcracker: {e}\n{}", proxy.log_tail()));
    }
    let mut at: HashMap<Vec<u8>, usize> = HashMap::new();
    for (i, conn) in direct.iter_mut().enumerate() {
        let held: Vec<Vec<u8>> = redis::cmd("KEYS")
            .arg("*")
            .query_async(conn)
            .await
            .expect("KEYS");
        for key in held {
            assert!(at.insert(key, i).is_none(), "a key on two servers");
        }
    }
    keys.iter()
        .map(|k| {
            *at.get(k)
                .unwrap_or_else(|| panic!("key {} is nowhere", hex(k)))
        })
        .collect()
}

fn header(title: &str, pool: &[Backend], tag: Option<&str>, hashes: &[TwemproxyHash]) -> String {
    let version = Command::new(
        shardis_testkit::Binary::Nutcracker
            .locate()
            .expect("nutcracker"),
    )
    .arg("--version")
    .output()
    .map(|o| {
        // nutcracker prints its version on stderr.
        let both = [o.stdout, o.stderr].concat();
        let text = String::from_utf8_lossy(&both).into_owned();
        let first = text.lines().next().unwrap_or_default();
        first.trim_start_matches("This is ").trim().to_string()
    })
    .unwrap_or_default();
    let mut out = format!(
        "# {title}\n# recorded from a real {version} ({}), distribution: ketama\n",
        std::env::consts::ARCH
    );
    for b in pool {
        out.push_str(&format!("# server\t{}\n", b.line()));
    }
    if let Some(tag) = tag {
        out.push_str(&format!("# hash_tag\t{tag}\n"));
    }
    out.push_str("# key (hex)");
    for h in hashes {
        out.push('\t');
        out.push_str(h.name());
    }
    out.push_str("\n# each value: index (0-based, config order) of the server that held the key\n");
    out
}

async fn record(
    file: &str,
    title: &str,
    pool: &[Backend],
    tag: Option<&str>,
    hashes: &[TwemproxyHash],
    keys: &[Vec<u8>],
) {
    let mut columns = Vec::new();
    for &h in hashes {
        eprintln!("{file}: {}", h.name());
        columns.push(placement(pool, h, tag, keys).await);
    }
    let mut out = header(title, pool, tag, hashes);
    for (i, key) in keys.iter().enumerate() {
        out.push_str(&hex(key));
        for col in &columns {
            let _ = write!(out, "\t{}", col[i]);
        }
        out.push('\n');
    }
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../crates/shardis-ring/tests/vectors/twemproxy");
    std::fs::create_dir_all(&dir).expect("vectors dir");
    std::fs::write(dir.join(file), out).expect("write vectors");
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let fleet = Standalone::start(5).await.expect("5 standalone nodes");
    let addrs = fleet.addrs();
    let pool = |names: [Option<&'static str>; 5]| -> Vec<Backend> {
        let weights = [1, 2, 3, 1, 5];
        (0..5)
            .map(|i| Backend {
                addr: addrs[i].clone(),
                weight: weights[i],
                name: names[i],
            })
            .collect()
    };
    let mixed = pool([Some("alpha"), None, Some("gamma"), None, None]);
    record(
        "all_hashes.tsv",
        "5 weighted servers (2 named, 3 unnamed), every key hash",
        &mixed,
        None,
        &ALL,
        &main_keys(),
    )
    .await;
    let named = pool([Some("a"), Some("b"), Some("c"), Some("d"), Some("e")]);
    record(
        "hash_tag.tsv",
        "5 weighted named servers, hash_tag {}",
        &named,
        Some("{}"),
        &[
            TwemproxyHash::Md5,
            TwemproxyHash::Fnv1a64,
            TwemproxyHash::Murmur,
        ],
        &tag_keys(),
    )
    .await;

    // Unnamed servers on port 11211 (and one elsewhere): which name is hashed?
    let mut servers = Vec::new();
    for ip in ["127.0.0.2", "127.0.0.3", "127.0.0.4"] {
        servers.push(Server::start(ip, 11211).await);
    }
    let mut on_11211: Vec<Backend> = servers
        .iter()
        .map(|s| Backend {
            addr: s.addr.clone(),
            weight: 1,
            name: None,
        })
        .collect();
    on_11211.push(Backend {
        addr: addrs[0].clone(),
        weight: 1,
        name: None,
    });
    record(
        "port_11211.tsv",
        "unnamed servers: three on port 11211, one elsewhere",
        &on_11211,
        None,
        &[TwemproxyHash::Md5, TwemproxyHash::Fnv1a64],
        &main_keys(),
    )
    .await;
}
