//! Atomic pipelines (`MULTI` … `EXEC`): every key must live in one shard, and the whole
//! transaction is written to that shard's node as one unit.

use redis::{Pipeline, Value};

use crate::command::{self, ArgList};
use crate::error::Result;

use super::plan::{self, Plan};
use super::{Engine, Keys, Request, Router, Shards, Target};

/// Runs `pipeline` as one transaction; returns the `EXEC` reply.
pub(crate) async fn run<R: Router>(engine: &Engine<R>, pipeline: &Pipeline) -> Result<Value> {
    let router = &engine.router;
    let shards = router.shards();
    let all_args: Vec<ArgList<'_>> = pipeline.cmd_iter().map(command::args_of).collect();
    let mut shard = None;
    let mut keys: Vec<&[u8]> = Vec::new();
    for args in &all_args {
        let indices = match plan::plan(engine, &shards, args).await {
            Ok(Plan::Keyless) => continue,
            Ok(Plan::Fanout(_)) => {
                return Err(crate::Error::Unsupported {
                    command: command::name_of(args).to_string(),
                    reason: "it concerns every shard, and a transaction runs on one: send \
                             it outside the transaction",
                });
            }
            Ok(Plan::Keyed { keys, .. }) => keys,
            // Keys of one command span shards: the transaction cannot run on one node.
            Ok(Plan::Split(_)) | Err(_) => {
                let name = command::name_of(args);
                let first = args.get(1).copied().unwrap_or_default();
                let a = shards.shard_of(first);
                let b = args[1..]
                    .iter()
                    .map(|k| shards.shard_of(k))
                    .find(|s| *s != a)
                    .unwrap_or(a);
                return Err(shards.spread_error(&format!("MULTI ({name})"), a, b));
            }
        };
        for i in indices {
            let key = args[i];
            let this = shards.shard_of(key);
            match shard {
                None => shard = Some(this),
                Some(first) if first != this => {
                    return Err(shards.spread_error("MULTI", first, this));
                }
                Some(_) => {}
            }
            keys.push(key);
        }
    }
    let target = match shard {
        Some(shard) => Target::Keyed {
            fresh: true,
            shard,
            read: false,
            keys: Keys::List(&keys),
        },
        None => Target::Any,
    };
    let reply = router
        .execute(&shards, Request::Transaction(pipeline), target)
        .await?;
    match reply {
        Value::ServerError(e) if e.code() == "EXECABORT" => Err(crate::Error::TransactionAborted {
            detail: e.details().unwrap_or_default().to_string(),
        }),
        reply => Ok(reply),
    }
}
