//! Timers: init retransmission and timeout, backoff and redial, rekey,
//! keepalives, dead links, and the end of old and unconfirmed sessions.

use mycelium_common::handshake::Role;
use mycelium_common::time::Timestamp;

use super::backoff;
use super::manager::PeerManager;
use super::state::{Initiating, Peer, PeerState};
use super::{DownReason, LinkId, PeerEvent, PeeringConfig};

/// What a peer's timers ask for, decided without touching the manager.
#[derive(Debug, PartialEq, Eq)]
enum Due {
    Nothing,
    Dial,
    Retransmit,
    /// The handshake attempt timed out (and no answered one is pending).
    Failed,
    Down(DownReason),
    Rekey,
    RekeyRetransmit,
    Keepalive,
}

impl PeerManager {
    /// Runs every timer that is due at `now`.
    pub fn handle_timeout(&mut self, now: Timestamp) {
        let links: Vec<LinkId> = self.peers.keys().copied().collect();
        for link in links {
            self.expire_sessions(now, link);
            // Each action moves its own timer; several may be due at once
            // (a rekey and a keepalive). Bounded: there are fewer kinds.
            for _ in 0..4 {
                let Some(peer) = self.peers.get(&link) else { break };
                match due(peer, &self.config, now) {
                    Due::Nothing => break,
                    Due::Dial => self.start_initiation(now, link),
                    Due::Retransmit | Due::RekeyRetransmit => self.retransmit(now, link),
                    Due::Failed => self.fail(now, link),
                    Due::Down(reason) => self.down(now, link, reason),
                    Due::Rekey => self.start_rekey(now, link),
                    Due::Keepalive => self.send_keepalive(now, link),
                }
            }
        }
    }

    /// The earliest deadline of any peer's timers, if any peer has one.
    pub fn poll_timeout(&self) -> Option<Timestamp> {
        self.peers.values().filter_map(|p| next_deadline(p, &self.config)).min()
    }

    /// Drops old sessions past their grace, unconfirmed ones past their
    /// wait, and an answered handshake nobody confirmed.
    fn expire_sessions(&mut self, now: Timestamp, link: LinkId) {
        let timeout = self.config.handshake_timeout;
        self.with_peer(link, |peer| match &mut peer.state {
            PeerState::Established(e) => {
                if e.previous.as_ref().is_some_and(|(_, until)| now >= *until) {
                    e.previous = None;
                }
                if e.next.as_ref().is_some_and(|(_, until)| now >= *until) {
                    e.next = None;
                }
                if e.rekey.as_ref().is_some_and(|r| now >= r.started_at + timeout) {
                    e.rekey = None;
                }
            }
            PeerState::Handshaking(h) => {
                if h.responded.as_ref().is_some_and(|(_, until)| now >= *until) {
                    h.responded = None;
                }
                // Our attempt timed out while the peer's is still pending:
                // wait for that one alone.
                if h.responded.is_some() && h.initiating.as_ref().is_some_and(|i| now >= i.started_at + timeout) {
                    h.initiating = None;
                }
            }
            PeerState::Idle { .. } => {}
        });
    }

    /// Sends a fresh init for the handshake in flight.
    fn retransmit(&mut self, now: Timestamp, link: LinkId) {
        let Some(peer) = self.peers.get(&link) else { return };
        let attempt = match &peer.state {
            PeerState::Handshaking(h) => h.initiating.as_ref().map(|i| (i.started_at, i.sent)),
            PeerState::Established(e) => e.rekey.as_ref().map(|i| (i.started_at, i.sent)),
            PeerState::Idle { .. } => None,
        };
        let Some((started_at, sent)) = attempt else { return };
        let key = peer.key;
        let Some(fresh) = self.new_initiation(now, key, started_at, sent) else { return };
        let init = fresh.init;
        let endpoint = self.with_peer(link, |peer| {
            let slot: &mut Option<Initiating> = match &mut peer.state {
                PeerState::Handshaking(h) => &mut h.initiating,
                PeerState::Established(e) => &mut e.rekey,
                PeerState::Idle { .. } => return peer.endpoint,
            };
            *slot = Some(fresh);
            peer.endpoint
        });
        if let Some(endpoint) = endpoint {
            self.transmit(endpoint, init.to_vec());
        }
    }

