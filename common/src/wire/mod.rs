//! Wire formats: checked zero-copy views over untrusted bytes plus plain
//! `Repr`s (smoltcp style). Once a view's `new_checked` succeeded, no
//! accessor can panic; `Repr::parse` never panics on any input.
//!
//! Every packet starts with a version byte ([`VERSION`]) and a type byte
//! ([`PacketType`]):
//!
//! | type | packet | view | sealed with |
//! |---|---|---|---|
//! | 0x01 | DATA | [`RoutedPacket`] | the end-to-end session key |
//! | 0x02 | CONTROL | [`ControlPacket`] (TLV body: [`tlv`]) | the link session key |
//! | 0x03 | HANDSHAKE_INIT | [`HandshakeInit`] | (establishes the link key) |
//! | 0x04 | HANDSHAKE_RESPONSE | [`HandshakeResponse`] | (establishes the link key) |
//! | 0x05 | ROUTED_HANDSHAKE | [`RoutedPacket`], payload a handshake message | (establishes the end-to-end key) |
//!
//! A receiver first calls [`classify`] on the datagram (two byte reads), then
//! builds the view of that type with `new_checked` and works on it in place.
//! All multi-byte integers are big-endian.

mod error;

pub mod control_packet;
pub mod handshake;
pub mod routed;
pub mod tlv;

pub use control_packet::{CONTROL_HEADER_LEN, CONTROL_SHARD, ControlPacket, ControlRepr, control_nonce};
pub use error::WireError;
pub use handshake::{
    HANDSHAKE_INIT_LEN, HANDSHAKE_RESPONSE_LEN, HandshakeInit, HandshakeInitRepr, HandshakeResponse,
    HandshakeResponseRepr,
};
pub use routed::{DEFAULT_HOP_LIMIT, ROUTED_HEADER_LEN, RoutedKind, RoutedPacket, RoutedRepr};

/// The protocol version every packet starts with.
pub const VERSION: u8 = 1;

/// The second byte of every packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum PacketType {
    /// A routed, end-to-end sealed data packet.
    Data = 0x01,
    /// A link-local control packet sealed with the link's session key.
    Control = 0x02,
    /// First message of the link handshake between neighbours.
    HandshakeInit = 0x03,
    /// Second message of the link handshake between neighbours.
    HandshakeResponse = 0x04,
    /// An end-to-end handshake message, routed like DATA.
    RoutedHandshake = 0x05,
}

impl PacketType {
    /// The type with this wire value, if any.
    #[inline]
    pub const fn from_u8(value: u8) -> Option<Self> {
        match value {
            0x01 => Some(PacketType::Data),
            0x02 => Some(PacketType::Control),
            0x03 => Some(PacketType::HandshakeInit),
            0x04 => Some(PacketType::HandshakeResponse),
            0x05 => Some(PacketType::RoutedHandshake),
            _ => None,
        }
    }

    /// Whether packets of this type carry the routed header.
    #[inline]
    pub const fn is_routed(self) -> bool {
        matches!(self, PacketType::Data | PacketType::RoutedHandshake)
    }
}

impl TryFrom<u8> for PacketType {
    type Error = WireError;
    fn try_from(value: u8) -> Result<Self, WireError> {
        PacketType::from_u8(value).ok_or(WireError::UnknownType)
    }
}

/// Reads the version and type bytes of a datagram: the first step for every
/// received packet, before the view of that type is built.
#[inline]
pub fn classify(datagram: &[u8]) -> Result<PacketType, WireError> {
    match *datagram {
        [VERSION, kind, ..] => PacketType::try_from(kind),
        [_, _, ..] => Err(WireError::BadVersion),
        _ => Err(WireError::Truncated),
    }
}

/// Checks the version and type bytes against the type a parser expects.
#[inline]
fn check_version_and_type(bytes: &[u8], expected: impl Fn(PacketType) -> bool) -> Result<PacketType, WireError> {
    let kind = classify(bytes)?;
    if expected(kind) { Ok(kind) } else { Err(WireError::WrongType) }
}

/// Copies `N` bytes at `at`. Panics only when `bytes` is too short, which a
/// checked view rules out.
#[inline(always)]
fn array<const N: usize>(bytes: &[u8], at: usize) -> [u8; N] {
    let mut out = [0u8; N];
    out.copy_from_slice(&bytes[at..at + N]);
    out
}

#[inline(always)]
fn read_u16(bytes: &[u8], at: usize) -> u16 {
    u16::from_be_bytes(array(bytes, at))
}

#[inline(always)]
fn read_u32(bytes: &[u8], at: usize) -> u32 {
    u32::from_be_bytes(array(bytes, at))
}

#[inline(always)]
fn read_u64(bytes: &[u8], at: usize) -> u64 {
    u64::from_be_bytes(array(bytes, at))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classify_reads_version_then_type() {
        assert_eq!(classify(&[1, 1]), Ok(PacketType::Data));
        assert_eq!(classify(&[1, 5, 0, 0]), Ok(PacketType::RoutedHandshake));
        assert_eq!(classify(&[2, 1]), Err(WireError::BadVersion));
        assert_eq!(classify(&[1, 6]), Err(WireError::UnknownType));
        assert_eq!(classify(&[1, 0]), Err(WireError::UnknownType));
        assert_eq!(classify(&[1]), Err(WireError::Truncated));
        assert_eq!(classify(&[]), Err(WireError::Truncated));
    }

    #[test]
    fn every_type_byte_round_trips() {
        for value in 0..=u8::MAX {
            if let Some(kind) = PacketType::from_u8(value) {
                assert_eq!(kind as u8, value);
            }
        }
        assert_eq!((1..=5).filter_map(PacketType::from_u8).count(), 5);
    }
}
