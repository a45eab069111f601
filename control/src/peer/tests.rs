//! Two (or three) managers back to back on virtual time.

use std::time::Duration;

use mycelium_common::identity::SecretKey;
use mycelium_common::wire::tlv::{ControlMessage, Probe};
use proptest::prelude::*;

use super::harness::{Net, addr, keys_ordered};
use super::*;

const MS: Duration = Duration::from_millis(1);
const SEC: Duration = Duration::from_secs(1);

fn probe(i: u32) -> ControlMessage {
    ControlMessage::Probe(Probe { train_id: i, index: 0, count: 1, sent_us: 0, padding: 100 })
}

fn is_up(e: &PeerEvent) -> bool {
    matches!(e, PeerEvent::Up { .. })
}
fn is_down(e: &PeerEvent) -> bool {
    matches!(e, PeerEvent::Down { .. })
}
fn is_rekeyed(e: &PeerEvent) -> bool {
    matches!(e, PeerEvent::Rekeyed { .. })
}

/// A (node 0) dials B (node 1); returns the net with the link up.
fn linked(config: PeeringConfig) -> (Net, LinkId, LinkId) {
    let (a, b) = keys_ordered();
    let mut net = Net::new(vec![a, b], config);
    let b_key = net.nodes[1].key;
    let now = net.now;
    let a_link = net.nodes[0].manager.connect(now, addr(1), b_key).unwrap();
    net.deliver();
    let b_link = net.nodes[1].manager.link_at(addr(0)).expect("B knows A");
    (net, a_link, b_link)
}

#[test]
fn two_managers_establish_a_link_and_exchange_messages_in_both_directions() {
    let (mut net, a_link, b_link) = linked(PeeringConfig::default());
    assert_eq!(net.nodes[0].events, vec![PeerEvent::Up { link: a_link, peer: net.nodes[1].key, endpoint: addr(1) }]);
    assert_eq!(net.nodes[1].events, vec![PeerEvent::Up { link: b_link, peer: net.nodes[0].key, endpoint: addr(0) }]);
    let now = net.now;
    assert_eq!(net.nodes[0].manager.send_control(now, a_link, &[probe(1), probe(2)]), Ok(1));
    assert_eq!(net.nodes[1].manager.send_control(now, b_link, &[probe(3)]), Ok(1));
    net.deliver();
    assert_eq!(net.messages(1), vec![probe(1), probe(2)]);
    assert_eq!(net.messages(0), vec![probe(3)]);
    let a = net.nodes[0].manager.peers().next().unwrap();
    let b = net.nodes[1].manager.peers().next().unwrap();
    assert_eq!((a.stats.tx_packets, a.stats.rx_packets, a.stats.sessions), (2, 1, 1), "a keepalive, then the probes");
    assert_eq!((b.stats.tx_packets, b.stats.rx_packets), (1, 2));
    assert_eq!(a.stats.tx_bytes, b.stats.rx_bytes);
    assert_eq!((a.state, a.dial, b.dial), (LinkState::Established, true, false));
    assert_eq!(net.nodes[0].manager.drops().total() + net.nodes[1].manager.drops().total(), 0);
}

#[test]
fn many_messages_are_packed_into_few_packets_that_fit_the_datagram_limit() {
    let (mut net, a_link, _) = linked(PeeringConfig::default());
    let now = net.now;
    let messages: Vec<_> = (0..40).map(probe).collect();
    // 40 TLVs of 119 bytes, 1232 - 32 = 1200 bytes of body: 10 per packet.
    assert_eq!(net.nodes[0].manager.send_control(now, a_link, &messages), Ok(4));
    net.collect_for_test();
    assert!(net.wire.iter().all(|(_, _, d)| d.len() <= 1232));
    net.deliver();
    assert_eq!(net.messages(1), messages);
}

