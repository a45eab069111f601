//! The sealed engine on byte-exact packets: a three-node line A - R - B with
//! snapshots and key tables published into temporary shm directories, exactly
//! as the control daemon would.

use std::net::SocketAddr;

use mycelium_common::crypto::oracle::RustCryptoAes256Gcm;
use mycelium_common::crypto::{Nonce, PacketCipher, Seal, SessionKey};
use mycelium_common::identity::{PublicKey, SecretKey};
use mycelium_common::keytable::{KeyTable, ReceiveSession, SendSession};
use mycelium_common::shm::{KEYS, Publisher, ROUTES, ShmDir};
use mycelium_common::snapshot::{LOCAL, Link, LinkState, NodeInfo, Route, SnapshotBuilder};
use mycelium_common::time::Timestamp;

use super::*;
use crate::batch::{PacketId, PuntKind, RxBatch, TxDest, TxEntry, TxQueues};
use crate::engine::counters::DropReason;

const EPOCH: u64 = 77;
const KEY_AB: [u8; 32] = [0xab; 32];
const A_ENDPOINT: &str = "192.0.2.1:9651";
const R_ENDPOINT: &str = "192.0.2.2:9651";
const B_ENDPOINT: &str = "192.0.2.3:9651";
const NOW: u64 = 1_000_000_000;

struct Node {
    key: PublicKey,
    addr: [u8; 16],
}

fn node(seed: u8) -> Node {
    let key = SecretKey::from_bytes([seed; 32]).public_key();
    Node { key, addr: key.address().octets() }
}

struct Lab {
    _dir: tempfile::TempDir,
    a: Node,
    r: Node,
    b: Node,
    engine_a: SealedEngine,
    engine_r: SealedEngine,
    engine_b: SealedEngine,
}

fn route_to(dest: &Node, next_hop: u32) -> Route {
    let mut prefix = dest.addr;
    prefix[8..].fill(0);
    Route { prefix, len: 64, next_hop, metric: 10, seqno: 1, router_id: *dest.key.as_bytes() }
}

fn publish(base: &std::path::Path, instance: &str, me: &Node, routes: Vec<Route>, links: Vec<Link>, keys: KeyTable) {
    let dir = ShmDir::new(base, instance).unwrap();
    let mut publisher = Publisher::create(dir).unwrap();
    let snapshot = SnapshotBuilder::new(NodeInfo::from_public_key(&me.key), 1, Timestamp::from_nanos(NOW))
        .routes(routes)
        .links(links)
        .build()
        .unwrap();
    publisher.publish(ROUTES, &snapshot.to_bytes().unwrap()).unwrap();
    publisher.publish(KEYS, &keys.to_bytes()).unwrap();
}

fn engine(base: &std::path::Path, instance: &str, me: &Node, shard: u8) -> SealedEngine {
    let config = SealedConfig { shard, local: me.key.address(), has_tun: true, epoch: EPOCH, transit_limit_bps: None };
    let mut e = SealedEngine::new(config, ShmDir::new(base, instance).unwrap(), SharedSessions::default());
    e.begin_batch(Timestamp::from_nanos(NOW));
    e
}

fn send_session(to: &Node, key_id: u32) -> SendSession {
    SendSession {
        peer: to.addr,
        peer_key: *to.key.as_bytes(),
        key_id,
        key: KEY_AB,
        session_id: 1,
        dataplane_epoch: EPOCH,
        packet_limit: 1 << 40,
        expires_at_ns: u64::MAX,
    }
}

fn receive_session(from: &Node, key_id: u32) -> ReceiveSession {
    ReceiveSession {
        key_id,
        peer: from.addr,
        key: KEY_AB,
        session_id: 1,
        dataplane_epoch: EPOCH,
        expires_at_ns: u64::MAX,
    }
}

