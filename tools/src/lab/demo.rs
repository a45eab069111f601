//! `mlab demo`: a guided tour in under two minutes. It brings up a 6-node
//! mesh of mixed link classes ([`TOPOLOGY`], `tools/lab/demo.toml`), waits
//! for every node to route to every other, shows the routes, pings from the
//! first node to the last, starts a checked TCP stream between them, cuts
//! the first link of the path in use, shows the reroute and how long the
//! stream paused, restores the link, tears everything down and prints a
//! one-screen [`Summary`]. Every wait is bounded; the lab is torn down on
//! every path out (run `mlab down demo` after a kill -9).

use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::status::{LabStatus, link_name};
use super::{Lab, LabError, Options, Topology};
use crate::emu::Update;

/// The demo mesh.
pub const TOPOLOGY: &str = include_str!("../../lab/demo.toml");

/// The stream's rate, bytes a second.
const STREAM_RATE: u64 = 2 << 20;

/// How to run the demo.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    pub lab: Options,
    /// A topology file instead of [`TOPOLOGY`].
    pub topology: Option<PathBuf>,
}

/// What the demo measured.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Summary {
    pub nodes: usize,
    pub links: usize,
    pub from: String,
    pub to: String,
    pub up_ms: u128,
    pub converged_ms: u128,
    pub ping_rtt_ms: Option<f64>,
    pub path_before: Vec<String>,
    pub cut_link: String,
    pub path_after_cut: Vec<String>,
    /// From the cut to the first node's new next hop.
    pub reroute_ms: Option<u128>,
    pub path_restored: Vec<String>,
    pub stream_bytes: u64,
    pub stream_secs: f64,
    pub stream_longest_pause_ms: u128,
    pub total_secs: f64,
}

