//! Pub/sub: [`Subscription`]s, each on subscribed connections of its own, kept in force across
//! reconnects, reshards, failovers and ring changes.
//!
//! - `message.rs`: the public [`Message`], and what each frame of a subscribed connection is;
//! - `conn.rs`: one subscribed connection (handshake, the reader, commands and their
//!   confirmations);
//! - `place.rs`: where each subscription must be in each mode (a pure rule over a snapshot);
//! - `supervisor.rs`: the task that keeps the servers' subscriptions equal to the wanted ones.
//!
//! A subscribed connection answers nothing but (un)subscribe commands, so subscriptions never
//! share the client's pipelined connections: a `SUBSCRIBE` sent through
//! [`Client::send`](crate::Client::send) is refused.

pub(crate) mod conn;
mod message;
mod place;
mod supervisor;

use std::collections::{BTreeSet, HashSet};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};

use futures::Stream;
use tokio::sync::{mpsc, oneshot};

pub use message::Message;
pub(crate) use place::{Placement, Routes};

use crate::error::{Error, Result};
use supervisor::{Change, Supervisor};

/// The three kinds of subscription.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum Kind {
    /// `SUBSCRIBE`: a channel, reached by `PUBLISH`.
    Channel,
    /// `PSUBSCRIBE`: a glob pattern over channels reached by `PUBLISH`.
    Pattern,
    /// `SSUBSCRIBE`: a shard channel, reached by `SPUBLISH`.
    Shard,
}

impl Kind {
    const ALL: [Kind; 3] = [Kind::Channel, Kind::Pattern, Kind::Shard];

