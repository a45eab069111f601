//! The CONTROL envelope: a link-local packet between neighbours, sealed with
//! the link's session key, whose body is a list of TLVs ([`super::tlv`]).
//!
//! ```text
//!  0        1        2        3
//! +--------+--------+--------+--------+
//! |version |  type  |    reserved     |   reserved: zero on emit, ignored on parse
//! +--------+--------+--------+--------+
//! |     receiver index (u32 BE)       |   the receiver's link session index
//! +--------+--------+--------+--------+
//! |                                   |
//! +         counter (u64 BE)          +   the sender's control packet counter
//! |                                   |
//! +-----------------------------------+   16
//! |   sealed TLV body ...  |  tag 16  |
//! +-----------------------------------+
//! ```
//!
//! The associated data is the 16 header bytes as received ([`ControlPacket::aad`]);
//! the nonce is `Nonce::new(CONTROL_SHARD, counter)` ([`ControlPacket::nonce`]):
//! shard id 0xFF is reserved for the control daemon, so dataplane shards use
//! 0..=0xFE.
//!
//! # Per packet
//! The dataplane classifies a datagram as CONTROL and punts it unopened. The
//! control daemon then: `ControlPacket::new_checked(&mut bytes[..])?`, looks up
//! the link session by [`receiver_index`](ControlPacket::receiver_index),
//! checks [`counter`](ControlPacket::counter) against the replay window,
//! takes `aad()` and `nonce()`, opens [`body_and_tag_mut`](ControlPacket::body_and_tag_mut)
//! in place, and iterates the plaintext [`body`](ControlPacket::body) with
//! [`TlvIter`](super::tlv::TlvIter). Sending is the mirror: emit the
//! [`ControlRepr`] header, emit the TLVs after it, seal the body in place.

use super::{PacketType, WireError, array, check_version_and_type, read_u32, read_u64};
use crate::crypto::{Nonce, TAG_LEN, Tag};

/// Length of the control header.
pub const CONTROL_HEADER_LEN: usize = field::BODY;
/// The shard id in the nonce of every control packet; no dataplane shard uses it.
pub const CONTROL_SHARD: u8 = 0xFF;

/// Byte offsets of the control header (see the module diagram).
mod field {
    pub const VERSION: usize = 0;
    pub const TYPE: usize = 1;
    pub const RESERVED: usize = 2;
    pub const RECEIVER_INDEX: usize = 4;
    pub const COUNTER: usize = 8;
    pub const BODY: usize = 16;
}

