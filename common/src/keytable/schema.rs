//! The archived layout of the key table (rkyv), and its deterministic builder.

use rkyv::{Archive, Deserialize, Serialize};

/// Version of this schema; a reader refuses any other.
pub const KEY_TABLE_VERSION: u32 = 1;

/// Keys the dataplane needs, as published by the control daemon.
#[derive(Debug, Clone, PartialEq, Eq, Archive, Serialize, Deserialize)]
pub struct KeyTable {
    pub version: u32,
    pub generation: u64,
    pub created_at_ns: u64,
    /// Sorted by `peer`, at most one per peer.
    pub send: Vec<SendSession>,
    /// Sorted by `key_id`, unique.
    pub receive: Vec<ReceiveSession>,
}

/// How to seal packets to one peer node.
#[derive(Debug, Clone, PartialEq, Eq, Archive, Serialize, Deserialize)]
pub struct SendSession {
    /// The peer's overlay address (the packets' destination).
    pub peer: [u8; 16],
    /// The peer's public key (its address commits to it).
    pub peer_key: [u8; 32],
    /// The key id to stamp in each packet: the peer's receive index.
    pub key_id: u32,
    /// AES-256-GCM key.
    pub key: [u8; 32],
    /// Unique per handshake, so a shard can tell a new session (counters
    /// restart at zero) from the one it already holds.
    pub session_id: u64,
    /// The dataplane incarnation these keys were installed for.
    pub dataplane_epoch: u64,
    /// The shard stops sealing (and punts for a rekey) after this many
    /// packets per shard, long before nonces could run out.
    pub packet_limit: u64,
    /// After this instant (monotonic ns) the session must not be used.
    pub expires_at_ns: u64,
}

/// How to open packets stamped with one key id.
#[derive(Debug, Clone, PartialEq, Eq, Archive, Serialize, Deserialize)]
pub struct ReceiveSession {
    /// Our receive index, chosen by us in the handshake.
    pub key_id: u32,
    /// The overlay address the packets must come from.
    pub peer: [u8; 16],
    /// AES-256-GCM key.
    pub key: [u8; 32],
    pub session_id: u64,
    pub dataplane_epoch: u64,
    /// After this instant (monotonic ns) packets under this key are refused.
    pub expires_at_ns: u64,
}

impl KeyTable {
    /// A table from sessions in any order: sorted here, so the same sessions
    /// always give the same bytes. For a peer listed twice in `send`, the
    /// session with the highest `session_id` wins.
    pub fn new(
        generation: u64,
        created_at_ns: u64,
        mut send: Vec<SendSession>,
        mut receive: Vec<ReceiveSession>,
    ) -> Self {
        send.sort_by(|a, b| a.peer.cmp(&b.peer).then(b.session_id.cmp(&a.session_id)));
        send.dedup_by(|later, kept| later.peer == kept.peer);
        receive.sort_by(|a, b| a.key_id.cmp(&b.key_id).then(b.session_id.cmp(&a.session_id)));
        receive.dedup_by(|later, kept| later.key_id == kept.key_id);
        KeyTable { version: KEY_TABLE_VERSION, generation, created_at_ns, send, receive }
    }

    /// Serializes for publishing.
    pub fn to_bytes(&self) -> rkyv::util::AlignedVec {
        rkyv::to_bytes::<rkyv::rancor::Error>(self).expect("serializing plain owned data into memory cannot fail")
    }
}
