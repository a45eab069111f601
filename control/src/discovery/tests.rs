//! Discovery against real peer managers on the test network.

use std::collections::BTreeMap;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use mycelium_common::identity::{PublicKey, SecretKey};
use mycelium_common::time::Timestamp;
use mycelium_common::wire::tlv::{ControlMessage, PeerEndpoint, PeerExchange};

use super::*;
use crate::peer::harness::{Net, addr};
use crate::peer::{LinkId, PeerEvent, PeeringConfig};

const SEC: Duration = Duration::from_secs(1);

/// Answers from a script, one per lookup (the last one repeats), counting lookups.
#[derive(Debug, Default)]
struct FakeResolver {
    answers: BTreeMap<String, Vec<io::Result<SocketAddr>>>,
    lookups: Vec<String>,
}

impl Resolver for FakeResolver {
    fn resolve(&mut self, name: &str, _port: u16) -> io::Result<Vec<SocketAddr>> {
        self.lookups.push(name.to_owned());
        let script = self.answers.get_mut(name).ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))?;
        let answer = if script.len() > 1 {
            script.remove(0)
        } else {
            script[0].as_ref().map_err(|e| io::Error::from(e.kind())).copied()
        };
        answer.map(|a| vec![a])
    }
}

fn secrets(n: u8) -> Vec<SecretKey> {
    (1..=n).map(|i| SecretKey::from_bytes([i; 32])).collect()
}

fn config(target: usize) -> DiscoveryConfig {
    DiscoveryConfig { target_peers: target, ..DiscoveryConfig::default() }
}

fn key(i: u8) -> PublicKey {
    PublicKey::from_bytes([i; 32])
}

fn exchange_event(entries: &[PeerEndpoint]) -> PeerEvent {
    PeerEvent::Message { link: LinkId(0), message: ControlMessage::PeerExchange(PeerExchange::new(entries).unwrap()) }
}

#[test]
fn a_dns_peer_is_resolved_again_before_each_reconnect_attempt() {
    let short = PeeringConfig { handshake_timeout: 3 * SEC, ..PeeringConfig::default() };
    let mut net = Net::new(secrets(2), short);
    let b_key = net.nodes[1].key;
    let peer: StaticPeer = format!("udp://{b_key}@node-b.test:9651").parse().unwrap();
    let mut resolver = FakeResolver::default();
    // First answer is a dead address, then B's real one.
    let dead = SocketAddr::from(([10, 9, 9, 9], 9651));
    resolver.answers.insert("node-b.test".into(), vec![Ok(dead), Ok(addr(1))]);
    let now = net.now;
    let mut discovery = Discovery::new(config(8), net.nodes[0].key, vec![peer], now);
    discovery.handle_timeout(now, &mut net.nodes[0].manager, &mut resolver);
    assert_eq!(resolver.lookups.len(), 1);
    let link = net.nodes[0].manager.link_at(dead).expect("dialed the first answer");
    let mut seen = 0;
    for _ in 0..10 {
        net.run(SEC, SEC);
        let events = net.nodes[0].events[seen..].to_vec();
        seen = net.nodes[0].events.len();
        for event in &events {
            discovery.handle_event(net.now, event, &mut net.nodes[0].manager, &mut resolver);
        }
    }
    assert_eq!(resolver.lookups.len(), 2, "resolved again after the failed attempt");
    assert_eq!(net.nodes[0].manager.link_at(addr(1)), Some(link), "same link, new address");
    assert!(net.nodes[0].manager.is_up(link));
    assert_eq!(net.count_events(1, |e| matches!(e, PeerEvent::Up { .. })), 1);
}

