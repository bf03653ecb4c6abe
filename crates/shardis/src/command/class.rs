//! The rule for every command: may it run on a connection shared by every caller?
//!
//! A shared, pipelined connection is correct only for commands that leave nothing behind on it
//! and answer at once. A command that changes the connection's state (`MULTI` sent raw, `WATCH`,
//! `SELECT`, `SUBSCRIBE`, `CLIENT TRACKING`, `HELLO`, ...) would change what every other caller's
//! command means, and a blocking command (`BLPOP`, `XREAD BLOCK`, `WAIT`) would hold every reply
//! queued behind it. So each command is classed once, from its name and arguments, before
//! anything is sent; this module is pure and tested from arguments alone.

use std::time::Duration;

/// How a command may run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Class {
    /// On the shared connection of the node(s) its keys say.
    Shared,
    /// Blocks the connection until data arrives or its own timeout passes: on a dedicated
    /// connection of its own, with a deadline from its timeout (`None`: it may wait forever).
    Blocking { wait: Option<Duration> },
    /// Leaves state on the connection, or is the client's own business: refused, with the
    /// alternative to use.
    Refused { alternative: &'static str },
}

/// Margin added to a blocking command's own timeout before the client gives up on it: the
/// server answers at its timeout, plus a round trip.
pub(crate) const BLOCKING_MARGIN: Duration = Duration::from_secs(1);

const TRANSACTION: &str = "MULTI/EXEC/DISCARD sent as plain commands would turn the shared \
     connection into a transaction for every caller: use redis::pipe().atomic() (a transaction \
     on one shard), or Client::transaction for WATCH-based optimistic transactions";
const WATCH: &str = "WATCH/UNWATCH hold state on the connection: use Client::transaction, which \
     runs WATCH, MULTI and EXEC on a dedicated connection to the keys' node";
const SELECT: &str = "the shared connections serve database 0 for every caller (Redis Cluster \
     has only database 0): use key prefixes, or one client per standalone database";
const SUBSCRIBE: &str = "a subscribed connection answers nothing else: use Client::subscribe, \
     Client::psubscribe or Client::ssubscribe, which return a Subscription (a Stream of \
     messages on connections of its own, resubscribed after moves and reconnects; \
     unsubscribe through its methods); PUBLISH and SPUBLISH work through the client";
const MONITOR: &str = "MONITOR streams every command of the server on the connection: use \
     redis-cli MONITOR against the node";
const PROTOCOL: &str = "shardis negotiates the protocol and tracking of its own connections; \
     HELLO and CLIENT TRACKING/REPLY/CACHING would change them for every caller";
const AUTH: &str = "credentials are set once on the Builder (username, password) and sent on \
     every connection the client opens";
const READ_MODE: &str = "replica reads are chosen with Builder::read_from (ReadFrom), which \
     sends READONLY on the connections it needs";
const ASKING: &str = "the client follows ASK redirects itself, sending ASKING with the command";
const QUIT: &str = "connections belong to the client: drop the client to close them";
const WAIT_REPLICAS: &str = "WAIT counts the replicas that acknowledged the writes of its own \
     connection, and blocks it: use Client::dedicated(key), send the write and then WAIT on \
     that connection";
const SCAN: &str = "a SCAN cursor walks one node's keys: use Client::scan, a stream over \
     every node's keys with a cursor per node";
const CLIENT_STATE: &str = "CLIENT NO-EVICT/NO-TOUCH/SETNAME/SETINFO change the shared \
     connection for every caller";

/// Classes a command from its arguments (`args[0]` is the name; `name` its upper-case form).
pub(crate) fn class_of(name: &str, args: &[&[u8]]) -> Class {
    let refused = |alternative| Class::Refused { alternative };
    match name {
        "MULTI" | "EXEC" | "DISCARD" => refused(TRANSACTION),
        "WATCH" | "UNWATCH" => refused(WATCH),
        "SELECT" | "SWAPDB" => refused(SELECT),
        "SUBSCRIBE" | "PSUBSCRIBE" | "SSUBSCRIBE" | "UNSUBSCRIBE" | "PUNSUBSCRIBE"
        | "SUNSUBSCRIBE" => refused(SUBSCRIBE),
        "MONITOR" | "SYNC" | "PSYNC" | "REPLCONF" => refused(MONITOR),
        "HELLO" | "RESET" => refused(PROTOCOL),
        "AUTH" => refused(AUTH),
        "READONLY" | "READWRITE" => refused(READ_MODE),
        "ASKING" => refused(ASKING),
        "QUIT" => refused(QUIT),
        "CLIENT" => match subcommand(args).as_deref() {
            Some("TRACKING" | "REPLY" | "CACHING") => refused(PROTOCOL),
            Some("NO-EVICT" | "NO-TOUCH" | "SETNAME" | "SETINFO") => refused(CLIENT_STATE),
            _ => Class::Shared,
        },
        // The timeout is the last argument, in seconds (0: forever).
        "BLPOP" | "BRPOP" | "BRPOPLPUSH" | "BLMOVE" | "BZPOPMIN" | "BZPOPMAX" => Class::Blocking {
            wait: seconds(args.last().copied()),
        },
        // The timeout is the first argument, in seconds.
        "BLMPOP" | "BZMPOP" => Class::Blocking {
            wait: seconds(args.get(1).copied()),
        },
        // Only with BLOCK <ms> (0: forever); without it they answer at once.
        "XREAD" | "XREADGROUP" => match block_ms(args) {
            Some(ms) => Class::Blocking {
                wait: millis(Some(ms)),
            },
            None => Class::Shared,
        },
        "WAIT" | "WAITAOF" => refused(WAIT_REPLICAS),
        // Not connection state, but one node's cursor: the answer would be partial.
        "SCAN" => refused(SCAN),
        _ => Class::Shared,
    }
}

