//! TLS: the user's [`TlsOptions`], the rustls config they resolve to, which name each node's
//! certificate is checked against (`names.rs`, pure), and the verifiers (`verify.rs`). The
//! bytes on the wire are handled by `net/transport.rs`.

mod names;
mod options;
mod verify;

pub(crate) use names::seed_name;
pub use options::TlsOptions;
pub(crate) use options::TlsSettings;
