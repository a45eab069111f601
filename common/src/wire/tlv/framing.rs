//! TLV framing: a [`Tlv`] view over one TLV, and [`TlvIter`] over a whole
//! control body.
//!
//! ```text
//!  0        1        2        3
//! +--------+--------+--------+--------+---
//! |  type  | length (u16 BE) |  value (length bytes) ...
//! +--------+--------+--------+--------+---
//! ```

use super::ControlMessage;
use crate::wire::{WireError, read_u16};

/// Length of the TLV header (type and length).
pub const TLV_HEADER_LEN: usize = field::VALUE;

mod field {
    pub const TYPE: usize = 0;
    pub const LENGTH: usize = 1;
    pub const VALUE: usize = 3;
}

/// A view of one TLV at the start of a buffer (which may go on past it:
/// [`total_len`](Tlv::total_len) is where the next TLV starts).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tlv<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Tlv<T> {
    /// Wraps a buffer without checking it (accessors may panic if short).
    pub const fn new_unchecked(buffer: T) -> Self {
        Tlv { buffer }
    }

    /// Wraps a buffer after [`check`](Self::check): no accessor can panic.
    pub fn new_checked(buffer: T) -> Result<Self, WireError> {
        let tlv = Tlv { buffer };
        tlv.check()?;
        Ok(tlv)
    }

    /// Checks that the header and the whole value are in the buffer.
    pub fn check(&self) -> Result<(), WireError> {
        let bytes = self.buffer.as_ref();
        if bytes.len() < TLV_HEADER_LEN || bytes.len() < self.total_len() {
            return Err(WireError::Truncated);
        }
        Ok(())
    }

    /// The TLV type ([`super::types`]).
    pub fn kind(&self) -> u8 {
        self.buffer.as_ref()[field::TYPE]
    }

    /// The value length.
    pub fn length(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::LENGTH)
    }

    /// Header plus value.
    pub fn total_len(&self) -> usize {
        TLV_HEADER_LEN + usize::from(self.length())
    }

    /// The value bytes.
    pub fn value(&self) -> &[u8] {
        &self.buffer.as_ref()[field::VALUE..self.total_len()]
    }
}

impl ControlMessage {
    /// Parses one TLV (checking the view first). Unknown types give
    /// [`WireError::UnknownType`]; [`TlvIter`] skips those.
    pub fn parse<T: AsRef<[u8]>>(tlv: &Tlv<T>) -> Result<Self, WireError> {
        tlv.check()?;
        ControlMessage::parse_value(tlv.kind(), tlv.value())
    }

    /// The whole TLV's length: header plus [`value_len`](Self::value_len).
    pub fn buffer_len(&self) -> usize {
        TLV_HEADER_LEN + self.value_len()
    }

    /// Writes the whole TLV at the front of `buf` and returns its length.
    /// Refuses prefixes a receiver would refuse, values longer than 65535
    /// bytes, and a `buf` shorter than [`buffer_len`](Self::buffer_len);
    /// on error nothing is written.
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize, WireError> {
        let len = self.buffer_len();
        let out = buf.get_mut(..len).ok_or(WireError::BufferTooShort)?;
        let value_len = u16::try_from(self.value_len()).map_err(|_| WireError::TooLong)?;
        let (header, value) = out.split_at_mut(TLV_HEADER_LEN);
        self.emit_value(value)?;
        header[field::TYPE] = self.tlv_type();
        header[field::LENGTH..field::VALUE].copy_from_slice(&value_len.to_be_bytes());
        Ok(len)
    }
}

/// Writes `messages` one after the other at the front of `buf` and returns
/// the body length; stops at the first message that cannot be written.
pub fn emit_messages(messages: &[ControlMessage], buf: &mut [u8]) -> Result<usize, WireError> {
    let mut at = 0;
    for message in messages {
        at += message.emit(buf.get_mut(at..).unwrap_or(&mut []))?;
    }
    Ok(at)
}

/// The messages of a control body, in order.
///
/// Yields `Ok` for each known message, skips TLVs of unknown type (a newer
/// sender's messages), and yields `Err` for a known TLV whose value is
/// malformed, then goes on with the next TLV (the framing is intact). A TLV
/// that runs past the end of the body yields [`WireError::Truncated`] and
/// ends the iteration. Never panics, never allocates.
#[derive(Debug, Clone)]
pub struct TlvIter<'a> {
    rest: &'a [u8],
}

impl<'a> TlvIter<'a> {
    /// Iterates the TLVs of an opened control body.
    pub fn new(body: &'a [u8]) -> Self {
        TlvIter { rest: body }
    }
}

impl Iterator for TlvIter<'_> {
    type Item = Result<ControlMessage, WireError>;

    fn next(&mut self) -> Option<Self::Item> {
        while !self.rest.is_empty() {
            let tlv = match Tlv::new_checked(self.rest) {
                Ok(tlv) => tlv,
                Err(e) => {
                    self.rest = &[];
                    return Some(Err(e));
                }
            };
            self.rest = self.rest.get(tlv.total_len()..).unwrap_or(&[]);
            match ControlMessage::parse_value(tlv.kind(), tlv.value()) {
                Err(WireError::UnknownType) => continue,
                result => return Some(result),
            }
        }
        None
    }
}

impl std::iter::FusedIterator for TlvIter<'_> {}
