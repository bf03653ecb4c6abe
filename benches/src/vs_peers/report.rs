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
    /// CPU time (user + system) the client's process spent per command over the measured
    /// window, in microseconds: this process for the Rust clients (every thread, the load
    /// loop's own small share included), the reaped `redis-benchmark` processes for those.
    pub(crate) cpu_us_per_op: Option<f64>,
    /// CPU per command of a proxy process on the client's path (twemproxy), which a service
    /// pays for too; not included in `cpu_us_per_op`.
    pub(crate) proxy_cpu_us_per_op: Option<f64>,
    pub(crate) p50_us: Option<f64>,
    pub(crate) p99_us: Option<f64>,
    pub(crate) p999_us: Option<f64>,
    pub(crate) errors: Option<u64>,
    /// ops/s of this cell divided by shardis' at the same workload and concurrency.
    pub(crate) ops_ratio_to_shardis: Option<f64>,
    /// p99 of this cell divided by shardis'.
    pub(crate) p99_ratio_to_shardis: Option<f64>,
    /// CPU per command of this cell divided by shardis'.
    pub(crate) cpu_ratio_to_shardis: Option<f64>,
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
            cpu_us_per_op: None,
            proxy_cpu_us_per_op: None,
            p50_us: None,
            p99_us: None,
            p999_us: None,
            errors: None,
            ops_ratio_to_shardis: None,
            p99_ratio_to_shardis: None,
            cpu_ratio_to_shardis: None,
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
    let base: Vec<Cell> = cells
        .iter()
        .filter(|c| c.client.starts_with("shardis"))
        .cloned()
        .collect();
    let ratio = |mine: Option<f64>, theirs: Option<f64>| match (mine, theirs) {
        (Some(mine), Some(theirs)) if theirs > 0.0 => Some(mine / theirs),
        _ => None,
    };
    for cell in cells.iter_mut() {
        if let Some(shardis) = base
            .iter()
            .find(|b| b.workload == cell.workload && b.concurrency == cell.concurrency)
        {
            cell.ops_ratio_to_shardis = ratio(Some(cell.ops_per_sec), Some(shardis.ops_per_sec));
            cell.p99_ratio_to_shardis = ratio(cell.p99_us, shardis.p99_us);
            cell.cpu_ratio_to_shardis = ratio(cell.cpu_us_per_op, shardis.cpu_us_per_op);
        }
    }
}

/// The note column: the proxy's CPU per command when there is a proxy, then the cell's note.
fn note(c: &Cell) -> String {
    let proxy = c
        .proxy_cpu_us_per_op
        .map(|v| format!("+ {v:.2} µs CPU/op in the proxy process"));
    [proxy, c.note.clone()]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join("; ")
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
                opt(c.cpu_us_per_op, &|v| format!("{v:.2}")),
                opt(c.p50_us, &|v| format!("{:.3}", v / 1000.0)),
                opt(c.p99_us, &|v| format!("{:.3}", v / 1000.0)),
                opt(c.p999_us, &|v| format!("{:.3}", v / 1000.0)),
                c.errors.map_or("-".into(), |e| e.to_string()),
                opt(c.ops_ratio_to_shardis, &|v| format!("{v:.2}x")),
                opt(c.p99_ratio_to_shardis, &|v| format!("{v:.2}x")),
                opt(c.cpu_ratio_to_shardis, &|v| format!("{v:.2}x")),
                note(c),
            ]
        })
        .collect();
    let header = [
        "workload",
        "client",
        "conc",
        "ops/s",
        "CPU µs/op",
        "p50 ms",
        "p99 ms",
        "p999 ms",
        "errors",
        "ops vs shardis",
        "p99 vs shardis",
        "CPU vs shardis",
        "note",
    ];
    let mut width: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
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

#[cfg(test)]
mod tests {
    use super::{Cell, fill_ratios, note};

    fn cell(client: &str, ops: f64, cpu: Option<f64>, p99: Option<f64>) -> Cell {
        Cell {
            ops_per_sec: ops,
            cpu_us_per_op: cpu,
            p99_us: p99,
            ..Cell::empty("cluster", client.to_string(), 64)
        }
    }

    #[test]
    fn ratios_are_against_shardis_at_the_same_workload_and_concurrency() {
        let mut cells = vec![
            cell("shardis", 100.0, Some(4.0), Some(10.0)),
            cell("fred", 50.0, Some(6.0), Some(30.0)),
            cell("redis-benchmark", 200.0, None, None),
            Cell {
                concurrency: 1,
                ..cell("fred", 10.0, Some(1.0), Some(1.0))
            },
        ];
        fill_ratios(&mut cells);
        assert_eq!(cells[1].ops_ratio_to_shardis, Some(0.5));
        assert_eq!(cells[1].p99_ratio_to_shardis, Some(3.0));
        assert_eq!(cells[1].cpu_ratio_to_shardis, Some(1.5));
        assert_eq!(cells[2].cpu_ratio_to_shardis, None);
        assert_eq!(cells[3].ops_ratio_to_shardis, None, "no shardis at c=1");
    }

    #[test]
    fn the_note_shows_the_proxy_cpu_first() {
        let mut c = cell("redis-rs via twemproxy", 1.0, Some(2.0), None);
        assert_eq!(note(&c), "");
        c.proxy_cpu_us_per_op = Some(3.456);
        c.note = Some("last error: x".into());
        assert_eq!(
            note(&c),
            "+ 3.46 µs CPU/op in the proxy process; last error: x"
        );
    }
}
