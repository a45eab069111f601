//! The hot-path cipher: AES-256-GCM from ring (see DESIGN.md for the figures
//! that chose it).

use ring::aead::{AES_256_GCM, Aad, LessSafeKey, UnboundKey};

use super::{Nonce, Open, OpenError, PacketCipher, Seal, SealError, SessionKey, Tag};

/// AES-256-GCM via ring, with the key schedule done once in [`PacketCipher::new`].
pub struct RingAes256Gcm(LessSafeKey);

impl std::fmt::Debug for RingAes256Gcm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RingAes256Gcm(..)")
    }
}

impl PacketCipher for RingAes256Gcm {
    const NAME: &'static str = "ring-aes256gcm";

    fn new(key: &SessionKey) -> Self {
        let unbound = UnboundKey::new(&AES_256_GCM, key.as_bytes()).expect("AES-256 takes a 32-byte key");
        RingAes256Gcm(LessSafeKey::new(unbound))
    }
}

impl Seal for RingAes256Gcm {
    #[inline]
    fn seal_in_place(&self, nonce: Nonce, aad: &[u8], in_out: &mut [u8]) -> Result<Tag, SealError> {
        let nonce = ring::aead::Nonce::assume_unique_for_key(*nonce.as_bytes());
        let tag = self.0.seal_in_place_separate_tag(nonce, Aad::from(aad), in_out).map_err(|_| SealError)?;
        let mut out = [0u8; super::TAG_LEN];
        out.copy_from_slice(tag.as_ref());
        Ok(out)
    }
}

impl Open for RingAes256Gcm {
    #[inline]
    fn open_in_place(&self, nonce: Nonce, aad: &[u8], in_out: &mut [u8], tag: &Tag) -> Result<(), OpenError> {
        let nonce = ring::aead::Nonce::assume_unique_for_key(*nonce.as_bytes());
        self.0
            .open_in_place_separate_tag(nonce, Aad::from(aad), ring::aead::Tag::from(*tag), in_out, 0..)
            .map(|_| ())
            .map_err(|_| OpenError)
    }
}
