//! The simulation: nodes, emulated links, and a priority queue of events on
//! simulated time. After every event the loop-freedom invariant is checked
//! for every route that the event changed.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use std::time::Duration;

use mycelium_common::address::Subnet;
use mycelium_common::identity::PublicKey;
use mycelium_common::time::Timestamp;
use mycelium_common::wire::tlv::ControlMessage;
use mycelium_control::link::LinkConfig;
use mycelium_control::routing::{LinkId, RouteTable, Router, RouterConfig, RouterEvent};

use super::link::{PACKET_OVERHEAD, SimLink, message_size};
use super::node::{Outputs, SimNode};
use super::rng::Rng;
use super::topology::Topology;

/// Messages per simulated packet (about 1400 bytes of updates).
const MESSAGES_PER_PACKET: usize = 24;

/// Settings of a simulation.
#[derive(Debug, Clone)]
pub struct SimConfig {
    pub seed: u64,
    pub router: RouterConfig,
    /// Link measurement settings; each link's class comes from its props.
    pub link: LinkConfig,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig { seed: 1, router: RouterConfig::default(), link: LinkConfig::default() }
    }
}

#[derive(Debug)]
enum Event {
    Deliver { link: usize, to: usize, msgs: Vec<ControlMessage> },
    Wake { node: usize, generation: u64 },
    LinkState { link: usize, up: bool },
}

#[derive(Debug)]
struct Scheduled {
    at: Timestamp,
    seq: u64,
    event: Event,
}

impl PartialEq for Scheduled {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}
impl Eq for Scheduled {}
impl PartialOrd for Scheduled {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Scheduled {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.at, self.seq).cmp(&(other.at, other.seq))
    }
}

/// A deterministic mesh simulation.
#[derive(Debug)]
pub struct Sim {
    now: Timestamp,
    start: Timestamp,
    queue: BinaryHeap<Reverse<Scheduled>>,
    seq: u64,
    nodes: Vec<SimNode>,
    links: Vec<SimLink>,
    owner: BTreeMap<Subnet, usize>,
    wake: Vec<(Timestamp, u64)>,
    route_changes: Vec<u32>,
    marks: Vec<u64>,
    stamp: u64,
    /// Events processed so far.
    pub events: u64,
    /// Loop checks (walks along selected next hops) performed.
    pub loop_checks: u64,
    /// When a selected route last changed anywhere.
    pub last_route_change: Timestamp,
    /// Updates ignored because of prefix ownership, over all nodes.
    pub hijacks_ignored: u64,
    /// Wakes whose node still had work due at the same instant (should
    /// stay 0; such a node is woken again 1 ms later).
    pub stuck_wakes: u64,
    /// Packets delivered, and of those, packets carrying probes.
    pub packets_delivered: u64,
    pub probe_packets: u64,
}

/// The key of node `i` in a simulation seeded with `seed`.
pub fn node_key(seed: u64, i: usize) -> PublicKey {
    let mut rng = Rng::new(seed.wrapping_mul(0x1000_0001).wrapping_add(i as u64));
    let mut bytes = [0u8; 32];
    for chunk in bytes.chunks_mut(8) {
        chunk.copy_from_slice(&rng.next_u64().to_le_bytes());
    }
    PublicKey::from_bytes(bytes)
}

impl Sim {
    /// Builds the nodes and links of `topology`; simulated time starts at 1 s.
    pub fn new(topology: Topology, config: SimConfig) -> Self {
        let start = Timestamp::from_nanos(1_000_000_000);
        let mut rng = Rng::new(config.seed);
        let n = topology.nodes;
        let mut nodes: Vec<SimNode> =
            (0..n).map(|i| SimNode::new(start, node_key(config.seed, i), config.router)).collect();
        let owner = nodes.iter().enumerate().map(|(i, node)| (node.router.local_prefix(), i)).collect();
        let mut sim = Sim {
            now: start,
            start,
            queue: BinaryHeap::new(),
            seq: 0,
            links: Vec::new(),
            owner,
            wake: vec![(Timestamp::ZERO, 0); n],
            route_changes: vec![0; n * n],
            marks: vec![0; n],
            stamp: 0,
            events: 0,
            loop_checks: 0,
            last_route_change: start,
            hijacks_ignored: 0,
            stuck_wakes: 0,
            packets_delivered: 0,
            probe_packets: 0,
            nodes: Vec::new(),
        };
        for (i, spec) in topology.links.into_iter().enumerate() {
            let id = LinkId(i as u32);
            let (ka, kb) = (nodes[spec.a].key, nodes[spec.b].key);
            let link_config = LinkConfig { class: spec.props.class.clone(), ..config.link.clone() };
            nodes[spec.a].add_link(start, id, kb, link_config.clone(), spec.props.traffic_bps);
            nodes[spec.b].add_link(start, id, ka, link_config, spec.props.traffic_bps);
            for &(at, up) in &spec.props.schedule {
                sim.push(start + at, Event::LinkState { link: i, up });
            }
            sim.links.push(SimLink::new(spec.a, spec.b, spec.props, rng.fork()));
        }
        sim.nodes = nodes;
        for i in 0..n {
            sim.reschedule(i, false);
        }
        sim
    }

