//! The [`Router`]: state, neighbours, timers and the outputs.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};

use mycelium_common::address::Subnet;
use mycelium_common::identity::PublicKey;
use mycelium_common::time::Timestamp;
use mycelium_common::wire::tlv::{ControlMessage, METRIC_INFINITY, RouteRequest, Update};

use super::config::RouterConfig;
use super::requests::PendingRequest;
use super::routes::{Advertised, Neighbour, PrefixState};
use super::source::SourceTable;
use super::table::{Destination, LinkId, RouteEntry, RouteInfo, RouteTable, RouterEvent, Transmit};

/// Counters, for tests and metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RouterStats {
    pub updates_received: u64,
    pub updates_unfeasible: u64,
    pub hijacks_ignored: u64,
    pub malformed_ignored: u64,
    pub updates_sent: u64,
    pub seqno_requests_sent: u64,
    pub seqno_requests_forwarded: u64,
    pub route_changes: u64,
}

/// The Babel-derived route engine of one node. See the [module
/// docs](super) for how to drive it.
#[derive(Debug)]
pub struct Router {
    pub(super) config: RouterConfig,
    pub(super) local_key: PublicKey,
    pub(super) local_prefix: Subnet,
    pub(super) seqno: u16,
    pub(super) neighbours: BTreeMap<LinkId, Neighbour>,
    /// Links that have been up at some point: when one comes back it is held.
    seen_links: BTreeSet<LinkId>,
    pub(super) prefixes: BTreeMap<Subnet, PrefixState>,
    pub(super) sources: SourceTable,
    pub(super) requests: BTreeMap<(Subnet, PublicKey), PendingRequest>,
    /// Router id -> the /64 it owns (a BLAKE3 hash per lookup otherwise).
    /// Only looked up, never iterated.
    owners: HashMap<PublicKey, Subnet>,
    transmits: VecDeque<Transmit>,
    events: VecDeque<RouterEvent>,
    table_dirty: bool,
    next_periodic: Timestamp,
    next_housekeeping: Timestamp,
    pub(super) stats: RouterStats,
}

/// Bound on the ownership cache; it is cleared when it grows past this.
const OWNER_CACHE_MAX: usize = 1 << 16;

impl Router {
    /// A router for the node `local_key`, which announces the /64 its
    /// address lies in.
    pub fn new(now: Timestamp, local_key: PublicKey, config: RouterConfig) -> Self {
        Router {
            local_prefix: local_key.address().subnet(),
            local_key,
            seqno: config.initial_seqno,
            neighbours: BTreeMap::new(),
            seen_links: BTreeSet::new(),
            prefixes: BTreeMap::new(),
            sources: SourceTable::default(),
            requests: BTreeMap::new(),
            owners: HashMap::new(),
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            table_dirty: false,
            next_periodic: now + config.update_interval,
            next_housekeeping: now + config.housekeeping_interval,
            stats: RouterStats::default(),
            config,
        }
    }

    /// The prefix this node originates.
    pub fn local_prefix(&self) -> Subnet {
        self.local_prefix
    }

    /// This node's router id.
    pub fn local_key(&self) -> PublicKey {
        self.local_key
    }

    /// The sequence number of the local route.
    pub fn seqno(&self) -> u16 {
        self.seqno
    }

    /// Counters since creation.
    pub fn stats(&self) -> RouterStats {
        self.stats
    }

    /// The settings in force.
    pub fn config(&self) -> &RouterConfig {
        &self.config
    }

    /// The neighbour on `link` went up, changed cost, or (with
    /// `cost == METRIC_INFINITY`) went down. `smoothed` is the link layer's
    /// slow-moving cost, used for hysteresis.
    pub fn handle_neighbour(&mut self, now: Timestamp, link: LinkId, neighbour: PublicKey, cost: u16, smoothed: u16) {
        if cost == METRIC_INFINITY {
            self.neighbour_down(now, link);
            return;
        }
        // Metrics must grow strictly along a path (a zero cost would make our
        // own advertisement equal our next hop's and its route unfeasible),
        // so costs are at least 1.
        let cost = cost.max(1);
        let smoothed = smoothed.clamp(1, METRIC_INFINITY - 1);
        match self.neighbours.get_mut(&link) {
            Some(nb) if nb.key == neighbour => {
                if nb.cost != cost || nb.smoothed != smoothed {
                    nb.cost = cost;
                    nb.smoothed = smoothed;
                    self.refresh_via(now, link);
                }
            }
            Some(_) => {
                self.neighbour_down(now, link);
                self.neighbour_up(now, link, neighbour, cost, smoothed);
            }
            None => self.neighbour_up(now, link, neighbour, cost, smoothed),
        }
    }

