//! End-to-end session keys as the shards use them.
//!
//! The control daemon publishes a key table (`mycelium_common::keytable`);
//! this module turns it into ready cipher objects, once per table generation
//! and off the packet path:
//! - [`SessionTable`] (one per process, shared by the shards through an
//!   `Arc`): the send key per peer node and the receive key per key id, each
//!   with its key schedule done once. Receive keys carry the replay windows,
//!   shared by every shard (see [`ReceiveKey`]), so a replay is refused
//!   whichever shard it reaches.
//! - [`ShardSessions`] (one per shard): the shard's own packet counters per
//!   send session. Counters live here, not in the table: each shard has its
//!   own nonce space (its id is in the nonce), so shards never coordinate
//!   per packet. It also remembers, per route of the current route snapshot,
//!   which send session that route's destination uses, so after a route's
//!   first packet the send path is two array reads, no hashing.
//!
//! Driving it: when a shard sees a new key table generation, it calls
//! [`SharedSessions::refresh`] (which picks up the table another shard
//! already built for that generation, or builds it) and [`ShardSessions::install`];
//! when it maps a new route snapshot it calls [`ShardSessions::routes_changed`].
//! Per packet it calls [`ShardSessions::next_send_for_route`] (or
//! [`ShardSessions::next_send`] by public key) before sealing, and
//! [`SessionTable::receiver`] then [`ReceiveKey::check`] / [`ReceiveKey::accept`]
//! around opening.
//!
//! Sessions installed for another dataplane epoch are ignored (see the key
//! table's docs): a restarted dataplane never reuses a nonce.

mod receive;
mod send;

pub use receive::{ReceiveError, ReceiveKey};
pub use send::{SendError, SendKey, SendTicket, ShardSessions};

use std::sync::Arc;

use mycelium_common::keytable::KeyTableView;
use rustc_hash::FxHashMap;

/// Every usable session of one key table generation, with ciphers ready.
#[derive(Debug, Default)]
pub struct SessionTable {
    generation: u64,
    /// Send keys in key table order; shards index their counters and their
    /// per-route cache by position here.
    send: Vec<Arc<SendKey>>,
    /// Position in `send` by the peer node's public key: a route names its
    /// destination's router id, so the send path needs no address hashing.
    send_index: FxHashMap<[u8; 32], u32>,
    receive: FxHashMap<u32, Arc<ReceiveKey>>,
}

impl SessionTable {
    /// A table with no sessions (before the control daemon published any).
    pub fn empty() -> Self {
        SessionTable::default()
    }

    /// The key table generation this was built from (0: none).
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Builds the table for a newly published key table. Sessions that are
    /// still listed (same key id or peer, same session id) keep their cipher
    /// and replay windows from `self`; only new sessions run a key schedule.
    /// Sessions of another dataplane epoch are left out.
    pub fn rebuild(&self, view: &KeyTableView<'_>, epoch: u64) -> SessionTable {
        let mut send = Vec::new();
        let mut send_index = FxHashMap::default();
        for s in view.send_sessions().iter().filter(|s| s.dataplane_epoch.to_native() == epoch) {
            let kept = self.sender(&s.peer_key).filter(|k| k.session_id() == s.session_id.to_native());
            let key = kept.cloned().unwrap_or_else(|| Arc::new(SendKey::from_archived(s)));
            // Validation keeps peers unique; a repeated key keeps its first slot.
            if let std::collections::hash_map::Entry::Vacant(e) = send_index.entry(s.peer_key)
                && let Ok(slot) = u32::try_from(send.len())
            {
                e.insert(slot);
                send.push(key);
            }
        }
        let mut receive = FxHashMap::default();
        for r in view.receive_sessions().iter().filter(|r| r.dataplane_epoch.to_native() == epoch) {
            let id = r.key_id.to_native();
            let kept = self.receive.get(&id).filter(|k| k.session_id() == r.session_id.to_native());
            let key = kept.cloned().unwrap_or_else(|| Arc::new(ReceiveKey::from_archived(r)));
            receive.insert(id, key);
        }
        SessionTable { generation: view.generation(), send, send_index, receive }
    }

    /// The key to seal packets to the node with public key `peer_key`.
    #[inline]
    pub fn sender(&self, peer_key: &[u8; 32]) -> Option<&Arc<SendKey>> {
        self.send.get(*self.send_index.get(peer_key)? as usize)
    }

    /// The position of that key among this table's send keys.
    #[inline]
    pub fn send_slot(&self, peer_key: &[u8; 32]) -> Option<u32> {
        self.send_index.get(peer_key).copied()
    }

    /// The key that opens packets stamped with `key_id`.
    #[inline]
    pub fn receiver(&self, key_id: u32) -> Option<&ReceiveKey> {
        self.receive.get(&key_id).map(|k| &**k)
    }

    /// Number of send and receive sessions.
    pub fn len(&self) -> (usize, usize) {
        (self.send.len(), self.receive.len())
    }
}

/// The latest [`SessionTable`], shared by the shards of one process so that
/// a key table generation is turned into ciphers once, not once per shard.
/// Locked only when a shard sees a new key table generation.
#[derive(Debug, Clone, Default)]
pub struct SharedSessions(Arc<parking_lot::Mutex<Arc<SessionTable>>>);

impl SharedSessions {
    /// The table for `view`: the one another shard already built for this
    /// generation, or a new one (shared if it is the newest seen).
    pub fn refresh(&self, view: &KeyTableView<'_>, epoch: u64) -> Arc<SessionTable> {
        let mut latest = self.0.lock();
        if latest.generation() == view.generation() && latest.generation() != 0 {
            return Arc::clone(&latest);
        }
        let table = Arc::new(latest.rebuild(view, epoch));
        if view.generation() > latest.generation() {
            *latest = Arc::clone(&table);
        }
        table
    }
}

#[cfg(test)]
mod tests;