    /// The command that subscribes (or unsubscribes) this kind.
    pub fn command(self, unsubscribe: bool) -> &'static str {
        match (self, unsubscribe) {
            (Kind::Channel, false) => "SUBSCRIBE",
            (Kind::Pattern, false) => "PSUBSCRIBE",
            (Kind::Shard, false) => "SSUBSCRIBE",
            (Kind::Channel, true) => "UNSUBSCRIBE",
            (Kind::Pattern, true) => "PUNSUBSCRIBE",
            (Kind::Shard, true) => "SUNSUBSCRIBE",
        }
    }

    /// The kind, and whether it unsubscribes, of a confirmation frame's first word.
    fn of_confirmation(word: &[u8]) -> Option<(Kind, bool)> {
        Kind::ALL.into_iter().find_map(|kind| {
            [false, true].into_iter().find_map(|unsubscribe| {
                word.eq_ignore_ascii_case(kind.command(unsubscribe).as_bytes())
                    .then_some((kind, unsubscribe))
            })
        })
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// One subscription: a kind and a channel (or pattern) name.
pub(crate) type Sub = (Kind, Vec<u8>);

/// What a [`Subscription`] and its supervisor share.
#[derive(Default)]
pub(crate) struct Shared {
    /// What the user wants, per kind. Written by the supervisor only; read to filter delivery.
    wanted: parking_lot::Mutex<[HashSet<Vec<u8>>; 3]>,
    resubscribes: AtomicU64,
    gaps: AtomicU64,
}

impl Shared {
    /// Adds `names`; returns the ones that were new.
    fn add(&self, kind: Kind, names: &[Vec<u8>]) -> Vec<Sub> {
        let mut wanted = self.wanted.lock();
        names
            .iter()
            .filter(|name| wanted[kind.index()].insert((*name).clone()))
            .map(|name| (kind, name.clone()))
            .collect()
    }

    /// Removes `names` (empty: every name of `kind`); returns the ones that were there.
    fn remove(&self, kind: Kind, names: &[Vec<u8>]) -> Vec<Sub> {
        let mut wanted = self.wanted.lock();
        let set = &mut wanted[kind.index()];
        let gone: Vec<Vec<u8>> = if names.is_empty() {
            set.drain().collect()
        } else {
            names.iter().filter(|n| set.remove(*n)).cloned().collect()
        };
        gone.into_iter().map(|name| (kind, name)).collect()
    }

    fn wants(&self, (kind, name): &Sub) -> bool {
        self.wanted.lock()[kind.index()].contains(name)
    }

    fn wanted(&self) -> BTreeSet<Sub> {
        let wanted = self.wanted.lock();
        Kind::ALL
            .into_iter()
            .flat_map(|kind| wanted[kind.index()].iter().map(move |n| (kind, n.clone())))
            .collect()
    }
}

/// Channels, patterns and shard channels subscribed to, as a [`Stream`] of [`Message`]s.
///
/// Made by [`Client::subscribe`](crate::Client::subscribe),
/// [`psubscribe`](crate::Client::psubscribe) or [`ssubscribe`](crate::Client::ssubscribe);
/// more can be added and removed while it runs. It has connections of its own (one per node it
/// needs) and a task that keeps them in force:
///
/// - **Cluster mode**: channels and patterns on one node (any node hears every `PUBLISH`); shard
///   channels on the primary of their slot, followed after a `MOVED`, a reshard (Redis drops
///   the shard channels of a slot that moves away) and a failover (as soon as the client's
///   topology shows the new primary; until then the old one, now a replica, still delivers).
/// - **Ring mode**: a channel (and a shard channel) on its ring owner — where the client
///   routes `PUBLISH`/`SPUBLISH` of it — and a pattern on every live node; they move when the
///   ring changes (a node ejected, added or removed).
/// - **Both**: every subscription is set up again after its connection is lost.
///
/// **Messages published while a subscription is being set up again are lost** (pub/sub keeps
/// nothing): each such gap is counted in [`Subscription::gaps`] and the
/// `shardis_pubsub_gaps_total` metric, each subscription set up again in
/// [`Subscription::resubscribes`] and `shardis_pubsub_resubscribes_total`. A message is never
/// delivered twice by a move, and never after its channel was unsubscribed.
///
/// Messages wait in memory until read: keep reading. Dropping the subscription closes its
/// connections.
///
/// ```no_run
/// # async fn run(client: shardis::Client) -> Result<(), Box<dyn std::error::Error>> {
/// use futures::StreamExt;
///
/// let mut orders = client.ssubscribe(["orders:eu"]).await?;
/// orders.psubscribe(["alerts:*"]).await?;
/// let _ = client.send(redis::cmd("SPUBLISH").arg("orders:eu").arg("order 1")).await?;
/// while let Some(message) = orders.next().await {
///     let text: String = message.payload_as()?;
///     println!("{}: {text}", String::from_utf8_lossy(message.channel()));
///     # break;
/// }
/// orders.sunsubscribe(["orders:eu"]).await?;
/// # Ok(()) }
/// ```
pub struct Subscription {
    messages: mpsc::UnboundedReceiver<Message>,
    control: mpsc::UnboundedSender<Change>,
    shared: Arc<Shared>,
    /// Dropped with the subscription: stops its task.
    _stop: oneshot::Sender<()>,
}

impl std::fmt::Debug for Subscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let wanted = self.shared.wanted.lock();
        f.debug_struct("Subscription")
            .field("channels", &wanted[Kind::Channel.index()].len())
            .field("patterns", &wanted[Kind::Pattern.index()].len())
            .field("shard_channels", &wanted[Kind::Shard.index()].len())
            .finish_non_exhaustive()
    }
}

impl Subscription {
    /// Starts a subscription's task over the client's router and subscribes `names`.
    pub(crate) async fn open(place: Placement, kind: Kind, names: Vec<Vec<u8>>) -> Result<Self> {
        let shared = Arc::new(Shared::default());
        let (deliver, messages) = mpsc::unbounded_channel();
        let (control, control_rx) = mpsc::unbounded_channel();
        let (stop, stopped) = oneshot::channel::<()>();
        let supervisor = Supervisor::new(place, shared.clone(), deliver);
        tokio::spawn(async move {
            // Dropping the subscription stops the task wherever it waits, and its connections
            // close with it.
            tokio::select! {
                _ = stopped => {}
                _ = supervisor.run(control_rx) => {}
            }
        });
        let subscription = Subscription {
            messages,
            control,
            shared,
            _stop: stop,
        };
        subscription.change(kind, false, names).await?;
        Ok(subscription)
    }