    fn neighbour_up(&mut self, now: Timestamp, link: LinkId, key: PublicKey, cost: u16, smoothed: u16) {
        let returning = !self.seen_links.insert(link);
        let held_until = if returning { now + self.config.neighbour_hold } else { now };
        self.neighbours.insert(link, Neighbour { key, cost, smoothed, held_until, released: !returning });
        //= https://www.rfc-editor.org/rfc/rfc8966#section-3.8.1
        //~ When a node receives a wildcard route request, it SHOULD send a
        //~ full route table dump.
        // A new neighbour knows nothing: give it the full table at once
        // rather than waiting for the next periodic update, and ask for its
        // own (what it sent before its side of the link was up to us here
        // was dropped).
        self.send_dump(now, Destination::Link(link));
        self.push_transmit(
            Destination::Link(link),
            ControlMessage::RouteRequest(RouteRequest { plen: 0, prefix: [0; 16] }),
        );
    }

    fn neighbour_down(&mut self, now: Timestamp, link: LinkId) {
        if self.neighbours.remove(&link).is_none() {
            return;
        }
        let mut affected = Vec::new();
        for (prefix, state) in &mut self.prefixes {
            if state.remove(link) || state.selected.is_some_and(|s| s.0 == link) {
                affected.push(*prefix);
            }
        }
        for prefix in affected {
            self.refresh(now, prefix);
        }
    }

    /// Re-runs selection for every prefix with a route through `link`.
    fn refresh_via(&mut self, now: Timestamp, link: LinkId) {
        let affected: Vec<Subnet> =
            self.prefixes.iter().filter(|(_, s)| s.route(link).is_some()).map(|(p, _)| *p).collect();
        for prefix in affected {
            self.refresh(now, prefix);
        }
    }

    /// A control message arrived on `from`. Messages for the link layer
    /// (hellos, IHUs, probes) and discovery (peer exchange) are ignored here.
    pub fn handle_message(&mut self, now: Timestamp, from: LinkId, msg: &ControlMessage) {
        if !self.neighbours.contains_key(&from) {
            return;
        }
        match msg {
            ControlMessage::Update(u) => self.on_update(now, from, u),
            ControlMessage::RouteRequest(r) => self.on_route_request(now, from, r),
            ControlMessage::SeqnoRequest(r) => self.on_seqno_request(now, from, r),
            ControlMessage::Hello(_)
            | ControlMessage::Ihu(_)
            | ControlMessage::Probe(_)
            | ControlMessage::ProbeReport(_)
            | ControlMessage::PeerExchange(_) => {}
        }
    }

    /// Runs whatever timers are due: periodic updates, route expiry, source
    /// garbage collection, request resends, the end of neighbour holds.
    pub fn handle_timeout(&mut self, now: Timestamp) {
        //= https://www.rfc-editor.org/rfc/rfc8966#section-3.7.1
        //~ Every node periodically sends full routing table dumps.
        if now >= self.next_periodic {
            self.send_dump(now, Destination::AllLinks);
            self.next_periodic = now + self.config.update_interval;
        }
        if now >= self.next_housekeeping {
            self.expire_routes(now);
            if let Some(cutoff) = now.as_nanos().checked_sub(self.config.source_gc.as_nanos() as u64) {
                self.sources.collect_garbage(Timestamp::from_nanos(cutoff));
            }
            self.next_housekeeping = now + self.config.housekeeping_interval;
        }
        let released: Vec<LinkId> = self
            .neighbours
            .iter_mut()
            .filter(|(_, nb)| !nb.released && !nb.is_held(now))
            .map(|(link, nb)| {
                nb.released = true;
                *link
            })
            .collect();
        for link in released {
            self.refresh_via(now, link);
        }
        self.run_requests(now);
    }

    //= https://www.rfc-editor.org/rfc/rfc8966#section-3.5.5
    //~ When a route's expiry timer triggers, the behaviour depends on whether
    //~ the route's metric is finite.
    fn expire_routes(&mut self, now: Timestamp) {
        let mut affected = Vec::new();
        for (prefix, state) in &mut self.prefixes {
            let before = state.routes.len();
            state.routes.retain(|r| r.expires > now);
            if state.routes.len() != before {
                affected.push(*prefix);
            }
        }
        for prefix in affected {
            self.refresh(now, prefix);
        }
    }

