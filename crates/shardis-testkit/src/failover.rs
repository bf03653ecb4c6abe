//! Manual failover (`CLUSTER FAILOVER`), waited for until every node agrees.

use std::time::{Duration, Instant};

use crate::cluster::Cluster;
use crate::error::{Result, TestkitError};
use crate::node::{Node, Role};
use crate::wait::{Check, Deadline, poll};

/// A manual failover not done by now has been aborted by the replica (Redis'
/// `CLUSTER_MF_TIMEOUT` is 5 s), so the command is sent again.
const RESEND_AFTER: Duration = Duration::from_secs(6);

/// The flavour of `CLUSTER FAILOVER`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FailoverMode {
    /// Plain `CLUSTER FAILOVER`: the replica catches up with its reachable master first, so
    /// no acknowledged write is lost.
    Default,
    /// `FORCE`: no handshake with the master (which may be down); still needs a majority of
    /// primaries to vote.
    Force,
    /// `TAKEOVER`: no handshake and no vote; the replica bumps the epoch on its own.
    Takeover,
}

impl Cluster {
    /// Sends `CLUSTER FAILOVER [FORCE|TAKEOVER]` to `replica`, then waits until it says
    /// (`ROLE`) it is a primary, owns every slot its old master owned, and every running
    /// node is `cluster_state:ok` and agrees (see [`wait_stable`](Self::wait_stable)).
    pub async fn failover(&self, replica: &Node, mode: FailoverMode) -> Result<()> {
        self.fleet.require_live(replica)?;
        let Role::Replica { primary_port, .. } = self.role(replica).await? else {
            return Err(TestkitError::InvalidArgument(format!(
                "{} is not a replica",
                replica.addr()
            )));
        };
        let old = self
            .fleet
            .by_port(primary_port)
            .ok_or_else(|| TestkitError::UnknownNode {
                addr: format!("127.0.0.1:{primary_port}"),
            })?;
        let moving = self.slot_map(replica).await?.slots_of(&old.id);

        let mut cmd = redis::cmd("CLUSTER");
        cmd.arg("FAILOVER");
        match mode {
            FailoverMode::Default => {}
            FailoverMode::Force => {
                cmd.arg("FORCE");
            }
            FailoverMode::Takeover => {
                cmd.arg("TAKEOVER");
            }
        }
        self.fleet.query::<()>(replica, &cmd).await?;
        let mut sent = Instant::now();

        let what = format!(
            "{} to take over from {} ({mode:?})",
            replica.addr(),
            old.addr()
        );
        poll!(Deadline::new(what, self.fleet.timeout), {
            // The OK reply does not promise success; ROLE is the replica's own word.
            if self.role(replica).await? != Role::Primary {
                if sent.elapsed() > RESEND_AFTER {
                    self.fleet.query::<()>(replica, &cmd).await?;
                    sent = Instant::now();
                }
                Check::NotYet(format!("{} is still a replica", replica.addr()))
            } else {
                self.check_stable(|map| {
                    let stale = moving.iter().find(|(s, e)| {
                        (*s..=*e).any(|slot| map.owner(slot) != Some(replica.id.as_str()))
                    });
                    stale.map(|(s, e)| {
                        format!("slots {s}-{e} are not yet owned by {}", replica.addr())
                    })
                })
                .await?
            }
        });
        Ok(())
    }
}
