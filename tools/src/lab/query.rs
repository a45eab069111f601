//! Asking a running lab: routes and next hops from each node's admin API
//! (the `mctl` client, from a thread inside the node's namespace), link
//! changes and counters through each emulator's control socket, pings, and
//! checked TCP streams.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use mycelium_control::api::types::{RouteInfo, RouteState};
use serde::Serialize;
use serde_json::{Value, json};

use super::stream::Flow;
use super::{Lab, LabError, LinkState};
use crate::emu::Update;
use crate::emu::settings::Which;
use crate::mctl::client::Client;
use crate::sim::Loss;

/// Where a node sends traffic for a destination.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Hop {
    /// The neighbour (node name).
    pub neighbour: String,
    /// The link, as an index into the lab's links (file order).
    pub link: usize,
    /// Its index among the links between the node and the neighbour.
    pub index: usize,
    pub class: String,
    pub metric: u16,
}

/// What `ping` saw.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct PingReport {
    pub sent: u32,
    pub received: u32,
    pub avg_rtt_ms: Option<f64>,
}

/// A control line for an emulator: the fields of `u` that are set.
pub fn update_line(u: &Update) -> String {
    let mut v = json!({});
    match u.direction {
        Which::Both => {}
        Which::AToB => v["direction"] = json!("a_to_b"),
        Which::BToA => v["direction"] = json!("b_to_a"),
    }
    let fields = [("delay_ms", u.delay_ms), ("jitter_ms", u.jitter_ms), ("loss", u.loss)];
    for (k, x) in fields {
        if let Some(x) = x {
            v[k] = json!(x);
        }
    }
    if let Some(g) = u.gilbert {
        v["gilbert"] = json!({ "p": g.p, "r": g.r, "h": g.h, "k": g.k });
    }
    if let Some(rate) = u.rate_bps {
        v["rate_bps"] = json!(rate);
    }
    if let Some(q) = u.queue_bytes {
        v["queue_bytes"] = json!(q);
    }
    if let Some(up) = u.up {
        v["up"] = json!(up);
    }
    if u.stats {
        v["stats"] = json!(true);
    }
    v.to_string()
}

impl Lab {
    /// Changes the `index`-th link between `a` and `b` live; returns the
    /// emulator's reply (settings now in force and counters).
    pub fn set_link(&self, a: &str, b: &str, index: usize, u: &Update) -> Result<Value, LabError> {
        let link = self.state.link(a, b, index)?;
        emulator_request(link, &update_line(u))
    }

