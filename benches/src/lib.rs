//! Benchmarks for shardis: the criterion micro-benchmarks live in `benches/`; the load
//! benchmark against its peers is [`vs_peers`] (run by the `vs-peers` binary).

pub mod vs_peers;
