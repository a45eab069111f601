//! Packet crypto: an AEAD behind two small in-place traits, counter nonces,
//! replay windows and key derivation.
//!
//! How it fits together on the data path:
//! - The control daemon derives a pair of [`SessionKey`]s per session with
//!   [`kdf`] and installs them in the dataplane.
//! - A sending shard keeps its own counter per session and builds the nonce
//!   with [`Nonce::new`]`(shard, counter)`: the shard id sits in the nonce, so
//!   two shards sending on one key can never reuse a nonce.
//! - It seals the payload in place ([`Seal::seal_in_place`]), writing the tag
//!   after it. The receiver checks the counter against a [`ReplayWindow`]
//!   first, opens in place ([`Open::open_in_place`]), and only then marks the
//!   counter as seen. [`SharedReplayWindow`] does the same lock-free for a
//!   counter space whose packets may arrive on several shards at once.
//!
//! [`RingAes256Gcm`] is the hot-path cipher; [`NullCipher`] lets benchmarks
//! measure everything else; with the `oracle` feature, `oracle::RustCryptoAes256Gcm`
//! is the independent implementation that differential tests check ring against.

mod null;
#[cfg(any(test, feature = "oracle"))]
pub mod oracle;
mod replay;
mod replay_shared;
mod ring_aead;

pub mod kdf;

pub use null::NullCipher;
pub use replay::{ReplayError, ReplayWindow};
pub use replay_shared::{COUNTER_LIMIT, SHARED_WINDOW, SharedReplayWindow};
pub use ring_aead::RingAes256Gcm;

use zeroize::Zeroizing;

/// Length of an authentication tag.
pub const TAG_LEN: usize = 16;
/// Length of an AEAD nonce.
pub const NONCE_LEN: usize = 12;
/// Length of a symmetric session key (AES-256).
pub const KEY_LEN: usize = 32;

/// An authentication tag.
pub type Tag = [u8; TAG_LEN];

/// A symmetric key for one direction of one session. Zeroed on drop.
#[derive(Clone, PartialEq, Eq)]
pub struct SessionKey(Zeroizing<[u8; KEY_LEN]>);

impl SessionKey {
    /// Wraps raw key bytes.
    pub fn from_bytes(bytes: [u8; KEY_LEN]) -> Self {
        SessionKey(Zeroizing::new(bytes))
    }

    /// The raw key bytes (to install in the dataplane's key table).
    pub fn as_bytes(&self) -> &[u8; KEY_LEN] {
        &self.0
    }
}

impl std::fmt::Debug for SessionKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionKey(..)")
    }
}

/// A 96-bit nonce: the sending shard's id, three zero bytes, then the
/// shard's 64-bit packet counter, big-endian.
///
/// ```text
///  0      1      2      3      4                              12
/// +------+------+------+------+------------------------------+
/// |shard |   0  |   0  |   0  |        counter (u64 BE)      |
/// +------+------+------+------+------------------------------+
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Nonce([u8; NONCE_LEN]);

impl Nonce {
    /// The nonce for packet `counter` sent by `shard`.
    pub fn new(shard: u8, counter: u64) -> Self {
        let mut n = [0u8; NONCE_LEN];
        n[0] = shard;
        n[4..].copy_from_slice(&counter.to_be_bytes());
        Nonce(n)
    }

    /// The raw bytes.
    pub fn as_bytes(&self) -> &[u8; NONCE_LEN] {
        &self.0
    }
}

/// Sealing failed: the input is longer than the cipher can take.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("payload too long to seal")]
pub struct SealError;

/// Opening failed: the tag does not match (tampered, wrong key, or wrong
/// nonce). Deliberately carries no detail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("authentication failed")]
pub struct OpenError;

/// Encrypts in place.
pub trait Seal {
    /// Encrypts `in_out` in place and returns the tag over it and `aad`.
    fn seal_in_place(&self, nonce: Nonce, aad: &[u8], in_out: &mut [u8]) -> Result<Tag, SealError>;
}

/// Decrypts in place.
pub trait Open {
    /// Checks `tag` over `in_out` and `aad`, then decrypts `in_out` in place.
    /// On error the contents of `in_out` are unspecified and must be dropped.
    fn open_in_place(&self, nonce: Nonce, aad: &[u8], in_out: &mut [u8], tag: &Tag) -> Result<(), OpenError>;
}

/// A packet cipher: built from a [`SessionKey`], seals and opens.
pub trait PacketCipher: Seal + Open + Send + Sync + Sized {
    /// A short name for benchmarks and logs.
    const NAME: &'static str;
    /// Runs the key schedule once; every packet then reuses it.
    fn new(key: &SessionKey) -> Self;
}

#[cfg(test)]
mod differential_tests;
