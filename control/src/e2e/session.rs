//! One established end-to-end session and its lifetimes.

use std::time::Duration;

use mycelium_common::handshake::{Established, Role};
use mycelium_common::keytable::{ReceiveSession, SendSession};
use mycelium_common::time::Timestamp;

use super::E2eConfig;

/// An established session with one peer node.
#[derive(Debug, Clone)]
pub struct Session {
    established: Established,
    session_id: u64,
    created: Timestamp,
    /// When a newer session replaced this one.
    retired: Option<Timestamp>,
}

impl Session {
    pub(super) fn new(established: Established, session_id: u64, created: Timestamp) -> Self {
        Session { established, session_id, created, retired: None }
    }

    /// Our receive index (the key id the peer stamps on its packets).
    pub fn local_index(&self) -> u32 {
        self.established.local_index
    }

    /// When the handshake completed.
    pub fn created(&self) -> Timestamp {
        self.created
    }

    /// Whether we started it.
    pub fn initiated_here(&self) -> bool {
        self.established.role == Role::Initiator
    }

    /// Time for a new handshake. Only the initiator rekeys on schedule, so
    /// the two sides do not race; the responder rekeys when the session is
    /// about to be rejected.
    pub(super) fn needs_rekey(&self, now: Timestamp, config: &E2eConfig) -> bool {
        let age = now.saturating_since(self.created);
        if self.initiated_here() { age >= config.rekey_after } else { age >= rekey_as_responder(config) }
    }

    pub(super) fn rejected(&self, now: Timestamp, config: &E2eConfig) -> bool {
        now.saturating_since(self.created) >= config.reject_after
    }

    pub(super) fn previous_expired(&self, now: Timestamp, config: &E2eConfig) -> bool {
        now >= self.previous_deadline(config)
    }

    /// Marks the session as replaced by a newer one at `now`.
    pub(super) fn retire(&mut self, now: Timestamp) {
        self.retired.get_or_insert(now);
    }

    /// When this session's keys stop working: at rejection age, or a grace
    /// period after a newer session replaced it, whichever is first.
    pub(super) fn expires(&self, config: &E2eConfig) -> Timestamp {
        let rejected = self.created + config.reject_after;
        self.retired.map_or(rejected, |r| rejected.min(r + config.previous_grace))
    }

    pub(super) fn previous_deadline(&self, config: &E2eConfig) -> Timestamp {
        self.expires(config)
    }

    pub(super) fn next_deadline(&self, config: &E2eConfig) -> Timestamp {
        let rekey = if self.initiated_here() { config.rekey_after } else { rekey_as_responder(config) };
        self.created + rekey.min(config.reject_after)
    }

    pub(super) fn send_session(&self, epoch: u64, config: &E2eConfig) -> SendSession {
        SendSession {
            peer: self.established.peer.address().octets(),
            peer_key: *self.established.peer.as_bytes(),
            key_id: self.established.remote_index,
            key: *self.established.send.as_bytes(),
            session_id: self.session_id,
            dataplane_epoch: epoch,
            packet_limit: config.packet_limit,
            expires_at_ns: self.expires(config).as_nanos(),
        }
    }

    pub(super) fn receive_session(&self, epoch: u64, config: &E2eConfig) -> ReceiveSession {
        ReceiveSession {
            key_id: self.established.local_index,
            peer: self.established.peer.address().octets(),
            key: *self.established.receive.as_bytes(),
            session_id: self.session_id,
            dataplane_epoch: epoch,
            expires_at_ns: self.expires(config).as_nanos(),
        }
    }
}

/// The responder's rekey point: between the initiator's and rejection.
fn rekey_as_responder(config: &E2eConfig) -> Duration {
    config.rekey_after + (config.reject_after.saturating_sub(config.rekey_after)) / 2
}
