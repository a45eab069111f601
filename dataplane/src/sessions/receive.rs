//! Receive keys, with replay windows shared by every shard.

use std::sync::OnceLock;

use mycelium_common::crypto::{PacketCipher, ReplayError, RingAes256Gcm, SessionKey, SharedReplayWindow};
use mycelium_common::keytable::ArchivedReceiveSession;

/// Number of sender shard ids (the header's shard byte).
const SENDER_SHARDS: usize = 256;

/// How to open packets stamped with one key id.
///
/// Each sending shard has its own counter space, so there is one replay
/// window per sender shard id, created when that shard's first packet
/// authenticates (one allocation per sender shard per session, never per
/// packet). The windows are lock-free and shared by all receiving shards.
pub struct ReceiveKey {
    key_id: u32,
    peer: [u8; 16],
    session_id: u64,
    expires_at_ns: u64,
    cipher: RingAes256Gcm,
    windows: Box<[OnceLock<Box<SharedReplayWindow>>]>,
}

impl std::fmt::Debug for ReceiveKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReceiveKey").field("key_id", &self.key_id).field("session_id", &self.session_id).finish()
    }
}

/// Why a received packet was refused before or after opening.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReceiveError {
    /// The session expired.
    Expired,
    /// The packet's source address is not the session's peer.
    WrongPeer,
    /// A replay, or older than the window.
    Replay(ReplayError),
}

impl ReceiveKey {
    pub(super) fn from_archived(r: &ArchivedReceiveSession) -> Self {
        ReceiveKey {
            key_id: r.key_id.to_native(),
            peer: r.peer,
            session_id: r.session_id.to_native(),
            expires_at_ns: r.expires_at_ns.to_native(),
            cipher: RingAes256Gcm::new(&SessionKey::from_bytes(r.key)),
            windows: (0..SENDER_SHARDS).map(|_| OnceLock::new()).collect(),
        }
    }

    /// The handshake this key came from.
    pub fn session_id(&self) -> u64 {
        self.session_id
    }

    /// The peer's overlay address.
    pub fn peer(&self) -> &[u8; 16] {
        &self.peer
    }

    /// The cipher, key schedule done.
    pub fn cipher(&self) -> &RingAes256Gcm {
        &self.cipher
    }

    /// Cheap checks before the packet is opened: expiry, source address,
    /// replay window.
    #[inline]
    pub fn check(&self, now_ns: u64, source: &[u8; 16], shard: u8, counter: u64) -> Result<(), ReceiveError> {
        if now_ns >= self.expires_at_ns {
            return Err(ReceiveError::Expired);
        }
        if *source != self.peer {
            return Err(ReceiveError::WrongPeer);
        }
        match self.windows.get(usize::from(shard)).and_then(OnceLock::get) {
            Some(window) => window.check(counter).map_err(ReceiveError::Replay),
            None => Ok(()),
        }
    }

    /// Marks the counter as received, after the packet authenticated. Of two
    /// copies opened at once (on one shard or two), exactly one passes.
    #[inline]
    pub fn accept(&self, shard: u8, counter: u64) -> Result<(), ReceiveError> {
        let slot = &self.windows[usize::from(shard)];
        slot.get_or_init(|| Box::new(SharedReplayWindow::new())).accept(counter).map_err(ReceiveError::Replay)
    }
}