    async fn change(&self, kind: Kind, unsubscribe: bool, names: Vec<Vec<u8>>) -> Result<()> {
        if names.is_empty() && !unsubscribe {
            return Ok(());
        }
        let (reply, answer) = oneshot::channel();
        let gone = || Error::connection("pub/sub", "the subscription's task ended");
        self.control
            .send(Change {
                kind,
                unsubscribe,
                names,
                reply,
            })
            .map_err(|_| gone())?;
        answer.await.map_err(|_| gone())?
    }

    /// Subscribes to more `channels` (`SUBSCRIBE`); returns once the server confirmed them.
    pub async fn subscribe<I, C>(&self, channels: I) -> Result<()>
    where
        I: IntoIterator<Item = C>,
        C: AsRef<[u8]>,
    {
        self.change(Kind::Channel, false, names(channels)).await
    }

    /// Subscribes to more glob `patterns` (`PSUBSCRIBE`).
    pub async fn psubscribe<I, C>(&self, patterns: I) -> Result<()>
    where
        I: IntoIterator<Item = C>,
        C: AsRef<[u8]>,
    {
        self.change(Kind::Pattern, false, names(patterns)).await
    }

    /// Subscribes to more shard `channels` (`SSUBSCRIBE`, Redis 7).
    pub async fn ssubscribe<I, C>(&self, channels: I) -> Result<()>
    where
        I: IntoIterator<Item = C>,
        C: AsRef<[u8]>,
    {
        self.change(Kind::Shard, false, names(channels)).await
    }

    /// Unsubscribes from `channels` (none named: from every channel). Nothing more of them is
    /// delivered once this returns, even what was already received.
    pub async fn unsubscribe<I, C>(&self, channels: I) -> Result<()>
    where
        I: IntoIterator<Item = C>,
        C: AsRef<[u8]>,
    {
        self.change(Kind::Channel, true, names(channels)).await
    }

    /// Unsubscribes from `patterns` (none named: from every pattern).
    pub async fn punsubscribe<I, C>(&self, patterns: I) -> Result<()>
    where
        I: IntoIterator<Item = C>,
        C: AsRef<[u8]>,
    {
        self.change(Kind::Pattern, true, names(patterns)).await
    }

    /// Unsubscribes from shard `channels` (none named: from every shard channel).
    pub async fn sunsubscribe<I, C>(&self, channels: I) -> Result<()>
    where
        I: IntoIterator<Item = C>,
        C: AsRef<[u8]>,
    {
        self.change(Kind::Shard, true, names(channels)).await
    }

    /// How many times one of its subscriptions was set up again (after a lost connection, a
    /// slot that moved, a failover, a ring change).
    pub fn resubscribes(&self) -> u64 {
        self.shared.resubscribes.load(Ordering::Relaxed)
    }

    /// How many times some of its subscriptions were not in force for a while, without being
    /// unsubscribed: messages published then to those channels were not delivered.
    pub fn gaps(&self) -> u64 {
        self.shared.gaps.load(Ordering::Relaxed)
    }
}

fn names<I, C>(names: I) -> Vec<Vec<u8>>
where
    I: IntoIterator<Item = C>,
    C: AsRef<[u8]>,
{
    let mut out: Vec<Vec<u8>> = names.into_iter().map(|n| n.as_ref().to_vec()).collect();
    out.sort();
    out.dedup();
    out
}

impl Stream for Subscription {
    type Item = Message;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Message>> {
        loop {
            match self.messages.poll_recv(cx) {
                Poll::Ready(Some(message)) => {
                    let (kind, name) = message.subscription();
                    // Received before an unsubscribe took effect: not delivered after it.
                    if self.shared.wanted.lock()[kind.index()].contains(name) {
                        return Poll::Ready(Some(message));
                    }
                }
                other => return other,
            }
        }
    }
}
