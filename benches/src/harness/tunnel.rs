//! The paths the harness compares, behind one trait.
//!
//! A [`Tunnel`] sets itself up on every node of a [`LineNet`] and says which
//! address the last node has on it and which processes carry its traffic
//! (their CPU time is measured). [`RawVeth`] is the baseline (the kernel
//! alone); [`MyceliumSealed`] runs one sealed `mycelium-dataplane` per node
//! with routes and keys published by the harness; the full node
//! (`myceliumd`) and the alternatives (wireguard-go, boringtun, Yggdrasil,
//! Nebula) are in their own modules. A tunnel that cannot run here says why
//! in [`Tunnel::unavailable`], and the harness reports it as skipped.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, bail};
use mycelium_common::shm::{Publisher, ShmDir};
use mycelium_common::time::Timestamp;
use mycelium_dataplane::engine::counters::{CounterValues, DropReason};
use mycelium_dataplane::io::shm::{read_all_counters, read_epoch};
use serde::Serialize;

use super::netns::{LineNet, run_stem, shm_dir};
use super::process::{Guarded, wait_for};
use crate::lab::Line;

/// UDP port of every dataplane.
const PORT: u16 = 9651;

/// One way of carrying traffic from the first node of a line to the last.
pub trait Tunnel {
    /// Short name for the report.
    fn name(&self) -> &'static str;

    /// The tool's version as it reports it (`None`: ours, or the kernel).
    fn version(&self) -> Option<String> {
        None
    }

    /// How a middle node of a line carries the traffic.
    fn relay(&self) -> &'static str;

    /// Why the path cannot run on a line of `nodes` nodes on this machine
    /// (a tool that is not installed, a topology it cannot do), if it cannot.
    fn unavailable(&self, nodes: usize) -> Option<String> {
        let _ = nodes;
        None
    }

    /// Sets the path up on `net`; it carries traffic once this returns.
    fn start(&self, net: &LineNet) -> anyhow::Result<Box<dyn Running>>;
}

/// A path that is up.
pub trait Running {
    /// The address the first node sends to, to reach the last.
    fn target(&self) -> IpAddr;

    /// Processes whose CPU time is the path's cost (none for the kernel).
    fn agents(&self) -> Vec<Agent>;

    /// How long the first ping may take to get through (handshakes, routes).
    fn reach_timeout(&self) -> Duration {
        Duration::from_secs(10)
    }

    /// The tunnel processes' own counters so far, one entry per node (none
    /// for paths without counters).
    fn stats(&self) -> Vec<NodeStats> {
        Vec::new()
    }

    /// What each node's processes printed so far, one entry per node.
    fn logs(&self) -> Vec<String> {
        Vec::new()
    }

    /// Tears the path down, reporting anything that went wrong (a process
    /// that did not exit cleanly, say).
    fn stop(self: Box<Self>) -> anyhow::Result<()>;
}

/// A process that carries a path's traffic on one node.
#[derive(Debug, Clone, Serialize)]
pub struct Agent {
    pub node: usize,
    /// The program's name, e.g. "wireguard-go".
    pub process: String,
    pub pid: u32,
}

/// One node's dataplane counters, summed over its shards.
#[derive(Debug, Clone, Serialize)]
pub struct NodeStats {
    pub node: usize,
    /// Packets received from the underlay and the TUN.
    pub packets_in: u64,
    /// Loop iterations that handed the engine a batch (or woke up idle).
    pub batches: u64,
    pub packets_per_batch: f64,
    pub buffers_exhausted: u64,
    /// Non-zero drop counters by reason.
    pub drops: BTreeMap<String, u64>,
    /// Underlay datagrams received, per shard (how the receive steering
    /// spread them).
    pub rx_per_shard: Vec<u64>,
}

impl NodeStats {
    /// The stats of node `node` from its shards' counters.
    pub(crate) fn from_shards(node: usize, shards: &[(usize, CounterValues)]) -> NodeStats {
        let total: CounterValues = shards.iter().map(|(_, c)| *c).sum();
        NodeStats {
            rx_per_shard: shards.iter().map(|(_, c)| c.underlay_rx_packets).collect(),
            ..Self::new(node, &total)
        }
    }

    pub(crate) fn new(node: usize, c: &CounterValues) -> NodeStats {
        let packets_in = c.underlay_rx_packets + c.tun_rx_packets;
        let drops = DropReason::ALL
            .iter()
            .filter(|r| c.drops[**r as usize] > 0)
            .map(|r| (r.label().to_string(), c.drops[*r as usize]))
            .collect();
        NodeStats {
            node,
            packets_in,
            batches: c.batches,
            packets_per_batch: if c.batches > 0 { packets_in as f64 / c.batches as f64 } else { 0.0 },
            buffers_exhausted: c.buffers_exhausted,
            drops,
            rx_per_shard: Vec::new(),
        }
    }
}

/// The veth links themselves, routed by the kernel across relays.
#[derive(Debug)]
pub struct RawVeth;

struct RawRunning(IpAddr);

impl Tunnel for RawVeth {
    fn name(&self) -> &'static str {
        "raw veth"
    }

    fn relay(&self) -> &'static str {
        "kernel IPv6 forwarding"
    }

    fn start(&self, net: &LineNet) -> anyhow::Result<Box<dyn Running>> {
        Ok(Box::new(RawRunning(IpAddr::V6(LineNet::link_v6(net.len() - 2, 2)))))
    }
}

impl Running for RawRunning {
    fn target(&self) -> IpAddr {
        self.0
    }

    fn agents(&self) -> Vec<Agent> {
        Vec::new()
    }

    fn stop(self: Box<Self>) -> anyhow::Result<()> {
        Ok(())
    }
}

