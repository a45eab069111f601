//! The session key table: the end-to-end session keys the control daemon
//! installs for the dataplane, published through shared memory with the same
//! generation protocol as route snapshots (channel "keys").
//!
//! The dataplane never does asymmetric crypto. The control daemon runs every
//! handshake, then publishes a new table holding, per peer node:
//! - a [`SendSession`]: the key and key id to seal packets *to* that node, and
//! - one or two [`ReceiveSession`]s: keys to open packets *from* it, found by
//!   the key id the sender stamps in each packet. During a rekey the previous
//!   receive key stays listed until it expires, so packets sealed with the old
//!   key keep opening while the new one takes over.
//!
//! How a shard uses it: on a new generation it maps and validates the table
//! once ([`KeyTableView::validate`]), builds its own cipher objects (one key
//! schedule per session, never per packet), and from then on works from its
//! own copy. Link keys (for control messages between neighbours) never leave
//! the control daemon: it seals and opens control packets itself.
//!
//! Nonce safety across dataplane restarts: every session names the
//! `dataplane_epoch` it was installed for (the dataplane's start time, which
//! the dataplane publishes). A dataplane ignores sessions of any other epoch,
//! so a restarted dataplane, whose per-shard counters start again at zero,
//! can never reuse a nonce under an old key, nor accept replays under an old
//! receive key; it punts, and the control daemon re-keys.

mod schema;

pub use schema::{
    ArchivedKeyTable, ArchivedReceiveSession, ArchivedSendSession, KEY_TABLE_VERSION, KeyTable, ReceiveSession,
    SendSession,
};

/// Why a key table was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyTableError {
    #[error("key table is not a valid archive: {0}")]
    Archive(String),
    #[error("key table version {found} is not the supported version {KEY_TABLE_VERSION}")]
    Version { found: u32 },
    #[error("send sessions are not sorted by peer address, or a peer is listed twice")]
    SendOrder,
    #[error("receive sessions are not sorted by key id, or a key id is listed twice")]
    ReceiveOrder,
    #[error("key id 0 is reserved for routed handshakes")]
    ReservedKeyId,
}

/// A validated, zero-copy view of a published key table.
#[derive(Clone, Copy)]
pub struct KeyTableView<'a> {
    table: &'a ArchivedKeyTable,
}

impl std::fmt::Debug for KeyTableView<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyTableView")
            .field("generation", &self.generation())
            .field("send", &self.table.send.len())
            .field("receive", &self.table.receive.len())
            .finish()
    }
}

impl<'a> KeyTableView<'a> {
    /// Checks the archive and the table's invariants. `bytes` must be
    /// 16-byte aligned (a mapping or an `rkyv::util::AlignedVec` is).
    pub fn validate(bytes: &'a [u8]) -> Result<Self, KeyTableError> {
        let table = rkyv::access::<ArchivedKeyTable, rkyv::rancor::Error>(bytes)
            .map_err(|e| KeyTableError::Archive(e.to_string()))?;
        let found = table.version.to_native();
        if found != KEY_TABLE_VERSION {
            return Err(KeyTableError::Version { found });
        }
        if !table.send.windows(2).all(|w| w[0].peer < w[1].peer) {
            return Err(KeyTableError::SendOrder);
        }
        if !table.receive.windows(2).all(|w| w[0].key_id.to_native() < w[1].key_id.to_native()) {
            return Err(KeyTableError::ReceiveOrder);
        }
        let reserved = |id: u32| id == 0;
        if table.send.iter().any(|s| reserved(s.key_id.to_native()))
            || table.receive.iter().any(|r| reserved(r.key_id.to_native()))
        {
            return Err(KeyTableError::ReservedKeyId);
        }
        Ok(KeyTableView { table })
    }

    /// The table's generation.
    pub fn generation(&self) -> u64 {
        self.table.generation.to_native()
    }

    /// Every send session, sorted by peer address.
    pub fn send_sessions(&self) -> &'a [ArchivedSendSession] {
        self.table.send.as_slice()
    }

    /// Every receive session, sorted by key id.
    pub fn receive_sessions(&self) -> &'a [ArchivedReceiveSession] {
        self.table.receive.as_slice()
    }

    /// The session to seal packets to `peer` with.
    pub fn send_to(&self, peer: &[u8; 16]) -> Option<&'a ArchivedSendSession> {
        let send = self.send_sessions();
        send.binary_search_by(|s| s.peer.cmp(peer)).ok().and_then(|i| send.get(i))
    }

    /// The session whose key opens packets stamped with `key_id`.
    pub fn receive_by_key_id(&self, key_id: u32) -> Option<&'a ArchivedReceiveSession> {
        let receive = self.receive_sessions();
        receive.binary_search_by(|r| r.key_id.to_native().cmp(&key_id)).ok().and_then(|i| receive.get(i))
    }
}

/// The key table channel for [`Subscriber`](crate::shm::Subscriber): files
/// on [`KEYS`](crate::shm::KEYS), validated by [`KeyTableView::validate`].
#[derive(Debug, Clone, Copy)]
pub struct KeyChannel;

impl crate::shm::Channel for KeyChannel {
    const ID: crate::shm::ChannelId = crate::shm::KEYS;
    type View<'a> = KeyTableView<'a>;
    type Error = KeyTableError;

    fn validate(bytes: &[u8]) -> Result<KeyTableView<'_>, KeyTableError> {
        KeyTableView::validate(bytes)
    }

    fn shorten<'short, 'long: 'short>(view: KeyTableView<'long>) -> KeyTableView<'short> {
        view
    }
}

#[cfg(test)]
mod tests;
