//! Differential conformance: the sharded keyspace answers like one Redis.
//!
//! Every case of [`TABLE`] (and every random command sequence of
//! `random_sequences_answer_as_one_redis`) runs on three targets, each on a fresh keyspace after
//! the same setup commands:
//!
//! - the reference: one plain `redis-server`, through redis-rs's own multiplexed connection;
//! - shardis in cluster mode (3 primaries);
//! - shardis in ring mode (3 standalone nodes, hash tags `{}`);
//! - shardis in primary+replicas mode (one primary, two replicas) with `ReadFrom::Primary`;
//! - the same with `ReadFrom::Replica` ("replica-reads"): reads go to an asynchronously
//!   replicated replica, so the client promises one Redis's reply only for what the replica
//!   has received. Before each compared command (and each step of a sequence) the harness waits
//!   until the replicas have applied every earlier write; the command itself (a pipeline, a
//!   transaction, a script) must then answer exactly as one Redis, its reads seeing its own
//!   writes. A single read right after the caller's own write is not promised the write (see
//!   `ReadFrom`).
//!
//! The replies must be equal, except where [`DIFFERENCES`] documents why a sharded deployment
//! answers otherwise (and how the case is compared instead). A case marked `BUG:` is a known
//! wrong reply of shardis, listed in [`KNOWN_BUGS`]: it must still differ (so a fix shows up
//! as a failure asking to remove the mark), and it is printed at every run.

use std::collections::{BTreeSet, HashMap};
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Instant;

use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use redis::Value;
use redis::aio::{ConnectionLike, MultiplexedConnection};
use shardis::{Client, Error, ReadFrom};
use shardis_testkit::{Cluster, Replication, Standalone};

// ---------------------------------------------------------------------------------------------
// Documented differences
// ---------------------------------------------------------------------------------------------

/// Every way a sharded answer may legitimately differ from one Redis's, with the reason. A case
/// names one with `~tag`; [`Rule::check`] says how such a case is compared.
const DIFFERENCES: &[(&str, &str)] = &[
    (
        "unordered",
        "the reply is a collection whose order is not part of the contract: KEYS concatenates \
         the nodes' replies (node by node, not one Redis's hash-table order), and Redis 7.0 keeps \
         non-integer sets in a hash table whose order depends on each server's random hash seed \
         (two single Redis servers differ too); compared as multisets",
    ),
    (
        "spread",
        "the command cannot be split and its keys live on several shards of this deployment \
         (slots in cluster mode, ring nodes in ring mode): shardis refuses it before sending \
         anything, with Error::CrossSlot or Error::Unsupported naming hash tags; where the keys \
         happen to share a shard, the reply must equal one Redis's",
    ),
    (
        "spread-set",
        "as spread, for a command whose reply is a set: where the keys share a shard (always in \
         primary+replicas mode) the reply is compared as a multiset, since its order is a hash \
         table's, which differs between servers (see unordered)",
    ),
    (
        "refused",
        "the command would leave state on the shared connection, block it, or see one node only \
         (MULTI sent raw, WATCH, SELECT, SUBSCRIBE, HELLO, CLIENT SETNAME, WAIT, SCAN cursors, \
         a blocking command inside a pipeline, ...): shardis refuses it with Error::Unsupported naming the API to use; it is not sent \
         to the reference, whose connection it would change",
    ),
    (
        "tx-whole",
        "a transaction runs on one shard: a whole-keyspace command (DBSIZE, KEYS, FLUSHALL) \
         inside one is refused with Error::Unsupported",
    ),
    (
        "anykey",
        "RANDOMKEY asks every shard and returns one of their keys: any key of the keyspace is \
         right (nil only when the keyspace is empty), as with one Redis",
    ),
    (
        "shape",
        "the reply is about one server, not the keyspace, or changes with time (TIME, INFO, \
         ROLE (a primary lists its replicas), CLIENT ID/LIST, LASTSAVE, PTTL in milliseconds, MEMORY USAGE, XADD *): only the reply's \
         type is compared",
    ),
    (
        "db0",
        "Redis Cluster has database 0 only: the cluster's server refuses a command naming \
         another database (MOVE, COPY ... DB) with an error; ring nodes and primary+replicas \
         nodes are standalone servers and answer like the reference",
    ),
    (
        "cluster-script",
        "a script touching a key it did not declare: in Redis Cluster the server refuses it \
         when the key lives on another node (and answers when this node owns it); in ring mode \
         it runs on the declared key's node and sees that node's keys only; not compared in \
         ring mode; in primary+replicas mode the primary holds every key: compared as equal",
    ),
];

/// Known wrong replies of shardis: `(tag, what is wrong)`. Each case marked `BUG:tag` must
/// still differ from the reference.
const KNOWN_BUGS: &[(&str, &str)] = &[];

// ---------------------------------------------------------------------------------------------
// The table
// ---------------------------------------------------------------------------------------------

/// One case per line: `compare | setup ; setup ; ... | command`.
///
/// - compare: `=` (equal replies), `~tag` (a documented difference), `BUG:tag` (a known bug);
/// - setup: commands run first on each target (after FLUSHALL), each must succeed;
/// - command: one command, or `PIPE c1 ; c2 ; ...` (a pipeline), `TX c1 ; c2 ; ...` (an atomic
///   pipeline), `INVOKE 'lua' keys... -- args...` (`redis::Script::invoke_async`).
///
/// Arguments are separated by spaces; `'...'` quotes one argument (with `\n` for a newline).
/// Keys are `k` + one letter, or a hash tag and a name (`{t}a`); values never look like keys.
/// `## name` starts a group.
const TABLE: &str = r#"
## strings
= | SET ka v1 | GET ka
= | | GET ka
= | | SET ka v1
= | SET ka v1 | SET ka v2 NX
= | | SET ka v2 NX
= | SET ka v1 | SET ka v2 XX
= | | SET ka v2 XX
= | SET ka v1 | SET ka v2 GET
= | | SET ka v2 GET
= | | SET ka v1 EX 100
= | SET ka v1 EX 100 | SET ka v2 KEEPTTL
= | | SET ka v1 EX 0
= | | SET ka v1 NX XX
= | | SET ka v1 EX abc
= | | SETNX ka v1
= | SET ka v1 | SETNX ka v2
= | | SETEX ka 100 v1
= | | SETEX ka -1 v1
= | | PSETEX ka 100000 v1
= | SET ka v1 | GETSET ka v2
= | | GETSET ka v2
= | SET ka v1 | GETDEL ka
= | | GETDEL ka
= | SET ka v1 | GETEX ka EX 100
= | SET ka v1 EX 100 | GETEX ka PERSIST
= | | GETEX ka
= | SET ka hello | APPEND ka world
= | | APPEND ka world
= | SET ka hello | STRLEN ka
= | | STRLEN ka
= | SET ka 10 | INCR ka
= | | INCR ka
= | SET ka 10 | INCRBY ka 5
= | SET ka 10 | INCRBY ka -15
= | SET ka 10 | DECR ka
= | SET ka 10 | DECRBY ka 3
= | SET ka 1.5 | INCRBYFLOAT ka 0.25
= | | INCRBYFLOAT ka 3
= | SET ka v1 | INCR ka
= | SET ka v1 | INCRBYFLOAT ka 1
= | SET ka 9223372036854775807 | INCR ka
= | SET ka hello | GETRANGE ka 1 3
= | SET ka hello | GETRANGE ka -3 -1
= | SET ka hello | SUBSTR ka 0 1
= | SET ka hello | SETRANGE ka 2 XY
= | | SETRANGE ka 3 XY
= | | SETBIT ka 7 1
= | SETBIT ka 7 1 | GETBIT ka 7
= | SETBIT ka 7 1 | GETBIT ka 100
= | SET ka foobar | BITCOUNT ka
= | SET ka foobar | BITCOUNT ka 1 1
= | SET ka foobar | BITPOS ka 1
= | | BITFIELD ka INCRBY u8 0 200
= | SET ka x | BITFIELD_RO ka GET u8 0
= | SET {t}a ohmytext ; SET {t}b mynewtext | LCS {t}a {t}b
= | SET {t}a ohmytext ; SET {t}b mynewtext | LCS {t}a {t}b LEN
~spread | SET ka ohmytext ; SET kb mynewtext | LCS ka kb
= | | MSET ka 1 kb 2 kc 3
= | MSET ka 1 kb 2 | MGET ka kb kc
= | MSET ka 1 kb 2 kc 3 kd 4 | MGET kd kc kb ka kd
= | SET ka 1 | MGET ka
= | | MSETNX {t}a 1 {t}b 2
= | SET {t}a 0 | MSETNX {t}a 1 {t}b 2
~spread | | MSETNX ka 1 kb 2
= | SET ka v1 | SET ka v1 v2
= | | SET ka
= | | GET
= | SET ka v1 | GET ka extra

