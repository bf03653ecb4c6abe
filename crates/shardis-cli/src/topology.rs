//! `shardis topology`: the cluster's shards, slot ranges and nodes, and whether every node
//! agrees on the slot map (each node is asked `CLUSTER SHARDS`, or `CLUSTER SLOTS` where
//! SHARDS is unknown, directly; views are compared by fingerprint).

use std::collections::HashMap;
use std::process::ExitCode;
use std::time::Duration;

use redis::{AsyncConnectionConfig, Value};
use serde::Serialize;
use shardis::slots::{
    Endpoint, Health, Node, SLOT_COUNT, Topology, choose_view, parse_cluster_shards,
    parse_cluster_slots,
};

use crate::error::{CliError, Result, bail};
use crate::nodes::AuthArgs;
use crate::output::Table;

/// Options of `shardis topology`.
#[derive(clap::Args, Debug)]
#[command(after_help = "Examples:\n  \
    shardis topology --cluster 127.0.0.1:7000\n  \
    shardis topology --cluster 127.0.0.1:7000 --json | jq .agree\n  \
    shardis topology --cluster redis://app:secret@127.0.0.1:7000\n  \
    REDISCLI_AUTH=secret shardis topology --cluster 127.0.0.1:7000\n\n\
    Exits 1 when some node disagrees with the others or does not answer.")]
pub struct TopologyArgs {
    /// Any node of the cluster: HOST:PORT or redis://[user:pass@]host:port.
    #[arg(long, value_name = "HOST:PORT|URL")]
    cluster: String,
    #[command(flatten)]
    auth: AuthArgs,
    /// Print JSON instead of tables.
    #[arg(long)]
    json: bool,
}

/// One node's answer.
struct View {
    node: Endpoint,
    result: std::result::Result<Topology, String>,
}

/// User, password and TLS for every node asked.
#[derive(Clone, Default)]
struct Credentials {
    user: Option<String>,
    password: Option<String>,
    /// TLS options, and the seed's host when it is a name (for nodes announced by IP).
    tls: Option<(shardis::TlsOptions, Option<String>)>,
}

async fn ask(node: &Endpoint, creds: &Credentials) -> std::result::Result<Topology, String> {
    if let Some((tls, seed_name)) = &creds.tls {
        return ask_over_tls(node, creds, tls.clone(), seed_name.as_deref()).await;
    }
    use redis::IntoConnectionInfo;
    let mut info = (node.host.as_str(), node.port)
        .into_connection_info()
        .map_err(|e| e.to_string())?;
    let mut settings = info.redis_settings().clone();
    if let Some(user) = &creds.user {
        settings = settings.set_username(user);
    }
    if let Some(password) = &creds.password {
        settings = settings.set_password(password);
    }
    info = info.set_redis_settings(settings);
    let config = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(Duration::from_secs(2)))
        .set_response_timeout(Some(Duration::from_secs(2)));
    let mut conn = redis::Client::open(info)
        .map_err(|e| e.to_string())?
        .get_multiplexed_async_connection_with_config(&config)
        .await
        .map_err(|e| format!("cannot connect: {e}"))?;
    let shards: redis::RedisResult<Value> = redis::cmd("CLUSTER")
        .arg("SHARDS")
        .query_async(&mut conn)
        .await;
    match shards {
        Ok(v) => parse_cluster_shards(&v, node).map_err(|e| format!("CLUSTER SHARDS: {e}")),
        Err(e) if e.to_string().contains("unknown subcommand") => {
            let v: Value = redis::cmd("CLUSTER")
                .arg("SLOTS")
                .query_async(&mut conn)
                .await
                .map_err(|e| format!("CLUSTER SLOTS: {e}"))?;
            parse_cluster_slots(&v, node).map_err(|e| format!("CLUSTER SLOTS: {e}"))
        }
        Err(e) => Err(format!("CLUSTER SHARDS: {e}")),
    }
}

