//! A scriptable fake Redis node: real RESP in, whatever the test decides out.
//!
//! [`FakeNode`] listens on 127.0.0.1 (a port the OS picks), parses every command it receives
//! as a real server does (RESP arrays of bulk strings, split across reads at any byte, values
//! containing `*`, `$` or CRLF; inline commands too), and asks the test's script what to do
//! with each: answer with bytes (RESP or garbage), stay silent, close the connection, answer
//! after a delay, or stall and then drop. It records what it received, and the most commands
//! it parsed out of one read (to see whether a client coalesces its writes).
//!
//! Commands parsed from one read are answered with one write, in order; a delayed reply holds
//! back the replies after it, as a slow server would.
//!
//! ```
//! use shardis_testkit::{FakeNode, FakeReply};
//! use std::time::Duration;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> shardis_testkit::Result<()> {
//! let node = FakeNode::start(|args, ctx| match args[0].to_ascii_uppercase().as_slice() {
//!     b"ECHO" => FakeReply::bulk(args.get(1).map_or(&b""[..], |a| a)),
//!     b"GET" => FakeReply::moved(866, &ctx.addr()), // a MOVED loop: always to itself
//!     b"BOOM" => FakeReply::error("ERR boom"),
//!     b"SILENT" => FakeReply::Silence,
//!     b"GARBAGE" => FakeReply::Raw(b"?what\r\n".to_vec()),
//!     b"SLOW" => FakeReply::Delayed(Duration::from_millis(50), b"+late\r\n".to_vec()),
//!     b"STALL" => FakeReply::CloseAfter(Duration::from_millis(200)),
//!     b"QUIT" => FakeReply::Close,
//!     _ => FakeReply::ok(),
//! })
//! .await?;
//!
//! let mut conn = redis::Client::open(format!("redis://{}/", node.addr()))
//!     .unwrap()
//!     .get_multiplexed_async_connection()
//!     .await
//!     .unwrap();
//! let back: String = redis::cmd("ECHO").arg("a*b\r\n").query_async(&mut conn).await.unwrap();
//! assert_eq!(back, "a*b\r\n");
//! assert!(node.commands().iter().any(|c| c[0] == b"ECHO" && c[1] == b"a*b\r\n"));
//! node.stop().await;
//! # Ok(()) }
//! ```

use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};

use crate::error::{Result, TestkitError};

/// What the fake node does with one command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FakeReply {
    /// Writes these bytes: one reply, several, part of one, or anything that is no RESP.
    Raw(Vec<u8>),
    /// Answers nothing to this command and goes on with the next.
    Silence,
    /// Closes the connection at once: this command and every later one go unanswered (the
    /// replies to earlier commands of the same read are written first).
    Close,
    /// Waits, then writes these bytes. The replies to later commands on this connection wait
    /// behind it.
    Delayed(Duration, Vec<u8>),
    /// Answers nothing, keeps the connection open without reading for this long, then closes
    /// it: a node that stalls, then dies.
    CloseAfter(Duration),
}

impl FakeReply {
    /// `+OK`.
    pub fn ok() -> FakeReply {
        FakeReply::simple("OK")
    }

    /// A simple string, `+<text>`.
    pub fn simple(text: &str) -> FakeReply {
        FakeReply::Raw(format!("+{text}\r\n").into_bytes())
    }

    /// An error reply, `-<text>` (e.g. `"ERR boom"`, `"TRYAGAIN ..."`).
    pub fn error(text: &str) -> FakeReply {
        FakeReply::Raw(format!("-{text}\r\n").into_bytes())
    }

    /// `-MOVED <slot> <addr>`.
    pub fn moved(slot: u16, addr: &str) -> FakeReply {
        FakeReply::error(&format!("MOVED {slot} {addr}"))
    }

    /// `-ASK <slot> <addr>`.
    pub fn ask(slot: u16, addr: &str) -> FakeReply {
        FakeReply::error(&format!("ASK {slot} {addr}"))
    }

    /// An integer, `:<n>`.
    pub fn int(n: i64) -> FakeReply {
        FakeReply::Raw(format!(":{n}\r\n").into_bytes())
    }

    /// A bulk string.
    pub fn bulk(bytes: &[u8]) -> FakeReply {
        FakeReply::Raw(encode_bulk(bytes))
    }

    /// The null bulk string, `$-1`.
    pub fn nil() -> FakeReply {
        FakeReply::Raw(b"$-1\r\n".to_vec())
    }

    /// An array of bulk strings.
    pub fn array<I, B>(items: I) -> FakeReply
    where
        I: IntoIterator<Item = B>,
        B: AsRef<[u8]>,
    {
        let items: Vec<B> = items.into_iter().collect();
        let mut out = format!("*{}\r\n", items.len()).into_bytes();
        for item in &items {
            out.extend_from_slice(&encode_bulk(item.as_ref()));
        }
        FakeReply::Raw(out)
    }
}

