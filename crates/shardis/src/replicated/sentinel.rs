//! Redis Sentinel: which node is the master `name` now (asked of the sentinels in turn, the
//! one that answered first next time, and checked with `ROLE` on that node: a sentinel cut
//! off from the others may name a demoted primary), its healthy replicas, and a watcher per
//! sentinel that asks for a rediscovery when a `+switch-master` of the master is published.
//!
//! Sentinels have credentials of their own (`requirepass` in `sentinel.conf`), separate from
//! the data nodes': they get a pool of their own, with those.

use std::sync::{Arc, Weak};
use std::time::Duration;

use redis::Value;
use shardis_slots::Endpoint;
use tokio::sync::mpsc;

use super::role::{self, Found, Role};
use crate::error::{Error, Result};
use crate::net::Pool;
use crate::pubsub::Kind;
use crate::pubsub::conn::{Event, PubSubConn};
use crate::settings::{Secret, Settings};

/// The sentinels' own credentials.
#[derive(Clone, Debug, Default)]
pub(crate) struct SentinelAuth {
    pub username: Option<String>,
    pub password: Option<Secret>,
}

impl SentinelAuth {
    pub fn validate(&self) -> Result<()> {
        match (&self.username, &self.password) {
            (Some(user), None) => Err(Error::Config(format!(
                "sentinel user {user:?} without a password: give both with \
                 sentinel_username and sentinel_password"
            ))),
            _ => Ok(()),
        }
    }
}

/// The channel sentinels announce a new master on.
const SWITCH_MASTER: &str = "+switch-master";

/// The sentinels of one master.
pub(crate) struct Sentinels {
    name: String,
    /// The sentinels, the last one that answered first.
    order: parking_lot::Mutex<Vec<Endpoint>>,
    pool: Pool,
    settings: Arc<Settings>,
}

impl Sentinels {
    pub fn new(
        name: &str,
        sentinels: &[String],
        auth: &SentinelAuth,
        data: &Settings,
    ) -> Sentinels {
        let mut settings = data.clone();
        settings.username.clone_from(&auth.username);
        settings.password.clone_from(&auth.password);
        // Sentinels have credentials of their own: the data nodes' provider is not asked.
        settings.credentials_provider = None;
        let settings = Arc::new(settings);
        Sentinels {
            name: name.to_string(),
            order: parking_lot::Mutex::new(
                sentinels
                    .iter()
                    .filter_map(|s| Endpoint::parse(s).ok())
                    .collect(),
            ),
            pool: Pool::new(settings.clone()),
            settings,
        }
    }

    /// The master's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The sentinels' addresses.
    pub fn addrs(&self) -> Vec<Endpoint> {
        self.order.lock().clone()
    }

    /// Asks the sentinels in turn until one names a node that says (`ROLE`, asked through
    /// `data`, the data nodes' pool) it is the primary; that node and its replicas, or every
    /// sentinel's failure.
    pub async fn ask(&self, data: &Pool) -> (Option<Found>, Vec<String>) {
        let order = self.order.lock().clone();
        let mut errors = Vec::new();
        for (i, sentinel) in order.iter().enumerate() {
            match self.ask_one(data, sentinel).await {
                Ok(found) => {
                    if i > 0 {
                        let mut order = self.order.lock();
                        if let Some(at) = order.iter().position(|s| s == sentinel) {
                            let first = order.remove(at);
                            order.insert(0, first);
                        }
                    }
                    return (Some(found), errors);
                }
                Err(e) => errors.push(format!("sentinel {sentinel}: {e}")),
            }
        }
        (None, errors)
    }

    async fn ask_one(&self, data: &Pool, sentinel: &Endpoint) -> Result<Found> {
        let node = self.pool.node(sentinel);
        let label = node.label().to_string();
        let limit = self.settings.connect_timeout + self.settings.response_timeout;
        let ask = async {
            let conn = node.connection().await?;
            let mut addr = redis::cmd("SENTINEL");
            addr.arg("GET-MASTER-ADDR-BY-NAME").arg(&self.name);
            let mut replicas = redis::cmd("SENTINEL");
            replicas.arg("REPLICAS").arg(&self.name);
            let mut pipe = redis::pipe();
            pipe.add_command(addr).add_command(replicas);
            let replies = conn
                .send_pipeline(&pipe, 0, 2)
                .await
                .map_err(|e| Error::connection(&label, e.to_string()))?;
            match replies.as_slice() {
                [addr, replicas] => Ok((
                    parse_master_addr(addr).map_err(|e| Error::protocol(&label, e))?,
                    parse_replicas(replicas),
                )),
                _ => Err(Error::protocol(&label, "not two replies to two commands")),
            }
        };
        let (primary, mut replicas) = match tokio::time::timeout(limit, ask).await {
            Ok(Ok(answer)) => answer,
            Ok(Err(e)) => {
                node.discard();
                return Err(e);
            }
            Err(_) => return Err(Error::node_timeout(limit, &label)),
        };
        // The node must agree: a sentinel may not know of a failover yet.
        let limit = self.settings.connect_timeout + self.settings.response_timeout;
        match super::discover::role_at(data, &primary, limit).await? {
            Role::Primary { replicas: listed } => {
                for r in listed {
                    if !replicas.contains(&r) && r != primary {
                        replicas.push(r);
                    }
                }
                Ok(Found { primary, replicas })
            }
            other => Err(Error::protocol(
                &label,
                format!(
                    "names {primary} as master {:?}, which says it is {other:?}",
                    self.name
                ),
            )),
        }
    }
}

