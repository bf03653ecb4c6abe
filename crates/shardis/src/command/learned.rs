//! Key specs learned from the server's `COMMAND INFO`, for commands the built-in table lacks.
//! Read without a lock (an `ArcSwap` snapshot); written rarely, once per new command name.

use std::collections::HashMap;
use std::future::Future;
use std::ops::Deref;
use std::sync::Arc;

use arc_swap::ArcSwap;
use redis::{Cmd, Value};

use super::info::parse_command_info;
use super::{CommandName, CommandSpec};

/// What the servers told us about commands, by upper-case name.
#[derive(Default)]
pub(crate) struct Learned {
    specs: ArcSwap<HashMap<String, Arc<CommandSpec>>>,
}

impl Learned {
    /// The spec learned earlier for `name`, if any.
    pub fn get(&self, name: &str) -> Option<Arc<CommandSpec>> {
        self.specs.load().get(name).cloned()
    }

    /// The command that asks a server about `name`.
    pub fn question(name: &str) -> Cmd {
        let mut cmd = redis::cmd("COMMAND");
        cmd.arg("INFO").arg(name);
        cmd
    }

    /// Records what the server answered to [`Learned::question`]; `None` when it does not
    /// know the command or the reply has an unexpected shape.
    pub fn learn(&self, name: &str, reply: &Value) -> Option<Arc<CommandSpec>> {
        let entry = match reply {
            Value::Array(entries) => entries.first()?,
            _ => return None,
        };
        let spec = Arc::new(parse_command_info(entry)?);
        self.specs.rcu(|m| {
            let mut m = (**m).clone();
            m.insert(name.to_string(), spec.clone());
            m
        });
        Some(spec)
    }
}

/// A command's spec: from the built-in table, or learned from a server.
pub(crate) enum SpecRef {
    Builtin(&'static CommandSpec),
    Learned(Arc<CommandSpec>),
}

impl Deref for SpecRef {
    type Target = CommandSpec;

    fn deref(&self) -> &CommandSpec {
        match self {
            SpecRef::Builtin(spec) => spec,
            SpecRef::Learned(spec) => spec,
        }
    }
}

impl Learned {
    /// The spec of `name` if it is known without asking a server: the built-in table or what
    /// was learned before.
    pub fn known(&self, name: &CommandName) -> Option<SpecRef> {
        if let Some(spec) = name.builtin() {
            return Some(SpecRef::Builtin(spec));
        }
        self.get(name).map(SpecRef::Learned)
    }

    /// The spec of `name`: the built-in table, what was learned before, or what a server says
    /// now (`ask` sends [`Learned::question`] to some node). `None` when nobody knows it.
    pub async fn resolve<Fut>(
        &self,
        name: &CommandName,
        ask: impl FnOnce(Cmd) -> Fut,
    ) -> Option<SpecRef>
    where
        Fut: Future<Output = Option<Value>>,
    {
        if let Some(spec) = self.known(name) {
            return Some(spec);
        }
        let name: &str = name;
        // Boxed: asking a server is rare, and its state would otherwise sit inside every
        // command's future (see `engine` on future sizes).
        let reply = Box::pin(ask(Self::question(name))).await?;
        self.learn(name, &reply).map(SpecRef::Learned)
    }
}
