//! The harness's results: one [`Row`] per (topology, path), the ratios
//! between them, the machine they ran on, as JSON and as a Markdown table.

use std::fmt::Write;

use serde::Serialize;

use super::measure::{Ping, Tcp};
use super::tunnel::NodeStats;

/// Where and how the figures were taken.
#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    /// UTC, as `date -u` writes it.
    pub date: String,
    pub cpu_model: String,
    pub cpus: usize,
    pub kernel: String,
    /// `/proc/loadavg` before and after the run (other work on the machine).
    pub load_before: String,
    pub load_after: String,
    pub command: String,
    /// Seconds of each iperf3 run.
    pub seconds: u32,
}

/// The figures of one path on one topology.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    /// "two-node" or "line-3" (one relay), ...
    pub topology: String,
    /// The [`Tunnel`](super::tunnel::Tunnel)'s name.
    pub path: String,
    pub ping: Ping,
    pub tcp: Vec<Tcp>,
    /// The tunnel's own counters after all of the row's runs.
    pub stats: Vec<NodeStats>,
}

/// One quotient between two rows' figures.
#[derive(Debug, Clone, Serialize)]
pub struct Ratio {
    /// What is divided by what, e.g. "mycelium sealed / raw veth (two-node)".
    pub what: String,
    /// Throughput quotient per stream count, in the rows' order.
    pub tcp: Vec<StreamRatio>,
    /// Quotient of the average ping RTTs.
    pub ping_avg: f64,
}

/// The throughput quotient at one stream count.
#[derive(Debug, Clone, Serialize)]
pub struct StreamRatio {
    pub streams: u32,
    pub ratio: f64,
}

/// Everything one run produced.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub machine: Machine,
    pub rows: Vec<Row>,
    pub ratios: Vec<Ratio>,
}

impl Report {
    /// Builds the report, computing the ratios: each path over the first
    /// (the baseline) on the same topology, and each topology over the
    /// first topology for the same path.
    pub fn new(machine: Machine, rows: Vec<Row>) -> Report {
        let mut ratios = Vec::new();
        let baseline_path = rows.first().map(|r| r.path.clone()).unwrap_or_default();
        let first_topology = rows.first().map(|r| r.topology.clone()).unwrap_or_default();
        for row in &rows {
            if row.path != baseline_path
                && let Some(base) = rows.iter().find(|b| b.topology == row.topology && b.path == baseline_path)
            {
                ratios.push(ratio(format!("{} / {} ({})", row.path, base.path, row.topology), row, base));
            }
        }
        for row in &rows {
            if row.topology != first_topology
                && let Some(base) = rows.iter().find(|b| b.topology == first_topology && b.path == row.path)
            {
                ratios.push(ratio(format!("{} / {} ({})", row.topology, base.topology, row.path), row, base));
            }
        }
        Report { machine, rows, ratios }
    }

