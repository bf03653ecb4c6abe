//! The results: one [`Cell`] per (workload, client, concurrency), the median over rounds,
//! ratios to shardis, and the table.

use serde::Serialize;

/// One measured cell of the table.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct Cell {
    pub(crate) workload: &'static str,
    pub(crate) client: String,
    pub(crate) concurrency: usize,
    pub(crate) ops_per_sec: f64,
    pub(crate) p50_us: Option<f64>,
    pub(crate) p99_us: Option<f64>,
    pub(crate) p999_us: Option<f64>,
    pub(crate) errors: Option<u64>,
    /// ops/s of this cell divided by shardis' at the same workload and concurrency.
    pub(crate) ops_ratio_to_shardis: Option<f64>,
    /// p99 of this cell divided by shardis'.
    pub(crate) p99_ratio_to_shardis: Option<f64>,
    pub(crate) note: Option<String>,
}

impl Cell {
    /// A cell with nothing measured (0 ops/s, no percentiles, no ratios, no note).
    pub(crate) fn empty(workload: &'static str, client: String, concurrency: usize) -> Cell {
        Cell {
            workload,
            client,
            concurrency,
            ops_per_sec: 0.0,
            p50_us: None,
            p99_us: None,
            p999_us: None,
            errors: None,
            ops_ratio_to_shardis: None,
            p99_ratio_to_shardis: None,
            note: None,
        }
    }
}

/// One cell per (workload, client, concurrency): the median round by ops/s, with the spread
/// of all rounds in its note.
pub(crate) fn median_rounds(cells: Vec<Cell>, rounds: usize) -> Vec<Cell> {
    if rounds <= 1 {
        return cells;
    }
    let mut out: Vec<Cell> = Vec::new();
    let mut seen: Vec<(&'static str, String, usize)> = Vec::new();
    for c in &cells {
        let id = (c.workload, c.client.clone(), c.concurrency);
        if seen.contains(&id) {
            continue;
        }
        let mut same: Vec<&Cell> = cells
            .iter()
            .filter(|x| x.workload == id.0 && x.client == id.1 && x.concurrency == id.2)
            .collect();
        same.sort_by(|a, b| a.ops_per_sec.total_cmp(&b.ops_per_sec));
        let mut median = same[same.len() / 2].clone();
        let spread = format!(
            "median of {} rounds (ops/s {:.0}..{:.0})",
            same.len(),
            same[0].ops_per_sec,
            same[same.len() - 1].ops_per_sec
        );
        median.note = Some(match median.note.take() {
            Some(n) => format!("{spread}; {n}"),
            None => spread,
        });
        median.errors = same.iter().map(|x| x.errors).sum();
        out.push(median);
        seen.push(id);
    }
    out
}

/// Fills the ratio columns of every cell against the shardis cell of its workload and
/// concurrency.
pub(crate) fn fill_ratios(cells: &mut [Cell]) {
    let base: Vec<(&'static str, usize, f64, Option<f64>)> = cells
        .iter()
        .filter(|c| c.client.starts_with("shardis"))
        .map(|c| (c.workload, c.concurrency, c.ops_per_sec, c.p99_us))
        .collect();
    for cell in cells.iter_mut() {
        if let Some((_, _, ops, p99)) = base
            .iter()
            .find(|b| b.0 == cell.workload && b.1 == cell.concurrency)
        {
            if *ops > 0.0 {
                cell.ops_ratio_to_shardis = Some(cell.ops_per_sec / ops);
            }
            if let (Some(mine), Some(theirs)) = (cell.p99_us, p99)
                && *theirs > 0.0
            {
                cell.p99_ratio_to_shardis = Some(mine / theirs);
            }
        }
    }
}

/// Prints the cells as an aligned table on stdout.
pub(crate) fn print_table(cells: &[Cell]) {
    let opt = |v: Option<f64>, f: &dyn Fn(f64) -> String| v.map_or("-".to_string(), f);
    let rows: Vec<Vec<String>> = cells
        .iter()
        .map(|c| {
            vec![
                c.workload.to_string(),
                c.client.clone(),
                c.concurrency.to_string(),
                format!("{:.0}", c.ops_per_sec),
                opt(c.p50_us, &|v| format!("{:.3}", v / 1000.0)),
                opt(c.p99_us, &|v| format!("{:.3}", v / 1000.0)),
                opt(c.p999_us, &|v| format!("{:.3}", v / 1000.0)),
                c.errors.map_or("-".into(), |e| e.to_string()),
                opt(c.ops_ratio_to_shardis, &|v| format!("{v:.2}x")),
                opt(c.p99_ratio_to_shardis, &|v| format!("{v:.2}x")),
                c.note.clone().unwrap_or_default(),
            ]
        })
        .collect();
    let header = [
        "workload",
        "client",
        "conc",
        "ops/s",
        "p50 ms",
        "p99 ms",
        "p999 ms",
        "errors",
        "ops vs shardis",
        "p99 vs shardis",
        "note",
    ];
    let mut width: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for r in &rows {
        for (i, c) in r.iter().enumerate().take(header.len() - 1) {
            width[i] = width[i].max(c.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        let mut s = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                s.push_str(c);
            } else if i < 2 {
                s.push_str(&format!("{c:<w$}  ", w = width[i]));
            } else {
                s.push_str(&format!("{c:>w$}  ", w = width[i]));
            }
        }
        println!("{}", s.trim_end());
    };
    line(header.iter().map(|s| s.to_string()).collect());
    for r in rows {
        line(r);
    }
}
