//! The scriptable fake node over real sockets: RESP in at any split, scripted replies out.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use redis::Value;
use shardis_testkit::{FakeNode, FakeReply};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The replies the pool and cluster unit tests of shardis need.
async fn scripted() -> FakeNode {
    FakeNode::start(|args, ctx| match args[0].to_ascii_uppercase().as_slice() {
        b"ECHO" => FakeReply::bulk(args.get(1).map_or(&b""[..], |a| a)),
        b"BOOM" => FakeReply::error("ERR boom"),
        b"SILENT" => FakeReply::Silence,
        b"GARBAGE" => FakeReply::Raw(b"?what\r\n".to_vec()),
        b"SLOW" => FakeReply::Delayed(Duration::from_millis(100), b"+slow\r\n".to_vec()),
        b"STALL" => FakeReply::CloseAfter(Duration::from_millis(200)),
        b"QUIT" => FakeReply::Close,
        b"GET" => FakeReply::moved(42, &ctx.addr()),
        _ => FakeReply::ok(),
    })
    .await
    .unwrap()
}

async fn raw(node: &FakeNode) -> TcpStream {
    TcpStream::connect(node.addr()).await.unwrap()
}

/// Reads until `want` bytes arrived (or the peer closed / 2 s passed).
async fn read_exactly(socket: &mut TcpStream, want: usize) -> Vec<u8> {
    let mut out = Vec::new();
    let mut chunk = [0u8; 4096];
    let deadline = Instant::now() + Duration::from_secs(2);
    while out.len() < want {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, socket.read(&mut chunk)).await {
            Ok(Ok(n)) if n > 0 => out.extend_from_slice(&chunk[..n]),
            _ => break,
        }
    }
    out
}

async fn redis_conn(node: &FakeNode) -> redis::aio::MultiplexedConnection {
    let config =
        redis::AsyncConnectionConfig::new().set_response_timeout(Some(Duration::from_millis(300)));
    redis::Client::open(format!("redis://{}/?protocol=resp2", node.addr()))
        .unwrap()
        .get_multiplexed_async_connection_with_config(&config)
        .await
        .unwrap()
}

#[tokio::test]
async fn echo_errors_and_values_with_stars_through_redis_rs() {
    let node = scripted().await;
    let mut conn = redis_conn(&node).await;
    let value = "*2\r\n$3\r\nGET\r\n * $ ";
    let back: String = redis::cmd("ECHO")
        .arg(value)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(back, value);
    let err = redis::cmd("BOOM")
        .query_async::<Value>(&mut conn)
        .await
        .unwrap_err();
    assert_eq!(err.detail(), Some("boom"), "{err:?}");
    assert!(
        node.commands()
            .iter()
            .any(|c| c == &[b"ECHO".to_vec(), value.as_bytes().to_vec()])
    );
}

#[tokio::test]
async fn bytes_written_one_at_a_time_are_one_command() {
    let node = scripted().await;
    let mut socket = raw(&node).await;
    for b in b"*2\r\n$4\r\nECHO\r\n$5\r\na*b*c\r\n" {
        socket.write_all(&[*b]).await.unwrap();
        socket.flush().await.unwrap();
    }
    assert_eq!(read_exactly(&mut socket, 11).await, b"$5\r\na*b*c\r\n");
    assert_eq!(node.command_count(), 1);
}

#[tokio::test]
async fn one_write_of_many_commands_is_answered_in_order_and_counted() {
    let node = scripted().await;
    let mut socket = raw(&node).await;
    let mut batch = Vec::new();
    for word in ["a", "b", "c"] {
        batch.extend_from_slice(format!("*2\r\n$4\r\nECHO\r\n$1\r\n{word}\r\n").as_bytes());
    }
    batch.extend_from_slice(b"*1\r\n$6\r\nSILENT\r\n*1\r\n$4\r\nBOOM\r\n");
    socket.write_all(&batch).await.unwrap();
    let want = b"$1\r\na\r\n$1\r\nb\r\n$1\r\nc\r\n-ERR boom\r\n";
    assert_eq!(read_exactly(&mut socket, want.len()).await, want);
    assert_eq!(node.max_commands_per_read(), 5);
    assert_eq!(node.received().len(), 5);
    assert!(node.received().iter().all(|c| c.connection == 0));
}

