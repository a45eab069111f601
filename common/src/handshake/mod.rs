//! The handshake that proves two identities and yields session keys, for
//! links between neighbours and for end-to-end sessions through the mesh.
//!
//! Pattern (Noise IK in spirit; the initiator knows the responder's static
//! key: from the peer's address commitment or the route's router id):
//!
//! ```text
//! initiator -> responder: HandshakeInit { index_i, e_i, s_i, seal(k1, timestamp) }
//!     k1 = KDF(DH(e_i, S_r) || DH(s_i, S_r))
//! responder -> initiator: HandshakeResponse { index_r, index_i, e_r, seal(k2, "") }
//!     k2 = KDF(DH(e_i, S_r) || DH(s_i, S_r) || DH(e_i, e_r) || DH(s_i, e_r))
//! session keys = HKDF(the same four results, e_i, e_r; both static keys)
//! ```
//!
//! - The init proves the initiator holds `s_i` (only it and the responder can
//!   compute `DH(s_i, S_r)`), and its sealed, strictly increasing timestamp
//!   lets the responder refuse replayed inits ([`Accepted::timestamp`]).
//! - The response proves the responder holds `S_r` and binds the whole init.
//! - Forward secrecy: session keys depend on `DH(e_i, e_r)`, so learning both
//!   static keys later does not reveal them once the ephemerals are erased.
//! - Not hidden: the initiator's static key travels in clear (addresses are
//!   public anyway); who talks to whom is visible to on-path observers.
//!
//! Sans-IO, states as types: [`initiate`] returns the message and an
//! [`AwaitingResponse`], which [`AwaitingResponse::handle_response`] consumes;
//! [`respond`] handles an init and returns the response with the session.
//! Randomness (ephemeral keys, indexes) and time are inputs.

mod kdf;
#[cfg(test)]
mod tests;

use crate::crypto::kdf::Purpose;
use crate::crypto::{Nonce, Open, PacketCipher, RingAes256Gcm, Seal, SessionKey, TAG_LEN};
use crate::identity::{PublicKey, SecretKey};
use crate::wire::{
    HANDSHAKE_INIT_LEN, HANDSHAKE_RESPONSE_LEN, HandshakeInit, HandshakeInitRepr, HandshakeResponse,
    HandshakeResponseRepr, WireError,
};

/// Why a handshake message was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HandshakeError {
    #[error("malformed handshake message: {0}")]
    Wire(#[from] WireError),
    #[error("handshake authentication failed")]
    Authentication,
    #[error("peer sent a low-order (non-contributory) public key")]
    LowOrderKey,
    #[error("response is for another handshake (receiver index {got}, expected {expected})")]
    WrongIndex { got: u32, expected: u32 },
}

/// Which side of the handshake this node was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Initiator,
    Responder,
}

/// A completed handshake: everything needed to install the session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Established {
    pub role: Role,
    /// The peer's static (identity) key: its overlay address is derived from it.
    pub peer: PublicKey,
    /// Our index: the peer stamps it on packets it sends us.
    pub local_index: u32,
    /// The peer's index: we stamp it on packets we send.
    pub remote_index: u32,
    /// Key for packets we send.
    pub send: SessionKey,
    /// Key for packets we receive.
    pub receive: SessionKey,
}

/// An initiator waiting for the response to its init.
#[derive(Debug)]
pub struct AwaitingResponse {
    purpose: Purpose,
    local_public: PublicKey,
    local_static: SecretKey,
    peer: PublicKey,
    ephemeral: SecretKey,
    local_index: u32,
    init: [u8; HANDSHAKE_INIT_LEN],
    es: [u8; 32],
    ss: [u8; 32],
}

/// Starts a handshake with `peer`. `ephemeral` must be freshly generated for
/// this handshake and `timestamp` larger than any this node used before with
/// this peer (wall-clock nanoseconds do). Returns the init to send.
pub fn initiate(
    local: &SecretKey,
    peer: PublicKey,
    ephemeral: SecretKey,
    local_index: u32,
    timestamp: u64,
    purpose: Purpose,
) -> Result<([u8; HANDSHAKE_INIT_LEN], AwaitingResponse), HandshakeError> {
    let es = dh(&ephemeral, &peer)?;
    let ss = dh(local, &peer)?;
    let mut init = [0u8; HANDSHAKE_INIT_LEN];
    HandshakeInitRepr {
        sender_index: local_index,
        ephemeral: ephemeral.public_key(),
        static_key: local.public_key(),
        sealed_timestamp: timestamp.to_be_bytes(),
        tag: [0; TAG_LEN],
    }
    .emit(&mut init)?;
    let k1 = kdf::init_key(purpose, &es, &ss, &peer);
    let mut view = HandshakeInit::new_checked(&mut init[..])?;
    let aad: [u8; 72] = view.cleartext().try_into().expect("cleartext is 72 bytes by layout");
    let (sealed, tag) = view.timestamp_and_tag_mut();
    *tag = k1.seal_in_place(Nonce::new(0, 0), &aad, sealed).map_err(|_| HandshakeError::Authentication)?;
    let state = AwaitingResponse {
        purpose,
        local_public: local.public_key(),
        local_static: local.clone(),
        peer,
        ephemeral,
        local_index,
        init,
        es,
        ss,
    };
    Ok((init, state))
}

