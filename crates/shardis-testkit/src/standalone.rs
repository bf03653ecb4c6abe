//! Independent, non-cluster redis-server nodes (for the consistent-hashing ring client).

use crate::error::Result;
use crate::fleet::{Fleet, node_helpers};
use crate::settings::{Settings, settings_methods};

/// Builds a [`Standalone`] set; see [`Standalone::builder`].
#[derive(Debug, Clone)]
#[must_use]
pub struct StandaloneBuilder {
    nodes: usize,
    settings: Settings,
}

impl StandaloneBuilder {
    /// How many independent nodes to start (default 1).
    pub fn nodes(mut self, n: usize) -> Self {
        self.nodes = n;
        self
    }

    settings_methods!();

    /// Starts the nodes and waits until each answers PING.
    pub async fn start(self) -> Result<Standalone> {
        let specs = self.settings.specs(self.nodes, false, &[])?;
        Ok(Standalone {
            fleet: Fleet::start(&specs, self.settings.timeout).await?,
        })
    }
}

/// `n` independent redis-server processes (no cluster mode) on 127.0.0.1, each in its own
/// temporary directory. Dropping it SIGKILLs and reaps every process. [`Node::id`](crate::Node::id)
/// is empty for these nodes.
///
/// ```no_run
/// # async fn demo() -> shardis_testkit::Result<()> {
/// let nodes = shardis_testkit::Standalone::start(4).await?;
/// let addr: String = nodes.nodes()[0].addr();
/// nodes.pause(&nodes.nodes()[1])?;
/// nodes.resume(&nodes.nodes()[1])?;
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Standalone {
    fleet: Fleet,
}

node_helpers!(Standalone);

impl Standalone {
    /// Starts `n` nodes with default settings.
    pub async fn start(n: usize) -> Result<Standalone> {
        Self::builder().nodes(n).start().await
    }

    /// A builder for one node with default settings.
    pub fn builder() -> StandaloneBuilder {
        StandaloneBuilder {
            nodes: 1,
            settings: Settings::default(),
        }
    }
}