    /// The next instant [`handle_timeout`](Self::handle_timeout) has work.
    pub fn poll_timeout(&self) -> Timestamp {
        let mut t = self.next_periodic.min(self.next_housekeeping);
        for nb in self.neighbours.values() {
            if !nb.released {
                t = t.min(nb.held_until);
            }
        }
        for req in self.requests.values() {
            t = t.min(req.deadline(&self.config));
        }
        t
    }

    /// The next message to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// The next event (route changes, rejected hijacks).
    pub fn poll_event(&mut self) -> Option<RouterEvent> {
        self.events.pop_front()
    }

    /// A new route table, if the selected routes changed since the last one
    /// was taken. Built on demand, so polling rarely is cheap.
    pub fn poll_route_table(&mut self) -> Option<RouteTable> {
        if !self.table_dirty {
            return None;
        }
        self.table_dirty = false;
        Some(self.route_table())
    }

    /// The route table as it stands.
    pub fn route_table(&self) -> RouteTable {
        let mut entries = Vec::with_capacity(self.prefixes.len());
        for (prefix, state) in &self.prefixes {
            let Some((link, _)) = state.selected else { continue };
            let Some(selected) =
                state.route(link).and_then(|r| state.usable(r, prefix, &self.neighbours, &self.sources))
            else {
                continue;
            };
            let fallbacks = state.fallbacks(prefix, link, &self.neighbours, &self.sources);
            entries.push(RouteEntry { prefix: *prefix, selected, fallbacks });
        }
        RouteTable { entries }
    }

    /// The selected next hop towards exactly `prefix`.
    pub fn selected_next_hop(&self, prefix: &Subnet) -> Option<(LinkId, PublicKey)> {
        self.prefixes.get(prefix).and_then(|s| s.selected)
    }

    /// The selected route towards exactly `prefix`, with its metrics.
    pub fn selected_route(&self, prefix: &Subnet) -> Option<RouteInfo> {
        let state = self.prefixes.get(prefix)?;
        let (link, _) = state.selected?;
        state.route(link).and_then(|r| state.usable(r, prefix, &self.neighbours, &self.sources))
    }

    /// Every route heard for `prefix` through a neighbour that is up, with
    /// whether it is feasible now (for `mctl routes` and debugging).
    pub fn routes_for(&self, prefix: &Subnet) -> Vec<(RouteInfo, bool)> {
        let Some(state) = self.prefixes.get(prefix) else { return Vec::new() };
        state
            .routes
            .iter()
            .filter_map(|r| {
                let nb = self.neighbours.get(&r.link)?;
                let info = RouteInfo {
                    link: r.link,
                    neighbour: nb.key,
                    metric: super::routes::add_metric(r.adv_metric, nb.cost),
                    smoothed_metric: super::routes::add_metric(r.adv_metric, nb.smoothed),
                    seqno: r.seqno,
                    router_id: r.router_id,
                };
                Some((info, self.sources.is_feasible(prefix, &r.router_id, r.seqno, r.adv_metric)))
            })
            .collect()
    }

    /// This node's feasibility distance for `(prefix, router_id)`.
    pub fn feasibility_distance(&self, prefix: &Subnet, router_id: &PublicKey) -> Option<super::source::Distance> {
        self.sources.get(prefix, router_id)
    }

    /// How many prefixes have a selected route.
    pub fn selected_count(&self) -> usize {
        self.prefixes.values().filter(|s| s.selected.is_some()).count()
    }

    /// Number of routes stored (feasible or not) and of source entries.
    pub fn sizes(&self) -> (usize, usize) {
        (self.prefixes.values().map(|s| s.routes.len()).sum(), self.sources.len())
    }

