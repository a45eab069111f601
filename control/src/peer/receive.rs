//! Receiving: handshake messages and CONTROL packets, each checked and
//! either applied or dropped with a counted [`DropReason`].

use std::net::SocketAddr;
use std::time::Duration;

use mycelium_common::crypto::kdf::Purpose;
use mycelium_common::handshake;
use mycelium_common::time::Timestamp;
use mycelium_common::wire::tlv::TlvIter;
use mycelium_common::wire::{ControlPacket, HandshakeInit, HandshakeResponse, PacketType, WireError, classify};

use super::counters::DropReason;
use super::manager::PeerManager;
use super::session::LinkSession;
use super::state::{Established, Handshaking, PeerState};
use super::{LinkId, PeerEvent, canonical_endpoint};

/// Which of a peer's sessions a CONTROL packet was for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    Current,
    Previous,
    /// Answered by us, not yet confirmed: this packet confirms it.
    Pending,
}

/// Shortest time between two re-sent confirmations of a new session.
const RECONFIRM_INTERVAL: Duration = Duration::from_secs(1);

impl PeerManager {
    /// Takes one datagram from `from`. Handshake and CONTROL packets are
    /// processed; anything else, or anything malformed, forged or replayed,
    /// is counted in [`drops`](Self::drops) and dropped. Never panics.
    pub fn handle_datagram(&mut self, now: Timestamp, from: SocketAddr, bytes: &[u8]) {
        let from = canonical_endpoint(from);
        let result = match classify(bytes) {
            Ok(PacketType::HandshakeInit) => self.on_init(now, from, bytes),
            Ok(PacketType::HandshakeResponse) => self.on_response(now, from, bytes),
            Ok(PacketType::Control) => self.on_control(now, from, bytes),
            Ok(PacketType::Data | PacketType::RoutedHandshake) | Err(WireError::UnknownType) => {
                Err(DropReason::UnexpectedType)
            }
            Err(_) => Err(DropReason::Malformed),
        };
        if let Err(reason) = result {
            self.count(reason);
        }
    }

    fn on_init(&mut self, now: Timestamp, from: SocketAddr, bytes: &[u8]) -> Result<(), DropReason> {
        let claimed = HandshakeInit::new_checked(bytes).map_err(|_| DropReason::Malformed)?.static_key();
        let existing = self.by_endpoint.get(&from).copied();
        if let Some(link) = existing {
            let peer = &self.peers[&link];
            if peer.key != claimed {
                return Err(DropReason::UnexpectedKey);
            }
            // Tie-break: of two crossing inits, the lower public key's wins.
            if peer.is_initiating() && self.local_public < claimed {
                return Err(DropReason::HandshakeCollision);
            }
        } else if self.peers.len() >= self.config.max_peers {
            return Err(DropReason::TooManyPeers);
        }
        if claimed == self.local_public {
            return Err(DropReason::UnexpectedKey);
        }
        if !self.limiter.allow(now, from.ip()) {
            return Err(DropReason::RateLimited);
        }
        let ephemeral = self.entropy.secret_key();
        let index = self.allocate_index();
        let accepted = handshake::respond(&self.local, bytes, ephemeral, index, Purpose::Link)
            .map_err(|_| DropReason::HandshakeInvalid)?;
        if accepted.session.peer != claimed {
            return Err(DropReason::HandshakeInvalid);
        }
        if let Some(last) = existing.and_then(|link| self.peers[&link].last_timestamp)
            && accepted.timestamp <= last
        {
            return Err(DropReason::HandshakeReplay);
        }
        let link = existing.unwrap_or_else(|| self.insert_peer(from, claimed, false));
        let session = LinkSession::new(&accepted.session, now);
        let confirm_by = now + self.config.handshake_timeout;
        self.with_peer(link, |peer| {
            peer.last_timestamp = Some(accepted.timestamp);
            match &mut peer.state {
                PeerState::Established(e) => {
                    e.rekey = None;
                    e.next = Some((session, confirm_by));
                }
                // We lost the tie-break (or were not dialing): answer instead.
                _ => {
                    peer.state = PeerState::Handshaking(Box::new(Handshaking {
                        initiating: None,
                        responded: Some((session, confirm_by)),
                    }))
                }
            }
        });
        self.transmit(from, accepted.response.to_vec());
        Ok(())
    }

    fn on_response(&mut self, now: Timestamp, from: SocketAddr, bytes: &[u8]) -> Result<(), DropReason> {
        let index = HandshakeResponse::new_checked(bytes).map_err(|_| DropReason::Malformed)?.receiver_index();
        let link = *self.by_index.get(&index).ok_or(DropReason::UnknownIndex)?;
        if self.peers[&link].endpoint != from {
            return Err(DropReason::WrongEndpoint);
        }
        let initiating = self
            .with_peer(link, |peer| peer.take_initiating(index))
            .flatten()
            .ok_or(DropReason::UnsolicitedResponse)?;
        let established = initiating.waiting.handle_response(bytes).map_err(|_| DropReason::HandshakeInvalid)?;
        let session = LinkSession::new(&established, now);
        self.install(now, link, session, false);
        self.send_keepalive(now, link);
        Ok(())
    }

