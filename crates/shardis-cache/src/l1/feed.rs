//! The task that keeps one cache's L1 coherent: it applies the client's invalidation stream
//! (tracking of the namespace's keys and of its version key) and the namespace's backplane
//! channel, and says when L1 may be used.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use shardis::{Invalidation, InvalidationStream, Subscription};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::{FlushReason, L1, id_of_key};
use crate::error::{Error, Result};

/// How often the backplane's health is looked at.
const TICK: Duration = Duration::from_millis(50);

/// The backplane channel of `namespace`: `PUBLISH` an id there to drop it from every L1.
pub(crate) fn backplane_channel(namespace: &str) -> String {
    format!("shardis-cache:l1:{namespace}")
}

/// The running feed; dropping it stops the task.
pub(crate) struct Feed {
    _stop: oneshot::Sender<()>,
}

/// Opens the invalidation stream and starts the task. Needs a tokio runtime.
pub(crate) fn spawn_feed<V: Clone + Send + Sync + 'static>(
    client: &shardis::Client,
    l1: Arc<L1<V>>,
    namespace: &str,
    ns_key: &str,
    backplane: bool,
) -> Result<Feed> {
    let prefix = format!("{{{namespace}:");
    let stream = client
        .invalidations([prefix.as_bytes(), ns_key.as_bytes()])
        .map_err(Error::from)?;
    let task = Task {
        l1,
        namespace: namespace.to_string(),
        ns_key: ns_key.as_bytes().to_vec(),
        client: client.clone(),
        backplane: backplane.then(|| backplane_channel(namespace)),
        tracking_ready: false,
        subscription: None,
        subscribing: None,
        gaps_seen: 0,
    };
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(async move {
        let l1 = task.l1.clone();
        tokio::select! {
            _ = stopped => {}
            _ = task.run(stream) => {}
        }
        l1.set_ready(false);
    });
    Ok(Feed { _stop: stop })
}

struct Task<V> {
    l1: Arc<L1<V>>,
    namespace: String,
    ns_key: Vec<u8>,
    client: shardis::Client,
    backplane: Option<String>,
    tracking_ready: bool,
    subscription: Option<Subscription>,
    subscribing: Option<JoinHandle<shardis::Result<Subscription>>>,
    /// The backplane gaps already acted on.
    gaps_seen: u64,
}

impl<V: Clone + Send + Sync + 'static> Task<V> {
    async fn run(mut self, mut stream: InvalidationStream) {
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let message = async {
                match self.subscription.as_mut() {
                    Some(sub) => sub.next().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                biased;
                event = stream.next() => match event {
                    Some(event) => self.on_event(event),
                    None => {
                        self.lost("the invalidation stream ended");
                        return;
                    }
                },
                Some(message) = message => {
                    if let Ok(id) = std::str::from_utf8(message.payload()) {
                        self.l1.reported(id);
                    }
                }
                _ = tick.tick() => self.check_backplane().await,
            }
            self.update_ready();
        }
    }

    fn on_event(&mut self, event: Invalidation) {
        match event {
            Invalidation::Keys(keys) => {
                for key in keys {
                    if key == self.ns_key {
                        self.l1.namespace_changed();
                    } else if let Some(id) = id_of_key(&self.namespace, &key) {
                        self.l1.reported(id);
                    }
                }
            }
            Invalidation::Flush { node } => {
                tracing::info!(%node, namespace = %self.namespace, "node flushed; L1 emptied");
                self.l1.flush(FlushReason::Flush);
            }
            Invalidation::Broken { node, reason } => {
                self.tracking_ready = false;
                self.lost(&format!("{node}: {reason}"));
            }
            Invalidation::Ready => self.tracking_ready = true,
            other => {
                // An event this version does not know: assume the worst.
                self.tracking_ready = false;
                self.lost(&format!("{other:?}"));
            }
        }
    }

    /// Invalidations may have been lost: L1 off and emptied.
    fn lost(&self, why: &str) {
        self.l1.set_ready(false);
        self.l1.flush(FlushReason::Broken);
        tracing::info!(namespace = %self.namespace, why, "invalidations may be lost; L1 emptied and bypassed until the feed is complete");
    }

    fn backplane_ready(&self) -> bool {
        match (&self.backplane, &self.subscription) {
            (None, _) => true,
            (Some(_), Some(sub)) => sub.gaps() == sub.resubscribes(),
            (Some(_), None) => false,
        }
    }

    fn update_ready(&self) {
        self.l1
            .set_ready(self.tracking_ready && self.backplane_ready());
    }

    /// Subscribes to the backplane (in a task of its own, so invalidations keep flowing), and
    /// empties L1 when the subscription had a gap.
    async fn check_backplane(&mut self) {
        let Some(channel) = &self.backplane else {
            return;
        };
        if let Some(sub) = &self.subscription {
            let gaps = sub.gaps();
            if gaps > self.gaps_seen {
                self.gaps_seen = gaps;
                // Messages published during the gap are lost; nothing is served until it ends
                // (`update_ready`), and what was filled before it was noticed goes.
                self.lost("the backplane subscription had a gap");
            }
            return;
        }
        match self.subscribing.take() {
            Some(handle) if handle.is_finished() => match handle.await {
                Ok(Ok(sub)) => self.subscription = Some(sub),
                Ok(Err(error)) => {
                    tracing::warn!(%error, namespace = %self.namespace, "L1 backplane not subscribed; retrying");
                }
                Err(error) => tracing::warn!(%error, "L1 backplane task failed"),
            },
            Some(handle) => self.subscribing = Some(handle),
            None => {
                let client = self.client.clone();
                let channel = channel.clone();
                self.subscribing = Some(tokio::spawn(
                    async move { client.subscribe([channel]).await },
                ));
            }
        }
    }
}
