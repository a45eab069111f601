//! A cipher that does nothing, so benchmarks can measure everything but the
//! crypto. It authenticates nothing: never install it on a real session.

use super::{Nonce, Open, OpenError, PacketCipher, Seal, SealError, SessionKey, Tag};

/// Leaves the payload as it is and writes an all-zero tag; accepts only an
/// all-zero tag back, so a benchmark's tampering paths still see failures.
#[derive(Debug, Clone, Copy, Default)]
pub struct NullCipher;

impl PacketCipher for NullCipher {
    const NAME: &'static str = "null";

    fn new(_key: &SessionKey) -> Self {
        NullCipher
    }
}

impl Seal for NullCipher {
    #[inline]
    fn seal_in_place(&self, _nonce: Nonce, _aad: &[u8], _in_out: &mut [u8]) -> Result<Tag, SealError> {
        Ok([0; super::TAG_LEN])
    }
}

impl Open for NullCipher {
    #[inline]
    fn open_in_place(&self, _nonce: Nonce, _aad: &[u8], _in_out: &mut [u8], tag: &Tag) -> Result<(), OpenError> {
        if *tag == [0; super::TAG_LEN] { Ok(()) } else { Err(OpenError) }
    }
}
