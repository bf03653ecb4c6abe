//! The write-behind scripts. Each declares one key, the partition's stream (KEYS[1]); the
//! partition's other keys (its lease, its dead-letter stream) share the stream's hash tag and
//! go as arguments, so in ring mode (where hash tags are optional) the script runs on the
//! stream's node and keeps them there, beside it.

use redis::{Cmd, Value};

use crate::error::{Error, Result};

/// Appends one change unless the partition's backlog is at its bound.
/// ARGV: bound (0: none), id, envelope. Returns `{1, entry id, backlog}` or `{0, '', backlog}`.
const APPEND: &str = r"
local n = redis.call('XLEN', KEYS[1])
local bound = tonumber(ARGV[1])
if bound > 0 and n >= bound then return {0, '', n} end
local e = redis.call('XADD', KEYS[1], '*', 'k', ARGV[2], 'v', ARGV[3])
return {1, e, n + 1}
";

/// Acknowledges and deletes delivered entries (the backlog is then the stream's length).
/// ARGV: group, entry ids... Returns the backlog.
const ACK: &str = r"
local ids = {}
for i = 2, #ARGV do ids[#ids + 1] = ARGV[i] end
if #ids > 0 then
  redis.call('XACK', KEYS[1], ARGV[1], unpack(ids))
  redis.call('XDEL', KEYS[1], unpack(ids))
end
return redis.call('XLEN', KEYS[1])
";

/// Moves one entry to the dead-letter stream with its error, atomically with its
/// acknowledgement. ARGV: group, dead-letter stream, entry id, id, envelope, error, tries.
const DEAD: &str = r"
redis.call('XADD', ARGV[2], '*', 'entry', ARGV[3], 'k', ARGV[4], 'v', ARGV[5], 'error', ARGV[6], 'tries', ARGV[7])
redis.call('XACK', KEYS[1], ARGV[1], ARGV[3])
redis.call('XDEL', KEYS[1], ARGV[3])
return 1
";

/// Takes or renews the partition's lease. ARGV: lease key, token, ms. Returns 1 if held.
const LEASE: &str = r"
local cur = redis.call('GET', ARGV[1])
if not cur then
  redis.call('SET', ARGV[1], ARGV[2], 'PX', ARGV[3])
  return 1
end
if cur == ARGV[2] then
  redis.call('PEXPIRE', ARGV[1], ARGV[3])
  return 1
end
return 0
";

/// Gives the lease up if held. ARGV: lease key, token.
const RELEASE: &str = r"
if redis.call('GET', ARGV[1]) == ARGV[2] then return redis.call('DEL', ARGV[1]) end
return 0
";

/// Reads up to ARGV[2] dead letters after ARGV[1] (exclusive start, '-' for all).
const READ_DEAD: &str = r"
local start = ARGV[2]
if start ~= '-' then start = '(' .. start end
return redis.call('XRANGE', ARGV[1], start, '+', 'COUNT', ARGV[3])
";

/// The write-behind store of a value in the cache: only if this change is newer (by stream
/// entry id, comparable because a key always maps to one partition) than the last one stored,
/// so concurrent writers of one key leave the cache with the value the sink gets last. Bumps
/// the key's version like a write-through (no fill that began earlier can overwrite it).
/// KEYS[1]: value key. ARGV: version key, lock key, last-entry key, entry id, envelope, PX,
/// version TTL ms. Returns 1 if stored, 0 if a newer change is there.
const STORE: &str = r"
local function parse(id)
  local ms, seq = string.match(id, '^(%d+)-(%d+)$')
  return tonumber(ms), tonumber(seq)
end
local last = redis.call('GET', ARGV[3])
if last then
  local lm, ls = parse(last)
  local nm, ns = parse(ARGV[4])
  if lm and nm and (nm < lm or (nm == lm and ns <= ls)) then return 0 end
end
redis.call('INCR', ARGV[1])
redis.call('PEXPIRE', ARGV[1], ARGV[7])
redis.call('SET', KEYS[1], ARGV[5], 'PX', ARGV[6])
redis.call('SET', ARGV[3], ARGV[4], 'PX', ARGV[6])
return 1
";

fn eval(script: &str, stream: &str) -> Cmd {
    let mut cmd = redis::cmd("EVAL");
    cmd.arg(script).arg(1).arg(stream);
    cmd
}

