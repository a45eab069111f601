//! The checks behind each fuzz target, and the seed corpus.
//!
//! Each `check` function takes arbitrary bytes and asserts what must hold
//! for any input: the parser either refuses the bytes or every accessor
//! answers without panicking, and a parsed `Repr`, emitted again, parses back
//! equal (and, where the format has no ignored bits, to the same bytes). The
//! targets in `fuzz_targets/` are one line each; `tests/seeds.rs` runs the
//! same checks over the committed seeds and regenerates them.
//!
//! The wire-format checks are here; the key table, the handshake state
//! machine and the text parsers have a module each.

pub mod address;
pub mod handshake;
pub mod keytable;
pub mod offload;
pub mod seeds;

pub use address::address_parse;
pub use handshake::handshake_respond;
pub use keytable::keytable_validate;
pub use offload::offload_split;

use mycelium_common::crypto::{Nonce, TAG_LEN};
use mycelium_common::wire::tlv::{ControlMessage, TLV_HEADER_LEN, Tlv, TlvIter};
use mycelium_common::wire::{
    CONTROL_HEADER_LEN, CONTROL_SHARD, ControlPacket, ControlRepr, HandshakeInit, HandshakeInitRepr, HandshakeResponse,
    HandshakeResponseRepr, PacketType, ROUTED_HEADER_LEN, RoutedKind, RoutedPacket, RoutedRepr, classify,
};

/// The routed header (DATA and ROUTED_HANDSHAKE).
pub fn routed(data: &[u8]) {
    let mut buf = data.to_vec();
    let Ok(mut packet) = RoutedPacket::new_checked(&mut buf[..]) else {
        assert!(RoutedRepr::parse(&RoutedPacket::new_unchecked(data)).is_err());
        return;
    };
    assert!(classify(data).is_ok_and(PacketType::is_routed));
    let tag_len = packet.tag().map_or(0, |t| t.len());
    assert_eq!(tag_len, if packet.kind() == RoutedKind::Data { TAG_LEN } else { 0 });
    assert_eq!(ROUTED_HEADER_LEN + packet.payload().len() + tag_len, data.len());
    assert_eq!(packet.nonce(), Nonce::new(packet.shard(), packet.counter()));
    let aad = packet.aad();
    assert_eq!((aad[2], &aad[..2], &aad[3..]), (0, &data[..2], &data[3..ROUTED_HEADER_LEN]));
    let _ = (packet.version(), packet.key_id(), packet.source(), packet.destination());

    if let Ok(repr) = RoutedRepr::parse(&packet) {
        assert_eq!(repr.buffer_len(), data.len());
        let mut out = data.to_vec();
        out[..ROUTED_HEADER_LEN].fill(0);
        repr.emit(&mut out).expect("the buffer has the parsed length");
        assert_eq!(out, data, "the routed header has no ignored bits");
    }

    let hop_limit = packet.hop_limit();
    match packet.decrement_hop_limit() {
        Some(next) => assert_eq!((next, packet.hop_limit()), (hop_limit - 1, hop_limit - 1)),
        None => assert!(hop_limit <= 1 && packet.hop_limit() == hop_limit),
    }
    let split = packet.payload_and_tag_mut().map(|(payload, tag)| payload.len() + tag.len());
    assert_eq!(split.is_some(), tag_len == TAG_LEN);
    let _ = packet.payload_mut();
}

