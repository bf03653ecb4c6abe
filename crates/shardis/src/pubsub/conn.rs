//! One subscribed connection to one node, owned by one [`Subscription`](crate::Subscription).
//!
//! A subscribed connection answers nothing but (un)subscribe commands, and interleaves their
//! confirmations with published messages. One reader task parses every frame: a message goes
//! straight to its subscription's channel (only that subscription's connections feed it); a
//! confirmation or an error answers the oldest command still waiting (the server answers
//! commands in order); a `sunsubscribe` nobody asked for — the server dropping a shard channel
//! whose slot moved away — and the end of the connection are reported to the supervisor.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use shardis_resp::Decoder;
use shardis_slots::Endpoint;
use tokio::sync::{mpsc, oneshot};

use super::Kind;
use super::message::{Frame, Message, classify};
use crate::error::Error;
use crate::net::frames::{self, Ended, READ_CHUNK, parse_one};
use crate::net::{ReadHalf, WriteHalf};
use crate::settings::Settings;

/// The name subscribed connections give themselves (`CLIENT LIST`, `CLIENT KILL`).
pub(crate) const CLIENT_NAME: &str = "shardis-pubsub";

/// What a connection tells its supervisor.
#[derive(Debug)]
pub(crate) enum Event {
    /// The connection `conn` ended (the server closed it, it broke, or it spoke nonsense).
    Closed { conn: u64, why: String },
    /// The server dropped `name` on its own: Redis 7 `sunsubscribe`s the shard channels of a
    /// slot that moved away from the node.
    Dropped {
        conn: u64,
        kind: Kind,
        name: Vec<u8>,
    },
}

/// Why a command on a subscribed connection did not do what it asked.
#[derive(Debug)]
pub(crate) enum CommandError {
    /// The server refused it (`MOVED`, `CROSSSLOT`, `NOPERM`, ...).
    Refused { code: String, detail: String },
    /// The connection failed or did not answer in time: it is closed.
    Broken(Error),
}

/// A command waiting for its confirmations (one per name) or an error.
struct Pending {
    kind: Kind,
    unsubscribe: bool,
    left: Vec<Vec<u8>>,
    reply: oneshot::Sender<Result<(), (String, String)>>,
}

struct Shared {
    id: u64,
    label: String,
    pending: parking_lot::Mutex<VecDeque<Pending>>,
    closed: AtomicBool,
}

/// An open subscribed connection; the reader stops when it is dropped.
pub(crate) struct PubSubConn {
    shared: Arc<Shared>,
    writer: WriteHalf,
    wait: Duration,
    _stop: oneshot::Sender<()>,
}

impl PubSubConn {
    /// Connects to `endpoint`, authenticates as the settings say, and starts the reader, which
    /// sends messages to `deliver` and events to `events`.
    pub async fn open(
        id: u64,
        endpoint: &Endpoint,
        settings: &Settings,
        deliver: mpsc::UnboundedSender<Message>,
        events: mpsc::UnboundedSender<Event>,
    ) -> Result<PubSubConn, Error> {
        let label = endpoint.to_string();
        let fail = |message: String| Error::connection(&label, message);
        let credentials = crate::credentials::for_connection(settings, &label).await?;
        let stream = crate::net::open_transport(endpoint, settings).await?;
        let (mut reader, mut writer) = stream.into_split();

        // The handshake is plain request/response, before anything is subscribed.
        let hello = crate::net::handshake(settings, credentials.as_ref(), CLIENT_NAME);
        let mut buf = Vec::with_capacity(READ_CHUNK);
        let mut decoder = Decoder::new();
        let exchange = async {
            writer.write_all(&hello.get_packed_pipeline()).await?;
            let mut replies = Vec::new();
            while replies.len() < hello.len() {
                match parse_one(&mut decoder, &mut buf) {
                    Ok(Some(value)) => replies.push(value),
                    Ok(None) => {
                        if reader.read_buf(&mut buf).await? == 0 {
                            return Err(std::io::Error::new(
                                std::io::ErrorKind::UnexpectedEof,
                                "closed during the handshake",
                            ));
                        }
                    }
                    Err(e) => {
                        return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, e));
                    }
                }
            }
            Ok(replies)
        };
        let replies = tokio::time::timeout(
            settings.connect_timeout + settings.response_timeout,
            exchange,
        )
        .await
        .map_err(|_| fail("no answer to the connection handshake".into()))
        .and_then(|replies| replies.map_err(|e| fail(e.to_string())))
        .map_err(|e| crate::net::tls_failure_or(&writer, &label, e))?;
        crate::net::check_handshake(&hello, &replies, &label, credentials.as_ref())?;

        let shared = Arc::new(Shared {
            id,
            label,
            pending: parking_lot::Mutex::new(VecDeque::new()),
            closed: AtomicBool::new(false),
        });
        let (stop, stopped) = oneshot::channel();
        tokio::spawn(read_frames(
            shared.clone(),
            reader,
            buf,
            decoder,
            stopped,
            deliver,
            events,
        ));
        Ok(PubSubConn {
            shared,
            writer,
            wait: settings.deadline,
            _stop: stop,
        })
    }

    /// This connection's id (events name it).
    pub fn id(&self) -> u64 {
        self.shared.id
    }

    /// The node's address, for errors and logs.
    pub fn label(&self) -> &str {
        &self.shared.label
    }

    /// Whether the connection ended; its subscriptions are gone with it.
    pub fn is_closed(&self) -> bool {
        self.shared.closed.load(Ordering::Acquire)
    }

    /// Sends `(P|S)(UN)SUBSCRIBE names...` and waits until the server confirmed every name.
    /// On a timeout or a write failure the connection is closed: whatever it held is gone.
    pub async fn command(
        &mut self,
        kind: Kind,
        unsubscribe: bool,
        names: &[Vec<u8>],
    ) -> Result<(), CommandError> {
        if names.is_empty() {
            return Ok(());
        }
        let mut cmd = redis::cmd(kind.command(unsubscribe));
        for name in names {
            cmd.arg(name.as_slice());
        }
        let (reply, answer) = oneshot::channel();
        {
            let mut pending = self.shared.pending.lock();
            if self.is_closed() {
                return Err(CommandError::Broken(
                    self.broken("the connection is closed"),
                ));
            }
            // Registered before the write: the confirmation may come before the write returns.
            pending.push_back(Pending {
                kind,
                unsubscribe,
                left: names.to_vec(),
                reply,
            });
        }
        let packed = cmd.get_packed_command();
        let exchange = async {
            self.writer
                .write_all(&packed)
                .await
                .map_err(|e| e.to_string())?;
            answer
                .await
                .map_err(|_| "the connection closed".to_string())
        };
        match tokio::time::timeout(self.wait, exchange).await {
            Ok(Ok(Ok(()))) => Ok(()),
            Ok(Ok(Err((code, detail)))) => Err(CommandError::Refused { code, detail }),
            Ok(Err(why)) => {
                self.close();
                Err(CommandError::Broken(self.broken(&why)))
            }
            Err(_) => {
                self.close();
                Err(CommandError::Broken(Error::timeout(
                    self.wait,
                    1,
                    None,
                    Some(self.label()),
                    "no confirmation of the (un)subscribe",
                )))
            }
        }
    }

    fn broken(&self, why: &str) -> Error {
        Error::connection(self.label(), format!("subscribed connection: {why}"))
    }

    /// Marks the connection closed; the reader and the socket go when it is dropped.
    fn close(&self) {
        self.shared.closed.store(true, Ordering::Release);
        self.shared.pending.lock().clear();
    }
}

