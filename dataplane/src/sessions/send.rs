//! Send keys, and each shard's packet counters for them.

use std::sync::Arc;

use mycelium_common::crypto::{COUNTER_LIMIT, PacketCipher, RingAes256Gcm, SessionKey};
use mycelium_common::keytable::ArchivedSendSession;
use rustc_hash::FxHashMap;

use super::SessionTable;

/// How to seal to one peer node: shared by every shard.
pub struct SendKey {
    peer: [u8; 16],
    key_id: u32,
    session_id: u64,
    packet_limit: u64,
    expires_at_ns: u64,
    cipher: RingAes256Gcm,
}

impl std::fmt::Debug for SendKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SendKey").field("key_id", &self.key_id).field("session_id", &self.session_id).finish()
    }
}

impl SendKey {
    pub(super) fn from_archived(s: &ArchivedSendSession) -> Self {
        SendKey {
            peer: s.peer,
            key_id: s.key_id.to_native(),
            session_id: s.session_id.to_native(),
            packet_limit: s.packet_limit.to_native().min(COUNTER_LIMIT),
            expires_at_ns: s.expires_at_ns.to_native(),
            cipher: RingAes256Gcm::new(&SessionKey::from_bytes(s.key)),
        }
    }

    /// The peer's overlay address.
    pub fn peer(&self) -> &[u8; 16] {
        &self.peer
    }

    /// The key id to stamp in each packet.
    pub fn key_id(&self) -> u32 {
        self.key_id
    }

    /// The handshake this key came from.
    pub fn session_id(&self) -> u64 {
        self.session_id
    }

    /// The cipher, key schedule done.
    pub fn cipher(&self) -> &RingAes256Gcm {
        &self.cipher
    }
}

/// Why a packet cannot be sealed now. Each leads to a punt so the control
/// daemon starts (or renews) the session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendError {
    /// No session with that peer.
    NoSession,
    /// The session expired.
    Expired,
    /// This shard used up the session's packet budget.
    Exhausted,
}

/// What a shard needs to seal one packet.
#[derive(Debug, Clone, Copy)]
pub struct SendTicket<'a> {
    pub key: &'a SendKey,
    /// The counter to stamp in the header and put in the nonce.
    pub counter: u64,
}

/// One shard's view of the send sessions, with its own counters.
#[derive(Debug)]
pub struct ShardSessions {
    table: Arc<SessionTable>,
    /// Next counter per session id.
    counters: FxHashMap<u64, u64>,
}

impl ShardSessions {
    /// Starts from `table`, every counter at zero.
    pub fn new(table: Arc<SessionTable>) -> Self {
        ShardSessions { table, counters: FxHashMap::default() }
    }

    /// The table in use.
    pub fn table(&self) -> &Arc<SessionTable> {
        &self.table
    }

    /// Switches to a newly built table. Counters of sessions that are still
    /// in it carry on; those of sessions that left are forgotten.
    pub fn install(&mut self, table: Arc<SessionTable>) {
        self.counters.retain(|session, _| table.send.values().any(|k| k.session_id == *session));
        self.table = table;
    }

    /// Takes the next counter of the session to the node with public key
    /// `peer_key`, for one packet.
    #[inline]
    pub fn next_send(&mut self, now_ns: u64, peer_key: &[u8; 32]) -> Result<SendTicket<'_>, SendError> {
        let key = self.table.send.get(peer_key).ok_or(SendError::NoSession)?;
        if now_ns >= key.expires_at_ns {
            return Err(SendError::Expired);
        }
        let counter = self.counters.entry(key.session_id).or_insert(0);
        if *counter >= key.packet_limit {
            return Err(SendError::Exhausted);
        }
        let ticket = SendTicket { key, counter: *counter };
        *counter += 1;
        Ok(ticket)
    }
}