#[test]
fn sending_on_a_link_that_is_not_up_is_refused() {
    let (a, b) = keys_ordered();
    let mut net = Net::new(vec![a, b], PeeringConfig::default());
    let (now, key) = (net.now, net.nodes[1].key);
    let link = net.nodes[0].manager.connect(now, addr(1), key).unwrap();
    assert_eq!(net.nodes[0].manager.send_control(now, link, &[probe(1)]), Err(SendError::NotEstablished));
    assert_eq!(net.nodes[0].manager.send_control(now, LinkId(99), &[]), Err(SendError::UnknownLink));
}

#[test]
fn links_rekey_on_schedule_without_losing_a_message_and_never_go_down() {
    let (mut net, a_link, b_link) = linked(PeeringConfig::default());
    let mut sent = 0u32;
    for _ in 0..600 {
        let now = net.now;
        net.nodes[0].manager.send_control(now, a_link, &[probe(sent)]).unwrap();
        net.nodes[1].manager.send_control(now, b_link, &[probe(sent)]).unwrap();
        sent += 1;
        net.run(SEC, SEC);
    }
    let expected: Vec<_> = (0..sent).map(probe).collect();
    assert_eq!(net.messages(0), expected);
    assert_eq!(net.messages(1), expected);
    // 10 minutes at one rekey per 2 minutes.
    assert!(net.count_events(0, is_rekeyed) >= 4, "{:?}", net.nodes[0].events.iter().filter(|e| is_rekeyed(e)).count());
    assert_eq!(net.count_events(0, is_down) + net.count_events(1, is_down), 0);
    assert_eq!(net.nodes[0].manager.drops().total() + net.nodes[1].manager.drops().total(), 0);
}

#[test]
fn a_rekey_starts_once_the_send_counter_reaches_its_limit() {
    let config = PeeringConfig { rekey_after_packets: 50, ..PeeringConfig::default() };
    let (mut net, _, b_link) = linked(config);
    for i in 0..60 {
        let now = net.now;
        net.nodes[1].manager.send_control(now, b_link, &[probe(i)]).unwrap();
        net.deliver();
    }
    assert_eq!(net.count_events(1, is_rekeyed), 1);
    assert_eq!(net.messages(0).len(), 60);
}

#[test]
fn packets_sealed_with_the_old_key_still_arrive_during_the_grace_period() {
    let (mut net, a_link, _) = linked(PeeringConfig::default());
    let now = net.now;
    net.nodes[0].manager.send_control(now, a_link, &[probe(7)]).unwrap();
    let in_flight = net.nodes[0].manager.poll_transmit().unwrap();
    // A (the session's initiator) rekeys at 120 s; the old key lives 10 s more.
    net.run(Duration::from_secs(125), SEC);
    assert_eq!(net.count_events(1, is_rekeyed), 1);
    assert!(!net.messages(1).contains(&probe(7)));
    assert_eq!(in_flight.0, addr(1));
    net.nodes[1].manager.handle_datagram(net.now, addr(0), &in_flight.1);
    net.deliver();
    assert!(net.messages(1).contains(&probe(7)), "{:?} {:?}", net.nodes[1].manager.drops(), net.nodes[1].events);
}