/// A view of a CONTROL packet over a buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControlPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> ControlPacket<T> {
    /// Wraps a buffer without checking it: accessors may panic on a short
    /// buffer. Use [`new_checked`](Self::new_checked) on anything received.
    #[inline]
    pub const fn new_unchecked(buffer: T) -> Self {
        ControlPacket { buffer }
    }

    /// Wraps a buffer after [`check`](Self::check): no accessor can panic.
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Self, WireError> {
        let packet = ControlPacket { buffer };
        packet.check()?;
        Ok(packet)
    }

    /// Checks the version, the type, and that header and tag fit.
    #[inline]
    pub fn check(&self) -> Result<(), WireError> {
        let bytes = self.buffer.as_ref();
        check_version_and_type(bytes, |t| t == PacketType::Control)?;
        if bytes.len() < CONTROL_HEADER_LEN + TAG_LEN {
            return Err(WireError::Truncated);
        }
        Ok(())
    }

    #[inline]
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// The whole packet.
    #[inline]
    pub fn as_bytes(&self) -> &[u8] {
        self.buffer.as_ref()
    }

    #[inline]
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[field::VERSION]
    }

    /// The receiver's link session index.
    #[inline]
    pub fn receiver_index(&self) -> u32 {
        read_u32(self.buffer.as_ref(), field::RECEIVER_INDEX)
    }

    /// The sender's control packet counter.
    #[inline]
    pub fn counter(&self) -> u64 {
        read_u64(self.buffer.as_ref(), field::COUNTER)
    }

    /// `Nonce::new(CONTROL_SHARD, counter)`.
    #[inline]
    pub fn nonce(&self) -> Nonce {
        control_nonce(self.counter())
    }

    /// The associated data: the 16 header bytes, as received.
    #[inline]
    pub fn aad(&self) -> [u8; CONTROL_HEADER_LEN] {
        array(self.buffer.as_ref(), 0)
    }

    /// The TLV body (sealed, or plaintext once opened), without the tag.
    #[inline]
    pub fn body(&self) -> &[u8] {
        let bytes = self.buffer.as_ref();
        bytes.get(field::BODY..bytes.len().saturating_sub(TAG_LEN)).unwrap_or(&[])
    }

    /// The tag: the last 16 bytes.
    #[inline]
    pub fn tag(&self) -> Option<&Tag> {
        self.buffer.as_ref().get(field::BODY..)?.last_chunk::<TAG_LEN>()
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> ControlPacket<T> {
    #[inline]
    pub fn set_version(&mut self, value: u8) {
        self.buffer.as_mut()[field::VERSION] = value;
    }

    #[inline]
    pub fn set_type(&mut self) {
        self.buffer.as_mut()[field::TYPE] = PacketType::Control as u8;
    }

    /// Writes the reserved bytes as zero.
    #[inline]
    pub fn clear_reserved(&mut self) {
        self.buffer.as_mut()[field::RESERVED..field::RECEIVER_INDEX].fill(0);
    }

    #[inline]
    pub fn set_receiver_index(&mut self, value: u32) {
        self.buffer.as_mut()[field::RECEIVER_INDEX..field::COUNTER].copy_from_slice(&value.to_be_bytes());
    }

    #[inline]
    pub fn set_counter(&mut self, value: u64) {
        self.buffer.as_mut()[field::COUNTER..field::BODY].copy_from_slice(&value.to_be_bytes());
    }

    /// The body, mutable (to write TLVs before sealing).
    #[inline]
    pub fn body_mut(&mut self) -> &mut [u8] {
        let bytes = self.buffer.as_mut();
        let end = bytes.len().saturating_sub(TAG_LEN);
        bytes.get_mut(field::BODY..end).unwrap_or(&mut [])
    }

    /// The body and the tag, split for in-place crypto.
    #[inline]
    pub fn body_and_tag_mut(&mut self) -> Option<(&mut [u8], &mut Tag)> {
        self.buffer.as_mut().get_mut(field::BODY..)?.split_last_chunk_mut::<TAG_LEN>()
    }
}

/// The nonce of control packet `counter`: shard id [`CONTROL_SHARD`].
#[inline]
pub fn control_nonce(counter: u64) -> Nonce {
    Nonce::new(CONTROL_SHARD, counter)
}

/// A control header as plain values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ControlRepr {
    pub receiver_index: u32,
    pub counter: u64,
    /// Length of the TLV body, without the tag.
    pub body_len: usize,
}

impl ControlRepr {
    /// Reads a control header (checking the view first).
    pub fn parse<T: AsRef<[u8]>>(packet: &ControlPacket<T>) -> Result<Self, WireError> {
        packet.check()?;
        Ok(ControlRepr {
            receiver_index: packet.receiver_index(),
            counter: packet.counter(),
            body_len: packet.body().len(),
        })
    }

    /// Header, body and tag: the datagram's length.
    #[inline]
    pub const fn buffer_len(&self) -> usize {
        CONTROL_HEADER_LEN + self.body_len + TAG_LEN
    }