    fn push(&mut self, at: Timestamp, event: Event) {
        self.seq += 1;
        self.queue.push(Reverse(Scheduled { at, seq: self.seq, event }));
    }

    fn reschedule(&mut self, node: usize, woken: bool) {
        if !self.nodes[node].up {
            return;
        }
        let mut at = self.nodes[node].next_wake().max(self.now);
        if woken && at <= self.now {
            // A timer that does not move forward: never spin in place.
            self.stuck_wakes += 1;
            at = self.now + Duration::from_millis(1);
        }
        if at != self.wake[node].0 {
            let generation = self.wake[node].1 + 1;
            self.wake[node] = (at, generation);
            self.push(at, Event::Wake { node, generation });
        }
    }

    /// Simulated time now.
    pub fn now(&self) -> Timestamp {
        self.now
    }

    /// Simulated time since the start.
    pub fn elapsed(&self) -> Duration {
        self.now - self.start
    }

    /// Runs every event up to `start + at`.
    pub fn run_until(&mut self, at: Duration) {
        let end = self.start + at;
        while self.queue.peek().is_some_and(|Reverse(s)| s.at <= end) {
            let Some(Reverse(s)) = self.queue.pop() else { break };
            self.now = s.at;
            self.dispatch(s.event);
        }
        self.now = self.now.max(end);
    }

    /// Runs for `d` more simulated time.
    pub fn run_for(&mut self, d: Duration) {
        let at = self.elapsed() + d;
        self.run_until(at);
    }

    /// Runs in steps of `step` until `done` holds or `limit` (simulated,
    /// from the start) is reached; returns the time it first held.
    pub fn run_until_condition(
        &mut self,
        step: Duration,
        limit: Duration,
        mut done: impl FnMut(&Sim) -> bool,
    ) -> Option<Duration> {
        loop {
            if done(self) {
                return Some(self.elapsed());
            }
            if self.elapsed() >= limit {
                return None;
            }
            self.run_for(step);
        }
    }

    fn dispatch(&mut self, event: Event) {
        self.events += 1;
        let mut out = Outputs::default();
        let mut woken = false;
        let node = match event {
            Event::Deliver { link, to, msgs } => {
                if !self.nodes[to].up {
                    return;
                }
                self.packets_delivered += 1;
                if matches!(msgs.first(), Some(ControlMessage::Probe(_))) {
                    self.probe_packets += 1;
                }
                self.nodes[to].receive(self.now, LinkId(link as u32), &msgs, &mut out);
                to
            }
            Event::Wake { node, generation } => {
                if self.wake[node].1 != generation || !self.nodes[node].up {
                    return;
                }
                self.wake[node].0 = Timestamp::ZERO;
                woken = true;
                self.nodes[node].timeout(self.now, &mut out);
                node
            }
            Event::LinkState { link, up } => {
                self.links[link].up = up;
                self.sync_carrying(link);
                return;
            }
        };
        self.send(node, out.packets);
        for e in out.events {
            match e {
                RouterEvent::RouteChanged { prefix, .. } => {
                    self.last_route_change = self.now;
                    if let Some(&dest) = self.owner.get(&prefix) {
                        self.route_changes[node * self.nodes.len() + dest] += 1;
                    }
                    self.check_loop_from(node, &prefix);
                }
                RouterEvent::HijackIgnored { .. } => self.hijacks_ignored += 1,
            }
        }
        self.reschedule(node, woken);
    }

    fn send(&mut self, from: usize, packets: BTreeMap<LinkId, Vec<ControlMessage>>) {
        for (link, msgs) in packets {
            let l = link.0 as usize;
            let to = self.links[l].other(from);
            // Probes travel one per packet (their spacing is the measurement);
            // everything else is packed like Babel packs TLVs.
            let (probes, rest): (Vec<ControlMessage>, Vec<ControlMessage>) =
                msgs.into_iter().partition(|m| matches!(m, ControlMessage::Probe(_)));
            let chunks = probes.chunks(1).chain(rest.chunks(MESSAGES_PER_PACKET));
            for chunk in chunks {
                let bytes = PACKET_OVERHEAD + chunk.iter().map(message_size).sum::<usize>();
                if let Some(at) = self.links[l].transmit(self.now, from, bytes) {
                    self.push(at, Event::Deliver { link: l, to, msgs: chunk.to_vec() });
                }
            }
        }
    }

