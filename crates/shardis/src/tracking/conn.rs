//! One tracking connection to one node: `CLIENT ID`, `CLIENT TRACKING on REDIRECT <its own id>
//! BCAST PREFIX ...`, then `SUBSCRIBE __redis__:invalidate`, all on the same RESP2 connection
//! (Redis 7 accepts a client redirecting to itself: it then receives its invalidations as
//! pub/sub messages, which is what a RESP2 connection can read). One reader task turns each
//! frame into an [`Invalidation`] for the stream; when the connection ends it sends
//! [`Invalidation::Broken`] itself, before anything else can happen, then tells the
//! supervisor.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use redis::Value;
use shardis_resp::Decoder;
use shardis_slots::Endpoint;
use tokio::sync::{mpsc, oneshot};

use super::frame::{CHANNEL, Frame, classify};
use super::{Invalidation, TRACKING_CLIENT_NAME};
use crate::error::Error;
use crate::net::frames::{self, Ended, READ_CHUNK, parse_one};
use crate::net::{ReadHalf, WriteHalf};
use crate::settings::Settings;

/// What the connection and its supervisor share.
pub(crate) struct Shared {
    pub id: u64,
    pub node: Endpoint,
    closed: AtomicBool,
    /// How many `PING`s were answered.
    pub pongs: AtomicU64,
}

/// An open, subscribed tracking connection; its reader stops when it is dropped.
pub(crate) struct TrackConn {
    pub shared: Arc<Shared>,
    writer: WriteHalf,
    _stop: oneshot::Sender<()>,
}

/// Reads `n` replies off the connection (the handshake: plain request/response).
async fn replies(
    reader: &mut ReadHalf,
    decoder: &mut Decoder,
    buf: &mut Vec<u8>,
    n: usize,
) -> std::io::Result<Vec<Value>> {
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        match parse_one(decoder, buf) {
            Ok(Some(value)) => out.push(value),
            Ok(None) => {
                if reader.read_buf(buf).await? == 0 {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        "closed during the tracking handshake",
                    ));
                }
            }
            Err(e) => return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, e)),
        }
    }
    Ok(out)
}

/// The `CLIENT TRACKING` command for `prefixes`, redirected to the connection `id`.
pub(crate) fn tracking_command(id: i64, prefixes: &[Vec<u8>]) -> redis::Cmd {
    let mut cmd = redis::cmd("CLIENT");
    cmd.arg("TRACKING")
        .arg("on")
        .arg("REDIRECT")
        .arg(id)
        .arg("BCAST");
    for prefix in prefixes {
        cmd.arg("PREFIX").arg(prefix.as_slice());
    }
    cmd
}