    /// Writes the 16 header bytes (reserved bytes zero) at the front of
    /// `buf`, which must hold [`buffer_len`](Self::buffer_len) bytes; body
    /// and tag are left to the caller. The packet is `&buf[..self.buffer_len()]`.
    pub fn emit(&self, buf: &mut [u8]) -> Result<(), WireError> {
        if buf.len() < self.buffer_len() {
            return Err(WireError::BufferTooShort);
        }
        let mut packet = ControlPacket::new_unchecked(buf);
        packet.set_version(super::VERSION);
        packet.set_type();
        packet.clear_reserved();
        packet.set_receiver_index(self.receiver_index);
        packet.set_counter(self.counter);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[rustfmt::skip]
    const VECTOR: [u8; 16 + 3 + 16] = [
        0x01, 0x02, 0x00, 0x00,
        0xca, 0xfe, 0x00, 0x01,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00,
        0x04, 0x00, 0x00,
        0xb0, 0xb1, 0xb2, 0xb3, 0xb4, 0xb5, 0xb6, 0xb7, 0xb8, 0xb9, 0xba, 0xbb, 0xbc, 0xbd, 0xbe, 0xbf,
    ];
    const REPR: ControlRepr = ControlRepr { receiver_index: 0xcafe_0001, counter: 256, body_len: 3 };

    #[test]
    fn vector_parses_to_its_repr() {
        let packet = ControlPacket::new_checked(&VECTOR[..]).unwrap();
        assert_eq!(ControlRepr::parse(&packet), Ok(REPR));
        assert_eq!(packet.body(), &[0x04, 0x00, 0x00]);
        assert_eq!(packet.tag().unwrap()[..2], [0xb0, 0xb1]);
        assert_eq!(packet.aad(), VECTOR[..16]);
        assert_eq!(packet.nonce(), Nonce::new(0xFF, 256));
    }

    #[test]
    fn repr_emits_the_vector_header_with_reserved_zero() {
        let mut buf = VECTOR;
        buf[..16].fill(0xee);
        REPR.emit(&mut buf).unwrap();
        assert_eq!(buf, VECTOR);
        assert_eq!(REPR.buffer_len(), VECTOR.len());
        assert_eq!(REPR.emit(&mut [0u8; 34]), Err(WireError::BufferTooShort));
    }

    #[test]
    fn reserved_bytes_are_ignored_on_parse_but_authenticated() {
        let mut buf = VECTOR;
        buf[2] = 0x5a;
        let packet = ControlPacket::new_checked(&buf[..]).unwrap();
        assert_eq!(ControlRepr::parse(&packet), Ok(REPR));
        assert_eq!(packet.aad()[2], 0x5a);
    }

    #[test]
    fn every_truncation_is_refused_and_an_empty_body_is_fine() {
        for len in 0..32 {
            assert_eq!(ControlPacket::new_checked(&VECTOR[..len]).unwrap_err(), WireError::Truncated, "length {len}");
        }
        let mut empty = [0u8; 32];
        ControlRepr { body_len: 0, ..REPR }.emit(&mut empty).unwrap();
        let packet = ControlPacket::new_checked(&empty[..]).unwrap();
        assert_eq!(packet.body(), &[] as &[u8]);
    }

    #[test]
    fn other_versions_and_types_are_refused() {
        let mut buf = VECTOR;
        buf[1] = 0x01;
        assert_eq!(ControlPacket::new_checked(&buf[..]).unwrap_err(), WireError::WrongType);
        buf[1] = 0x02;
        buf[0] = 0;
        assert_eq!(ControlPacket::new_checked(&buf[..]).unwrap_err(), WireError::BadVersion);
    }

    proptest! {
        #[test]
        fn repr_emit_then_parse_is_identity(receiver_index in any::<u32>(), counter in any::<u64>(), body_len in 0usize..300) {
            let repr = ControlRepr { receiver_index, counter, body_len };
            let mut buf = vec![0xaau8; repr.buffer_len()];
            repr.emit(&mut buf).unwrap();
            prop_assert_eq!(ControlRepr::parse(&ControlPacket::new_unchecked(&buf[..])), Ok(repr));
        }

        #[test]
        fn any_bytes_are_refused_or_read_without_panic(mut bytes in proptest::collection::vec(any::<u8>(), 0..64), control in any::<bool>()) {
            if control && bytes.len() >= 2 {
                bytes[..2].copy_from_slice(&[1, 2]);
            }
            if let Ok(mut packet) = ControlPacket::new_checked(&mut bytes[..]) {
                let _ = (packet.version(), packet.receiver_index(), packet.counter(), packet.nonce(), packet.aad());
                prop_assert_eq!(packet.body().len() + CONTROL_HEADER_LEN + TAG_LEN, packet.as_bytes().len());
                prop_assert!(packet.tag().is_some());
                prop_assert!(packet.body_and_tag_mut().is_some());
                let _ = packet.body_mut();
            }
        }
    }
}
