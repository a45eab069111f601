//! The routed header shared by DATA and ROUTED_HANDSHAKE packets.
//!
//! ```text
//!  0        1        2        3
//! +--------+--------+--------+--------+
//! |version |  type  |hop lim | shard  |   shard: the sending shard's id (goes into the nonce)
//! +--------+--------+--------+--------+
//! |           key id (u32 BE)         |   the receiver's session index; 0 in ROUTED_HANDSHAKE
//! +--------+--------+--------+--------+
//! |                                   |
//! +        counter (u64 BE)           +   the sending shard's packet counter
//! |                                   |
//! +-----------------------------------+
//! |   source overlay address (16)     |
//! |   destination overlay addr (16)   |
//! +-----------------------------------+   48
//! | payload (ciphertext) ... | tag 16 |   DATA: the tag is the last 16 bytes
//! +-----------------------------------+
//! ```
//!
//! In ROUTED_HANDSHAKE the payload is a whole [`HandshakeInit`](super::HandshakeInit)
//! or [`HandshakeResponse`](super::HandshakeResponse) message and there is no
//! outer tag; the destination's dataplane punts it to its control daemon.
//!
//! # Per packet in the dataplane
//! Receiving DATA for this node:
//! 1. `let mut packet = RoutedPacket::new_checked(&mut buf[..len])?;` (length,
//!    version, type; after this no accessor can panic),
//! 2. read [`key_id`](RoutedPacket::key_id), [`counter`](RoutedPacket::counter),
//!    [`destination`](RoutedPacket::destination) to find the session and check
//!    the replay window,
//! 3. `let aad = packet.aad(); let nonce = packet.nonce();` (stack values,
//!    taken before the mutable borrow),
//! 4. `if let Some((ciphertext, tag)) = packet.payload_and_tag_mut()` then
//!    `cipher.open_in_place(nonce, &aad, ciphertext, tag)`; the plaintext is
//!    then [`payload`](RoutedPacket::payload), in place.
//!
//! A relay reads [`destination`](RoutedPacket::destination), calls
//! [`decrement_hop_limit`](RoutedPacket::decrement_hop_limit) and forwards
//! the bytes unopened. A sender writes the header with [`RoutedRepr::emit`]
//! in front of the plaintext, then seals the payload in place and stores the
//! tag through [`payload_and_tag_mut`](RoutedPacket::payload_and_tag_mut);
//! the dataplane's hot path does the same in one pass with
//! [`RoutedRepr::emit_header`], which also returns the associated data, and
//! [`RoutedRepr::nonce`].
//! Nothing here allocates.
//!
//! # What is authenticated
//! The AEAD's associated data is the 48 header bytes with the hop-limit byte
//! set to zero ([`RoutedPacket::aad`]): relays decrement the hop limit, so it
//! cannot be authenticated; everything else in the header (type, shard, key
//! id, counter, both addresses) is, so a relay that changes any of it makes
//! the packet fail to open.

use super::{PacketType, WireError, array, check_version_and_type, read_u32, read_u64};
use crate::address::OverlayAddress;
use crate::crypto::{Nonce, TAG_LEN, Tag};

/// Length of the routed header.
pub const ROUTED_HEADER_LEN: usize = field::PAYLOAD;
/// The hop limit a sender starts with.
pub const DEFAULT_HOP_LIMIT: u8 = 64;

/// Byte offsets of the routed header (see the module diagram).
mod field {
    pub const VERSION: usize = 0;
    pub const TYPE: usize = 1;
    pub const HOP_LIMIT: usize = 2;
    pub const SHARD: usize = 3;
    pub const KEY_ID: usize = 4;
    pub const COUNTER: usize = 8;
    pub const SOURCE: usize = 16;
    pub const DESTINATION: usize = 32;
    pub const PAYLOAD: usize = 48;
}

/// Which of the two routed packet types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RoutedKind {
    /// DATA: the payload is ciphertext followed by a 16-byte tag.
    Data,
    /// ROUTED_HANDSHAKE: the payload is a handshake message, no outer tag.
    Handshake,
}

impl RoutedKind {
    /// The packet type byte of this kind.
    #[inline]
    pub const fn packet_type(self) -> PacketType {
        match self {
            RoutedKind::Data => PacketType::Data,
            RoutedKind::Handshake => PacketType::RoutedHandshake,
        }
    }

    /// Bytes after the payload: the tag for DATA, nothing for a handshake.
    #[inline]
    pub const fn trailer_len(self) -> usize {
        match self {
            RoutedKind::Data => TAG_LEN,
            RoutedKind::Handshake => 0,
        }
    }
}