impl TrackConn {
    /// Connects to `node`, turns tracking on for `prefixes` and subscribes; then starts the
    /// reader, which sends invalidations to `out` and its end (`conn` id) to `ended`.
    pub async fn open(
        id: u64,
        node: &Endpoint,
        settings: &Settings,
        prefixes: &[Vec<u8>],
        out: mpsc::UnboundedSender<Invalidation>,
        ended: mpsc::UnboundedSender<u64>,
    ) -> Result<TrackConn, Error> {
        let label = node.to_string();
        let fail = |message: String| Error::connection(&label, message);
        let credentials = crate::credentials::for_connection(settings, &label).await?;
        let stream = crate::net::open_transport(node, settings).await?;
        let (mut reader, mut writer) = stream.into_split();
        // No READONLY: this connection reads nothing (and standalone replicas refuse it).
        let plain = Settings {
            read_from: crate::ReadFrom::Primary,
            ..settings.clone()
        };
        let mut hello = crate::net::handshake(&plain, credentials.as_ref(), TRACKING_CLIENT_NAME);
        let handshake_len = hello.len();
        hello.cmd("CLIENT").arg("ID");
        let mut buf = Vec::with_capacity(READ_CHUNK);
        let mut decoder = Decoder::new();
        let exchange = async {
            writer.write_all(&hello.get_packed_pipeline()).await?;
            let first = replies(&mut reader, &mut decoder, &mut buf, hello.len()).await?;
            Ok::<_, std::io::Error>(first)
        };
        let wait = settings.connect_timeout + settings.response_timeout;
        let first = tokio::time::timeout(wait, exchange)
            .await
            .map_err(|_| fail("no answer to the tracking handshake".into()))
            .and_then(|replies| replies.map_err(|e| fail(e.to_string())))
            .map_err(|e| crate::net::tls_failure_or(&writer, &label, e))?;
        crate::net::check_handshake(&hello, &first, &label, credentials.as_ref())?;
        let client_id = match first.get(handshake_len) {
            Some(Value::Int(id)) => *id,
            other => return Err(fail(format!("CLIENT ID answered {other:?}"))),
        };

        // Tracking before the SUBSCRIBE: a RESP2 connection in subscribed mode accepts nothing
        // but (un)subscribe commands and PING.
        let mut setup = redis::pipe();
        setup.add_command(tracking_command(client_id, prefixes));
        setup.cmd("SUBSCRIBE").arg(CHANNEL);
        let exchange = async {
            writer.write_all(&setup.get_packed_pipeline()).await?;
            replies(&mut reader, &mut decoder, &mut buf, 2).await
        };
        let answers = tokio::time::timeout(settings.response_timeout, exchange)
            .await
            .map_err(|_| fail("no answer to CLIENT TRACKING / SUBSCRIBE".into()))?
            .map_err(|e| fail(e.to_string()))?;
        let mut answers = answers.into_iter();
        match answers.next() {
            Some(Value::Okay) => {}
            Some(Value::ServerError(e)) => {
                return Err(Error::TrackingRefused {
                    node: label,
                    reply: format!("{} {}", e.code(), e.details().unwrap_or_default()),
                });
            }
            other => return Err(fail(format!("CLIENT TRACKING answered {other:?}"))),
        }
        match answers.next().map(classify) {
            Some(Frame::Subscribed) => {}
            other => return Err(fail(format!("SUBSCRIBE answered {other:?}"))),
        }

        let shared = Arc::new(Shared {
            id,
            node: node.clone(),
            closed: AtomicBool::new(false),
            pongs: AtomicU64::new(0),
        });
        let (stop, stopped) = oneshot::channel();
        tokio::spawn(read_frames(
            shared.clone(),
            reader,
            buf,
            decoder,
            stopped,
            out,
            ended,
        ));
        Ok(TrackConn {
            shared,
            writer,
            _stop: stop,
        })
    }

    pub fn is_closed(&self) -> bool {
        self.shared.closed.load(Ordering::Acquire)
    }

    /// Writes the heartbeat `PING` (answered by a `pong` frame the reader counts).
    pub async fn ping(&mut self) -> std::io::Result<()> {
        self.writer.write_all(b"*1\r\n$4\r\nPING\r\n").await
    }
}

/// The reader: every frame of the connection, until it ends or is dropped.
async fn read_frames(
    shared: Arc<Shared>,
    mut reader: ReadHalf,
    mut buf: Vec<u8>,
    mut decoder: Decoder,
    mut stop: oneshot::Receiver<()>,
    out: mpsc::UnboundedSender<Invalidation>,
    ended: mpsc::UnboundedSender<u64>,
) {
    let label = shared.node.to_string();
    let on_frame = |value| {
        match classify(value) {
            Frame::Keys(keys) => {
                let _ = out.send(Invalidation::Keys(keys));
            }
            Frame::Flush => {
                let _ = out.send(Invalidation::Flush {
                    node: label.clone(),
                });
            }
            Frame::Pong => {
                shared.pongs.fetch_add(1, Ordering::AcqRel);
            }
            Frame::Subscribed => {}
            Frame::Unexpected(what) => {
                return Err(format!("{label} sent an unexpected frame: {what}"));
            }
        }
        Ok(())
    };
    let reading = frames::read_frames(
        &mut reader,
        &mut buf,
        &mut decoder,
        &mut stop,
        &label,
        "closed the tracking connection",
        on_frame,
    );
    let outcome = reading.await;
    shared.closed.store(true, Ordering::Release);
    // Stopped: dropped by the supervisor, which reports the loss itself.
    let Ended::Lost(why) = outcome else {
        return;
    };
    tracing::info!(node = %shared.node, %why, "tracking connection lost");
    // The loss first: whatever the consumer does next, it knows invalidations may be missing.
    let _ = out.send(Invalidation::Broken {
        node: shared.node.to_string(),
        reason: why,
    });
    let _ = ended.send(shared.id);
}
