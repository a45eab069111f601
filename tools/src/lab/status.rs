//! `mlab status`: the nodes (address, running, API answering), the links
//! (settings and counters from their emulators) and each node's selected
//! routes, with the neighbour and link each one uses. [`LabStatus::gather`]
//! asks; [`LabStatus::print`] writes the human form (`--json` prints the
//! struct itself).

use std::io::Write;

use serde::Serialize;
use serde_json::Value;

use super::Lab;
use super::process::alive;

/// One route of a node, by destination.
#[derive(Debug, Clone, Serialize)]
pub struct RouteView {
    /// The destination node, or the prefix if it is no node of the lab.
    pub destination: String,
    pub prefix: String,
    pub metric: u16,
    /// The neighbour the route goes through.
    pub via: Option<String>,
    /// `a-b#i`: the link it leaves on.
    pub link: Option<String>,
    pub class: Option<String>,
}

/// A node.
#[derive(Debug, Clone, Serialize)]
pub struct NodeStatus {
    pub name: String,
    pub address: String,
    pub running: bool,
    pub routes: Vec<RouteView>,
    /// Why the routes could not be read.
    pub error: Option<String>,
}

/// A link and its emulator's answer (`a_to_b`/`b_to_a`: settings, stats).
#[derive(Debug, Clone, Serialize)]
pub struct LinkStatus {
    pub name: String,
    pub class: String,
    pub running: bool,
    pub emulator: Option<Value>,
    pub error: Option<String>,
}

/// The whole lab.
#[derive(Debug, Clone, Serialize)]
pub struct LabStatus {
    pub name: String,
    pub nodes: Vec<NodeStatus>,
    pub links: Vec<LinkStatus>,
}

impl LabStatus {
    pub fn gather(lab: &Lab) -> LabStatus {
        let state = lab.state();
        let running = |role: String| state.processes.iter().any(|p| p.role == role && alive(p));
        let nodes = state
            .nodes
            .iter()
            .map(|n| {
                let (routes, error) = match lab.routes(&n.name) {
                    Ok(rs) => (
                        rs.iter()
                            .map(|r| {
                                let hop = lab.hop(&n.name, r);
                                RouteView {
                                    destination: lab.node_of_prefix(&r.prefix).unwrap_or(&r.prefix).to_owned(),
                                    prefix: r.prefix.clone(),
                                    metric: r.metric,
                                    via: hop.as_ref().map(|h| h.neighbour.clone()),
                                    link: hop.as_ref().map(|h| link_name(lab, h.link)),
                                    class: hop.map(|h| h.class),
                                }
                            })
                            .collect(),
                        None,
                    ),
                    Err(e) => (Vec::new(), Some(e.to_string())),
                };
                NodeStatus {
                    name: n.name.clone(),
                    address: n.address.clone(),
                    running: running(format!("node {}", n.name)),
                    routes,
                    error,
                }
            })
            .collect();
        let links = state
            .links
            .iter()
            .enumerate()
            .map(|(i, l)| {
                let (emulator, error) = match lab.link_stats(l) {
                    Ok(v) => (Some(v), None),
                    Err(e) => (None, Some(e.to_string())),
                };
                LinkStatus {
                    name: link_name(lab, i),
                    class: l.class.clone(),
                    running: running(format!("emulator {i}")),
                    emulator,
                    error,
                }
            })
            .collect();
        LabStatus { name: state.name.clone(), nodes, links }
    }

    /// The human form.
    pub fn print(&self, out: &mut dyn Write) -> std::io::Result<()> {
        writeln!(out, "lab {}", self.name)?;
        writeln!(out, "\nNODE      UP   ADDRESS")?;
        for n in &self.nodes {
            writeln!(out, "{:<9} {:<4} {}", n.name, yes_no(n.running), n.address)?;
        }
        writeln!(
            out,
            "\nLINK          CLASS       UP   DELAY     JITTER   LOSS    RATE         A->B PKTS  B->A PKTS  DROPS"
        )?;
        for l in &self.links {
            match &l.emulator {
                Some(v) => {
                    let s = &v["a_to_b"]["settings"];
                    let drops = |d: &Value| {
                        ["dropped_down", "dropped_queue_full", "dropped_loss"]
                            .iter()
                            .map(|k| d[k].as_u64().unwrap_or(0))
                            .sum::<u64>()
                    };
                    let (ab, ba) = (&v["a_to_b"]["stats"], &v["b_to_a"]["stats"]);
                    writeln!(
                        out,
                        "{:<13} {:<11} {:<4} {:<9} {:<8} {:<7} {:<12} {:>9}  {:>9}  {}",
                        l.name,
                        l.class,
                        yes_no(s["up"].as_bool().unwrap_or(false)),
                        format!("{:.1}ms", s["delay_ms"].as_f64().unwrap_or(0.0)),
                        format!("{:.1}ms", s["jitter_ms"].as_f64().unwrap_or(0.0)),
                        loss(s),
                        rate(s),
                        ab["sent"].as_u64().unwrap_or(0),
                        ba["sent"].as_u64().unwrap_or(0),
                        drops(ab) + drops(ba),
                    )?;
                }
                None => writeln!(out, "{:<13} {:<11} --   {}", l.name, l.class, l.error.as_deref().unwrap_or("?"))?,
            }
        }
        writeln!(out, "\nROUTES (selected)")?;
        for n in &self.nodes {
            if let Some(e) = &n.error {
                writeln!(out, "  {}: {e}", n.name)?;
                continue;
            }
            let routes: Vec<String> = n
                .routes
                .iter()
                .filter(|r| r.destination != n.name)
                .map(|r| match (&r.via, &r.link) {
                    (Some(via), Some(link)) => format!("{} via {via} ({link}, {})", r.destination, r.metric),
                    _ => format!("{} ({})", r.destination, r.metric),
                })
                .collect();
            writeln!(out, "  {:<8} {}", n.name, if routes.is_empty() { "none".into() } else { routes.join("; ") })?;
        }
        Ok(())
    }
}

/// `a-b#0`.
pub fn link_name(lab: &Lab, i: usize) -> String {
    let l = &lab.state().links[i];
    format!("{}-{}#{}", l.a, l.b, l.index)
}

fn yes_no(b: bool) -> &'static str {
    if b { "yes" } else { "no" }
}

fn loss(s: &Value) -> String {
    if let Some(p) = s["loss"].as_f64() {
        return format!("{:.1}%", p * 100.0);
    }
    if s["gilbert"].is_object() { "GE".into() } else { "-".into() }
}

fn rate(s: &Value) -> String {
    match s["rate_bps"].as_u64() {
        Some(bps) if bps >= 1_000_000 => format!("{}mbit", bps as f64 / 1e6),
        Some(bps) => format!("{}kbit", bps as f64 / 1e3),
        None => "unlimited".into(),
    }
}