/// What a watcher calls: on a `+switch-master` of one of its masters (with its name), and on
/// every reconnect to a sentinel (with `None`: a switch may have been missed meanwhile).
pub(crate) type OnSwitch = Arc<dyn Fn(Option<&str>) + Send + Sync>;

/// Starts one watcher per sentinel in `sentinels`, for the masters `names`; they end once
/// `owner` is gone.
pub(crate) fn watch_switches<T: Send + Sync + 'static>(
    sentinels: &Sentinels,
    names: Vec<String>,
    owner: Weak<T>,
    on_switch: OnSwitch,
) {
    for (id, sentinel) in sentinels.addrs().into_iter().enumerate() {
        tokio::spawn(watch(
            owner.clone(),
            sentinel,
            sentinels.settings.clone(),
            names.clone(),
            on_switch.clone(),
            id as u64,
        ));
    }
}

/// How often a watcher checks that its client still exists, and waits before reconnecting.
const WATCH_TICK: Duration = Duration::from_millis(500);

/// Subscribes to `+switch-master` on `sentinel`, again after every loss, and calls
/// `on_switch` on each switch of one of `names` (and on every reconnect).
async fn watch<T>(
    owner: Weak<T>,
    sentinel: Endpoint,
    settings: Arc<Settings>,
    names: Vec<String>,
    on_switch: OnSwitch,
    id: u64,
) {
    let mut connected_before = false;
    while owner.strong_count() > 0 {
        let (deliver, mut messages) = mpsc::unbounded_channel();
        let (events_tx, mut events) = mpsc::unbounded_channel();
        let opened = PubSubConn::open(id, &sentinel, &settings, deliver, events_tx).await;
        let mut conn = match opened {
            Ok(conn) => conn,
            Err(e) => {
                tracing::debug!(%sentinel, error = %e, "sentinel watcher: no connection");
                tokio::time::sleep(WATCH_TICK).await;
                continue;
            }
        };
        if let Err(e) = conn
            .command(Kind::Channel, false, &[SWITCH_MASTER.as_bytes().to_vec()])
            .await
        {
            tracing::debug!(%sentinel, error = ?e, "sentinel watcher: subscribe failed");
            tokio::time::sleep(WATCH_TICK).await;
            continue;
        }
        if connected_before {
            on_switch(None);
        }
        connected_before = true;
        loop {
            tokio::select! {
                message = messages.recv() => {
                    let Some(message) = message else { break };
                    let named = names.iter().find(|n| switch_of(message.payload(), n).is_some());
                    if let Some(name) = named {
                        if owner.strong_count() == 0 {
                            return;
                        }
                        tracing::info!(%sentinel, announcement = %String::from_utf8_lossy(message.payload()), "sentinel announced a new master");
                        on_switch(Some(name));
                    }
                }
                event = events.recv() => {
                    if matches!(event, Some(Event::Closed { .. }) | None) {
                        break;
                    }
                }
                () = tokio::time::sleep(WATCH_TICK) => {
                    if owner.strong_count() == 0 {
                        return;
                    }
                }
            }
        }
        tokio::time::sleep(WATCH_TICK).await;
    }
}

/// The new master of a `+switch-master` payload (`name old-ip old-port new-ip new-port`) when
/// it is about `name`.
pub(crate) fn switch_of(payload: &[u8], name: &str) -> Option<Endpoint> {
    let text = std::str::from_utf8(payload).ok()?;
    let parts: Vec<&str> = text.split_whitespace().collect();
    match parts.as_slice() {
        [master, _, _, ip, port] if *master == name => Some(Endpoint::new(*ip, port.parse().ok()?)),
        _ => None,
    }
}