/// A (link 1 to R) - R (link 1 to A, link 2 to B) - B (link 1 to R).
fn lab() -> Lab {
    let dir = tempfile::tempdir().unwrap();
    let (a, r, b) = (node(1), node(2), node(3));
    let link = |id, ep: &str, peer: &Node| Link::new(id, ep.parse().unwrap(), LinkState::Up, &peer.key);
    publish(
        dir.path(),
        "a",
        &a,
        vec![route_to(&b, 1), route_to(&r, 1), Route { next_hop: LOCAL, ..route_to(&a, LOCAL) }],
        vec![link(1, R_ENDPOINT, &r)],
        KeyTable::new(1, NOW, vec![send_session(&b, 0xB0B)], vec![receive_session(&b, 0xA11)]),
    );
    publish(
        dir.path(),
        "r",
        &r,
        vec![route_to(&a, 1), route_to(&b, 2)],
        vec![link(1, A_ENDPOINT, &a), link(2, B_ENDPOINT, &b)],
        KeyTable::new(1, NOW, vec![], vec![]),
    );
    publish(
        dir.path(),
        "b",
        &b,
        vec![route_to(&a, 1)],
        vec![link(1, R_ENDPOINT, &r)],
        KeyTable::new(1, NOW, vec![send_session(&a, 0xA11)], vec![receive_session(&a, 0xB0B)]),
    );
    let engine_a = engine(dir.path(), "a", &a, 3);
    let engine_r = engine(dir.path(), "r", &r, 0);
    let engine_b = engine(dir.path(), "b", &b, 0);
    Lab { _dir: dir, a, r, b, engine_a, engine_r, engine_b }
}

fn ipv6(src: [u8; 16], dst: [u8; 16], payload: &[u8]) -> Vec<u8> {
    let mut p = vec![0x60, 0, 0, 0];
    p.extend_from_slice(&(payload.len() as u16).to_be_bytes());
    p.extend_from_slice(&[17, 64]);
    p.extend_from_slice(&src);
    p.extend_from_slice(&dst);
    p.extend_from_slice(payload);
    p
}

/// One packet in a buffer with head- and tailroom, run through one side of
/// an engine. Returns the outputs (with their bytes) and the drop tallies.
fn run(engine: &mut SealedEngine, from_tun: bool, packet: &[u8]) -> (Vec<(TxDest, Vec<u8>)>, [u64; DropReason::COUNT]) {
    let headroom = if from_tun { HEADROOM } else { 0 };
    let mut buf = vec![0u8; headroom + packet.len() + TAILROOM + 64];
    buf[headroom..headroom + packet.len()].copy_from_slice(packet);
    let mut batch = RxBatch::with_capacity(1);
    let peer: Option<SocketAddr> = (!from_tun).then(|| R_ENDPOINT.parse().unwrap());
    // Safety: `buf` lives until the end of this function, and nothing else
    // touches it while the batch holds it.
    assert!(unsafe { batch.push(buf.as_mut_ptr(), buf.len(), headroom, packet.len(), peer, PacketId::from_raw(9)) });
    let mut out = TxQueues::with_capacity(4);
    let now = Timestamp::from_nanos(NOW);
    if from_tun {
        engine.process_from_tun(now, &mut batch, &mut out);
    } else {
        engine.process_from_underlay(now, &mut batch, &mut out);
    }
    batch.clear();
    let outputs = out
        .entries()
        .iter()
        .map(|&TxEntry { id, start, len, dest }| {
            assert_eq!(id, PacketId::from_raw(9));
            (dest, buf[start as usize..(start + len) as usize].to_vec())
        })
        .collect();
    (outputs, *out.drops())
}

fn only_drop(drops: &[u64; DropReason::COUNT]) -> DropReason {
    let reasons: Vec<_> = DropReason::ALL.iter().copied().filter(|r| drops[*r as usize] > 0).collect();
    assert_eq!(reasons.len(), 1, "drops: {reasons:?}");
    reasons[0]
}

/// The expected datagram, built independently: header by hand, sealed with
/// the RustCrypto oracle.
fn expected_datagram(shard: u8, key_id: u32, counter: u64, src: [u8; 16], dst: [u8; 16], inner: &[u8]) -> Vec<u8> {
    let mut d = vec![1, 0x01, 64, shard];
    d.extend_from_slice(&key_id.to_be_bytes());
    d.extend_from_slice(&counter.to_be_bytes());
    d.extend_from_slice(&src);
    d.extend_from_slice(&dst);
    let mut aad = d.clone();
    aad[2] = 0;
    let mut body = inner.to_vec();
    let tag = RustCryptoAes256Gcm::new(&SessionKey::from_bytes(KEY_AB))
        .seal_in_place(Nonce::new(shard, counter), &aad, &mut body)
        .unwrap();
    d.extend_from_slice(&body);
    d.extend_from_slice(&tag);
    d
}