pub(crate) fn append(stream: &str, bound: u64, id: &str, envelope: &[u8]) -> Cmd {
    let mut cmd = eval(APPEND, stream);
    cmd.arg(bound).arg(id).arg(envelope);
    cmd
}

pub(crate) fn ack(stream: &str, group: &str, ids: &[String]) -> Cmd {
    let mut cmd = eval(ACK, stream);
    cmd.arg(group);
    for id in ids {
        cmd.arg(id);
    }
    cmd
}

#[allow(clippy::too_many_arguments)]
pub(crate) fn dead(
    stream: &str,
    group: &str,
    dead: &str,
    entry: &str,
    id: &str,
    envelope: &[u8],
    error: &str,
    tries: u32,
) -> Cmd {
    let mut cmd = eval(DEAD, stream);
    cmd.arg(group)
        .arg(dead)
        .arg(entry)
        .arg(id)
        .arg(envelope)
        .arg(error)
        .arg(tries);
    cmd
}

pub(crate) fn lease(stream: &str, lease: &str, token: &str, ms: u64) -> Cmd {
    let mut cmd = eval(LEASE, stream);
    cmd.arg(lease).arg(token).arg(ms.max(1));
    cmd
}

pub(crate) fn release(stream: &str, lease: &str, token: &str) -> Cmd {
    let mut cmd = eval(RELEASE, stream);
    cmd.arg(lease).arg(token);
    cmd
}

pub(crate) fn read_dead(stream: &str, dead: &str, after: Option<&str>, count: usize) -> Cmd {
    let mut cmd = eval(READ_DEAD, stream);
    cmd.arg(dead).arg(after.unwrap_or("-")).arg(count.max(1));
    cmd
}

#[allow(clippy::too_many_arguments)]
pub(crate) fn store(
    value_key: &str,
    version_key: &str,
    lock_key: &str,
    last_key: &str,
    entry: &str,
    envelope: &[u8],
    px: u64,
    version_ttl_ms: u64,
) -> Cmd {
    let mut cmd = redis::cmd("EVAL");
    cmd.arg(STORE)
        .arg(1)
        .arg(value_key)
        .arg(version_key)
        .arg(lock_key)
        .arg(last_key)
        .arg(entry)
        .arg(envelope)
        .arg(px.max(1))
        .arg(version_ttl_ms.max(1));
    cmd
}

/// The reply of [`APPEND`]: `Some((entry id, backlog))`, or `None` with the backlog when full.
pub(crate) fn parse_append(reply: Value) -> Result<(Option<String>, u64)> {
    let bad = |v: &dyn std::fmt::Debug| Error::Reply(format!("write-behind append: {v:?}"));
    let Value::Array(items) = reply else {
        return Err(server_or(reply, bad));
    };
    let [ok, entry, backlog] = <[Value; 3]>::try_from(items).map_err(|i| bad(&i))?;
    let backlog = int(&backlog).ok_or_else(|| bad(&backlog))?;
    match int(&ok) {
        Some(1) => Ok((Some(text(&entry).ok_or_else(|| bad(&entry))?), backlog)),
        Some(0) => Ok((None, backlog)),
        _ => Err(bad(&ok)),
    }
}

/// A reply that is an error reply becomes [`Error::Server`]; anything else `bad`.
pub(crate) fn server_or(reply: Value, bad: impl Fn(&dyn std::fmt::Debug) -> Error) -> Error {
    match reply {
        Value::ServerError(e) => Error::Server(format!("{e:?}")),
        other => bad(&other),
    }
}

pub(crate) fn int(v: &Value) -> Option<u64> {
    match v {
        Value::Int(i) => u64::try_from(*i).ok(),
        Value::BulkString(b) => std::str::from_utf8(b).ok()?.parse().ok(),
        Value::SimpleString(s) => s.parse().ok(),
        _ => None,
    }
}

pub(crate) fn text(v: &Value) -> Option<String> {
    match v {
        Value::BulkString(b) => String::from_utf8(b.clone()).ok(),
        Value::SimpleString(s) => Some(s.clone()),
        Value::VerbatimString { text, .. } => Some(text.clone()),
        _ => None,
    }
}