#[test]
fn an_unresolvable_name_is_retried_with_backoff() {
    let mut net = Net::new(secrets(1), PeeringConfig::default());
    let peer: StaticPeer = format!("udp://{}@gone.test:9651", key(9)).parse().unwrap();
    let mut resolver = FakeResolver::default();
    let start = net.now;
    let mut discovery = Discovery::new(config(8), net.nodes[0].key, vec![peer], start);
    let mut now = start;
    for _ in 0..6 {
        now = discovery.poll_timeout().min(now + Duration::from_secs(1000));
        discovery.handle_timeout(now, &mut net.nodes[0].manager, &mut resolver);
    }
    assert_eq!(resolver.lookups.len(), 6);
    assert_eq!(discovery.resolve_failures, 6);
    // 0, then 1, 2, 4, 8, 16 s later.
    assert_eq!(now - start, Duration::from_secs(31));
}

#[test]
fn a_static_peer_without_a_key_is_asked_for_it_then_dialed() {
    let mut net = Net::new(secrets(2), PeeringConfig::default());
    let (a_key, b_key) = (net.nodes[0].key, net.nodes[1].key);
    let now = net.now;
    let mut a = Discovery::new(config(8), a_key, vec!["udp://10.0.0.1:9651".parse().unwrap()], now);
    let mut b = Discovery::new(config(8), b_key, vec![], now);
    let mut resolver = FakeResolver::default();
    a.handle_timeout(now, &mut net.nodes[0].manager, &mut resolver);
    let (to, query) = a.poll_transmit().expect("a key query");
    assert_eq!(to, addr(1));
    b.handle_beacon(now, addr(0), &Beacon::parse(&query).unwrap(), false, &mut net.nodes[1].manager);
    let (to, answer) = b.poll_transmit().expect("an answer");
    assert_eq!(to, addr(0));
    a.handle_beacon(now, addr(1), &Beacon::parse(&answer).unwrap(), false, &mut net.nodes[0].manager);
    a.handle_timeout(now, &mut net.nodes[0].manager, &mut resolver);
    net.deliver();
    assert_eq!(net.nodes[0].manager.up_count(), 1);
    assert_eq!(net.nodes[0].manager.peers().next().unwrap().key, b_key);
}

#[test]
fn peer_exchange_learning_is_bounded_and_skips_useless_entries() {
    let mut net = Net::new(secrets(1), PeeringConfig::default());
    let local = net.nodes[0].key;
    let now = net.now;
    let mut discovery = Discovery::new(DiscoveryConfig { max_candidates: 5, ..config(0) }, local, vec![], now);
    let mut resolver = FakeResolver::default();
    let ep = |k: u8, a: &str| {
        let s: SocketAddr = a.parse().unwrap();
        PeerEndpoint { key: key(k), ip: s.ip(), port: s.port() }
    };
    let useless = [
        ep(1, "127.0.0.1:9651"),
        ep(2, "[fe80::1]:9651"),
        ep(3, "198.51.100.1:0"),
        PeerEndpoint { key: local, ..ep(4, "198.51.100.4:9651") },
    ];
    discovery.handle_event(now, &exchange_event(&useless), &mut net.nodes[0].manager, &mut resolver);
    assert!(discovery.candidates().is_empty());
    for round in 0..5u8 {
        let entries: Vec<_> =
            (0..4).map(|i| ep(10 + round * 4 + i, &format!("198.51.100.{}:9651", 10 + round * 4 + i))).collect();
        discovery.handle_event(now, &exchange_event(&entries), &mut net.nodes[0].manager, &mut resolver);
    }
    assert_eq!(discovery.candidates().len(), 5);
}

#[test]
fn learnt_candidates_are_dialed_only_while_below_target_and_dropped_after_failing() {
    let short = PeeringConfig { handshake_timeout: 2 * SEC, backoff_max: 2 * SEC, ..PeeringConfig::default() };
    let mut net = Net::new(secrets(1), short);
    let now = net.now;
    let mut discovery = Discovery::new(config(2), net.nodes[0].key, vec![], now);
    let mut resolver = FakeResolver::default();
    let entries: Vec<_> =
        (0..4).map(|i| PeerEndpoint { key: key(10 + i), ip: [198, 51, 100, 10 + i].into(), port: 9651 }).collect();
    discovery.handle_event(now, &exchange_event(&entries), &mut net.nodes[0].manager, &mut resolver);
    discovery.handle_timeout(now, &mut net.nodes[0].manager, &mut resolver);
    assert_eq!(net.nodes[0].manager.peers().count(), 2, "target is 2");
    // Nobody answers: each dialed candidate fails 3 times and is replaced.
    for _ in 0..60 {
        net.run(SEC, SEC);
        let events = std::mem::take(&mut net.nodes[0].events);
        for event in &events {
            discovery.handle_event(net.now, event, &mut net.nodes[0].manager, &mut resolver);
        }
        discovery.handle_timeout(net.now, &mut net.nodes[0].manager, &mut resolver);
    }
    assert!(discovery.candidates().is_empty(), "all four failed out");
    assert_eq!(net.nodes[0].manager.peers().count(), 0);
}

