use proptest::prelude::*;

use super::*;
use crate::address::OverlayAddress;
use crate::wire::{RoutedKind, RoutedPacket, RoutedRepr};

fn init_repr() -> HandshakeInitRepr {
    HandshakeInitRepr {
        sender_index: 0x0000_0102,
        ephemeral: PublicKey::from_bytes([0xe0; 32]),
        static_key: PublicKey::from_bytes([0x5a; 32]),
        sealed_timestamp: [1, 2, 3, 4, 5, 6, 7, 8],
        tag: [0xf0; 16],
    }
}

fn response_repr() -> HandshakeResponseRepr {
    HandshakeResponseRepr {
        sender_index: 0xaabb_ccdd,
        receiver_index: 0x0000_0102,
        ephemeral: PublicKey::from_bytes([0xe1; 32]),
        tag: [0xf1; 16],
    }
}

fn init_vector() -> Vec<u8> {
    let mut v = vec![0x01, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01, 0x02];
    v.extend([0xe0; 32]);
    v.extend([0x5a; 32]);
    v.extend([1, 2, 3, 4, 5, 6, 7, 8]);
    v.extend([0xf0; 16]);
    v
}

fn response_vector() -> Vec<u8> {
    let mut v = vec![0x01, 0x04, 0x00, 0x00, 0xaa, 0xbb, 0xcc, 0xdd, 0x00, 0x00, 0x01, 0x02];
    v.extend([0xe1; 32]);
    v.extend([0xf1; 16]);
    v
}

#[test]
fn init_vector_parses_and_emits() {
    let vector = init_vector();
    assert_eq!(vector.len(), HANDSHAKE_INIT_LEN);
    let message = HandshakeInit::new_checked(&vector[..]).unwrap();
    assert_eq!(HandshakeInitRepr::parse(&message), Ok(init_repr()));
    assert_eq!(message.cleartext(), &vector[..72]);
    let mut out = [0xffu8; HANDSHAKE_INIT_LEN];
    init_repr().emit(&mut out).unwrap();
    assert_eq!(&out[..], &vector[..]);
}

#[test]
fn response_vector_parses_and_emits() {
    let vector = response_vector();
    assert_eq!(vector.len(), HANDSHAKE_RESPONSE_LEN);
    let message = HandshakeResponse::new_checked(&vector[..]).unwrap();
    assert_eq!(HandshakeResponseRepr::parse(&message), Ok(response_repr()));
    assert_eq!(message.cleartext(), &vector[..44]);
    let mut out = [0xffu8; HANDSHAKE_RESPONSE_LEN];
    response_repr().emit(&mut out).unwrap();
    assert_eq!(&out[..], &vector[..]);
}

#[test]
fn messages_must_have_exactly_their_length() {
    let init = init_vector();
    for len in 0..HANDSHAKE_INIT_LEN {
        assert_eq!(HandshakeInit::new_checked(&init[..len]).unwrap_err(), WireError::Truncated, "length {len}");
    }
    let mut long = init.clone();
    long.push(0);
    assert_eq!(HandshakeInit::new_checked(&long[..]).unwrap_err(), WireError::BadLength);
    let response = response_vector();
    for len in 0..HANDSHAKE_RESPONSE_LEN {
        assert_eq!(HandshakeResponse::new_checked(&response[..len]).unwrap_err(), WireError::Truncated, "length {len}");
    }
    let mut long = response.clone();
    long.push(0);
    assert_eq!(HandshakeResponse::new_checked(&long[..]).unwrap_err(), WireError::BadLength);
}

#[test]
fn each_parser_refuses_the_other_message_and_other_versions() {
    assert_eq!(HandshakeInit::new_checked(&response_vector()[..]).unwrap_err(), WireError::WrongType);
    assert_eq!(HandshakeResponse::new_checked(&init_vector()[..]).unwrap_err(), WireError::WrongType);
    let mut init = init_vector();
    init[0] = 0x02;
    assert_eq!(HandshakeInit::new_checked(&init[..]).unwrap_err(), WireError::BadVersion);
}

#[test]
fn reserved_bytes_are_ignored_on_parse_and_zeroed_on_emit() {
    let mut vector = response_vector();
    vector[2] = 0x99;
    vector[3] = 0x01;
    let repr = HandshakeResponseRepr::parse(&HandshakeResponse::new_unchecked(&vector[..])).unwrap();
    assert_eq!(repr, response_repr());
    let mut out = [0xffu8; HANDSHAKE_RESPONSE_LEN];
    repr.emit(&mut out).unwrap();
    assert_eq!(out[2..4], [0, 0]);
}

