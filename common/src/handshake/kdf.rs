//! Key derivation for the handshake messages and the resulting session.

use ring::hkdf::{HKDF_SHA256, KeyType, Salt};

use super::message_cipher;
use crate::crypto::RingAes256Gcm;
use crate::crypto::kdf::{Purpose, SessionKeys, derive_session_keys};
use crate::identity::PublicKey;

const SALT: &[u8] = b"mycelium v1 handshake";

struct Len32;
impl KeyType for Len32 {
    fn len(&self) -> usize {
        32
    }
}

fn purpose_label(purpose: Purpose) -> &'static [u8] {
    match purpose {
        Purpose::Link => b"link",
        Purpose::EndToEnd => b"end-to-end",
    }
}

fn expand(ikm: &[&[u8]], info: &[&[u8]]) -> [u8; 32] {
    let mut concatenated = Vec::with_capacity(ikm.iter().map(|p| p.len()).sum());
    for part in ikm {
        concatenated.extend_from_slice(part);
    }
    let prk = Salt::new(HKDF_SHA256, SALT).extract(&concatenated);
    let mut out = [0u8; 32];
    prk.expand(info, Len32).and_then(|okm| okm.fill(&mut out)).expect("32 bytes is within HKDF-SHA256's output limit");
    out
}

/// Seals the init's timestamp: needs both DH results with the responder's
/// static key, and names it.
pub(super) fn init_key(purpose: Purpose, es: &[u8; 32], ss: &[u8; 32], responder: &PublicKey) -> RingAes256Gcm {
    message_cipher(expand(&[es, ss], &[b"init", purpose_label(purpose), responder.as_bytes()]))
}

/// Seals the response: needs all four DH results and binds the whole init.
pub(super) fn response_key(purpose: Purpose, secrets: &[[u8; 32]; 4], init: &[u8]) -> RingAes256Gcm {
    let [es, ss, ee, se] = secrets;
    message_cipher(expand(&[es, ss, ee, se], &[b"response", purpose_label(purpose), init]))
}

/// The session's keys: all four DH results plus both ephemerals as input,
/// both static keys (initiator first) bound by [`derive_session_keys`].
pub(super) fn session_keys(
    purpose: Purpose,
    secrets: &[[u8; 32]; 4],
    initiator_ephemeral: &PublicKey,
    responder_ephemeral: &PublicKey,
    initiator: &PublicKey,
    responder: &PublicKey,
) -> SessionKeys {
    let mut ikm = [0u8; 6 * 32];
    for (chunk, part) in ikm.chunks_exact_mut(32).zip(
        secrets
            .iter()
            .map(|s| &s[..])
            .chain([&initiator_ephemeral.as_bytes()[..], &responder_ephemeral.as_bytes()[..]]),
    ) {
        chunk.copy_from_slice(part);
    }
    derive_session_keys(&ikm, purpose, initiator, responder)
}
