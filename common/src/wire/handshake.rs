//! The two handshake messages between neighbours (HANDSHAKE_INIT and
//! HANDSHAKE_RESPONSE), and, unchanged, the payload of a ROUTED_HANDSHAKE.
//! They are not sealed by a session key: they establish it.
//!
//! ```text
//! HandshakeInit (96 bytes)                HandshakeResponse (60 bytes)
//!  0        1        2        3            0        1        2        3
//! +--------+--------+--------+--------+   +--------+--------+--------+--------+
//! |version |  0x03  |    reserved     |   |version |  0x04  |    reserved     |
//! +--------+--------+--------+--------+   +--------+--------+--------+--------+
//! |    sender index (u32 BE)          |   |    sender index (u32 BE)          |
//! +-----------------------------------+   +-----------------------------------+
//! |  ephemeral public key (32)        |   |    receiver index (u32 BE)        |
//! +-----------------------------------+ 40+-----------------------------------+ 12
//! |  static public key (32)           |   |  ephemeral public key (32)        |
//! +-----------------------------------+ 72+-----------------------------------+ 44
//! |  sealed timestamp (8)             |   |  tag (16) of an empty payload     |
//! +-----------------------------------+ 80+-----------------------------------+ 60
//! |  tag (16)                         |
//! +-----------------------------------+ 96
//! ```
//!
//! Reserved bytes are zero on emit and ignored on parse. A message has
//! exactly its length: a shorter buffer is [`WireError::Truncated`], a
//! longer one [`WireError::BadLength`], so the same parser takes a UDP
//! datagram or the payload slice of a ROUTED_HANDSHAKE
//! ([`RoutedPacket::payload`](super::RoutedPacket::payload)).
//!
//! # How the handshake code uses these
//! Receiving: `HandshakeInit::new_checked(bytes)?`, read the keys and index,
//! run the key agreement, then open the sealed timestamp in place through
//! [`HandshakeInit::timestamp_and_tag_mut`], binding whatever associated data
//! the handshake defines (for instance [`HandshakeInit::cleartext`], the
//! bytes before the sealed part). Sending: fill a [`HandshakeInitRepr`]
//! (or seal in place after emitting) and [`emit`](HandshakeInitRepr::emit).

use super::{PacketType, WireError, array, check_version_and_type, read_u32};
use crate::crypto::{TAG_LEN, Tag};
use crate::identity::PublicKey;

/// Length of a HandshakeInit message.
pub const HANDSHAKE_INIT_LEN: usize = init_field::END;
/// Length of a HandshakeResponse message.
pub const HANDSHAKE_RESPONSE_LEN: usize = response_field::END;
/// Length of the sealed timestamp in a HandshakeInit (without its tag).
pub const SEALED_TIMESTAMP_LEN: usize = 8;

/// Byte offsets shared by both messages.
mod field {
    pub const VERSION: usize = 0;
    pub const TYPE: usize = 1;
    pub const RESERVED: usize = 2;
    pub const SENDER_INDEX: usize = 4;
}

/// Byte offsets of a HandshakeInit (see the module diagram).
mod init_field {
    pub const SENDER_INDEX: usize = 4;
    pub const EPHEMERAL: usize = 8;
    pub const STATIC: usize = 40;
    pub const TIMESTAMP: usize = 72;
    pub const TAG: usize = 80;
    pub const END: usize = 96;
}

/// Byte offsets of a HandshakeResponse (see the module diagram).
mod response_field {
    pub const SENDER_INDEX: usize = 4;
    pub const RECEIVER_INDEX: usize = 8;
    pub const EPHEMERAL: usize = 12;
    pub const TAG: usize = 44;
    pub const END: usize = 60;
}

/// Checks version, type and exact length of a handshake message.
fn check_message(bytes: &[u8], kind: PacketType, len: usize) -> Result<(), WireError> {
    check_version_and_type(bytes, |t| t == kind)?;
    match bytes.len() {
        n if n < len => Err(WireError::Truncated),
        n if n > len => Err(WireError::BadLength),
        _ => Ok(()),
    }
}