#[test]
fn neighbours_learn_each_others_peers_through_exchange_and_dial_them() {
    exchange_between_three(70);
}

#[test]
fn a_new_neighbour_gets_the_first_exchange_within_seconds_not_after_the_interval() {
    exchange_between_three(6);
}

/// A dials B and C; A's exchange tells B about C; B (target 2) dials C, within `secs` seconds.
fn exchange_between_three(secs: usize) {
    let mut net = Net::new(secrets(3), PeeringConfig::default());
    let keys: Vec<_> = net.nodes.iter().map(|n| n.key).collect();
    let now = net.now;
    let statics = vec![
        format!("udp://{}@10.0.0.1:9651", keys[1]).parse().unwrap(),
        format!("udp://{}@10.0.0.2:9651", keys[2]).parse().unwrap(),
    ];
    let mut discovery: Vec<Discovery> = vec![
        Discovery::new(config(2), keys[0], statics, now),
        Discovery::new(config(2), keys[1], vec![], now),
        Discovery::new(config(2), keys[2], vec![], now),
    ];
    let mut resolver = FakeResolver::default();
    let mut seen = [0; 3];
    for _ in 0..secs {
        for (i, d) in discovery.iter_mut().enumerate() {
            let events = net.nodes[i].events[seen[i]..].to_vec();
            seen[i] = net.nodes[i].events.len();
            for event in &events {
                d.handle_event(net.now, event, &mut net.nodes[i].manager, &mut resolver);
            }
            if d.poll_timeout() <= net.now {
                d.handle_timeout(net.now, &mut net.nodes[i].manager, &mut resolver);
            }
        }
        net.run(SEC, SEC);
    }
    assert_eq!(net.nodes[1].manager.up_count(), 2, "B linked to A and, learnt from A, to C");
    assert!(net.nodes[1].manager.link_at(addr(2)).is_some());
    assert_eq!(net.nodes[2].manager.up_count(), 2);
}

#[test]
fn lan_beacons_become_candidates_unless_lan_discovery_is_off() {
    let mut net = Net::new(secrets(1), PeeringConfig::default());
    let now = net.now;
    let from: SocketAddr = "[fe80::2%3]:40000".parse().unwrap();
    let beacon = Beacon { port: 9651, key: key(7), query: false };
    let mut on = Discovery::new(config(8), net.nodes[0].key, vec![], now);
    on.handle_beacon(now, from, &beacon, true, &mut net.nodes[0].manager);
    let candidate = on.candidates().iter().next().expect("learnt").clone();
    assert_eq!(
        candidate.endpoint,
        "[fe80::2%3]:9651".parse::<SocketAddr>().unwrap(),
        "the beacon's port, the source's scope"
    );
    assert_eq!(candidate.source, Source::Lan);
    let mut off = Discovery::new(DiscoveryConfig { lan: false, ..config(8) }, net.nodes[0].key, vec![], now);
    off.handle_beacon(now, from, &beacon, true, &mut net.nodes[0].manager);
    assert!(off.candidates().is_empty());
    // Our own beacon, looped back, is ignored.
    on.handle_beacon(now, from, &on.beacon(), true, &mut net.nodes[0].manager);
    assert_eq!(on.candidates().len(), 1);
    let _ = Timestamp::ZERO;
}
