//! `mctl routes [--selected|--fallback|--all]` (`GET /api/v1/routes`).

use std::io::Write;

use clap::Args;
use mycelium_control::api::types::{MetricPart, NextHopInfo, RouteInfo};

use super::table::{Table, bits_per_second, duration, millis, percent, short_key};
use super::{Global, client::Client, print_json};

#[derive(Debug, Args)]
#[group(multiple = false)]
pub struct RoutesArgs {
    /// Only the routes in use.
    #[arg(long)]
    pub selected: bool,
    /// Only the fallback routes kept ready.
    #[arg(long)]
    pub fallback: bool,
    /// Both (the default).
    #[arg(long)]
    pub all: bool,
}

pub fn run(g: &Global, args: &RoutesArgs, out: &mut dyn Write) -> anyhow::Result<()> {
    let state = if args.selected {
        "selected"
    } else if args.fallback {
        "fallback"
    } else {
        "all"
    };
    let routes: Vec<RouteInfo> = Client::for_node(g).get("/api/v1/routes", &[("state", state)])?;
    if g.json {
        return print_json(out, &routes);
    }
    if routes.is_empty() {
        writeln!(out, "no routes")?;
        return Ok(());
    }
    let mut t = Table::new(&["PREFIX", "STATE", "METRIC", "NEXT HOP", "ROUTER", "SEQNO", "AGE", "METRIC PARTS"])
        .right(&[2, 5, 6]);
    for r in &routes {
        t.row(vec![
            r.prefix.clone(),
            r.state.as_str().to_owned(),
            metric(r.metric),
            next_hop(&r.next_hop),
            short_key(&r.router_id),
            r.seqno.to_string(),
            duration(r.age_seconds),
            parts(&r.parts),
        ]);
    }
    t.print(out)?;
    Ok(())
}

/// A metric, `inf` for infinity (a retraction).
pub fn metric(m: u16) -> String {
    if m == u16::MAX { "inf".to_owned() } else { m.to_string() }
}

/// `link 1 (192.0.2.1:9651)`, or `local`.
pub fn next_hop(n: &NextHopInfo) -> String {
    match (n.link, &n.endpoint) {
        (Some(link), Some(endpoint)) => format!("link {link} ({endpoint})"),
        (Some(link), None) => format!("link {link}"),
        (None, _) => "local".to_owned(),
    }
}

/// `link 1 156 (10.0 ms, 0%, 1 Gbit/s, fiber) + advertised 156`.
pub fn parts(parts: &[MetricPart]) -> String {
    let part = |p: &MetricPart| {
        let mut details = Vec::new();
        if let Some(rtt) = p.rtt_ms {
            details.push(millis(rtt));
        }
        if let Some(loss) = p.loss {
            details.push(format!("{} loss", percent(loss)));
        }
        if let Some(bps) = p.bandwidth_bps {
            details.push(bits_per_second(bps));
        }
        if let Some(class) = &p.class {
            details.push(class.clone());
        }
        if details.is_empty() {
            format!("{} {}", p.name, p.cost)
        } else {
            format!("{} {} ({})", p.name, p.cost, details.join(", "))
        }
    };
    parts.iter().map(part).collect::<Vec<_>>().join(" + ")
}