    /// A link's settings and counters.
    pub fn link_stats(&self, link: &LinkState) -> Result<Value, LabError> {
        emulator_request(link, r#"{"stats":true}"#)
    }

    /// `node`'s routes (`state`: "selected", "fallback" or "all").
    pub fn routes_in(&self, node: &str, state: &str) -> Result<Vec<RouteInfo>, LabError> {
        let n = self.node(node)?;
        let api = n.api.clone();
        let state = state.to_owned();
        let reply = self
            .netns(node)?
            .spawn_checked(move || Client::new(&api).get::<Vec<RouteInfo>>("/api/v1/routes", &[("state", &state)]))
            .join();
        match reply {
            Ok(Ok(Ok(routes))) => Ok(routes),
            Ok(Ok(Err(e))) => Err(LabError::Api(node.to_owned(), format!("{e:#}"))),
            Ok(Err(e)) => Err(LabError::Api(node.to_owned(), format!("cannot enter {}: {e}", n.netns))),
            Err(_) => Err(LabError::Api(node.to_owned(), "the API client thread panicked".into())),
        }
    }

    /// `node`'s selected routes.
    pub fn routes(&self, node: &str) -> Result<Vec<RouteInfo>, LabError> {
        self.routes_in(node, "selected")
    }

    /// Where `node` sends traffic for `dest` now, `None` without a route.
    pub fn next_hop(&self, node: &str, dest: &str) -> Result<Option<Hop>, LabError> {
        let subnet = self.node(dest)?.subnet.clone();
        let routes = self.routes(node)?;
        let route =
            routes.iter().find(|r| r.prefix == subnet && r.state == RouteState::Selected && r.metric != u16::MAX);
        Ok(route.and_then(|r| self.hop(node, r)))
    }

    /// The neighbour and link of a route of `node`, from the endpoint of
    /// its next hop (the emulator address on the node's side of a link).
    pub fn hop(&self, node: &str, r: &RouteInfo) -> Option<Hop> {
        let endpoint = r.next_hop.endpoint.as_deref()?;
        self.state.links.iter().enumerate().find_map(|(i, l)| {
            let neighbour = if l.a == node && l.emu_a == endpoint {
                &l.b
            } else if l.b == node && l.emu_b == endpoint {
                &l.a
            } else {
                return None;
            };
            Some(Hop {
                neighbour: neighbour.clone(),
                link: i,
                index: l.index,
                class: l.class.clone(),
                metric: r.metric,
            })
        })
    }

    /// The node whose /64 is `prefix`.
    pub fn node_of_prefix(&self, prefix: &str) -> Option<&str> {
        self.state.nodes.iter().find(|n| n.subnet == prefix).map(|n| n.name.as_str())
    }

    /// Pings `to`'s overlay address `count` times from `from` (0.2 s apart, 1 s timeout).
    pub fn ping(&self, from: &str, to: &str, count: u32) -> Result<PingReport, LabError> {
        let address = self.node(to)?.address.clone();
        let n = count.to_string();
        let out = self.exec(from, &["ping", "-6", "-n", "-q", "-c", &n, "-i", "0.2", "-W", "1", &address])?;
        let text = String::from_utf8_lossy(&out.stdout);
        Ok(parse_ping(&text, count))
    }

    /// Pings until `to` answers (the first packets start the end-to-end
    /// handshake), at most `within`; returns how long it took.
    pub fn ping_until_reachable(&self, from: &str, to: &str, within: Duration) -> Result<Duration, LabError> {
        let start = Instant::now();
        loop {
            if super::signals::interrupted() {
                return Err(LabError::Interrupted);
            }
            if self.ping(from, to, 3)?.received > 0 {
                return Ok(start.elapsed());
            }
            if start.elapsed() > within {
                return Err(LabError::Check(format!("{to} not reachable from {from} within {within:?}")));
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Starts a checked TCP stream from `from` to a listener on `to`'s
    /// overlay address, port `port`, at most `rate` bytes a second.
    pub fn stream(&self, from: &str, to: &str, port: u16, rate: u64) -> Result<Flow, LabError> {
        let addr: SocketAddr = format!("[{}]:{port}", self.node(to)?.address)
            .parse()
            .map_err(|e| LabError::Check(format!("address of {to}: {e}")))?;
        Flow::try_start(&self.netns(from)?, &self.netns(to)?, addr, rate)
            .map_err(|e| LabError::Check(format!("stream {from} -> {to}: {e}")))
    }
}

fn emulator_request(link: &LinkState, line: &str) -> Result<Value, LabError> {
    let name = format!("{}-{}#{}", link.a, link.b, link.index);
    let reply = crate::emu::control::request(&link.control, line)
        .map_err(|e| LabError::Emulator(name.clone(), format!("{}: {e}", link.control.display())))?;
    if reply["ok"] != json!(true) {
        return Err(LabError::Emulator(name, reply["error"].as_str().unwrap_or("refused").to_owned()));
    }
    Ok(reply)
}

/// Reads `ping -q`'s summary.
pub fn parse_ping(text: &str, sent: u32) -> PingReport {
    let received = text
        .lines()
        .find(|l| l.contains("packets transmitted"))
        .and_then(|l| l.split(',').nth(1))
        .and_then(|s| s.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    let avg_rtt_ms = text
        .lines()
        .find(|l| l.starts_with("rtt") || l.starts_with("round-trip"))
        .and_then(|l| l.split('=').nth(1))
        .and_then(|v| v.trim().split('/').nth(1))
        .and_then(|v| v.parse().ok());
    PingReport { sent, received, avg_rtt_ms }
}

/// A human description of a loss model.
pub fn loss_text(loss: &Loss) -> String {
    match loss {
        Loss::None => "no loss".into(),
        Loss::Random(p) => format!("{:.1}% loss", p * 100.0),
        Loss::GilbertElliott { p, r, .. } => format!("bursty loss (p {p}, r {r})"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ping_summary_gives_the_answers_and_the_mean_round_trip() {
        let text = "--- 400::1 ping statistics ---\n3 packets transmitted, 2 received, 33.3333% packet loss, time 402ms\nrtt min/avg/max/mdev = 10.100/12.250/14.400/2.150 ms\n";
        assert_eq!(parse_ping(text, 3), PingReport { sent: 3, received: 2, avg_rtt_ms: Some(12.25) });
        assert_eq!(parse_ping("", 3), PingReport { sent: 3, received: 0, avg_rtt_ms: None });
    }

    #[test]
    fn a_control_line_names_only_the_fields_set() {
        let u = Update { delay_ms: Some(80.0), up: Some(false), rate_bps: Some(None), ..Update::default() };
        let back = Update::parse(&update_line(&u)).unwrap();
        assert_eq!(back, u);
        let u =
            Update { direction: Which::BToA, loss: Some(0.02), rate_bps: Some(Some(5_000_000)), ..Update::default() };
        assert_eq!(Update::parse(&update_line(&u)).unwrap(), u);
        assert_eq!(update_line(&Update::default()), "{}");
    }
}
