//! Key specs learned from the server's `COMMAND INFO`, for commands the built-in table lacks.
//! Read without a lock (an `ArcSwap` snapshot); written rarely, once per new command name.

use std::collections::HashMap;
use std::sync::Arc;

use arc_swap::ArcSwap;
use redis::{Cmd, Value};

use super::CommandSpec;
use super::info::parse_command_info;

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
