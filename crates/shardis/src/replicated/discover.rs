//! Finding the primary and its replicas, at start and again after a failure: from the known
//! nodes' `ROLE`, or from the sentinels (checked with `ROLE` on the node they name). One
//! background task does it, on request (single-flight, rate-limited by
//! `refresh_min_interval`) and every `refresh_interval`.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};

use redis::Value;
use shardis_slots::Endpoint;

use super::role::{self, Found, Role};
use super::{ReplicaRoutes, ReplicatedRouter, Source};
use crate::cluster::refresh::Refresher;
use crate::error::{Error, Result};
use crate::net::Pool;
use crate::settings::ReadFrom;
use std::time::Duration;

impl ReplicatedRouter {
    /// Asks where the primary and the replicas are now.
    pub(super) async fn discover(&self) -> Result<Found> {
        match &self.sentinels {
            Some(sentinels) => {
                let (found, errors) = sentinels.ask(&self.pool).await;
                found.ok_or_else(|| Error::NoPrimary {
                    from: self.describe_source(),
                    errors,
                })
            }
            None => self.discover_from_nodes().await,
        }
    }

    /// `ROLE` on every known node, then on the primaries replicas name that were not asked
    /// (a node promoted that the client never heard of: a managed service's primary endpoint
    /// now points to a replica of it), then [`role::choose`].
    async fn discover_from_nodes(&self) -> Result<Found> {
        let mut ask: Vec<Endpoint> = self.known.lock().clone();
        let mut answers = Vec::new();
        let mut errors = Vec::new();
        for _round in 0..2 {
            let asks = ask
                .iter()
                .map(|e| async move { (e.clone(), self.role_of(e).await) });
            for (endpoint, answer) in futures::future::join_all(asks).await {
                match answer {
                    Ok(role) => answers.push((endpoint, role)),
                    Err(e) => errors.push(e),
                }
            }
            let asked: Vec<Endpoint> = self.known.lock().clone();
            ask = role::unasked_primaries(&answers, &asked);
            if ask.is_empty() {
                break;
            }
            self.known.lock().extend(ask.iter().cloned());
        }
        // A refused login says so, rather than "no primary".
        if answers.is_empty()
            && let Some(auth) = errors.iter().find(|e| matches!(e, Error::Auth { .. }))
        {
            return Err(clone_auth(auth));
        }
        let current = self.current_primary();
        let configured: Vec<Endpoint> = match &self.source {
            Source::Nodes { replicas, .. } => replicas
                .iter()
                .filter_map(|r| Endpoint::parse(r).ok())
                .collect(),
            Source::Sentinel { .. } => Vec::new(),
        };
        role::choose(&answers, current.as_ref(), &configured).ok_or_else(|| Error::NoPrimary {
            from: self.describe_source(),
            errors: if errors.is_empty() {
                vec!["no node says it is a primary".into()]
            } else {
                errors.iter().map(ToString::to_string).collect()
            },
        })
    }

    /// What the node at `endpoint` says it is.
    pub(super) async fn role_of(&self, endpoint: &Endpoint) -> Result<Role> {
        let limit = self.settings.connect_timeout + self.settings.response_timeout;
        role_at(&self.pool, endpoint, limit).await
    }

    /// The primary routed to now, if one was found yet.
    pub(super) fn current_primary(&self) -> Option<Endpoint> {
        let routes = self.routes.load();
        (routes.primary.endpoint.port != 0).then(|| routes.primary.endpoint.clone())
    }

    /// Swaps in the routes for `found`, and remembers every node it names.
    pub(super) fn install(&self, found: Found, read_from: ReadFrom) {
        {
            let mut known = self.known.lock();
            for e in std::iter::once(&found.primary).chain(&found.replicas) {
                if !known.contains(e) {
                    known.push(e.clone());
                }
            }
        }
        let current = self.routes.load();
        let same = current.primary.endpoint == found.primary
            && current.replicas.len() == found.replicas.len()
            && current
                .replicas
                .iter()
                .zip(&found.replicas)
                .all(|(a, b)| a.endpoint == *b);
        if same {
            return;
        }
        if current.primary.endpoint != found.primary {
            if current.primary.endpoint.port != 0 {
                self.primary_changes.fetch_add(1, Ordering::Relaxed);
                metrics::counter!("shardis_primary_changes_total").increment(1);
                tracing::info!(from = %current.primary.endpoint, to = %found.primary, "the primary changed");
            }
        } else {
            tracing::info!(replicas = ?found.replicas, "the replica set changed");
        }
        let replicas = found.replicas.iter().map(|e| self.node(e)).collect();
        self.routes.store(Arc::new(ReplicaRoutes::new(
            self.node(&found.primary),
            replicas,
            read_from,
        )));
    }
}

/// What the node at `endpoint` says it is: `ROLE`, or `INFO replication` when `ROLE` is
/// refused; asked over `pool`'s connection to it (the data nodes' credentials), within `limit`.
pub(crate) async fn role_at(pool: &Pool, endpoint: &Endpoint, limit: Duration) -> Result<Role> {
    let node = pool.node(endpoint);
    let label = node.label().to_string();
    let ask = async {
        let conn = node.connection().await?;
        let reply = conn
            .send(&redis::cmd("ROLE"))
            .await
            .map_err(|e| Error::connection(&label, e.to_string()))?;
        if !matches!(reply, Value::ServerError(_)) {
            return role::parse_role(&reply).map_err(|e| Error::protocol(&label, e));
        }
        let mut info = redis::cmd("INFO");
        info.arg("replication");
        let reply = conn
            .send(&info)
            .await
            .map_err(|e| Error::connection(&label, e.to_string()))?;
        match role::text(&reply) {
            Some(text) => {
                role::parse_info_replication(&text).map_err(|e| Error::protocol(&label, e))
            }
            None => Err(Error::protocol(
                &label,
                format!("neither ROLE nor INFO replication answered: {reply:?}"),
            )),
        }
    };
    match tokio::time::timeout(limit, ask).await {
        Ok(Err(e)) => {
            node.discard();
            Err(e)
        }
        Ok(answer) => answer,
        Err(_) => Err(Error::node_timeout(limit, &label)),
    }
}

/// An `Error::Auth` again (errors are not `Clone`).
fn clone_auth(error: &Error) -> Error {
    match error {
        Error::Auth {
            node,
            user,
            message,
        } => Error::Auth {
            node: node.clone(),
            user: user.clone(),
            message: message.clone(),
        },
        other => Error::Config(other.to_string()),
    }
}

/// The background task: rediscover on request (rate-limited) and periodically, until the
/// client is dropped. A failed rediscovery keeps the routes in use.
pub(super) async fn run(state: Weak<ReplicatedRouter>, rediscovery: Arc<Refresher>) {
    rediscovery
        .serve(
            state,
            |s| &s.settings,
            |state| async move {
                rediscover_once(&state).await;
            },
        )
        .await;
}

/// One rediscovery: the routes are replaced when it finds the primary, kept when it fails.
async fn rediscover_once(state: &ReplicatedRouter) {
    let read_from = state.routes.load().read_from;
    match state.discover().await {
        Ok(found) => {
            state.install(found, read_from);
            state.stats.refreshes.fetch_add(1, Ordering::Relaxed);
        }
        Err(e) => {
            state.stats.refresh_failures.fetch_add(1, Ordering::Relaxed);
            metrics::counter!("shardis_rediscoveries_failed_total").increment(1);
            tracing::warn!(error = %e, "rediscovery of the primary failed; keeping the routes in use");
        }
    }
}
