//! The task behind one [`Subscription`](crate::Subscription): it holds one subscribed
//! connection per node the subscription needs, and keeps what the server holds equal to what
//! the subscription wants, where the topology says.
//!
//! It reconciles after every change the user asks for, after every loss (a connection that
//! ended, a shard channel the server dropped because its slot moved), and whenever the router
//! swaps in a new snapshot (a refresh after a failover, a `MOVED` seen by any command, a ring
//! node ejected or added). A reconcile first removes what must go — so a channel moving between
//! two nodes that both hear it (a failover's old and new primary) is never delivered twice — then
//! adds what is missing. Messages published while a subscription is not in force are lost:
//! each such gap is counted (`shardis_pubsub_gaps_total`), and each subscription re-established
//! (`shardis_pubsub_resubscribes_total`).

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use shardis_slots::{Endpoint, RedirectKind, parse_redirect_parts};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use super::conn::{CommandError, Event, PubSubConn};
use super::message::Message;
use super::place::{self, Placement, Routes};
use super::{Kind, Shared, Sub};
use crate::error::{Error, Result};

/// How often the router's snapshot is looked at (an atomic load).
const TICK: Duration = Duration::from_millis(50);
/// The first wait before retrying a reconcile that failed; doubles up to the reconnect backoff.
const FIRST_RETRY: Duration = Duration::from_millis(20);

/// A change the user asked for.
pub(crate) struct Change {
    pub kind: Kind,
    pub unsubscribe: bool,
    /// Empty with `unsubscribe`: every subscription of `kind`.
    pub names: Vec<Vec<u8>>,
    pub reply: oneshot::Sender<Result<()>>,
}

/// One node's connection and what it holds (confirmed by the server).
struct Held {
    conn: PubSubConn,
    subs: BTreeSet<Sub>,
}

pub(crate) struct Supervisor {
    place: Placement,
    shared: Arc<Shared>,
    conns: BTreeMap<Endpoint, Held>,
    /// Subscriptions that were in force and stopped being so without the user asking (a lost
    /// connection, a dropped shard channel, a move): setting one up again is a resubscribe.
    lost: HashSet<Sub>,
    routes: Routes,
    next_id: u64,
    deliver: mpsc::UnboundedSender<Message>,
    events_tx: mpsc::UnboundedSender<Event>,
    events: mpsc::UnboundedReceiver<Event>,
    /// Something is not where it should be: reconcile at `retry_at`.
    dirty: bool,
    /// Reload the topology before the next reconcile (cluster mode).
    refresh_first: bool,
    retry_at: Instant,
    retry_wait: Duration,
}

/// What a reconcile could not set up, and the last reason.
#[derive(Default)]
struct Failures {
    subs: HashSet<Sub>,
    last: Option<Error>,
}

impl Failures {
    fn add(&mut self, subs: impl IntoIterator<Item = Sub>, error: Error) {
        self.subs.extend(subs);
        self.last = Some(error);
    }
}

impl Supervisor {
    pub fn new(
        place: Placement,
        shared: Arc<Shared>,
        deliver: mpsc::UnboundedSender<Message>,
    ) -> Self {
        let (events_tx, events) = mpsc::unbounded_channel();
        Supervisor {
            routes: place.routes(),
            place,
            shared,
            conns: BTreeMap::new(),
            lost: HashSet::new(),
            next_id: 0,
            deliver,
            events_tx,
            events,
            dirty: false,
            refresh_first: false,
            retry_at: Instant::now(),
            retry_wait: FIRST_RETRY,
        }
    }

