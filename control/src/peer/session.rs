//! One established link session: the link keys of one handshake, both
//! indexes, our send counter and the receive replay window, and how CONTROL
//! packets are sealed and opened with them.
//!
//! Sealing: the 16-byte envelope header ([`ControlRepr`]: the peer's index
//! and our counter) is the associated data, the nonce is
//! [`control_nonce`]`(counter)`, the TLV body is encrypted in place and the
//! tag appended. Opening is the mirror, with the replay window checked
//! before the (costly) open and updated only after it authenticated.

use mycelium_common::crypto::{Open, PacketCipher, ReplayWindow, RingAes256Gcm, Seal, TAG_LEN};
use mycelium_common::handshake::{Established, Role};
use mycelium_common::time::Timestamp;
use mycelium_common::wire::tlv::{ControlMessage, TLV_HEADER_LEN};
use mycelium_common::wire::{CONTROL_HEADER_LEN, ControlPacket, ControlRepr, control_nonce};

use super::counters::DropReason;

/// Bytes a CONTROL packet adds around its TLV body.
pub const CONTROL_OVERHEAD: usize = CONTROL_HEADER_LEN + TAG_LEN;

/// The keys and counters of one handshake's session.
#[derive(Debug)]
pub struct LinkSession {
    pub local_index: u32,
    pub remote_index: u32,
    pub role: Role,
    pub established_at: Timestamp,
    send: RingAes256Gcm,
    receive: RingAes256Gcm,
    send_counter: u64,
    window: ReplayWindow,
}

impl LinkSession {
    pub fn new(session: &Established, now: Timestamp) -> Self {
        LinkSession {
            local_index: session.local_index,
            remote_index: session.remote_index,
            role: session.role,
            established_at: now,
            send: RingAes256Gcm::new(&session.send),
            receive: RingAes256Gcm::new(&session.receive),
            send_counter: 0,
            window: ReplayWindow::new(),
        }
    }

    /// Packets sealed so far (the next counter).
    pub fn sent(&self) -> u64 {
        self.send_counter
    }

    /// Seals one TLV body into a whole CONTROL datagram.
    pub fn seal(&mut self, body: &[u8]) -> Vec<u8> {
        let repr = ControlRepr { receiver_index: self.remote_index, counter: self.send_counter, body_len: body.len() };
        self.send_counter += 1;
        let mut packet = vec![0u8; repr.buffer_len()];
        repr.emit(&mut packet).expect("the buffer is buffer_len() long");
        packet[CONTROL_HEADER_LEN..CONTROL_HEADER_LEN + body.len()].copy_from_slice(body);
        let mut view = ControlPacket::new_unchecked(&mut packet[..]);
        let aad = view.aad();
        let (body, tag) = view.body_and_tag_mut().expect("header and tag fit by construction");
        // A control body is at most one datagram: far below AES-GCM's limit.
        *tag = self.send.seal_in_place(control_nonce(repr.counter), &aad, body).expect("body within AES-GCM limits");
        packet
    }

    /// Opens a CONTROL packet addressed to this session in place and returns
    /// the plaintext TLV body.
    pub fn open<'a>(&mut self, packet: &'a mut [u8]) -> Result<&'a [u8], DropReason> {
        let mut view = ControlPacket::new_checked(&mut *packet).map_err(|_| DropReason::Malformed)?;
        let counter = view.counter();
        self.window.check(counter).map_err(|_| DropReason::Replay)?;
        let aad = view.aad();
        let (body, tag) = view.body_and_tag_mut().ok_or(DropReason::Malformed)?;
        let tag = *tag;
        self.receive.open_in_place(control_nonce(counter), &aad, body, &tag).map_err(|_| DropReason::AuthFailed)?;
        self.window.accept(counter).map_err(|_| DropReason::Replay)?;
        let end = packet.len() - TAG_LEN;
        Ok(&packet[CONTROL_HEADER_LEN..end])
    }
}

/// Why messages could not be packed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PackError {
    #[error("message {index} needs {len} bytes, more than a control packet's body can hold ({max})")]
    TooLarge { index: usize, len: usize, max: usize },
    #[error("message {index} cannot be encoded: {source}")]
    Encode { index: usize, source: mycelium_common::wire::WireError },
}

/// Packs `messages` in order into as few TLV bodies of at most `max_body`
/// bytes as they fit in (greedy: a body is closed when the next message does
/// not fit). Refuses the whole batch if any message cannot be sent.
pub fn pack(messages: &[ControlMessage], max_body: usize) -> Result<Vec<Vec<u8>>, PackError> {
    let mut bodies: Vec<Vec<u8>> = Vec::new();
    let mut current: Vec<u8> = Vec::new();
    for (index, message) in messages.iter().enumerate() {
        let len = message.buffer_len();
        if len > max_body || len < TLV_HEADER_LEN {
            return Err(PackError::TooLarge { index, len, max: max_body });
        }
        if current.len() + len > max_body {
            bodies.push(std::mem::take(&mut current));
        }
        let at = current.len();
        current.resize(at + len, 0);
        message.emit(&mut current[at..]).map_err(|source| PackError::Encode { index, source })?;
    }
    if !current.is_empty() || bodies.is_empty() {
        bodies.push(current);
    }
    Ok(bodies)
}

#[cfg(test)]
mod tests {
    use mycelium_common::wire::tlv::{Probe, TlvIter};

    use super::*;

    fn probe(padding: u16) -> ControlMessage {
        ControlMessage::Probe(Probe { train_id: 1, index: 0, count: 1, sent_us: 0, padding })
    }

    #[test]
    fn packing_fills_bodies_in_order_and_never_exceeds_the_limit() {
        let messages: Vec<_> = (0..10).map(|i| probe(100 + i)).collect();
        let bodies = pack(&messages, 400).unwrap();
        assert!(bodies.iter().all(|b| b.len() <= 400));
        assert_eq!(bodies.len(), 4, "three 119..128-byte TLVs fit in 400, so 10 need 4 bodies");
        let parsed: Vec<_> = bodies.iter().flat_map(|b| TlvIter::new(b)).map(Result::unwrap).collect();
        assert_eq!(parsed, messages);
    }

    #[test]
    fn packing_refuses_a_message_larger_than_a_body_and_sends_an_empty_body_for_nothing() {
        assert_eq!(pack(&[probe(0), probe(500)], 400), Err(PackError::TooLarge { index: 1, len: 519, max: 400 }));
        assert_eq!(pack(&[], 400).unwrap(), vec![Vec::<u8>::new()]);
    }
}
