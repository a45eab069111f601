//! One simulated node: the route engine plus one link measurement engine
//! ([`Link`]) per link, composed the way the control daemon composes them.
//! The node hands hellos, IHUs, probes and probe reports to the link they
//! came over and everything else to the router, turns link events into
//! [`Router::handle_neighbour`] calls, and drains both.
//!
//! Data traffic is emulated by counters only: a link with
//! `LinkProps::traffic_bps` reports growing byte counters to its `Link`
//! every 100 ms (which keeps it in the active, fast-hello mode), but no data
//! packets travel through the emulated link.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use mycelium_common::identity::PublicKey;
use mycelium_common::time::Timestamp;
use mycelium_common::wire::tlv::{ControlMessage, METRIC_INFINITY};
use mycelium_control::link::{Link, LinkConfig, LinkEvent};
use mycelium_control::routing::{Destination, LinkId, Router, RouterConfig, RouterEvent};

use super::link::message_size;

/// How often emulated traffic counters are reported.
const TRAFFIC_TICK: Duration = Duration::from_millis(100);

/// What one input produced: messages per link and router events.
#[derive(Debug, Default)]
pub struct Outputs {
    pub packets: BTreeMap<LinkId, Vec<ControlMessage>>,
    pub events: Vec<RouterEvent>,
}

#[derive(Debug)]
struct NodeLink {
    neighbour: PublicKey,
    link: Link,
    traffic_bps: Option<u64>,
    /// Data bytes sent and received on this link, as a dataplane counts.
    traffic_bytes: (u64, u64),
    next_traffic: Timestamp,
    /// Whether the link delivers (it is up and both nodes run): received
    /// data is counted only then.
    carrying: bool,
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
        SimNode {
            key,
            router: Router::new(now, key, config),
            links: BTreeMap::new(),
            up: true,
            engine_cpu: Duration::ZERO,
        }
    }

    /// Attaches a link to `neighbour`, measured by a [`Link`] with `config`.
    pub fn add_link(
        &mut self,
        now: Timestamp,
        id: LinkId,
        neighbour: PublicKey,
        config: LinkConfig,
        traffic_bps: Option<u64>,
    ) {
        let nl = NodeLink {
            neighbour,
            link: Link::new(now, config),
            traffic_bps,
            traffic_bytes: (0, 0),
            next_traffic: now,
            carrying: true,
        };
        self.links.insert(id, nl);
    }

    /// The measurement engine of one link.
    pub fn link(&self, id: LinkId) -> Option<&Link> {
        self.links.get(&id).map(|l| &l.link)
    }

    /// A packet (a batch of control messages) arrived on `id`.
    pub fn receive(&mut self, now: Timestamp, id: LinkId, msgs: &[ControlMessage], out: &mut Outputs) {
        let Some(nl) = self.links.get_mut(&id) else { return };
        let mut for_router = Vec::new();
        for msg in msgs {
            match msg {
                ControlMessage::Hello(h) => nl.link.handle_hello(now, h),
                ControlMessage::Ihu(i) => nl.link.handle_ihu(now, i),
                ControlMessage::Probe(p) => nl.link.handle_probe(now, p, message_size(msg)),
                ControlMessage::ProbeReport(r) => nl.link.handle_probe_report(now, r),
                ControlMessage::Update(_) | ControlMessage::RouteRequest(_) | ControlMessage::SeqnoRequest(_) => {
                    for_router.push(*msg)
                }
                ControlMessage::PeerExchange(_) => {}
            }
        }
        self.sync_link(now, id, out);
        let started = Instant::now();
        for msg in &for_router {
            self.router.handle_message(now, id, msg);
        }
        self.engine_cpu += started.elapsed();
        self.drain(out);
    }

    /// Whether link `id` delivers: data from the neighbour is counted only
    /// while it does (see `Link`'s data liveness).
    pub fn set_carrying(&mut self, id: LinkId, carrying: bool) {
        if let Some(nl) = self.links.get_mut(&id) {
            nl.carrying = carrying;
        }
    }

    /// Runs link and router timers that are due.
    pub fn timeout(&mut self, now: Timestamp, out: &mut Outputs) {
        let ids: Vec<LinkId> = self.links.keys().copied().collect();
        for id in ids {
            let Some(nl) = self.links.get_mut(&id) else { continue };
            if let Some(bps) = nl.traffic_bps
                && now >= nl.next_traffic
            {
                let bytes = bps / 8 * TRAFFIC_TICK.as_millis() as u64 / 1000;
                nl.traffic_bytes.0 += bytes;
                if nl.carrying {
                    nl.traffic_bytes.1 += bytes;
                }
                nl.link.handle_traffic(now, nl.traffic_bytes.0, nl.traffic_bytes.1);
                nl.next_traffic = now + TRAFFIC_TICK;
            }
            if nl.link.poll_timeout() <= now {
                nl.link.handle_timeout(now);
            }
            self.sync_link(now, id, out);
        }
        if self.router.poll_timeout() <= now {
            let started = Instant::now();
            self.router.handle_timeout(now);
            self.engine_cpu += started.elapsed();
        }
        self.drain(out);
    }

    /// Sends what the link wants sent and tells the router about link
    /// state and cost changes.
    fn sync_link(&mut self, now: Timestamp, id: LinkId, out: &mut Outputs) {
        let Some(nl) = self.links.get_mut(&id) else { return };
        while let Some(msg) = nl.link.poll_transmit(now) {
            out.packets.entry(id).or_default().push(msg);
        }
        let mut report = None;
        while let Some(event) = nl.link.poll_event() {
            match event {
                LinkEvent::Down => report = Some((METRIC_INFINITY, METRIC_INFINITY)),
                LinkEvent::CostChanged { cost, smoothed } => report = Some((cost, smoothed)),
                LinkEvent::Up | LinkEvent::Implausible { .. } => {}
            }
        }
        if let Some((cost, smoothed)) = report {
            let started = Instant::now();
            self.router.handle_neighbour(now, id, nl.neighbour, cost, smoothed);
            self.engine_cpu += started.elapsed();
        }
    }

    fn drain(&mut self, out: &mut Outputs) {
        // Only the router's own work is timed; fanning out to links is the
        // simulator's.
        let started = Instant::now();
        let transmits: Vec<_> = std::iter::from_fn(|| self.router.poll_transmit()).collect();
        out.events.extend(std::iter::from_fn(|| self.router.poll_event()));
        self.engine_cpu += started.elapsed();
        for t in transmits {
            match t.to {
                Destination::Link(id) => {
                    if let Some(nl) = self.links.get(&id) {
                        out.packets.entry(id).or_default().push(t.message_for(&nl.neighbour));
                    }
                }
                Destination::AllLinks => {
                    for (id, nl) in &self.links {
                        if nl.link.is_up() {
                            out.packets.entry(*id).or_default().push(t.message_for(&nl.neighbour));
                        }
                    }
                }
            }
        }
    }

    /// When this node next has timer work.
    pub fn next_wake(&self) -> Timestamp {
        let mut t = self.router.poll_timeout();
        for nl in self.links.values() {
            t = t.min(nl.link.poll_timeout());
            if nl.traffic_bps.is_some() {
                t = t.min(nl.next_traffic);
            }
        }
        t
    }

    /// The links of this node.
    pub fn link_ids(&self) -> impl Iterator<Item = LinkId> + '_ {
        self.links.keys().copied()
    }
}
