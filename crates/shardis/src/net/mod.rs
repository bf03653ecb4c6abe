//! Talking to nodes: the [`Pool`] of every node the client knows, each [`Node`] with its
//! pipelined [`Connection`]s.

mod conn;
mod pool;

pub(crate) use conn::{Connection, stall_detected_within};
pub(crate) use pool::{Node, Pool};