## hashes
= | | HSET kh f1 v1 f2 v2
= | HSET kh f1 v1 | HSET kh f1 v2 f3 v3
= | HSET kh f1 v1 | HGET kh f1
= | HSET kh f1 v1 | HGET kh f2
= | | HGET kh f1
= | HSET kh f1 v1 f2 v2 f3 v3 | HGETALL kh
= | | HGETALL kh
= | HSET kh f1 v1 f2 v2 | HMGET kh f2 f9 f1
= | HSET kh f1 v1 f2 v2 | HKEYS kh
= | HSET kh f1 v1 f2 v2 | HVALS kh
= | HSET kh f1 v1 f2 v2 | HLEN kh
= | HSET kh f1 v1 | HEXISTS kh f1
= | HSET kh f1 v1 | HEXISTS kh f2
= | HSET kh f1 v1 f2 v2 | HDEL kh f1 f9
= | HSET kh f1 v1 | HDEL kh f1
= | HSET kh f1 v1 | HSETNX kh f1 v2
= | | HSETNX kh f1 v2
= | HSET kh f1 5 | HINCRBY kh f1 3
= | | HINCRBY kh f1 3
= | HSET kh f1 v1 | HINCRBY kh f1 3
= | HSET kh f1 1.5 | HINCRBYFLOAT kh f1 0.5
= | HSET kh f1 hello | HSTRLEN kh f1
= | | HMSET kh f1 v1 f2 v2
= | HSET kh f1 v1 | HRANDFIELD kh
~unordered | HSET kh f1 v1 f2 v2 f3 v3 | HRANDFIELD kh 10
~unordered | HSET kh f1 v1 f2 v2 f3 v3 | HRANDFIELD kh 10 WITHVALUES
= | HSET kh f1 v1 | HSCAN kh 0
= | HSET kh f1 v1 f2 v2 | HSCAN kh 0 MATCH f1
= | | HSET kh f1
= | SET ka v1 | HGET ka f1
= | SET ka v1 | HSET ka f1 v1
= | HSET kh f1 v1 | GET kh

## lists
= | | LPUSH kl a b c
= | | RPUSH kl a b c
= | RPUSH kl a b c | LRANGE kl 0 -1
= | RPUSH kl a b c | LRANGE kl 1 1
= | | LRANGE kl 0 -1
= | RPUSH kl a b c | LLEN kl
= | RPUSH kl a b c | LINDEX kl -1
= | RPUSH kl a b c | LINDEX kl 10
= | RPUSH kl a b c | LPOP kl
= | RPUSH kl a b c | LPOP kl 2
= | RPUSH kl a b c | RPOP kl
= | RPUSH kl a b c | RPOP kl 5
= | | LPOP kl
= | RPUSH kl a b c | LSET kl 1 x
= | RPUSH kl a b c | LSET kl 9 x
= | | LSET kl 0 x
= | RPUSH kl a b a c a | LREM kl 2 a
= | RPUSH kl a b a c a | LREM kl -1 a
= | RPUSH kl a b c d | LTRIM kl 1 2
= | RPUSH kl a b c | LINSERT kl BEFORE b x
= | RPUSH kl a b c | LINSERT kl AFTER z x
= | RPUSH kl a b c b | LPOS kl b
= | RPUSH kl a b c b | LPOS kl b RANK 2
= | RPUSH kl a b c b | LPOS kl b COUNT 0
= | | LPUSHX kl a
= | RPUSH kl a | RPUSHX kl b
= | RPUSH {t}a a b ; RPUSH {t}b c | RPOPLPUSH {t}a {t}b
= | RPUSH {t}a a b | LMOVE {t}a {t}b LEFT RIGHT
= | RPUSH {t}a a b | LMOVE {t}a {t}a LEFT RIGHT
~spread | RPUSH ka a b | LMOVE ka kb LEFT RIGHT
~spread | RPUSH ka a b | RPOPLPUSH ka kb
= | RPUSH {t}b x y | LMPOP 2 {t}a {t}b LEFT COUNT 2
= | | LMPOP 2 {t}a {t}b RIGHT
~spread | RPUSH kb x | LMPOP 2 ka kb LEFT
= | RPUSH kl c a b | SORT kl ALPHA
= | RPUSH kl 3 1 2 | SORT kl
= | RPUSH kl 3 1 2 | SORT kl DESC LIMIT 0 2
= | RPUSH kl 3 1 2 | SORT_RO kl
= | RPUSH kl a | LRANGE kl 0
= | SET ka v1 | LPUSH ka x
= | RPUSH kl a | INCR kl

## sets
= | | SADD ks m1 m2 m3
= | SADD ks m1 | SADD ks m1 m2
~unordered | SADD ks m1 m2 m3 | SMEMBERS ks
= | SADD ks 3 1 2 | SMEMBERS ks
= | | SMEMBERS ks
= | SADD ks m1 m2 | SISMEMBER ks m1
= | SADD ks m1 m2 | SISMEMBER ks m9
= | SADD ks m1 m2 | SMISMEMBER ks m1 m9 m2
= | SADD ks m1 m2 | SCARD ks
= | SADD ks m1 m2 | SREM ks m1 m9
= | SADD ks m1 | SRANDMEMBER ks
~unordered | SADD ks m1 m2 m3 | SRANDMEMBER ks 10
= | SADD ks m1 | SPOP ks
~unordered | SADD ks m1 m2 m3 | SPOP ks 10
= | | SPOP ks
~unordered | SADD {t}a m1 m2 ; SADD {t}b m2 m3 | SUNION {t}a {t}b
= | SADD {t}a m1 m2 ; SADD {t}b m2 m3 | SINTER {t}a {t}b
= | SADD {t}a m1 m2 ; SADD {t}b m2 m3 | SDIFF {t}a {t}b
= | SADD {t}a m1 m2 ; SADD {t}b m2 m3 | SUNIONSTORE {t}c {t}a {t}b
= | SADD {t}a m1 m2 ; SADD {t}b m2 m3 | SINTERSTORE {t}c {t}a {t}b
= | SADD {t}a m1 m2 ; SADD {t}b m2 m3 | SDIFFSTORE {t}c {t}a {t}b
= | SADD {t}a m1 m2 ; SADD {t}b m2 m3 | SINTERCARD 2 {t}a {t}b
= | SADD {t}a m1 m2 ; SADD {t}b m2 m3 | SINTERCARD 2 {t}a {t}b LIMIT 1
= | SADD {t}a m1 m2 | SMOVE {t}a {t}b m1
= | SADD {t}a m1 m2 | SMOVE {t}a {t}b m9
~spread-set | SADD ka m1 m2 ; SADD kb m2 m3 | SUNION ka kb
~spread | SADD ka m1 m2 ; SADD kb m2 m3 | SINTER ka kb
~spread | SADD ka m1 m2 ; SADD kb m2 m3 | SDIFF ka kb
~spread | SADD ka m1 m2 ; SADD kb m2 m3 | SUNIONSTORE kc ka kb
~spread | SADD ka m1 m2 ; SADD kb m2 m3 | SINTERCARD 2 ka kb
~spread | SADD ka m1 m2 | SMOVE ka kb m1
= | SADD ks m1 m2 | SSCAN ks 0 MATCH m1
= | SADD ks 1 2 3 | SSCAN ks 0
= | SET ka v1 | SADD ka m1
= | SADD ks m1 | SCARD ks extra

