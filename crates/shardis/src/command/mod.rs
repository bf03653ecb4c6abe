//! Where each command keeps its keys, and whether it only reads.
//!
//! Keys are described the way Redis 7 describes them in `COMMAND INFO` key specs: a place to
//! begin searching (an argument index, or the argument after a keyword) and a way to find the
//! keys from there (a range, or a count followed by keys). The common commands are in a
//! built-in table ([`table`]); the rest are learned from the server ([`info`]) once and kept in
//! a lock-free snapshot.

pub(crate) mod class;
pub(crate) mod info;
pub(crate) mod learned;
pub(crate) mod policy;
pub(crate) mod table;

use redis::{Arg, Cmd};
use smallvec::SmallVec;

/// A command's arguments, inline up to 8 (no allocation for the common commands).
pub(crate) type ArgList<'a> = SmallVec<[&'a [u8]; 8]>;

/// Argument indices of a command's keys, inline up to 4.
pub(crate) type KeyIndices = SmallVec<[usize; 4]>;

/// Where the search for keys begins.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Begin {
    /// At this argument index (0 is the command name).
    Index(usize),
    /// After the first argument equal (case-insensitively) to `keyword`, searching from
    /// `start_from` (negative counts from the end; the search runs towards the end).
    Keyword {
        keyword: Box<[u8]>,
        start_from: isize,
    },
}

/// How keys are found from the beginning.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Find {
    /// Keys from the beginning to `last_key` (relative to the beginning; -1 = last argument),
    /// every `step` arguments. `limit` > 1 means "1/limit of the remaining arguments".
    Range {
        last_key: isize,
        step: usize,
        limit: usize,
    },
    /// The argument at `keynum_idx` (relative) holds the key count; keys start at
    /// `first_key` (relative) every `step`.
    KeyNum {
        keynum_idx: usize,
        first_key: usize,
        step: usize,
    },
}

/// One key spec.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct KeySpec {
    pub begin: Begin,
    pub find: Find,
}

/// What shardis knows about a command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct CommandSpec {
    pub keys: Vec<KeySpec>,
    pub readonly: bool,
    /// Multi-key commands that may be split per slot and reassembled.
    pub split: Option<Split>,
    /// For a keyless command about the whole keyspace, where it goes and how replies combine
    /// (learned from `COMMAND INFO` tips; the built-in ones are in [`policy`]).
    pub fanout: Option<policy::Fanout>,
}

/// How a splittable multi-key command is split and its replies combined.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Split {
    /// `MGET k...`: one key per argument; replies are arrays, reassembled in key order.
    KeysToArray,
    /// `DEL`/`UNLINK`/`EXISTS`/`TOUCH k...`: replies are integers, summed.
    KeysToSum,
    /// `MSET k v ...`: pairs; every reply is `OK`.
    PairsToOk,
}

impl CommandSpec {
    /// Argument indices of the keys of `cmd`, in argument order. Indices past the end of the
    /// arguments are dropped, so a short command (e.g. `OBJECT HELP`) simply has no keys.
    pub(crate) fn key_indices(&self, args: &[&[u8]]) -> KeyIndices {
        let mut out = KeyIndices::new();
        for spec in &self.keys {
            spec.collect(args, &mut out);
        }
        out
    }
}

impl KeySpec {
    fn collect(&self, args: &[&[u8]], out: &mut KeyIndices) {
        let n = args.len();
        let begin = match &self.begin {
            Begin::Index(i) => *i,
            Begin::Keyword {
                keyword,
                start_from,
            } => {
                let from = if *start_from >= 0 {
                    *start_from as usize
                } else {
                    n.saturating_sub(start_from.unsigned_abs())
                };
                match (from..n).find(|&i| args[i].eq_ignore_ascii_case(keyword)) {
                    Some(i) => i + 1,
                    None => return,
                }
            }
        };
        if begin >= n {
            return;
        }
        match self.find {
            Find::Range {
                last_key,
                step,
                limit,
            } => {
                let step = step.max(1);
                let last = if last_key >= 0 {
                    (begin + last_key as usize).min(n - 1)
                } else if limit > 1 {
                    // e.g. XREAD STREAMS k1 k2 id1 id2: the first 1/limit of what remains.
                    let remaining = n - begin;
                    (begin + remaining / limit).saturating_sub(1)
                } else {
                    match n.checked_sub(last_key.unsigned_abs()) {
                        Some(last) => last,
                        None => return,
                    }
                };
                let mut i = begin;
                while i <= last && i < n {
                    out.push(i);
                    i += step;
                }
            }
            Find::KeyNum {
                keynum_idx,
                first_key,
                step,
            } => {
                let Some(count) = args
                    .get(begin + keynum_idx)
                    .and_then(|a| std::str::from_utf8(a).ok())
                    .and_then(|s| s.parse::<usize>().ok())
                else {
                    return;
                };
                let step = step.max(1);
                let first = begin + first_key;
                for k in 0..count {
                    let i = first + k * step;
                    if i >= n {
                        break;
                    }
                    out.push(i);
                }
            }
        }
    }
}

