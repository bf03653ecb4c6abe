//! `vs-peers`: shardis against its peers under the same load, on the same servers, in one run.
//! See [`shardis_benches::vs_peers`] for what it measures and how.
//!
//! ```text
//! cargo run --release -p shardis-benches --bin vs-peers -- --duration 5s
//! ```

use clap::Parser;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    shardis_benches::vs_peers::run(&shardis_benches::vs_peers::Args::parse()).await
}