## sorted sets
= | | ZADD kz 1 m1 2 m2 3 m3
= | ZADD kz 1 m1 | ZADD kz NX 5 m1 2 m2
= | ZADD kz 1 m1 | ZADD kz XX CH 5 m1 2 m2
= | ZADD kz 1 m1 | ZADD kz GT 0 m1
= | ZADD kz 1 m1 | ZADD kz INCR 2.5 m1
= | | ZADD kz 1 m1 x
= | | ZADD kz abc m1
= | ZADD kz 1 m1 2 m2 3 m3 | ZRANGE kz 0 -1
= | ZADD kz 1 m1 2 m2 3 m3 | ZRANGE kz 0 -1 WITHSCORES
= | ZADD kz 1 m1 2 m2 3 m3 | ZRANGE kz 2 1 BYSCORE REV
= | ZADD kz 1 m1 2 m2 3 m3 | ZRANGE kz (1 +inf BYSCORE LIMIT 0 1
= | ZADD kz 0 a 0 b 0 c | ZRANGE kz [a (c BYLEX
= | ZADD kz 1 m1 2 m2 3 m3 | ZREVRANGE kz 0 1 WITHSCORES
= | ZADD kz 1 m1 2 m2 3 m3 | ZRANGEBYSCORE kz 2 +inf
= | ZADD kz 1 m1 2 m2 3 m3 | ZREVRANGEBYSCORE kz +inf -inf LIMIT 1 1
= | ZADD kz 0 a 0 b 0 c | ZRANGEBYLEX kz - [b
= | ZADD kz 0 a 0 b 0 c | ZREVRANGEBYLEX kz + (a
= | ZADD kz 1 m1 2 m2 | ZSCORE kz m2
= | ZADD kz 1 m1 | ZSCORE kz m9
= | ZADD kz 1 m1 2 m2 | ZMSCORE kz m2 m9 m1
= | ZADD kz 1 m1 2 m2 | ZCARD kz
= | ZADD kz 1 m1 2 m2 3 m3 | ZCOUNT kz 2 3
= | ZADD kz 0 a 0 b 0 c | ZLEXCOUNT kz - +
= | ZADD kz 1 m1 2 m2 3 m3 | ZRANK kz m3
= | ZADD kz 1 m1 2 m2 3 m3 | ZREVRANK kz m3
= | ZADD kz 1 m1 2 m2 3 m3 | ZREM kz m1 m9
= | ZADD kz 1 m1 | ZINCRBY kz 2 m1
= | | ZINCRBY kz 2 m1
= | ZADD kz 1 m1 2 m2 3 m3 | ZPOPMIN kz
= | ZADD kz 1 m1 2 m2 3 m3 | ZPOPMAX kz 2
= | ZADD kz 1 m1 2 m2 3 m3 | ZREMRANGEBYSCORE kz 1 2
= | ZADD kz 1 m1 2 m2 3 m3 | ZREMRANGEBYRANK kz 0 0
= | ZADD kz 0 a 0 b 0 c | ZREMRANGEBYLEX kz [a [b
= | ZADD kz 1 m1 | ZRANDMEMBER kz
~unordered | ZADD kz 1 m1 2 m2 | ZRANDMEMBER kz 5
= | ZADD kz 1 m1 2 m2 | ZSCAN kz 0
= | ZADD {t}a 1 m1 2 m2 ; ZADD {t}b 3 m2 4 m3 | ZUNIONSTORE {t}c 2 {t}a {t}b
= | ZADD {t}a 1 m1 2 m2 ; ZADD {t}b 3 m2 4 m3 | ZINTERSTORE {t}c 2 {t}a {t}b WEIGHTS 2 1
= | ZADD {t}a 1 m1 2 m2 ; ZADD {t}b 3 m2 4 m3 | ZDIFFSTORE {t}c 2 {t}a {t}b
= | ZADD {t}a 1 m1 2 m2 ; ZADD {t}b 3 m2 4 m3 | ZUNION 2 {t}a {t}b WITHSCORES
= | ZADD {t}a 1 m1 2 m2 ; ZADD {t}b 3 m2 4 m3 | ZINTER 2 {t}a {t}b AGGREGATE MAX WITHSCORES
= | ZADD {t}a 1 m1 2 m2 ; ZADD {t}b 3 m2 4 m3 | ZDIFF 2 {t}a {t}b
= | ZADD {t}a 1 m1 2 m2 ; ZADD {t}b 3 m2 4 m3 | ZINTERCARD 2 {t}a {t}b
= | ZADD {t}a 1 m1 2 m2 3 m3 | ZRANGESTORE {t}b {t}a 0 1
= | ZADD {t}a 1 m1 2 m2 | ZMPOP 2 {t}a {t}b MIN COUNT 5
~spread | ZADD ka 1 m1 ; ZADD kb 3 m2 | ZUNIONSTORE kc 2 ka kb
~spread | ZADD ka 1 m1 ; ZADD kb 3 m2 | ZINTER 2 ka kb
~spread | ZADD ka 1 m1 | ZRANGESTORE kb ka 0 1
~spread | ZADD ka 1 m1 | ZMPOP 2 ka kb MAX
= | SET ka v1 | ZADD ka 1 m1
= | ZADD kz 1 m1 | ZRANGE kz 0
= | ZADD kz 1 m1 | ZUNIONSTORE kz 0 kz

## streams
= | | XADD kx 1-1 f1 v1
= | XADD kx 1-1 f1 v1 | XADD kx 1-1 f1 v1
= | | XADD kx NOMKSTREAM 1-1 f1 v1
= | XADD kx 1-1 f1 v1 ; XADD kx 2-1 f2 v2 | XLEN kx
= | XADD kx 1-1 f1 v1 ; XADD kx 2-1 f2 v2 | XRANGE kx - +
= | XADD kx 1-1 f1 v1 ; XADD kx 2-1 f2 v2 | XRANGE kx - + COUNT 1
= | XADD kx 1-1 f1 v1 ; XADD kx 2-1 f2 v2 | XREVRANGE kx + -
= | XADD kx 1-1 f1 v1 ; XADD kx 2-1 f2 v2 | XDEL kx 1-1 9-9
= | XADD kx 1-1 f1 v1 ; XADD kx 2-1 f2 v2 | XTRIM kx MAXLEN 1
= | XADD kx 1-1 f1 v1 | XREAD COUNT 10 STREAMS kx 0
= | XADD kx 1-1 f1 v1 | XREAD STREAMS kx 1-1
= | XADD kx 1-1 f1 v1 | XREAD BLOCK 100 STREAMS kx 0
= | XADD {t}a 1-1 f1 v1 ; XADD {t}b 2-1 f2 v2 | XREAD STREAMS {t}a {t}b 0 0
~spread | XADD ka 1-1 f1 v1 ; XADD kb 2-1 f2 v2 | XREAD STREAMS ka kb 0 0
= | XADD kx 1-1 f1 v1 | XGROUP CREATE kx g1 0
= | | XGROUP CREATE kx g1 0
= | | XGROUP CREATE kx g1 0 MKSTREAM
= | XADD kx 1-1 f1 v1 ; XGROUP CREATE kx g1 0 | XREADGROUP GROUP g1 c1 COUNT 1 STREAMS kx >
= | XADD kx 1-1 f1 v1 ; XGROUP CREATE kx g1 0 ; XREADGROUP GROUP g1 c1 STREAMS kx > | XPENDING kx g1
= | XADD kx 1-1 f1 v1 ; XGROUP CREATE kx g1 0 ; XREADGROUP GROUP g1 c1 STREAMS kx > | XACK kx g1 1-1
= | XADD kx 1-1 f1 v1 ; XGROUP CREATE kx g1 0 ; XREADGROUP GROUP g1 c1 STREAMS kx > | XCLAIM kx g1 c2 0 1-1 JUSTID
= | XADD kx 1-1 f1 v1 ; XGROUP CREATE kx g1 0 ; XREADGROUP GROUP g1 c1 STREAMS kx > | XAUTOCLAIM kx g1 c2 0 0 JUSTID
= | XADD kx 1-1 f1 v1 | XSETID kx 5-0
= | XADD kx 1-1 f1 v1 ; XGROUP CREATE kx g1 0 | XINFO GROUPS kx
= | XADD kx 1-1 f1 v1 | XINFO STREAM kx
~shape | | XADD kx * f1 v1
= | XADD kx 5-1 f1 v1 | XADD kx 1-1 f1 v1
= | SET ka v1 | XADD ka 1-1 f1 v1
= | XADD kx 1-1 f1 v1 | XADD kx 2-1 f1

## expiry
= | SET ka v1 | EXPIRE ka 100
= | | EXPIRE ka 100
= | SET ka v1 | EXPIRE ka 100 NX
= | SET ka v1 EX 50 | EXPIRE ka 100 XX
= | SET ka v1 EX 50 | EXPIRE ka 10 GT
= | SET ka v1 EX 50 | EXPIRE ka 10 LT
= | SET ka v1 | EXPIRE ka -1
= | SET ka v1 | EXPIRE ka abc
= | SET ka v1 | PEXPIRE ka 100000
= | SET ka v1 | EXPIREAT ka 4000000000
= | SET ka v1 | PEXPIREAT ka 4000000000000
= | SET ka v1 EX 100 | TTL ka
= | SET ka v1 | TTL ka
= | | TTL ka
~shape | SET ka v1 EX 100 | PTTL ka
= | | PTTL ka
= | SET ka v1 ; EXPIREAT ka 4000000000 | EXPIRETIME ka
= | SET ka v1 ; PEXPIREAT ka 4000000000123 | PEXPIRETIME ka
= | SET ka v1 | EXPIRETIME ka
= | SET ka v1 EX 100 | PERSIST ka
= | SET ka v1 | PERSIST ka
= | SET ka v1 EX 100 ; SET ka v2 | TTL ka
= | SET ka v1 EX 100 ; APPEND ka x | TTL ka
= | HSET kh f1 v1 ; EXPIRE kh 100 | TTL kh

## keys
= | SET ka v1 | TYPE ka
= | HSET kh f1 v1 | TYPE kh
= | RPUSH kl a | TYPE kl
= | SADD ks m1 | TYPE ks
= | ZADD kz 1 m1 | TYPE kz
= | XADD kx 1-1 f1 v1 | TYPE kx
= | | TYPE ka
= | SET ka v1 | EXISTS ka
= | SET ka v1 | OBJECT ENCODING ka
= | SET ka 12 | OBJECT ENCODING ka
= | RPUSH kl a | OBJECT ENCODING kl
= | SET ka v1 | OBJECT REFCOUNT ka
= | SET ka v1 | OBJECT FREQ ka
= | | OBJECT ENCODING ka
~shape | SET ka v1 | MEMORY USAGE ka
= | SET ka v1 | DUMP ka
= | | DUMP ka
= | SET {t}a v1 | RENAME {t}a {t}b
= | SET {t}a v1 ; SET {t}b v2 | RENAMENX {t}a {t}b
= | | RENAME {t}a {t}b
= | SET {t}a v1 | COPY {t}a {t}b
= | SET {t}a v1 ; SET {t}b v2 | COPY {t}a {t}b
= | SET {t}a v1 ; SET {t}b v2 | COPY {t}a {t}b REPLACE
~spread | SET ka v1 | RENAME ka kb
~spread | SET ka v1 | RENAMENX ka kb
~spread | SET ka v1 | COPY ka kb
~db0 | SET ka v1 | MOVE ka 1
~db0 | SET {t}a v1 | COPY {t}a {t}b DB 1
= | PFADD kp a b c | PFCOUNT kp
= | | PFADD kp a b c
= | PFADD {t}a a b ; PFADD {t}b b c | PFCOUNT {t}a {t}b
= | PFADD {t}a a b ; PFADD {t}b b c | PFMERGE {t}c {t}a {t}b
~spread | PFADD ka a b ; PFADD kb b c | PFCOUNT ka kb
= | SET {t}a abc ; SET {t}b bcd | BITOP AND {t}c {t}a {t}b
= | SET {t}a abc | BITOP NOT {t}c {t}a
~spread | SET ka abc ; SET kb bcd | BITOP OR kc ka kb
= | | GEOADD kg 13.361389 38.115556 Palermo 15.087269 37.502669 Catania
= | GEOADD kg 13.361389 38.115556 Palermo 15.087269 37.502669 Catania | GEODIST kg Palermo Catania km
= | GEOADD kg 13.361389 38.115556 Palermo | GEOPOS kg Palermo nowhere
= | GEOADD kg 13.361389 38.115556 Palermo | GEOHASH kg Palermo
= | GEOADD kg 13.361389 38.115556 Palermo 15.087269 37.502669 Catania | GEOSEARCH kg FROMLONLAT 15 37 BYRADIUS 200 km ASC
= | GEOADD kg 13.361389 38.115556 Palermo | GEORADIUS_RO kg 15 37 200 km

## multi-key
= | MSET ka 1 kb 2 kc 3 | DEL ka kb kc kd
= | MSET ka 1 kb 2 | DEL ka kb ka
= | | DEL ka kb
= | MSET ka 1 kb 2 kc 3 | UNLINK kc ka
= | MSET ka 1 kb 2 | EXISTS ka kb kc
= | MSET ka 1 kb 2 | EXISTS ka kb ka kb
= | SET ka 1 | EXISTS ka ka
= | MSET ka 1 kb 2 | TOUCH ka kb kc
= | MSET ka 1 kb 2 kc 3 kd 4 ke 5 kf 6 | MGET ka kb kc kd ke kf kg kh
= | MSET {t}a 1 {t}b 2 ka 3 | MGET {t}a ka {t}b kz
= | | MSET ka 1 kb 2 ka 3
= | | MSET {t}a 1 {u}a 2 {t}b 3 {u}b 4
= | MSET {t}a 1 {u}a 2 | DEL {t}a {u}a {t}b
= | MSET ka 1 kb 2 kc 3 kd 4 ke 5 | DEL ke kd kc kb ka
= | MSET ka 1 kb 2 | MGET ka kb ka kb
= | SET ka 1 ; RPUSH kb x | MGET ka kb
= | | MSET ka 1 kb
= | | MSET ka
= | | MGET
= | | DEL
= | | EXISTS
= | | UNLINK
= | | TOUCH

## keyless
= | | PING
= | | PING hello
= | | ECHO hello
= | | DBSIZE
= | MSET ka 1 kb 2 kc 3 kd 4 {t}a 5 | DBSIZE
= | | KEYS *
~unordered | MSET ka 1 kb 2 kc 3 kd 4 {t}a 5 | KEYS *
~unordered | MSET ka 1 kb 2 kc 3 kd 4 {t}a 5 | KEYS k?
= | MSET ka 1 kb 2 | KEYS nothing*
= | | RANDOMKEY
~anykey | MSET ka 1 kb 2 kc 3 | RANDOMKEY
= | MSET ka 1 kb 2 kc 3 | FLUSHALL
= | MSET ka 1 kb 2 kc 3 ; FLUSHALL | DBSIZE
= | MSET ka 1 kb 2 kc 3 ; FLUSHDB | KEYS *
= | MSET ka 1 kb 2 kc 3 | FLUSHDB ASYNC
~shape | | TIME
~shape | | INFO
~shape | | INFO keyspace
~shape | | LASTSAVE
~shape | | CLIENT ID
~shape | | CLIENT LIST
= | | CONFIG GET maxmemory-policy
= | | COMMAND COUNT
= | | COMMAND INFO get
= | | COMMAND GETKEYS SET ka v1
~shape | | ROLE
= | | FOOBAR
= | | FOOBAR ka
= | | CONFIG FOO
= | | OBJECT HELP

## scripts
= | | EVAL 'return 1' 0
= | SET ka v1 | EVAL 'return redis.call("GET", KEYS[1])' 1 ka
= | | EVAL 'return redis.call("SET", KEYS[1], ARGV[1])' 1 ka v1
= | | EVAL 'redis.call("SET", KEYS[1], ARGV[1]) return redis.call("INCR", KEYS[1])' 1 ka 5
= | | EVAL 'return {1, 2, {3, "x"}, "y"}' 0
= | | EVAL 'return redis.error_reply("boom")' 0
= | | EVAL 'return redis.status_reply("fine")' 0
= | | EVAL 'return 3.7' 0
= | | EVAL 'return true' 0
= | | EVAL 'return false' 0
= | | EVAL 'return {KEYS[1], KEYS[2], ARGV[1]}' 2 {t}a {t}b x
= | SET ka v1 | EVAL 'return redis.call("INCR", KEYS[1])' 1 ka
= | | EVAL 'return redis.pcall("FOOBAR")' 0
= | | EVAL 'return +' 0
= | | EVAL 'return 1' 2 ka
= | | EVAL 'return 1' -1
= | | EVAL 'return 1'
= | SET {t}a 1 ; SET {t}b 2 | EVAL 'return redis.call("GET", KEYS[1]) .. redis.call("GET", KEYS[2])' 2 {t}a {t}b
~spread | SET ka 1 ; SET kb 2 | EVAL 'return redis.call("GET", KEYS[1]) .. redis.call("GET", KEYS[2])' 2 ka kb
= | SET ka v1 | EVAL_RO 'return redis.call("GET", KEYS[1])' 1 ka
= | | EVAL_RO 'return redis.call("SET", KEYS[1], "x")' 1 ka
~cluster-script | SET {u}b v1 | EVAL 'return redis.call("GET", "{u}b")' 1 {t}a
= | SCRIPT FLUSH | SCRIPT LOAD 'return 1'
= | SCRIPT FLUSH ; SCRIPT LOAD 'return 1' | EVALSHA e0e1f9fabfc9d4800c877a703b823ac0578ff8db 0
= | SCRIPT FLUSH | EVALSHA e0e1f9fabfc9d4800c877a703b823ac0578ff8db 0
= | SCRIPT FLUSH ; SCRIPT LOAD 'return 1' | SCRIPT EXISTS e0e1f9fabfc9d4800c877a703b823ac0578ff8db ffffffffffffffffffffffffffffffffffffffff
= | SCRIPT LOAD 'return 1' | SCRIPT FLUSH
= | SCRIPT FLUSH ; SCRIPT LOAD 'return KEYS[1]' | EVALSHA_RO 4a2267357833227dd98abdedb8cf24b15a986445 1 ka
= | SCRIPT FLUSH | INVOKE 'return 1'
= | SCRIPT FLUSH ; SET ka v1 | INVOKE 'return redis.call("GET", KEYS[1])' ka
= | SCRIPT FLUSH ; SET kb v1 | INVOKE 'return redis.call("GET", KEYS[1])' kb
= | SCRIPT FLUSH ; SET kc v1 | INVOKE 'return redis.call("GET", KEYS[1])' kc
= | SCRIPT FLUSH ; SET {t}a v1 | INVOKE 'return redis.call("GET", KEYS[1])' {t}a
= | SCRIPT FLUSH | INVOKE 'return redis.call("SET", KEYS[1], ARGV[1])' kd -- v9
= | SCRIPT FLUSH | INVOKE 'return {KEYS[1], KEYS[2], ARGV[1], ARGV[2]}' {t}a {t}b -- x y
~spread | SCRIPT FLUSH | INVOKE 'return {KEYS[1], KEYS[2]}' ka kb
= | SCRIPT FLUSH ; SET ka v1 | INVOKE 'return redis.call("INCR", KEYS[1])' ka
= | FUNCTION FLUSH ; FUNCTION LOAD '#!lua name=lib\nredis.register_function("f1", function(keys, args) return redis.call("GET", keys[1]) end)' ; SET ka v1 | FCALL f1 1 ka
= | FUNCTION FLUSH ; FUNCTION LOAD '#!lua name=lib\nredis.register_function("f1", function(keys, args) return redis.call("GET", keys[1]) end)' ; SET kb v1 | FCALL f1 1 kb
= | FUNCTION FLUSH | FCALL f1 1 ka
= | FUNCTION FLUSH | FUNCTION LOAD '#!lua name=lib\nredis.register_function("f1", function(keys, args) return 1 end)'
= | FUNCTION FLUSH ; FUNCTION LOAD '#!lua name=lib\nredis.register_function("f1", function(keys, args) return 1 end)' | FUNCTION LOAD '#!lua name=lib\nredis.register_function("f1", function(keys, args) return 1 end)'
= | FUNCTION FLUSH ; FUNCTION LOAD '#!lua name=lib\nredis.register_function("f1", function(keys, args) return 1 end)' | FUNCTION DELETE lib
= | FUNCTION FLUSH | FUNCTION DELETE lib

## blocking
= | RPUSH kl a b | BLPOP kl 1
= | RPUSH kl a b | BRPOP kl 1
= | | BLPOP kl 0.1
= | RPUSH {t}a a b | BLMOVE {t}a {t}b LEFT RIGHT 1
= | RPUSH {t}a a b | BRPOPLPUSH {t}a {t}b 1
= | ZADD kz 1 m1 2 m2 | BZPOPMIN kz 1
= | ZADD kz 1 m1 2 m2 | BZPOPMAX kz 1
= | RPUSH {t}b a | BLMPOP 1 2 {t}a {t}b LEFT
= | ZADD {t}b 1 m1 | BZMPOP 1 2 {t}a {t}b MIN
= | | BLPOP kl abc
~spread | RPUSH kb a | BLPOP ka kb 1

## pipelines
= | | PIPE SET ka 1 ; GET ka ; MGET ka kb ; DEL ka kb ; GET ka
= | MSET ka old kb old | PIPE MSET ka new kb new ; GET ka ; GET kb
= | | PIPE SET ka 0 ; DEL ka kb ; SET ka 1 ; GET ka ; EXISTS ka kb
= | | PIPE INCR ka ; INCR kb ; INCR kc ; MGET ka kb kc ; INCR ka
= | | PIPE SET ka v1 ; INCR ka ; GET ka
= | | PIPE DBSIZE ; SET ka 1 ; DBSIZE ; SET kb 2 ; DBSIZE
~unordered | | PIPE SET ka 1 ; SET kb 1 ; SET {t}a 1 ; KEYS *
= | | PIPE RPUSH kl a b c ; LPOP kl ; RPUSH kl d ; LRANGE kl 0 -1
= | | PIPE HSET kh f1 v1 ; HINCRBY kh f2 3 ; HGETALL kh ; DEL kh ; HGETALL kh
= | | PIPE ZADD kz 1 m1 ; ZADD kz 2 m2 ; ZRANGE kz 0 -1 WITHSCORES ; ZPOPMIN kz
= | | PIPE SADD {t}a m1 ; SADD {t}b m1 m2 ; SINTER {t}a {t}b ; SDIFF {t}b {t}a
= | | PIPE MSET ka 1 kb 2 kc 3 ; DEL kb ; MGET ka kb kc ; MSET kb 9 ; MGET kc kb
= | | PIPE SET ka 1 ; FOOBAR ; GET ka
= | | PIPE SET ka 1 ; GET ; GET ka
= | | PIPE SET ka 1 ; MSET ka 2 kb ; GET ka
= | | PIPE SET ka v1 ; LPUSH ka x ; TYPE ka
= | | PIPE PING ; ECHO hi ; SET ka 1 ; PING
= | | PIPE SET ka 1 ; EXPIRE ka 100 ; TTL ka ; PERSIST ka ; TTL ka
= | | PIPE SCRIPT FLUSH ; SCRIPT LOAD 'return 7' ; EVALSHA 59b6ab2fbe0ee4b25733de0f62e6cda4899ef8e9 0
= | | PIPE EVAL 'return redis.call("INCR", KEYS[1])' 1 ka ; EVAL 'return redis.call("INCR", KEYS[1])' 1 kb ; MGET ka kb
= | | PIPE SET ka 1 ; FLUSHALL ; GET ka ; SET kb 2 ; DBSIZE
= | | PIPE XADD kx 1-1 f1 v1 ; XADD kx 2-1 f2 v2 ; XRANGE kx - + ; XLEN kx
= | | PIPE SET {t}a 1 ; RENAME {t}a {t}b ; GET {t}a ; GET {t}b
= | | PIPE MSET {t}a 1 ka 2 ; MGET ka {t}a ; UNLINK ka {t}a ; DBSIZE
~spread | | PIPE SET ka 1 ; SUNION ka kb ; GET ka
~refused | | PIPE SET ka 1 ; MULTI ; GET ka
~refused | | PIPE SET ka 1 ; WAIT 0 0
= | SET ka 5 | PIPE GET ka ; GET ka ; GET ka ; GET ka ; GET ka ; GET ka ; GET ka ; GET ka
= | | PIPE SET ka 1 ; DBSIZE ; GET ka
= | SET ka 1 | PIPE FLUSHALL ; GET ka ; EXISTS ka
= | SET ka 1 ; SET kb 1 | PIPE MSET ka 2 kb 2 ; PING ; MGET ka kb
= | SET ka 1 ; SET kb 1 | PIPE DEL ka kb ; ECHO x ; GET ka ; GET kb
= | SET ka 1 | PIPE GET ka ; SET ka 2 ; GET ka ; INCR ka ; GET ka
= | SET {t}a 1 | PIPE GET {t}a ; SET {t}a 2 ; PING ; GET {t}a ; MGET {t}a {t}b
~refused | | PIPE RPUSH kl a ; BLPOP kl 1 ; LLEN kl

## transactions
= | | TX SET {t}a 1 ; INCR {t}a ; GET {t}a
= | | TX SET {t}a v1 ; INCR {t}a ; GET {t}a
= | | TX SET {t}a 1 ; FOOBAR ; GET {t}a
= | SET {t}a 0 | TX SET {t}a 1 ; SET {t}a ; GET {t}a
= | | TX MSET {t}a 1 {t}b 2 ; MGET {t}a {t}b ; DEL {t}a {t}b ; EXISTS {t}a
= | | TX PING ; SET {t}a 1 ; ECHO x
= | | TX SET ka 1
= | | TX SET ka 1 ; GET ka ; INCR ka
= | | TX RPUSH {t}a a b ; LMOVE {t}a {t}b LEFT LEFT ; LRANGE {t}b 0 -1
= | | TX HSET kh f1 v1 ; HGETALL kh ; HDEL kh f1
= | | TX ZADD {t}a 1 m1 ; ZADD {t}b 2 m2 ; ZUNION 2 {t}a {t}b WITHSCORES
= | | TX EVAL 'return redis.call("SET", KEYS[1], "x")' 1 {t}a ; GET {t}a
= | | TX SET {t}a v1 ; LPUSH {t}a x ; GET {t}a
= | | TX SET {t}a 1 ; EXPIRE {t}a 100 ; TTL {t}a
= | SET {t}a 1 | TX DEL {t}a ; GET {t}a ; SET {t}a 2
= | | TX XADD {t}a 1-1 f1 v1 ; XLEN {t}a
~spread | | TX SET ka 1 ; SET kb 2
~spread | | TX MGET ka kb
~spread | | TX SET {t}a 1 ; SET {u}a 2
~tx-whole | | TX SET {t}a 1 ; DBSIZE
~tx-whole | | TX SET {t}a 1 ; FLUSHALL
~tx-whole | | TX KEYS *

## connection state
~refused | | MULTI
~refused | | EXEC
~refused | | DISCARD
~refused | | WATCH ka
~refused | | UNWATCH
~refused | | SELECT 0
~refused | | SWAPDB 0 1
~refused | | SUBSCRIBE ch
~refused | | PSUBSCRIBE ch*
~refused | | SSUBSCRIBE ch
~refused | | UNSUBSCRIBE
~refused | | HELLO 3
~refused | | RESET
~refused | | AUTH pw
~refused | | READONLY
~refused | | ASKING
~refused | | QUIT
~refused | | MONITOR
~refused | | CLIENT SETNAME x
~refused | | CLIENT TRACKING ON
~refused | | CLIENT REPLY OFF
~refused | | WAIT 0 0
~refused | | WAITAOF 0 0 0
~refused | MSET ka 1 kb 2 | SCAN 0
~refused | MSET ka 1 kb 2 | SCAN 0 MATCH k* COUNT 100
= | | PUBLISH ch hello
= | | SPUBLISH ch hello
"#;

// ---------------------------------------------------------------------------------------------
// Parsing the table
// ---------------------------------------------------------------------------------------------

/// How a case's replies are compared.
#[derive(Clone, Debug, PartialEq)]
enum Compare {
    Equal,
    /// A documented difference (a tag of [`DIFFERENCES`]).
    Differs(&'static str),
    /// A known bug (a tag of [`KNOWN_BUGS`]): shardis must still differ from the reference.
    Bug(&'static str),
}

/// What a case runs.
#[derive(Clone, Debug)]
enum Run {
    One(Vec<Vec<u8>>),
    Pipe(Vec<Vec<Vec<u8>>>),
    Tx(Vec<Vec<Vec<u8>>>),
    Invoke {
        code: String,
        keys: Vec<Vec<u8>>,
        args: Vec<Vec<u8>>,
    },
}

impl Run {
    /// Each command of the run, as argument lists (for finding the keys).
    fn commands(&self) -> Vec<&[Vec<u8>]> {
        match self {
            Run::One(c) => vec![c],
            Run::Pipe(cs) | Run::Tx(cs) => cs.iter().map(Vec::as_slice).collect(),
            Run::Invoke { keys, .. } => vec![keys],
        }
    }
}

#[derive(Clone, Debug)]
struct Case {
    group: &'static str,
    line: &'static str,
    compare: Compare,
    setup: Vec<Vec<Vec<u8>>>,
    run: Run,
}

/// Splits one command into arguments: spaces separate, `'...'` quotes (with `\n`).
fn words(text: &str) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut chars = text.trim().chars().peekable();
    while let Some(&c) = chars.peek() {
        if c == ' ' {
            chars.next();
            continue;
        }
        let mut word = String::new();
        if c == '\'' {
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '\'' => break,
                    '\\' if chars.peek() == Some(&'n') => {
                        chars.next();
                        word.push('\n');
                    }
                    c => word.push(c),
                }
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c == ' ' {
                    break;
                }
                word.push(c);
                chars.next();
            }
        }
        out.push(word.into_bytes());
    }
    out
}

fn commands(text: &str) -> Vec<Vec<Vec<u8>>> {
    text.split(" ; ")
        .map(words)
        .filter(|c| !c.is_empty())
        .collect()
}

fn static_tag(tag: &str, known: &'static [(&'static str, &'static str)]) -> &'static str {
    known
        .iter()
        .find(|(t, _)| *t == tag)
        .map(|(t, _)| *t)
        .unwrap_or_else(|| panic!("tag {tag:?} is not documented"))
}

fn parse_table() -> Vec<Case> {
    let mut group = "";
    let mut cases = Vec::new();
    for line in TABLE.lines().map(str::trim) {
        if line.is_empty() {
            continue;
        }
        if let Some(name) = line.strip_prefix("## ") {
            group = name;
            continue;
        }
        let mut parts = line.splitn(3, '|');
        let (Some(compare), Some(setup), Some(run)) = (parts.next(), parts.next(), parts.next())
        else {
            panic!("malformed case: {line}");
        };
        let compare = match compare.trim() {
            "=" => Compare::Equal,
            t if t.starts_with('~') => Compare::Differs(static_tag(&t[1..], DIFFERENCES)),
            t if t.starts_with("BUG:") => Compare::Bug(static_tag(&t[4..], KNOWN_BUGS)),
            t => panic!("unknown comparison {t:?} in {line}"),
        };
        let setup = commands(setup.trim());
        let run = run.trim();
        let run = if let Some(rest) = run.strip_prefix("PIPE ") {
            Run::Pipe(commands(rest))
        } else if let Some(rest) = run.strip_prefix("TX ") {
            Run::Tx(commands(rest))
        } else if let Some(rest) = run.strip_prefix("INVOKE ") {
            let mut w = words(rest).into_iter();
            let code = String::from_utf8(w.next().expect("script")).expect("utf-8");
            let rest: Vec<Vec<u8>> = w.collect();
            let split = rest.iter().position(|a| a == b"--").unwrap_or(rest.len());
            Run::Invoke {
                code,
                keys: rest[..split].to_vec(),
                args: rest.get(split + 1..).unwrap_or_default().to_vec(),
            }
        } else {
            Run::One(words(run))
        };
        cases.push(Case {
            group,
            line,
            compare,
            setup,
            run,
        });
    }
    cases
}

/// Whether an argument is a key of the table's keyspace: `k` + one letter, or `{tag}name`.
fn is_key(arg: &[u8]) -> bool {
    match arg {
        [b'k', c] => c.is_ascii_lowercase(),
        [b'{', rest @ ..] => rest.contains(&b'}'),
        _ => false,
    }
}

// ---------------------------------------------------------------------------------------------
// Replies, normalised
// ---------------------------------------------------------------------------------------------

/// A reply as compared: server errors by their text, shardis' own refusals by their kind.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Reply {
    Nil,
    Int(i64),
    Bulk(Vec<u8>),
    Status(String),
    Double(String),
    Bool(bool),
    Array(Vec<Reply>),
    /// A command error of the server: `CODE details`.
    Error(String),
    /// The transaction was discarded by the server (`EXECABORT`).
    ExecAbort,
    /// Refused by shardis before sending (`cross_slot`, `unsupported`).
    Refused(&'static str),
    /// Any other failure of the client.
    Failed(String),
}

impl std::fmt::Display for Reply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Reply::Nil => write!(f, "nil"),
            Reply::Int(n) => write!(f, "{n}"),
            Reply::Bulk(b) => write!(f, "{:?}", String::from_utf8_lossy(b)),
            Reply::Status(s) => write!(f, "+{s}"),
            Reply::Double(d) => write!(f, "{d}"),
            Reply::Bool(b) => write!(f, "{b}"),
            Reply::Array(items) => {
                write!(f, "[")?;
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        write!(f, ", ")?;
                    }
                    write!(f, "{item}")?;
                }
                write!(f, "]")
            }
            Reply::Error(e) => write!(f, "-{e}"),
            Reply::ExecAbort => write!(f, "-EXECABORT"),
            Reply::Refused(kind) => write!(f, "refused({kind})"),
            Reply::Failed(e) => write!(f, "failed({e})"),
        }
    }
}

impl Reply {
    fn of_value(value: Value) -> Reply {
        match value {
            Value::Nil => Reply::Nil,
            Value::Int(n) => Reply::Int(n),
            Value::BulkString(b) => Reply::Bulk(b),
            Value::SimpleString(s) => Reply::Status(s),
            Value::Okay => Reply::Status("OK".into()),
            Value::Double(d) => Reply::Double(d.to_string()),
            Value::Boolean(b) => Reply::Bool(b),
            Value::VerbatimString { text, .. } => Reply::Bulk(text.into_bytes()),
            Value::BigNumber(n) => Reply::Bulk(format!("{n:?}").into_bytes()),
            Value::Array(items) | Value::Set(items) => {
                Reply::Array(items.into_iter().map(Reply::of_value).collect())
            }
            Value::Map(pairs) => Reply::Array(
                pairs
                    .into_iter()
                    .flat_map(|(k, v)| [Reply::of_value(k), Reply::of_value(v)])
                    .collect(),
            ),
            Value::Attribute { data, .. } => Reply::of_value(*data),
            Value::Push { .. } => Reply::Failed("a push frame as a reply".into()),
            Value::ServerError(e) => {
                Reply::Error(format!("{} {}", e.code(), e.details().unwrap_or_default()))
            }
            other => Reply::Failed(format!("unknown value {other:?}")),
        }
    }

    fn of_shardis(err: &Error) -> Reply {
        match err {
            Error::CrossSlot { .. } => Reply::Refused("cross_slot"),
            Error::Unsupported { .. } => Reply::Refused("unsupported"),
            Error::TransactionAborted { .. } => Reply::ExecAbort,
            other => Reply::Failed(other.to_string()),
        }
    }

    fn of_result(result: redis::RedisResult<Value>) -> Reply {
        match result {
            Ok(value) => Reply::of_value(value),
            Err(e) => {
                if let Some(err) = Error::from_redis(&e) {
                    return Reply::of_shardis(err);
                }
                if e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::ExecAbort) {
                    return Reply::ExecAbort;
                }
                match e.code() {
                    Some(code) => {
                        Reply::Error(format!("{code} {}", e.detail().unwrap_or_default()))
                    }
                    None => Reply::Failed(e.to_string()),
                }
            }
        }
    }

    fn is_failure(&self) -> bool {
        matches!(
            self,
            Reply::Error(_) | Reply::ExecAbort | Reply::Refused(_) | Reply::Failed(_)
        )
    }

    /// The reply with the elements of every array sorted (a multiset comparison).
    fn sorted(&self) -> Reply {
        match self {
            Reply::Array(items) => {
                let mut items: Vec<Reply> = items.iter().map(Reply::sorted).collect();
                items.sort();
                Reply::Array(items)
            }
            other => other.clone(),
        }
    }

    /// The reply's type, for replies whose content is about one server or the clock.
    fn shape(&self) -> &'static str {
        match self {
            Reply::Nil => "nil",
            Reply::Int(_) => "integer",
            Reply::Bulk(_) => "bulk",
            Reply::Status(_) => "status",
            Reply::Double(_) => "double",
            Reply::Bool(_) => "bool",
            Reply::Array(_) => "array",
            Reply::Error(_) => "error",
            Reply::ExecAbort => "execabort",
            Reply::Refused(_) => "refused",
            Reply::Failed(_) => "failed",
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Targets
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    Cluster,
    Ring,
    /// Primary+replicas, every command on the primary.
    Replicated,
    /// Primary+replicas, reads on the replicas (`ReadFrom::Replica`).
    ReplicaReads,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Cluster => "cluster",
            Mode::Ring => "ring",
            Mode::Replicated => "replicated",
            Mode::ReplicaReads => "replica-reads",
        }
    }

    /// Whether the keyspace is one shard (every command may take any keys).
    fn one_shard(self) -> bool {
        matches!(self, Mode::Replicated | Mode::ReplicaReads)
    }
}

