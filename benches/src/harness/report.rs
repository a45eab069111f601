//! The harness's results: one [`Row`] per (topology, path), the ratios
//! between them, the machine they ran on, as JSON and as Markdown tables.
//!
//! Ratios: each path over the baseline (the first path: raw veth) on the
//! same topology, with the RTT it adds; each topology over the first one for
//! the same path; and each of ours (paths named `mycelium...`) over each
//! alternative on the same topology, throughput and CPU per GB.

use std::fmt::Write;

use serde::Serialize;

use super::iperf::{Cpu, Tcp, Udp};
use super::measure::Ping;
use super::tunnel::{Agent, NodeStats};

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
    /// `git describe --always --dirty` of the tree that was measured.
    pub revision: String,
    /// Seconds of each iperf3 run.
    pub seconds: u32,
}

/// One path on one topology: its figures, or why there are none.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    /// "two-node" or "line-3" (one relay), ...
    pub topology: String,
    /// The [`Tunnel`](super::tunnel::Tunnel)'s name.
    pub path: String,
    pub version: Option<String>,
    /// How a middle node relays.
    pub relay: String,
    /// Why the row has no figures (not installed, failed to start, ...).
    pub skipped: Option<String>,
    pub figures: Option<Figures>,
    /// The tunnel's own counters after all of the row's runs.
    pub stats: Vec<NodeStats>,
    /// Anything else worth knowing (e.g. an unclean stop).
    pub notes: Vec<String>,
}

/// What one path measured.
#[derive(Debug, Clone, Serialize)]
pub struct Figures {
    pub ping_idle: Ping,
    /// Pings during the first TCP run.
    pub ping_loaded: Option<Ping>,
    pub tcp: Vec<Tcp>,
    pub udp: Option<Udp>,
    /// The processes whose CPU time was measured.
    pub agents: Vec<Agent>,
}

impl Row {
    /// A row without figures yet.
    pub fn new(topology: String, path: &str, version: Option<String>, relay: &str) -> Row {
        Row {
            topology,
            path: path.to_string(),
            version,
            relay: relay.to_string(),
            skipped: None,
            figures: None,
            stats: Vec::new(),
            notes: Vec::new(),
        }
    }

    fn tcp(&self, streams: u32) -> Option<&Tcp> {
        self.figures.as_ref()?.tcp.iter().find(|t| t.streams == streams)
    }
}

/// Which rows a [`Ratio`] divides.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RatioKind {
    /// A path over the baseline path, same topology.
    OverBaseline,
    /// A topology over the first topology, same path.
    OverFirstTopology,
    /// One of ours over an alternative, same topology.
    OursOverAlternative,
}

/// Quotients between two rows' figures.
#[derive(Debug, Clone, Serialize)]
pub struct Ratio {
    pub kind: RatioKind,
    /// What is divided by what, e.g. "mycelium sealed / raw veth (two-node)".
    pub what: String,
    /// Throughput quotient per stream count.
    pub tcp: Vec<StreamRatio>,
    /// Agents' CPU seconds per GB quotient per stream count (where both
    /// rows have agents; below 1: the numerator is cheaper).
    pub cpu_per_gb: Vec<StreamRatio>,
    /// Quotient of the average idle ping RTTs.
    pub ping_avg: f64,
    /// Idle RTT the numerator adds over the denominator, microseconds.
    pub added_rtt_min_us: f64,
    pub added_rtt_avg_us: f64,
}

/// A quotient at one stream count.
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

fn is_ours(path: &str) -> bool {
    path.starts_with("mycelium")
}

impl Report {
    /// Builds the report and its ratios (see the module docs); rows
    /// without figures take part in none.
    pub fn new(machine: Machine, rows: Vec<Row>) -> Report {
        let mut ratios = Vec::new();
        let baseline = rows.first().map(|r| r.path.clone()).unwrap_or_default();
        let first_topology = rows.first().map(|r| r.topology.clone()).unwrap_or_default();
        let measured: Vec<&Row> = rows.iter().filter(|r| r.figures.is_some()).collect();
        let find = |topology: &str, path: &str| measured.iter().find(|b| b.topology == topology && b.path == path);
        for row in &measured {
            if row.path != baseline
                && let Some(base) = find(&row.topology, &baseline)
            {
                let what = format!("{} / {} ({})", row.path, base.path, row.topology);
                ratios.extend(ratio(RatioKind::OverBaseline, what, row, base));
            }
        }
        for row in &measured {
            if row.topology != first_topology
                && let Some(base) = find(&first_topology, &row.path)
            {
                let what = format!("{} / {} ({})", row.topology, base.topology, row.path);
                ratios.extend(ratio(RatioKind::OverFirstTopology, what, row, base));
            }
        }
        for ours in measured.iter().filter(|r| is_ours(&r.path)) {
            for alt in
                measured.iter().filter(|r| r.topology == ours.topology && r.path != baseline && !is_ours(&r.path))
            {
                let what = format!("{} / {} ({})", ours.path, alt.path, ours.topology);
                ratios.extend(ratio(RatioKind::OursOverAlternative, what, ours, alt));
            }
        }
        Report { machine, rows, ratios }
    }