/// Runs the demo, writing its progress and the summary to `out`.
pub fn run(opts: &DemoOptions, out: &mut dyn Write) -> Result<Summary, LabError> {
    let text = match &opts.topology {
        Some(path) => std::fs::read_to_string(path).map_err(|e| LabError::io(path, e))?,
        None => TOPOLOGY.to_owned(),
    };
    let topo = Topology::parse(&text)?;
    if topo.nodes.len() < 2 {
        return Err(LabError::Check("the demo needs at least two nodes".into()));
    }
    let start = Instant::now();
    let mut say = Say { out, start };
    let (from, to) = (topo.nodes[0].name.clone(), topo.nodes[topo.nodes.len() - 1].name.clone());
    let mut s = Summary {
        nodes: topo.nodes.len(),
        links: topo.links.len(),
        from: from.clone(),
        to: to.clone(),
        ..Summary::default()
    };

    say.step(&format!("building the lab: {} nodes, {} links, one emulator per link", s.nodes, s.links))?;
    let lab = Lab::up(&topo, &opts.lab)?;
    s.up_ms = start.elapsed().as_millis();
    say.line(&format!("up in {} ms (state file {})", s.up_ms, lab.state().path.display()));

    say.step("waiting until every node has a route to every other")?;
    let t = Instant::now();
    wait_converged(&lab, Duration::from_secs(40))?;
    s.converged_ms = t.elapsed().as_millis();
    say.line(&format!("converged in {} ms", s.converged_ms));
    lab.ping_until_reachable(&from, &to, Duration::from_secs(20))?;
    let mut status = Vec::new();
    LabStatus::gather(&lab).print(&mut status).map_err(|e| LabError::Check(e.to_string()))?;
    say.raw(&String::from_utf8_lossy(&status));

    say.step(&format!("ping {from} -> {to}"))?;
    let ping = lab.ping(&from, &to, 5)?;
    s.ping_rtt_ms = ping.avg_rtt_ms;
    say.line(&format!("{}/{} answered, mean round trip {}", ping.received, ping.sent, ms(ping.avg_rtt_ms)));

    say.step(&format!("TCP stream {from} -> {to} at {} MB/s, every byte checked", STREAM_RATE >> 20))?;
    let flow = lab.stream(&from, &to, 7000, STREAM_RATE)?;
    std::thread::sleep(Duration::from_secs(2));
    s.path_before = path(&lab, &from, &to)?;
    say.line(&format!("path: {}", s.path_before.join(" -> ")));
    let hop = wait_hop(&lab, &from, &to, Duration::from_secs(10))?;
    s.cut_link = link_name(&lab, hop.link);
    let link = lab.state().links[hop.link].clone();

    say.step(&format!("cutting {} ({}), the first link of that path", s.cut_link, hop.class))?;
    let down = Update { up: Some(false), ..Update::default() };
    lab.set_link(&link.a, &link.b, link.index, &down)?;
    let cut = Instant::now();
    while cut.elapsed() < Duration::from_secs(15) && !super::signals::interrupted() {
        if lab.next_hop(&from, &to)?.is_some_and(|h| h.link != hop.link) {
            s.reroute_ms = Some(cut.elapsed().as_millis());
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_secs(2));
    s.path_after_cut = path(&lab, &from, &to)?;
    say.line(&format!(
        "rerouted after {}: {}",
        s.reroute_ms.map_or("(no reroute within 15 s)".into(), |m| format!("{m} ms")),
        s.path_after_cut.join(" -> ")
    ));

    say.step(&format!("restoring {}", s.cut_link))?;
    let up = Update { up: Some(true), ..Update::default() };
    lab.set_link(&link.a, &link.b, link.index, &up)?;
    let restored = Instant::now();
    while restored.elapsed() < Duration::from_secs(15) && !super::signals::interrupted() {
        if lab.next_hop(&from, &to)?.is_some_and(|h| h.link == hop.link) {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    s.path_restored = path(&lab, &from, &to)?;
    say.line(&format!("after {} ms: {}", restored.elapsed().as_millis(), s.path_restored.join(" -> ")));
    let report = flow.try_finish().map_err(|e| LabError::Check(format!("the stream failed: {e}")))?;
    s.stream_bytes = report.bytes;
    s.stream_secs = report.secs;
    s.stream_longest_pause_ms = report.longest_gap.as_millis();
    say.line(&format!(
        "stream: {:.1} MB in {:.1} s, all checked; longest pause {} ms",
        report.bytes as f64 / 1e6,
        report.secs,
        s.stream_longest_pause_ms
    ));

    say.step("tearing down")?;
    let down = lab.down()?;
    say.line(&format!(
        "{} processes stopped, {} namespaces removed",
        down.stopped + down.killed.len(),
        down.namespaces
    ));
    s.total_secs = start.elapsed().as_secs_f64();
    print_summary(&s, say.out).map_err(|e| LabError::Check(e.to_string()))?;
    Ok(s)
}

struct Say<'a> {
    out: &'a mut dyn Write,
    start: Instant,
}

impl Say<'_> {
    fn step(&mut self, what: &str) -> Result<(), LabError> {
        if super::signals::interrupted() {
            return Err(LabError::Interrupted);
        }
        let _ = writeln!(self.out, "\n[{:5.1}s] {what}", self.start.elapsed().as_secs_f64());
        let _ = self.out.flush();
        Ok(())
    }

    fn line(&mut self, what: &str) {
        let _ = writeln!(self.out, "         {what}");
        let _ = self.out.flush();
    }

    fn raw(&mut self, text: &str) {
        for l in text.lines() {
            self.line(l);
        }
    }
}

fn ms(v: Option<f64>) -> String {
    v.map_or("-".into(), |v| format!("{v:.1} ms"))
}

/// Waits until every node has a selected route to every other node.
fn wait_converged(lab: &Lab, within: Duration) -> Result<(), LabError> {
    let start = Instant::now();
    let nodes = &lab.state().nodes;
    loop {
        if super::signals::interrupted() {
            return Err(LabError::Interrupted);
        }
        let mut missing = Vec::new();
        for n in nodes {
            let routes = lab.routes(&n.name).unwrap_or_default();
            for m in nodes.iter().filter(|m| m.name != n.name) {
                if !routes.iter().any(|r| r.prefix == m.subnet && r.metric != u16::MAX) {
                    missing.push(format!("{}->{}", n.name, m.name));
                }
            }
        }
        if missing.is_empty() {
            return Ok(());
        }
        if start.elapsed() > within {
            return Err(LabError::Check(format!("no route within {within:?} for {}", missing.join(", "))));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// `from`'s next hop to `to`, waiting up to `within` for a route (one may
/// be between two choices for a moment).
fn wait_hop(lab: &Lab, from: &str, to: &str, within: Duration) -> Result<super::Hop, LabError> {
    let start = Instant::now();
    loop {
        if let Some(hop) = lab.next_hop(from, to)? {
            return Ok(hop);
        }
        if start.elapsed() > within || super::signals::interrupted() {
            return Err(LabError::Check(format!("{from} has no route to {to} within {within:?}")));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The nodes a packet from `from` to `to` passes, following each node's
/// selected next hop (at most one visit per node); tries again for up to
/// 3 s while some node on the way is between two routes.
pub fn path(lab: &Lab, from: &str, to: &str) -> Result<Vec<String>, LabError> {
    let start = Instant::now();
    loop {
        let hops = path_once(lab, from, to)?;
        if hops.last().is_some_and(|h| h.starts_with(to)) || start.elapsed() > Duration::from_secs(3) {
            return Ok(hops);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn path_once(lab: &Lab, from: &str, to: &str) -> Result<Vec<String>, LabError> {
    let mut hops = vec![from.to_owned()];
    let mut at = from.to_owned();
    while at != to && hops.len() <= lab.state().nodes.len() {
        match lab.next_hop(&at, to)? {
            Some(h) => {
                at = h.neighbour.clone();
                hops.push(format!("{}({})", h.neighbour, h.class));
            }
            None => {
                hops.push("(no route)".into());
                break;
            }
        }
    }
    Ok(hops)
}

fn print_summary(s: &Summary, out: &mut dyn Write) -> std::io::Result<()> {
    let rule = "=".repeat(72);
    writeln!(out, "\n{rule}\n mlab demo: summary\n{rule}")?;
    writeln!(out, " mesh            {} nodes, {} links (mixed classes), up in {} ms", s.nodes, s.links, s.up_ms)?;
    writeln!(out, " converged       every node routes to every other after {} ms", s.converged_ms)?;
    writeln!(out, " ping            {} -> {}: mean round trip {}", s.from, s.to, ms(s.ping_rtt_ms))?;
    writeln!(out, " path            {}", s.path_before.join(" -> "))?;
    writeln!(out, " cut             {}", s.cut_link)?;
    let reroute = s.reroute_ms.map_or("no reroute within 15 s".into(), |m| format!("{m} ms after the cut"));
    writeln!(out, " rerouted        {reroute}: {}", s.path_after_cut.join(" -> "))?;
    writeln!(out, " restored        {}", s.path_restored.join(" -> "))?;
    writeln!(
        out,
        " TCP stream      {:.1} MB in {:.1} s, every byte checked; longest pause {} ms",
        s.stream_bytes as f64 / 1e6,
        s.stream_secs,
        s.stream_longest_pause_ms
    )?;
    writeln!(out, " torn down       nothing left; total {:.1} s\n{rule}", s.total_secs)?;
    Ok(())
}