    /// A dial attempt failed: back off (dialed peers) or forget (inbound).
    fn fail(&mut self, now: Timestamp, link: LinkId) {
        let Some(peer) = self.peers.get(&link) else { return };
        if !peer.dial {
            self.remove_peer(link, None);
            return;
        }
        let attempts = peer.attempts;
        let jitter = self.entropy.next_u32();
        let retry_at = now + backoff::delay(self.config.backoff_initial, self.config.backoff_max, attempts, jitter);
        let event = self.with_peer(link, |peer| {
            peer.attempts += 1;
            peer.state = PeerState::Idle { retry_at };
            PeerEvent::Failed { link, peer: peer.key, endpoint: peer.endpoint, attempts: peer.attempts, retry_at }
        });
        self.emit(event.expect("peer exists"));
    }

    /// The link died: report it, then redial soon (dialed peers) or forget.
    fn down(&mut self, now: Timestamp, link: LinkId, reason: DownReason) {
        let Some(peer) = self.peers.get(&link) else { return };
        let event = PeerEvent::Down { link, peer: peer.key, endpoint: peer.endpoint, reason };
        if !peer.dial {
            self.remove_peer(link, Some(reason));
            return;
        }
        let retry_at = now + self.config.backoff_initial;
        self.with_peer(link, |peer| {
            peer.attempts = 0;
            peer.state = PeerState::Idle { retry_at };
        });
        self.emit(event);
    }
}

/// When this session is due for a rekey.
fn rekey_at(session_role: Role, made: Timestamp, config: &PeeringConfig) -> Timestamp {
    match session_role {
        Role::Initiator => made + config.rekey_after_time,
        Role::Responder => made + config.rekey_after_time + config.responder_rekey_slack,
    }
}

/// Which timer of `peer` is due at `now`, most urgent first.
fn due(peer: &Peer, config: &PeeringConfig, now: Timestamp) -> Due {
    match &peer.state {
        PeerState::Idle { retry_at } => {
            if peer.dial && now >= *retry_at {
                Due::Dial
            } else {
                Due::Nothing
            }
        }
        PeerState::Handshaking(h) => match &h.initiating {
            Some(i) if now >= i.started_at + config.handshake_timeout => {
                if h.responded.is_some() {
                    Due::Nothing
                } else {
                    Due::Failed
                }
            }
            Some(i) if now >= i.retransmit_at => Due::Retransmit,
            Some(_) => Due::Nothing,
            None if h.responded.is_none() => Due::Failed,
            None => Due::Nothing,
        },
        PeerState::Established(e) => {
            let made = e.current.established_at;
            if now >= e.last_received + config.dead_after {
                Due::Down(DownReason::Timeout)
            } else if now >= made + config.reject_after_time {
                Due::Down(DownReason::SessionExpired)
            } else if e.rekey.as_ref().is_some_and(|r| now >= r.retransmit_at) {
                Due::RekeyRetransmit
            } else if e.rekey.is_none()
                && e.next.is_none()
                && (now >= rekey_at(e.current.role, made, config) || e.current.sent() >= config.rekey_after_packets)
            {
                Due::Rekey
            } else if now >= e.last_sent + config.keepalive_interval {
                Due::Keepalive
            } else {
                Due::Nothing
            }
        }
    }
}

/// The earliest instant at which [`due`] or the session expiry may change.
fn next_deadline(peer: &Peer, config: &PeeringConfig) -> Option<Timestamp> {
    match &peer.state {
        PeerState::Idle { retry_at } => peer.dial.then_some(*retry_at),
        PeerState::Handshaking(h) => {
            let initiating =
                h.initiating.as_ref().map(|i| i.retransmit_at.min(i.started_at + config.handshake_timeout));
            let responded = h.responded.as_ref().map(|(_, until)| *until);
            match (initiating, responded) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            }
        }
        PeerState::Established(e) => {
            let made = e.current.established_at;
            let mut at = (e.last_received + config.dead_after)
                .min(made + config.reject_after_time)
                .min(e.last_sent + config.keepalive_interval);
            if let Some(r) = &e.rekey {
                at = at.min(r.retransmit_at).min(r.started_at + config.handshake_timeout);
            } else if e.next.is_none() {
                at = at.min(rekey_at(e.current.role, made, config));
            }
            for until in [e.previous.as_ref().map(|p| p.1), e.next.as_ref().map(|n| n.1)].into_iter().flatten() {
                at = at.min(until);
            }
            Some(at)
        }
    }
}