/// The CONTROL envelope.
pub fn control_packet(data: &[u8]) {
    let mut buf = data.to_vec();
    let Ok(mut packet) = ControlPacket::new_checked(&mut buf[..]) else {
        assert!(ControlRepr::parse(&ControlPacket::new_unchecked(data)).is_err());
        return;
    };
    assert_eq!(classify(data), Ok(PacketType::Control));
    assert_eq!(CONTROL_HEADER_LEN + packet.body().len() + TAG_LEN, data.len());
    assert_eq!(packet.aad()[..], data[..CONTROL_HEADER_LEN]);
    assert_eq!(packet.nonce(), Nonce::new(CONTROL_SHARD, packet.counter()));
    let _ = (packet.version(), packet.receiver_index(), packet.tag());

    let repr = ControlRepr::parse(&packet).expect("a checked control packet parses");
    assert_eq!(repr.buffer_len(), data.len());
    let mut out = data.to_vec();
    repr.emit(&mut out).expect("the buffer has the parsed length");
    let mut expected = data.to_vec();
    expected[2..4].fill(0); // reserved: zero on emit
    assert_eq!(out, expected);
    assert_eq!(ControlRepr::parse(&ControlPacket::new_unchecked(&out[..])), Ok(repr));
    assert!(packet.body_and_tag_mut().is_some());
    let _ = packet.body_mut();
}

/// The HandshakeInit message.
pub fn handshake_init(data: &[u8]) {
    let mut buf = data.to_vec();
    let Ok(mut message) = HandshakeInit::new_checked(&mut buf[..]) else {
        assert!(HandshakeInitRepr::parse(&HandshakeInit::new_unchecked(data)).is_err());
        return;
    };
    let _ = (message.sender_index(), message.ephemeral(), message.static_key(), message.sealed_timestamp());
    assert_eq!(message.cleartext(), &data[..72]);
    let repr = HandshakeInitRepr::parse(&message).expect("a checked message parses");
    let mut out = vec![0xa5; repr.buffer_len()];
    repr.emit(&mut out).expect("the buffer has the message length");
    let mut expected = data.to_vec();
    expected[2..4].fill(0);
    assert_eq!(out, expected);
    let (timestamp, tag) = message.timestamp_and_tag_mut();
    assert_eq!((&timestamp[..], &tag[..]), (&data[72..80], &data[80..]));
}

/// The HandshakeResponse message.
pub fn handshake_response(data: &[u8]) {
    let mut buf = data.to_vec();
    let Ok(mut message) = HandshakeResponse::new_checked(&mut buf[..]) else {
        assert!(HandshakeResponseRepr::parse(&HandshakeResponse::new_unchecked(data)).is_err());
        return;
    };
    let _ = (message.sender_index(), message.receiver_index(), message.ephemeral());
    assert_eq!(message.cleartext(), &data[..44]);
    let repr = HandshakeResponseRepr::parse(&message).expect("a checked message parses");
    let mut out = vec![0xa5; repr.buffer_len()];
    repr.emit(&mut out).expect("the buffer has the message length");
    let mut expected = data.to_vec();
    expected[2..4].fill(0);
    assert_eq!(out, expected);
    assert_eq!(&message.tag_mut()[..], &data[44..]);
}

/// A control body: iteration, and a single TLV at the front.
pub fn tlv_body(data: &[u8]) {
    let mut items = 0;
    for item in TlvIter::new(data) {
        items += 1;
        if let Ok(message) = item {
            reemits_equal(&message);
        }
    }
    assert!(items <= data.len() / TLV_HEADER_LEN + 1, "each item consumes a TLV header");
    match Tlv::new_checked(data) {
        Ok(tlv) => {
            assert!(tlv.total_len() <= data.len());
            if let Ok(message) = ControlMessage::parse(&tlv) {
                assert_eq!((message.tlv_type(), message.buffer_len()), (tlv.kind(), tlv.total_len()));
                reemits_equal(&message);
            }
        }
        Err(_) => assert!(ControlMessage::parse(&Tlv::new_unchecked(data)).is_err()),
    }
}

fn reemits_equal(message: &ControlMessage) {
    let mut out = vec![0u8; message.buffer_len()];
    assert_eq!(message.emit(&mut out), Ok(out.len()));
    let tlv = Tlv::new_checked(&out[..]).expect("an emitted TLV is whole");
    assert_eq!(ControlMessage::parse(&tlv).as_ref(), Ok(message));
}