    /// Runs until the subscription is dropped (its control channel closes); the connections
    /// close with it.
    pub async fn run(mut self, mut control: mpsc::UnboundedReceiver<Change>) {
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                change = control.recv() => match change {
                    Some(change) => {
                        let result = self.apply(&change).await;
                        let _ = change.reply.send(result);
                    }
                    None => return,
                },
                Some(event) = self.events.recv() => self.on_event(event),
                _ = tick.tick() => self.maintain().await,
            }
        }
    }

    /// A change the user asked for. A subscribe answers once every new name is in force (or
    /// fails, within the deadline, and is undone); an unsubscribe takes effect at once (nothing
    /// more is delivered for those names) and is then removed from the servers.
    async fn apply(&mut self, change: &Change) -> Result<()> {
        if change.unsubscribe {
            let gone = self.shared.remove(change.kind, &change.names);
            for sub in &gone {
                self.lost.remove(sub);
            }
            if let Err(failures) = self.reconcile().await {
                self.failed(failures);
            }
            return Ok(());
        }
        let added = self.shared.add(change.kind, &change.names);
        if added.is_empty() {
            return Ok(());
        }
        let until = Instant::now() + self.place.settings().deadline;
        let mut wait = FIRST_RETRY;
        loop {
            let failures = match self.reconcile().await {
                Ok(()) => return Ok(()),
                Err(failures) => failures,
            };
            if !added.iter().any(|sub| failures.subs.contains(sub)) {
                // Only older subscriptions are missing: the background retry sees to them.
                self.failed(failures);
                return Ok(());
            }
            if Instant::now() + wait >= until {
                let error = failures.last.unwrap_or_else(|| {
                    Error::connection("pub/sub", "the subscription could not be set up")
                });
                let names: Vec<Vec<u8>> = added.iter().map(|(_, n)| n.clone()).collect();
                self.shared.remove(change.kind, &names);
                if let Err(failures) = self.reconcile().await {
                    self.failed(failures);
                }
                return Err(error);
            }
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(self.place.settings().reconnect_backoff_max);
            self.place.refresh().await;
        }
    }

    fn on_event(&mut self, event: Event) {
        match event {
            Event::Closed { conn, why } => {
                let Some(node) = self.node_of(conn) else {
                    return;
                };
                if let Some(held) = self.conns.remove(&node) {
                    tracing::info!(%node, %why, subscriptions = held.subs.len(), "subscribed connection lost; resubscribing");
                    self.lose(held.subs);
                }
            }
            Event::Dropped { conn, kind, name } => {
                let Some(node) = self.node_of(conn) else {
                    return;
                };
                let sub = (kind, name);
                if let Some(held) = self.conns.get_mut(&node)
                    && held.subs.remove(&sub)
                    && self.shared.wants(&sub)
                {
                    tracing::info!(%node, channel = %String::from_utf8_lossy(&sub.1), "the server dropped a shard channel (its slot moved); resubscribing");
                    self.lose([sub]);
                }
            }
        }
    }

    /// Subscriptions stopped being in force without the user asking: a gap (if any is still
    /// wanted); reload the topology and set them up again at once.
    fn lose(&mut self, subs: impl IntoIterator<Item = Sub>) {
        if !self.mark_lost(subs) {
            return;
        }
        self.dirty = true;
        self.refresh_first = true;
        self.retry_at = Instant::now();
        self.retry_wait = FIRST_RETRY;
    }

    /// Records `subs` as lost; counts a gap when one of them is still wanted.
    fn mark_lost(&mut self, subs: impl IntoIterator<Item = Sub>) -> bool {
        let mut any = false;
        for sub in subs {
            if self.shared.wants(&sub) {
                self.lost.insert(sub);
                any = true;
            }
        }
        if any {
            self.shared.gaps.fetch_add(1, Ordering::Relaxed);
            metrics::counter!("shardis_pubsub_gaps_total").increment(1);
        }
        any
    }

    fn node_of(&self, conn: u64) -> Option<Endpoint> {
        self.conns
            .iter()
            .find(|(_, held)| held.conn.id() == conn)
            .map(|(node, _)| node.clone())
    }

    /// Each tick: reconcile when the router has a new snapshot, or when a retry is due.
    async fn maintain(&mut self) {
        let routes_changed = !self.place.routes().same(&self.routes);
        let due = self.dirty && Instant::now() >= self.retry_at;
        if !routes_changed && !due {
            return;
        }
        if due && self.refresh_first {
            self.refresh_first = false;
            self.place.refresh().await;
        }
        match self.reconcile().await {
            Ok(()) => {
                self.dirty = false;
                self.retry_wait = FIRST_RETRY;
            }
            Err(failures) => self.failed(failures),
        }
    }

    /// Some subscriptions could not be set up: retry later, with backoff.
    fn failed(&mut self, failures: Failures) {
        if let Some(error) = &failures.last {
            tracing::warn!(
                missing = failures.subs.len(),
                %error,
                "subscriptions not in force; retrying"
            );
        }
        // The topology may have changed under us (a dead node, a moved slot): the retry should
        // see the new one; a new snapshot triggers it even before `retry_at`.
        self.place.request_refresh();
        self.dirty = true;
        self.retry_at = Instant::now() + self.retry_wait;
        self.retry_wait = (self.retry_wait * 2).min(self.place.settings().reconnect_backoff_max);
    }

    /// Makes what the servers hold equal to what the subscription wants, where the current
    /// snapshot says: removals first, then additions.
    async fn reconcile(&mut self) -> std::result::Result<(), Failures> {
        self.routes = self.place.routes();
        // Connections that ended and whose event is still on its way.
        let ended: Vec<Endpoint> = self
            .conns
            .iter()
            .filter(|(_, held)| held.conn.is_closed())
            .map(|(node, _)| node.clone())
            .collect();
        for node in ended {
            if let Some(held) = self.conns.remove(&node) {
                self.lose(held.subs);
            }
        }
        let wanted = self.shared.wanted();
        let classic_at = self
            .conns
            .iter()
            .find(|(_, held)| held.subs.iter().any(|(kind, _)| *kind != Kind::Shard))
            .map(|(node, _)| node.clone());
        let (desired, unplaced) = place::desired(&self.routes, &wanted, classic_at.as_ref());
        let mut failures = Failures::default();
        for sub in unplaced {
            let error = self.place.unplaced(&sub);
            failures.add([sub], error);
        }

        let empty = BTreeSet::new();
        let nodes: Vec<Endpoint> = self.conns.keys().cloned().collect();
        for node in nodes {
            let here = desired.get(&node).unwrap_or(&empty);
            self.remove_extra(&node, here, &wanted).await;
        }
        for (node, subs) in &desired {
            self.add_missing(node, subs, &mut failures).await;
        }
        if failures.subs.is_empty() {
            Ok(())
        } else {
            Err(failures)
        }
    }

    /// Unsubscribes on `node` what it holds beyond `here`; a connection left with nothing to
    /// hold is closed instead.
    async fn remove_extra(
        &mut self,
        node: &Endpoint,
        here: &BTreeSet<Sub>,
        wanted: &BTreeSet<Sub>,
    ) {
        let Some(mut held) = self.conns.remove(node) else {
            return;
        };
        let extra: Vec<Sub> = held.subs.difference(here).cloned().collect();
        // Still wanted, elsewhere: a planned move, and a gap while it happens.
        self.mark_lost(extra.iter().filter(|sub| wanted.contains(*sub)).cloned());
        if here.is_empty() {
            // Closing the connection unsubscribes everything it held.
            return;
        }
        for (kind, names) in place::commands(&extra) {
            match held.conn.command(kind, true, &names).await {
                Ok(()) => {}
                // MOVED: the node no longer serves the slot, so it holds no channel of it.
                Err(CommandError::Refused { code, .. }) if code == "MOVED" => {}
                Err(error) => {
                    tracing::debug!(%node, ?error, "unsubscribe failed; closing the connection");
                    // What it held and should keep is lost with it.
                    self.lose(held.subs.into_iter().filter(|sub| here.contains(sub)));
                    return;
                }
            }
            for name in names {
                held.subs.remove(&(kind, name));
            }
        }
        self.conns.insert(node.clone(), held);
    }

    /// Subscribes on `node` what it must hold and does not, opening its connection if needed.
    async fn add_missing(
        &mut self,
        node: &Endpoint,
        subs: &BTreeSet<Sub>,
        failures: &mut Failures,
    ) {
        let mut held = match self.conns.remove(node) {
            Some(held) => held,
            None => {
                self.next_id += 1;
                let opened = PubSubConn::open(
                    self.next_id,
                    node,
                    self.place.settings(),
                    self.deliver.clone(),
                    self.events_tx.clone(),
                )
                .await;
                match opened {
                    Ok(conn) => Held {
                        conn,
                        subs: BTreeSet::new(),
                    },
                    Err(error) => {
                        failures.add(subs.iter().cloned(), error);
                        return;
                    }
                }
            }
        };
        let missing: Vec<Sub> = subs.difference(&held.subs).cloned().collect();
        for (kind, names) in place::commands(&missing) {
            match held.conn.command(kind, false, &names).await {
                Ok(()) => {
                    for name in names {
                        let sub = (kind, name);
                        if self.lost.remove(&sub) {
                            self.shared.resubscribes.fetch_add(1, Ordering::Relaxed);
                            metrics::counter!("shardis_pubsub_resubscribes_total").increment(1);
                        }
                        held.subs.insert(sub);
                    }
                }
                Err(CommandError::Refused { code, detail }) => {
                    if let Ok(redirect) = parse_redirect_parts(&code, &detail)
                        && redirect.kind == RedirectKind::Moved
                        && let Some(endpoint) = redirect.resolve(node)
                    {
                        self.place.moved(redirect.slot, &endpoint);
                    }
                    let error = Error::SubscribeRefused {
                        node: held.conn.label().to_string(),
                        command: kind.command(false).to_string(),
                        reply: format!("{code} {detail}"),
                    };
                    failures.add(names.into_iter().map(|n| (kind, n)), error);
                }
                Err(CommandError::Broken(error)) => {
                    // Whatever it held is gone with it.
                    failures.add(subs.iter().cloned(), error);
                    self.lose(held.subs);
                    return;
                }
            }
        }
        self.conns.insert(node.clone(), held);
    }
}