#[test]
fn emit_needs_room_for_the_whole_message() {
    assert_eq!(init_repr().emit(&mut [0u8; 95]), Err(WireError::BufferTooShort));
    assert_eq!(response_repr().emit(&mut [0u8; 59]), Err(WireError::BufferTooShort));
}

#[test]
fn in_place_slices_cover_the_sealed_parts() {
    let mut init = init_vector();
    let mut message = HandshakeInit::new_checked(&mut init[..]).unwrap();
    let (timestamp, tag) = message.timestamp_and_tag_mut();
    timestamp.fill(0x11);
    tag.fill(0x22);
    assert_eq!(message.sealed_timestamp(), [0x11; 8]);
    assert_eq!(message.tag(), [0x22; 16]);
    let mut response = response_vector();
    let mut message = HandshakeResponse::new_checked(&mut response[..]).unwrap();
    message.tag_mut().fill(0x33);
    assert_eq!(message.tag(), [0x33; 16]);
}

#[test]
fn a_routed_handshake_payload_parses_as_the_message() {
    let repr = RoutedRepr {
        kind: RoutedKind::Handshake,
        hop_limit: 64,
        shard: 0,
        key_id: 0,
        counter: 9,
        source: OverlayAddress::from_bytes([4; 16]).unwrap(),
        destination: OverlayAddress::from_bytes([5; 16]).unwrap(),
        payload_len: HANDSHAKE_INIT_LEN,
    };
    let mut buf = vec![0u8; repr.buffer_len()];
    repr.emit(&mut buf).unwrap();
    init_repr().emit(&mut buf[48..]).unwrap();
    let packet = RoutedPacket::new_checked(&buf[..]).unwrap();
    let message = HandshakeInit::new_checked(packet.payload()).unwrap();
    assert_eq!(HandshakeInitRepr::parse(&message), Ok(init_repr()));
}

fn key() -> impl Strategy<Value = PublicKey> {
    any::<[u8; 32]>().prop_map(PublicKey::from_bytes)
}

proptest! {
    #[test]
    fn init_emit_then_parse_is_identity(sender_index in any::<u32>(), ephemeral in key(), static_key in key(), sealed_timestamp in any::<[u8; 8]>(), tag in any::<[u8; 16]>()) {
        let repr = HandshakeInitRepr { sender_index, ephemeral, static_key, sealed_timestamp, tag };
        let mut buf = [0u8; HANDSHAKE_INIT_LEN];
        repr.emit(&mut buf).unwrap();
        prop_assert_eq!(HandshakeInitRepr::parse(&HandshakeInit::new_unchecked(&buf[..])), Ok(repr));
    }

    #[test]
    fn response_emit_then_parse_is_identity(sender_index in any::<u32>(), receiver_index in any::<u32>(), ephemeral in key(), tag in any::<[u8; 16]>()) {
        let repr = HandshakeResponseRepr { sender_index, receiver_index, ephemeral, tag };
        let mut buf = [0u8; HANDSHAKE_RESPONSE_LEN];
        repr.emit(&mut buf).unwrap();
        prop_assert_eq!(HandshakeResponseRepr::parse(&HandshakeResponse::new_unchecked(&buf[..])), Ok(repr));
    }

    #[test]
    fn any_bytes_are_refused_or_read_without_panic(mut bytes in proptest::collection::vec(any::<u8>(), 0..100), kind in 0u8..3) {
        if kind > 0 && bytes.len() >= 2 {
            bytes[..2].copy_from_slice(&[1, 2 + kind]);
        }
        if let Ok(mut m) = HandshakeInit::new_checked(&mut bytes[..]) {
            let _ = (m.sender_index(), m.ephemeral(), m.static_key(), m.sealed_timestamp(), m.tag(), m.cleartext());
            let _ = m.timestamp_and_tag_mut();
            prop_assert!(HandshakeInitRepr::parse(&m).is_ok());
        }
        if let Ok(mut m) = HandshakeResponse::new_checked(&mut bytes[..]) {
            let _ = (m.sender_index(), m.receiver_index(), m.ephemeral(), m.tag(), m.cleartext());
            let _ = m.tag_mut();
            prop_assert!(HandshakeResponseRepr::parse(&m).is_ok());
        }
    }
}
