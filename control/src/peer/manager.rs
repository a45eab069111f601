//! [`PeerManager`]: every peer link of the node, keyed by endpoint and by
//! session index; the public API. Receiving is in [`super::receive`], timers
//! in [`super::timers`]; the protocol is described in the [module docs](super).

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;

use mycelium_common::crypto::kdf::Purpose;
use mycelium_common::handshake;
use mycelium_common::identity::{PublicKey, SecretKey};
use mycelium_common::time::Timestamp;
use mycelium_common::wire::tlv::ControlMessage;

use super::counters::{DropCounters, DropReason};
use super::entropy::Entropy;
use super::ratelimit::HandshakeLimiter;
use super::session::{CONTROL_OVERHEAD, PackError, pack};
use super::state::{Handshaking, Initiating, LinkState, Peer, PeerState, PeerStats};
use super::{DownReason, LinkId, PeerEvent, PeeringConfig, canonical_endpoint};

/// Why [`PeerManager::connect`] refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ConnectError {
    #[error("{endpoint} is already a peer with another key")]
    OtherKey { endpoint: SocketAddr },
    #[error("that is our own key")]
    OwnKey,
    #[error("peer limit ({max}) reached")]
    TooManyPeers { max: usize },
}

/// Why [`PeerManager::send_control`] sent nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    #[error("no such link")]
    UnknownLink,
    #[error("the link is not established")]
    NotEstablished,
    #[error(transparent)]
    Pack(#[from] PackError),
}

/// A peer as shown by `mctl peers`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerInfo {
    pub link: LinkId,
    pub endpoint: SocketAddr,
    pub key: PublicKey,
    pub state: LinkState,
    pub dial: bool,
    pub attempts: u32,
    /// When the current session was made (established links only).
    pub session_since: Option<Timestamp>,
    pub stats: PeerStats,
}

/// All peer links of this node. See the [module docs](super).
#[derive(Debug)]
pub struct PeerManager {
    pub(super) local: SecretKey,
    pub(super) local_public: PublicKey,
    pub(super) config: PeeringConfig,
    pub(super) entropy: Box<dyn Entropy>,
    /// Wall-clock nanoseconds at `mono_origin`, for handshake timestamps.
    unix_origin: u64,
    mono_origin: Timestamp,
    last_handshake_timestamp: u64,
    pub(super) peers: BTreeMap<LinkId, Peer>,
    pub(super) by_endpoint: BTreeMap<SocketAddr, LinkId>,
    pub(super) by_index: BTreeMap<u32, LinkId>,
    next_link: u64,
    pub(super) limiter: HandshakeLimiter,
    pub(super) drops: DropCounters,
    transmits: VecDeque<(SocketAddr, Vec<u8>)>,
    events: VecDeque<PeerEvent>,
}

impl PeerManager {
    /// A manager for the node holding `local`. `now` is monotonic time and
    /// `unix_nanos` the wall clock at that instant (handshake timestamps must
    /// keep increasing across restarts, which wall-clock time does).
    pub fn new(
        local: SecretKey,
        config: PeeringConfig,
        entropy: Box<dyn Entropy>,
        now: Timestamp,
        unix_nanos: u64,
    ) -> Self {
        let limiter = HandshakeLimiter::new(config.rate_limits, now);
        PeerManager {
            local_public: local.public_key(),
            local,
            config,
            entropy,
            unix_origin: unix_nanos,
            mono_origin: now,
            last_handshake_timestamp: 0,
            peers: BTreeMap::new(),
            by_endpoint: BTreeMap::new(),
            by_index: BTreeMap::new(),
            next_link: 0,
            limiter,
            drops: DropCounters::default(),
            transmits: VecDeque::new(),
            events: VecDeque::new(),
        }
    }

    pub fn local_public_key(&self) -> PublicKey {
        self.local_public
    }

    /// Dials `key` at `endpoint` now, and redials it with backoff whenever
    /// the link fails, until [`disconnect`](Self::disconnect). A peer that
    /// already dialed us from there is kept (and will be redialed).
    pub fn connect(&mut self, now: Timestamp, endpoint: SocketAddr, key: PublicKey) -> Result<LinkId, ConnectError> {
        let endpoint = canonical_endpoint(endpoint);
        if key == self.local_public {
            return Err(ConnectError::OwnKey);
        }
        if let Some(&link) = self.by_endpoint.get(&endpoint) {
            let peer = self.peers.get_mut(&link).expect("endpoint map points at a peer");
            if peer.key != key {
                return Err(ConnectError::OtherKey { endpoint });
            }
            peer.dial = true;
            return Ok(link);
        }
        if self.peers.len() >= self.config.max_peers {
            return Err(ConnectError::TooManyPeers { max: self.config.max_peers });
        }
        let link = self.insert_peer(endpoint, key, true);
        self.start_initiation(now, link);
        Ok(link)
    }