/// A view of a routed packet (DATA or ROUTED_HANDSHAKE) over a buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoutedPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> RoutedPacket<T> {
    /// Wraps a buffer without checking it. Accessors may panic on a buffer
    /// shorter than the header; use [`new_checked`](Self::new_checked) on
    /// anything received.
    #[inline]
    pub const fn new_unchecked(buffer: T) -> Self {
        RoutedPacket { buffer }
    }

    /// Wraps a buffer after [`check`](Self::check): no accessor can panic.
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Self, WireError> {
        let packet = RoutedPacket { buffer };
        packet.check()?;
        Ok(packet)
    }

    /// Checks the version, that the type is DATA or ROUTED_HANDSHAKE, and
    /// the length: at least the header, plus the tag for DATA.
    #[inline]
    pub fn check(&self) -> Result<RoutedKind, WireError> {
        let bytes = self.buffer.as_ref();
        check_version_and_type(bytes, PacketType::is_routed)?;
        let kind = self.kind();
        if bytes.len() < ROUTED_HEADER_LEN + kind.trailer_len() {
            return Err(WireError::Truncated);
        }
        Ok(kind)
    }

    /// The underlying buffer.
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

    /// DATA or ROUTED_HANDSHAKE (any type byte other than ROUTED_HANDSHAKE
    /// reads as DATA; a checked view has one of the two).
    #[inline]
    pub fn kind(&self) -> RoutedKind {
        if self.buffer.as_ref()[field::TYPE] == PacketType::RoutedHandshake as u8 {
            RoutedKind::Handshake
        } else {
            RoutedKind::Data
        }
    }

    #[inline]
    pub fn hop_limit(&self) -> u8 {
        self.buffer.as_ref()[field::HOP_LIMIT]
    }

    /// The sending shard's id.
    #[inline]
    pub fn shard(&self) -> u8 {
        self.buffer.as_ref()[field::SHARD]
    }

    /// The receiver's session index (0 in ROUTED_HANDSHAKE).
    #[inline]
    pub fn key_id(&self) -> u32 {
        read_u32(self.buffer.as_ref(), field::KEY_ID)
    }

    /// The sending shard's packet counter.
    #[inline]
    pub fn counter(&self) -> u64 {
        read_u64(self.buffer.as_ref(), field::COUNTER)
    }

    /// The source overlay address, raw (not checked against `400::/7`).
    #[inline]
    pub fn source(&self) -> [u8; 16] {
        array(self.buffer.as_ref(), field::SOURCE)
    }

    /// The destination overlay address, raw (not checked against `400::/7`).
    #[inline]
    pub fn destination(&self) -> [u8; 16] {
        array(self.buffer.as_ref(), field::DESTINATION)
    }

    /// The AEAD nonce of this packet: `Nonce::new(shard, counter)`.
    #[inline]
    pub fn nonce(&self) -> Nonce {
        Nonce::new(self.shard(), self.counter())
    }

    /// The associated data: the 48 header bytes with the hop limit zeroed
    /// (relays change it, so it is not authenticated), on the stack.
    #[inline]
    pub fn aad(&self) -> [u8; ROUTED_HEADER_LEN] {
        let mut aad: [u8; ROUTED_HEADER_LEN] = array(self.buffer.as_ref(), 0);
        aad[field::HOP_LIMIT] = 0;
        aad
    }

    /// End of the payload: before the tag for DATA, the end for a handshake.
    #[inline]
    fn payload_end(&self) -> usize {
        self.buffer.as_ref().len().saturating_sub(self.kind().trailer_len())
    }

    /// The payload: the ciphertext without its tag (DATA), or the handshake
    /// message (ROUTED_HANDSHAKE).
    #[inline]
    pub fn payload(&self) -> &[u8] {
        let end = self.payload_end();
        self.buffer.as_ref().get(field::PAYLOAD..end).unwrap_or(&[])
    }

    /// The tag (the last 16 bytes) of a DATA packet; `None` for a
    /// ROUTED_HANDSHAKE, which has none.
    #[inline]
    pub fn tag(&self) -> Option<&Tag> {
        match self.kind() {
            RoutedKind::Data => self.buffer.as_ref().get(field::PAYLOAD..)?.last_chunk::<TAG_LEN>(),
            RoutedKind::Handshake => None,
        }
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> RoutedPacket<T> {
    #[inline]
    pub fn set_version(&mut self, value: u8) {
        self.buffer.as_mut()[field::VERSION] = value;
    }

    #[inline]
    pub fn set_kind(&mut self, kind: RoutedKind) {
        self.buffer.as_mut()[field::TYPE] = kind.packet_type() as u8;
    }

    #[inline]
    pub fn set_hop_limit(&mut self, value: u8) {
        self.buffer.as_mut()[field::HOP_LIMIT] = value;
    }

    /// A relay's step: decrements the hop limit and returns the new value,
    /// or returns `None` (and leaves the byte alone) when the hop limit is 0
    /// or 1, that is when the packet must not be forwarded any further.
    #[inline]
    pub fn decrement_hop_limit(&mut self) -> Option<u8> {
        let next = self.hop_limit().checked_sub(1).filter(|&h| h > 0)?;
        self.set_hop_limit(next);
        Some(next)
    }

    #[inline]
    pub fn set_shard(&mut self, value: u8) {
        self.buffer.as_mut()[field::SHARD] = value;
    }

    #[inline]
    pub fn set_key_id(&mut self, value: u32) {
        self.buffer.as_mut()[field::KEY_ID..field::COUNTER].copy_from_slice(&value.to_be_bytes());
    }

    #[inline]
    pub fn set_counter(&mut self, value: u64) {
        self.buffer.as_mut()[field::COUNTER..field::SOURCE].copy_from_slice(&value.to_be_bytes());
    }

    #[inline]
    pub fn set_source(&mut self, value: &[u8; 16]) {
        self.buffer.as_mut()[field::SOURCE..field::DESTINATION].copy_from_slice(value);
    }

    #[inline]
    pub fn set_destination(&mut self, value: &[u8; 16]) {
        self.buffer.as_mut()[field::DESTINATION..field::PAYLOAD].copy_from_slice(value);
    }

    /// The payload, mutable (see [`payload`](Self::payload)).
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let end = self.payload_end();
        self.buffer.as_mut().get_mut(field::PAYLOAD..end).unwrap_or(&mut [])
    }

    /// The ciphertext and the tag of a DATA packet, split for in-place
    /// crypto: open with `open_in_place(nonce, &aad, ciphertext, tag)`, or
    /// seal with `*tag = seal_in_place(nonce, &aad, ciphertext)?`. `None` for
    /// a ROUTED_HANDSHAKE.
    #[inline]
    pub fn payload_and_tag_mut(&mut self) -> Option<(&mut [u8], &mut Tag)> {
        match self.kind() {
            RoutedKind::Data => self.buffer.as_mut().get_mut(field::PAYLOAD..)?.split_last_chunk_mut::<TAG_LEN>(),
            RoutedKind::Handshake => None,
        }
    }
}

