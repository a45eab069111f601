//! [`Discovery`]: the decisions of whom to dial; see the [module docs](super).

use std::collections::VecDeque;
use std::net::SocketAddr;

use mycelium_common::identity::PublicKey;
use mycelium_common::time::Timestamp;
use mycelium_common::wire::tlv::{ControlMessage, PEER_EXCHANGE_MAX_ENTRIES, PeerEndpoint, PeerExchange};

use super::DiscoveryConfig;
use super::beacon::Beacon;
use super::candidates::{Candidates, Source, is_dialable};
use super::static_peer::{Host, Resolver, StaticPeer};
use crate::peer::{LinkId, LinkState, PeerEvent, PeerManager, backoff_delay};

/// How often undialed candidates are considered while below target.
const CANDIDATE_CHECK: std::time::Duration = std::time::Duration::from_secs(1);

/// How soon after a link comes up the next peer exchange goes out, so a new
/// neighbour learns our peers in seconds rather than at the next periodic
/// round; links that come up together share one round.
const EXCHANGE_AFTER_UP: std::time::Duration = std::time::Duration::from_secs(1);

/// A configured peer and where dialing it stands.
#[derive(Debug, Clone)]
struct StaticEntry {
    peer: StaticPeer,
    key: Option<PublicKey>,
    link: Option<LinkId>,
    /// Where the last key query went.
    queried: Option<SocketAddr>,
    /// The address it was last resolved to (canonical).
    resolved: Option<SocketAddr>,
    next_attempt: Timestamp,
    attempts: u32,
}

/// Chooses whom the [`PeerManager`] dials. See the [module docs](super).
#[derive(Debug)]
pub struct Discovery {
    config: DiscoveryConfig,
    local: PublicKey,
    statics: Vec<StaticEntry>,
    candidates: Candidates,
    next_exchange: Timestamp,
    /// When undialed candidates are next considered.
    next_candidate_check: Timestamp,
    transmits: VecDeque<(SocketAddr, Vec<u8>)>,
    /// DNS lookups that failed, for metrics.
    pub resolve_failures: u64,
}

impl Discovery {
    pub fn new(config: DiscoveryConfig, local: PublicKey, statics: Vec<StaticPeer>, now: Timestamp) -> Self {
        let statics = statics
            .into_iter()
            .map(|peer| StaticEntry {
                key: peer.key,
                peer,
                link: None,
                queried: None,
                resolved: None,
                next_attempt: now,
                attempts: 0,
            })
            .collect();
        Discovery {
            candidates: Candidates::new(config.max_candidates),
            next_exchange: now + config.exchange_interval,
            next_candidate_check: now,
            config,
            local,
            statics,
            transmits: VecDeque::new(),
            resolve_failures: 0,
        }
    }

    /// Our beacon (multicast it every [`super::beacon::BEACON_INTERVAL`]).
    pub fn beacon(&self) -> Beacon {
        Beacon { port: self.config.port, key: self.local, query: false }
    }

    /// Which configured static peer (its index in the list given to
    /// [`new`](Self::new)) the link `link` at `endpoint` belongs to: the
    /// one that dialed it, or else the one whose last resolved address it
    /// is (the peer may have dialed us first).
    pub fn static_index(&self, link: LinkId, endpoint: SocketAddr) -> Option<usize> {
        let endpoint = crate::peer::canonical_endpoint(endpoint);
        self.statics
            .iter()
            .position(|s| s.link == Some(link))
            .or_else(|| self.statics.iter().position(|s| s.resolved == Some(endpoint)))
    }

    /// The learnt candidates.
    pub fn candidates(&self) -> &Candidates {
        &self.candidates
    }

    /// The next key query or answer to send.
    pub fn poll_transmit(&mut self) -> Option<(SocketAddr, Vec<u8>)> {
        self.transmits.pop_front()
    }

    /// When [`handle_timeout`](Self::handle_timeout) next has work: a static
    /// peer to (re)try, a candidate check (once a second while below target
    /// with candidates to dial, at once after learning one), or the next exchange.
    pub fn poll_timeout(&self) -> Timestamp {
        let statics = self.statics.iter().filter(|s| s.link.is_none()).map(|s| s.next_attempt).min();
        let candidates = self.candidates.next_to_dial().map(|_| self.next_candidate_check);
        [Some(self.next_exchange), statics, candidates].into_iter().flatten().min().unwrap_or(self.next_exchange)
    }