/// `node`'s own view, over TLS: a shardis client seeded with that node alone loads its view
/// from it (redis-rs here is built without TLS).
async fn ask_over_tls(
    node: &Endpoint,
    creds: &Credentials,
    mut tls: shardis::TlsOptions,
    seed_name: Option<&str>,
) -> std::result::Result<Topology, String> {
    if let Some(name) = seed_name
        && node.host.parse::<std::net::IpAddr>().is_ok()
    {
        // As the client does for nodes a cluster announces by IP.
        tls = tls.server_name(name);
    }
    let mut builder = shardis::Client::builder()
        .cluster([node.to_string()])
        .tls(tls)
        .connect_timeout(Duration::from_secs(2))
        .response_timeout(Duration::from_secs(2))
        .refresh_interval(Duration::from_secs(3600));
    if let Some(user) = &creds.user {
        builder = builder.username(user.clone());
    }
    if let Some(password) = &creds.password {
        builder = builder.password(password.clone());
    }
    let client = builder
        .build()
        .await
        .map_err(|e| format!("cannot connect: {e}"))?;
    Ok(client.topology())
}

fn identity(node: &Node) -> String {
    node.id
        .clone()
        .or_else(|| node.endpoint.as_ref().map(ToString::to_string))
        .unwrap_or_else(|| "?".into())
}

fn show(node: &Node) -> String {
    let addr = node
        .endpoint
        .as_ref()
        .map_or_else(|| "?".to_string(), ToString::to_string);
    match &node.id {
        Some(id) => format!("{addr} ({})", &id[..id.len().min(8)]),
        None => addr,
    }
}

fn health(h: Health) -> &'static str {
    match h {
        Health::Online => "online",
        Health::Failed => "FAILED",
        Health::Loading => "loading",
        Health::Unknown => "unknown",
    }
}

/// Slot owner per slot (identity of the primary), `None` if unassigned.
fn owners(t: &Topology) -> Vec<Option<String>> {
    let mut out = vec![None; SLOT_COUNT];
    for shard in t.shards() {
        let id = identity(&shard.primary);
        for r in &shard.slots {
            for s in r.start..=r.end {
                out[usize::from(s)] = Some(id.clone());
            }
        }
    }
    out
}

/// How `theirs` differs from `reference`: slot owner runs, then replica sets.
fn differences(
    reference: &Topology,
    theirs: &Topology,
    names: &HashMap<String, String>,
) -> Vec<String> {
    let name = |id: &Option<String>| match id {
        Some(id) => names.get(id).cloned().unwrap_or_else(|| id.clone()),
        None => "nobody".into(),
    };
    let (a, b) = (owners(reference), owners(theirs));
    let mut out = Vec::new();
    let mut s = 0usize;
    while s < SLOT_COUNT {
        if a[s] == b[s] {
            s += 1;
            continue;
        }
        let start = s;
        while s + 1 < SLOT_COUNT && a[s + 1] == a[start] && b[s + 1] == b[start] {
            s += 1;
        }
        let range = if start == s {
            format!("slot {start}")
        } else {
            format!("slots {start}-{s}")
        };
        out.push(format!(
            "{range}: owned by {} here, by {} for the majority",
            name(&b[start]),
            name(&a[start])
        ));
        s += 1;
    }
    let replicas = |t: &Topology| -> HashMap<String, Vec<String>> {
        t.shards()
            .iter()
            .map(|sh| {
                let mut r: Vec<String> = sh.replicas.iter().map(identity).collect();
                r.sort();
                (identity(&sh.primary), r)
            })
            .collect()
    };
    let (ra, rb) = (replicas(reference), replicas(theirs));
    for (primary, r) in &rb {
        if let Some(ref_r) = ra.get(primary)
            && ref_r != r
        {
            let list = |v: &Vec<String>| {
                v.iter()
                    .map(|x| name(&Some(x.clone())))
                    .collect::<Vec<_>>()
                    .join(",")
            };
            out.push(format!(
                "replicas of {}: [{}] here, [{}] for the majority",
                name(&Some(primary.clone())),
                list(r),
                list(ref_r)
            ));
        }
    }
    if out.is_empty() {
        out.push("same owners and replicas, but a different layout (shard grouping)".into());
    }
    out
}

