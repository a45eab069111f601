//! The node: peering, link measurement, routing and end-to-end sessions
//! composed into one sans-IO engine, the heart of myceliumd.
//!
//! [`NodeCore`] takes everything the outside world says (datagrams the
//! dataplane punted, the passage of time, the dataplane's epoch and traffic
//! counters, operator commands) and answers with [`Output`]s: datagrams to
//! send from the node's port, route snapshots and key tables to publish.
//!
//! How the parts are wired:
//! - the [`PeerManager`] authenticates links; an `Up` link gets a [`Link`]
//!   (measurement) whose cost drives the [`Router`]'s neighbour, and the
//!   link's control messages go to the `Link` (hello, IHU, probes), the
//!   router (updates, requests) or [`Discovery`] (peer exchange);
//! - the router's selected routes become the dataplane's route snapshot;
//! - a punted packet with no session makes the [`SessionManager`] run an
//!   end-to-end handshake with the route's router id, and its sessions
//!   become the dataplane's key table.
//!
//! Driving it: call a `handle_*`, then drain [`NodeCore::poll_output`] until
//! `None`; call [`NodeCore::handle_timeout`] at [`NodeCore::poll_timeout`].

#[cfg(test)]
mod multilink_tests;
mod snapshot;
mod status;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;

use mycelium_common::address::Subnet;
use mycelium_common::identity::{PublicKey, SecretKey};
use mycelium_common::keytable::KeyTable;
use mycelium_common::snapshot::RouteSnapshot;
use mycelium_common::time::Timestamp;
use mycelium_common::wire::tlv::{ControlMessage, METRIC_INFINITY};
use mycelium_common::wire::{PacketType, classify};
use tracing::{debug, info, warn};

use crate::daemon::punt::Punted;
use crate::discovery::beacon::Beacon;
use crate::discovery::{Discovery, DiscoveryConfig, Resolver, StaticPeer};
use crate::e2e::{E2eConfig, SessionManager};
use crate::link::{Link, LinkClass, LinkConfig, LinkEvent};
use crate::peer::{self, Entropy, PeerEvent, PeerManager, PeeringConfig};
use crate::routing::{Destination, LinkId, RouteTable, Router, RouterConfig, RouterEvent};

pub use status::NodeStatus;

/// What the node asks its I/O shell to do.
#[derive(Debug)]
pub enum Output {
    /// Send a datagram from the node's port.
    Datagram { to: SocketAddr, bytes: Vec<u8> },
    /// Publish a new route snapshot.
    Routes(Box<RouteSnapshot>),
    /// Publish a new key table.
    Keys(KeyTable),
}

/// Settings of the composed node.
#[derive(Debug, Clone, Default)]
pub struct NodeSettings {
    pub peering: PeeringConfig,
    pub discovery: DiscoveryConfig,
    pub router: RouterConfig,
    /// Settings of every link; a static peer's link takes its class from
    /// `static_classes`.
    pub link: LinkConfig,
    pub e2e: E2eConfig,
    /// The link class of each static peer, by its index in the list given
    /// to [`NodeCore::new`]; a missing or `None` entry keeps `link.class`.
    pub static_classes: Vec<Option<LinkClass>>,
}

/// One neighbour link that is up, and its measurement.
#[derive(Debug)]
struct NodeLink {
    peer_link: peer::LinkId,
    neighbour: PublicKey,
    endpoint: SocketAddr,
    link: Link,
    /// Data bytes the dataplane carried on this link, `(tx, rx)`.
    data: (u64, u64),
}

/// The composed node. See the module docs.
pub struct NodeCore {
    key: PublicKey,
    peers: PeerManager,
    discovery: Discovery,
    router: Router,
    sessions: SessionManager,
    links: BTreeMap<LinkId, NodeLink>,
    link_config: LinkConfig,
    static_classes: Vec<Option<LinkClass>>,
    entropy: Box<dyn Entropy>,
    resolver: Box<dyn Resolver + Send>,
    routes: RouteTable,
    routes_dirty: bool,
    route_generation: u64,
    key_generation: u64,
    route_changes: u64,
    outputs: VecDeque<Output>,
    started: Timestamp,
}

