//! Invalidations: a stream of the keys that changed on the servers, from Redis server-assisted
//! client-side caching (`CLIENT TRACKING`), for an in-process tier kept coherent with Redis.
//!
//! - `frame.rs`: what a tracking connection receives (pure);
//! - `conn.rs`: one tracking connection (handshake, reader, heartbeat `PING`);
//! - `supervisor.rs`: one connection per node of the topology, followed as it changes, and
//!   when the stream is complete ([`Invalidation::Ready`]) or not ([`Invalidation::Broken`]).
//!
//! **Mechanism.** Broadcast mode (`BCAST`) with key prefixes, on RESP2: each node's tracking
//! connection asks for invalidations of every key under the prefixes and has them redirected
//! to itself, as pub/sub messages on `__redis__:invalidate`. The tradeoff of `BCAST`: the
//! server remembers nothing per key (no memory per client, no per-read bookkeeping, and reads
//! need no special connection), but every change of *any* key under a prefix is sent to every
//! process, whether it holds that key or not. Use prefixes narrow enough that this traffic is
//! welcome (a cache namespace).

mod conn;
mod frame;
mod supervisor;

use std::pin::Pin;
use std::task::{Context, Poll};

use futures::Stream;
use tokio::sync::{mpsc, oneshot};

use crate::error::{Error, Result};
use crate::pubsub::Placement;

/// The name tracking connections give themselves (`CLIENT LIST`, `CLIENT KILL`).
pub const TRACKING_CLIENT_NAME: &str = "shardis-tracking";

/// One event of an [`InvalidationStream`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Invalidation {
    /// These keys changed (written, deleted, expired or evicted) on some node.
    Keys(Vec<Vec<u8>>),
    /// `node` was flushed (`FLUSHALL`, `FLUSHDB`): every key of it changed.
    Flush {
        /// The node, `host:port`.
        node: String,
    },
    /// From now on, changes may go unreported (a tracking connection was lost, a node stopped
    /// answering the heartbeat, the topology changed) until the next [`Invalidation::Ready`].
    /// Anything cached on the strength of this stream must be dropped, and nothing cached until
    /// `Ready`.
    Broken {
        /// The node concerned, `host:port`.
        node: String,
        /// Why, for logs.
        reason: String,
    },
    /// Every node of the topology is tracked: from here on every change is reported (until
    /// the next `Broken`). The first event of a stream that could be set up.
    Ready,
}

/// The invalidations of every key under some prefixes, from every node, as a [`Stream`] of
/// [`Invalidation`]s; see [`Client::invalidations`](crate::Client::invalidations).
///
/// Events wait in memory until read: keep reading. Dropping the stream closes its connections.
pub struct InvalidationStream {
    events: mpsc::UnboundedReceiver<Invalidation>,
    /// Dropped with the stream: stops its task.
    _stop: oneshot::Sender<()>,
}

impl std::fmt::Debug for InvalidationStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InvalidationStream").finish_non_exhaustive()
    }
}

impl InvalidationStream {
    pub(crate) fn open(place: Placement, prefixes: Vec<Vec<u8>>) -> Result<Self> {
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| {
            Error::Config("an invalidation stream needs a running tokio runtime".into())
        })?;
        let (out, events) = mpsc::unbounded_channel();
        let (stop, stopped) = oneshot::channel::<()>();
        let supervisor = supervisor::Supervisor::new(place, prefixes, out);
        runtime.spawn(async move {
            tokio::select! {
                _ = stopped => {}
                _ = supervisor.run() => {}
            }
        });
        Ok(InvalidationStream {
            events,
            _stop: stop,
        })
    }
}

impl Stream for InvalidationStream {
    type Item = Invalidation;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Invalidation>> {
        self.events.poll_recv(cx)
    }
}