/// The reader: every frame of the connection, until it ends or is dropped.
async fn read_frames(
    shared: Arc<Shared>,
    mut reader: ReadHalf,
    mut buf: Vec<u8>,
    mut decoder: Decoder,
    mut stop: oneshot::Receiver<()>,
    deliver: mpsc::UnboundedSender<Message>,
    events: mpsc::UnboundedSender<Event>,
) {
    let ended = frames::read_frames(
        &mut reader,
        &mut buf,
        &mut decoder,
        &mut stop,
        &shared.label,
        "closed the connection",
        |value| on_frame(&shared, classify(value), &deliver, &events),
    );
    let ended = ended.await;
    shared.closed.store(true, Ordering::Release);
    // Stopped: dropped by its owner, nobody is left to tell.
    let Ended::Lost(why) = ended else {
        return;
    };
    // Waiting commands see their reply sender dropped: "the connection closed".
    shared.pending.lock().clear();
    tracing::debug!(node = %shared.label, %why, "subscribed connection ended");
    let _ = events.send(Event::Closed {
        conn: shared.id,
        why,
    });
}

/// Handles one frame; `Err` ends the connection.
fn on_frame(
    shared: &Shared,
    frame: Frame,
    deliver: &mpsc::UnboundedSender<Message>,
    events: &mpsc::UnboundedSender<Event>,
) -> Result<(), String> {
    match frame {
        Frame::Message(message) => {
            // The subscription is gone when nobody reads: the supervisor drops us soon.
            let _ = deliver.send(message);
        }
        Frame::Confirm {
            kind,
            unsubscribe,
            name,
        } => {
            let mut pending = shared.pending.lock();
            let front = pending.front_mut().filter(|p| {
                p.kind == kind
                    && p.unsubscribe == unsubscribe
                    && name.as_ref().is_some_and(|n| p.left.contains(n))
            });
            match (front, name) {
                (Some(p), Some(name)) => {
                    p.left.retain(|n| *n != name);
                    if p.left.is_empty()
                        && let Some(done) = pending.pop_front()
                    {
                        let _ = done.reply.send(Ok(()));
                    }
                }
                (None, Some(name)) if unsubscribe => {
                    let _ = events.send(Event::Dropped {
                        conn: shared.id,
                        kind,
                        name,
                    });
                }
                // A confirmation of nothing we asked for changes nothing we rely on: what we
                // deliver is filtered by what the subscription wants.
                _ => tracing::debug!(node = %shared.label, ?kind, "unexpected confirmation"),
            }
        }
        Frame::Error { code, detail } => match shared.pending.lock().pop_front() {
            Some(p) => {
                let _ = p.reply.send(Err((code, detail)));
            }
            None => {
                return Err(format!(
                    "{} sent an error nobody asked for: {code} {detail}",
                    shared.label
                ));
            }
        },
        Frame::Unexpected(what) => {
            return Err(format!("{} sent an unexpected frame: {what}", shared.label));
        }
    }
    Ok(())
}