    /// Forgets a peer (reporting `Down` if its link was up).
    pub fn disconnect(&mut self, link: LinkId) {
        self.remove_peer(link, Some(DownReason::Disconnected));
    }

    /// Moves a peer to a new endpoint (a re-resolved DNS name). Refused when
    /// another peer is there.
    pub fn set_endpoint(&mut self, link: LinkId, endpoint: SocketAddr) -> bool {
        let endpoint = canonical_endpoint(endpoint);
        match self.by_endpoint.get(&endpoint) {
            Some(&other) => return other == link,
            None if !self.peers.contains_key(&link) => return false,
            None => {}
        }
        let peer = self.peers.get_mut(&link).expect("checked above");
        self.by_endpoint.remove(&peer.endpoint);
        peer.endpoint = endpoint;
        self.by_endpoint.insert(endpoint, link);
        true
    }

    /// Seals `messages` into as few CONTROL packets as fit and queues them.
    /// Returns the number of packets.
    pub fn send_control(
        &mut self,
        now: Timestamp,
        link: LinkId,
        messages: &[ControlMessage],
    ) -> Result<usize, SendError> {
        let max_body = self.config.max_datagram.saturating_sub(CONTROL_OVERHEAD);
        let peer = self.peers.get_mut(&link).ok_or(SendError::UnknownLink)?;
        let PeerState::Established(established) = &mut peer.state else {
            return Err(SendError::NotEstablished);
        };
        if now.saturating_since(established.current.established_at) >= self.config.reject_after_time {
            return Err(SendError::NotEstablished);
        }
        let bodies = pack(messages, max_body)?;
        let endpoint = peer.endpoint;
        for body in &bodies {
            let datagram = established.current.seal(body);
            peer.stats.tx_packets += 1;
            peer.stats.tx_bytes += datagram.len() as u64;
            self.transmits.push_back((endpoint, datagram));
        }
        established.last_sent = now;
        if established.current.sent() >= self.config.rekey_after_packets && established.rekey.is_none() {
            self.start_rekey(now, link);
        }
        Ok(bodies.len())
    }

    /// The next datagram to send.
    pub fn poll_transmit(&mut self) -> Option<(SocketAddr, Vec<u8>)> {
        self.transmits.pop_front()
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<PeerEvent> {
        self.events.pop_front()
    }

    /// Drops counted per reason since start.
    pub fn drops(&self) -> &DropCounters {
        &self.drops
    }

    /// The link at `endpoint`, if any.
    pub fn link_at(&self, endpoint: SocketAddr) -> Option<LinkId> {
        self.by_endpoint.get(&canonical_endpoint(endpoint)).copied()
    }

    /// Whether the manager still knows `link`.
    pub fn contains(&self, link: LinkId) -> bool {
        self.peers.contains_key(&link)
    }

    /// Whether `link` is established.
    pub fn is_up(&self, link: LinkId) -> bool {
        self.peers.get(&link).is_some_and(Peer::is_up)
    }

    /// Established links.
    pub fn up_count(&self) -> usize {
        self.peers.values().filter(|p| p.is_up()).count()
    }

    /// Every peer, by link id.
    pub fn peers(&self) -> impl Iterator<Item = PeerInfo> + '_ {
        self.peers.values().map(|p| PeerInfo {
            link: p.link,
            endpoint: p.endpoint,
            key: p.key,
            state: p.state.kind(),
            dial: p.dial,
            attempts: p.attempts,
            session_since: match &p.state {
                PeerState::Established(e) => Some(e.current.established_at),
                _ => None,
            },
            stats: p.stats,
        })
    }

    /// Checks that the endpoint and index maps match the peers exactly.
    #[cfg(test)]
    pub(super) fn check_invariants(&self) {
        let mut indexes = BTreeMap::new();
        for (link, peer) in &self.peers {
            assert_eq!(self.by_endpoint.get(&peer.endpoint), Some(link), "endpoint map of {link}");
            for index in peer.indexes() {
                assert!(indexes.insert(index, *link).is_none(), "index {index} used twice");
            }
        }
        assert_eq!(self.by_endpoint.len(), self.peers.len());
        assert_eq!(indexes, self.by_index);
    }

    // ---- internals shared with receive.rs and timers.rs ----

    pub(super) fn count(&mut self, reason: DropReason) {
        self.drops.count(reason);
    }

    pub(super) fn emit(&mut self, event: PeerEvent) {
        self.events.push_back(event);
    }

    pub(super) fn transmit(&mut self, to: SocketAddr, datagram: Vec<u8>) {
        self.transmits.push_back((to, datagram));
    }

