//! End-to-end sessions: the handshakes that give the dataplane its session
//! keys, sans-IO.
//!
//! When the dataplane punts a packet whose destination has a route but no
//! session, the daemon calls [`SessionManager::handle_no_session`] with the
//! destination node's public key (the route's router id). The manager sends
//! a `HandshakeInit` to that node inside a ROUTED_HANDSHAKE packet (routed
//! through the mesh like data, readable by the destination only as far as
//! the handshake allows), retries with backoff, and installs the session when
//! the response arrives. The other side answers in
//! [`SessionManager::handle_routed_handshake`].
//!
//! Sessions are rekeyed before they age out ([`E2eConfig::rekey_after`]); the
//! previous receive key stays installed until it expires, so packets sealed
//! with it in flight still open. When the dataplane restarts (a new epoch),
//! every session is dropped and re-established: the new dataplane's counters
//! start at zero, so old keys must never be used again.
//!
//! Crossed handshakes: when both nodes start a handshake at once (each had
//! a packet for the other), each responds to the other's init and completes
//! its own, so each holds both sessions, installed in opposite orders. Were
//! the latest one simply made current, each side would send with a
//! different session, and once the grace period dropped the older receive
//! keys neither could open what the other sends (nothing punts a packet
//! that arrives with an unknown key id) until the next rekey. So of two
//! sessions started by different sides and completed within
//! [`E2eConfig::crossing_window`], both sides make current the one started
//! by the node with the smaller public key; the other stays a receive key
//! for the grace period.
//!
//! Forward secrecy: each handshake uses fresh ephemeral keys on both sides
//! (see `mycelium_common::handshake`), and session keys live only in the
//! daemon's memory and the dataplane's 0600 shared-memory key table.
//!
//! Driving it: after any `handle_*`, drain [`SessionManager::poll_transmit`]
//! (packets to inject towards the next hop of their destination) and, when
//! [`SessionManager::poll_key_table_changed`] says so, publish
//! [`SessionManager::key_table`]. Call [`SessionManager::handle_timeout`] at
//! [`SessionManager::poll_timeout`].

mod import;
mod session;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use mycelium_common::crypto::kdf::Purpose;
use mycelium_common::handshake::{self, AwaitingResponse, Established};
use mycelium_common::identity::{PublicKey, SecretKey};
use mycelium_common::keytable::KeyTable;
use mycelium_common::time::Timestamp;
use mycelium_common::wire::{
    DEFAULT_HOP_LIMIT, HANDSHAKE_INIT_LEN, PacketType, ROUTED_HEADER_LEN, RoutedKind, RoutedPacket, RoutedRepr,
};
use tracing::{debug, info};

pub use session::Session;

use crate::peer::Entropy;

/// Timers and limits of end-to-end sessions.
#[derive(Debug, Clone)]
pub struct E2eConfig {
    /// Start a new handshake when the current session is this old.
    pub rekey_after: Duration,
    /// Stop using a session this long after it was made (rekeying failed).
    pub reject_after: Duration,
    /// How long an older receive key keeps working after a rekey.
    pub previous_grace: Duration,
    /// First handshake retransmission delay; doubles up to `retry_max`.
    pub retry_initial: Duration,
    pub retry_max: Duration,
    /// Give up on a handshake after this long without a response.
    pub handshake_timeout: Duration,
    /// Two sessions with one peer, one started by each side, completed
    /// within this of each other crossed: see [`SessionManager`]'s docs on
    /// crossed handshakes.
    pub crossing_window: Duration,
    /// Packets each sending shard may seal per session (well below the
    /// nonce and replay-window limits).
    pub packet_limit: u64,
}

impl Default for E2eConfig {
    fn default() -> Self {
        E2eConfig {
            rekey_after: Duration::from_secs(120),
            reject_after: Duration::from_secs(180),
            previous_grace: Duration::from_secs(30),
            retry_initial: Duration::from_millis(500),
            retry_max: Duration::from_secs(8),
            handshake_timeout: Duration::from_secs(60),
            crossing_window: Duration::from_secs(5),
            packet_limit: 1 << 34,
        }
    }
}

/// A routed handshake packet to inject, and the overlay destination whose
/// next hop it goes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    pub destination: PublicKey,
    pub packet: Vec<u8>,
}

