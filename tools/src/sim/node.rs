//! One simulated node: the route engine plus one link monitor per link,
//! composed the way the control daemon will compose them. The node routes
//! hellos and IHUs to the link's monitor, everything else to the router,
//! feeds monitor cost changes to the router, and drains the router.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use mycelium_common::identity::PublicKey;
use mycelium_common::time::Timestamp;
use mycelium_common::wire::tlv::ControlMessage;
use mycelium_control::routing::{Destination, LinkId, Router, RouterConfig, RouterEvent};

use super::monitor::{LinkMonitor, MonitorConfig};

/// What one input produced: messages per link and router events.
#[derive(Debug, Default)]
pub struct Outputs {
    pub packets: BTreeMap<LinkId, Vec<ControlMessage>>,
    pub events: Vec<RouterEvent>,
}

#[derive(Debug)]
struct NodeLink {
    neighbour: PublicKey,
    monitor: LinkMonitor,
}

/// A node of the simulation.
#[derive(Debug)]
pub struct SimNode {
    pub key: PublicKey,
    pub router: Router,
    links: BTreeMap<LinkId, NodeLink>,
    pub up: bool,
    /// Wall-clock time spent inside the router (handle_* and poll_*).
    pub engine_cpu: Duration,
}

impl SimNode {
    pub fn new(now: Timestamp, key: PublicKey, config: RouterConfig) -> Self {
        SimNode { key, router: Router::new(now, key, config), links: BTreeMap::new(), up: true, engine_cpu: Duration::ZERO }
    }

    /// Attaches a link to `neighbour`, measured with `monitor`.
    pub fn add_link(&mut self, now: Timestamp, link: LinkId, neighbour: PublicKey, config: MonitorConfig, loss: f64, bandwidth_bps: Option<u64>) {
        self.links.insert(link, NodeLink { neighbour, monitor: LinkMonitor::new(now, config, loss, bandwidth_bps) });
    }

    /// A packet (a batch of control messages) arrived on `link`.
    pub fn receive(&mut self, now: Timestamp, link: LinkId, msgs: &[ControlMessage], out: &mut Outputs) {
        let Some(nl) = self.links.get_mut(&link) else { return };
        let mut replies = Vec::new();
        let mut for_router = Vec::new();
        for msg in msgs {
            match msg {
                ControlMessage::Hello(h) => nl.monitor.handle_hello(now, h, &mut replies),
                ControlMessage::Ihu(i) => nl.monitor.handle_ihu(now, i),
                ControlMessage::Probe(_) | ControlMessage::ProbeReport(_) => {}
                _ => for_router.push(*msg),
            }
        }
        if !replies.is_empty() {
            out.packets.entry(link).or_default().extend(replies);
        }
        self.sync_link(now, link);
        let started = Instant::now();
        for msg in &for_router {
            self.router.handle_message(now, link, msg);
        }
        self.engine_cpu += started.elapsed();
        self.drain(out);
    }

    /// Runs monitor and router timers that are due.
    pub fn timeout(&mut self, now: Timestamp, out: &mut Outputs) {
        let links: Vec<LinkId> = self.links.keys().copied().collect();
        for link in links {
            let Some(nl) = self.links.get_mut(&link) else { continue };
            if nl.monitor.next_timeout() <= now {
                let mut msgs = Vec::new();
                nl.monitor.handle_timeout(now, &mut msgs);
                if !msgs.is_empty() {
                    out.packets.entry(link).or_default().extend(msgs);
                }
                self.sync_link(now, link);
            }
        }
        if self.router.poll_timeout() <= now {
            let started = Instant::now();
            self.router.handle_timeout(now);
            self.engine_cpu += started.elapsed();
        }
        self.drain(out);
    }

    /// Tells the router about a change of the link's cost or state.
    fn sync_link(&mut self, now: Timestamp, link: LinkId) {
        let Some(nl) = self.links.get_mut(&link) else { return };
        if let Some((cost, smoothed)) = nl.monitor.poll_cost() {
            let started = Instant::now();
            self.router.handle_neighbour(now, link, nl.neighbour, cost, smoothed);
            self.engine_cpu += started.elapsed();
        }
    }

    fn drain(&mut self, out: &mut Outputs) {
        let started = Instant::now();
        while let Some(t) = self.router.poll_transmit() {
            match t.to {
                Destination::Link(link) => out.packets.entry(link).or_default().push(t.msg),
                Destination::AllLinks => {
                    for (link, nl) in &self.links {
                        if nl.monitor.is_up() {
                            out.packets.entry(*link).or_default().push(t.msg);
                        }
                    }
                }
            }
        }
        while let Some(e) = self.router.poll_event() {
            out.events.push(e);
        }
        self.engine_cpu += started.elapsed();
    }

    /// When this node next has timer work.
    pub fn next_wake(&self) -> Timestamp {
        self.links.values().map(|l| l.monitor.next_timeout()).fold(self.router.poll_timeout(), Timestamp::min)
    }

    /// The links of this node.
    pub fn link_ids(&self) -> impl Iterator<Item = LinkId> + '_ {
        self.links.keys().copied()
    }
}