/// The reference and the shardis deployments, with the servers behind them.
struct Targets {
    reference: MultiplexedConnection,
    sharded: Vec<(Mode, Client)>,
    /// The primary and replicas of the replica-reads client (each client has servers of its
    /// own: a random sequence keeps its state from step to step).
    replication: Replication,
    _servers: (Standalone, Cluster, Standalone, Replication),
}

/// Before a command is compared in replica-reads mode: the replicas have applied every write
/// made so far (reads then see what one Redis would).
async fn settle(mode: Mode, replication: &Replication) {
    if mode == Mode::ReplicaReads {
        replication
            .wait_caught_up(&replication.nodes()[0])
            .await
            .expect("replicas catch up");
    }
}

async fn targets() -> Targets {
    let single = Standalone::start(1).await.expect("reference redis-server");
    let reference = redis::Client::open(format!("redis://{}/", single.nodes()[0].addr()))
        .expect("url")
        .get_multiplexed_async_connection()
        .await
        .expect("reference connection");
    let cluster = Cluster::builder()
        .primaries(3)
        .replicas_per_primary(0)
        .start()
        .await
        .expect("cluster");
    let cluster_client = Client::builder()
        .cluster(cluster.seeds())
        .build()
        .await
        .expect("cluster client");
    let fleet = Standalone::start(3).await.expect("ring nodes");
    let ring_client = Client::builder()
        .ring(shardis_tests::ring_nodes(&fleet))
        .ring_hash_tag(*b"{}")
        .build()
        .await
        .expect("ring client");
    let replicated = |set: &Replication, read_from: ReadFrom| {
        let nodes = set.nodes();
        Client::builder()
            .replicated(nodes[0].addr(), nodes[1..].iter().map(|n| n.addr()))
            .read_from(read_from)
            .build()
    };
    let primary_set = Replication::builder()
        .replicas(1)
        .start()
        .await
        .expect("primary and replica");
    let primary_client = replicated(&primary_set, ReadFrom::Primary)
        .await
        .expect("primary+replicas client");
    let replication = Replication::builder()
        .replicas(2)
        .start()
        .await
        .expect("primary and replicas");
    let replica_client = replicated(&replication, ReadFrom::Replica)
        .await
        .expect("replica-reads client");
    Targets {
        reference,
        sharded: vec![
            (Mode::Cluster, cluster_client),
            (Mode::Ring, ring_client),
            (Mode::Replicated, primary_client),
            (Mode::ReplicaReads, replica_client),
        ],
        replication,
        _servers: (single, cluster, fleet, primary_set),
    }
}