fn encode_bulk(bytes: &[u8]) -> Vec<u8> {
    let mut out = format!("${}\r\n", bytes.len()).into_bytes();
    out.extend_from_slice(bytes);
    out.extend_from_slice(b"\r\n");
    out
}

/// Where a command arrived: given to the script with each command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FakeCtx {
    port: u16,
    connection: usize,
    index_on_connection: usize,
    index: usize,
}

impl FakeCtx {
    /// The fake node's own port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The fake node's own address, `"127.0.0.1:<port>"` (for a `MOVED` to itself).
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Which accepted connection this came on: 0 for the first, 1 for the next, ...
    pub fn connection(&self) -> usize {
        self.connection
    }

    /// The command's position on its connection, from 0.
    pub fn index_on_connection(&self) -> usize {
        self.index_on_connection
    }

    /// The command's position among every command the node received, from 0.
    pub fn index(&self) -> usize {
        self.index
    }
}

/// One command as received.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FakeCommand {
    /// The connection it came on (see [`FakeCtx::connection`]).
    pub connection: usize,
    /// Its arguments, the command name first (as sent, not upper-cased); never empty.
    pub args: Vec<Vec<u8>>,
}

type Script = dyn Fn(&[Vec<u8>], &FakeCtx) -> FakeReply + Send + Sync;

/// What the node's tasks share with its handle.
struct Shared {
    port: u16,
    script: Box<Script>,
    received: Mutex<Vec<FakeCommand>>,
    most_per_read: AtomicUsize,
    connections: AtomicUsize,
}

impl Shared {
    fn received(&self) -> MutexGuard<'_, Vec<FakeCommand>> {
        // A panicking script cannot leave the list half-written; keep going.
        self.received.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A fake Redis node on 127.0.0.1 whose every reply a script chooses (see the
/// [module documentation](self) for an example). Dropping it, or [`stop`](Self::stop), closes
/// the listener and every connection.
pub struct FakeNode {
    shared: Arc<Shared>,
    task: Mutex<Option<JoinHandle<()>>>,
}

impl fmt::Debug for FakeNode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FakeNode")
            .field("port", &self.shared.port)
            .finish_non_exhaustive()
    }
}

/// The largest read buffer; a client may write more, it arrives over several reads.
const READ_CHUNK: usize = 64 * 1024;

impl FakeNode {
    /// Binds 127.0.0.1:0 and serves every connection with `script`, which is called once per
    /// command, in order, with the command's arguments (never empty) and where it arrived.
    /// Must be called within a tokio runtime.
    pub async fn start<F>(script: F) -> Result<FakeNode>
    where
        F: Fn(&[Vec<u8>], &FakeCtx) -> FakeReply + Send + Sync + 'static,
    {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| TestkitError::io("binding a fake node on 127.0.0.1:0", e))?;
        let port = listener
            .local_addr()
            .map_err(|e| TestkitError::io("reading the fake node's address", e))?
            .port();
        let shared = Arc::new(Shared {
            port,
            script: Box::new(script),
            received: Mutex::new(Vec::new()),
            most_per_read: AtomicUsize::new(0),
            connections: AtomicUsize::new(0),
        });
        let task = tokio::spawn(accept(listener, shared.clone()));
        Ok(FakeNode {
            shared,
            task: Mutex::new(Some(task)),
        })
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.shared.port
    }

    /// `"127.0.0.1:<port>"`.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.shared.port)
    }

    /// Every command received so far, in order of arrival, with its connection.
    pub fn received(&self) -> Vec<FakeCommand> {
        self.shared.received().clone()
    }

    /// The arguments of every command received so far, in order of arrival.
    pub fn commands(&self) -> Vec<Vec<Vec<u8>>> {
        self.shared
            .received()
            .iter()
            .map(|c| c.args.clone())
            .collect()
    }

    /// How many commands it has received.
    pub fn command_count(&self) -> usize {
        self.shared.received().len()
    }

    /// The most commands parsed out of one read: above 1 when a client wrote several
    /// commands at once.
    pub fn max_commands_per_read(&self) -> usize {
        self.shared.most_per_read.load(Ordering::Relaxed)
    }

    /// How many connections it has accepted.
    pub fn connections(&self) -> usize {
        self.shared.connections.load(Ordering::Relaxed)
    }

    /// Closes the listener and every connection; when this returns, the port refuses
    /// connections. What was received stays readable.
    pub async fn stop(&self) {
        let task = self.task.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(task) = task {
            task.abort();
            let _ = task.await;
        }
    }
}

