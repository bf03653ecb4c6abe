//! Helpers shared by the cache's integration tests (`mod support;` in each): polling with a
//! generous deadline, reads and writes of a `Cache<u64>`, killing tracking connections, and the
//! runtime of the multi-process (`harness = false`) tests.
// Each test binary uses a different subset.
#![allow(dead_code)]

use std::time::{Duration, Instant};

use shardis_cache::{Cache, Source};

/// The two-worker runtime a multi-process test's `main` runs on (parent and children alike);
/// `None` (said on stderr) when it cannot be built.
pub fn runtime() -> Option<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .inspect_err(|e| eprintln!("runtime: {e}"))
        .ok()
}

/// Polls `ok` until it holds; fails the test after 60 s.
pub async fn until(what: &str, mut ok: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !ok().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Write-through of `v` (the database write is a no-op).
pub async fn write(cache: &Cache<u64>, id: &str, v: u64) {
    cache
        .set_through(id, v, |_| async { Ok::<_, std::io::Error>(()) })
        .await
        .expect("write");
}

/// A read (the loader's value is 0) and where it came from.
pub async fn read(cache: &Cache<u64>, id: &str) -> (u64, Source) {
    let f = cache
        .fetch(id, || async { Ok::<_, std::io::Error>(Some(0u64)) })
        .await
        .expect("read");
    (f.value.unwrap_or(0), f.source)
}

/// Reads until `expected` comes from L1 (after a write elsewhere, the old value may be served
/// until its invalidation arrives: the invalidation delay).
pub async fn until_local(cache: &Cache<u64>, id: &str, expected: u64) {
    until("an L1 hit", async || {
        read(cache, id).await == (expected, Source::Local)
    })
    .await;
}

/// Kills (`CLIENT KILL ID`) every tracking connection of the node `conn` is connected to;
/// returns how many.
pub async fn kill_tracking_on(
    conn: &mut redis::aio::MultiplexedConnection,
) -> redis::RedisResult<usize> {
    let list: String = redis::cmd("CLIENT").arg("LIST").query_async(conn).await?;
    let mut killed = 0;
    for line in list.lines() {
        let field = |name: &str| {
            line.split(' ')
                .find_map(|f| f.strip_prefix(name)?.strip_prefix('='))
        };
        if field("name") == Some(shardis::TRACKING_CLIENT_NAME)
            && let Some(id) = field("id")
        {
            let n: i64 = redis::cmd("CLIENT")
                .arg("KILL")
                .arg("ID")
                .arg(id)
                .query_async(conn)
                .await?;
            killed += n as usize;
        }
    }
    Ok(killed)
}
