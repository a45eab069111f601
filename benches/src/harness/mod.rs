//! The throughput harness: raw veth, our overlay and the alternatives a user
//! would pick instead, side by side, in network namespaces of this machine
//! (needs root, iproute2, iperf3, ping; the alternatives are optional).
//!
//! For each topology (a line of `n` namespaces: two nodes, then three with a
//! relay) it creates the namespaces ([`netns::LineNet`]), then for each path
//! ([`tunnel::Tunnel`]: the raw veths first, as the baseline, then ours, then
//! the alternatives) starts the path, pings the last node from the first
//! (idle RTT), runs iperf3 TCP with 1 stream (pinging meanwhile: RTT under
//! load) and 4 streams, and UDP at a fixed offered rate, measuring the CPU
//! time of the path's processes ([`iperf`]). A path that is not installed,
//! cannot do the topology, fails to start or fails a measurement becomes a
//! row that says why, and the run goes on. [`report::Report`] turns the
//! rows into ratios, JSON and Markdown. The binary (`src/bin/harness.rs`)
//! adds the command line, the cleanup on signals and panics, and the files.

pub mod alt;
pub mod iperf;
pub mod measure;
pub mod netns;
pub mod node;
pub mod process;
pub mod report;
pub mod tunnel;

use std::path::Path;

use anyhow::Context;

use measure::{ping, wait_reachable};
use netns::LineNet;
use report::{Figures, Row};
use tunnel::Tunnel;

/// What to measure on each path.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Seconds per iperf3 run.
    pub seconds: u32,
    /// Stream counts, one TCP run each; the first one is also the load for
    /// the RTT under load.
    pub streams: Vec<u32>,
    /// Pings per idle RTT measurement, and their spacing.
    pub pings: u32,
    pub ping_interval_ms: u32,
    /// Offered UDP rate (Mbit/s; 0: no UDP run) and datagram payload size.
    pub udp_mbit_s: u32,
    pub udp_bytes: u32,
}

impl Plan {
    /// Pings that fit in a TCP run, starting half a second in and ending
    /// half a second before its end.
    pub fn loaded_pings(&self) -> u32 {
        (self.seconds * 1000).saturating_sub(1000) / self.ping_interval_ms.max(1)
    }
}

/// The `--cores` list of node `node`'s dataplane when each node runs
/// `shards` shards on a machine with `cpus` CPUs: `shards` consecutive CPUs
/// from `node * shards`, wrapping (the caller keeps `shards <= cpus`, so
/// none repeats).
pub fn shard_cores(node: usize, shards: usize, cpus: usize) -> String {
    let (shards, cpus) = (shards.max(1), cpus.max(1));
    let mut cores: Vec<usize> = (0..shards).map(|k| (node * shards + k) % cpus).collect();
    cores.sort_unstable();
    cores.dedup();
    cores.iter().map(usize::to_string).collect::<Vec<_>>().join(",")
}

/// The name of a line of `n` nodes in the report.
pub fn topology_name(n: usize) -> String {
    if n == 2 { "two-node".to_string() } else { format!("line-{n}") }
}

/// Measures every path on a line of `n` nodes, one after the other, and
/// tears everything down again (also on error). Only a failure to build the
/// namespaces themselves is an error; a path that fails is a row saying why.
///
/// With `logs`, what each node's processes printed is written there, as
/// `<topology>.<path>.n<i>.log`.
pub fn measure_line(
    n: usize,
    paths: &[&dyn Tunnel],
    plan: &Plan,
    logs: Option<&Path>,
    log: &dyn Fn(&str),
) -> anyhow::Result<Vec<Row>> {
    let net = LineNet::create(n).with_context(|| format!("creating a line of {n} namespaces"))?;
    let mut rows = Vec::new();
    for path in paths {
        let mut row = Row::new(topology_name(n), path.name(), path.version(), path.relay());
        let what = format!("{} on {}", path.name(), topology_name(n));
        if let Some(why) = path.unavailable(n) {
            log(&format!("skipping {what}: {why}"));
            row.skipped = Some(why);
            rows.push(row);
            continue;
        }
        log(&format!("starting {what}"));
        let running = match path.start(&net) {
            Ok(r) => r,
            Err(e) => {
                log(&format!("skipping {what}: failed to start: {e:#}"));
                row.skipped = Some(format!("failed to start: {e:#}"));
                rows.push(row);
                continue;
            }
        };
        let result = measure_path(&net, running.as_ref(), plan, log);
        row.stats = running.stats();
        let outputs = running.logs();
        let stopped = running.stop();
        if let Some(dir) = logs {
            save_logs(dir, &topology_name(n), path.name(), &outputs);
        }
        match result {
            Ok(figures) => row.figures = Some(figures),
            Err(e) => {
                log(&format!("{what} failed: {e:#}"));
                row.skipped = Some(format!("failed: {e:#}"));
            }
        }
        if let Err(e) = stopped {
            log(&format!("{what}: {e:#}"));
            row.notes.push(format!("{e:#}"));
        }
        rows.push(row);
    }
    Ok(rows)
}