#[test]
fn a_tun_packet_is_sealed_to_the_byte_and_sent_to_the_next_hop() {
    let mut lab = lab();
    let inner = ipv6(lab.a.addr, lab.b.addr, b"hello mesh");
    let (outputs, _) = run(&mut lab.engine_a, true, &inner);
    let expected = expected_datagram(3, 0xB0B, 0, lab.a.addr, lab.b.addr, &inner);
    assert_eq!(outputs, vec![(TxDest::Udp(R_ENDPOINT.parse().unwrap()), expected)]);
    // The next packet takes the next counter.
    let (outputs, _) = run(&mut lab.engine_a, true, &inner);
    assert_eq!(outputs[0].1, expected_datagram(3, 0xB0B, 1, lab.a.addr, lab.b.addr, &inner));
}

#[test]
fn a_relay_decrements_the_hop_limit_and_forwards_without_opening() {
    let mut lab = lab();
    let datagram = expected_datagram(3, 0xB0B, 0, lab.a.addr, lab.b.addr, &ipv6(lab.a.addr, lab.b.addr, b"x"));
    let (outputs, _) = run(&mut lab.engine_r, false, &datagram);
    let mut expected = datagram.clone();
    expected[2] = 63;
    assert_eq!(outputs, vec![(TxDest::Udp(B_ENDPOINT.parse().unwrap()), expected)]);
    // The relay accounts the bytes to A's /64.
    let a_prefix = u64::from_be_bytes(lab.a.addr[..8].try_into().unwrap());
    let transit: Vec<_> = lab.engine_r.transit().unwrap().entries().collect();
    assert_eq!(transit[0], (a_prefix, datagram.len() as u64, 1));
}

#[test]
fn a_relay_drops_a_packet_whose_hop_limit_ran_out() {
    let mut lab = lab();
    let mut datagram = expected_datagram(3, 0xB0B, 0, lab.a.addr, lab.b.addr, &ipv6(lab.a.addr, lab.b.addr, b"x"));
    for hop in [1, 0] {
        datagram[2] = hop;
        let (outputs, drops) = run(&mut lab.engine_r, false, &datagram);
        assert!(outputs.is_empty());
        assert_eq!(only_drop(&drops), DropReason::HopLimit);
    }
}

#[test]
fn the_destination_opens_and_delivers_the_plaintext_to_the_tun() {
    let mut lab = lab();
    let inner = ipv6(lab.a.addr, lab.b.addr, b"end to end");
    let (sent, _) = run(&mut lab.engine_a, true, &inner);
    let (relayed, _) = run(&mut lab.engine_r, false, &sent[0].1);
    let (delivered, drops) = run(&mut lab.engine_b, false, &relayed[0].1);
    assert_eq!(drops.iter().sum::<u64>(), 0);
    assert_eq!(delivered, vec![(TxDest::Tun, inner)]);
}

#[test]
fn a_replayed_packet_is_dropped() {
    let mut lab = lab();
    let datagram = expected_datagram(3, 0xB0B, 5, lab.a.addr, lab.b.addr, &ipv6(lab.a.addr, lab.b.addr, b"x"));
    assert_eq!(run(&mut lab.engine_b, false, &datagram).0.len(), 1);
    let (outputs, drops) = run(&mut lab.engine_b, false, &datagram);
    assert!(outputs.is_empty());
    assert_eq!(only_drop(&drops), DropReason::Replayed);
}

#[test]
fn tampering_with_any_authenticated_byte_is_detected() {
    let mut lab = lab();
    let datagram = expected_datagram(3, 0xB0B, 0, lab.a.addr, lab.b.addr, &ipv6(lab.a.addr, lab.b.addr, b"payload"));
    // Skip version/type (classified first), hop limit (not authenticated),
    // key id (another session), source and destination (checked first).
    for i in (3..4).chain(8..16).chain(48..datagram.len()) {
        let mut bad = datagram.clone();
        bad[i] ^= 0x40;
        let (outputs, drops) = run(&mut lab.engine_b, false, &bad);
        assert!(outputs.is_empty(), "byte {i}");
        assert_eq!(only_drop(&drops), DropReason::AuthFailed, "byte {i}");
    }
    let mut wrong_key_id = datagram.clone();
    wrong_key_id[7] ^= 1;
    assert_eq!(only_drop(&run(&mut lab.engine_b, false, &wrong_key_id).1), DropReason::NoSession);
    let mut wrong_source = datagram.clone();
    wrong_source[20] ^= 1;
    assert_eq!(only_drop(&run(&mut lab.engine_b, false, &wrong_source).1), DropReason::WrongPeer);
}