    /// The report as Markdown: a line on the machine, the figures, the ratios.
    pub fn markdown(&self) -> String {
        let m = &self.machine;
        let mut s = String::new();
        let _ = writeln!(s, "Date: {}; machine: {} CPUs, {}; kernel {}.", m.date, m.cpus, m.cpu_model, m.kernel);
        let _ = writeln!(s, "Load average before: {}; after: {}.", m.load_before, m.load_after);
        let _ = writeln!(s, "Command: `{}` (iperf3 runs of {} s).\n", m.command, m.seconds);
        let streams: Vec<u32> =
            self.rows.first().map(|r| r.tcp.iter().map(|t| t.streams).collect()).unwrap_or_default();
        let _ = write!(s, "| topology | path |");
        for n in &streams {
            let _ = write!(s, " TCP x{n} Mbit/s | tunnel CPU s/GB x{n} | machine CPU s/GB x{n} |");
        }
        let _ = writeln!(s, " ping min / avg / p99 ms |");
        let _ = writeln!(s, "|---|---|{}---|", "---|---|---|".repeat(streams.len()));
        for row in &self.rows {
            let _ = write!(s, "| {} | {} |", row.topology, row.path);
            for t in &row.tcp {
                let cpu = match (t.tunnel_cpu_s_per_gb, t.tunnel_user_s, t.tunnel_system_s) {
                    (Some(c), Some(u), Some(sys)) if u + sys > 0.0 => {
                        format!("{c:.2} ({:.0}% user)", 100.0 * u / (u + sys))
                    }
                    (Some(c), ..) => format!("{c:.2}"),
                    _ => "-".to_string(),
                };
                let _ = write!(s, " {:.0} | {cpu} | {:.2} |", t.mbit_s, t.machine_cpu_s_per_gb);
            }
            let p = &row.ping;
            let _ = writeln!(s, " {:.3} / {:.3} / {:.3} |", p.min_ms, p.avg_ms, p.p99_ms);
        }
        if !self.ratios.is_empty() {
            let _ = write!(s, "\n| ratio |");
            for n in &streams {
                let _ = write!(s, " TCP x{n} |");
            }
            let _ = writeln!(s, " ping avg |\n|---|{}---|", "---|".repeat(streams.len()));
            for r in &self.ratios {
                let _ = write!(s, "| {} |", r.what);
                for q in &r.tcp {
                    let _ = write!(s, " {:.2} |", q.ratio);
                }
                let _ = writeln!(s, " {:.2} |", r.ping_avg);
            }
        }
        let with_stats: Vec<&Row> = self.rows.iter().filter(|r| !r.stats.is_empty()).collect();
        if !with_stats.is_empty() {
            let _ = writeln!(s, "\nTunnel counters over each row's runs:\n");
        }
        for row in with_stats {
            let nodes: Vec<String> = row
                .stats
                .iter()
                .map(|n| {
                    let drops: Vec<String> = n.drops.iter().map(|(r, c)| format!("{r} {c}")).collect();
                    let drops = if drops.is_empty() { "none".to_string() } else { drops.join(", ") };
                    format!(
                        "node {}: {} packets in {} batches ({:.1}/batch), buffers exhausted {}, drops: {drops}",
                        n.node, n.packets_in, n.batches, n.packets_per_batch, n.buffers_exhausted
                    )
                })
                .collect();
            let _ = writeln!(s, "- {} / {}: {}", row.topology, row.path, nodes.join("; "));
        }
        s
    }
}

fn ratio(what: String, row: &Row, base: &Row) -> Ratio {
    let tcp = row
        .tcp
        .iter()
        .filter_map(|t| {
            let b = base.tcp.iter().find(|b| b.streams == t.streams)?;
            Some(StreamRatio { streams: t.streams, ratio: if b.mbit_s > 0.0 { t.mbit_s / b.mbit_s } else { 0.0 } })
        })
        .collect();
    let ping_avg = if base.ping.avg_ms > 0.0 { row.ping.avg_ms / base.ping.avg_ms } else { 0.0 };
    Ratio { what, tcp, ping_avg }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(topology: &str, path: &str, mbit: f64, rtt: f64) -> Row {
        let tcp = |streams| Tcp {
            streams,
            mbit_s: mbit * f64::from(streams),
            bytes: 1,
            retransmits: 0,
            tunnel_user_s: None,
            tunnel_system_s: None,
            tunnel_cpu_s_per_gb: None,
            machine_cpu_s_per_gb: 1.0,
        };
        let ping = Ping { sent: 1, received: 1, min_ms: rtt, avg_ms: rtt, p99_ms: rtt, max_ms: rtt };
        Row { topology: topology.into(), path: path.into(), ping, tcp: vec![tcp(1), tcp(4)], stats: Vec::new() }
    }

    fn machine() -> Machine {
        Machine {
            date: "d".into(),
            cpu_model: "c".into(),
            cpus: 2,
            kernel: "k".into(),
            load_before: "l".into(),
            load_after: "l".into(),
            command: "x".into(),
            seconds: 5,
        }
    }

    #[test]
    fn ratios_compare_each_path_with_the_baseline_and_each_topology_with_the_first() {
        let rows = vec![
            row("two-node", "raw", 1000.0, 0.1),
            row("two-node", "overlay", 500.0, 0.2),
            row("line-3", "raw", 800.0, 0.2),
            row("line-3", "overlay", 200.0, 0.8),
        ];
        let report = Report::new(machine(), rows);
        let got: Vec<_> = report.ratios.iter().map(|r| (r.what.as_str(), r.tcp[0].ratio, r.ping_avg)).collect();
        assert_eq!(
            got,
            [
                ("overlay / raw (two-node)", 0.5, 2.0),
                ("overlay / raw (line-3)", 0.25, 4.0),
                ("line-3 / two-node (raw)", 0.8, 2.0),
                ("line-3 / two-node (overlay)", 0.4, 4.0),
            ]
        );
        let md = report.markdown();
        assert!(
            md.contains("| two-node | overlay | 500 | - | 1.00 | 2000 | - | 1.00 | 0.200 / 0.200 / 0.200 |"),
            "{md}"
        );
        assert!(md.contains("| overlay / raw (line-3) | 0.25 | 0.25 | 4.00 |"), "{md}");
    }
}