    /// The stream counts of the first measured row.
    fn streams(&self) -> Vec<u32> {
        let first = self.rows.iter().find_map(|r| r.figures.as_ref());
        first.map(|f| f.tcp.iter().map(|t| t.streams).collect()).unwrap_or_default()
    }

    /// The report as Markdown: the machine, the figures, CPU per agent, the
    /// ratios, how each path relays, and the tunnels' counters.
    pub fn markdown(&self) -> String {
        let m = &self.machine;
        let mut s = String::new();
        let _ = writeln!(s, "Date: {}; machine: {} CPUs, {}; kernel {}.", m.date, m.cpus, m.cpu_model, m.kernel);
        let _ = writeln!(s, "Load average before: {}; after: {}.", m.load_before, m.load_after);
        let _ = writeln!(s, "Command: `{}` (iperf3 runs of {} s); mycelium at {}.", m.command, m.seconds, m.revision);
        let mut versions: Vec<String> = Vec::new();
        for v in self.rows.iter().filter_map(|r| r.version.as_ref().map(|v| format!("{}: {v}", r.path))) {
            if !versions.contains(&v) {
                versions.push(v);
            }
        }
        if !versions.is_empty() {
            let _ = writeln!(s, "Versions: {}.", versions.join("; "));
        }
        let streams = self.streams();
        let udp = self.rows.iter().find_map(|r| r.figures.as_ref()?.udp.as_ref());
        let _ = write!(s, "\n| topology | path |");
        for n in &streams {
            let _ = write!(s, " TCP x{n} Mbit/s | CPU s/GB x{n} |");
        }
        if let Some(u) = udp {
            let _ = write!(s, " UDP {} Mbit/s offered: received, loss |", u.offered_mbit_s);
        }
        let _ = writeln!(s, " ping idle min / avg / p99 ms | ping loaded min / avg / p99 ms |");
        let cols = 2 * streams.len() + usize::from(udp.is_some()) + 2;
        let _ = writeln!(s, "|---|---|{}", "---|".repeat(cols));
        for row in &self.rows {
            let _ = write!(s, "| {} | {} |", row.topology, row.path);
            let Some(f) = &row.figures else {
                let why = row.skipped.as_deref().unwrap_or("no figures");
                let _ = writeln!(s, " skipped: {} |", one_line(why, 160));
                continue;
            };
            for n in &streams {
                match row.tcp(*n) {
                    Some(t) => {
                        let _ = write!(s, " {:.0} | {} |", t.mbit_s, cpu_cell(&t.cpu));
                    }
                    None => s.push_str(" - | - |"),
                }
            }
            if udp.is_some() {
                match &f.udp {
                    Some(u) => {
                        let _ = write!(s, " {:.0}, {:.2} % |", u.mbit_s, u.loss_percent);
                    }
                    None => s.push_str(" - |"),
                }
            }
            let loaded = f.ping_loaded.as_ref().map_or("-".to_string(), ping_cell);
            let _ = writeln!(s, " {} | {loaded} |", ping_cell(&f.ping_idle));
        }
        self.cpu_detail(&mut s, streams.first().copied());
        self.ratio_tables(&mut s, &streams);
        let lines: Vec<&Row> = self.rows.iter().filter(|r| r.topology != "two-node").collect();
        if !lines.is_empty() {
            let _ = writeln!(s, "\nHow the middle nodes relay:\n");
            let mut seen: Vec<&str> = Vec::new();
            for row in lines {
                if !seen.contains(&row.path.as_str()) {
                    seen.push(&row.path);
                    let _ = writeln!(s, "- {}: {}", row.path, row.relay);
                }
            }
        }
        self.counters(&mut s);
        s
    }

    fn cpu_detail(&self, s: &mut String, streams: Option<u32>) {
        let Some(n) = streams else { return };
        let _ = writeln!(
            s,
            "\nCPU during TCP x{n}: each agent's user + system seconds per GB received, and the whole \
             machine's busy seconds per GB (other load included):\n"
        );
        let _ = writeln!(s, "| topology | path | agents, CPU s/GB | machine CPU s/GB |\n|---|---|---|---|");
        for row in &self.rows {
            let Some(t) = row.tcp(n) else { continue };
            let agents: Vec<String> = t
                .cpu
                .agents
                .iter()
                .map(|a| format!("n{} {} {}", a.node, a.process, a.s_per_gb.map_or("-".into(), |c| format!("{c:.2}"))))
                .collect();
            let agents = if agents.is_empty() { "-".to_string() } else { agents.join("; ") };
            let _ = writeln!(s, "| {} | {} | {agents} | {:.2} |", row.topology, row.path, t.cpu.machine_s_per_gb);
        }
    }