/// Why a routed handshake was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum E2eError {
    #[error("not a routed handshake for this node: {0}")]
    Wire(#[from] mycelium_common::wire::WireError),
    #[error(transparent)]
    Handshake(#[from] handshake::HandshakeError),
    #[error("the initiator's key does not own the packet's source address")]
    SourceMismatch,
    #[error("replayed or stale handshake init")]
    StaleInit,
    #[error("response for no handshake in progress")]
    UnexpectedResponse,
}

struct Pending {
    state: AwaitingResponse,
    started: Timestamp,
    next_retry: Timestamp,
    retry: Duration,
}

#[derive(Default)]
struct Peer {
    current: Option<Session>,
    previous: Option<Session>,
    pending: Option<Pending>,
    last_init_timestamp: u64,
}

/// All end-to-end sessions of one node. See the module docs.
pub struct SessionManager {
    local: SecretKey,
    local_key: PublicKey,
    config: E2eConfig,
    epoch: u64,
    peers: BTreeMap<PublicKey, Peer>,
    /// Our receive indexes, to the peer they belong to.
    indexes: BTreeMap<u32, PublicKey>,
    outbox: VecDeque<Transmit>,
    next_session_id: u64,
    changed: bool,
}

impl std::fmt::Debug for SessionManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionManager").field("peers", &self.peers.len()).field("epoch", &self.epoch).finish()
    }
}

impl SessionManager {
    pub fn new(local: SecretKey, config: E2eConfig) -> Self {
        let local_key = local.public_key();
        SessionManager {
            local,
            local_key,
            config,
            epoch: 0,
            peers: BTreeMap::new(),
            indexes: BTreeMap::new(),
            outbox: VecDeque::new(),
            next_session_id: 1,
            changed: false,
        }
    }

    /// The dataplane's epoch changed (it restarted): every session is
    /// dropped, and a fresh handshake starts with every peer we had one with.
    pub fn handle_epoch(&mut self, now: Timestamp, wall_ns: u64, epoch: u64, rng: &mut dyn Entropy) {
        if epoch == self.epoch {
            return;
        }
        info!(epoch, "dataplane epoch changed: re-establishing every end-to-end session");
        self.epoch = epoch;
        let peers: Vec<PublicKey> = self.peers.keys().copied().collect();
        self.peers.clear();
        self.indexes.clear();
        self.changed = true;
        for peer in peers {
            self.handle_no_session(now, wall_ns, peer, rng);
        }
    }

    /// The dataplane has a packet for `peer` and no usable session: start a
    /// handshake unless one is in flight.
    pub fn handle_no_session(&mut self, now: Timestamp, wall_ns: u64, peer: PublicKey, rng: &mut dyn Entropy) {
        if peer == self.local_key {
            return;
        }
        let usable = self.peers.get(&peer).is_some_and(|p| {
            p.pending.is_some() || p.current.as_ref().is_some_and(|s| !s.needs_rekey(now, &self.config))
        });
        if !usable {
            self.initiate(now, wall_ns, peer, rng, now, self.config.retry_initial);
        }
    }

    /// Sends a fresh init to `peer`. Every attempt, retries included, is a
    /// new handshake (new ephemeral key, index and timestamp): a responder
    /// refuses an init it has seen, so resending the same bytes after a lost
    /// response could never succeed. `started` is when the first attempt
    /// was made (for the handshake timeout), `retry` the delay to the next.
    fn initiate(
        &mut self,
        now: Timestamp,
        wall_ns: u64,
        peer: PublicKey,
        rng: &mut dyn Entropy,
        started: Timestamp,
        retry: Duration,
    ) {
        let index = self.fresh_index(rng);
        let ephemeral = rng.secret_key();
        let Ok((init, state)) = handshake::initiate(&self.local, peer, ephemeral, index, wall_ns, Purpose::EndToEnd)
        else {
            return; // A low-order peer key: no session is possible.
        };
        let packet = routed(&self.local_key, &peer, &init);
        self.indexes.insert(index, peer);
        let entry = self.peers.entry(peer).or_default();
        if let Some(old) = entry.pending.take() {
            self.indexes.remove(&old.state.local_index());
        }
        debug!(peer = %peer.address(), "starting end-to-end handshake");
        entry.pending = Some(Pending { state, started, next_retry: now + retry, retry });
        self.outbox.push_back(Transmit { destination: peer, packet });
    }

    fn fresh_index(&mut self, rng: &mut dyn Entropy) -> u32 {
        loop {
            let index = rng.next_u32();
            if index != 0 && !self.indexes.contains_key(&index) {
                return index;
            }
        }
    }

