//! Talking to nodes: the [`Pool`] of every node the client knows, each [`Node`] with its
//! pipelined [`Connection`]s.

mod breaker;
mod conn;
mod conn_state;
mod pool;

pub use breaker::BreakerOptions;
pub(crate) use conn::{
    Connection, NO_STALL_WATCHDOG, check_handshake, connect, handshake, stall_detected_within,
    was_not_sent,
};
pub(crate) use pool::{Dedicated, Node, Pool, WaitGuard};
