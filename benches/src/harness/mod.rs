//! The throughput harness: raw veth against the overlay, side by side, in
//! network namespaces of this machine (needs root, iproute2, iperf3, ping).
//!
//! For each topology (a line of `n` namespaces: two nodes, then three with a
//! relay) it creates the namespaces ([`netns::LineNet`]), then for each path
//! ([`tunnel::Tunnel`]: the raw veths first, as the baseline, then the sealed
//! dataplanes) starts the path, pings the last node from the first (idle RTT)
//! and runs iperf3 TCP with 1 and 4 streams, measuring the CPU time of the
//! path's processes. [`report::Report`] turns the rows into ratios, JSON and
//! Markdown. The binary (`src/bin/harness.rs`) adds the command line, the
//! cleanup on signals and panics, and the output files.

pub mod measure;
pub mod netns;
pub mod process;
pub mod report;
pub mod tunnel;

use std::time::Duration;

use anyhow::Context;

use measure::{iperf3, ping, wait_reachable};
use netns::LineNet;
use report::Row;
use tunnel::Tunnel;

/// What to measure on each path.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Seconds per iperf3 run.
    pub seconds: u32,
    /// Stream counts, one iperf3 run each.
    pub streams: Vec<u32>,
    /// Pings per RTT measurement, and their spacing.
    pub pings: u32,
    pub ping_interval_ms: u32,
}

/// The name of a line of `n` nodes in the report.
pub fn topology_name(n: usize) -> String {
    if n == 2 { "two-node".to_string() } else { format!("line-{n}") }
}

/// Measures every path on a line of `n` nodes, one after the other, and
/// tears everything down again (also on error).
pub fn measure_line(n: usize, paths: &[&dyn Tunnel], plan: &Plan, log: &dyn Fn(&str)) -> anyhow::Result<Vec<Row>> {
    let net = LineNet::create(n).with_context(|| format!("creating a line of {n} namespaces"))?;
    let mut rows = Vec::new();
    for path in paths {
        let what = format!("{} on {}", path.name(), topology_name(n));
        log(&format!("starting {what}"));
        let running = path.start(&net).with_context(|| format!("starting {what}"))?;
        let result = measure_path(&net, running.as_ref(), plan, log);
        let stats = running.stats();
        let stopped = running.stop();
        let (ping, tcp) = result.with_context(|| format!("measuring {what}"))?;
        stopped.with_context(|| format!("stopping {what}"))?;
        rows.push(Row { topology: topology_name(n), path: path.name().to_string(), ping, tcp, stats });
    }
    Ok(rows)
}

fn measure_path(
    net: &LineNet,
    running: &dyn tunnel::Running,
    plan: &Plan,
    log: &dyn Fn(&str),
) -> anyhow::Result<(measure::Ping, Vec<measure::Tcp>)> {
    let target = running.target();
    wait_reachable(net, target, Duration::from_secs(10))?;
    let rtt = ping(net, target, plan.pings, plan.ping_interval_ms)?;
    log(&format!("  ping {target}: min {:.3} avg {:.3} p99 {:.3} ms", rtt.min_ms, rtt.avg_ms, rtt.p99_ms));
    let mut tcp = Vec::new();
    for &streams in &plan.streams {
        let t = iperf3(net, target, plan.seconds, streams, &running.pids())?;
        let cpu = t.tunnel_cpu_s_per_gb.map_or(String::new(), |c| format!(", tunnel {c:.2} CPU s/GB"));
        log(&format!("  iperf3 x{streams}: {:.0} Mbit/s, {} retransmits{cpu}", t.mbit_s, t.retransmits));
        tcp.push(t);
    }
    Ok((rtt, tcp))
}
