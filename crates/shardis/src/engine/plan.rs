//! Planning a command, once: where are its keys, does it only read, and does it fit one shard.

use crate::command::learned::SpecRef;
use crate::command::policy::{self, Fanout};
use crate::command::{self, CommandName, KeyIndices, Split};
use crate::error::Result;

use super::{Engine, Router, ShardOf, Shards};

/// How one command will run.
#[derive(Debug)]
pub(crate) enum Plan<S> {
    /// No keys (or unknown to us and to the server): any primary / any live node.
    Keyless,
    /// Every key in one shard; `keys` are their argument indices (first one first).
    Keyed {
        shard: S,
        read: bool,
        keys: KeyIndices,
    },
    /// Keys in several shards, and the command can be split per shard.
    Split(Split),
    /// About the whole keyspace (`DBSIZE`, `FLUSHALL`, `SCRIPT LOAD`, ...): every shard or node,
    /// replies combined per its policy.
    Fanout(Fanout),
}

/// Plans `args` (a command's arguments) against `shards`. A command whose keys span shards and
/// which cannot be split is refused here, before anything is sent.
pub(crate) async fn plan<R: Router>(
    engine: &Engine<R>,
    shards: &impl Shards<Shard = ShardOf<R>>,
    args: &[&[u8]],
) -> Result<Plan<ShardOf<R>>> {
    plan_named(engine, shards, args, &command::name_of(args)).await
}

/// [`plan`] of a command whose upper-case name the caller has already.
pub(crate) async fn plan_named<R: Router>(
    engine: &Engine<R>,
    shards: &impl Shards<Shard = ShardOf<R>>,
    args: &[&[u8]],
    name: &CommandName,
) -> Result<Plan<ShardOf<R>>> {
    // Unknown to the built-in table and to the server's COMMAND INFO: send it anywhere; in a
    // cluster a keyed command is then redirected to its owner.
    let Some(spec) = engine
        .learned
        .resolve(name, |q| engine.router.ask_any(q))
        .await
    else {
        return Ok(Plan::Keyless);
    };
    plan_spec(shards, args, name, &spec)
}

/// [`plan_named`] without awaiting: `None` when the command's spec is not known yet (it takes
/// asking a server).
#[inline]
pub(crate) fn plan_known<R: Router>(
    engine: &Engine<R>,
    shards: &impl Shards<Shard = ShardOf<R>>,
    args: &[&[u8]],
    name: &CommandName,
) -> Option<Result<Plan<ShardOf<R>>>> {
    let spec = engine.learned.known(name)?;
    Some(plan_spec(shards, args, name, &spec))
}

/// The plan of a command whose spec is known.
#[inline]
fn plan_spec<V: Shards>(
    shards: &V,
    args: &[&[u8]],
    name: &CommandName,
    spec: &SpecRef,
) -> Result<Plan<V::Shard>> {
    let keys = spec.key_indices(args);
    if keys.is_empty()
        && let Some(fanout) = policy::fanout_of(name, args).or(spec.fanout)
    {
        return Ok(Plan::Fanout(fanout));
    }
    plan_keys(shards, args, keys, spec.readonly, spec.split, name)
}

/// The pure part of [`plan`]: given the key indices of a known command.
pub(crate) fn plan_keys<V: Shards>(
    shards: &V,
    args: &[&[u8]],
    keys: KeyIndices,
    read: bool,
    split: Option<Split>,
    name: &str,
) -> Result<Plan<V::Shard>> {
    let Some(&first) = keys.first() else {
        return Ok(Plan::Keyless);
    };
    let shard = shards.shard_of(args[first]);
    let other = keys[1..]
        .iter()
        .map(|&i| shards.shard_of(args[i]))
        .find(|s| *s != shard);
    match (other, split) {
        (None, _) => Ok(Plan::Keyed { shard, read, keys }),
        (Some(_), Some(split)) => Ok(Plan::Split(split)),
        (Some(other), None) => Err(shards.spread_error(name, shard, other)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::split::tests::Buckets;

    #[test]
    fn one_shard_is_keyed_several_split_or_refused() {
        let shards = Buckets;
        let args: Vec<&[u8]> = vec![b"MGET", b"a1", b"a2"];
        let plan = plan_keys(
            &shards,
            &args,
            KeyIndices::from_slice(&[1, 2]),
            true,
            Some(Split::KeysToArray),
            "MGET",
        );
        assert!(matches!(
            plan,
            Ok(Plan::Keyed {
                shard: b'a',
                read: true,
                ..
            })
        ));

        let args: Vec<&[u8]> = vec![b"MGET", b"a1", b"b1"];
        let plan = plan_keys(
            &shards,
            &args,
            KeyIndices::from_slice(&[1, 2]),
            true,
            Some(Split::KeysToArray),
            "MGET",
        );
        assert!(matches!(plan, Ok(Plan::Split(Split::KeysToArray))));

        let args: Vec<&[u8]> = vec![b"SUNION", b"a1", b"b1"];
        let plan = plan_keys(
            &shards,
            &args,
            KeyIndices::from_slice(&[1, 2]),
            true,
            None,
            "SUNION",
        );
        assert!(matches!(plan, Err(crate::Error::CrossSlot { .. })));

        let args: Vec<&[u8]> = vec![b"PING"];
        let plan = plan_keys(&shards, &args, KeyIndices::new(), true, None, "PING");
        assert!(matches!(plan, Ok(Plan::Keyless)));
    }
}