/// Writes each node's output to `dir` (best effort: a log is a diagnostic).
fn save_logs(dir: &Path, topology: &str, path: &str, outputs: &[String]) {
    let _ = std::fs::create_dir_all(dir);
    for (i, text) in outputs.iter().enumerate() {
        let name = format!("{topology}.{}.n{i}.log", path.replace(' ', "-"));
        let _ = std::fs::write(dir.join(name), text);
    }
}

fn measure_path(
    net: &LineNet,
    running: &dyn tunnel::Running,
    plan: &Plan,
    log: &dyn Fn(&str),
) -> anyhow::Result<Figures> {
    let target = running.target();
    let agents = running.agents();
    wait_reachable(net, target, running.reach_timeout())?;
    let idle = ping(net, target, plan.pings, plan.ping_interval_ms).context("idle ping")?;
    log(&format!("  ping {target}: min {:.3} avg {:.3} p99 {:.3} ms", idle.min_ms, idle.avg_ms, idle.p99_ms));
    let mut tcp = Vec::new();
    let mut loaded = None;
    for (i, &streams) in plan.streams.iter().enumerate() {
        let pings = (i == 0 && plan.loaded_pings() > 0).then(|| (plan.loaded_pings(), plan.ping_interval_ms));
        let (t, p) = iperf::tcp(net, target, plan.seconds, streams, &agents, pings)
            .with_context(|| format!("TCP with {streams} streams"))?;
        let cpu = t.cpu.s_per_gb.map_or(String::new(), |c| format!(", agents {c:.2} CPU s/GB"));
        log(&format!("  iperf3 x{streams}: {:.0} Mbit/s, {} retransmits{cpu}", t.mbit_s, t.retransmits));
        if let Some(p) = &p {
            log(&format!("  ping under load: min {:.3} avg {:.3} p99 {:.3} ms", p.min_ms, p.avg_ms, p.p99_ms));
        }
        loaded = loaded.or(p);
        tcp.push(t);
    }
    let udp = if plan.udp_mbit_s > 0 {
        let u = iperf::udp(net, target, plan.seconds, plan.udp_mbit_s, plan.udp_bytes, &agents).context("UDP")?;
        log(&format!(
            "  iperf3 UDP at {} Mbit/s: {:.0} Mbit/s received, {:.2} % lost",
            u.offered_mbit_s, u.mbit_s, u.loss_percent
        ));
        Some(u)
    } else {
        None
    };
    Ok(Figures { ping_idle: idle, ping_loaded: loaded, tcp, udp, agents })
}

#[cfg(test)]
mod tests {
    use super::shard_cores;

    #[test]
    fn each_node_gets_its_shards_on_distinct_cores_round_the_machine() {
        assert_eq!(shard_cores(0, 1, 2), "0");
        assert_eq!(shard_cores(1, 1, 2), "1");
        assert_eq!(shard_cores(2, 1, 2), "0");
        assert_eq!(shard_cores(0, 2, 2), "0,1");
        assert_eq!(shard_cores(1, 2, 2), "0,1");
        assert_eq!(shard_cores(1, 2, 8), "2,3");
        assert_eq!(shard_cores(3, 3, 8), "1,2,3");
        assert_eq!(shard_cores(2, 3, 8), "0,6,7");
    }
}