impl Drop for FakeNode {
    fn drop(&mut self) {
        if let Some(task) = self.task.lock().unwrap_or_else(|e| e.into_inner()).take() {
            task.abort();
        }
    }
}

/// Accepts connections until aborted; the connections' tasks live in a `JoinSet`, so they
/// are aborted with it.
async fn accept(listener: TcpListener, shared: Arc<Shared>) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((socket, _)) => {
                    let id = shared.connections.fetch_add(1, Ordering::Relaxed);
                    connections.spawn(serve(socket, id, shared.clone()));
                }
                Err(e) => {
                    tracing::debug!(error = %e, "fake node: accept failed");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            },
            // Reap finished connections so the set does not grow without bound.
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

/// Serves one connection until the peer closes it, the script closes it, or a protocol error.
async fn serve(mut socket: TcpStream, connection: usize, shared: Arc<Shared>) {
    let mut buf: Vec<u8> = Vec::new();
    let mut chunk = vec![0u8; READ_CHUNK];
    let mut on_connection = 0;
    loop {
        let n = match socket.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        buf.extend_from_slice(&chunk[..n]);
        let mut commands = Vec::new();
        let mut consumed = 0;
        let protocol_error = loop {
            match parse_command(&buf[consumed..]) {
                Ok(Some((args, used))) => {
                    consumed += used;
                    if !args.is_empty() {
                        commands.push(args);
                    }
                }
                Ok(None) => break None,
                Err(e) => break Some(e),
            }
        };
        buf.drain(..consumed);
        shared
            .most_per_read
            .fetch_max(commands.len(), Ordering::Relaxed);
        let mut out = Vec::new();
        for args in commands {
            let ctx = {
                let mut received = shared.received();
                let ctx = FakeCtx {
                    port: shared.port,
                    connection,
                    index_on_connection: on_connection,
                    index: received.len(),
                };
                received.push(FakeCommand {
                    connection,
                    args: args.clone(),
                });
                ctx
            };
            on_connection += 1;
            match (shared.script)(&args, &ctx) {
                FakeReply::Raw(bytes) => out.extend_from_slice(&bytes),
                FakeReply::Silence => {}
                FakeReply::Close => {
                    let _ = socket.write_all(&out).await;
                    return;
                }
                FakeReply::Delayed(delay, bytes) => {
                    if socket.write_all(&out).await.is_err() {
                        return;
                    }
                    out.clear();
                    tokio::time::sleep(delay).await;
                    out.extend_from_slice(&bytes);
                }
                FakeReply::CloseAfter(delay) => {
                    let _ = socket.write_all(&out).await;
                    tokio::time::sleep(delay).await;
                    return;
                }
            }
        }
        if let Some(e) = protocol_error {
            // As Redis does: say why, then close.
            out.extend_from_slice(format!("-ERR Protocol error: {e}\r\n").as_bytes());
            let _ = socket.write_all(&out).await;
            return;
        }
        if !out.is_empty() && socket.write_all(&out).await.is_err() {
            return;
        }
    }
}

/// Longest inline command or length line accepted (Redis allows 64 KiB inline).
const MAX_LINE: usize = 64 * 1024;
/// Most arguments in one command (Redis allows 1024*1024*1024; a test needs far fewer).
const MAX_ARGS: usize = 1 << 20;
/// Longest bulk string (Redis' default proto-max-bulk-len).
const MAX_BULK: usize = 512 * 1024 * 1024;

/// One parsed command and how many bytes it took.
type Parsed = (Vec<Vec<u8>>, usize);

/// Parses one command off the front of `buf`: `Ok(Some((args, bytes used)))`, `Ok(None)`
/// when more bytes are needed, or why the bytes are no command. An empty array or an empty
/// inline line yields empty `args`, which Redis ignores.
fn parse_command(buf: &[u8]) -> std::result::Result<Option<Parsed>, String> {
    let Some((first, mut at)) = line(buf, 0)? else {
        return Ok(None);
    };
    let Some(count) = first.strip_prefix(b"*") else {
        // An inline command: words separated by spaces.
        let args = first
            .split(|b| *b == b' ' || *b == b'\t')
            .filter(|w| !w.is_empty())
            .map(<[u8]>::to_vec)
            .collect();
        return Ok(Some((args, at)));
    };
    let count = number(count, "multibulk length")?;
    if count > MAX_ARGS as i64 {
        return Err("invalid multibulk length".into());
    }
    let count = usize::try_from(count).unwrap_or(0); // *-1 and *0: no arguments
    let mut args = Vec::with_capacity(count.min(1024));
    for _ in 0..count {
        let Some((head, data)) = line(buf, at)? else {
            return Ok(None);
        };
        let Some(len) = head.strip_prefix(b"$") else {
            return Err(format!(
                "expected '$', got '{}'",
                head.first().map_or('?', |b| char::from(*b))
            ));
        };
        let len = number(len, "bulk length")?;
        let len = usize::try_from(len)
            .ok()
            .filter(|l| *l <= MAX_BULK)
            .ok_or("invalid bulk length")?;
        let end = data + len;
        if buf.len() < end + 2 {
            return Ok(None);
        }
        if &buf[end..end + 2] != b"\r\n" {
            return Err("bulk string not followed by CRLF".into());
        }
        args.push(buf[data..end].to_vec());
        at = end + 2;
    }
    Ok(Some((args, at)))
}