/// The arguments of a command as byte slices (cursor arguments render as nothing useful for
/// routing and are skipped as keys).
#[inline]
pub(crate) fn args_of(cmd: &Cmd) -> ArgList<'_> {
    cmd.args_iter()
        .map(|a| match a {
            Arg::Simple(bytes) => bytes,
            _ => &b"0"[..],
        })
        .collect()
}

/// The upper-case command name (container commands such as `OBJECT` are listed in the table
/// by their first word; their key position accounts for the subcommand).
#[inline]
pub(crate) fn name_of(args: &[&[u8]]) -> CommandName {
    let first = args.first().copied().unwrap_or_default();
    // The common case, a built-in command: upper-cased on the stack and looked up by its
    // bytes, so it is never checked as UTF-8 nor copied again (both were a visible share of a
    // command's cost).
    let mut upper = [0u8; table::LONGEST_NAME];
    if let Some(upper) = upper.get_mut(..first.len()) {
        for (u, b) in upper.iter_mut().zip(first) {
            *u = b.to_ascii_uppercase();
        }
        if let Some(builtin) = table::builtin(upper) {
            return CommandName::Builtin(builtin);
        }
    }
    let mut name: SmallVec<[u8; 24]> = if first.is_ascii() {
        SmallVec::from_slice(first)
    } else {
        SmallVec::from_slice(String::from_utf8_lossy(first).as_bytes())
    };
    name.make_ascii_uppercase();
    CommandName::Other(name)
}

/// An upper-case command name, named once per command: it must not allocate.
pub(crate) enum CommandName {
    /// In the built-in table (found while naming it).
    Builtin(&'static table::Builtin),
    /// Any other name, valid UTF-8 (lossily, if it was not), inline up to 24 bytes.
    Other(SmallVec<[u8; 24]>),
}

impl CommandName {
    /// Its built-in spec, if it is a built-in command.
    pub(crate) fn builtin(&self) -> Option<&'static CommandSpec> {
        match self {
            CommandName::Builtin(builtin) => Some(&builtin.spec),
            CommandName::Other(_) => None,
        }
    }
}

impl std::ops::Deref for CommandName {
    type Target = str;

    fn deref(&self) -> &str {
        match self {
            CommandName::Builtin(builtin) => builtin.name,
            // Built from valid UTF-8 with ASCII bytes upper-cased, which keeps it valid.
            CommandName::Other(name) => std::str::from_utf8(name).unwrap_or_default(),
        }
    }
}

