//! The seed corpus: one or a few valid inputs per target, built from
//! `Repr`s so they follow the wire formats as they change. Written to
//! `corpus/<target>/seed-<name>` by `tests/seeds.rs`.

use mycelium_common::address::OverlayAddress;
use mycelium_common::crypto::kdf::Purpose;
use mycelium_common::identity::PublicKey;
use mycelium_common::keytable::{KeyTable, ReceiveSession, SendSession};
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
pub const TARGETS: [(&str, Check); 9] = [
    ("routed", crate::routed),
    ("control_packet", crate::control_packet),
    ("handshake_init", crate::handshake_init),
    ("handshake_response", crate::handshake_response),
    ("tlv_body", crate::tlv_body),
    ("keytable_validate", crate::keytable_validate),
    ("handshake_respond", crate::handshake_respond),
    ("address_parse", crate::address_parse),
    ("offload_split", crate::offload_split),
];

/// A vnet header and an IPv6 packet (TCP with a timestamp option, or UDP) with `payload` bytes.
fn offload_input(gso_type: u8, gso_size: u16, flags: u8, proto: u8, payload: usize) -> Vec<u8> {
    let l4 = if proto == 6 { 32 } else { 8 };
    let mut p = vec![1, gso_type, (40 + l4) as u8, 0, 0, 0, 40, 0, if proto == 6 { 16 } else { 6 }, 0];
    p[4..6].copy_from_slice(&gso_size.to_le_bytes());
    let mut ip = vec![0u8; 40 + l4];
    ip[0] = 0x60;
    ip[4..6].copy_from_slice(&((l4 + payload) as u16).to_be_bytes());
    ip[6] = proto;
    ip[7] = 64;
    ip[8..24].copy_from_slice(address(0x04, 1).as_bytes());
    ip[24..40].copy_from_slice(address(0x05, 2).as_bytes());
    ip[40..44].copy_from_slice(&[0x9c, 0x40, 0x14, 0x51]);
    if proto == 6 {
        ip[44..48].copy_from_slice(&7u32.to_be_bytes());
        ip[52] = 8 << 4;
        ip[53] = flags;
        ip[54..56].copy_from_slice(&512u16.to_be_bytes());
        ip[60..72].copy_from_slice(&[1, 1, 8, 10, 0, 0, 0, 9, 0, 0, 0, 7]);
    } else {
        ip[44..46].copy_from_slice(&((8 + payload) as u16).to_be_bytes());
    }
    p.extend_from_slice(&ip);
    p.extend((0..payload).map(|i| (i * 7) as u8));
    p
}

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

fn send(peer: OverlayAddress, key_id: u32, session_id: u64) -> SendSession {
    SendSession {
        peer: peer.octets(),
        peer_key: [0x5e; 32],
        key_id,
        key: [0x6b; 32],
        session_id,
        dataplane_epoch: 77,
        packet_limit: 1 << 40,
        expires_at_ns: 9_000_000_000,
    }
}

fn receive(peer: OverlayAddress, key_id: u32, session_id: u64) -> ReceiveSession {
    ReceiveSession {
        key_id,
        peer: peer.octets(),
        key: [0x7c; 32],
        session_id,
        dataplane_epoch: 77,
        expires_at_ns: 9_000_000_000,
    }
}

/// Key tables: empty, and three peers, one in a rekey (two receive keys),
/// given out of order (the builder sorts).
fn key_tables() -> [(&'static str, Vec<u8>); 2] {
    let (a, b, c) = (address(0x04, 1), address(0x05, 2), address(0x04, 3));
    let small = KeyTable::new(
        7,
        1_000,
        vec![send(b, 0x20, 2), send(a, 0x10, 1), send(c, 0x30, 3)],
        vec![receive(c, 0x0300, 3), receive(a, 0x0100, 1), receive(b, 0x0200, 2), receive(b, 0x0201, 4)],
    );
    [("empty", KeyTable::new(1, 0, vec![], vec![]).to_bytes().to_vec()), ("small", small.to_bytes().to_vec())]
}

/// Handshake messages from fixed keys: the fixed pair's init and response
/// (both accepted), and an init from another initiator (accepted by the
/// responder, a peer the fixed initiator never meets).
fn handshake_messages() -> [(&'static str, Vec<u8>); 3] {
    let (init, _) = crate::handshake::initiate();
    let response = crate::handshake::answer(&init).expect("the fixed responder accepts the fixed init").response;
    let (other, _) = mycelium_common::handshake::initiate(
        &crate::handshake::key(5),
        crate::handshake::responder().public_key(),
        crate::handshake::key(6),
        0x5555,
        1,
        Purpose::Link,
    )
    .expect("fixed keys are not low order");
    [("init", init.to_vec()), ("response", response.to_vec()), ("init-other-peer", other.to_vec())]
}

/// Text for the address parsers: an overlay address, prefixes, public keys
/// (with surrounding whitespace and in capitals), and near misses.
const ADDRESS_TEXT: [(&str, &str); 8] = [
    ("overlay-address", "5f5:db79:2573:eebf:15e3:4ae0:bb2f:88e1"),
    ("overlay-prefix", "400::/7"),
    ("subnet-64", "5f5:db79:2573:eebf::/64"),
    ("subnet-v4-mapped", "::ffff:192.0.2.1/128"),
    ("public-key", "fd3384e132ad02a56c78f45547ee40038dc79002b90d29ed90e08eee762ae715"),
    ("public-key-padded-upper", " 8F40C5ADB68F25624AE5B214EA767A6EC94D829D3D7B5E1AD1BA6F3E2138285F\n"),
    ("outside-overlay", "fe80::1"),
    ("prefix-too-long", "400::/129"),
];

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
    for (name, bytes) in key_tables() {
        seeds.push(seed("keytable_validate", name, bytes));
    }
    for (name, bytes) in handshake_messages() {
        seeds.push(seed("handshake_respond", name, bytes));
    }
    seeds.push(seed("offload_split", "tso-ack-psh", offload_input(4, 1308, 0x18, 6, 6000)));
    seeds.push(seed("offload_split", "tso-many", offload_input(4, 536, 0x10, 6, 60_000)));
    seeds.push(seed("offload_split", "uso", offload_input(5, 1200, 0, 17, 3001)));
    seeds.push(seed("offload_split", "needs-csum", offload_input(0, 0, 0x10, 6, 100)));
    for (name, text) in ADDRESS_TEXT {
        seeds.push(seed("address_parse", name, text.as_bytes().to_vec()));
    }
    seeds
}