    /// A ROUTED_HANDSHAKE packet addressed to us (punted by the dataplane).
    pub fn handle_routed_handshake(
        &mut self,
        now: Timestamp,
        packet: &[u8],
        rng: &mut dyn Entropy,
    ) -> Result<(), E2eError> {
        let routed = RoutedPacket::new_checked(packet)?;
        if routed.kind() != RoutedKind::Handshake {
            return Err(mycelium_common::wire::WireError::WrongType.into());
        }
        let source = routed.source();
        let payload = routed.payload();
        match mycelium_common::wire::classify(payload)? {
            PacketType::HandshakeInit => self.respond(now, source, payload, rng),
            PacketType::HandshakeResponse => self.complete(now, source, payload),
            _ => Err(mycelium_common::wire::WireError::WrongType.into()),
        }
    }

    fn respond(
        &mut self,
        now: Timestamp,
        source: [u8; 16],
        init: &[u8],
        rng: &mut dyn Entropy,
    ) -> Result<(), E2eError> {
        let index = self.fresh_index(rng);
        let mut secret = [0u8; 32];
        rng.fill(&mut secret);
        let accepted = handshake::respond(&self.local, init, SecretKey::from_bytes(secret), index, Purpose::EndToEnd)?;
        let peer = accepted.session.peer;
        if peer.address().octets() != source {
            return Err(E2eError::SourceMismatch);
        }
        let entry = self.peers.entry(peer).or_default();
        if accepted.timestamp <= entry.last_init_timestamp {
            return Err(E2eError::StaleInit);
        }
        entry.last_init_timestamp = accepted.timestamp;
        let packet = routed(&self.local_key, &peer, &accepted.response);
        self.outbox.push_back(Transmit { destination: peer, packet });
        self.install(now, accepted.session);
        Ok(())
    }

    fn complete(&mut self, now: Timestamp, source: [u8; 16], response: &[u8]) -> Result<(), E2eError> {
        let view = mycelium_common::wire::HandshakeResponse::new_checked(response)?;
        let peer = *self.indexes.get(&view.receiver_index()).ok_or(E2eError::UnexpectedResponse)?;
        if peer.address().octets() != source {
            return Err(E2eError::SourceMismatch);
        }
        let entry = self.peers.get_mut(&peer).ok_or(E2eError::UnexpectedResponse)?;
        let pending = entry.pending.take().ok_or(E2eError::UnexpectedResponse)?;
        if pending.state.local_index() != view.receiver_index() {
            entry.pending = Some(pending);
            return Err(E2eError::UnexpectedResponse);
        }
        match pending.state.handle_response(response) {
            Ok(session) => {
                self.install(now, session);
                Ok(())
            }
            Err(e) => {
                // Keep no half state: the index is freed, a retry starts anew.
                self.indexes.remove(&view.receiver_index());
                Err(e.into())
            }
        }
    }

    fn install(&mut self, now: Timestamp, established: Established) {
        let session_id = self.next_session_id;
        self.next_session_id += 1;
        let peer = established.peer;
        info!(peer = %peer.address(), session_id, "end-to-end session established");
        let mut session = Session::new(established, session_id, now);
        let (local, window) = (self.local_key, self.config.crossing_window);
        let entry = self.peers.entry(peer).or_default();
        // Crossed handshakes (see the module docs): both sides keep the
        // session started by the smaller key.
        let keep_current = entry.current.as_ref().is_some_and(|c| {
            c.initiated_here() != session.initiated_here()
                && now.saturating_since(c.created()) < window
                && initiator(c, &local, &peer).as_bytes() < initiator(&session, &local, &peer).as_bytes()
        });
        if let Some(old) = entry.previous.take() {
            self.indexes.remove(&old.local_index());
        }
        if keep_current {
            debug!(peer = %peer.address(), session_id, "crossed handshakes: keeping the session the smaller key started");
            session.retire(now);
            entry.previous = Some(session);
        } else {
            entry.previous = entry.current.replace(session).map(|mut old| {
                old.retire(now);
                old
            });
        }
        self.changed = true;
    }