    fn ratio_tables(&self, s: &mut String, streams: &[u32]) {
        if self.ratios.is_empty() {
            return;
        }
        let _ = write!(s, "\n| ratio |");
        for n in streams {
            let _ = write!(s, " TCP x{n} |");
        }
        for n in streams {
            let _ = write!(s, " CPU/GB x{n} |");
        }
        let _ = writeln!(s, " ping avg | added idle RTT min / avg us |");
        let _ = writeln!(s, "|---|{}---|---|", "---|".repeat(2 * streams.len()));
        for r in &self.ratios {
            let _ = write!(s, "| {} |", r.what);
            for n in streams {
                let q = r.tcp.iter().find(|q| q.streams == *n);
                let _ = write!(s, " {} |", q.map_or("-".to_string(), |q| format!("{:.2}", q.ratio)));
            }
            for n in streams {
                let q = r.cpu_per_gb.iter().find(|q| q.streams == *n);
                let _ = write!(s, " {} |", q.map_or("-".to_string(), |q| format!("{:.2}", q.ratio)));
            }
            let rtt = if r.kind == RatioKind::OverFirstTopology {
                "-".to_string()
            } else {
                format!("{:.0} / {:.0}", r.added_rtt_min_us, r.added_rtt_avg_us)
            };
            let _ = writeln!(s, " {:.2} | {rtt} |", r.ping_avg);
        }
    }

    fn counters(&self, s: &mut String) {
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
                    let shards = if n.rx_per_shard.len() > 1 {
                        format!(", underlay rx per shard {:?}", n.rx_per_shard)
                    } else {
                        String::new()
                    };
                    format!(
                        "node {}: {} packets in {} batches ({:.1}/batch), buffers exhausted {}, drops: {drops}{shards}",
                        n.node, n.packets_in, n.batches, n.packets_per_batch, n.buffers_exhausted
                    )
                })
                .collect();
            let _ = writeln!(s, "- {} / {}: {}", row.topology, row.path, nodes.join("; "));
        }
        for row in self.rows.iter().filter(|r| !r.notes.is_empty()) {
            let _ = writeln!(s, "- note, {} / {}: {}", row.topology, row.path, one_line(&row.notes.join("; "), 200));
        }
    }
}

fn cpu_cell(cpu: &Cpu) -> String {
    match (cpu.s_per_gb, cpu.user_percent) {
        (Some(c), Some(u)) => format!("{c:.2} ({u:.0}% user)"),
        (Some(c), None) => format!("{c:.2}"),
        _ => "-".to_string(),
    }
}

fn ping_cell(p: &Ping) -> String {
    format!("{:.3} / {:.3} / {:.3}", p.min_ms, p.avg_ms, p.p99_ms)
}

/// The first line of `text`, at most `max` characters, for a table cell.
fn one_line(text: &str, max: usize) -> String {
    let line = text.lines().next().unwrap_or_default().replace('|', "/");
    if line.chars().count() > max { format!("{}...", line.chars().take(max).collect::<String>()) } else { line }
}

fn ratio(kind: RatioKind, what: String, row: &Row, base: &Row) -> Option<Ratio> {
    let (f, b) = (row.figures.as_ref()?, base.figures.as_ref()?);
    let quotient = |x: f64, y: f64| if y > 0.0 { x / y } else { 0.0 };
    let mut tcp = Vec::new();
    let mut cpu_per_gb = Vec::new();
    for t in &f.tcp {
        let Some(bt) = b.tcp.iter().find(|bt| bt.streams == t.streams) else { continue };
        tcp.push(StreamRatio { streams: t.streams, ratio: quotient(t.mbit_s, bt.mbit_s) });
        if let (Some(x), Some(y)) = (t.cpu.s_per_gb, bt.cpu.s_per_gb) {
            cpu_per_gb.push(StreamRatio { streams: t.streams, ratio: quotient(x, y) });
        }
    }
    Some(Ratio {
        kind,
        what,
        tcp,
        cpu_per_gb,
        ping_avg: quotient(f.ping_idle.avg_ms, b.ping_idle.avg_ms),
        added_rtt_min_us: (f.ping_idle.min_ms - b.ping_idle.min_ms) * 1000.0,
        added_rtt_avg_us: (f.ping_idle.avg_ms - b.ping_idle.avg_ms) * 1000.0,
    })
}

#[cfg(test)]
mod tests;
