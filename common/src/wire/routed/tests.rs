use proptest::prelude::*;

use super::*;
use crate::crypto::{Open, PacketCipher, RingAes256Gcm, Seal, SessionKey};

const SOURCE: [u8; 16] = [0x04, 0x11, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01];
const DESTINATION: [u8; 16] = [0x05, 0x22, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x02];

fn data_repr(payload_len: usize) -> RoutedRepr {
    RoutedRepr {
        kind: RoutedKind::Data,
        hop_limit: 64,
        shard: 3,
        key_id: 0x0102_0304,
        counter: 0x1122_3344_5566_7788,
        source: OverlayAddress::from_bytes(SOURCE).unwrap(),
        destination: OverlayAddress::from_bytes(DESTINATION).unwrap(),
        payload_len,
    }
}

#[rustfmt::skip]
const DATA_VECTOR: [u8; 48 + 4 + 16] = [
    0x01, 0x01, 0x40, 0x03,
    0x01, 0x02, 0x03, 0x04,
    0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88,
    0x04, 0x11, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01,
    0x05, 0x22, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x02,
    0xde, 0xad, 0xbe, 0xef,
    0xa0, 0xa1, 0xa2, 0xa3, 0xa4, 0xa5, 0xa6, 0xa7, 0xa8, 0xa9, 0xaa, 0xab, 0xac, 0xad, 0xae, 0xaf,
];

#[test]
fn data_vector_parses_to_its_repr_and_fields() {
    let packet = RoutedPacket::new_checked(&DATA_VECTOR[..]).unwrap();
    assert_eq!(RoutedRepr::parse(&packet), Ok(data_repr(4)));
    assert_eq!(packet.kind(), RoutedKind::Data);
    assert_eq!(packet.payload(), &[0xde, 0xad, 0xbe, 0xef]);
    assert_eq!(packet.tag().unwrap()[0], 0xa0);
    assert_eq!(packet.tag().unwrap()[15], 0xaf);
    assert_eq!(packet.nonce(), Nonce::new(3, 0x1122_3344_5566_7788));
}

#[test]
fn data_repr_emits_the_vector_header_and_leaves_payload_alone() {
    let mut buf = DATA_VECTOR;
    buf[..48].fill(0xee);
    data_repr(4).emit(&mut buf).unwrap();
    assert_eq!(buf, DATA_VECTOR);
    assert_eq!(data_repr(4).buffer_len(), DATA_VECTOR.len());
}

#[test]
fn routed_handshake_has_no_tag_and_its_payload_runs_to_the_end() {
    let mut repr = data_repr(60);
    repr.kind = RoutedKind::Handshake;
    repr.key_id = 0;
    let mut buf = [0x77u8; 48 + 60];
    repr.emit(&mut buf).unwrap();
    assert_eq!(&buf[..4], &[0x01, 0x05, 0x40, 0x03]);
    let mut packet = RoutedPacket::new_checked(&mut buf[..]).unwrap();
    assert_eq!(packet.payload().len(), 60);
    assert_eq!(packet.tag(), None);
    assert!(packet.payload_and_tag_mut().is_none());
    assert_eq!(RoutedRepr::parse(&packet), Ok(repr));
    // The smallest routed handshake is a bare header.
    assert!(RoutedPacket::new_checked(&buf[..48]).is_ok());
}

#[test]
fn aad_is_the_header_with_the_hop_limit_zeroed() {
    let packet = RoutedPacket::new_checked(&DATA_VECTOR[..]).unwrap();
    let aad = packet.aad();
    assert_eq!(aad[2], 0);
    assert_eq!(&aad[..2], &DATA_VECTOR[..2]);
    assert_eq!(&aad[3..], &DATA_VECTOR[3..48]);
}

#[test]
fn decrement_hop_limit_stops_before_zero() {
    let mut buf = DATA_VECTOR;
    let mut packet = RoutedPacket::new_checked(&mut buf[..]).unwrap();
    packet.set_hop_limit(3);
    assert_eq!(packet.decrement_hop_limit(), Some(2));
    assert_eq!(packet.decrement_hop_limit(), Some(1));
    assert_eq!(packet.decrement_hop_limit(), None);
    assert_eq!(packet.hop_limit(), 1);
    packet.set_hop_limit(0);
    assert_eq!(packet.decrement_hop_limit(), None);
    assert_eq!(packet.hop_limit(), 0);
}

#[test]
fn sealed_packet_opens_after_a_relay_decrements_but_not_after_header_tampering() {
    let cipher = RingAes256Gcm::new(&SessionKey::from_bytes([7; 32]));
    let plaintext = b"hello overlay";
    let repr = data_repr(plaintext.len());
    let mut buf = vec![0u8; repr.buffer_len()];
    repr.emit(&mut buf).unwrap();
    buf[ROUTED_HEADER_LEN..][..plaintext.len()].copy_from_slice(plaintext);
    {
        let mut packet = RoutedPacket::new_unchecked(&mut buf[..]);
        let (aad, nonce) = (packet.aad(), packet.nonce());
        let (payload, tag) = packet.payload_and_tag_mut().unwrap();
        *tag = cipher.seal_in_place(nonce, &aad, payload).unwrap();
    }
    let open = |mut bytes: Vec<u8>| {
        let mut packet = RoutedPacket::new_checked(&mut bytes[..]).unwrap();
        let (aad, nonce) = (packet.aad(), packet.nonce());
        let (payload, tag) = packet.payload_and_tag_mut().unwrap();
        cipher.open_in_place(nonce, &aad, payload, tag).map(|()| packet.payload().to_vec())
    };
    let mut relayed = buf.clone();
    RoutedPacket::new_checked(&mut relayed[..]).unwrap().decrement_hop_limit().unwrap();
    assert_eq!(open(relayed).unwrap(), plaintext);
    for byte in (0..ROUTED_HEADER_LEN).filter(|&b| b != 2) {
        let mut tampered = buf.clone();
        tampered[byte] ^= 0x01;
        if RoutedPacket::new_checked(&tampered[..]).is_ok() {
            assert!(open(tampered).is_err(), "header byte {byte} is not authenticated");
        }
    }
}

