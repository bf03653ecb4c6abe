//! `shardis ring`: simulate a consistent-hash ring (native or ketama), print each node's share
//! of the key space and the exact fraction of keys a membership change moves; optionally plot
//! the shares as SVG. Also the ring model behind `shardis locate --ring`.

use std::process::ExitCode;

use serde::Serialize;
use shardis::ring::{KetamaFlavor, KetamaRing, KetamaServer, KeyHash, Ring, moved_fraction};
use shardis::slots::Endpoint;

use crate::error::{CliError, Result, bail};
use crate::nodes::{RingEntry, parse_ring_nodes};
use crate::output::Table;

/// Options of `shardis ring`.
#[derive(clap::Args, Debug)]
#[command(after_help = "Examples:\n  \
    shardis ring --nodes 5                            # node-1 .. node-5, weight 1\n  \
    shardis ring --nodes 4 --vnodes 40 --weights 1,1,2,4\n  \
    shardis ring --nodes cache-a:6379,cache-b:6379=2 --ketama --hash md5\n  \
    shardis ring --nutcracker-config /etc/nutcracker.yml --pool alpha\n  \
    shardis ring --nodes 8 --plot shares.svg --json")]
pub struct RingArgs {
    /// A node count (named node-1..node-N) or a list of names with optional =WEIGHT.
    #[arg(
        long,
        value_name = "N|NAME[=W],...",
        required_unless_present = "nutcracker_config"
    )]
    nodes: Vec<String>,
    /// Weights in node order, e.g. 1,1,2 (overrides =WEIGHT).
    #[arg(long, value_delimiter = ',')]
    weights: Vec<u32>,
    #[command(flatten)]
    placement: PlacementArgs,
    /// The node added to measure what an addition moves (default: node-<N+1>).
    #[arg(long, value_name = "NAME")]
    add: Option<String>,
    /// Write a bar chart of the shares to this SVG file.
    #[arg(long, value_name = "FILE.svg")]
    plot: Option<std::path::PathBuf>,
    /// Print JSON instead of tables.
    #[arg(long)]
    json: bool,
}

/// How a ring places keys, from the command line or a nutcracker pool (shared by `ring` and
/// `locate --ring`).
#[derive(clap::Args, Debug, Clone)]
pub struct PlacementArgs {
    /// twemproxy-compatible ketama (MD5 points) instead of the native xxh3 ring.
    #[arg(long)]
    ketama: bool,
    /// ketama's key hash, as twemproxy's `hash:` (implies --ketama): one_at_a_time, md5,
    /// crc16, crc32, crc32a, fnv1_64, fnv1a_64 (default), fnv1_32, fnv1a_32, hsieh, murmur,
    /// jenkins.
    #[arg(long, value_name = "NAME", value_parser = |s: &str| s.parse::<KeyHash>().map_err(|e| e.to_string()))]
    hash: Option<KeyHash>,
    /// Hash only the part of a key between these two characters, as twemproxy's `hash_tag`
    /// (e.g. '{}').
    #[arg(long, value_name = "XY", value_parser = parse_tag)]
    hash_tag: Option<[u8; 2]>,
    /// Take the nodes, hash and hash tag from this nutcracker configuration (with --pool).
    #[arg(long, value_name = "FILE", requires = "pool", conflicts_with_all = ["nodes", "hash", "hash_tag"])]
    nutcracker_config: Option<std::path::PathBuf>,
    /// The pool of --nutcracker-config.
    #[arg(long, value_name = "NAME", requires = "nutcracker_config")]
    pool: Option<String>,
    /// Points per unit of weight (native ring; ketama always uses 160).
    #[arg(long, default_value_t = shardis::ring::DEFAULT_POINTS_PER_WEIGHT)]
    vnodes: u32,
}

fn parse_tag(s: &str) -> std::result::Result<[u8; 2], String> {
    s.as_bytes()
        .try_into()
        .map_err(|_| format!("{s:?}: a hash tag is two characters, e.g. '{{}}'"))
}

/// A resolved placement: what [`SimRing::build`] needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Placement {
    /// Points per unit of weight of the native ring.
    pub vnodes: u32,
    /// ketama with this key hash, or the native ring.
    pub ketama: Option<KeyHash>,
    /// The hash tag, if any.
    pub hash_tag: Option<[u8; 2]>,
}