/// Writes version, type and zero reserved bytes.
fn emit_preamble(buf: &mut [u8], kind: PacketType) {
    buf[field::VERSION] = super::VERSION;
    buf[field::TYPE] = kind as u8;
    buf[field::RESERVED..field::SENDER_INDEX].fill(0);
}

/// A view of a HandshakeInit message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandshakeInit<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> HandshakeInit<T> {
    /// Wraps a buffer without checking it (accessors may panic if short).
    pub const fn new_unchecked(buffer: T) -> Self {
        HandshakeInit { buffer }
    }

    /// Wraps a buffer after [`check`](Self::check): no accessor can panic.
    pub fn new_checked(buffer: T) -> Result<Self, WireError> {
        let message = HandshakeInit { buffer };
        message.check()?;
        Ok(message)
    }

    /// Checks version, type and the exact length (96 bytes).
    pub fn check(&self) -> Result<(), WireError> {
        check_message(self.buffer.as_ref(), PacketType::HandshakeInit, HANDSHAKE_INIT_LEN)
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }

    pub fn sender_index(&self) -> u32 {
        read_u32(self.buffer.as_ref(), init_field::SENDER_INDEX)
    }

    pub fn ephemeral(&self) -> PublicKey {
        PublicKey::from_bytes(array(self.buffer.as_ref(), init_field::EPHEMERAL))
    }

    /// The initiator's static (identity) public key.
    pub fn static_key(&self) -> PublicKey {
        PublicKey::from_bytes(array(self.buffer.as_ref(), init_field::STATIC))
    }

    pub fn sealed_timestamp(&self) -> [u8; SEALED_TIMESTAMP_LEN] {
        array(self.buffer.as_ref(), init_field::TIMESTAMP)
    }

    pub fn tag(&self) -> Tag {
        array(self.buffer.as_ref(), init_field::TAG)
    }

    /// The bytes before the sealed timestamp (header, index, both keys).
    pub fn cleartext(&self) -> &[u8] {
        &self.buffer.as_ref()[..init_field::TIMESTAMP]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> HandshakeInit<T> {
    /// The sealed timestamp and its tag, for opening or sealing in place.
    pub fn timestamp_and_tag_mut(&mut self) -> (&mut [u8; SEALED_TIMESTAMP_LEN], &mut Tag) {
        let sealed = &mut self.buffer.as_mut()[init_field::TIMESTAMP..init_field::END];
        let (timestamp, tag) = sealed.split_at_mut(SEALED_TIMESTAMP_LEN);
        (timestamp.try_into().expect("8 bytes by layout"), tag.try_into().expect("16 bytes by layout"))
    }
}

/// A HandshakeInit as plain values (the timestamp still sealed).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct HandshakeInitRepr {
    pub sender_index: u32,
    pub ephemeral: PublicKey,
    pub static_key: PublicKey,
    pub sealed_timestamp: [u8; SEALED_TIMESTAMP_LEN],
    pub tag: Tag,
}

impl HandshakeInitRepr {
    /// Reads a HandshakeInit (checking the view first).
    pub fn parse<T: AsRef<[u8]>>(message: &HandshakeInit<T>) -> Result<Self, WireError> {
        message.check()?;
        Ok(HandshakeInitRepr {
            sender_index: message.sender_index(),
            ephemeral: message.ephemeral(),
            static_key: message.static_key(),
            sealed_timestamp: message.sealed_timestamp(),
            tag: message.tag(),
        })
    }

    /// Always [`HANDSHAKE_INIT_LEN`].
    pub const fn buffer_len(&self) -> usize {
        HANDSHAKE_INIT_LEN
    }

    /// Writes all 96 bytes at the front of `buf`.
    pub fn emit(&self, buf: &mut [u8]) -> Result<(), WireError> {
        let buf = buf.get_mut(..HANDSHAKE_INIT_LEN).ok_or(WireError::BufferTooShort)?;
        emit_preamble(buf, PacketType::HandshakeInit);
        buf[init_field::SENDER_INDEX..init_field::EPHEMERAL].copy_from_slice(&self.sender_index.to_be_bytes());
        buf[init_field::EPHEMERAL..init_field::STATIC].copy_from_slice(self.ephemeral.as_bytes());
        buf[init_field::STATIC..init_field::TIMESTAMP].copy_from_slice(self.static_key.as_bytes());
        buf[init_field::TIMESTAMP..init_field::TAG].copy_from_slice(&self.sealed_timestamp);
        buf[init_field::TAG..init_field::END].copy_from_slice(&self.tag);
        Ok(())
    }
}