/// The line starting at `at` (without its CRLF) and where the next begins; `None` when
/// the CRLF has not arrived yet.
fn line(buf: &[u8], at: usize) -> std::result::Result<Option<(&[u8], usize)>, String> {
    let rest = buf.get(at..).unwrap_or_default();
    match rest.windows(2).position(|w| w == b"\r\n") {
        Some(end) if end <= MAX_LINE => Ok(Some((&rest[..end], at + end + 2))),
        Some(_) => Err("too big line".into()),
        None if rest.len() > MAX_LINE + 1 => Err("too big line".into()),
        None => Ok(None),
    }
}

fn number(digits: &[u8], what: &str) -> std::result::Result<i64, String> {
    std::str::from_utf8(digits)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("invalid {what}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resp(args: &[&[u8]]) -> Vec<u8> {
        let mut out = format!("*{}\r\n", args.len()).into_bytes();
        for a in args {
            out.extend_from_slice(&encode_bulk(a));
        }
        out
    }

    /// Feeds `bytes` to the parser `step` bytes at a time, as reads would deliver them.
    fn parse_in_steps(bytes: &[u8], step: usize) -> Vec<Vec<Vec<u8>>> {
        let mut buf = Vec::new();
        let mut out = Vec::new();
        for piece in bytes.chunks(step) {
            buf.extend_from_slice(piece);
            while let Some((args, used)) = parse_command(&buf).unwrap() {
                buf.drain(..used);
                out.push(args);
            }
        }
        assert!(buf.is_empty(), "left over: {buf:?}");
        out
    }

    #[test]
    fn commands_split_at_every_byte_boundary_parse_the_same() {
        let tricky: &[&[u8]] = &[b"SET", b"*3\r\n$1\r\nx", b"", b"a*b$c\r\n*"];
        let mut stream = resp(tricky);
        stream.extend_from_slice(&resp(&[b"GET", b"*"]));
        stream.extend_from_slice(b"PING  inline\r\n");
        for step in 1..=stream.len() {
            let got = parse_in_steps(&stream, step);
            assert_eq!(got.len(), 3, "step {step}");
            assert_eq!(got[0], tricky, "step {step}");
            assert_eq!(got[1], [b"GET".to_vec(), b"*".to_vec()], "step {step}");
            assert_eq!(
                got[2],
                [b"PING".to_vec(), b"inline".to_vec()],
                "step {step}"
            );
        }
    }

    #[test]
    fn malformed_input_is_a_protocol_error_not_a_panic() {
        for bad in [
            &b"*x\r\n"[..],
            b"*1\r\n:5\r\n",
            b"*1\r\n$-5\r\n",
            b"*1\r\n$3\r\nabcXY",
            b"*99999999999\r\n",
        ] {
            assert!(parse_command(bad).is_err(), "{bad:?}");
        }
        assert!(parse_command(&vec![b'a'; MAX_LINE + 10]).is_err());
        assert_eq!(parse_command(b"*1\r\n$3\r\nab").unwrap(), None);
        assert_eq!(parse_command(b"*0\r\n").unwrap(), Some((vec![], 4)));
    }

    #[test]
    fn replies_encode_as_resp() {
        assert_eq!(FakeReply::ok(), FakeReply::Raw(b"+OK\r\n".to_vec()));
        assert_eq!(
            FakeReply::moved(866, "127.0.0.1:7000"),
            FakeReply::Raw(b"-MOVED 866 127.0.0.1:7000\r\n".to_vec())
        );
        assert_eq!(
            FakeReply::ask(1, "h:1"),
            FakeReply::Raw(b"-ASK 1 h:1\r\n".to_vec())
        );
        assert_eq!(FakeReply::int(-3), FakeReply::Raw(b":-3\r\n".to_vec()));
        assert_eq!(FakeReply::nil(), FakeReply::Raw(b"$-1\r\n".to_vec()));
        assert_eq!(
            FakeReply::array(["a", "bc"]),
            FakeReply::Raw(b"*2\r\n$1\r\na\r\n$2\r\nbc\r\n".to_vec())
        );
    }
}