#[derive(Serialize)]
struct JsonNode {
    addr: Option<String>,
    id: Option<String>,
    role: &'static str,
    health: &'static str,
}

#[derive(Serialize)]
struct JsonShard {
    slots: Vec<String>,
    slot_count: usize,
    primary: JsonNode,
    replicas: Vec<JsonNode>,
}

#[derive(Serialize)]
struct JsonView {
    node: String,
    fingerprint: Option<String>,
    agrees: bool,
    error: Option<String>,
    differences: Vec<String>,
}

#[derive(Serialize)]
struct JsonReport {
    shards: Vec<JsonShard>,
    covered_slots: usize,
    agree: bool,
    fingerprint: String,
    nodes: Vec<JsonView>,
}

fn json_node(n: &Node, role: &'static str) -> JsonNode {
    JsonNode {
        addr: n.endpoint.as_ref().map(ToString::to_string),
        id: n.id.clone(),
        role,
        health: health(n.health),
    }
}

pub async fn run(args: TopologyArgs) -> Result<ExitCode> {
    let (seed, user, password, tls) =
        crate::nodes::endpoint_and_credentials(&args.cluster, &args.auth)?;
    // Nodes announced by IP are checked against the seed's host name, unless --sni names one.
    let seed_name = (args.auth.tls.sni().is_none()
        && seed.host.parse::<std::net::IpAddr>().is_err())
    .then(|| seed.host.clone());
    let creds = &Credentials {
        user,
        password,
        tls: tls.then(|| (args.auth.tls.options().unwrap_or_default(), seed_name)),
    };
    let first = ask(&seed, creds).await.map_err(|e| {
        let hint = args.auth.hint(&e);
        CliError::new(format!("cannot read the slot map of {seed}: {e} ({hint})"))
    })?;
    // Every node the seed knows of, seed first.
    let mut targets = vec![seed.clone()];
    for shard in first.shards() {
        for n in std::iter::once(&shard.primary).chain(&shard.replicas) {
            if let Some(e) = &n.endpoint
                && !targets.contains(e)
            {
                targets.push(e.clone());
            }
        }
    }
    let views: Vec<View> = futures::future::join_all(targets.iter().map(|t| async move {
        View {
            node: t.clone(),
            result: ask(t, creds).await,
        }
    }))
    .await;
    let answered: Vec<Topology> = views
        .iter()
        .filter_map(|v| v.result.as_ref().ok().cloned())
        .collect();
    let chosen = choose_view(&answered, None)
        .map_err(|e| CliError::new(format!("no usable view of the cluster: {e}")))?;
    let majority = chosen.topology.clone();
    let fp = majority.fingerprint();
    let names: HashMap<String, String> = majority
        .shards()
        .iter()
        .flat_map(|s| std::iter::once(&s.primary).chain(&s.replicas))
        .map(|n| (identity(n), show(n)))
        .collect();

    let report_nodes: Vec<JsonView> = views
        .iter()
        .map(|v| match &v.result {
            Ok(t) => {
                let agrees = t.fingerprint() == fp;
                JsonView {
                    node: v.node.to_string(),
                    fingerprint: Some(format!("{:016x}", t.fingerprint())),
                    agrees,
                    error: None,
                    differences: if agrees {
                        Vec::new()
                    } else {
                        differences(&majority, t, &names)
                    },
                }
            }
            Err(e) => JsonView {
                node: v.node.to_string(),
                fingerprint: None,
                agrees: false,
                error: Some(e.clone()),
                differences: Vec::new(),
            },
        })
        .collect();
    let agree = report_nodes.iter().all(|n| n.agrees);

    if args.json {
        let report = JsonReport {
            shards: majority
                .shards()
                .iter()
                .map(|s| JsonShard {
                    slots: s
                        .slots
                        .iter()
                        .map(|r| format!("{}-{}", r.start, r.end))
                        .collect(),
                    slot_count: s.slot_count(),
                    primary: json_node(&s.primary, "primary"),
                    replicas: s.replicas.iter().map(|r| json_node(r, "replica")).collect(),
                })
                .collect(),
            covered_slots: majority.covered_slots(),
            agree,
            fingerprint: format!("{fp:016x}"),
            nodes: report_nodes,
        };
        crate::output::print_json(&report)?;
        return Ok(if agree {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        });
    }

    println!(
        "{} shards, {} of {SLOT_COUNT} slots covered{}",
        majority.shards().len(),
        majority.covered_slots(),
        if majority.is_complete() {
            ""
        } else {
            " (INCOMPLETE: some slots have no owner)"
        }
    );
    let mut t = Table::new(["shard", "slots", "count", "node", "role", "health"]);
    for (i, s) in majority.shards().iter().enumerate() {
        let ranges = s
            .slots
            .iter()
            .map(|r| {
                if r.start == r.end {
                    r.start.to_string()
                } else {
                    format!("{}-{}", r.start, r.end)
                }
            })
            .collect::<Vec<_>>()
            .join(",");
        t.row([
            (i + 1).to_string(),
            ranges,
            s.slot_count().to_string(),
            show(&s.primary),
            "primary".into(),
            health(s.primary.health).into(),
        ]);
        for r in &s.replicas {
            t.row([
                String::new(),
                String::new(),
                String::new(),
                show(r),
                "replica".into(),
                health(r.health).into(),
            ]);
        }
    }
    print!("{}", t.render());
    println!();
    let total = report_nodes.len();
    if agree {
        println!("all {total} nodes agree on the slot map (fingerprint {fp:016x})");
        return Ok(ExitCode::SUCCESS);
    }
    let disagreeing = report_nodes.iter().filter(|n| !n.agrees).count();
    println!(
        "{disagreeing} of {total} nodes disagree with the majority view (fingerprint {fp:016x}, held by {} of {}):",
        chosen.agreeing, chosen.responded
    );
    for n in report_nodes.iter().filter(|n| !n.agrees) {
        match &n.error {
            Some(e) => println!("  {}: no answer: {e}", n.node),
            None => {
                println!(
                    "  {} (fingerprint {}):",
                    n.node,
                    n.fingerprint.as_deref().unwrap_or("?")
                );
                for d in n.differences.iter().take(20) {
                    println!("    {d}");
                }
                if n.differences.len() > 20 {
                    println!("    ... and {} more", n.differences.len() - 20);
                }
            }
        }
    }
    if disagreeing == total {
        bail!("no node answered");
    }
    Ok(ExitCode::FAILURE)
}

#[cfg(test)]
mod tests {
    use super::*;
    use shardis::slots::{Shard, SlotRange};

    fn node(id: &str, port: u16) -> Node {
        Node::primary(Endpoint::new("127.0.0.1", port)).with_id(id)
    }

    fn view(split: u16) -> Topology {
        Topology::new(vec![
            Shard {
                primary: node("a", 1),
                replicas: vec![],
                slots: vec![SlotRange::new(0, split).unwrap()],
            },
            Shard {
                primary: node("b", 2),
                replicas: vec![],
                slots: vec![SlotRange::new(split + 1, 16383).unwrap()],
            },
        ])
        .unwrap()
    }

    #[test]
    fn differences_name_slot_ranges_and_owners() {
        let names: HashMap<String, String> = [
            ("a".to_string(), "A".to_string()),
            ("b".to_string(), "B".to_string()),
        ]
        .into();
        let d = differences(&view(8191), &view(8099), &names);
        assert_eq!(
            d,
            vec!["slots 8100-8191: owned by B here, by A for the majority".to_string()]
        );
        let d = differences(&view(8191), &view(8192), &names);
        assert_eq!(
            d,
            vec!["slot 8192: owned by A here, by B for the majority".to_string()]
        );
    }
}