impl PlacementArgs {
    /// The placement and, from a nutcracker pool, its servers (`None`: take --nodes).
    pub fn resolve(&self) -> Result<(Placement, Option<Vec<RingEntry>>)> {
        if let (Some(path), Some(pool)) = (&self.nutcracker_config, &self.pool) {
            let text = std::fs::read_to_string(path)
                .map_err(|e| CliError::new(format!("cannot read {}: {e}", path.display())))?;
            let pool = crate::nutcracker::parse_pool(&text, pool)
                .map_err(|e| CliError::new(format!("{}: {e}", path.display())))?;
            let placement = Placement {
                vnodes: self.vnodes,
                ketama: Some(pool.hash),
                hash_tag: pool.hash_tag,
            };
            return Ok((placement, Some(pool.servers)));
        }
        let ketama = match (self.ketama, self.hash) {
            (_, Some(hash)) => Some(hash),
            (true, None) => Some(KeyHash::TwemproxyFnv1a64),
            (false, None) => None,
        };
        Ok((
            Placement {
                vnodes: self.vnodes,
                ketama,
                hash_tag: self.hash_tag,
            },
            None,
        ))
    }
}

/// A ring of either kind, as the CLI uses it.
pub enum SimRing {
    /// shardis' own ring (and the hash tag it is given).
    Native(Ring, Option<[u8; 2]>),
    /// twemproxy's ketama.
    Ketama(KetamaRing, Vec<RingEntry>),
}

impl SimRing {
    /// Builds a ring of `entries`. For ketama a `host:port` name is an unnamed twemproxy
    /// server (hashed as `host` on port 11211, else `host:port`); any other name is explicit.
    pub fn build(entries: &[RingEntry], placement: &Placement) -> Result<SimRing> {
        let vnodes = placement.vnodes;
        if let Some(hash) = placement.ketama {
            let servers = entries.iter().map(|e| match Endpoint::parse(&e.name) {
                Ok(ep) => KetamaServer::new(ep.host, ep.port, e.weight),
                Err(_) => {
                    KetamaServer::new(e.name.clone(), 11211, e.weight).with_name(e.name.clone())
                }
            });
            let mut builder = KetamaRing::builder(KetamaFlavor::Twemproxy).key_hash(hash);
            if let Some(tag) = placement.hash_tag {
                builder = builder.hash_tag(tag);
            }
            let ring = builder
                .servers(servers)
                .build()
                .map_err(|e| CliError::new(format!("cannot build the ketama ring: {e}")))?;
            Ok(SimRing::Ketama(ring, entries.to_vec()))
        } else {
            if vnodes == 0 {
                bail!("--vnodes must be at least 1");
            }
            let ring = Ring::builder()
                .points_per_weight(vnodes)
                .nodes(
                    entries
                        .iter()
                        .map(|e| shardis::ring::Node::new(e.name.clone(), e.weight)),
                )
                .build()
                .map_err(|e| CliError::new(format!("cannot build the ring: {e}")))?;
            Ok(SimRing::Native(ring, placement.hash_tag))
        }
    }

    /// The node `key` goes to, and the key's hash on this ring.
    pub fn locate(&self, key: &[u8]) -> (String, u64) {
        match self {
            SimRing::Native(r, tag) => {
                let hashed = tag.map_or(key, |t| shardis::ring::hash::hash_tag(key, t));
                (r.get(hashed).name().to_string(), Ring::hash_key(hashed))
            }
            SimRing::Ketama(r, entries) => {
                let i = r.get_index(key);
                (entries[i].name.clone(), u64::from(r.hash_key(key)))
            }
        }
    }