#[tokio::test]
async fn a_delayed_reply_holds_back_the_ones_after_it() {
    let node = scripted().await;
    let mut socket = raw(&node).await;
    let started = Instant::now();
    socket
        .write_all(b"*1\r\n$4\r\nSLOW\r\n*2\r\n$4\r\nECHO\r\n$1\r\nx\r\n")
        .await
        .unwrap();
    assert_eq!(read_exactly(&mut socket, 14).await, b"+slow\r\n$1\r\nx\r\n");
    assert!(started.elapsed() >= Duration::from_millis(100));
}

#[tokio::test]
async fn silence_garbage_close_and_stall() {
    let node = scripted().await;
    let mut conn = redis_conn(&node).await;
    // Silence: the client's response timeout fires.
    let err = redis::cmd("SILENT")
        .query_async::<Value>(&mut conn)
        .await
        .unwrap_err();
    assert!(err.is_timeout(), "{err:?}");

    // Garbage: no valid RESP comes back.
    let mut socket = raw(&node).await;
    socket.write_all(b"*1\r\n$7\r\nGARBAGE\r\n").await.unwrap();
    assert_eq!(read_exactly(&mut socket, 7).await, b"?what\r\n");

    // Close: the earlier reply of the same read is written, then EOF.
    let mut socket = raw(&node).await;
    socket
        .write_all(b"*1\r\n$4\r\nPING\r\n*1\r\n$4\r\nQUIT\r\n*1\r\n$4\r\nPING\r\n")
        .await
        .unwrap();
    assert_eq!(read_exactly(&mut socket, 100).await, b"+OK\r\n");

    // Stall: nothing for 200 ms, then EOF.
    let mut socket = raw(&node).await;
    let started = Instant::now();
    socket.write_all(b"*1\r\n$5\r\nSTALL\r\n").await.unwrap();
    assert_eq!(read_exactly(&mut socket, 1).await, b"");
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(190) && waited < Duration::from_secs(2),
        "{waited:?}"
    );
    assert_eq!(node.connections(), 4);
}

#[tokio::test]
async fn get_is_moved_to_the_node_itself() {
    let node = scripted().await;
    let mut socket = raw(&node).await;
    socket
        .write_all(b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n")
        .await
        .unwrap();
    let want = format!("-MOVED 42 127.0.0.1:{}\r\n", node.port());
    assert_eq!(read_exactly(&mut socket, want.len()).await, want.as_bytes());
}

#[tokio::test]
async fn the_script_sees_where_each_command_arrived() {
    let seen = Arc::new(AtomicUsize::new(0));
    let counter = seen.clone();
    let node = FakeNode::start(move |_, ctx| {
        counter.fetch_add(1, Ordering::Relaxed);
        FakeReply::int(
            (ctx.connection() * 100 + ctx.index_on_connection() * 10 + ctx.index()) as i64,
        )
    })
    .await
    .unwrap();
    let mut a = raw(&node).await;
    a.write_all(b"PING\r\nPING\r\n").await.unwrap();
    assert_eq!(read_exactly(&mut a, 8).await, b":0\r\n:11\r\n");
    let mut b = raw(&node).await;
    b.write_all(b"*1\r\n$4\r\nPING\r\n").await.unwrap();
    assert_eq!(read_exactly(&mut b, 6).await, b":102\r\n");
    assert_eq!(seen.load(Ordering::Relaxed), 3);
}

#[tokio::test]
async fn a_protocol_error_is_answered_like_redis_and_closes() {
    let node = scripted().await;
    let mut socket = raw(&node).await;
    socket.write_all(b"*1\r\n:5\r\n").await.unwrap();
    let reply = read_exactly(&mut socket, 1000).await;
    assert!(
        reply.starts_with(b"-ERR Protocol error: expected '$'"),
        "{}",
        String::from_utf8_lossy(&reply)
    );
}

#[tokio::test]
async fn stop_closes_the_port_and_every_connection() {
    let node = scripted().await;
    let mut socket = raw(&node).await;
    socket.write_all(b"PING\r\n").await.unwrap();
    assert_eq!(read_exactly(&mut socket, 5).await, b"+OK\r\n");
    node.stop().await;
    assert_eq!(read_exactly(&mut socket, 1).await, b"", "connection closed");
    assert!(TcpStream::connect(node.addr()).await.is_err());
    assert_eq!(node.command_count(), 1, "what was received stays readable");
    node.stop().await; // twice is fine
}