    /// Re-runs route selection for `prefix` and sends what it implies: a
    /// triggered update on a significant change, a retraction and a seqno
    /// request when the prefix becomes unreachable.
    pub(super) fn refresh(&mut self, now: Timestamp, prefix: Subnet) {
        let Some(state) = self.prefixes.get_mut(&prefix) else { return };
        let new = state.select(&prefix, &self.neighbours, &self.sources, &self.config, now);
        let old = state.selected;
        let new_hop = new.map(|r| (r.link, r.neighbour));
        if old != new_hop {
            state.selected = new_hop;
            self.table_dirty = true;
            self.stats.route_changes += 1;
            self.events.push_back(RouterEvent::RouteChanged { prefix, from: old, to: new_hop });
        }
        let advertised = state.advertised;
        match (new, advertised) {
            (Some(r), adv) => {
                //= https://www.rfc-editor.org/rfc/rfc8966#section-3.7.2
                //~ A node SHOULD send triggered updates when there is a change in
                //~ the router-id for a given prefix
                let significant = match adv {
                    None => true,
                    Some(a) => {
                        a.router_id != r.router_id
                            || a.seqno != r.seqno
                            || a.metric == METRIC_INFINITY
                            || a.metric.abs_diff(r.metric) >= self.config.trigger_threshold(a.metric)
                    }
                };
                if significant {
                    self.send_update(now, Destination::AllLinks, prefix, r.router_id, r.seqno, r.metric);
                }
            }
            (None, Some(a)) if a.metric != METRIC_INFINITY => {
                //= https://www.rfc-editor.org/rfc/rfc8966#section-3.7.2
                //~ a node SHOULD send a triggered update when a route is retracted
                self.send_update(now, Destination::AllLinks, prefix, a.router_id, a.seqno, METRIC_INFINITY);
                //= https://www.rfc-editor.org/rfc/rfc8966#section-3.8.2.1
                //~ When a route is retracted or expires, a node SHOULD send a
                //~ seqno request
                self.request_seqno(now, prefix, a.router_id, Destination::AllLinks);
            }
            _ => {}
        }
        if self.prefixes.get(&prefix).is_some_and(|s| s.routes.is_empty() && s.selected.is_none()) {
            self.prefixes.remove(&prefix);
        }
    }

    /// Sends one update and records it in the source table.
    pub(super) fn send_update(
        &mut self,
        now: Timestamp,
        to: Destination,
        prefix: Subnet,
        router_id: PublicKey,
        seqno: u16,
        metric: u16,
    ) {
        let msg = ControlMessage::Update(Update {
            plen: prefix.len(),
            interval_cs: self.config.update_interval_cs(),
            seqno,
            metric,
            router_id,
            prefix: prefix.prefix(),
        });
        // The neighbour our route goes through hears it as a retraction.
        let poison = (router_id != self.local_key && metric != METRIC_INFINITY)
            .then(|| self.prefixes.get(&prefix).and_then(|s| s.selected).map(|(_, neighbour)| neighbour))
            .flatten();
        self.transmits.push_back(Transmit { to, msg, poison });
        self.stats.updates_sent += 1;
        if router_id != self.local_key {
            self.sources.record_advertised(now, prefix, router_id, seqno, metric);
        }
        if to == Destination::AllLinks
            && let Some(state) = self.prefixes.get_mut(&prefix)
        {
            state.advertised = Some(Advertised { router_id, seqno, metric });
        }
    }

    /// The local route and every selected route.
    pub(super) fn send_dump(&mut self, now: Timestamp, to: Destination) {
        self.send_update(now, to, self.local_prefix, self.local_key, self.seqno, 0);
        let selected: Vec<(Subnet, RouteInfo)> = self
            .prefixes
            .iter()
            .filter_map(|(p, s)| {
                let (link, _) = s.selected?;
                let r = s.route(link)?;
                s.usable(r, p, &self.neighbours, &self.sources).map(|info| (*p, info))
            })
            .collect();
        for (prefix, r) in selected {
            self.send_update(now, to, prefix, r.router_id, r.seqno, r.metric);
        }
    }

    /// Whether `router_id` may originate `prefix`: its address's /64 must
    /// cover it. (A gateway authorisation may later widen this.)
    pub(super) fn owns(&mut self, router_id: &PublicKey, prefix: &Subnet) -> bool {
        if self.owners.len() >= OWNER_CACHE_MAX {
            self.owners.clear();
        }
        let owned = *self.owners.entry(*router_id).or_insert_with(|| router_id.address().subnet());
        owned.covers(prefix)
    }

    pub(super) fn push_transmit(&mut self, to: Destination, msg: ControlMessage) {
        self.transmits.push_back(Transmit { to, msg, poison: None });
    }

    pub(super) fn push_event(&mut self, event: RouterEvent) {
        self.events.push_back(event);
    }
}