/// One sealed `mycelium-dataplane` per node (relays without a TUN), each
/// with `shards` shards (cores from [`super::shard_cores`]), fed a static
/// snapshot and key table.
#[derive(Debug)]
pub struct MyceliumSealed {
    /// The `mycelium-dataplane` binary.
    pub binary: PathBuf,
    /// CPUs to spread the dataplanes over.
    pub cores: usize,
    /// Shards per dataplane (at most `cores`).
    pub shards: usize,
}

struct MyceliumRunning {
    target: IpAddr,
    dataplanes: Vec<Guarded>,
    _publishers: Vec<Publisher>,
    dirs: Vec<PathBuf>,
}

/// Secret key seeds of the nodes (node `i` has `[SEEDS[i]; 32]`).
const SEEDS: [u8; 9] = [0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99];

impl MyceliumSealed {
    fn line(net: &LineNet) -> Line {
        let endpoints: Vec<_> = (0..net.len())
            .map(|i| {
                // As its left neighbour sees it (host 2 of link i-1), then as its right one does (host 1 of link i).
                let left = LineNet::link_v4(i.saturating_sub(1), 2);
                let right = LineNet::link_v4(i, 1);
                let ep = |ip: String| format!("{ip}:{PORT}").parse().expect("a literal socket address");
                (ep(left), ep(right))
            })
            .collect();
        Line::new(&SEEDS[..net.len()], &endpoints)
    }

    fn start_dataplane(&self, net: &LineNet, line: &Line, i: usize) -> anyhow::Result<Guarded> {
        let node = &line.nodes()[i];
        let dir = shm_dir(i);
        let address = node.key.address().to_string();
        let mut cmd = net.command(i, &self.binary.to_string_lossy());
        cmd.args(["--engine", "sealed", "--port", &PORT.to_string(), "--address", &address])
            .args(["--cores", &super::shard_cores(i, self.shards, self.cores), "--shm-dir"])
            .arg(&dir);
        if node.has_tun(i, net.len()) {
            cmd.args(["--tun-name", &format!("{}t{i}", run_stem())]);
        } else {
            cmd.arg("--no-tun");
        }
        let child = cmd
            .env("RUST_LOG", "warn,mycelium_dataplane=info")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("starting {}", self.binary.display()))?;
        Guarded::wait_ready(child, "dataplane running", Duration::from_secs(10))
            .with_context(|| format!("dataplane of node {i}"))
    }
}

impl Tunnel for MyceliumSealed {
    fn name(&self) -> &'static str {
        "mycelium sealed"
    }

    fn relay(&self) -> &'static str {
        "end to end; the relay's dataplane forwards sealed packets"
    }

    fn start(&self, net: &LineNet) -> anyhow::Result<Box<dyn Running>> {
        let line = Self::line(net);
        let mut running = MyceliumRunning {
            target: IpAddr::V6(line.nodes()[net.len() - 1].key.address().ip()),
            dataplanes: Vec::new(),
            _publishers: Vec::new(),
            dirs: (0..net.len()).map(shm_dir).collect(),
        };
        for i in 0..net.len() {
            running.dataplanes.push(self.start_dataplane(net, &line, i)?);
        }
        let now = Timestamp::now().as_nanos();
        for (i, dir) in running.dirs.iter().enumerate() {
            let epoch = wait_for(Duration::from_secs(10), || read_epoch(dir).ok().flatten())
                .with_context(|| format!("node {i} wrote no epoch in {}", dir.display()))?;
            let mut publisher = Publisher::create(ShmDir::at(dir)).context("opening the publisher")?;
            line.publish(&mut publisher, i, 1, now, epoch, (&[], &[])).with_context(|| format!("node {i}"))?;
            running._publishers.push(publisher);
        }
        for (i, dir) in running.dirs.iter().enumerate() {
            let took = |dir: &PathBuf| {
                let all = read_all_counters(dir).ok()?;
                (!all.is_empty() && all.iter().all(|(_, c)| c.snapshot_generation > 0)).then_some(())
            };
            wait_for(Duration::from_secs(10), || took(dir))
                .with_context(|| format!("node {i}'s dataplane took no snapshot"))?;
        }
        Ok(Box::new(running))
    }
}

impl Running for MyceliumRunning {
    fn target(&self) -> IpAddr {
        self.target
    }

    fn agents(&self) -> Vec<Agent> {
        let agent = |(node, dp): (usize, &Guarded)| Agent { node, process: "mycelium-dataplane".into(), pid: dp.pid() };
        self.dataplanes.iter().enumerate().map(agent).collect()
    }

    fn stats(&self) -> Vec<NodeStats> {
        let node = |(i, dir): (usize, &PathBuf)| Some(NodeStats::from_shards(i, &read_all_counters(dir).ok()?));
        self.dirs.iter().enumerate().filter_map(node).collect()
    }

    fn logs(&self) -> Vec<String> {
        self.dataplanes.iter().map(Guarded::log_text).collect()
    }

    fn stop(mut self: Box<Self>) -> anyhow::Result<()> {
        let mut failures = Vec::new();
        for (i, dp) in self.dataplanes.iter_mut().enumerate() {
            match dp.terminate(Duration::from_secs(5)) {
                Ok(status) if status.success() => {}
                Ok(status) => failures.push(format!("node {i} exited with {status}:\n{}", dp.log_text())),
                Err(e) => failures.push(format!("node {i}: {e}")),
            }
        }
        for dir in &self.dirs {
            let _ = std::fs::remove_dir_all(dir);
        }
        if !failures.is_empty() {
            bail!("dataplanes did not stop cleanly:\n{}", failures.join("\n"));
        }
        Ok(())
    }
}