/// A view of a HandshakeResponse message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandshakeResponse<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> HandshakeResponse<T> {
    /// Wraps a buffer without checking it (accessors may panic if short).
    pub const fn new_unchecked(buffer: T) -> Self {
        HandshakeResponse { buffer }
    }

    /// Wraps a buffer after [`check`](Self::check): no accessor can panic.
    pub fn new_checked(buffer: T) -> Result<Self, WireError> {
        let message = HandshakeResponse { buffer };
        message.check()?;
        Ok(message)
    }

    /// Checks version, type and the exact length (60 bytes).
    pub fn check(&self) -> Result<(), WireError> {
        check_message(self.buffer.as_ref(), PacketType::HandshakeResponse, HANDSHAKE_RESPONSE_LEN)
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }

    pub fn sender_index(&self) -> u32 {
        read_u32(self.buffer.as_ref(), response_field::SENDER_INDEX)
    }

    /// The initiator's index, echoed from its HandshakeInit.
    pub fn receiver_index(&self) -> u32 {
        read_u32(self.buffer.as_ref(), response_field::RECEIVER_INDEX)
    }

    pub fn ephemeral(&self) -> PublicKey {
        PublicKey::from_bytes(array(self.buffer.as_ref(), response_field::EPHEMERAL))
    }

    /// The tag over the empty sealed payload.
    pub fn tag(&self) -> Tag {
        array(self.buffer.as_ref(), response_field::TAG)
    }

    /// The bytes before the tag (header, both indexes, ephemeral key).
    pub fn cleartext(&self) -> &[u8] {
        &self.buffer.as_ref()[..response_field::TAG]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> HandshakeResponse<T> {
    /// The tag, to store after sealing the empty payload.
    pub fn tag_mut(&mut self) -> &mut Tag {
        (&mut self.buffer.as_mut()[response_field::TAG..response_field::END]).try_into().expect("16 bytes by layout")
    }
}

/// A HandshakeResponse as plain values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct HandshakeResponseRepr {
    pub sender_index: u32,
    pub receiver_index: u32,
    pub ephemeral: PublicKey,
    pub tag: Tag,
}

impl HandshakeResponseRepr {
    /// Reads a HandshakeResponse (checking the view first).
    pub fn parse<T: AsRef<[u8]>>(message: &HandshakeResponse<T>) -> Result<Self, WireError> {
        message.check()?;
        Ok(HandshakeResponseRepr {
            sender_index: message.sender_index(),
            receiver_index: message.receiver_index(),
            ephemeral: message.ephemeral(),
            tag: message.tag(),
        })
    }

    /// Always [`HANDSHAKE_RESPONSE_LEN`].
    pub const fn buffer_len(&self) -> usize {
        HANDSHAKE_RESPONSE_LEN
    }

    /// Writes all 60 bytes at the front of `buf`.
    pub fn emit(&self, buf: &mut [u8]) -> Result<(), WireError> {
        let buf = buf.get_mut(..HANDSHAKE_RESPONSE_LEN).ok_or(WireError::BufferTooShort)?;
        emit_preamble(buf, PacketType::HandshakeResponse);
        let f = |at: usize, len: usize| at..at + len;
        buf[f(response_field::SENDER_INDEX, 4)].copy_from_slice(&self.sender_index.to_be_bytes());
        buf[f(response_field::RECEIVER_INDEX, 4)].copy_from_slice(&self.receiver_index.to_be_bytes());
        buf[response_field::EPHEMERAL..response_field::TAG].copy_from_slice(self.ephemeral.as_bytes());
        buf[f(response_field::TAG, TAG_LEN)].copy_from_slice(&self.tag);
        Ok(())
    }
}

#[cfg(test)]
mod tests;
