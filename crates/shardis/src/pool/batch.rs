//! Write coalescing for single commands: every connection has one batcher task that takes
//! whatever commands callers queued since its last write and sends them as one pipeline, so
//! many concurrent callers cost one socket write (and one wake-up of the connection's driver)
//! instead of one each.
//!
//! Replies come back in order on one connection, so reply `i` of a batch belongs to command
//! `i`; a server error is a `Value::ServerError` item for its own caller only, and a
//! connection-level error goes to every caller in the batch.

use futures::StreamExt;
use futures::stream::FuturesUnordered;
use redis::aio::MultiplexedConnection;
use redis::{Cmd, RedisResult, Value};
use tokio::sync::{mpsc, oneshot};

/// Most commands in one batch.
const MAX_BATCH: usize = 256;

/// Batches on the wire at once per connection. While one is in flight the next one fills up,
/// which is what makes batches big under load; at low load a batch is one command and costs
/// no waiting.
const MAX_IN_FLIGHT: usize = 1;

struct Job {
    cmd: Cmd,
    reply: oneshot::Sender<RedisResult<Value>>,
}

/// One open connection to a node: the multiplexed connection itself (for pipelines,
/// transactions and `ASKING` pairs, which must stay one unit) and the queue of its batcher.
pub(crate) struct Link {
    conn: MultiplexedConnection,
    queue: mpsc::UnboundedSender<Job>,
}

impl Link {
    /// Wraps `conn` and starts its batcher, which exits once this `Link` is dropped and the
    /// commands it already took are answered.
    pub fn new(conn: MultiplexedConnection) -> Self {
        let (queue, jobs) = mpsc::unbounded_channel();
        tokio::spawn(run(conn.clone(), jobs));
        Link { conn, queue }
    }

    /// The multiplexed connection, for what must not be split or merged.
    pub fn connection(&self) -> MultiplexedConnection {
        self.conn.clone()
    }

    /// Sends one command through the batcher and waits for its reply. A server error is
    /// `Ok(Value::ServerError)`, as with `send_packed_command`.
    pub async fn send(&self, cmd: &Cmd) -> RedisResult<Value> {
        if cmd.is_no_response() {
            return self.conn.clone().send_packed_command(cmd).await;
        }
        let (reply, answer) = oneshot::channel();
        let job = Job {
            cmd: cmd.clone(),
            reply,
        };
        if self.queue.send(job).is_err() {
            return Err(closed());
        }
        answer.await.unwrap_or_else(|_| Err(closed()))
    }
}

fn closed() -> redis::RedisError {
    redis::RedisError::from(std::io::Error::new(
        std::io::ErrorKind::BrokenPipe,
        "connection closed",
    ))
}

async fn run(conn: MultiplexedConnection, mut jobs: mpsc::UnboundedReceiver<Job>) {
    let mut in_flight = FuturesUnordered::new();
    let mut buf = Vec::with_capacity(MAX_BATCH);
    loop {
        tokio::select! {
            biased;
            Some(()) = in_flight.next(), if !in_flight.is_empty() => {}
            n = jobs.recv_many(&mut buf, MAX_BATCH), if in_flight.len() < MAX_IN_FLIGHT => {
                if n == 0 {
                    break;
                }
                let batch = std::mem::replace(&mut buf, Vec::with_capacity(MAX_BATCH));
                in_flight.push(send_batch(conn.clone(), batch));
            }
        }
    }
    while in_flight.next().await.is_some() {}
}

async fn send_batch(mut conn: MultiplexedConnection, mut batch: Vec<Job>) {
    // A caller that gave up (timeout, cancellation) before its command was written: do not
    // write it at all.
    batch.retain(|job| !job.reply.is_closed());
    match batch.len() {
        0 => {}
        1 => {
            if let Some(job) = batch.pop() {
                let reply = conn.send_packed_command(&job.cmd).await;
                let _ = job.reply.send(reply);
            }
        }
        n => {
            let mut pipe = redis::Pipeline::with_capacity(n);
            let mut replies = Vec::with_capacity(n);
            for job in batch {
                pipe.add_command(job.cmd);
                replies.push(job.reply);
            }
            match conn.send_packed_commands(&pipe, 0, n).await {
                Ok(values) if values.len() == n => {
                    for (reply, value) in replies.into_iter().zip(values) {
                        let _ = reply.send(Ok(value));
                    }
                }
                Ok(values) => {
                    let e = redis::RedisError::from((
                        redis::ErrorKind::Client,
                        "batched pipeline: wrong reply count",
                        format!("{} replies for {n} commands", values.len()),
                    ));
                    for reply in replies {
                        let _ = reply.send(Err(e.clone()));
                    }
                }
                Err(e) => {
                    for reply in replies {
                        let _ = reply.send(Err(e.clone()));
                    }
                }
            }
        }
    }
}
