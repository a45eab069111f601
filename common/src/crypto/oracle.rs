//! RustCrypto's AES-256-GCM behind the same traits: the independent
//! implementation that differential tests check ring against. Not for the
//! hot path (about a third of ring's speed here, see DESIGN.md).

use aes_gcm::aead::{AeadInOut, KeyInit};
use aes_gcm::{Aes256Gcm, Key};

use super::{Nonce, Open, OpenError, PacketCipher, Seal, SealError, SessionKey, Tag};

/// AES-256-GCM from the `aes-gcm` crate.
pub struct RustCryptoAes256Gcm(Aes256Gcm);

impl std::fmt::Debug for RustCryptoAes256Gcm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RustCryptoAes256Gcm(..)")
    }
}

impl PacketCipher for RustCryptoAes256Gcm {
    const NAME: &'static str = "rustcrypto-aes256gcm";

    fn new(key: &SessionKey) -> Self {
        RustCryptoAes256Gcm(Aes256Gcm::new(&Key::<Aes256Gcm>::from(*key.as_bytes())))
    }
}

impl Seal for RustCryptoAes256Gcm {
    fn seal_in_place(&self, nonce: Nonce, aad: &[u8], in_out: &mut [u8]) -> Result<Tag, SealError> {
        let nonce = aes_gcm::aead::Nonce::<Aes256Gcm>::from(*nonce.as_bytes());
        let tag = self.0.encrypt_inout_detached(&nonce, aad, in_out.into()).map_err(|_| SealError)?;
        let mut out = [0u8; super::TAG_LEN];
        out.copy_from_slice(&tag);
        Ok(out)
    }
}

impl Open for RustCryptoAes256Gcm {
    fn open_in_place(&self, nonce: Nonce, aad: &[u8], in_out: &mut [u8], tag: &Tag) -> Result<(), OpenError> {
        let nonce = aes_gcm::aead::Nonce::<Aes256Gcm>::from(*nonce.as_bytes());
        let tag = aes_gcm::Tag::from(*tag);
        self.0.decrypt_inout_detached(&nonce, aad, in_out.into(), &tag).map_err(|_| OpenError)
    }
}