#[test]
fn every_truncation_of_a_data_packet_is_refused() {
    for len in 0..48 + 16 {
        let err = RoutedPacket::new_checked(&DATA_VECTOR[..len]).unwrap_err();
        assert_eq!(err, WireError::Truncated, "length {len}");
        assert_eq!(RoutedRepr::parse(&RoutedPacket::new_unchecked(&DATA_VECTOR[..len])), Err(WireError::Truncated));
    }
    assert!(RoutedPacket::new_checked(&DATA_VECTOR[..64]).is_ok());
}

#[test]
fn wrong_version_and_types_are_refused() {
    let mut buf = DATA_VECTOR;
    buf[0] = 2;
    assert_eq!(RoutedPacket::new_checked(&buf[..]).unwrap_err(), WireError::BadVersion);
    buf[0] = 1;
    for (kind, err) in
        [(2, WireError::WrongType), (3, WireError::WrongType), (4, WireError::WrongType), (9, WireError::UnknownType)]
    {
        buf[1] = kind;
        assert_eq!(RoutedPacket::new_checked(&buf[..]).unwrap_err(), err);
    }
}

#[test]
fn addresses_outside_the_overlay_parse_in_the_view_but_not_the_repr() {
    let mut buf = DATA_VECTOR;
    buf[16] = 0x20;
    let packet = RoutedPacket::new_checked(&buf[..]).unwrap();
    assert_eq!(packet.source()[0], 0x20);
    assert_eq!(RoutedRepr::parse(&packet), Err(WireError::NotOverlayAddress));
}

#[test]
fn emit_into_a_short_buffer_fails_without_writing() {
    let mut buf = [0u8; 48 + 4 + 15];
    assert_eq!(data_repr(4).emit(&mut buf), Err(WireError::BufferTooShort));
    assert_eq!(buf, [0u8; 67]);
}

fn overlay_address() -> impl Strategy<Value = OverlayAddress> {
    any::<[u8; 16]>().prop_map(|mut b| {
        b[0] = 0x04 | (b[0] & 1);
        OverlayAddress::from_bytes(b).unwrap()
    })
}

fn repr() -> impl Strategy<Value = RoutedRepr> {
    (any::<bool>(), any::<(u8, u8, u32, u64)>(), overlay_address(), overlay_address(), 0usize..256).prop_map(
        |(data, (hop_limit, shard, key_id, counter), source, destination, payload_len)| RoutedRepr {
            kind: if data { RoutedKind::Data } else { RoutedKind::Handshake },
            hop_limit,
            shard,
            key_id,
            counter,
            source,
            destination,
            payload_len,
        },
    )
}

proptest! {
    #[test]
    fn repr_emit_then_parse_is_identity(repr in repr()) {
        let mut buf = vec![0u8; repr.buffer_len()];
        repr.emit(&mut buf).unwrap();
        let packet = RoutedPacket::new_checked(&buf[..]).unwrap();
        prop_assert_eq!(RoutedRepr::parse(&packet), Ok(repr));
        prop_assert_eq!(packet.nonce(), Nonce::new(repr.shard, repr.counter));
    }

    #[test]
    fn emit_header_returns_the_aad_and_nonce_the_receiver_reads_back(repr in repr()) {
        let mut buf = vec![0u8; repr.buffer_len()];
        let aad = repr.emit_header(buf.first_chunk_mut().unwrap());
        let packet = RoutedPacket::new_checked(&buf[..]).unwrap();
        prop_assert_eq!(RoutedRepr::parse(&packet), Ok(repr));
        prop_assert_eq!(packet.aad(), aad);
        prop_assert_eq!(packet.nonce(), repr.nonce());
    }

    #[test]
    fn any_bytes_are_refused_or_read_without_panic(mut bytes in proptest::collection::vec(any::<u8>(), 0..128), routed in any::<bool>()) {
        if routed && bytes.len() >= 2 {
            bytes[0] = 1;
            bytes[1] = if bytes[1] & 1 == 0 { 1 } else { 5 };
        }
        if let Ok(mut packet) = RoutedPacket::new_checked(&mut bytes[..]) {
            let _ = (packet.version(), packet.kind(), packet.hop_limit(), packet.shard(), packet.key_id());
            let _ = (packet.counter(), packet.source(), packet.destination(), packet.nonce(), packet.aad());
            let total = packet.payload().len() + packet.tag().map_or(0, |t| t.len());
            prop_assert_eq!(total + ROUTED_HEADER_LEN, packet.as_bytes().len());
            let _ = packet.decrement_hop_limit();
            let _ = packet.payload_and_tag_mut();
            let _ = packet.payload_mut();
            let _ = RoutedRepr::parse(&packet);
        }
    }
}