    /// Dials static peers and candidates that are due, and sends the
    /// periodic peer exchange.
    pub fn handle_timeout(&mut self, now: Timestamp, peers: &mut PeerManager, resolver: &mut dyn Resolver) {
        for i in 0..self.statics.len() {
            self.dial_static(now, i, peers, resolver);
        }
        if now >= self.next_candidate_check {
            self.next_candidate_check = now + CANDIDATE_CHECK;
            self.dial_candidates(now, peers);
        }
        if now >= self.next_exchange {
            self.next_exchange = now + self.config.exchange_interval;
            self.send_exchange(now, peers);
        }
    }

    fn dial_static(&mut self, now: Timestamp, i: usize, peers: &mut PeerManager, resolver: &mut dyn Resolver) {
        let (initial, max) = (self.config.retry_initial, self.config.retry_max);
        let entry = &mut self.statics[i];
        if entry.link.is_some_and(|link| !peers.contains(link)) {
            entry.link = None;
        }
        if entry.link.is_some() || now < entry.next_attempt {
            return;
        }
        let backoff = backoff_delay(initial, max, entry.attempts, 0);
        let endpoint = match entry.peer.resolve(resolver) {
            Ok(endpoint) => {
                entry.resolved = Some(crate::peer::canonical_endpoint(endpoint));
                endpoint
            }
            Err(_) => {
                self.resolve_failures += 1;
                entry.attempts += 1;
                entry.next_attempt = now + backoff;
                return;
            }
        };
        match entry.key {
            Some(key) => match peers.connect(now, endpoint, key) {
                Ok(link) => {
                    entry.link = Some(link);
                    entry.attempts = 0;
                }
                Err(_) => {
                    entry.attempts += 1;
                    entry.next_attempt = now + backoff;
                }
            },
            None => {
                // Ask it for its key; the answer arrives as a beacon.
                let query = Beacon { port: self.config.port, key: self.local, query: true };
                self.transmits.push_back((endpoint, query.emit().to_vec()));
                entry.queried = Some(endpoint);
                entry.attempts += 1;
                entry.next_attempt = now + backoff;
            }
        }
    }

    /// Dials candidates while fewer than `target_peers` links are up or handshaking.
    fn dial_candidates(&mut self, now: Timestamp, peers: &mut PeerManager) {
        let mut active = peers.peers().filter(|p| p.state != LinkState::Idle).count();
        while active < self.config.target_peers {
            let Some(candidate) = self.candidates.next_to_dial() else { return };
            let (endpoint, key) = (candidate.endpoint, candidate.key);
            match peers.connect(now, endpoint, key) {
                Ok(link) => {
                    if let Some(c) = self.candidates.get_mut(&endpoint) {
                        c.link = Some(link);
                    }
                    active += 1;
                }
                Err(_) => self.candidates.forget(&endpoint),
            }
        }
    }

    /// Sends each established neighbour up to `exchange_entries` endpoints
    /// of the other peers we dialed.
    fn send_exchange(&mut self, now: Timestamp, peers: &mut PeerManager) {
        let known: Vec<PeerEndpoint> = peers
            .peers()
            .filter(|p| p.dial && p.state == LinkState::Established && is_dialable(&p.endpoint))
            .map(|p| PeerEndpoint { key: p.key, ip: p.endpoint.ip(), port: p.endpoint.port() })
            .collect();
        let neighbours: Vec<(LinkId, PublicKey)> =
            peers.peers().filter(|p| p.state == LinkState::Established).map(|p| (p.link, p.key)).collect();
        for (link, key) in neighbours {
            let entries: Vec<PeerEndpoint> =
                known.iter().filter(|e| e.key != key).take(self.config.exchange_entries).copied().collect();
            if entries.is_empty() {
                continue;
            }
            let messages: Vec<ControlMessage> = entries
                .chunks(PEER_EXCHANGE_MAX_ENTRIES)
                .filter_map(PeerExchange::new)
                .map(ControlMessage::PeerExchange)
                .collect();
            // A link that went down since the listing just misses this round.
            let _ = peers.send_control(now, link, &messages);
        }
    }