    /// `(name, weight, points, share)` per node, in the order given.
    fn shares(&self, entries: &[RingEntry]) -> Result<Vec<(String, u32, usize, f64)>> {
        Ok(match self {
            SimRing::Native(r, _) => {
                let arcs = r.arc_lengths();
                let mut points = vec![0usize; r.node_count()];
                for (_, n) in r.points() {
                    if let Some(i) = r.index_of(n.name()) {
                        points[i] += 1;
                    }
                }
                entries
                    .iter()
                    .map(|e| {
                        let i = r.index_of(&e.name).ok_or_else(|| {
                            CliError::new(format!("node {} is not in the ring", e.name))
                        })?;
                        Ok((
                            e.name.clone(),
                            e.weight,
                            points[i],
                            arcs[i] as f64 / shardis::ring::HASH_SPACE as f64,
                        ))
                    })
                    .collect::<Result<_>>()?
            }
            SimRing::Ketama(r, _) => {
                let arcs = r.arc_lengths();
                let mut points = vec![0usize; entries.len()];
                for (_, owner) in r.points() {
                    points[owner] += 1;
                }
                entries
                    .iter()
                    .enumerate()
                    .map(|(i, e)| {
                        (
                            e.name.clone(),
                            e.weight,
                            points[i],
                            arcs[i] as f64 / 4_294_967_296.0,
                        )
                    })
                    .collect()
            }
        })
    }

    fn moved(a: &SimRing, b: &SimRing) -> f64 {
        match (a, b) {
            (SimRing::Native(a, _), SimRing::Native(b, _)) => moved_fraction(a, b),
            (SimRing::Ketama(a, _), SimRing::Ketama(b, _)) => KetamaRing::moved_fraction(a, b),
            _ => unreachable!("rings of one kind"),
        }
    }
}

#[derive(Serialize)]
struct NodeShare {
    name: String,
    weight: u32,
    points: usize,
    share: f64,
    expected: f64,
}

#[derive(Serialize)]
struct Change {
    change: String,
    moved_fraction: f64,
}

#[derive(Serialize)]
struct Report {
    kind: String,
    points_per_weight: Option<u32>,
    nodes: Vec<NodeShare>,
    max_over_mean: f64,
    changes: Vec<Change>,
}

pub fn run(args: RingArgs) -> Result<ExitCode> {
    let (placement, from_pool) = args.placement.resolve()?;
    let mut entries = match args.nodes.as_slice() {
        _ if from_pool.is_some() => from_pool.unwrap_or_default(),
        [one] if let Ok(n) = one.parse::<usize>() => {
            if n == 0 || n > 10_000 {
                bail!("--nodes {n}: give between 1 and 10000 nodes");
            }
            (1..=n)
                .map(|i| RingEntry {
                    name: format!("node-{i}"),
                    weight: 1,
                })
                .collect()
        }
        list => parse_ring_nodes(list)?,
    };
    if !args.weights.is_empty() {
        if args.weights.len() != entries.len() {
            bail!(
                "--weights has {} values for {} nodes: give one per node, e.g. --weights {}",
                args.weights.len(),
                entries.len(),
                vec!["1"; entries.len()].join(",")
            );
        }
        for (e, w) in entries.iter_mut().zip(&args.weights) {
            if *w == 0 {
                bail!("--weights: node {} has weight 0; remove it instead", e.name);
            }
            e.weight = *w;
        }
    }
    let ring = SimRing::build(&entries, &placement)?;
    let total_weight: u64 = entries.iter().map(|e| u64::from(e.weight)).sum();
    let nodes: Vec<NodeShare> = ring
        .shares(&entries)?
        .into_iter()
        .map(|(name, weight, points, share)| NodeShare {
            name,
            weight,
            points,
            share,
            expected: f64::from(weight) / total_weight as f64,
        })
        .collect();
    // Balance relative to weight: 1.0 is perfect.
    let max_over_mean = nodes
        .iter()
        .map(|n| n.share / n.expected)
        .fold(0.0f64, f64::max);

    let mut changes = Vec::new();
    let added = args.add.clone().unwrap_or_else(|| {
        let mut i = entries.len() + 1;
        while entries.iter().any(|e| e.name == format!("node-{i}")) {
            i += 1;
        }
        format!("node-{i}")
    });
    if entries.iter().any(|e| e.name == added) {
        bail!("--add {added}: that node is already in the ring");
    }
    let mut with = entries.clone();
    with.push(RingEntry {
        name: added.clone(),
        weight: 1,
    });
    let bigger = SimRing::build(&with, &placement)?;
    changes.push(Change {
        change: format!("add {added} (weight 1)"),
        moved_fraction: SimRing::moved(&ring, &bigger),
    });
    if entries.len() > 1 {
        for (i, e) in entries.iter().enumerate().take(16) {
            let mut without = entries.clone();
            without.remove(i);
            let smaller = SimRing::build(&without, &placement)?;
            changes.push(Change {
                change: format!("remove {}", e.name),
                moved_fraction: SimRing::moved(&ring, &smaller),
            });
        }
    }
    let report = Report {
        kind: match placement.ketama {
            Some(hash) => format!("ketama (twemproxy, hash {hash})"),
            None => "native (xxh3)".to_string(),
        },
        points_per_weight: placement.ketama.is_none().then_some(placement.vnodes),
        nodes,
        max_over_mean,
        changes,
    };

    if let Some(path) = &args.plot {
        plot(path, &report)?;
    }
    if args.json {
        crate::output::print_json(&report)?;
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{} ring, {} nodes{}",
        report.kind,
        report.nodes.len(),
        report
            .points_per_weight
            .map(|p| format!(", {p} points per unit of weight"))
            .unwrap_or_default()
    );
    let mut t = Table::new([
        "node",
        "weight",
        "points",
        "share",
        "expected",
        "share/expected",
    ]);
    for n in &report.nodes {
        t.row([
            n.name.clone(),
            n.weight.to_string(),
            n.points.to_string(),
            format!("{:.4}", n.share),
            format!("{:.4}", n.expected),
            format!("{:.3}", n.share / n.expected),
        ]);
    }
    print!("{}", t.render());
    let sum: f64 = report.nodes.iter().map(|n| n.share).sum();
    println!(
        "shares sum to {sum:.6}; max/mean (by weight) = {:.3}",
        report.max_over_mean
    );
    println!();
    let mut t = Table::new(["change", "keys moved"]);
    for c in &report.changes {
        t.row([
            c.change.clone(),
            format!("{:.4}%", c.moved_fraction * 100.0),
        ]);
    }
    print!("{}", t.render());
    if let Some(path) = &args.plot {
        println!("plot written to {}", path.display());
    }
    Ok(ExitCode::SUCCESS)
}