impl std::fmt::Display for CommandName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(cmd: &Cmd) -> Vec<Vec<u8>> {
        let args = args_of(cmd);
        let spec = table::lookup(&name_of(&args)).expect("in the table");
        spec.key_indices(&args)
            .into_iter()
            .map(|i| args[i].to_vec())
            .collect()
    }

    fn k(list: &[&str]) -> Vec<Vec<u8>> {
        list.iter().map(|s| s.as_bytes().to_vec()).collect()
    }

    #[test]
    fn finds_keys_of_common_commands() {
        assert_eq!(keys(redis::cmd("GET").arg("a")), k(&["a"]));
        assert_eq!(
            keys(redis::cmd("set").arg("a").arg("1").arg("EX").arg(5)),
            k(&["a"])
        );
        assert_eq!(
            keys(redis::cmd("MGET").arg("a").arg("b").arg("c")),
            k(&["a", "b", "c"])
        );
        assert_eq!(
            keys(redis::cmd("MSET").arg("a").arg(1).arg("b").arg(2)),
            k(&["a", "b"])
        );
        assert_eq!(
            keys(redis::cmd("BLPOP").arg("a").arg("b").arg(0)),
            k(&["a", "b"])
        );
        assert_eq!(
            keys(
                redis::cmd("EVAL")
                    .arg("s")
                    .arg(2)
                    .arg("a")
                    .arg("b")
                    .arg("x")
            ),
            k(&["a", "b"])
        );
        assert_eq!(keys(redis::cmd("EVAL").arg("s").arg(0).arg("x")), k(&[]));
        assert_eq!(
            keys(
                redis::cmd("ZUNIONSTORE")
                    .arg("d")
                    .arg(2)
                    .arg("a")
                    .arg("b")
                    .arg("WEIGHTS")
                    .arg(1)
                    .arg(2)
            ),
            k(&["d", "a", "b"])
        );
        assert_eq!(
            keys(redis::cmd("ZINTER").arg(2).arg("a").arg("b")),
            k(&["a", "b"])
        );
        assert_eq!(
            keys(
                redis::cmd("XREAD")
                    .arg("COUNT")
                    .arg(2)
                    .arg("STREAMS")
                    .arg("s1")
                    .arg("s2")
                    .arg("0")
                    .arg("0")
            ),
            k(&["s1", "s2"])
        );
        assert_eq!(
            keys(
                redis::cmd("XREADGROUP")
                    .arg("GROUP")
                    .arg("g")
                    .arg("c")
                    .arg("STREAMS")
                    .arg("s1")
                    .arg(">")
            ),
            k(&["s1"])
        );
        assert_eq!(
            keys(redis::cmd("OBJECT").arg("ENCODING").arg("a")),
            k(&["a"])
        );
        assert_eq!(keys(redis::cmd("OBJECT").arg("HELP")), k(&[]));
        assert_eq!(
            keys(redis::cmd("BITOP").arg("AND").arg("d").arg("a").arg("b")),
            k(&["d", "a", "b"])
        );
        assert_eq!(
            keys(
                redis::cmd("LMOVE")
                    .arg("a")
                    .arg("b")
                    .arg("LEFT")
                    .arg("RIGHT")
            ),
            k(&["a", "b"])
        );
        assert_eq!(
            keys(
                redis::cmd("BLMPOP")
                    .arg(0)
                    .arg(2)
                    .arg("a")
                    .arg("b")
                    .arg("LEFT")
            ),
            k(&["a", "b"])
        );
        assert_eq!(keys(&redis::cmd("PING")), k(&[]));
    }

    #[test]
    fn knows_reads_from_writes_and_splits() {
        assert!(table::lookup("GET").unwrap().readonly);
        assert!(!table::lookup("SET").unwrap().readonly);
        assert!(table::lookup("MGET").unwrap().readonly);
        assert_eq!(
            table::lookup("MGET").unwrap().split,
            Some(Split::KeysToArray)
        );
        assert_eq!(table::lookup("DEL").unwrap().split, Some(Split::KeysToSum));
        assert_eq!(table::lookup("MSET").unwrap().split, Some(Split::PairsToOk));
        assert_eq!(table::lookup("SUNION").unwrap().split, None);
        assert!(table::lookup("NOSUCHCOMMAND").is_none());
    }

    #[test]
    fn names_are_found_whatever_their_case_and_others_kept_upper_cased() {
        let name = |raw: &[u8]| name_of(&[raw]);
        for raw in [&b"get"[..], b"GET", b"gEt"] {
            let n = name(raw);
            assert_eq!(&*n, "GET");
            assert!(n.builtin().is_some_and(|spec| spec.readonly));
        }
        // Unknown ones keep their (upper-cased) name and have no built-in spec.
        let n = name(b"json.get");
        assert_eq!((&*n, n.builtin().is_none()), ("JSON.GET", true));
        // Longer than any built-in name, and not valid UTF-8: lossy, never a panic.
        let long = b"x".repeat(table::LONGEST_NAME + 1);
        assert_eq!(&*name(&long), "X".repeat(table::LONGEST_NAME + 1));
        assert_eq!(&*name(b"g\xffet"), "G\u{fffd}ET");
        assert_eq!(&*name(b""), "");
    }
}
