//! Helpers shared by the simulator tests.
#![allow(dead_code)]

use std::fmt::Write;
use std::time::Duration;

use mycelium_tools::sim::{LinkProps, Sim};

pub fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

pub fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

pub fn fiber(one_way_ms: u64) -> LinkProps {
    LinkProps::with_delay(ms(one_way_ms))
}

/// Node index owning each key, for readable renderings.
fn index_of(sim: &Sim, key: &mycelium_common::identity::PublicKey) -> String {
    sim.nodes().iter().position(|n| n.key == *key).map_or_else(|| "?".to_owned(), |i| format!("n{i}"))
}

/// Every node's route table, with node numbers instead of keys.
pub fn render_tables(sim: &Sim) -> String {
    let mut out = String::new();
    for (i, node) in sim.nodes().iter().enumerate() {
        writeln!(out, "node n{i} (seqno {}):", node.router.seqno()).unwrap();
        for e in node.router.route_table().entries {
            let owner = index_of(sim, &e.selected.router_id);
            let s = &e.selected;
            write!(
                out,
                "  {} ({owner}) via {} {} metric {} smoothed {} seqno {}",
                e.prefix,
                index_of(sim, &s.neighbour),
                s.link,
                s.metric,
                s.smoothed_metric,
                s.seqno
            )
            .unwrap();
            for f in &e.fallbacks {
                write!(out, " | fallback via {} {} metric {}", index_of(sim, &f.neighbour), f.link, f.metric).unwrap();
            }
            out.push('\n');
        }
    }
    out
}
