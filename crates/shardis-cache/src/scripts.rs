//! The Lua scripts of the fill protocol, sent with `EVAL`, which shardis routes by the value key:
//! no `SCRIPT LOAD` that could land on another node.

use std::time::Duration;

use redis::{Cmd, Value};

use crate::cache::Keys;
use crate::error::{Error, Result};

// Every script declares one key, the value key (KEYS[1]), and gets the names of the version and
// lock keys as ARGV[1] and ARGV[2]: they share the value key's hash tag, so in cluster mode they
// are in its slot, and in ring mode (where hash tags are optional) the script runs on the value
// key's node and keeps them there, beside it. Declaring them would make a ring without hash
// tags see a command spread over nodes.

/// Returns `{value or nil, version, locked}`. Takes the fill lock (`SET NX PX`, random token)
/// when the lock TTL is > 0 and the value is missing or a refresh was asked for.
/// ARGV: version key, lock key, token, lock ms, refresh flag.
const PREPARE: &str = r"
local v = redis.call('GET', KEYS[1])
local ver = redis.call('GET', ARGV[1]) or '0'
local got = 0
if (not v or ARGV[5] == '1') and tonumber(ARGV[4]) > 0 then
  if redis.call('SET', ARGV[2], ARGV[3], 'NX', 'PX', ARGV[4]) then got = 1 end
end
return {v or false, ver, got}
";

/// Stores the value only if the key's version is still the one the fill read (its lease);
/// releases the fill lock if this fill holds it. Returns 1 if stored, 0 if superseded.
/// ARGV: version key, lock key, expected version, envelope, PX, token ('' = no lock held).
const STORE: &str = r"
if ARGV[6] ~= '' and redis.call('GET', ARGV[2]) == ARGV[6] then
  redis.call('DEL', ARGV[2])
end
local cur = redis.call('GET', ARGV[1]) or '0'
if cur ~= ARGV[3] then return 0 end
redis.call('SET', KEYS[1], ARGV[4], 'PX', ARGV[5])
return 1
";

/// Compare-and-delete of the fill lock. ARGV: version key, lock key, token.
const RELEASE: &str = r"
if redis.call('GET', ARGV[2]) == ARGV[3] then return redis.call('DEL', ARGV[2]) end
return 0
";

/// Bumps the version (revoking every lease handed out before), deletes value and lock.
/// ARGV: version key, lock key, version TTL ms.
const INVALIDATE: &str = r"
redis.call('INCR', ARGV[1])
redis.call('PEXPIRE', ARGV[1], ARGV[3])
redis.call('DEL', KEYS[1], ARGV[2])
return 1
";

/// Write-through: bumps the version (older fills cannot overwrite) and sets the value.
/// ARGV: version key, lock key, envelope, PX, version TTL ms.
const WRITE: &str = r"
redis.call('INCR', ARGV[1])
redis.call('PEXPIRE', ARGV[1], ARGV[5])
redis.call('SET', KEYS[1], ARGV[3], 'PX', ARGV[4])
return 1
";

fn eval(script: &str, keys: &Keys) -> Cmd {
    let mut cmd = redis::cmd("EVAL");
    cmd.arg(script)
        .arg(1)
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