fn cmd_of(args: &[Vec<u8>]) -> redis::Cmd {
    let mut cmd = redis::Cmd::new();
    for a in args {
        cmd.arg(a.as_slice());
    }
    cmd
}

fn pipe_of(cmds: &[Vec<Vec<u8>>], atomic: bool) -> redis::Pipeline {
    let mut pipe = redis::pipe();
    if atomic {
        pipe.atomic();
    }
    for c in cmds {
        pipe.add_command(cmd_of(c));
    }
    pipe
}

/// Runs `run` on one connection (the reference's, or a shardis client through
/// `redis::aio::ConnectionLike`, as a service would use it).
async fn execute(conn: &mut impl ConnectionLike, run: &Run) -> Reply {
    match run {
        Run::One(args) => Reply::of_result(conn.req_packed_command(&cmd_of(args)).await),
        Run::Pipe(cmds) => {
            let pipe = pipe_of(cmds, false);
            match conn.req_packed_commands(&pipe, 0, cmds.len()).await {
                Ok(values) => Reply::Array(values.into_iter().map(Reply::of_value).collect()),
                Err(e) => Reply::of_result(Err(e)),
            }
        }
        Run::Tx(cmds) => {
            let pipe = pipe_of(cmds, true);
            match conn.req_packed_commands(&pipe, cmds.len() + 1, 1).await {
                Ok(mut values) if values.len() == 1 => {
                    Reply::of_value(values.pop().unwrap_or(Value::Nil))
                }
                Ok(values) => Reply::Failed(format!("EXEC answered {values:?}")),
                Err(e) => Reply::of_result(Err(e)),
            }
        }
        Run::Invoke { code, keys, args } => {
            let script = redis::Script::new(code);
            let mut invocation = script.prepare_invoke();
            for k in keys {
                invocation.key(k.as_slice());
            }
            for a in args {
                invocation.arg(a.as_slice());
            }
            Reply::of_result(invocation.invoke_async::<Value>(conn).await)
        }
    }
}

