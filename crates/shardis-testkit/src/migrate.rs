//! Moving slots: step by step (optionally held mid-migration) and with `redis-cli`.

use redis::Value;

use crate::binaries::{Binary, resolve};
use crate::cluster::Cluster;
use crate::error::{Result, TestkitError};
use crate::node::Node;

/// Keys moved per `GETKEYSINSLOT` + `MIGRATE` round (redis-cli's default pipeline is 10).
const BATCH: usize = 100;
/// The MIGRATE timeout in milliseconds.
const MIGRATE_TIMEOUT_MS: u64 = 5000;

impl Cluster {
    /// Moves `slot` to the primary `to` the way `redis-cli --cluster reshard` does:
    /// `SETSLOT IMPORTING` on the target, `SETSLOT MIGRATING` on the source,
    /// `GETKEYSINSLOT` + `MIGRATE` until the slot is empty, then `SETSLOT NODE` on the
    /// target, the source and the other primaries (replicas learn by gossip). Does nothing
    /// if `to` already owns the slot.
    pub async fn migrate_slot(&self, slot: u16, to: &Node) -> Result<()> {
        if self.node_for_slot(slot).await?.id == to.id {
            return Ok(());
        }
        self.begin_migration(slot, to).await?.finish().await
    }

    /// Starts moving `slot` to the primary `to` and stops half-way: the source is
    /// `MIGRATING`, the target `IMPORTING`, no key has moved. Clients then see `ASK` for keys
    /// that are no longer (or not yet) on the source. Move keys with
    /// [`Migration::migrate_keys`] / [`Migration::migrate_some`], complete with
    /// [`Migration::finish`]. Dropping the `Migration` leaves the slot half-migrated.
    pub async fn begin_migration(&self, slot: u16, to: &Node) -> Result<Migration<'_>> {
        self.fleet.require_live(to)?;
        let source = self.node_for_slot(slot).await?;
        if source.id == to.id {
            return Err(TestkitError::InvalidArgument(format!(
                "{} already owns slot {slot}",
                to.addr()
            )));
        }
        let setslot = |state: &str, id: &str| {
            redis::cmd("CLUSTER")
                .arg("SETSLOT")
                .arg(slot)
                .arg(state)
                .arg(id)
                .to_owned()
        };
        self.fleet
            .query::<()>(to, &setslot("IMPORTING", &source.id))
            .await?;
        self.fleet
            .query::<()>(&source, &setslot("MIGRATING", &to.id))
            .await?;
        Ok(Migration {
            cluster: self,
            slot,
            source,
            target: to.clone(),
        })
    }

    /// Moves `slots` slots from primary `from` to primary `to` with
    /// `redis-cli --cluster reshard ... --cluster-yes`, after waiting until the cluster is
    /// stable (redis-cli refuses to reshard a cluster whose nodes disagree). Replicas learn
    /// the new owners by gossip; call [`wait_stable`](Self::wait_stable) if that matters.
    pub async fn reshard(&self, from: &Node, to: &Node, slots: usize) -> Result<()> {
        let program = resolve(Binary::Cli, self.redis_cli.as_ref())?;
        self.fleet.require_live(from)?;
        self.wait_stable().await?;
        let mut args: Vec<String> = [
            "--cluster",
            "reshard",
            &from.addr(),
            "--cluster-from",
            &from.id,
            "--cluster-to",
            &to.id,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        args.extend([
            "--cluster-slots".into(),
            slots.to_string(),
            "--cluster-yes".into(),
        ]);
        let mut auth_args = Vec::new();
        if let Some(auth) = &self.fleet.auth {
            if let Some(user) = &auth.user {
                auth_args.extend(["--user".to_string(), user.clone()]);
            }
            auth_args.extend([
                "--pass".to_string(),
                auth.password.clone(),
                "--no-auth-warning".to_string(),
            ]);
        }
        let output = tokio::process::Command::new(&program)
            .args(&args)
            .args(&auth_args)
            .stdin(std::process::Stdio::null())
            .output()
            .await
            .map_err(|e| TestkitError::io(format!("running {}", program.display()), e))?;
        if !output.status.success() {
            if !auth_args.is_empty() {
                args.extend(["--pass".to_string(), "<masked>".to_string()]);
            }
            return Err(TestkitError::RedisCli {
                program,
                args,
                status: output.status,
                stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
                stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
            });
        }
        Ok(())
    }
}

/// A slot held mid-migration; see [`Cluster::begin_migration`].
#[derive(Debug)]
#[must_use = "the slot stays half-migrated until finish() is called"]
pub struct Migration<'a> {
    cluster: &'a Cluster,
    slot: u16,
    source: Node,
    target: Node,
}

impl Migration<'_> {
    /// The slot being moved.
    pub fn slot(&self) -> u16 {
        self.slot
    }

    /// The primary the slot is moving from (`MIGRATING`).
    pub fn source(&self) -> &Node {
        &self.source
    }

    /// The primary the slot is moving to (`IMPORTING`).
    pub fn target(&self) -> &Node {
        &self.target
    }

    /// `MIGRATE`s exactly these keys (which must hash to the slot) to the target. Keys
    /// that do not exist on the source are skipped (`NOKEY`).
    pub async fn migrate_keys<K: AsRef<[u8]>>(&self, keys: &[K]) -> Result<()> {
        if keys.is_empty() {
            return Ok(());
        }
        let mut cmd = redis::cmd("MIGRATE");
        cmd.arg("127.0.0.1")
            .arg(self.target.port)
            .arg("")
            .arg(0)
            .arg(MIGRATE_TIMEOUT_MS);
        if let Some(auth) = &self.cluster.fleet.auth {
            match &auth.user {
                Some(user) => cmd.arg("AUTH2").arg(user).arg(&auth.password),
                None => cmd.arg("AUTH").arg(&auth.password),
            };
        }
        cmd.arg("KEYS");
        for key in keys {
            cmd.arg(key.as_ref());
        }
        let _: Value = self.cluster.fleet.query(&self.source, &cmd).await?;
        Ok(())
    }

    /// Moves up to `n` of the keys still on the source (`GETKEYSINSLOT`); returns how many
    /// were moved (0 once the source holds none).
    pub async fn migrate_some(&self, n: usize) -> Result<usize> {
        let cmd = redis::cmd("CLUSTER")
            .arg("GETKEYSINSLOT")
            .arg(self.slot)
            .arg(n)
            .to_owned();
        let keys: Vec<Vec<u8>> = self.cluster.fleet.query(&self.source, &cmd).await?;
        self.migrate_keys(&keys).await?;
        Ok(keys.len())
    }

    /// Moves the remaining keys, then assigns the slot to the target with `SETSLOT NODE` on
    /// the target, the source, and the other running primaries, in that order.
    pub async fn finish(self) -> Result<()> {
        while self.migrate_some(BATCH).await? > 0 {}
        let node = redis::cmd("CLUSTER")
            .arg("SETSLOT")
            .arg(self.slot)
            .arg("NODE")
            .arg(&self.target.id)
            .to_owned();
        self.cluster.fleet.query::<()>(&self.target, &node).await?;
        self.cluster.fleet.query::<()>(&self.source, &node).await?;
        for primary in self.cluster.primaries().await? {
            if primary.id != self.source.id && primary.id != self.target.id {
                self.cluster.fleet.query::<()>(&primary, &node).await?;
            }
        }
        Ok(())
    }
}