impl AwaitingResponse {
    /// The peer this handshake is with.
    pub fn peer(&self) -> PublicKey {
        self.peer
    }

    /// Our index in this handshake (responses name it).
    pub fn local_index(&self) -> u32 {
        self.local_index
    }

    /// Checks the responder's answer and completes the handshake.
    pub fn handle_response(self, message: &[u8]) -> Result<Established, HandshakeError> {
        let view = HandshakeResponse::new_checked(message)?;
        let response = HandshakeResponseRepr::parse(&view)?;
        if response.receiver_index != self.local_index {
            return Err(HandshakeError::WrongIndex { got: response.receiver_index, expected: self.local_index });
        }
        let ee = dh(&self.ephemeral, &response.ephemeral)?;
        let se = dh(&self.local_static, &response.ephemeral)?;
        let secrets = [self.es, self.ss, ee, se];
        let k2 = kdf::response_key(self.purpose, &secrets, &self.init);
        k2.open_in_place(Nonce::new(0, 0), view.cleartext(), &mut [], &response.tag)
            .map_err(|_| HandshakeError::Authentication)?;
        let keys = kdf::session_keys(
            self.purpose,
            &secrets,
            &self.ephemeral.public_key(),
            &response.ephemeral,
            &self.local_public,
            &self.peer,
        );
        Ok(Established {
            role: Role::Initiator,
            peer: self.peer,
            local_index: self.local_index,
            remote_index: response.sender_index,
            send: keys.initiator_to_responder,
            receive: keys.responder_to_initiator,
        })
    }
}

/// What a responder learnt from a valid init.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    pub session: Established,
    /// The initiator's timestamp: refuse the init (and drop `session`)
    /// unless it is larger than the last one accepted from this peer.
    pub timestamp: u64,
    /// The response to send back.
    pub response: [u8; HANDSHAKE_RESPONSE_LEN],
}

/// Handles an init addressed to `local`, answering with a fresh `ephemeral`
/// and our `local_index`.
pub fn respond(
    local: &SecretKey,
    message: &[u8],
    ephemeral: SecretKey,
    local_index: u32,
    purpose: Purpose,
) -> Result<Accepted, HandshakeError> {
    let mut init = [0u8; HANDSHAKE_INIT_LEN];
    let init_view = HandshakeInit::new_checked(message)?;
    init.copy_from_slice(message);
    let repr = HandshakeInitRepr::parse(&init_view)?;
    let local_public = local.public_key();
    let es = dh(local, &repr.ephemeral)?;
    let ss = dh(local, &repr.static_key)?;
    let k1 = kdf::init_key(purpose, &es, &ss, &local_public);
    let mut timestamp = repr.sealed_timestamp;
    k1.open_in_place(Nonce::new(0, 0), init_view.cleartext(), &mut timestamp, &repr.tag)
        .map_err(|_| HandshakeError::Authentication)?;

    let ee = dh(&ephemeral, &repr.ephemeral)?;
    let se = dh(&ephemeral, &repr.static_key)?;
    let secrets = [es, ss, ee, se];
    let mut response = [0u8; HANDSHAKE_RESPONSE_LEN];
    HandshakeResponseRepr {
        sender_index: local_index,
        receiver_index: repr.sender_index,
        ephemeral: ephemeral.public_key(),
        tag: [0; TAG_LEN],
    }
    .emit(&mut response)?;
    let k2 = kdf::response_key(purpose, &secrets, &init);
    let mut view = HandshakeResponse::new_checked(&mut response[..])?;
    let tag =
        k2.seal_in_place(Nonce::new(0, 0), view.cleartext(), &mut []).map_err(|_| HandshakeError::Authentication)?;
    *view.tag_mut() = tag;

    let keys =
        kdf::session_keys(purpose, &secrets, &repr.ephemeral, &ephemeral.public_key(), &repr.static_key, &local_public);
    Ok(Accepted {
        session: Established {
            role: Role::Responder,
            peer: repr.static_key,
            local_index,
            remote_index: repr.sender_index,
            send: keys.responder_to_initiator,
            receive: keys.initiator_to_responder,
        },
        timestamp: u64::from_be_bytes(timestamp),
        response,
    })
}

/// x25519 agreement that refuses low-order peer keys (an all-zero result).
fn dh(local: &SecretKey, peer: &PublicKey) -> Result<[u8; 32], HandshakeError> {
    let shared = *local.agree(peer);
    if shared == [0u8; 32] { Err(HandshakeError::LowOrderKey) } else { Ok(shared) }
}

/// A one-shot cipher for a handshake message (each key seals exactly once,
/// so the zero nonce is never reused).
fn message_cipher(key: [u8; 32]) -> RingAes256Gcm {
    RingAes256Gcm::new(&SessionKey::from_bytes(key))
}
