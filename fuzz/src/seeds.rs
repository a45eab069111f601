//! The seed corpus: one or a few valid inputs per target, built from
//! `Repr`s so they follow the wire formats as they change. Written to
//! `corpus/<target>/seed-<name>` by `tests/seeds.rs`.

use mycelium_common::address::OverlayAddress;
use mycelium_common::identity::PublicKey;
use mycelium_common::wire::tlv::{
    ControlMessage, GeoPosition, Hello, Ihu, Probe, ProbeReport, RouteRequest, SeqnoRequest, Update, emit_messages,
};
use mycelium_common::wire::{
    ControlRepr, HANDSHAKE_INIT_LEN, HandshakeInitRepr, HandshakeResponseRepr, RoutedKind, RoutedRepr,
};

/// One seed: its target, its name (after `seed-`), its bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seed {
    pub target: &'static str,
    pub name: &'static str,
    pub bytes: Vec<u8>,
}

/// A target's check: panics when an input breaks an invariant.
pub type Check = fn(&[u8]);

/// Every fuzz target's name with its check function.
pub const TARGETS: [(&str, Check); 5] = [
    ("routed", crate::routed),
    ("control_packet", crate::control_packet),
    ("handshake_init", crate::handshake_init),
    ("handshake_response", crate::handshake_response),
    ("tlv_body", crate::tlv_body),
];

fn address(first: u8, last: u8) -> OverlayAddress {
    let mut bytes = [0x11u8; 16];
    bytes[0] = first;
    bytes[15] = last;
    OverlayAddress::from_bytes(bytes).expect("in 400::/7")
}

fn init() -> HandshakeInitRepr {
    HandshakeInitRepr {
        sender_index: 7,
        ephemeral: PublicKey::from_bytes([0xe0; 32]),
        static_key: PublicKey::from_bytes([0x5a; 32]),
        sealed_timestamp: [1, 2, 3, 4, 5, 6, 7, 8],
        tag: [0xf0; 16],
    }
}

fn response() -> HandshakeResponseRepr {
    HandshakeResponseRepr {
        sender_index: 9,
        receiver_index: 7,
        ephemeral: PublicKey::from_bytes([0xe1; 32]),
        tag: [0xf1; 16],
    }
}

fn messages() -> Vec<ControlMessage> {
    let router_id = PublicKey::from_bytes([0x77; 32]);
    let mut prefix = [0u8; 16];
    prefix[..8].copy_from_slice(&[0x04, 1, 2, 3, 4, 5, 6, 7]);
    vec![
        ControlMessage::Hello(Hello {
            unicast: false,
            seqno: 1,
            interval_cs: 400,
            timestamp_us: 1_000_000,
            position: None,
        }),
        ControlMessage::Hello(Hello {
            unicast: true,
            seqno: 2,
            interval_cs: 50,
            timestamp_us: 2_000_000,
            position: Some(GeoPosition { lat_e7: 523_000_000, lon_e7: 133_000_000 }),
        }),
        ControlMessage::Ihu(Ihu { rxcost: 256, interval_cs: 1200, origin_us: 1, receive_us: 2, transmit_us: 3 }),
        ControlMessage::Update(Update { plen: 64, interval_cs: 400, seqno: 5, metric: 96, router_id, prefix }),
        ControlMessage::RouteRequest(RouteRequest { plen: 0, prefix: [0; 16] }),
        ControlMessage::SeqnoRequest(SeqnoRequest { plen: 64, seqno: 6, hop_count: 16, router_id, prefix }),
        ControlMessage::Probe(Probe { train_id: 1, index: 0, count: 4, sent_us: 10, padding: 32 }),
        ControlMessage::ProbeReport(ProbeReport { train_id: 1, received: 4, first_us: 10, last_us: 40, bytes: 300 }),
    ]
}

fn body(messages: &[ControlMessage]) -> Vec<u8> {
    let mut out = vec![0u8; messages.iter().map(ControlMessage::buffer_len).sum()];
    emit_messages(messages, &mut out).expect("valid messages");
    out
}

fn routed(kind: RoutedKind, payload: &[u8]) -> Vec<u8> {
    let repr = RoutedRepr {
        kind,
        hop_limit: 64,
        shard: 2,
        key_id: if kind == RoutedKind::Data { 0x0102_0304 } else { 0 },
        counter: 42,
        source: address(0x04, 1),
        destination: address(0x05, 2),
        payload_len: payload.len(),
    };
    let mut out = vec![0xc0u8; repr.buffer_len()];
    repr.emit(&mut out).expect("sized by buffer_len");
    out[48..48 + payload.len()].copy_from_slice(payload);
    out
}

/// The whole seed corpus.
pub fn all() -> Vec<Seed> {
    let seed = |target, name, bytes| Seed { target, name, bytes };
    let mut init_bytes = vec![0u8; HANDSHAKE_INIT_LEN];
    init().emit(&mut init_bytes).expect("sized");
    let mut response_bytes = vec![0u8; response().buffer_len()];
    response().emit(&mut response_bytes).expect("sized");
    let control_body = body(&messages()[..3]);
    let control = ControlRepr { receiver_index: 0xcafe, counter: 3, body_len: control_body.len() };
    let mut control_bytes = vec![0xd0u8; control.buffer_len()];
    control.emit(&mut control_bytes).expect("sized");
    control_bytes[16..16 + control_body.len()].copy_from_slice(&control_body);

    let mut seeds = vec![
        seed("routed", "data", routed(RoutedKind::Data, b"sealed payload bytes")),
        seed("routed", "data-empty", routed(RoutedKind::Data, b"")),
        seed("routed", "handshake-init", routed(RoutedKind::Handshake, &init_bytes)),
        seed("routed", "handshake-response", routed(RoutedKind::Handshake, &response_bytes)),
        seed("control_packet", "hello-ihu", control_bytes),
        seed("handshake_init", "init", init_bytes),
        seed("handshake_response", "response", response_bytes),
        seed("tlv_body", "all", body(&messages())),
    ];
    let names = ["hello", "hello-position", "ihu", "update", "route-request", "seqno-request", "probe", "probe-report"];
    for (name, message) in names.into_iter().zip(messages()) {
        seeds.push(seed("tlv_body", name, body(&[message])));
    }
    seeds
}