fn plot(path: &std::path::Path, report: &Report) -> Result<()> {
    use plotters::prelude::*;
    let n = report.nodes.len();
    let top = report
        .nodes
        .iter()
        .map(|n| n.share.max(n.expected))
        .fold(0.0f64, f64::max)
        * 1.15;
    let width = (120 + 40 * n as u32).clamp(640, 4000);
    let draw = || -> std::result::Result<(), Box<dyn std::error::Error>> {
        let root = SVGBackend::new(path, (width, 480)).into_drawing_area();
        root.fill(&WHITE)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(
                format!(
                    "share of the key space per node ({}, {n} nodes)",
                    report.kind
                ),
                ("sans-serif", 18),
            )
            .margin(12)
            .x_label_area_size(if n <= 24 { 60 } else { 20 })
            .y_label_area_size(60)
            .build_cartesian_2d((0..n as u32).into_segmented(), 0f64..top)?;
        let names: Vec<String> = report.nodes.iter().map(|n| n.name.clone()).collect();
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(if n <= 24 { n + 1 } else { 0 })
            .x_label_formatter(&|v| match v {
                SegmentValue::CenterOf(i) => names.get(*i as usize).cloned().unwrap_or_default(),
                _ => String::new(),
            })
            .y_desc("share")
            .draw()?;
        chart
            .draw_series(report.nodes.iter().enumerate().map(|(i, node)| {
                let i = i as u32;
                let mut bar = Rectangle::new(
                    [
                        (SegmentValue::Exact(i), 0.0),
                        (SegmentValue::Exact(i + 1), node.share),
                    ],
                    BLUE.mix(0.6).filled(),
                );
                bar.set_margin(0, 0, 4, 4);
                bar
            }))?
            .label("share")
            .legend(|(x, y)| Rectangle::new([(x, y - 5), (x + 10, y + 5)], BLUE.mix(0.6).filled()));
        chart
            .draw_series(report.nodes.iter().enumerate().map(|(i, node)| {
                let i = i as u32;
                PathElement::new(
                    vec![
                        (SegmentValue::Exact(i), node.expected),
                        (SegmentValue::Exact(i + 1), node.expected),
                    ],
                    RED.stroke_width(2),
                )
            }))?
            .label("expected (by weight)")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 12, y)], RED.stroke_width(2)));
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()?;
        root.present()?;
        Ok(())
    };
    draw().map_err(|e| CliError::new(format!("cannot write the plot to {}: {e}", path.display())))
}