    /// Makes `session` the link's current one: up, or rekeyed. `heard`: a
    /// packet on it just arrived (we are its responder).
    fn install(&mut self, now: Timestamp, link: LinkId, session: LinkSession, heard: bool) {
        let grace = now + self.config.previous_session_grace;
        let was_up = self
            .with_peer(link, |peer| {
                peer.attempts = 0;
                match std::mem::replace(&mut peer.state, PeerState::Idle { retry_at: now }) {
                    PeerState::Established(mut e) => {
                        let old = std::mem::replace(&mut e.current, session);
                        e.previous = Some((old, grace));
                        e.next = None;
                        e.rekey = None;
                        e.last_received = now;
                        e.heard_on_current = heard;
                        e.confirmed_at = now;
                        peer.state = PeerState::Established(e);
                        true
                    }
                    _ => {
                        peer.state = PeerState::Established(Box::new(Established::new(session, now, heard)));
                        false
                    }
                }
            })
            .expect("peer exists");
        let peer = self.peers.get_mut(&link).expect("peer exists");
        peer.stats.sessions += 1;
        let peer = &self.peers[&link];
        let event = if was_up {
            PeerEvent::Rekeyed { link, peer: peer.key }
        } else {
            PeerEvent::Up { link, peer: peer.key, endpoint: peer.endpoint }
        };
        self.emit(event);
    }

    fn on_control(&mut self, now: Timestamp, from: SocketAddr, bytes: &[u8]) -> Result<(), DropReason> {
        let index = ControlPacket::new_checked(bytes).map_err(|_| DropReason::Malformed)?.receiver_index();
        let link = *self.by_index.get(&index).ok_or(DropReason::UnknownIndex)?;
        let reject_after = self.config.reject_after_time;
        let peer = self.peers.get_mut(&link).expect("index map points at a peer");
        if peer.endpoint != from {
            return Err(DropReason::WrongEndpoint);
        }
        let mut packet = bytes.to_vec();
        // Which session it is for.
        let (body, slot) = {
            let (session, slot) = match &mut peer.state {
                PeerState::Established(e) => {
                    if e.current.local_index == index {
                        (&mut e.current, Slot::Current)
                    } else if let Some((s, _)) = e.previous.as_mut().filter(|(s, _)| s.local_index == index) {
                        (s, Slot::Previous)
                    } else if let Some((s, _)) = e.next.as_mut().filter(|(s, _)| s.local_index == index) {
                        (s, Slot::Pending)
                    } else {
                        return Err(DropReason::UnknownIndex);
                    }
                }
                PeerState::Handshaking(h) => match h.responded.as_mut().filter(|(s, _)| s.local_index == index) {
                    Some((s, _)) => (s, Slot::Pending),
                    None => return Err(DropReason::UnknownIndex),
                },
                PeerState::Idle { .. } => return Err(DropReason::UnknownIndex),
            };
            if now.saturating_since(session.established_at) >= reject_after {
                return Err(DropReason::StaleSession);
            }
            let body = session.open(&mut packet)?;
            (body.to_vec(), slot)
        };
        let mut reconfirm = false;
        if let PeerState::Established(e) = &mut peer.state {
            match slot {
                Slot::Current => e.heard_on_current = true,
                // The peer still sends on the old session: our keepalive on
                // the new one may have been lost. Confirm again, once a second.
                Slot::Previous if !e.heard_on_current && now >= e.confirmed_at + RECONFIRM_INTERVAL => {
                    e.confirmed_at = now;
                    reconfirm = true;
                }
                _ => {}
            }
        }
        if reconfirm {
            self.send_keepalive(now, link);
        }
        if slot == Slot::Pending {
            let session = self
                .with_peer(link, |peer| match &mut peer.state {
                    PeerState::Established(e) => e.next.take().map(|(s, _)| s),
                    PeerState::Handshaking(h) => h.responded.take().map(|(s, _)| s),
                    PeerState::Idle { .. } => None,
                })
                .flatten()
                .expect("the session just opened is pending");
            self.install(now, link, session, true);
        }
        let mut malformed = 0;
        for item in TlvIter::new(&body) {
            match item {
                Ok(message) => self.emit(PeerEvent::Message { link, message }),
                Err(_) => malformed += 1,
            }
        }
        for _ in 0..malformed {
            self.count(DropReason::MalformedTlv);
        }
        if let Some(peer) = self.peers.get_mut(&link) {
            peer.stats.rx_packets += 1;
            peer.stats.rx_bytes += bytes.len() as u64;
            peer.stats.malformed_tlvs += malformed;
            if let PeerState::Established(e) = &mut peer.state {
                e.last_received = now;
            }
        }
        Ok(())
    }
}