#[test]
fn a_restarted_peer_reconnects_with_new_keys_and_its_old_indexes_are_refused() {
    let (a, b) = keys_ordered();
    let (mut net, a_link, b_link) = linked(PeeringConfig::default());
    let now = net.now;
    net.nodes[0].manager.send_control(now, a_link, &[probe(1)]).unwrap();
    net.nodes[1].manager.send_control(now, b_link, &[probe(2)]).unwrap();
    net.deliver();
    let old_from_a = net.tap.iter().rev().find(|(from, _, _)| *from == addr(0)).unwrap().clone();
    let old_from_b = net.tap.last().unwrap().clone();
    net.run(5 * SEC, SEC);

    net.restart(0, a.clone(), PeeringConfig::default(), 77);
    let (now, b_key) = (net.now, net.nodes[1].key);
    let a_link = net.nodes[0].manager.connect(now, addr(1), b_key).unwrap();
    net.deliver();
    assert_eq!(net.count_events(0, is_up), 1);
    assert_eq!(net.count_events(1, is_rekeyed), 1, "B sees new keys on the same link");
    assert_eq!(net.nodes[1].manager.link_at(addr(0)), Some(b_link));

    // B's packet to A's pre-restart index: the new A never issued it.
    net.nodes[0].manager.handle_datagram(net.now, old_from_b.0, &old_from_b.2);
    assert_eq!(net.nodes[0].manager.drops().get(DropReason::UnknownIndex), 1);
    // A replay of A's old packet: refused by the replay window, then (the old
    // session gone after its grace) by its index.
    let before = net.nodes[1].manager.drops().get(DropReason::Replay);
    net.nodes[1].manager.handle_datagram(net.now, old_from_a.0, &old_from_a.2);
    assert_eq!(net.nodes[1].manager.drops().get(DropReason::Replay), before + 1);
    net.run(20 * SEC, SEC);
    net.nodes[1].manager.handle_datagram(net.now, old_from_a.0, &old_from_a.2);
    assert_eq!(net.nodes[1].manager.drops().get(DropReason::UnknownIndex), 1, "old index forgotten after the grace");

    let now = net.now;
    net.nodes[0].manager.send_control(now, a_link, &[probe(2)]).unwrap();
    net.nodes[1].manager.send_control(now, b_link, &[probe(3)]).unwrap();
    net.deliver();
    assert_eq!(net.messages(1).last(), Some(&probe(2)));
    assert_eq!(net.messages(0), vec![probe(3)], "the restarted A saw nothing old");
    drop(b);
}

#[test]
fn simultaneous_initiation_settles_on_one_session_with_the_lower_keys_init() {
    let (a, b) = keys_ordered();
    let mut net = Net::new(vec![a, b], PeeringConfig::default());
    let (now, ka, kb) = (net.now, net.nodes[0].key, net.nodes[1].key);
    let a_link = net.nodes[0].manager.connect(now, addr(1), kb).unwrap();
    let b_link = net.nodes[1].manager.connect(now, addr(0), ka).unwrap();
    net.deliver();
    assert_eq!(net.count_events(0, is_up), 1);
    assert_eq!(net.count_events(1, is_up), 1);
    assert_eq!(net.nodes[0].manager.drops().get(DropReason::HandshakeCollision), 1, "A (lower) drops B's init");
    assert_eq!(net.nodes[1].manager.drops().total(), 0);
    let now = net.now;
    net.nodes[0].manager.send_control(now, a_link, &[probe(1)]).unwrap();
    net.nodes[1].manager.send_control(now, b_link, &[probe(2)]).unwrap();
    net.deliver();
    assert_eq!((net.messages(0), net.messages(1)), (vec![probe(2)], vec![probe(1)]));
    net.run(Duration::from_secs(300), SEC);
    assert_eq!(net.count_events(0, is_down) + net.count_events(1, is_down), 0);
}

#[test]
fn forged_and_replayed_control_packets_are_rejected_and_counted() {
    let (a, b) = keys_ordered();
    let mallory = SecretKey::from_bytes([9; 32]);
    let (mut net, a_link, _) = linked(PeeringConfig::default());
    let now = net.now;
    net.nodes[0].manager.send_control(now, a_link, &[probe(1)]).unwrap();
    net.deliver();
    let (from, _, genuine) = net.tap.last().unwrap().clone();
    let b_mgr = &mut net.nodes[1].manager;
    // Replayed as is.
    b_mgr.handle_datagram(now, from, &genuine);
    assert_eq!(b_mgr.drops().get(DropReason::Replay), 1);
    // From a third party's address.
    b_mgr.handle_datagram(now, addr(2), &genuine);
    assert_eq!(b_mgr.drops().get(DropReason::WrongEndpoint), 1);
    // A fresh counter and a flipped byte: the tag fails.
    let mut forged = genuine.clone();
    forged[15] ^= 0x40;
    b_mgr.handle_datagram(now, from, &forged);
    let mut flipped = genuine.clone();
    flipped[20] ^= 1;
    flipped[15] ^= 0x20;
    b_mgr.handle_datagram(now, from, &flipped);
    assert_eq!(b_mgr.drops().get(DropReason::AuthFailed), 2);
    // An index nobody holds.
    let mut unknown = genuine;
    unknown[4..8].copy_from_slice(&[0xde, 0xad, 0xbe, 0xef]);
    b_mgr.handle_datagram(now, from, &unknown);
    assert_eq!(b_mgr.drops().get(DropReason::UnknownIndex), 1);
    assert_eq!(net.messages(1), vec![probe(1)], "nothing forged got through");
    drop((a, b, mallory));
}

