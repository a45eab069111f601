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

/// A route whose destination's session is not looked up yet.
const ROUTE_UNKNOWN: u32 = u32::MAX;
/// A route whose destination has no send session in the current table.
const ROUTE_NO_SESSION: u32 = u32::MAX - 1;

/// One shard's view of the send sessions, with its own counters.
#[derive(Debug)]
pub struct ShardSessions {
    table: Arc<SessionTable>,
    /// Next counter per send key, by position in `table.send`.
    counters: Vec<u64>,
    /// Per route of the current route snapshot (by route index): the
    /// position of its destination's send key, [`ROUTE_NO_SESSION`], or
    /// [`ROUTE_UNKNOWN`] until the route's first packet asks.
    by_route: Vec<u32>,
}

impl ShardSessions {
    /// Starts from `table`, every counter at zero.
    pub fn new(table: Arc<SessionTable>) -> Self {
        let counters = vec![0; table.send.len()];
        ShardSessions { table, counters, by_route: Vec::new() }
    }

    /// The table in use.
    pub fn table(&self) -> &Arc<SessionTable> {
        &self.table
    }

    /// Switches to a newly built table. Counters of sessions that are still
    /// in it carry on; those of sessions that left are forgotten.
    pub fn install(&mut self, table: Arc<SessionTable>) {
        let old: FxHashMap<u64, u64> =
            self.table.send.iter().zip(&self.counters).map(|(key, &next)| (key.session_id, next)).collect();
        self.counters = table.send.iter().map(|key| old.get(&key.session_id).copied().unwrap_or(0)).collect();
        self.table = table;
        self.by_route.fill(ROUTE_UNKNOWN);
    }

    /// A new route snapshot with `routes` routes is in use: route indices
    /// now mean other routes, so forget what was learned per route. Must be
    /// called before the first [`next_send_for_route`](Self::next_send_for_route)
    /// with the new snapshot's indices.
    pub fn routes_changed(&mut self, routes: usize) {
        self.by_route.clear();
        self.by_route.resize(routes, ROUTE_UNKNOWN);
    }

    /// Takes the next counter of the session to the node with public key
    /// `peer_key`, for one packet.
    #[inline]
    pub fn next_send(&mut self, now_ns: u64, peer_key: &[u8; 32]) -> Result<SendTicket<'_>, SendError> {
        let slot = self.table.send_slot(peer_key).ok_or(SendError::NoSession)?;
        self.take(now_ns, slot)
    }

    /// Like [`next_send`](Self::next_send) for the destination of route
    /// `route_index` of the current snapshot, whose router id is
    /// `router_id`: the key table is searched on the route's first packet
    /// only (`router_id` is not read after that).
    #[inline]
    pub fn next_send_for_route(
        &mut self,
        now_ns: u64,
        route_index: u32,
        router_id: &[u8; 32],
    ) -> Result<SendTicket<'_>, SendError> {
        let table = &self.table;
        let resolve = || table.send_slot(router_id).unwrap_or(ROUTE_NO_SESSION);
        let slot = match self.by_route.get_mut(route_index as usize) {
            Some(known) if *known != ROUTE_UNKNOWN => *known,
            Some(unknown) => {
                *unknown = resolve();
                *unknown
            }
            // Not a route of the snapshot `routes_changed` announced: no caching.
            None => resolve(),
        };
        if slot == ROUTE_NO_SESSION {
            return Err(SendError::NoSession);
        }
        self.take(now_ns, slot)
    }

    #[inline]
    fn take(&mut self, now_ns: u64, slot: u32) -> Result<SendTicket<'_>, SendError> {
        let key = self.table.send.get(slot as usize).ok_or(SendError::NoSession)?;
        if now_ns >= key.expires_at_ns {
            return Err(SendError::Expired);
        }
        let counter = self.counters.get_mut(slot as usize).ok_or(SendError::NoSession)?;
        if *counter >= key.packet_limit {
            return Err(SendError::Exhausted);
        }
        let ticket = SendTicket { key, counter: *counter };
        *counter += 1;
        Ok(ticket)
    }
}