    pub(super) fn insert_peer(&mut self, endpoint: SocketAddr, key: PublicKey, dial: bool) -> LinkId {
        let link = LinkId(self.next_link);
        self.next_link += 1;
        let state = PeerState::Idle { retry_at: Timestamp::ZERO };
        let stats = PeerStats::default();
        let peer = Peer { link, endpoint, key, dial, attempts: 0, last_timestamp: None, state, stats };
        self.peers.insert(link, peer);
        self.by_endpoint.insert(endpoint, link);
        link
    }

    /// Forgets a peer and its indexes; reports `Down` if it was up.
    pub(super) fn remove_peer(&mut self, link: LinkId, reason: Option<DownReason>) {
        let Some(peer) = self.peers.remove(&link) else { return };
        self.by_endpoint.remove(&peer.endpoint);
        for index in peer.indexes() {
            self.by_index.remove(&index);
        }
        if let (true, Some(reason)) = (peer.is_up(), reason) {
            self.emit(PeerEvent::Down { link, peer: peer.key, endpoint: peer.endpoint, reason });
        }
    }

    /// Runs `f` on a peer, then brings the index map in line with it.
    pub(super) fn with_peer<R>(&mut self, link: LinkId, f: impl FnOnce(&mut Peer) -> R) -> Option<R> {
        let peer = self.peers.get_mut(&link)?;
        let before = peer.indexes();
        let result = f(peer);
        let after = peer.indexes();
        for index in before.iter().filter(|i| !after.contains(i)) {
            self.by_index.remove(index);
        }
        for index in after {
            self.by_index.insert(index, link);
        }
        Some(result)
    }

    /// A fresh index no live session or handshake uses.
    pub(super) fn allocate_index(&mut self) -> u32 {
        loop {
            let index = self.entropy.next_u32();
            if !self.by_index.contains_key(&index) {
                return index;
            }
        }
    }

    /// A wall-clock handshake timestamp, strictly above every one before.
    fn handshake_timestamp(&mut self, now: Timestamp) -> u64 {
        let since = u64::try_from(now.saturating_since(self.mono_origin).as_nanos()).unwrap_or(u64::MAX);
        let t = self.unix_origin.saturating_add(since).max(self.last_handshake_timestamp + 1);
        self.last_handshake_timestamp = t;
        t
    }

    /// A fresh init to `peer` (every retransmission is a new handshake:
    /// a repeated init would be refused as a replay).
    pub(super) fn new_initiation(
        &mut self,
        now: Timestamp,
        key: PublicKey,
        started_at: Timestamp,
        sent: u32,
    ) -> Option<Initiating> {
        let ephemeral = self.entropy.secret_key();
        let index = self.allocate_index();
        let timestamp = self.handshake_timestamp(now);
        let (init, waiting) = handshake::initiate(&self.local, key, ephemeral, index, timestamp, Purpose::Link).ok()?;
        let wait = self.config.handshake_retransmit.saturating_mul(1u32 << sent.min(16));
        Some(Initiating { waiting, init, started_at, retransmit_at: now + wait, sent: sent + 1 })
    }

    /// Starts (or restarts) dialing a peer that has no session.
    pub(super) fn start_initiation(&mut self, now: Timestamp, link: LinkId) {
        let Some(key) = self.peers.get(&link).map(|p| p.key) else { return };
        let Some(initiating) = self.new_initiation(now, key, now, 0) else {
            // Only a low-order key can fail here: such a peer can never be dialed.
            self.count(DropReason::HandshakeInvalid);
            self.remove_peer(link, None);
            return;
        };
        let init = initiating.init;
        let endpoint = self
            .with_peer(link, |peer| {
                let responded = match std::mem::replace(&mut peer.state, PeerState::Idle { retry_at: now }) {
                    PeerState::Handshaking(h) => h.responded,
                    _ => None,
                };
                peer.state = PeerState::Handshaking(Box::new(Handshaking { initiating: Some(initiating), responded }));
                peer.endpoint
            })
            .expect("peer exists");
        self.transmit(endpoint, init.to_vec());
    }

    /// Starts a rekey handshake on an established link.
    pub(super) fn start_rekey(&mut self, now: Timestamp, link: LinkId) {
        let Some(key) = self.peers.get(&link).map(|p| p.key) else { return };
        let Some(initiating) = self.new_initiation(now, key, now, 0) else { return };
        let init = initiating.init;
        let endpoint = self.with_peer(link, |peer| {
            if let PeerState::Established(e) = &mut peer.state {
                e.rekey = Some(initiating);
            }
            peer.endpoint
        });
        if let Some(endpoint) = endpoint {
            self.transmit(endpoint, init.to_vec());
        }
    }

    /// Sends an empty CONTROL packet (confirms a new session, keeps NATs open).
    pub(super) fn send_keepalive(&mut self, now: Timestamp, link: LinkId) {
        // An empty batch packs into one empty body and cannot fail to pack.
        let _ = self.send_control(now, link, &[]);
    }
}