/// The upper-case second word (`CLIENT TRACKING` → `TRACKING`).
fn subcommand(args: &[&[u8]]) -> Option<String> {
    args.get(1)
        .map(|a| String::from_utf8_lossy(a).to_ascii_uppercase())
}

/// The wait of a timeout given in seconds (a float, as Redis takes it): `None` for 0 (forever);
/// an unreadable timeout gets the margin (the server will refuse the command at once).
fn seconds(arg: Option<&[u8]>) -> Option<Duration> {
    let text = std::str::from_utf8(arg?).ok();
    match text.and_then(|t| t.parse::<f64>().ok()) {
        Some(0.0) => None,
        Some(s) if s.is_finite() && s > 0.0 => {
            Some(Duration::from_secs_f64(s.min(1e9)) + BLOCKING_MARGIN)
        }
        _ => Some(BLOCKING_MARGIN),
    }
}

/// As [`seconds`], for milliseconds.
fn millis(arg: Option<&[u8]>) -> Option<Duration> {
    let text = std::str::from_utf8(arg?).ok();
    match text.and_then(|t| t.parse::<u64>().ok()) {
        Some(0) => None,
        Some(ms) => Some(Duration::from_millis(ms.min(1 << 40)) + BLOCKING_MARGIN),
        None => Some(BLOCKING_MARGIN),
    }
}

/// The argument after `BLOCK` (before `STREAMS`), if any.
fn block_ms<'a>(args: &[&'a [u8]]) -> Option<&'a [u8]> {
    let streams = args
        .iter()
        .position(|a| a.eq_ignore_ascii_case(b"STREAMS"))
        .unwrap_or(args.len());
    let at = args[..streams]
        .iter()
        .position(|a| a.eq_ignore_ascii_case(b"BLOCK"))?;
    args.get(at + 1).copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn class(line: &str) -> Class {
        let args: Vec<&[u8]> = line.split(' ').map(str::as_bytes).collect();
        class_of(
            &line.split(' ').next().unwrap_or("").to_ascii_uppercase(),
            &args,
        )
    }

    #[test]
    fn ordinary_commands_share_the_connection() {
        for line in [
            "GET k",
            "SET k v",
            "MGET a b",
            "XREAD COUNT 1 STREAMS s 0",
            "CLIENT ID",
            "CLIENT LIST",
            "PUBLISH ch m",
            "EVAL s 0",
        ] {
            assert_eq!(class(line), Class::Shared, "{line}");
        }
    }

    #[test]
    fn connection_state_commands_are_refused_with_an_alternative() {
        for line in [
            "MULTI",
            "EXEC",
            "DISCARD",
            "WATCH k",
            "UNWATCH",
            "SELECT 1",
            "SUBSCRIBE ch",
            "PSUBSCRIBE ch*",
            "SSUBSCRIBE ch",
            "UNSUBSCRIBE",
            "MONITOR",
            "HELLO 3",
            "RESET",
            "AUTH pw",
            "READONLY",
            "READWRITE",
            "ASKING",
            "QUIT",
            "CLIENT TRACKING ON",
            "client reply OFF",
            "CLIENT CACHING yes",
            "CLIENT SETNAME x",
            "WAIT 1 0",
            "SCAN 0 MATCH x*",
            "WAITAOF 1 0 0",
        ] {
            match class(line) {
                Class::Refused { alternative } => assert!(!alternative.is_empty(), "{line}"),
                other => panic!("{line}: {other:?}"),
            }
        }
        let Class::Refused { alternative } = class("WATCH k") else {
            panic!("WATCH must be refused")
        };
        assert!(alternative.contains("Client::transaction"));
        let Class::Refused { alternative } = class("SSUBSCRIBE ch") else {
            panic!("SSUBSCRIBE must be refused")
        };
        assert!(alternative.contains("Client::ssubscribe"));
    }

    #[test]
    fn blocking_commands_wait_their_own_timeout_plus_a_margin() {
        let secs = |s: f64| Some(Duration::from_secs_f64(s) + BLOCKING_MARGIN);
        assert_eq!(class("BLPOP a b 2"), Class::Blocking { wait: secs(2.0) });
        assert_eq!(class("BRPOP a 0.5"), Class::Blocking { wait: secs(0.5) });
        assert_eq!(class("BLPOP a 0"), Class::Blocking { wait: None });
        assert_eq!(
            class("BLMOVE a b LEFT RIGHT 3"),
            Class::Blocking { wait: secs(3.0) }
        );
        assert_eq!(
            class("BLMPOP 1.5 2 a b LEFT"),
            Class::Blocking { wait: secs(1.5) }
        );
        assert_eq!(
            class("XREAD BLOCK 3000 STREAMS s $"),
            Class::Blocking { wait: secs(3.0) }
        );
        assert_eq!(
            class("XREADGROUP GROUP g c BLOCK 0 STREAMS s >"),
            Class::Blocking { wait: None }
        );
        assert!(
            matches!(class("WAIT 1 300"), Class::Refused { alternative } if alternative.contains("dedicated"))
        );
        // A timeout the server will refuse still gets a bounded wait.
        assert_eq!(
            class("BLPOP a banana"),
            Class::Blocking {
                wait: Some(BLOCKING_MARGIN)
            }
        );
        // A key named BLOCK after STREAMS is no option.
        assert_eq!(class("XREAD STREAMS BLOCK 0"), Class::Shared);
    }
}