/// `SENTINEL GET-MASTER-ADDR-BY-NAME`: `[ip, port]`, or nil for a master the sentinel does
/// not watch.
pub(crate) fn parse_master_addr(reply: &Value) -> std::result::Result<Endpoint, String> {
    match reply {
        Value::Array(parts) if parts.len() == 2 => {
            let host = role::text(&parts[0]).ok_or("a master address without a host")?;
            let port = role::text(&parts[1])
                .and_then(|p| p.parse().ok())
                .ok_or("a master address without a port")?;
            Ok(Endpoint::new(host, port))
        }
        Value::Nil => Err("it watches no master of that name".into()),
        Value::ServerError(e) => Err(format!("{} {}", e.code(), e.details().unwrap_or(""))),
        other => Err(format!("unexpected reply {other:?}")),
    }
}

/// `SENTINEL REPLICAS`: the replicas the sentinel sees up (no `s_down`, `o_down` or
/// `disconnected` flag). Each replica is a flat list of field, value (RESP2) or a map (RESP3).
pub(crate) fn parse_replicas(reply: &Value) -> Vec<Endpoint> {
    let Value::Array(items) = reply else {
        return Vec::new();
    };
    items
        .iter()
        .filter_map(|item| {
            let pairs: Vec<(String, String)> = match item {
                Value::Array(flat) => flat
                    .chunks(2)
                    .filter_map(|kv| Some((role::text(kv.first()?)?, role::text(kv.get(1)?)?)))
                    .collect(),
                Value::Map(map) => map
                    .iter()
                    .filter_map(|(k, v)| Some((role::text(k)?, role::text(v)?)))
                    .collect(),
                _ => return None,
            };
            let field = |name: &str| {
                pairs
                    .iter()
                    .find(|(k, _)| k == name)
                    .map(|(_, v)| v.as_str())
            };
            let flags = field("flags").unwrap_or("");
            let down = flags
                .split(',')
                .any(|f| matches!(f, "s_down" | "o_down" | "disconnected"));
            if down {
                return None;
            }
            Some(Endpoint::new(field("ip")?, field("port")?.parse().ok()?))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(bytes: &[u8]) -> Value {
        redis::parse_redis_value(bytes).expect("valid RESP")
    }

    #[test]
    fn the_master_address_or_why_not() {
        let addr = parse(b"*2\r\n$9\r\n127.0.0.1\r\n$4\r\n6379\r\n");
        assert_eq!(
            parse_master_addr(&addr),
            Ok(Endpoint::new("127.0.0.1", 6379))
        );
        assert!(
            parse_master_addr(&parse(b"$-1\r\n"))
                .is_err_and(|e| e.contains("no master of that name"))
        );
        assert!(
            parse_master_addr(&parse(b"-NOAUTH Authentication required.\r\n"))
                .is_err_and(|e| e.contains("NOAUTH"))
        );
    }

    #[test]
    fn replicas_that_are_up_only() {
        let reply = parse(
            b"*3\r\n\
              *6\r\n$2\r\nip\r\n$8\r\n10.0.0.2\r\n$4\r\nport\r\n$4\r\n6380\r\n$5\r\nflags\r\n$5\r\nslave\r\n\
              *6\r\n$2\r\nip\r\n$8\r\n10.0.0.3\r\n$4\r\nport\r\n$4\r\n6381\r\n$5\r\nflags\r\n$12\r\ns_down,slave\r\n\
              *6\r\n$2\r\nip\r\n$8\r\n10.0.0.4\r\n$4\r\nport\r\n$4\r\n6382\r\n$5\r\nflags\r\n$18\r\nslave,disconnected\r\n",
        );
        assert_eq!(
            parse_replicas(&reply),
            vec![Endpoint::new("10.0.0.2", 6380)]
        );
        let resp3 =
            parse(b"*1\r\n%3\r\n+ip\r\n+10.0.0.5\r\n+port\r\n+6383\r\n+flags\r\n+slave\r\n");
        assert_eq!(
            parse_replicas(&resp3),
            vec![Endpoint::new("10.0.0.5", 6383)]
        );
        assert!(parse_replicas(&parse(b"-ERR no such master\r\n")).is_empty());
    }

    #[test]
    fn switch_master_announcements_of_this_master_only() {
        assert_eq!(
            switch_of(b"m 127.0.0.1 6379 127.0.0.1 6380", "m"),
            Some(Endpoint::new("127.0.0.1", 6380))
        );
        assert_eq!(switch_of(b"other 127.0.0.1 6379 127.0.0.1 6380", "m"), None);
        assert_eq!(switch_of(b"m garbage", "m"), None);
    }
}
