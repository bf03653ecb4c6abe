//! Talking to nodes: the [`Pool`] of every node the client knows, each [`Node`] with its
//! pipelined [`Connection`]s.

mod breaker;
mod conn;
mod conn_state;
pub(crate) mod frames;
mod pool;
mod transport;

pub use breaker::BreakerOptions;
pub(crate) use conn::{
    Connection, NO_STALL_WATCHDOG, check_handshake, handshake, stall_detected_within,
    tls_failure_or, was_not_sent,
};
pub(crate) use pool::{Dedicated, Node, Pool, WaitGuard};
pub(crate) use transport::{ReadHalf, WriteHalf, open as open_transport};