#[test]
fn an_init_under_another_key_from_a_known_endpoint_is_refused() {
    let mallory = SecretKey::from_bytes([9; 32]);
    let (mut net, _, _) = linked(PeeringConfig::default());
    let b_key = net.nodes[1].key;
    let (init, _) = mycelium_common::handshake::initiate(
        &mallory,
        b_key,
        SecretKey::from_bytes([10; 32]),
        5,
        u64::MAX,
        mycelium_common::crypto::kdf::Purpose::Link,
    )
    .unwrap();
    net.nodes[1].manager.handle_datagram(net.now, addr(0), &init);
    assert_eq!(net.nodes[1].manager.drops().get(DropReason::UnexpectedKey), 1);
    // And a replay of A's own first init is refused by its timestamp.
    let first_init = net.tap.iter().find(|(_, _, d)| d[1] == 0x03).unwrap().2.clone();
    net.nodes[1].manager.handle_datagram(net.now, addr(0), &first_init);
    assert_eq!(net.nodes[1].manager.drops().get(DropReason::HandshakeReplay), 1);
}

#[test]
fn a_flood_of_inits_from_one_source_is_rate_limited() {
    let (a, b) = keys_ordered();
    let mut net = Net::new(vec![a, b], PeeringConfig::default());
    let key = net.nodes[1].key;
    for i in 0..50u8 {
        let attacker = SecretKey::from_bytes([100 + i; 32]);
        let (init, _) = mycelium_common::handshake::initiate(
            &attacker,
            key,
            SecretKey::from_bytes([i; 32]),
            1,
            1,
            mycelium_common::crypto::kdf::Purpose::Link,
        )
        .unwrap();
        let from = std::net::SocketAddr::from(([192, 0, 2, 1], 1000 + u16::from(i)));
        net.nodes[1].manager.handle_datagram(net.now, from, &init);
    }
    assert_eq!(net.nodes[1].manager.drops().get(DropReason::RateLimited), 45);
    // Unconfirmed inbound handshakes are forgotten.
    net.run(Duration::from_secs(20), SEC);
    assert_eq!(net.nodes[1].manager.peers().count(), 0);
    assert_eq!(net.count_events(1, is_up), 0);
}

#[test]
fn redial_backoff_grows_and_caps() {
    let config = PeeringConfig {
        handshake_timeout: Duration::from_secs(3),
        backoff_max: Duration::from_secs(20),
        ..PeeringConfig::default()
    };
    let (a, b) = keys_ordered();
    let mut net = Net::new(vec![a, b.clone()], config);
    net.nodes.truncate(1);
    let now = net.now;
    net.nodes[0].manager.connect(now, addr(1), b.public_key()).unwrap();
    net.run(Duration::from_secs(300), 100 * MS);
    let retries: Vec<Duration> = net.nodes[0]
        .events
        .iter()
        .filter_map(|e| match e {
            PeerEvent::Failed { retry_at, .. } => Some(*retry_at),
            _ => None,
        })
        .collect::<Vec<_>>()
        .windows(2)
        .map(|w| w[1] - w[0])
        .collect();
    assert!(retries.len() >= 8, "{retries:?}");
    // Each gap is one 3 s attempt plus the backoff: 1, 2, 4, 8, 16, then capped at 20 (less jitter).
    for (n, gap) in retries.iter().enumerate() {
        let backoff = gap.saturating_sub(Duration::from_secs(3));
        let full = Duration::from_secs(2u64.pow(n as u32 + 1)).min(Duration::from_secs(20));
        assert!(backoff <= full + 200 * MS && backoff >= full * 3 / 4 - 200 * MS, "gap {n}: {gap:?}");
    }
}

