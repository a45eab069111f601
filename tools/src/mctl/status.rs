//! `mctl status`: the node at a glance (`GET /api/v1/node`).

use std::io::Write;

use mycelium_control::api::types::NodeInfo;

use super::table::{bytes, duration, or_dash};
use super::{Global, client::Client, print_json};

pub fn run(g: &Global, out: &mut dyn Write) -> anyhow::Result<()> {
    let node: NodeInfo = Client::for_node(g).get("/api/v1/node", &[])?;
    if g.json {
        return print_json(out, &node);
    }
    print(&node, out)
}

fn print(n: &NodeInfo, out: &mut dyn Write) -> anyhow::Result<()> {
    let cores: Vec<String> = n.shards.iter().map(|s| or_dash(s.core, |c| c.to_string())).collect();
    let snapshot = match (n.snapshot.generation, n.snapshot.age_seconds) {
        (0, _) => "none published yet".to_owned(),
        (g, Some(age)) => format!("generation {g}, built {} ago", duration(age)),
        (g, None) => format!("generation {g}"),
    };
    let t = &n.totals;
    writeln!(out, "public key:  {}", n.public_key)?;
    writeln!(out, "address:     {}", n.address)?;
    writeln!(out, "subnet:      {}", n.subnet)?;
    writeln!(out, "version:     {}", n.version)?;
    writeln!(out, "uptime:      {}", duration(n.uptime_seconds))?;
    writeln!(out, "shards:      {} (cores {})", n.shards.len(), cores.join(", "))?;
    writeln!(out, "snapshot:    {snapshot}")?;
    writeln!(out, "received:    {} packets, {}", t.rx_packets, bytes(t.rx_bytes))?;
    writeln!(out, "sent:        {} packets, {}", t.tx_packets, bytes(t.tx_bytes))?;
    writeln!(out, "dropped:     {} packets (mctl counters for reasons)", t.drops)?;
    Ok(())
}
