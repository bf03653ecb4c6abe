//! Integration tests for shardis live in tests/.
