//! The built-in key table: the commands a cache uses every second, so that routing them never
//! waits for `COMMAND INFO`. Positions follow the Redis 7.0 key specs.

use std::collections::HashMap;
use std::sync::LazyLock;

use super::{Begin, CommandSpec, Find, KeySpec, Split};

/// The key at argument `i`.
fn at(i: usize) -> KeySpec {
    KeySpec {
        begin: Begin::Index(i),
        find: Find::Range {
            last_key: 0,
            step: 1,
            limit: 0,
        },
    }
}

/// Every argument from `i` to the one `back` from the end (-1 = last), every `step`.
fn range(i: usize, back: isize, step: usize) -> KeySpec {
    KeySpec {
        begin: Begin::Index(i),
        find: Find::Range {
            last_key: back,
            step,
            limit: 0,
        },
    }
}

/// A key count at argument `i`, keys right after it.
fn numkeys(i: usize) -> KeySpec {
    KeySpec {
        begin: Begin::Index(i),
        find: Find::KeyNum {
            keynum_idx: 0,
            first_key: 1,
            step: 1,
        },
    }
}

/// `... STREAMS k1 k2 id1 id2`: the first half of what follows the keyword.
fn streams() -> KeySpec {
    KeySpec {
        begin: Begin::Keyword {
            keyword: b"STREAMS"[..].into(),
            start_from: 1,
        },
        find: Find::Range {
            last_key: -1,
            step: 1,
            limit: 2,
        },
    }
}

/// A built-in command: its upper-case name and spec.
pub(crate) struct Builtin {
    pub name: &'static str,
    pub spec: CommandSpec,
}

/// Looked up once per command, by the upper-cased bytes of its name (no UTF-8 check on the
/// way), hashed with foldhash, not SipHash (measured with callgrind: the SipHash of the name
/// was ~3% of a cluster `GET`'s instructions). The keys are the table's own names, so
/// flooding it is not a concern.
type Table = HashMap<&'static [u8], Builtin, foldhash::fast::RandomState>;

static TABLE: LazyLock<Table> = LazyLock::new(build);

/// The longest built-in name: a longer one is not in the table.
pub(crate) const LONGEST_NAME: usize = 24;

/// The built-in command whose upper-case name is `name`.
#[inline]
pub(crate) fn builtin(name: &[u8]) -> Option<&'static Builtin> {
    TABLE.get(name)
}

/// The built-in spec of an upper-case command name.
pub(crate) fn lookup(name: &str) -> Option<&'static CommandSpec> {
    builtin(name.as_bytes()).map(|b| &b.spec)
}

