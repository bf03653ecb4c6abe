//! Benchmarks for shardis.