/// A fresh keyspace, then the setup commands (each must succeed).
async fn prepare(conn: &mut impl ConnectionLike, setup: &[Vec<Vec<u8>>], what: &str) {
    let flushed = execute(conn, &Run::One(vec![b"FLUSHALL".to_vec()])).await;
    assert_eq!(
        flushed,
        Reply::Status("OK".into()),
        "{what}: FLUSHALL answered {flushed}"
    );
    for c in setup {
        let reply = execute(conn, &Run::One(c.clone())).await;
        assert!(
            !reply.is_failure(),
            "{what}: setup {:?} answered {reply}",
            String::from_utf8_lossy(&c.join(&b' '))
        );
    }
}

/// Whether the keys of `run` live on several shards of `client`'s deployment (one transaction
/// counts as one command; a pipeline is spread if one of its commands is).
fn spread(mode: Mode, client: &Client, run: &Run) -> bool {
    let shard_of = |key: &[u8]| match mode {
        Mode::Cluster => shardis::slots::key_slot(key).to_string(),
        Mode::Ring => client.ring_node_for(key).expect("ring mode"),
        Mode::Replicated | Mode::ReplicaReads => "the one shard".to_string(),
    };
    let spread_in = |cmds: &[&[Vec<u8>]]| {
        let shards: BTreeSet<String> = cmds
            .iter()
            .flat_map(|c| c.iter().skip(1))
            .filter(|a| is_key(a))
            .map(|k| shard_of(k))
            .collect();
        shards.len() > 1
    };
    match run {
        Run::Tx(_) => spread_in(&run.commands()),
        Run::Invoke { keys, .. } => {
            let keys: Vec<Vec<u8>> = std::iter::once(b"EVALSHA".to_vec())
                .chain(keys.iter().cloned())
                .collect();
            spread_in(&[&keys])
        }
        _ => run.commands().iter().any(|c| spread_in(&[c])),
    }
}

