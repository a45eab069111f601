//! Randomness as an input: ephemeral keys, session indexes and backoff
//! jitter come from an [`Entropy`] the caller injects, so tests and
//! simulations are deterministic ([`SeededEntropy`]) and the daemon uses the
//! operating system's source ([`OsEntropy`]).

use mycelium_common::identity::SecretKey;
use ring::rand::{SecureRandom, SystemRandom};

/// A source of random bytes.
pub trait Entropy: std::fmt::Debug + Send {
    /// Fills `out` with random bytes.
    fn fill(&mut self, out: &mut [u8]);

    fn next_u32(&mut self) -> u32 {
        let mut bytes = [0u8; 4];
        self.fill(&mut bytes);
        u32::from_be_bytes(bytes)
    }

    /// A fresh x25519 secret (a handshake's ephemeral key).
    fn secret_key(&mut self) -> SecretKey {
        let mut bytes = zeroize::Zeroizing::new([0u8; 32]);
        self.fill(bytes.as_mut());
        SecretKey::from_bytes(*bytes)
    }
}

/// The operating system's random source (for the daemon).
#[derive(Debug)]
pub struct OsEntropy(SystemRandom);

impl Default for OsEntropy {
    fn default() -> Self {
        OsEntropy::new()
    }
}

impl OsEntropy {
    pub fn new() -> Self {
        OsEntropy(SystemRandom::new())
    }
}

impl Entropy for OsEntropy {
    fn fill(&mut self, out: &mut [u8]) {
        // Without a working random source no key can be made at all; this
        // is the host failing, never peer input.
        self.0.fill(out).expect("the operating system's random source failed");
    }
}

/// A deterministic stream (BLAKE3 in XOF mode, keyed by the seed) for tests
/// and simulations. Never for a real node: its "ephemeral" keys are predictable.
#[derive(Debug, Clone)]
pub struct SeededEntropy {
    seed: [u8; 32],
    block: u64,
}

impl SeededEntropy {
    pub fn new(seed: u64) -> Self {
        let mut key = [0u8; 32];
        key[..8].copy_from_slice(&seed.to_be_bytes());
        SeededEntropy { seed: key, block: 0 }
    }
}

impl Entropy for SeededEntropy {
    fn fill(&mut self, out: &mut [u8]) {
        let mut hasher = blake3::Hasher::new_keyed(&self.seed);
        hasher.update(&self.block.to_be_bytes());
        hasher.finalize_xof().fill(out);
        self.block += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeded_entropy_is_deterministic_and_seeds_differ() {
        let (mut a, mut b, mut c) = (SeededEntropy::new(1), SeededEntropy::new(1), SeededEntropy::new(2));
        let (x, y, z) = (a.next_u32(), b.next_u32(), c.next_u32());
        assert_eq!(x, y);
        assert_ne!(x, z);
        assert_ne!(a.next_u32(), x, "successive draws differ");
    }
}