#[test]
fn truncated_and_wrong_version_datagrams_are_counted() {
    let mut lab = lab();
    let datagram = expected_datagram(3, 0xB0B, 0, lab.a.addr, lab.b.addr, &ipv6(lab.a.addr, lab.b.addr, b"x"));
    for len in [0, 1, 2, 47, 48, 63] {
        let (outputs, drops) = run(&mut lab.engine_b, false, &datagram[..len]);
        assert!(outputs.is_empty(), "length {len}");
        assert_eq!(only_drop(&drops), DropReason::Malformed, "length {len}");
    }
    let mut v2 = datagram.clone();
    v2[0] = 2;
    assert_eq!(only_drop(&run(&mut lab.engine_b, false, &v2).1), DropReason::BadVersion);
    let mut unknown = datagram;
    unknown[1] = 0x7f;
    assert_eq!(only_drop(&run(&mut lab.engine_b, false, &unknown).1), DropReason::UnknownType);
}

#[test]
fn control_packets_and_routed_handshakes_for_us_are_punted() {
    let mut lab = lab();
    let control = [1u8, 0x02, 0, 0, 0, 0, 0, 7, 0, 0, 0, 0, 0, 0, 0, 1, 0xee];
    let (outputs, _) = run(&mut lab.engine_b, false, &control);
    assert_eq!(outputs, vec![(TxDest::Punt(PuntKind::ControlFromUnderlay), control.to_vec())]);

    let mut handshake = vec![1u8, 0x05, 64, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    handshake.extend_from_slice(&lab.a.addr);
    handshake.extend_from_slice(&lab.b.addr);
    handshake.extend_from_slice(&[0x55; 96]);
    let (outputs, _) = run(&mut lab.engine_b, false, &handshake);
    assert_eq!(outputs, vec![(TxDest::Punt(PuntKind::ControlFromUnderlay), handshake.clone())]);
    // In transit, a routed handshake is forwarded like data.
    let (outputs, _) = run(&mut lab.engine_r, false, &handshake);
    assert!(matches!(outputs[0].0, TxDest::Udp(_)));
}

#[test]
fn an_unknown_destination_is_punted_once_then_dropped() {
    let mut lab = lab();
    let stranger = node(9).addr;
    let inner = ipv6(lab.a.addr, stranger, b"?");
    let (outputs, _) = run(&mut lab.engine_a, true, &inner);
    assert_eq!(outputs, vec![(TxDest::Punt(PuntKind::NoRoute), inner.clone())]);
    let (outputs, drops) = run(&mut lab.engine_a, true, &inner);
    assert!(outputs.is_empty());
    assert_eq!(only_drop(&drops), DropReason::NoRoute);
}

#[test]
fn a_routed_destination_without_a_session_is_punted_for_a_handshake() {
    let mut lab = lab();
    let inner = ipv6(lab.a.addr, lab.r.addr, b"?");
    let (outputs, _) = run(&mut lab.engine_a, true, &inner);
    assert_eq!(outputs, vec![(TxDest::Punt(PuntKind::NoSession), inner)]);
}

#[test]
fn spoofed_and_non_ipv6_tun_packets_are_dropped() {
    let mut lab = lab();
    let spoofed = ipv6(lab.r.addr, lab.b.addr, b"x");
    assert_eq!(only_drop(&run(&mut lab.engine_a, true, &spoofed).1), DropReason::Spoofed);
    let mut v4 = ipv6(lab.a.addr, lab.b.addr, b"x");
    v4[0] = 0x45;
    assert_eq!(only_drop(&run(&mut lab.engine_a, true, &v4).1), DropReason::NotIpv6);
    let mut multicast = [0u8; 16];
    multicast[0] = 0xff;
    assert_eq!(only_drop(&run(&mut lab.engine_a, true, &ipv6(lab.a.addr, multicast, b"x")).1), DropReason::NotUnicast);
}

#[test]
fn an_inner_packet_not_from_the_sessions_peer_is_dropped_after_opening() {
    let mut lab = lab();
    // Sealed correctly under A's session, but the inner source is R's address.
    let inner = ipv6(lab.r.addr, lab.b.addr, b"x");
    let datagram = expected_datagram(3, 0xB0B, 0, lab.a.addr, lab.b.addr, &inner);
    assert_eq!(only_drop(&run(&mut lab.engine_b, false, &datagram).1), DropReason::Spoofed);
}

#[test]
fn a_new_route_snapshot_remaps_routes_to_their_sessions_and_links() {
    let dir = tempfile::tempdir().unwrap();
    let (a, r, b) = (node(1), node(2), node(3));
    let link = |id, ep: &str, peer: &Node| Link::new(id, ep.parse().unwrap(), LinkState::Up, &peer.key);
    let mut publisher = Publisher::create(ShmDir::new(dir.path(), "a").unwrap()).unwrap();
    let mut publish = |generation: u64, routes: Vec<Route>, links: Vec<Link>, keys: &KeyTable| {
        let snapshot = SnapshotBuilder::new(NodeInfo::from_public_key(&a.key), generation, Timestamp::from_nanos(NOW))
            .routes(routes)
            .links(links)
            .build()
            .unwrap();
        publisher.publish(ROUTES, &snapshot.to_bytes().unwrap()).unwrap();
        publisher.publish(KEYS, &keys.to_bytes()).unwrap();
    };
    let keys = KeyTable::new(1, NOW, vec![send_session(&b, 0xB0B), send_session(&r, 0x222)], vec![]);
    publish(1, vec![route_to(&b, 1), route_to(&r, 1)], vec![link(1, R_ENDPOINT, &r)], &keys);
    let mut engine_a = engine(dir.path(), "a", &a, 3);
    let to_b = ipv6(a.addr, b.addr, b"to b");
    let to_r = ipv6(a.addr, r.addr, b"to r");
    let (outputs, _) = run(&mut engine_a, true, &to_b);
    assert_eq!(
        outputs,
        vec![(TxDest::Udp(R_ENDPOINT.parse().unwrap()), expected_datagram(3, 0xB0B, 0, a.addr, b.addr, &to_b))]
    );
    let (outputs, _) = run(&mut engine_a, true, &to_r);
    assert_eq!(outputs[0].1, expected_datagram(3, 0x222, 0, a.addr, r.addr, &to_r));

    // Generation 2: a route sorting before both shifts every route index,
    // B is now reached over a new link that sorts first, with a new endpoint.
    let mut first = [0u8; 16];
    first[0] = 0x04;
    let extra = Route { prefix: first, len: 64, next_hop: 1, metric: 1, seqno: 1, router_id: [0xee; 32] };
    publish(
        2,
        vec![extra, route_to(&b, 0), route_to(&r, 1)],
        vec![link(0, B_ENDPOINT, &b), link(1, R_ENDPOINT, &r)],
        &keys,
    );
    engine_a.begin_batch(Timestamp::from_nanos(NOW));
    let (outputs, _) = run(&mut engine_a, true, &to_r);
    assert_eq!(
        outputs,
        vec![(TxDest::Udp(R_ENDPOINT.parse().unwrap()), expected_datagram(3, 0x222, 1, a.addr, r.addr, &to_r))]
    );
    let (outputs, _) = run(&mut engine_a, true, &to_b);
    assert_eq!(
        outputs,
        vec![(TxDest::Udp(B_ENDPOINT.parse().unwrap()), expected_datagram(3, 0xB0B, 1, a.addr, b.addr, &to_b))]
    );
    // The extra route's destination has no session: punted, not sealed for anyone.
    let mut stranger = first;
    stranger[15] = 1;
    let (outputs, _) = run(&mut engine_a, true, &ipv6(a.addr, stranger, b"?"));
    assert!(matches!(outputs[..], [(TxDest::Punt(PuntKind::NoSession), _)]));
}

#[test]
fn a_route_whose_router_session_does_not_own_the_destination_is_never_sealed() {
    let dir = tempfile::tempdir().unwrap();
    let (a, r, b) = (node(1), node(2), node(3));
    // B's prefix announced with R's router id: R's session would be used, but
    // R accepts only packets for its own /64.
    let wrong = Route { router_id: *r.key.as_bytes(), ..route_to(&b, 1) };
    publish(
        dir.path(),
        "a",
        &a,
        vec![wrong],
        vec![Link::new(1, R_ENDPOINT.parse().unwrap(), LinkState::Up, &r.key)],
        KeyTable::new(1, NOW, vec![send_session(&r, 0x222)], vec![]),
    );
    let mut engine_a = engine(dir.path(), "a", &a, 0);
    let inner = ipv6(a.addr, b.addr, b"secret");
    let (outputs, _) = run(&mut engine_a, true, &inner);
    assert_eq!(outputs, vec![(TxDest::Punt(PuntKind::NoSession), inner)]);
}