    /// Retries, rekeys and expiry.
    pub fn handle_timeout(&mut self, now: Timestamp, wall_ns: u64, rng: &mut dyn Entropy) {
        let mut rekey = Vec::new();
        let mut retries = Vec::new();
        for (peer, entry) in &mut self.peers {
            if let Some(p) = &mut entry.pending {
                if now.saturating_since(p.started) >= self.config.handshake_timeout {
                    self.indexes.remove(&p.state.local_index());
                    entry.pending = None;
                } else if now >= p.next_retry {
                    retries.push((*peer, p.started, (p.retry * 2).min(self.config.retry_max)));
                }
            }
            if entry.previous.as_ref().is_some_and(|s| s.previous_expired(now, &self.config)) {
                if let Some(old) = entry.previous.take() {
                    self.indexes.remove(&old.local_index());
                }
                self.changed = true;
            }
            if entry.current.as_ref().is_some_and(|s| s.rejected(now, &self.config)) {
                if let Some(old) = entry.current.take() {
                    self.indexes.remove(&old.local_index());
                }
                self.changed = true;
            }
            let initiator_due = entry.current.as_ref().is_some_and(|s| s.needs_rekey(now, &self.config));
            if initiator_due && entry.pending.is_none() {
                rekey.push(*peer);
            }
        }
        for (peer, started, retry) in retries {
            self.initiate(now, wall_ns, peer, rng, started, retry);
        }
        for peer in rekey {
            self.initiate(now, wall_ns, peer, rng, now, self.config.retry_initial);
        }
    }

    /// Routes changed: handshakes waiting for a retry (perhaps because their
    /// last attempt had no route to go by) are retried at the next timeout.
    pub fn handle_routes_changed(&mut self, now: Timestamp) {
        for p in self.peers.values_mut().filter_map(|e| e.pending.as_mut()) {
            p.next_retry = p.next_retry.min(now);
        }
    }

    /// The next instant [`Self::handle_timeout`] has work to do.
    pub fn poll_timeout(&self) -> Option<Timestamp> {
        self.peers
            .values()
            .flat_map(|p| {
                let pending = p.pending.as_ref().map(|x| x.next_retry.min(x.started + self.config.handshake_timeout));
                let current = p.current.as_ref().map(|s| s.next_deadline(&self.config));
                let previous = p.previous.as_ref().map(|s| s.previous_deadline(&self.config));
                [pending, current, previous]
            })
            .flatten()
            .min()
    }

    /// A packet to inject towards `destination`'s next hop.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.outbox.pop_front()
    }

    /// Whether the key table changed since the last call.
    pub fn poll_key_table_changed(&mut self) -> bool {
        std::mem::take(&mut self.changed)
    }

    /// The key table to publish for the current dataplane epoch.
    pub fn key_table(&self, generation: u64, now: Timestamp) -> KeyTable {
        let mut send = Vec::new();
        let mut receive = Vec::new();
        for entry in self.peers.values() {
            if let Some(s) = &entry.current {
                send.push(s.send_session(self.epoch, &self.config));
                receive.push(s.receive_session(self.epoch, &self.config));
            }
            if let Some(s) = &entry.previous {
                receive.push(s.receive_session(self.epoch, &self.config));
            }
        }
        KeyTable::new(generation, now.as_nanos(), send, receive)
    }

    /// Established sessions, for the admin API: peer and age.
    pub fn sessions(&self) -> impl Iterator<Item = (&PublicKey, &Session)> {
        self.peers.iter().filter_map(|(k, p)| p.current.as_ref().map(|s| (k, s)))
    }
}

/// The node that started `session`: us (`local`) or the peer.
fn initiator<'a>(session: &Session, local: &'a PublicKey, peer: &'a PublicKey) -> &'a PublicKey {
    if session.initiated_here() { local } else { peer }
}

/// A ROUTED_HANDSHAKE packet from `from` to `to` carrying `message`.
fn routed(from: &PublicKey, to: &PublicKey, message: &[u8]) -> Vec<u8> {
    let repr = RoutedRepr {
        kind: RoutedKind::Handshake,
        hop_limit: DEFAULT_HOP_LIMIT,
        shard: 0,
        key_id: 0,
        counter: 0,
        source: from.address(),
        destination: to.address(),
        payload_len: message.len(),
    };
    let mut packet = vec![0u8; ROUTED_HEADER_LEN + message.len()];
    repr.emit(&mut packet).expect("buffer sized by the repr");
    packet[ROUTED_HEADER_LEN..].copy_from_slice(message);
    debug_assert!(message.len() <= HANDSHAKE_INIT_LEN);
    packet
}