#[test]
fn a_silent_link_goes_down_on_both_sides_and_comes_back_when_the_path_returns() {
    let (mut net, _, _) = linked(PeeringConfig::default());
    net.cut = true;
    net.run(Duration::from_secs(50), SEC);
    assert_eq!(net.count_events(0, is_down), 1);
    assert_eq!(net.count_events(1, is_down), 1);
    assert_eq!(net.nodes[1].manager.peers().count(), 0, "B forgets an inbound peer");
    assert!(net.count_events(0, |e| matches!(e, PeerEvent::Failed { .. })) >= 1, "A keeps redialing");
    net.cut = false;
    net.run(Duration::from_secs(60), SEC);
    assert_eq!(net.count_events(0, is_up), 2);
    assert_eq!(net.count_events(1, is_up), 2);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// Random loss for a while (and traffic, rekeys, simultaneous dials),
    /// then a clean network: the link must be up on both sides soon after,
    /// and the harness checks every map and timer on the way.
    #[test]
    fn after_any_lossy_period_the_link_recovers(seed in any::<u64>(), loss in 0u64..100, both_dial in any::<bool>()) {
        let (a, b) = keys_ordered();
        let config = PeeringConfig { rekey_after_time: 20 * SEC, reject_after_time: 40 * SEC, ..PeeringConfig::default() };
        let mut net = Net::new(vec![a, b], config);
        net.loss_percent = loss;
        net.loss_state = seed;
        let (now, ka, kb) = (net.now, net.nodes[0].key, net.nodes[1].key);
        let a_link = net.nodes[0].manager.connect(now, addr(1), kb).unwrap();
        if both_dial {
            net.nodes[1].manager.connect(now, addr(0), ka).unwrap();
        }
        for _ in 0..120 {
            let now = net.now;
            let _ = net.nodes[0].manager.send_control(now, a_link, &[probe(0)]);
            net.run(SEC, 250 * MS);
        }
        net.loss_percent = 0;
        // The longest wait: a redial backoff of 32 s after the 6th failed attempt (at 121 s).
        net.run(Duration::from_secs(90), 250 * MS);
        prop_assert!(net.nodes[0].manager.is_up(a_link));
        let b_link = net.nodes[1].manager.link_at(addr(0));
        prop_assert!(b_link.is_some_and(|l| net.nodes[1].manager.is_up(l)));
        let now = net.now;
        let before = net.messages(1).len();
        net.nodes[0].manager.send_control(now, a_link, &[probe(9)]).unwrap();
        net.deliver();
        prop_assert_eq!(net.messages(1).len(), before + 1);
    }
}

proptest! {
    #[test]
    fn garbage_datagrams_never_panic_and_are_each_counted(
        datagrams in proptest::collection::vec((0u8..6, proptest::collection::vec(any::<u8>(), 0..200)), 1..40)
    ) {
        let (mut net, _, _) = linked(PeeringConfig::default());
        let b = &mut net.nodes[1].manager;
        let before = b.drops().total();
        let n = datagrams.len() as u64;
        for (kind, mut bytes) in datagrams {
            // Most get a valid version and a handshake or CONTROL type byte.
            if kind > 0 && bytes.len() >= 2 {
                bytes[0] = 1;
                bytes[1] = [2, 3, 4, 2, 2][usize::from(kind - 1)];
            }
            b.handle_datagram(net.now, addr(0), &bytes);
            b.handle_datagram(net.now, addr(3), &bytes);
        }
        b.check_invariants();
        prop_assert_eq!(b.drops().total() - before, 2 * n);
        prop_assert!(b.poll_event().is_none());
    }
}