/// The keyspace's keys now, through the reference (for RANDOMKEY).
fn keys_in(setup: &[Vec<Vec<u8>>]) -> BTreeSet<Vec<u8>> {
    setup
        .iter()
        .flat_map(|c| c.iter().skip(1).filter(|a| is_key(a)).cloned())
        .collect()
}

/// Checks one sharded reply against the reference's under `compare`: `Ok(())` if it conforms.
fn check(
    mode: Mode,
    compare: &Compare,
    spread: bool,
    case: &Case,
    reference: &Reply,
    sharded: &Reply,
) -> Result<(), String> {
    let equal = |a: &Reply, b: &Reply| {
        if a == b {
            Ok(())
        } else {
            Err(format!("reference {a}\n        {} {b}", mode.name()))
        }
    };
    let refused = |reply: &Reply| match reply {
        Reply::Refused(_) => Ok(()),
        other => Err(format!("expected a typed refusal, got {other}")),
    };
    match compare {
        Compare::Equal => equal(reference, sharded),
        Compare::Bug(_) => match equal(reference, sharded) {
            Ok(()) => Err("a known bug no longer shows: remove its BUG mark".into()),
            Err(_) => Ok(()),
        },
        Compare::Differs(tag) => match *tag {
            "unordered" => equal(&reference.sorted(), &sharded.sorted()),
            "spread" if spread => refused(sharded),
            "spread" => equal(reference, sharded),
            "spread-set" if spread => refused(sharded),
            "spread-set" => equal(&reference.sorted(), &sharded.sorted()),
            "refused" | "tx-whole" => refused(sharded),
            "anykey" => match sharded {
                Reply::Bulk(k) if keys_in(&case.setup).contains(k) => Ok(()),
                other => Err(format!("expected one of the keys, got {other}")),
            },
            "shape" => match reference.shape() == sharded.shape() {
                true => Ok(()),
                false => Err(format!(
                    "reference {reference}\n        {} {sharded}",
                    mode.name()
                )),
            },
            "db0" if mode == Mode::Cluster => match sharded {
                Reply::Error(_) => Ok(()),
                other => Err(format!("expected the cluster's refusal, got {other}")),
            },
            "db0" => equal(reference, sharded),
            "cluster-script" if mode == Mode::Cluster => match sharded {
                Reply::Error(e) if e.contains("non local key") => Ok(()),
                other => equal(reference, other),
            },
            "cluster-script" if mode.one_shard() => equal(reference, sharded),
            "cluster-script" => Ok(()),
            other => Err(format!("no rule for tag {other}")),
        },
    }
}

// ---------------------------------------------------------------------------------------------
// The table, run
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_case_of_the_table_answers_as_one_redis() {
    let started = Instant::now();
    let cases = parse_table();
    assert!(cases.len() >= 300, "{} cases", cases.len());
    let mut t = targets().await;

    let mut failures = String::new();
    let mut per_group: HashMap<&str, usize> = HashMap::new();
    let mut differing: HashMap<&str, usize> = HashMap::new();
    let mut bugs = Vec::new();
    let mut checked = 0usize;
    // SHARDIS_CONFORMANCE_SHOW=1 prints every reply.
    let show = std::env::var_os("SHARDIS_CONFORMANCE_SHOW").is_some();
    for case in &cases {
        *per_group.entry(case.group).or_default() += 1;
        let reference = if case.compare == Compare::Differs("refused")
            || case.compare == Compare::Differs("tx-whole")
        {
            None
        } else {
            prepare(
                &mut t.reference,
                &case.setup,
                &format!("reference: {}", case.line),
            )
            .await;
            Some(execute(&mut t.reference, &case.run).await)
        };
        for (mode, client) in &mut t.sharded {
            let mode = *mode;
            prepare(
                client,
                &case.setup,
                &format!("{}: {}", mode.name(), case.line),
            )
            .await;
            settle(mode, &t.replication).await;
            let sharded = execute(client, &case.run).await;
            let spread = spread(mode, client, &case.run);
            if matches!(case.compare, Compare::Differs("spread" | "spread-set"))
                && mode == Mode::Cluster
                && !spread
            {
                let _ = writeln!(
                    failures,
                    "[{}] {}\n        marked ~spread but its keys share one slot",
                    case.group, case.line
                );
            }
            let reference = reference.clone().unwrap_or(Reply::Nil);
            if show {
                println!(
                    "{:7} {}\n        ref {reference}\n        got {sharded}",
                    mode.name(),
                    case.line
                );
            }
            if let Compare::Differs(tag) = &case.compare {
                *differing.entry(tag).or_default() += 1;
            }
            match check(mode, &case.compare, spread, case, &reference, &sharded) {
                Ok(()) => {
                    if let Compare::Bug(tag) = case.compare {
                        bugs.push(format!(
                            "{} [{}] {}: {sharded}",
                            mode.name(),
                            tag,
                            case.line
                        ));
                    }
                }
                Err(why) => {
                    let _ = writeln!(
                        failures,
                        "[{} {}] {}\n        {why}",
                        mode.name(),
                        case.group,
                        case.line
                    );
                }
            }
            checked += 1;
        }
    }
    let mut groups: Vec<_> = per_group.into_iter().collect();
    groups.sort();
    println!(
        "{} cases ({checked} comparisons, {} modes) in {:?}: {groups:?}",
        cases.len(),
        t.sharded.len(),
        started.elapsed()
    );
    println!("documented differences (comparisons per tag): {differing:?}");
    for bug in &bugs {
        println!("KNOWN BUG {bug}");
    }
    assert!(
        failures.is_empty(),
        "differences outside the documented ones:\n{failures}"
    );
}

// ---------------------------------------------------------------------------------------------
// Random command sequences
// ---------------------------------------------------------------------------------------------

/// The small keyspace of the random sequences: 4 plain keys (spread over shards) and 4 with
/// hash tags (`{t}` keys share one shard, so multi-key commands and transactions work on them).
const KEYSPACE: [&str; 8] = ["ka", "kb", "kc", "kd", "{t}a", "{t}b", "{t}c", "{u}a"];
/// The keys of one shard: what non-splittable multi-key commands and transactions use.
const TAGGED: [&str; 3] = ["{t}a", "{t}b", "{t}c"];
const VALUES: [&str; 4] = ["0", "1", "7", "x"];
const MEMBERS: [&str; 3] = ["m1", "m2", "m3"];