    /// Follows selected next hops for `prefix` from `start`; panics if a
    /// node is visited twice (a forwarding loop). Stops at the prefix's
    /// owner, at a node without a route, and at a failed node (it forwards
    /// nothing).
    fn check_loop_from(&mut self, start: usize, prefix: &Subnet) {
        self.loop_checks += 1;
        self.stamp += 1;
        let owner = self.owner.get(prefix).copied();
        let mut cur = start;
        let mut path = vec![start];
        self.marks[cur] = self.stamp;
        while Some(cur) != owner && self.nodes[cur].up {
            let Some((link, _)) = self.nodes[cur].router.selected_next_hop(prefix) else { return };
            cur = self.links[link.0 as usize].other(cur);
            path.push(cur);
            assert!(
                self.marks[cur] != self.stamp,
                "routing loop towards {prefix} at {:?} (event {}): path {path:?}",
                self.elapsed(),
                self.events
            );
            self.marks[cur] = self.stamp;
        }
    }

    /// Checks loop freedom for every node and every destination.
    pub fn check_all_loops(&mut self) {
        let prefixes: Vec<Subnet> = self.owner.keys().copied().collect();
        for prefix in &prefixes {
            for node in 0..self.nodes.len() {
                self.check_loop_from(node, prefix);
            }
        }
    }

    /// Whether following next hops from `src` reaches `dst`'s node.
    pub fn reaches(&self, src: usize, dst: usize) -> bool {
        let prefix = self.nodes[dst].router.local_prefix();
        let mut cur = src;
        for _ in 0..self.nodes.len() {
            if cur == dst {
                return true;
            }
            if !self.nodes[cur].up {
                return false;
            }
            let Some((link, _)) = self.nodes[cur].router.selected_next_hop(&prefix) else { return false };
            cur = self.links[link.0 as usize].other(cur);
        }
        cur == dst
    }

    /// Whether every live node has a route to every other live node (a
    /// quick count first, then the actual forwarding paths).
    pub fn all_pairs_reachable(&self) -> bool {
        let live: Vec<usize> = (0..self.nodes.len()).filter(|&i| self.nodes[i].up).collect();
        let quick = live.iter().all(|&i| self.nodes[i].router.selected_count() >= live.len() - 1);
        quick && live.iter().all(|&s| live.iter().all(|&d| self.reaches(s, d)))
    }

    /// The path `src` -> `dst` as node indices, if it gets there.
    pub fn path(&self, src: usize, dst: usize) -> Option<Vec<usize>> {
        let prefix = self.nodes[dst].router.local_prefix();
        let mut path = vec![src];
        let mut cur = src;
        while cur != dst {
            if path.len() > self.nodes.len() {
                return None;
            }
            let (link, _) = self.nodes[cur].router.selected_next_hop(&prefix)?;
            cur = self.links[link.0 as usize].other(cur);
            path.push(cur);
        }
        Some(path)
    }

    /// The link `src` uses towards `dst`.
    pub fn next_link(&self, src: usize, dst: usize) -> Option<usize> {
        let prefix = self.nodes[dst].router.local_prefix();
        self.nodes[src].router.selected_next_hop(&prefix).map(|(l, _)| l.0 as usize)
    }

    /// How often `node`'s selected route to `dest` changed.
    pub fn route_changes(&self, node: usize, dest: usize) -> u32 {
        self.route_changes[node * self.nodes.len() + dest]
    }

    /// Forgets the route-change counts (to count from a later point).
    pub fn reset_route_changes(&mut self) {
        self.route_changes.iter_mut().for_each(|c| *c = 0);
    }

    /// Sets a link up or down now.
    pub fn set_link_up(&mut self, link: usize, up: bool) {
        self.links[link].up = up;
        self.sync_carrying(link);
    }

    /// Tells both ends whether `link` delivers data now.
    fn sync_carrying(&mut self, link: usize) {
        let (a, b) = (self.links[link].a, self.links[link].b);
        let carrying = self.links[link].up && self.nodes[a].up && self.nodes[b].up;
        for node in [a, b] {
            self.nodes[node].set_carrying(LinkId(link as u32), carrying);
        }
    }

    /// Stops a node: it neither sends nor receives from now on.
    pub fn fail_node(&mut self, node: usize) {
        self.nodes[node].up = false;
        for link in 0..self.links.len() {
            if self.links[link].a == node || self.links[link].b == node {
                self.sync_carrying(link);
            }
        }
    }

    pub fn nodes(&self) -> &[SimNode] {
        &self.nodes
    }

    pub fn node(&self, i: usize) -> &SimNode {
        &self.nodes[i]
    }

    pub fn links(&self) -> &[SimLink] {
        &self.links
    }

    /// Node `i`'s current route table.
    pub fn route_table(&self, i: usize) -> RouteTable {
        self.nodes[i].router.route_table()
    }

    /// Injects a message into `node` as if it came over `link`.
    pub fn inject(&mut self, node: usize, link: usize, msg: ControlMessage) {
        self.push(self.now, Event::Deliver { link, to: node, msgs: vec![msg] });
    }

    /// Takes the routers out, dropping the rest of the simulation (to
    /// measure what the engines alone hold).
    pub fn into_routers(self) -> Vec<Router> {
        self.nodes.into_iter().map(|n| n.router).collect()
    }
}
