use proptest::prelude::*;

use super::*;
use crate::wire::WireError;

fn key(byte: u8) -> PublicKey {
    PublicKey::from_bytes([byte; 32])
}

fn emit_one(message: &ControlMessage) -> Vec<u8> {
    let mut buf = vec![0xeeu8; message.buffer_len()];
    assert_eq!(message.emit(&mut buf), Ok(buf.len()));
    buf
}

fn parse_one(bytes: &[u8]) -> Result<ControlMessage, WireError> {
    ControlMessage::parse(&Tlv::new_checked(bytes)?)
}

/// Each message with its hand-written TLV bytes.
#[rustfmt::skip]
fn vectors() -> Vec<(ControlMessage, Vec<u8>)> {
    let cat = |parts: &[&[u8]]| parts.concat();
    vec![
        (
            ControlMessage::Hello(Hello { unicast: true, seqno: 0x0102, interval_cs: 400, timestamp_us: 0x0a0b_0c0d_0e0f_1011, position: None }),
            vec![4, 0, 14, 0x01, 0, 0x01, 0x02, 0x01, 0x90, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f, 0x10, 0x11],
        ),
        (
            ControlMessage::Hello(Hello {
                unicast: false, seqno: 7, interval_cs: 100, timestamp_us: 1,
                position: Some(GeoPosition { lat_e7: 523_000_000, lon_e7: -1 }),
            }),
            vec![4, 0, 22, 0x02, 0, 0, 7, 0, 100, 0, 0, 0, 0, 0, 0, 0, 1,
                 0x1f, 0x2c, 0x58, 0xc0, 0xff, 0xff, 0xff, 0xff],
        ),
        (
            ControlMessage::Ihu(Ihu { rxcost: 256, interval_cs: 1200, origin_us: 1, receive_us: 2, transmit_us: 0x0100 }),
            vec![5, 0, 28, 0x01, 0x00, 0x04, 0xb0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 1, 0],
        ),
        (
            ControlMessage::Update(Update {
                plen: 20, interval_cs: 0x0102, seqno: 0x0304, metric: METRIC_INFINITY, router_id: key(0x77),
                prefix: [0x04, 0x12, 0x30, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
            }),
            cat(&[&[8, 0, 43, 20, 0, 0x01, 0x02, 0x03, 0x04, 0xff, 0xff], &[0x77; 32], &[0x04, 0x12, 0x30]]),
        ),
        (
            ControlMessage::RouteRequest(RouteRequest { plen: 0, prefix: [0; 16] }),
            vec![9, 0, 2, 0, 0],
        ),
        (
            ControlMessage::RouteRequest(RouteRequest { plen: 128, prefix: [0x05; 16] }),
            cat(&[&[9, 0, 18, 128, 0], &[0x05; 16]]),
        ),
        (
            ControlMessage::SeqnoRequest(SeqnoRequest {
                plen: 64, seqno: 9, hop_count: 16, router_id: key(0x33),
                prefix: [0x04, 1, 2, 3, 4, 5, 6, 7, 0, 0, 0, 0, 0, 0, 0, 0],
            }),
            cat(&[&[10, 0, 44, 64, 16, 0, 9], &[0x33; 32], &[0x04, 1, 2, 3, 4, 5, 6, 7]]),
        ),
        (
            ControlMessage::Probe(Probe { train_id: 0xdead_beef, index: 1, count: 8, sent_us: 2, padding: 3 }),
            vec![64, 0, 19, 0xde, 0xad, 0xbe, 0xef, 0, 1, 0, 8, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0],
        ),
        (
            ControlMessage::ProbeReport(ProbeReport { train_id: 5, received: 7, first_us: 10, last_us: 20, bytes: 0x0001_0000 }),
            vec![65, 0, 28, 0, 0, 0, 5, 0, 7, 0, 0, 0, 0, 0, 0, 0, 0, 0, 10, 0, 0, 0, 0, 0, 0, 0, 20, 0, 1, 0, 0],
        ),
    ]
}

#[test]
fn every_message_emits_its_vector_and_parses_back() {
    for (message, bytes) in vectors() {
        assert_eq!(emit_one(&message), bytes, "{message:?}");
        assert_eq!(parse_one(&bytes), Ok(message));
        assert_eq!(message.buffer_len(), bytes.len());
    }
}

#[test]
fn every_truncation_of_every_vector_is_refused() {
    for (_, bytes) in vectors() {
        for len in 0..bytes.len() {
            assert_eq!(parse_one(&bytes[..len]), Err(WireError::Truncated), "{bytes:?} at {len}");
        }
    }
}

#[test]
fn iterating_a_body_of_all_vectors_yields_them_in_order() {
    let (messages, parts): (Vec<_>, Vec<_>) = vectors().into_iter().unzip();
    let body = parts.concat();
    let parsed: Vec<_> = TlvIter::new(&body).collect();
    assert_eq!(parsed, messages.iter().copied().map(Ok).collect::<Vec<_>>());
    let mut out = vec![0u8; body.len()];
    assert_eq!(emit_messages(&messages, &mut out), Ok(body.len()));
    assert_eq!(out, body);
}

#[test]
fn unknown_tlv_types_are_skipped() {
    let hello = emit_one(&vectors()[0].0);
    let body = [&[200, 0, 3, 1, 2, 3][..], &hello, &[0, 0, 0], &hello].concat();
    let parsed: Vec<_> = TlvIter::new(&body).collect();
    assert_eq!(parsed, vec![Ok(vectors()[0].0), Ok(vectors()[0].0)]);
    assert_eq!(parse_one(&[200, 0, 0]), Err(WireError::UnknownType));
}

#[test]
fn a_truncated_tlv_ends_the_iteration_with_an_error() {
    let hello = emit_one(&vectors()[0].0);
    for cut in 1..hello.len() {
        let body = [&hello[..], &hello[..cut]].concat();
        let parsed: Vec<_> = TlvIter::new(&body).collect();
        assert_eq!(parsed, vec![Ok(vectors()[0].0), Err(WireError::Truncated)], "cut at {cut}");
    }
}

#[test]
fn a_malformed_known_tlv_is_reported_and_the_next_one_still_read() {
    let hello = emit_one(&vectors()[0].0);
    let body = [&[5, 0, 2, 0, 0][..], &hello].concat();
    let parsed: Vec<_> = TlvIter::new(&body).collect();
    assert_eq!(parsed, vec![Err(WireError::BadLength), Ok(vectors()[0].0)]);
}

#[test]
fn hello_length_must_match_its_position_flag() {
    let mut with_position = emit_one(&vectors()[1].0);
    with_position[3] = 0x00; // clear the position flag, keep the length
    assert_eq!(parse_one(&with_position), Err(WireError::BadLength));
    let mut without = emit_one(&vectors()[0].0);
    without[3] |= 0x02;
    assert_eq!(parse_one(&without), Err(WireError::BadLength));
    let mut unknown_flags = emit_one(&vectors()[0].0);
    unknown_flags[3] |= 0xf0;
    assert_eq!(parse_one(&unknown_flags), Ok(vectors()[0].0));
}

#[test]
fn update_prefixes_are_validated() {
    let update = |plen: u8, prefix: [u8; 16]| {
        ControlMessage::Update(Update { plen, interval_cs: 1, seqno: 1, metric: 1, router_id: key(1), prefix })
    };
    let mut bytes = emit_one(&update(20, [0x04, 0x12, 0x30, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]));
    *bytes.last_mut().unwrap() = 0x38; // bit 21 set, after plen 20
    assert_eq!(parse_one(&bytes), Err(WireError::PrefixHostBits));
    bytes[3] = 129;
    assert_eq!(parse_one(&bytes), Err(WireError::BadPrefixLength));
    bytes[3] = 24; // needs three prefix bytes: has them
    assert!(parse_one(&bytes).is_ok());
    bytes[3] = 25; // needs four
    assert_eq!(parse_one(&bytes), Err(WireError::BadLength));

    let mut buf = [0u8; 64];
    assert_eq!(update(129, [0; 16]).emit(&mut buf), Err(WireError::BadPrefixLength));
    assert_eq!(
        update(8, [0x04, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]).emit(&mut buf),
        Err(WireError::PrefixHostBits)
    );
    assert_eq!(buf, [0u8; 64], "a refused emit writes nothing");
}

#[test]
fn probe_padding_counts_in_the_tlv_length() {
    let probe = |padding| ControlMessage::Probe(Probe { train_id: 1, index: 0, count: 1, sent_us: 0, padding });
    assert_eq!(probe(1000).buffer_len(), 3 + 16 + 1000);
    let bytes = emit_one(&probe(1000));
    assert_eq!(&bytes[1..3], &1016u16.to_be_bytes());
    assert!(bytes[19..].iter().all(|&b| b == 0));
    assert_eq!(parse_one(&bytes), Ok(probe(1000)));
    assert_eq!(probe(u16::MAX - 16).emit(&mut vec![0; 70_000]), Ok(65_538));
    assert_eq!(probe(u16::MAX - 15).emit(&mut vec![0; 70_000]), Err(WireError::TooLong));
    assert_eq!(parse_one(&[64, 0, 15, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]), Err(WireError::BadLength));
}

#[test]
fn emit_into_a_short_buffer_is_refused() {
    for (message, bytes) in vectors() {
        let mut short = vec![0u8; bytes.len() - 1];
        assert_eq!(message.emit(&mut short), Err(WireError::BufferTooShort));
    }
}

fn prefix_and_len() -> impl Strategy<Value = (u8, [u8; 16])> {
    (0u8..=128, any::<[u8; 16]>()).prop_map(|(plen, bytes)| (plen, crate::address::mask(bytes, plen)))
}

fn message() -> impl Strategy<Value = ControlMessage> {
    let router_id = || any::<[u8; 32]>().prop_map(PublicKey::from_bytes);
    let position =
        proptest::option::of(any::<(i32, i32)>().prop_map(|(lat_e7, lon_e7)| GeoPosition { lat_e7, lon_e7 }));
    prop_oneof![
        (any::<(bool, u16, u16, u64)>(), position).prop_map(
            |((unicast, seqno, interval_cs, timestamp_us), position)| {
                ControlMessage::Hello(Hello { unicast, seqno, interval_cs, timestamp_us, position })
            }
        ),
        any::<(u16, u16, u64, u64, u64)>().prop_map(|(rxcost, interval_cs, origin_us, receive_us, transmit_us)| {
            ControlMessage::Ihu(Ihu { rxcost, interval_cs, origin_us, receive_us, transmit_us })
        }),
        (prefix_and_len(), any::<(u16, u16, u16)>(), router_id()).prop_map(
            |((plen, prefix), (interval_cs, seqno, metric), router_id)| {
                ControlMessage::Update(Update { plen, interval_cs, seqno, metric, router_id, prefix })
            }
        ),
        prefix_and_len().prop_map(|(plen, prefix)| ControlMessage::RouteRequest(RouteRequest { plen, prefix })),
        (prefix_and_len(), any::<(u16, u8)>(), router_id()).prop_map(
            |((plen, prefix), (seqno, hop_count), router_id)| {
                ControlMessage::SeqnoRequest(SeqnoRequest { plen, seqno, hop_count, router_id, prefix })
            }
        ),
        (any::<(u32, u16, u16, u64)>(), 0u16..1500).prop_map(|((train_id, index, count, sent_us), padding)| {
            ControlMessage::Probe(Probe { train_id, index, count, sent_us, padding })
        }),
        any::<(u32, u16, u64, u64, u32)>().prop_map(|(train_id, received, first_us, last_us, bytes)| {
            ControlMessage::ProbeReport(ProbeReport { train_id, received, first_us, last_us, bytes })
        }),
    ]
}

proptest! {
    #[test]
    fn message_emit_then_parse_is_identity(message in message()) {
        let bytes = emit_one(&message);
        prop_assert_eq!(parse_one(&bytes), Ok(message));
    }

    #[test]
    fn a_body_of_messages_iterates_back_to_them(messages in proptest::collection::vec(message(), 0..8)) {
        let mut body = vec![0u8; messages.iter().map(ControlMessage::buffer_len).sum()];
        prop_assert_eq!(emit_messages(&messages, &mut body), Ok(body.len()));
        let parsed: Result<Vec<_>, _> = TlvIter::new(&body).collect();
        prop_assert_eq!(parsed, Ok(messages));
    }

    #[test]
    fn any_body_iterates_without_panic_and_each_message_reemits_equal(body in proptest::collection::vec(any::<u8>(), 0..256)) {
        let mut count = 0;
        for item in TlvIter::new(&body) {
            count += 1;
            if let Ok(message) = item {
                prop_assert_eq!(parse_one(&emit_one(&message)), Ok(message));
            }
        }
        prop_assert!(count <= body.len() / TLV_HEADER_LEN + 1);
    }

    #[test]
    fn any_value_of_any_known_type_parses_or_fails_cleanly(kind in prop_oneof![Just(4u8), Just(5), Just(8), Just(9), Just(10), Just(64), Just(65)], value in proptest::collection::vec(any::<u8>(), 0..80)) {
        let mut bytes = vec![kind];
        bytes.extend((value.len() as u16).to_be_bytes());
        bytes.extend(&value);
        if let Ok(message) = parse_one(&bytes) {
            prop_assert_eq!(message.tlv_type(), kind);
            prop_assert_eq!(parse_one(&emit_one(&message)), Ok(message));
        }
    }
}

fn endpoint(key_byte: u8, addr: &str) -> PeerEndpoint {
    let addr: std::net::SocketAddr = addr.parse().unwrap();
    PeerEndpoint { key: key(key_byte), ip: addr.ip(), port: addr.port() }
}

#[test]
fn peer_exchange_emits_its_vector_with_ipv4_mapped_and_parses_back() {
    let message = ControlMessage::PeerExchange(
        PeerExchange::new(&[endpoint(0x11, "192.0.2.1:9651"), endpoint(0x22, "[2001:db8::1]:258")]).unwrap(),
    );
    let mut v4 = [0u8; 16];
    v4[10..].copy_from_slice(&[0xff, 0xff, 192, 0, 2, 1]);
    let mut v6 = [0u8; 16];
    v6[..4].copy_from_slice(&[0x20, 0x01, 0x0d, 0xb8]);
    v6[15] = 1;
    let bytes = [&[66, 0, 100][..], &[0x11; 32], &v4, &[0x25, 0xb3], &[0x22; 32], &v6, &[0x01, 0x02]].concat();
    assert_eq!(emit_one(&message), bytes);
    assert_eq!(parse_one(&bytes), Ok(message));
    let ControlMessage::PeerExchange(exchange) = parse_one(&bytes).unwrap() else { unreachable!() };
    assert!(exchange.entries()[0].ip.is_ipv4());
    assert_eq!(exchange.entries()[1].socket_addr(), "[2001:db8::1]:258".parse::<std::net::SocketAddr>().unwrap());
}

#[test]
fn peer_exchange_is_bounded_and_its_length_must_be_whole_entries() {
    let five = [endpoint(1, "192.0.2.1:1"); 5];
    assert!(PeerExchange::new(&five).is_none());
    assert!(PeerExchange::new(&five[..PEER_EXCHANGE_MAX_ENTRIES]).is_some());
    let value_of = |len: usize| [&[66u8][..], &(len as u16).to_be_bytes(), &vec![0u8; len]].concat();
    assert_eq!(parse_one(&value_of(0)), Ok(ControlMessage::PeerExchange(PeerExchange::new(&[]).unwrap())));
    assert_eq!(parse_one(&value_of(49)), Err(WireError::BadLength));
    assert_eq!(parse_one(&value_of(51)), Err(WireError::BadLength));
    assert_eq!(parse_one(&value_of(50 * 5)), Err(WireError::BadLength));
    assert!(parse_one(&value_of(50 * 4)).is_ok());
}

fn peer_exchange() -> impl Strategy<Value = ControlMessage> {
    let ip = prop_oneof![
        any::<[u8; 4]>().prop_map(std::net::IpAddr::from),
        any::<[u8; 16]>().prop_map(|b| {
            let v6 = std::net::Ipv6Addr::from(b);
            v6.to_ipv4_mapped().map_or(std::net::IpAddr::V6(v6), std::net::IpAddr::V4)
        }),
    ];
    let entry = (any::<[u8; 32]>(), ip, any::<u16>()).prop_map(|(key, ip, port)| PeerEndpoint {
        key: PublicKey::from_bytes(key),
        ip,
        port,
    });
    proptest::collection::vec(entry, 0..=PEER_EXCHANGE_MAX_ENTRIES)
        .prop_map(|entries| ControlMessage::PeerExchange(PeerExchange::new(&entries).unwrap()))
}

proptest! {
    #[test]
    fn peer_exchange_emit_then_parse_is_identity(message in peer_exchange()) {
        prop_assert_eq!(parse_one(&emit_one(&message)), Ok(message));
    }

    #[test]
    fn any_peer_exchange_value_parses_or_fails_cleanly(value in proptest::collection::vec(any::<u8>(), 0..260)) {
        let bytes = [&[66u8][..], &(value.len() as u16).to_be_bytes(), &value].concat();
        if let Ok(message) = parse_one(&bytes) {
            prop_assert_eq!(parse_one(&emit_one(&message)), Ok(message));
        }
    }
}