impl std::fmt::Debug for NodeCore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeCore").field("key", &self.key).field("links", &self.links.len()).finish()
    }
}

impl NodeCore {
    /// A node with identity `secret`, dialing `statics`.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        secret: SecretKey,
        settings: NodeSettings,
        statics: Vec<StaticPeer>,
        peer_entropy: Box<dyn Entropy>,
        entropy: Box<dyn Entropy>,
        resolver: Box<dyn Resolver + Send>,
        now: Timestamp,
        wall_ns: u64,
    ) -> Self {
        let key = secret.public_key();
        // Generations continue across daemon restarts: an adopted dataplane
        // caches what it built per generation, so a restarted daemon must
        // never reuse one. Microseconds of wall time at start exceed any
        // count of earlier publications.
        let generation_base = wall_ns / 1_000;
        let mut sessions = SessionManager::new(secret.clone(), settings.e2e);
        // The same holds for session ids (see `e2e::import`).
        sessions.set_session_id_base(generation_base);
        let mut node = NodeCore {
            key,
            peers: PeerManager::new(secret.clone(), settings.peering, peer_entropy, now, wall_ns),
            discovery: Discovery::new(settings.discovery, key, statics, now),
            router: Router::new(now, key, settings.router),
            sessions,
            links: BTreeMap::new(),
            link_config: settings.link,
            static_classes: settings.static_classes,
            entropy,
            resolver,
            routes: RouteTable::default(),
            routes_dirty: true,
            route_generation: generation_base,
            key_generation: generation_base,
            route_changes: 0,
            outputs: VecDeque::new(),
            started: now,
        };
        node.pump(now);
        node
    }

    /// This node's public key.
    pub fn key(&self) -> PublicKey {
        self.key
    }

    /// Our LAN beacon (the I/O shell multicasts it every
    /// [`BEACON_INTERVAL`](crate::discovery::beacon::BEACON_INTERVAL)).
    pub fn beacon(&self) -> Beacon {
        self.discovery.beacon()
    }

    /// A datagram the dataplane punted.
    pub fn handle_punt(&mut self, now: Timestamp, wall_ns: u64, punted: Punted) {
        match punted {
            Punted::Control { from, packet } => match classify(&packet) {
                Ok(PacketType::RoutedHandshake) => {
                    if let Err(e) = self.sessions.handle_routed_handshake(now, &packet, self.entropy.as_mut()) {
                        debug!(%from, "routed handshake refused: {e}");
                    }
                }
                Ok(PacketType::Beacon) => match Beacon::parse(&packet) {
                    Ok(beacon) => self.discovery.handle_beacon(now, from, &beacon, false, &mut self.peers),
                    Err(e) => debug!(%from, "bad beacon: {e}"),
                },
                _ => self.peers.handle_datagram(now, from, &packet),
            },
            Punted::NoSession { packet } => {
                if let Some(router_id) = self.route_for_inner(&packet).map(|r| r.selected.router_id) {
                    self.sessions.handle_no_session(now, wall_ns, router_id, self.entropy.as_mut());
                }
            }
            Punted::NoRoute { packet } => {
                debug!(len = packet.len(), "no route for a packet from the TUN");
            }
        }
        self.pump(now);
    }

    /// Dials the neighbours of this node's previous run (from the snapshot
    /// it published before a restart): see `Discovery::restore`.
    pub fn restore_links(&mut self, now: Timestamp, previous: &[(SocketAddr, PublicKey)]) {
        self.discovery.restore(now, previous, &mut self.peers);
        self.pump(now);
    }

    /// Takes over the end-to-end sessions a previous run left in the key
    /// table of the dataplane (of epoch `epoch`) this run adopted: see
    /// `e2e::import`. Returns how many.
    pub fn import_sessions(
        &mut self,
        now: Timestamp,
        epoch: u64,
        table: &mycelium_common::keytable::KeyTableView<'_>,
    ) -> usize {
        let adopted = self.sessions.import(now, epoch, table);
        self.pump(now);
        adopted
    }

    /// A LAN beacon heard on the link-local multicast group.
    pub fn handle_lan_beacon(&mut self, now: Timestamp, from: SocketAddr, beacon: &Beacon) {
        self.discovery.handle_beacon(now, from, beacon, true, &mut self.peers);
        self.pump(now);
    }

    /// The dataplane (re)started with a new epoch: sessions are rebuilt for
    /// it, and routes and keys republished.
    pub fn handle_epoch(&mut self, now: Timestamp, wall_ns: u64, epoch: u64) {
        self.sessions.handle_epoch(now, wall_ns, epoch, self.entropy.as_mut());
        self.routes_dirty = true;
        self.pump(now);
    }

    /// The dataplane's cumulative data bytes per link, `(link id, tx, rx)`
    /// (routed packets only: control messages are counted by the peering
    /// layer). Each link's measurement sees what it carried: its passive
    /// capacity, and whether it is busy enough for fast hellos.
    pub fn handle_link_traffic(&mut self, now: Timestamp, links: impl IntoIterator<Item = (u32, u64, u64)>) {
        for (id, tx_bytes, rx_bytes) in links {
            if let Some(nl) = self.links.get_mut(&LinkId(id)) {
                nl.data = (tx_bytes, rx_bytes);
                nl.link.handle_traffic(now, tx_bytes, rx_bytes);
            }
        }
        self.pump(now);
    }

    /// Dials a peer given as `udp://[KEY@]HOST:PORT` (an operator's request).
    pub fn add_peer(&mut self, now: Timestamp, url: &str) -> Result<(), String> {
        let peer: StaticPeer = url.parse().map_err(|e| format!("{url}: {e}"))?;
        let key = peer.key.ok_or_else(|| format!("{url}: name the peer's key (udp://KEY@HOST:PORT)"))?;
        let endpoint = peer.resolve(self.resolver.as_mut()).map_err(|e| format!("{url}: {e}"))?;
        self.peers.connect(now, endpoint, key).map_err(|e| format!("{url}: {e}"))?;
        self.pump(now);
        Ok(())
    }

    /// Drops the link at `endpoint` (an operator's request).
    pub fn remove_peer(&mut self, now: Timestamp, endpoint: SocketAddr) -> Result<(), String> {
        let link =
            self.peers.link_at(peer::canonical_endpoint(endpoint)).ok_or_else(|| format!("no peer at {endpoint}"))?;
        self.peers.disconnect(link);
        self.pump(now);
        Ok(())
    }

    /// Runs every timer that is due.
    pub fn handle_timeout(&mut self, now: Timestamp, wall_ns: u64) {
        self.peers.handle_timeout(now);
        self.discovery.handle_timeout(now, &mut self.peers, self.resolver.as_mut());
        for nl in self.links.values_mut() {
            if nl.link.poll_timeout() <= now {
                nl.link.handle_timeout(now);
            }
        }
        if self.router.poll_timeout() <= now {
            self.router.handle_timeout(now);
        }
        self.sessions.handle_timeout(now, wall_ns, self.entropy.as_mut());
        self.pump(now);
    }

    /// The earliest instant some timer is due.
    pub fn poll_timeout(&self) -> Timestamp {
        let mut t = self.router.poll_timeout().min(self.discovery.poll_timeout());
        if let Some(p) = self.peers.poll_timeout() {
            t = t.min(p);
        }
        if let Some(s) = self.sessions.poll_timeout() {
            t = t.min(s);
        }
        for nl in self.links.values() {
            t = t.min(nl.link.poll_timeout());
        }
        t
    }

    /// The next thing to do.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    /// Moves messages and events between the parts until all are quiet, then
    /// queues what changed for publishing.
    fn pump(&mut self, now: Timestamp) {
        for _ in 0..64 {
            let mut busy = false;
            while let Some(event) = self.peers.poll_event() {
                busy = true;
                self.on_peer_event(now, event);
            }
            let mut batches: BTreeMap<LinkId, Vec<ControlMessage>> = BTreeMap::new();
            for (id, nl) in &mut self.links {
                while let Some(msg) = nl.link.poll_transmit(now) {
                    batches.entry(*id).or_default().push(msg);
                }
                let mut report = None;
                while let Some(event) = nl.link.poll_event() {
                    match event {
                        LinkEvent::Down => {
                            let m = nl.link.metrics();
                            info!(
                                peer = %nl.neighbour.address(),
                                endpoint = %nl.endpoint,
                                last_hello = ?m.last_hello.map(|t| now.saturating_since(t)),
                                neighbour_interval = ?m.neighbour_hello_interval,
                                last_ihu = ?m.last_ihu.map(|t| now.saturating_since(t)),
                                "link measured down"
                            );
                            report = Some((METRIC_INFINITY, METRIC_INFINITY))
                        }
                        LinkEvent::CostChanged { cost, smoothed } => report = Some((cost, smoothed)),
                        LinkEvent::Up => info!(peer = %nl.neighbour.address(), "link measured up"),
                        LinkEvent::Implausible { measured, minimum } => {
                            warn!(peer = %nl.neighbour.address(), ?measured, ?minimum, "implausibly low RTT")
                        }
                    }
                }
                if let Some((cost, smoothed)) = report {
                    self.router.handle_neighbour(now, *id, nl.neighbour, cost, smoothed);
                }
            }
            while let Some(t) = self.router.poll_transmit() {
                match t.to {
                    Destination::Link(id) => {
                        if let Some(nl) = self.links.get(&id) {
                            batches.entry(id).or_default().push(t.message_for(&nl.neighbour));
                        }
                    }
                    Destination::AllLinks => {
                        for (id, nl) in &self.links {
                            if nl.link.is_up() {
                                batches.entry(*id).or_default().push(t.message_for(&nl.neighbour));
                            }
                        }
                    }
                }
            }
            for (id, msgs) in batches {
                busy = true;
                if let Some(nl) = self.links.get(&id)
                    && let Err(e) = self.peers.send_control(now, nl.peer_link, &msgs)
                {
                    debug!(link = %id, "control messages not sent: {e}");
                }
            }
            while let Some(event) = self.router.poll_event() {
                if let RouterEvent::RouteChanged { prefix, from, to } = event {
                    self.route_changes += 1;
                    info!(%prefix, from = ?from.map(|f| f.0), to = ?to.map(|t| t.0), "route changed");
                } else {
                    warn!(?event, "routing");
                }
            }
            if let Some(table) = self.router.poll_route_table() {
                self.routes = table;
                self.routes_dirty = true;
                self.sessions.handle_routes_changed(now);
            }
            while let Some(t) = self.sessions.poll_transmit() {
                busy = true;
                match self.next_hop_endpoint(&t.destination) {
                    Some(to) => {
                        self.outputs.push_back(Output::Datagram { to, bytes: t.packet });
                    }
                    None => debug!(peer = %t.destination.address(), "no route for an end-to-end handshake yet"),
                }
            }
            while let Some((to, bytes)) = self.peers.poll_transmit() {
                self.outputs.push_back(Output::Datagram { to, bytes });
            }
            while let Some((to, bytes)) = self.discovery.poll_transmit() {
                self.outputs.push_back(Output::Datagram { to, bytes });
            }
            if !busy {
                break;
            }
        }
        if self.routes_dirty {
            self.routes_dirty = false;
            self.route_generation += 1;
            match snapshot::build(self, now) {
                Ok(s) => self.outputs.push_back(Output::Routes(Box::new(s))),
                Err(e) => warn!("route snapshot not built: {e}"),
            }
        }
        if self.sessions.poll_key_table_changed() {
            self.key_generation += 1;
            self.outputs.push_back(Output::Keys(self.sessions.key_table(self.key_generation, now)));
        }
    }

    fn on_peer_event(&mut self, now: Timestamp, event: PeerEvent) {
        self.discovery.handle_event(now, &event, &mut self.peers, self.resolver.as_mut());
        match event {
            PeerEvent::Up { link, peer, endpoint } => {
                let Some(id) = route_link(link) else { return };
                let class = self
                    .discovery
                    .static_index(link, endpoint)
                    .and_then(|i| self.static_classes.get(i).cloned().flatten())
                    .unwrap_or_else(|| self.link_config.class.clone());
                info!(peer = %peer.address(), %endpoint, %class, "peer up");
                let config = LinkConfig { class, ..self.link_config.clone() };
                let nl =
                    NodeLink { peer_link: link, neighbour: peer, endpoint, link: Link::new(now, config), data: (0, 0) };
                self.links.insert(id, nl);
                self.routes_dirty = true;
            }
            PeerEvent::Down { link, peer, endpoint, reason } => {
                let Some(id) = route_link(link) else { return };
                info!(peer = %peer.address(), %endpoint, ?reason, "peer down");
                if self.links.remove(&id).is_some() {
                    self.router.handle_neighbour(now, id, peer, METRIC_INFINITY, METRIC_INFINITY);
                    self.routes_dirty = true;
                }
            }
            PeerEvent::Failed { peer, endpoint, attempts, .. } => {
                debug!(peer = %peer.address(), %endpoint, attempts, "dial failed");
            }
            PeerEvent::Rekeyed { link, .. } => {
                if let Some(nl) = route_link(link).and_then(|id| self.links.get_mut(&id)) {
                    nl.link.handle_new_keys(now);
                }
            }
            PeerEvent::Message { link, message } => {
                let Some(id) = route_link(link) else { return };
                let Some(nl) = self.links.get_mut(&id) else { return };
                match &message {
                    ControlMessage::Hello(h) => nl.link.handle_hello(now, h),
                    ControlMessage::Ihu(i) => nl.link.handle_ihu(now, i),
                    ControlMessage::Probe(p) => nl.link.handle_probe(now, p, message.buffer_len()),
                    ControlMessage::ProbeReport(r) => nl.link.handle_probe_report(now, r),
                    ControlMessage::Update(_) | ControlMessage::RouteRequest(_) | ControlMessage::SeqnoRequest(_) => {
                        self.router.handle_message(now, id, &message)
                    }
                    ControlMessage::PeerExchange(_) => {}
                }
            }
        }
    }

    /// The route entry for the destination of an inner IPv6 packet.
    fn route_for_inner(&self, packet: &[u8]) -> Option<&crate::routing::RouteEntry> {
        let dst: [u8; 16] = packet.get(24..40)?.try_into().ok()?;
        let prefix = Subnet::new(dst, 64).ok()?;
        self.routes.get(&prefix)
    }

    /// The underlay endpoint of the next hop towards `node`.
    fn next_hop_endpoint(&self, node: &PublicKey) -> Option<SocketAddr> {
        let entry = self.routes.get(&node.address().subnet())?;
        self.links.get(&entry.selected.link).map(|nl| nl.endpoint)
    }
}

/// The route engine's id for a peering link.
fn route_link(link: peer::LinkId) -> Option<LinkId> {
    u32::try_from(link.0).ok().filter(|&id| id != mycelium_common::snapshot::LOCAL).map(LinkId)
}