    /// Dials the neighbours of this node's previous run at once (a daemon
    /// restarted: they still hold links to it whose keys it lost, and a
    /// new handshake replaces those keys on their side within a round
    /// trip, instead of after their dead interval). Each becomes a
    /// candidate, forgotten like any other if its dials keep failing.
    pub fn restore(&mut self, now: Timestamp, previous: &[(SocketAddr, PublicKey)], peers: &mut PeerManager) {
        for &(endpoint, key) in previous {
            if key == self.local || peers.link_at(endpoint).is_some() {
                continue;
            }
            self.candidates.learn(now, endpoint, key, Source::Previous);
            match peers.connect(now, endpoint, key) {
                Ok(link) => {
                    if let Some(c) = self.candidates.get_mut(&endpoint) {
                        c.link = Some(link);
                    }
                }
                Err(_) => self.candidates.forget(&endpoint),
            }
        }
    }

    /// Learns from peer exchanges, brings the next exchange forward when a
    /// link comes up, and follows links that failed or went down: a DNS static peer is resolved again (the manager redials it at
    /// the new address), a candidate that keeps failing is dropped.
    pub fn handle_event(
        &mut self,
        now: Timestamp,
        event: &PeerEvent,
        peers: &mut PeerManager,
        resolver: &mut dyn Resolver,
    ) {
        match event {
            PeerEvent::Message { message: ControlMessage::PeerExchange(exchange), .. } => {
                for entry in exchange.entries() {
                    let endpoint = entry.socket_addr();
                    if entry.key != self.local && is_dialable(&endpoint) && peers.link_at(endpoint).is_none() {
                        self.candidates.learn(now, endpoint, entry.key, Source::Exchange);
                        self.next_candidate_check = self.next_candidate_check.min(now);
                    }
                }
            }
            PeerEvent::Up { .. } => {
                self.next_exchange = self.next_exchange.min(now + EXCHANGE_AFTER_UP);
            }
            PeerEvent::Failed { link, .. } | PeerEvent::Down { link, .. } => {
                let failed = matches!(event, PeerEvent::Failed { .. });
                if let Some(entry) = self.statics.iter_mut().find(|s| s.link == Some(*link)) {
                    if matches!(entry.peer.host, Host::Dns(_)) {
                        match entry.peer.resolve(resolver) {
                            Ok(endpoint) => {
                                peers.set_endpoint(*link, endpoint);
                                entry.resolved = Some(crate::peer::canonical_endpoint(endpoint));
                            }
                            Err(_) => self.resolve_failures += 1,
                        }
                    }
                } else if let Some(candidate) = self.candidates.by_link_mut(*link).filter(|_| failed) {
                    candidate.failures += 1;
                    if candidate.failures >= self.config.candidate_attempts {
                        let endpoint = candidate.endpoint;
                        self.candidates.forget(&endpoint);
                        peers.disconnect(*link);
                    }
                }
            }
            _ => {}
        }
    }

    /// Takes a beacon heard from `from`: on the LAN (`via_lan`), or unicast
    /// (a key query, or the answer to ours).
    pub fn handle_beacon(
        &mut self,
        now: Timestamp,
        from: SocketAddr,
        beacon: &Beacon,
        via_lan: bool,
        peers: &mut PeerManager,
    ) {
        if beacon.key == self.local {
            return;
        }
        if beacon.query && !via_lan {
            self.transmits.push_back((from, self.beacon().emit().to_vec()));
            return;
        }
        let mut endpoint = from;
        endpoint.set_port(beacon.port);
        if let Some(entry) = self.statics.iter_mut().find(|s| s.key.is_none() && s.queried == Some(endpoint)) {
            entry.key = Some(beacon.key);
            entry.next_attempt = now;
            entry.attempts = 0;
            return;
        }
        if via_lan && self.config.lan && peers.link_at(endpoint).is_none() {
            self.candidates.learn(now, endpoint, beacon.key, Source::Lan);
            self.next_candidate_check = self.next_candidate_check.min(now);
        }
    }
}