fn build() -> Table {
    let mut t = Table::default();
    let mut add =
        |names: &[&'static str], keys: Vec<KeySpec>, readonly: bool, split: Option<Split>| {
            for name in names {
                t.insert(
                    name.as_bytes(),
                    Builtin {
                        name,
                        spec: CommandSpec {
                            keys: keys.clone(),
                            readonly,
                            split,
                            fanout: None,
                        },
                    },
                );
            }
        };
    const R: bool = true;
    const W: bool = false;

    // One key, first argument, reads.
    add(
        &[
            "GET",
            "GETRANGE",
            "SUBSTR",
            "STRLEN",
            "TTL",
            "PTTL",
            "EXPIRETIME",
            "PEXPIRETIME",
            "TYPE",
            "HGET",
            "HMGET",
            "HGETALL",
            "HKEYS",
            "HVALS",
            "HLEN",
            "HEXISTS",
            "HSTRLEN",
            "HRANDFIELD",
            "HSCAN",
            "LRANGE",
            "LLEN",
            "LINDEX",
            "LPOS",
            "SMEMBERS",
            "SISMEMBER",
            "SMISMEMBER",
            "SCARD",
            "SRANDMEMBER",
            "SSCAN",
            "ZRANGE",
            "ZRANGEBYSCORE",
            "ZREVRANGE",
            "ZREVRANGEBYSCORE",
            "ZRANGEBYLEX",
            "ZREVRANGEBYLEX",
            "ZSCORE",
            "ZMSCORE",
            "ZCARD",
            "ZCOUNT",
            "ZLEXCOUNT",
            "ZRANK",
            "ZREVRANK",
            "ZSCAN",
            "ZRANDMEMBER",
            "GETBIT",
            "BITCOUNT",
            "BITPOS",
            "BITFIELD_RO",
            "DUMP",
            "XRANGE",
            "XREVRANGE",
            "XLEN",
            "XPENDING",
            "GEOPOS",
            "GEODIST",
            "GEOHASH",
            "GEORADIUS_RO",
            "GEORADIUSBYMEMBER_RO",
            "GEOSEARCH",
            "SORT_RO",
        ],
        vec![at(1)],
        R,
        None,
    );
    // One key, first argument, writes.
    add(
        &[
            "SET",
            "SETEX",
            "PSETEX",
            "SETNX",
            "GETSET",
            "GETDEL",
            "GETEX",
            "APPEND",
            "INCR",
            "INCRBY",
            "INCRBYFLOAT",
            "DECR",
            "DECRBY",
            "SETRANGE",
            "EXPIRE",
            "PEXPIRE",
            "EXPIREAT",
            "PEXPIREAT",
            "PERSIST",
            "HSET",
            "HSETNX",
            "HMSET",
            "HDEL",
            "HINCRBY",
            "HINCRBYFLOAT",
            "LPUSH",
            "RPUSH",
            "LPUSHX",
            "RPUSHX",
            "LPOP",
            "RPOP",
            "LSET",
            "LREM",
            "LTRIM",
            "LINSERT",
            "SADD",
            "SREM",
            "SPOP",
            "ZADD",
            "ZREM",
            "ZINCRBY",
            "ZPOPMIN",
            "ZPOPMAX",
            "ZREMRANGEBYSCORE",
            "ZREMRANGEBYRANK",
            "ZREMRANGEBYLEX",
            "SETBIT",
            "BITFIELD",
            "PFADD",
            "XADD",
            "XDEL",
            "XTRIM",
            "XACK",
            "XCLAIM",
            "XAUTOCLAIM",
            "XSETID",
            "GEOADD",
            "RESTORE",
            "SORT",
            "GEORADIUS",
            "GEORADIUSBYMEMBER",
        ],
        vec![at(1)],
        W,
        None,
    );
    // Container commands whose key is the argument after the subcommand.
    add(&["OBJECT", "XINFO"], vec![at(2)], R, None);
    add(&["MEMORY"], vec![at(2)], R, None);
    add(&["XGROUP"], vec![at(2)], W, None);
    // Splittable multi-key commands.
    add(
        &["MGET"],
        vec![range(1, -1, 1)],
        R,
        Some(Split::KeysToArray),
    );
    add(
        &["EXISTS", "TOUCH"],
        vec![range(1, -1, 1)],
        R,
        Some(Split::KeysToSum),
    );
    add(
        &["DEL", "UNLINK"],
        vec![range(1, -1, 1)],
        W,
        Some(Split::KeysToSum),
    );
    add(&["MSET"], vec![range(1, -1, 2)], W, Some(Split::PairsToOk));
    // Multi-key commands that must stay in one slot.
    add(&["MSETNX"], vec![range(1, -1, 2)], W, None);
    add(
        &["SINTER", "SUNION", "SDIFF", "PFCOUNT"],
        vec![range(1, -1, 1)],
        R,
        None,
    );
    add(
        &[
            "SINTERSTORE",
            "SUNIONSTORE",
            "SDIFFSTORE",
            "PFMERGE",
            "WATCH",
        ],
        vec![range(1, -1, 1)],
        W,
        None,
    );
    add(
        &[
            "RENAME",
            "RENAMENX",
            "COPY",
            "RPOPLPUSH",
            "LMOVE",
            "ZRANGESTORE",
            "GEOSEARCHSTORE",
        ],
        vec![range(1, 1, 1)],
        W,
        None,
    );
    add(&["SMOVE"], vec![range(1, 1, 1)], W, None);
    add(&["LCS"], vec![range(1, 1, 1)], R, None);
    add(&["BRPOPLPUSH", "BLMOVE"], vec![range(1, 1, 1)], W, None);
    add(
        &["BLPOP", "BRPOP", "BZPOPMIN", "BZPOPMAX"],
        vec![range(1, -2, 1)],
        W,
        None,
    );
    add(&["BITOP"], vec![range(2, -1, 1)], W, None);
    add(
        &["ZUNIONSTORE", "ZINTERSTORE", "ZDIFFSTORE"],
        vec![at(1), numkeys(2)],
        W,
        None,
    );
    add(
        &["ZINTER", "ZUNION", "ZDIFF", "SINTERCARD", "ZINTERCARD"],
        vec![numkeys(1)],
        R,
        None,
    );
    add(&["LMPOP", "ZMPOP"], vec![numkeys(1)], W, None);
    add(&["BLMPOP", "BZMPOP"], vec![numkeys(2)], W, None);
    add(&["EVAL", "EVALSHA", "FCALL"], vec![numkeys(2)], W, None);
    add(
        &["EVAL_RO", "EVALSHA_RO", "FCALL_RO"],
        vec![numkeys(2)],
        R,
        None,
    );
    add(&["XREAD"], vec![streams()], R, None);
    add(&["XREADGROUP"], vec![streams()], W, None);
    // The channel routes PUBLISH as a key: in ring mode a channel's publishers and subscribers
    // must meet on one node, its ring owner (a ring node hears only its own PUBLISHes); in
    // cluster mode every node hears every PUBLISH, so the channel's slot owner is as good as
    // any. SPUBLISH must reach the channel's slot (ring: its owner).
    add(&["PUBLISH", "SPUBLISH"], vec![at(1)], W, None);
    // Keyless commands: they go to a primary (use the all-nodes helpers for fan-out).
    add(
        &[
            "PING",
            "ECHO",
            "TIME",
            "INFO",
            "DBSIZE",
            "RANDOMKEY",
            "KEYS",
            "SCAN",
            "FLUSHALL",
            "FLUSHDB",
            "CONFIG",
            "CLIENT",
            "CLUSTER",
            "COMMAND",
            "SCRIPT",
            "FUNCTION",
            "LASTSAVE",
            "SLOWLOG",
            "LATENCY",
            "WAIT",
            "READONLY",
            "READWRITE",
            "ROLE",
            "LOLWUT",
        ],
        vec![],
        W,
        None,
    );
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_is_upper_case_and_fits_the_name_buffer() {
        for (bytes, builtin) in TABLE.iter() {
            assert_eq!(*bytes, builtin.name.as_bytes());
            assert!(bytes.len() <= LONGEST_NAME, "{} is too long", builtin.name);
            assert_eq!(builtin.name, builtin.name.to_ascii_uppercase());
        }
    }
}