/// One command: a template and its choices (keys are indices into a key list).
#[derive(Clone, Debug)]
struct Op {
    template: usize,
    keys: [usize; 3],
    value: usize,
    n: i64,
}

/// The number of command templates of [`render`].
const TEMPLATES: usize = 44;

/// The command of `op` over `keys`, and whether its reply is an unordered collection (see
/// DIFFERENCES "unordered"). Templates 0..=39 are keyed; 40.. are multi-key on one shard or
/// keyless.
fn render(op: &Op, keys: &[&str]) -> (Vec<String>, bool) {
    let k = |i: usize| keys[op.keys[i] % keys.len()].to_string();
    let t = |i: usize| TAGGED[op.keys[i] % TAGGED.len()].to_string();
    let v = VALUES[op.value % VALUES.len()].to_string();
    let m = MEMBERS[op.value % MEMBERS.len()].to_string();
    let f = format!("f{}", op.value % 2);
    let n = op.n.to_string();
    let s = |words: &[&str]| words.iter().map(|w| w.to_string()).collect::<Vec<_>>();
    let (k0, k1, k2) = (k(0), k(1), k(2));
    let cmd = match op.template {
        0 => s(&["SET", &k0, &v]),
        1 => s(&["GET", &k0]),
        2 => s(&["INCR", &k0]),
        3 => s(&["APPEND", &k0, &v]),
        4 => s(&["GETDEL", &k0]),
        5 => s(&["STRLEN", &k0]),
        6 => s(&["SETNX", &k0, &v]),
        7 => s(&["INCRBY", &k0, &n]),
        8 => s(&["GETSET", &k0, &v]),
        9 => s(&["SET", &k0, &v, "NX", "GET"]),
        10 => s(&["EXPIRE", &k0, "100"]),
        11 => s(&["TTL", &k0]),
        12 => s(&["PERSIST", &k0]),
        13 => s(&["DEL", &k0, &k1]),
        14 => s(&["EXISTS", &k0, &k1, &k2]),
        15 => s(&["TYPE", &k0]),
        16 => s(&["MGET", &k0, &k1, &k2]),
        17 => s(&["MSET", &k0, &v, &k1, &n]),
        18 => s(&["UNLINK", &k0, &k2]),
        19 => s(&["TOUCH", &k0, &k1]),
        20 => s(&["HSET", &k0, &f, &v]),
        21 => s(&["HGET", &k0, &f]),
        22 => s(&["HDEL", &k0, &f]),
        23 => s(&["HGETALL", &k0]),
        24 => s(&["HINCRBY", &k0, &f, &n]),
        25 => s(&["LPUSH", &k0, &v]),
        26 => s(&["RPUSH", &k0, &v, &n]),
        27 => s(&["LPOP", &k0]),
        28 => s(&["RPOP", &k0]),
        29 => s(&["LRANGE", &k0, "0", "-1"]),
        30 => s(&["LLEN", &k0]),
        31 => s(&["SADD", &k0, &m]),
        32 => s(&["SREM", &k0, &m]),
        33 => s(&["SCARD", &k0]),
        34 => return (s(&["SMEMBERS", &k0]), true),
        35 => s(&["ZADD", &k0, &n, &m]),
        36 => s(&["ZRANGE", &k0, "0", "-1", "WITHSCORES"]),
        37 => s(&["ZINCRBY", &k0, &n, &m]),
        38 => s(&["ZREM", &k0, &m]),
        39 => s(&["EVAL", "return redis.call('INCR', KEYS[1])", "1", &k0]),
        40 => s(&["SUNIONSTORE", &t(0), &t(1), &t(2)]),
        41 => s(&["RENAME", &t(0), &t(1)]),
        42 => s(&["LMOVE", &t(0), &t(1), "LEFT", "RIGHT"]),
        _ => match op.n {
            1 => s(&["DBSIZE"]),
            2 => return (s(&["KEYS", "*"]), true),
            _ => return (s(&["SINTER", &t(0), &t(1)]), true),
        },
    };
    (cmd, false)
}

/// One step of a sequence.
#[derive(Clone, Debug)]
enum Step {
    One(Op),
    Pipe(Vec<Op>),
    /// An atomic pipeline over the keys of one shard.
    Tx(Vec<Op>),
}

impl Step {
    /// The step as a table run, and which of its replies are unordered collections.
    fn run(&self) -> (Run, Vec<bool>) {
        let many = |ops: &[Op], keys: &[&str], tx: bool| {
            ops.iter()
                .map(|op| {
                    // A transaction runs on one shard: no whole-keyspace commands in it.
                    let mut op = op.clone();
                    if tx && op.template == TEMPLATES - 1 {
                        op.n = 3;
                    }
                    render(&op, keys)
                })
                .unzip::<_, _, Vec<_>, Vec<_>>()
        };
        let bytes = |c: Vec<String>| c.into_iter().map(String::into_bytes).collect::<Vec<_>>();
        match self {
            Step::One(op) => {
                let (c, unordered) = render(op, &KEYSPACE);
                (Run::One(bytes(c)), vec![unordered])
            }
            Step::Pipe(ops) => {
                let (cs, unordered) = many(ops, &KEYSPACE, false);
                (Run::Pipe(cs.into_iter().map(bytes).collect()), unordered)
            }
            Step::Tx(ops) => {
                let (cs, unordered) = many(ops, &TAGGED, true);
                (Run::Tx(cs.into_iter().map(bytes).collect()), unordered)
            }
        }
    }
}

/// The reply with each unordered part sorted: the reply of a single command (`many` false),
/// or each command's reply in a pipeline's or transaction's array.
fn canonical(reply: Reply, unordered: &[bool], many: bool) -> Reply {
    match reply {
        Reply::Array(items) if many && items.len() == unordered.len() => Reply::Array(
            items
                .into_iter()
                .zip(unordered)
                .map(|(r, &u)| if u { r.sorted() } else { r })
                .collect(),
        ),
        reply if !many && unordered == [true] => reply.sorted(),
        other => other,
    }
}

fn op() -> impl Strategy<Value = Op> {
    (
        0..TEMPLATES,
        [0..8usize, 0..8usize, 0..8usize],
        0..4usize,
        1..4i64,
    )
        .prop_map(|(template, keys, value, n)| Op {
            template,
            keys,
            value,
            n,
        })
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        6 => op().prop_map(Step::One),
        2 => prop::collection::vec(op(), 2..5).prop_map(Step::Pipe),
        1 => prop::collection::vec(op(), 1..4).prop_map(Step::Tx),
    ]
}

/// A run as text: `SET ka 1`, `PIPE SET ka 1 ; GET ka`, `TX ...`.
fn describe(run: &Run) -> String {
    let line = |c: &[Vec<u8>]| {
        c.iter()
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect::<Vec<_>>()
            .join(" ")
    };
    let lines = |cs: &[Vec<Vec<u8>>]| cs.iter().map(|c| line(c)).collect::<Vec<_>>().join(" ; ");
    match run {
        Run::One(c) => line(c),
        Run::Pipe(cs) => format!("PIPE {}", lines(cs)),
        Run::Tx(cs) => format!("TX {}", lines(cs)),
        Run::Invoke { code, keys, args } => {
            format!("INVOKE {code:?} {} -- {}", line(keys), line(args))
        }
    }
}

/// Runs `steps` on every target from an empty keyspace; the first reply that differs.
async fn run_sequence(
    reference: &mut MultiplexedConnection,
    sharded: &mut [(Mode, Client)],
    replication: &Replication,
    steps: &[Step],
) -> Result<(), String> {
    prepare(reference, &[], "reference").await;
    for (mode, client) in sharded.iter_mut() {
        prepare(client, &[], mode.name()).await;
    }
    for (i, step) in steps.iter().enumerate() {
        let (run, unordered) = step.run();
        let many = !matches!(step, Step::One(_));
        let expected = canonical(execute(reference, &run).await, &unordered, many);
        for (mode, client) in sharded.iter_mut() {
            settle(*mode, replication).await;
            let got = canonical(execute(client, &run).await, &unordered, many);
            if got != expected {
                return Err(format!(
                    "step {i} of {}: {}\n  reference {expected}\n  {} {got}",
                    steps.len(),
                    describe(&run),
                    mode.name()
                ));
            }
        }
    }
    Ok(())
}

/// Random sequences per run, and steps per sequence (a step: a command, a pipeline of 2-4, or
/// a transaction of 1-3).
const SEQUENCES: u32 = 128;
const STEPS: usize = 20;

#[test]
fn random_sequences_answer_as_one_redis() {
    let runtime = Arc::new(
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime"),
    );
    let started = Instant::now();
    let t = runtime.block_on(targets());
    let mut runner = TestRunner::new(Config {
        cases: SEQUENCES,
        failure_persistence: None,
        ..Config::default()
    });
    let result = runner.run(&prop::collection::vec(step(), STEPS), |steps| {
        let mut reference = t.reference.clone();
        let mut sharded = t.sharded.clone();
        runtime
            .block_on(run_sequence(
                &mut reference,
                &mut sharded,
                &t.replication,
                &steps,
            ))
            .map_err(TestCaseError::fail)
    });
    println!(
        "{SEQUENCES} sequences of {STEPS} steps, {} targets, in {:?}",
        t.sharded.len() + 1,
        started.elapsed()
    );
    if let Err(e) = result {
        panic!("a random sequence answered differently from one Redis: {e}");
    }
}