#[test]
fn endpoints_are_compared_in_canonical_form() {
    let mapped: std::net::SocketAddr = "[::ffff:10.0.0.1]:9651".parse().unwrap();
    assert_eq!(canonical_endpoint(mapped), addr(1));
    let flow = std::net::SocketAddr::V6(std::net::SocketAddrV6::new("fe80::1".parse().unwrap(), 1, 77, 3));
    assert_eq!(canonical_endpoint(flow), "[fe80::1%3]:1".parse::<std::net::SocketAddr>().unwrap());
    // A dual-stack socket reports A's IPv4 address as mapped: still A.
    let (mut net, a_link, _) = linked(PeeringConfig::default());
    let now = net.now;
    net.nodes[0].manager.send_control(now, a_link, &[probe(1)]).unwrap();
    let (_, datagram) = net.nodes[0].manager.poll_transmit().unwrap();
    net.nodes[1].manager.handle_datagram(now, "[::ffff:10.0.0.0]:9651".parse().unwrap(), &datagram);
    net.deliver();
    assert_eq!(net.messages(1), vec![probe(1)]);
}

#[test]
fn a_malformed_tlv_in_an_authenticated_packet_is_counted_and_the_rest_still_read() {
    let (mut net, a_link, _) = linked(PeeringConfig::default());
    let mut good = vec![0u8; probe(1).buffer_len()];
    probe(1).emit(&mut good).unwrap();
    let body = [&[5u8, 0, 2, 0, 0][..], &good].concat(); // an IHU two bytes long, then a probe
    let peer = net.nodes[0].manager.peers.get_mut(&a_link).unwrap();
    let PeerState::Established(e) = &mut peer.state else { panic!("up") };
    let datagram = e.current.seal(&body);
    net.nodes[1].manager.handle_datagram(net.now, addr(0), &datagram);
    net.deliver();
    assert_eq!(net.messages(1), vec![probe(1)]);
    assert_eq!(net.nodes[1].manager.drops().get(DropReason::MalformedTlv), 1);
    assert_eq!(net.nodes[1].manager.peers().next().unwrap().stats.malformed_tlvs, 1);
}

#[test]
fn a_lost_init_or_response_is_retransmitted_as_a_fresh_handshake() {
    for lose_response in [false, true] {
        let (a, b) = keys_ordered();
        let mut net = Net::new(vec![a, b], PeeringConfig::default());
        let (now, key) = (net.now, net.nodes[1].key);
        net.nodes[0].manager.connect(now, addr(1), key).unwrap();
        if lose_response {
            let (to, init) = net.nodes[0].manager.poll_transmit().unwrap();
            assert_eq!(to, addr(1));
            net.nodes[1].manager.handle_datagram(now, addr(0), &init);
        }
        net.drop_next = 1;
        net.deliver();
        assert_eq!(net.count_events(0, is_up), 0);
        net.run(SEC, 100 * MS);
        assert_eq!(net.count_events(0, is_up), 1, "lost response {lose_response}: up after one retransmission");
        assert_eq!(net.count_events(1, is_up), 1);
        assert_eq!(net.nodes[1].manager.peers().count(), 1, "B replaced its unconfirmed first session");
        assert_eq!(net.nodes[0].manager.drops().total() + net.nodes[1].manager.drops().total(), 0);
    }
}

#[test]
fn simultaneous_rekeys_settle_on_one_new_session() {
    let config = PeeringConfig { rekey_after_packets: 10, ..PeeringConfig::default() };
    let (mut net, a_link, b_link) = linked(config);
    let now = net.now;
    // Both sides cross the packet limit before hearing from each other.
    for i in 0..10 {
        net.nodes[0].manager.send_control(now, a_link, &[probe(i)]).unwrap();
        net.nodes[1].manager.send_control(now, b_link, &[probe(100 + i)]).unwrap();
    }
    net.deliver();
    assert_eq!(net.count_events(0, is_rekeyed), 1);
    assert_eq!(net.count_events(1, is_rekeyed), 1);
    assert_eq!(net.nodes[0].manager.drops().get(DropReason::HandshakeCollision), 1, "A is lower: drops B's init");
    let now = net.now;
    net.nodes[0].manager.send_control(now, a_link, &[probe(50)]).unwrap();
    net.nodes[1].manager.send_control(now, b_link, &[probe(150)]).unwrap();
    net.deliver();
    assert_eq!(net.messages(1).len(), 11);
    assert_eq!(net.messages(0).len(), 11);
    assert_eq!(net.count_events(0, is_down) + net.count_events(1, is_down), 0);
}