/// A routed header as plain values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RoutedRepr {
    pub kind: RoutedKind,
    pub hop_limit: u8,
    pub shard: u8,
    pub key_id: u32,
    pub counter: u64,
    pub source: OverlayAddress,
    pub destination: OverlayAddress,
    /// Payload bytes, without the DATA tag.
    pub payload_len: usize,
}

impl RoutedRepr {
    /// Reads a routed header (checking the view first) and both addresses,
    /// which must lie in `400::/7`.
    pub fn parse<T: AsRef<[u8]>>(packet: &RoutedPacket<T>) -> Result<Self, WireError> {
        let kind = packet.check()?;
        let address = |bytes| OverlayAddress::from_bytes(bytes).map_err(|_| WireError::NotOverlayAddress);
        Ok(RoutedRepr {
            kind,
            hop_limit: packet.hop_limit(),
            shard: packet.shard(),
            key_id: packet.key_id(),
            counter: packet.counter(),
            source: address(packet.source())?,
            destination: address(packet.destination())?,
            payload_len: packet.payload().len(),
        })
    }

    /// Header, payload and tag: the datagram's length.
    #[inline]
    pub const fn buffer_len(&self) -> usize {
        ROUTED_HEADER_LEN + self.payload_len + self.kind.trailer_len()
    }

    /// Writes the 48 header bytes at the front of `buf`, which must hold
    /// [`buffer_len`](Self::buffer_len) bytes; the payload and tag after the
    /// header are left to the caller (seal in place). The packet is
    /// `&buf[..self.buffer_len()]`.
    #[inline]
    pub fn emit(&self, buf: &mut [u8]) -> Result<(), WireError> {
        if buf.len() < self.buffer_len() {
            return Err(WireError::BufferTooShort);
        }
        let header = buf.first_chunk_mut::<ROUTED_HEADER_LEN>().ok_or(WireError::BufferTooShort)?;
        self.emit_header(header);
        Ok(())
    }

    /// Writes the 48 header bytes and returns the AEAD's associated data
    /// (the same bytes with the hop limit zeroed, as [`RoutedPacket::aad`]
    /// would read them back): the sender's one pass over the header, with
    /// no length checks left, right before it seals the payload under
    /// [`nonce`](Self::nonce).
    #[inline]
    pub fn emit_header(&self, header: &mut [u8; ROUTED_HEADER_LEN]) -> [u8; ROUTED_HEADER_LEN] {
        let mut aad = [0u8; ROUTED_HEADER_LEN];
        aad[field::VERSION] = super::VERSION;
        aad[field::TYPE] = self.kind.packet_type() as u8;
        aad[field::SHARD] = self.shard;
        aad[field::KEY_ID..field::COUNTER].copy_from_slice(&self.key_id.to_be_bytes());
        aad[field::COUNTER..field::SOURCE].copy_from_slice(&self.counter.to_be_bytes());
        aad[field::SOURCE..field::DESTINATION].copy_from_slice(self.source.as_bytes());
        aad[field::DESTINATION..field::PAYLOAD].copy_from_slice(self.destination.as_bytes());
        *header = aad;
        header[field::HOP_LIMIT] = self.hop_limit;
        aad
    }

    /// The AEAD nonce of this packet (what [`RoutedPacket::nonce`] reads
    /// back from the emitted header).
    #[inline]
    pub fn nonce(&self) -> Nonce {
        Nonce::new(self.shard, self.counter)
    }
}

#[cfg(test)]
mod tests;
