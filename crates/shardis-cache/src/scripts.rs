//! The Lua scripts of the fill protocol. Each takes the entry's three keys (value, version,
//! lock: one hash tag, so one slot) and is sent with `EVAL`, which shardis routes by the first
//! key: no `SCRIPT LOAD` that could land on another node.

use std::time::Duration;

use redis::{Cmd, Value};

use crate::cache::Keys;
use crate::error::{Error, Result};

/// Returns `{value or nil, version, locked}`. Takes the fill lock (`SET NX PX`, random token)
/// when `ARGV[2]` > 0 and the value is missing or a refresh was asked for.
const PREPARE: &str = r"
local v = redis.call('GET', KEYS[1])
local ver = redis.call('GET', KEYS[2]) or '0'
local got = 0
if (not v or ARGV[3] == '1') and tonumber(ARGV[2]) > 0 then
  if redis.call('SET', KEYS[3], ARGV[1], 'NX', 'PX', ARGV[2]) then got = 1 end
end
return {v or false, ver, got}
";

/// Stores the value only if the key's version is still the one the fill read (its lease);
/// releases the fill lock if this fill holds it. Returns 1 if stored, 0 if superseded.
const STORE: &str = r"
if ARGV[4] ~= '' and redis.call('GET', KEYS[3]) == ARGV[4] then
  redis.call('DEL', KEYS[3])
end
local cur = redis.call('GET', KEYS[2]) or '0'
if cur ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
return 1
";

/// Compare-and-delete of the fill lock.
const RELEASE: &str = r"
if redis.call('GET', KEYS[3]) == ARGV[1] then return redis.call('DEL', KEYS[3]) end
return 0
";

/// Bumps the version (revoking every lease handed out before), deletes value and lock.
const INVALIDATE: &str = r"
redis.call('INCR', KEYS[2])
redis.call('PEXPIRE', KEYS[2], ARGV[1])
redis.call('DEL', KEYS[1], KEYS[3])
return 1
";

/// Write-through: bumps the version (older fills cannot overwrite) and sets the value.
const WRITE: &str = r"
redis.call('INCR', KEYS[2])
redis.call('PEXPIRE', KEYS[2], ARGV[3])
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
";

fn eval(script: &str, keys: &Keys) -> Cmd {
    let mut cmd = redis::cmd("EVAL");
    cmd.arg(script)
        .arg(3)
        .arg(&keys.value)
        .arg(keys.version())
        .arg(keys.lock());
    cmd
}

pub(crate) fn prepare(keys: &Keys, token: &str, lock_ms: u64, refresh: bool) -> Cmd {
    let mut cmd = eval(PREPARE, keys);
    cmd.arg(token)
        .arg(lock_ms)
        .arg(if refresh { "1" } else { "0" });
    cmd
}

pub(crate) fn store(keys: &Keys, version: &str, bytes: &[u8], px: u64, token: &str) -> Cmd {
    let mut cmd = eval(STORE, keys);
    cmd.arg(version).arg(bytes).arg(px).arg(token);
    cmd
}

pub(crate) fn release(keys: &Keys, token: &str) -> Cmd {
    let mut cmd = eval(RELEASE, keys);
    cmd.arg(token);
    cmd
}

pub(crate) fn invalidate(keys: &Keys, lease_ttl: Duration) -> Cmd {
    let mut cmd = eval(INVALIDATE, keys);
    cmd.arg(lease_ttl.as_millis() as u64);
    cmd
}

pub(crate) fn write(keys: &Keys, bytes: &[u8], px: u64, lease_ttl: Duration) -> Cmd {
    let mut cmd = eval(WRITE, keys);
    cmd.arg(bytes).arg(px).arg(lease_ttl.as_millis() as u64);
    cmd
}

/// The reply of [`PREPARE`].
#[derive(Debug)]
pub(crate) struct Prepared {
    pub(crate) value: Option<Vec<u8>>,
    pub(crate) version: String,
    pub(crate) locked: bool,
}

impl Prepared {
    pub(crate) fn parse(reply: Value) -> Result<Prepared> {
        let bad = |v: &dyn std::fmt::Debug| Error::Reply(format!("prepare script: {v:?}"));
        let Value::Array(items) = reply else {
            return Err(bad(&reply));
        };
        let [value, version, locked] = <[Value; 3]>::try_from(items).map_err(|i| bad(&i))?;
        let value = match value {
            Value::Nil => None,
            Value::BulkString(b) => Some(b),
            other => return Err(bad(&other)),
        };
        let version = match version {
            Value::BulkString(b) => String::from_utf8(b).map_err(|e| bad(&e))?,
            Value::SimpleString(s) => s,
            Value::Int(i) => i.to_string(),
            other => return Err(bad(&other)),
        };
        let locked = matches!(locked, Value::Int(1));
        Ok(Prepared {
            value,
            version,
            locked,
        })
    }
}