#[test]
fn a_lost_confirmation_of_a_rekey_is_sent_again_when_the_peer_keeps_the_old_session() {
    let config = PeeringConfig { rekey_after_packets: 5, ..PeeringConfig::default() };
    let (mut net, a_link, b_link) = linked(config);
    let now = net.now;
    for i in 0..5 {
        net.nodes[0].manager.send_control(now, a_link, &[probe(i)]).unwrap();
    }
    net.deliver(); // A's rekey init went out with the fifth packet; B answered
    assert_eq!(net.count_events(0, is_rekeyed), 1, "A switched on the response");
    assert_eq!(net.count_events(1, is_rekeyed), 1, "B confirmed by A's keepalive");

    // Again, but A's confirming keepalive is lost: B stays on the old session.
    net.run(2 * SEC, SEC);
    let now = net.now;
    for i in 0..5 {
        net.nodes[0].manager.send_control(now, a_link, &[probe(10 + i)]).unwrap();
    }
    net.collect_for_test();
    let at = net.wire.iter().position(|(_, _, d)| d[1] == 0x03).expect("a rekey init");
    let init = net.wire.remove(at);
    net.deliver();
    net.nodes[1].manager.handle_datagram(now, init.0, &init.2);
    net.collect_for_test();
    let response = net.wire.pop().unwrap();
    assert_eq!((net.wire.len(), response.2[1]), (0, 0x04));
    net.nodes[0].manager.handle_datagram(now, response.0, &response.2);
    assert_eq!(net.count_events(0, is_rekeyed), 1, "events not collected yet");
    net.collect_for_test();
    assert_eq!(net.wire.len(), 1, "the confirming keepalive");
    net.wire.clear();
    assert_eq!(net.count_events(0, is_rekeyed), 2, "A switched");
    assert_eq!(net.count_events(1, is_rekeyed), 1, "B did not switch");
    // B sends on the old session; A reads it and confirms again (at most
    // once a second: the lost keepalive was the first confirmation).
    net.now = net.now + SEC;
    let now = net.now;
    net.nodes[1].manager.send_control(now, b_link, &[probe(99)]).unwrap();
    net.deliver();
    assert!(net.messages(0).contains(&probe(99)));
    assert_eq!(net.count_events(1, is_rekeyed), 2, "B switched on the second confirmation");
}

#[test]
fn a_session_that_cannot_be_rekeyed_expires_and_the_link_goes_down() {
    let (mut net, _, _) = linked(PeeringConfig::default());
    net.drop_types = vec![0x03, 0x04]; // handshakes lost, CONTROL still flows
    net.run(Duration::from_secs(181), SEC);
    let expired = |e: &PeerEvent| matches!(e, PeerEvent::Down { reason: DownReason::SessionExpired, .. });
    assert_eq!(net.count_events(0, expired), 1);
    assert_eq!(net.count_events(1, expired), 1);
    assert_eq!(net.count_events(0, is_rekeyed), 0);
}

#[test]
fn new_inbound_peers_beyond_the_limit_are_refused() {
    let (a, b) = keys_ordered();
    let config = PeeringConfig { max_peers: 1, ..PeeringConfig::default() };
    let mut net = Net::new(vec![a, b, SecretKey::from_bytes([3; 32])], config);
    let (now, kb) = (net.now, net.nodes[1].key);
    net.nodes[0].manager.connect(now, addr(1), kb).unwrap();
    net.nodes[2].manager.connect(now, addr(1), kb).unwrap();
    net.deliver();
    assert_eq!(net.count_events(1, is_up), 1);
    assert_eq!(net.nodes[1].manager.drops().get(DropReason::TooManyPeers), 1);
    let kc = net.nodes[2].key;
    assert_eq!(net.nodes[1].manager.connect(now, addr(2), kc), Err(ConnectError::TooManyPeers { max: 1 }));
}
