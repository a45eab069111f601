//! Two and three composed nodes wired back to back on simulated time: the
//! same NodeCore myceliumd runs, with datagrams handed over as the
//! dataplane would punt them.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use mycelium_common::identity::SecretKey;
use mycelium_common::keytable::KeyTableView;
use mycelium_common::snapshot::{NextHop, SnapshotView};
use mycelium_common::time::Timestamp;

use super::*;
use crate::discovery::SystemResolver;
use crate::peer::SeededEntropy;

struct Sim {
    nodes: Vec<NodeCore>,
    endpoints: Vec<SocketAddr>,
    /// Which pairs can reach each other on the underlay.
    reachable: Vec<(usize, usize)>,
    snapshots: Vec<Option<Box<RouteSnapshot>>>,
    keys: Vec<Option<KeyTable>>,
    now: Timestamp,
}

fn endpoint(i: usize) -> SocketAddr {
    format!("192.0.2.{}:9651", i + 1).parse().unwrap()
}

fn secret(i: usize) -> SecretKey {
    SecretKey::from_bytes([i as u8 + 1; 32])
}

impl Sim {
    /// Nodes `0..n`; each dials the ones listed in `dials`.
    fn new(n: usize, dials: &[(usize, usize)]) -> Sim {
        let now = Timestamp::from_nanos(1_000_000_000);
        let nodes = (0..n)
            .map(|i| {
                let statics = dials
                    .iter()
                    .filter(|(a, _)| *a == i)
                    .map(|(_, b)| {
                        format!("udp://{}@{}", secret(*b).public_key().to_hex(), endpoint(*b)).parse().unwrap()
                    })
                    .collect();
                let settings = NodeSettings {
                    discovery: DiscoveryConfig { lan: false, ..DiscoveryConfig::default() },
                    ..NodeSettings::default()
                };
                let mut node = NodeCore::new(
                    secret(i),
                    settings,
                    statics,
                    Box::new(SeededEntropy::new(i as u64 + 1)),
                    Box::new(SeededEntropy::new(i as u64 + 100)),
                    Box::new(SystemResolver),
                    now,
                    1_700_000_000_000_000_000,
                );
                node.handle_epoch(now, 1_700_000_000_000_000_000, 7);
                node
            })
            .collect();
        let reachable = dials.iter().flat_map(|&(a, b)| [(a, b), (b, a)]).collect();
        Sim {
            nodes,
            endpoints: (0..n).map(endpoint).collect(),
            reachable,
            snapshots: vec![None; n],
            keys: vec![None; n],
            now,
        }
    }

    /// Runs for `duration` of simulated time, delivering datagrams at once.
    fn run(&mut self, duration: Duration) {
        let end = self.now + duration;
        let mut steps = 0;
        while self.now < end && steps < 200_000 {
            steps += 1;
            self.deliver();
            let next = self.nodes.iter().map(NodeCore::poll_timeout).min().unwrap().max(self.now);
            self.now = next.min(end).max(self.now + Duration::from_millis(1));
            for node in &mut self.nodes {
                if node.poll_timeout() <= self.now {
                    node.handle_timeout(self.now, 1_700_000_000_000_000_000 + self.now.as_nanos());
                }
            }
        }
        self.deliver();
    }

    fn deliver(&mut self) {
        for _ in 0..1000 {
            let mut moved = false;
            for i in 0..self.nodes.len() {
                while let Some(out) = self.nodes[i].poll_output() {
                    match out {
                        Output::Datagram { to, bytes } => {
                            let Some(j) = self.endpoints.iter().position(|e| *e == to) else { continue };
                            if !self.reachable.contains(&(i, j)) {
                                continue;
                            }
                            moved = true;
                            let punted = Punted::Control { from: self.endpoints[i], packet: bytes };
                            self.nodes[j].handle_punt(self.now, 1_700_000_000_000_000_000, punted);
                        }
                        Output::Routes(s) => self.snapshots[i] = Some(s),
                        Output::Keys(k) => self.keys[i] = Some(k),
                    }
                }
            }
            if !moved {
                return;
            }
        }
    }

    fn next_hop(&self, from: usize, to: usize) -> Option<SocketAddr> {
        let bytes = self.snapshots[from].as_ref()?.to_bytes().unwrap();
        let view = SnapshotView::validate(&bytes).unwrap();
        let hit = view.lookup(&secret(to).public_key().address().octets())?;
        match hit.next_hop {
            NextHop::Link(link) => link.underlay(),
            NextHop::Local => None,
        }
    }
}

/// An inner IPv6 packet from node `from` to node `to`.
fn inner(from: usize, to: usize) -> Vec<u8> {
    let mut p = vec![0x60, 0, 0, 0, 0, 1, 17, 64];
    p.extend_from_slice(&secret(from).public_key().address().octets());
    p.extend_from_slice(&secret(to).public_key().address().octets());
    p.push(0);
    p
}

#[test]
fn two_nodes_peer_exchange_routes_and_publish_snapshots_that_reach_each_other() {
    let mut sim = Sim::new(2, &[(0, 1)]);
    sim.run(Duration::from_secs(3));
    assert_eq!(sim.next_hop(0, 1), Some(endpoint(1)));
    assert_eq!(sim.next_hop(1, 0), Some(endpoint(0)));
    let status = sim.nodes[0].status(sim.now);
    assert_eq!(status.peers.len(), 1);
    assert_eq!(status.routes.iter().filter(|r| r.state == crate::api::types::RouteState::Selected).count(), 1);
}

#[test]
fn a_relay_carries_routes_and_the_end_to_end_handshake_between_nodes_that_cannot_reach_each_other() {
    // 0 - 1 - 2 in a line: 0 and 2 share no underlay.
    let mut sim = Sim::new(3, &[(0, 1), (1, 2)]);
    sim.run(Duration::from_secs(5));
    assert_eq!(sim.next_hop(0, 2), Some(endpoint(1)), "0 reaches 2 through 1");
    assert_eq!(sim.next_hop(2, 0), Some(endpoint(1)));

    // The dataplane punts 0's first packet to 2: a session is made through 1.
    let now = sim.now;
    sim.nodes[0].handle_punt(now, 1_800_000_000_000_000_000, Punted::NoSession { packet: inner(0, 2) });
    // The relay's dataplane forwards routed handshakes without its daemon;
    // here the harness hands them straight to the destination's node.
    let mut forwarded = 0;
    for _ in 0..4 {
        for (i, j) in [(0, 2), (2, 0)] {
            let mut kept = Vec::new();
            while let Some(out) = sim.nodes[i].poll_output() {
                match out {
                    Output::Datagram { to, bytes } if to == endpoint(1) && bytes[1] == 0x05 => {
                        forwarded += 1;
                        sim.nodes[j].handle_punt(
                            now,
                            1_800_000_000_000_000_000,
                            Punted::Control { from: endpoint(1), packet: bytes },
                        );
                    }
                    Output::Keys(k) => sim.keys[i] = Some(k),
                    other => kept.push(other),
                }
            }
            drop(kept);
        }
    }
    assert_eq!(forwarded, 2, "one init and one response, each via the relay's endpoint");
    let (k0, k2) = (sim.keys[0].as_ref().unwrap().to_bytes(), sim.keys[2].as_ref().unwrap().to_bytes());
    let (v0, v2) = (KeyTableView::validate(&k0).unwrap(), KeyTableView::validate(&k2).unwrap());
    let send = v0.send_to(&secret(2).public_key().address().octets()).expect("0 can seal to 2");
    let receive = v2.receive_by_key_id(send.key_id.to_native()).expect("2 opens 0's key id");
    assert_eq!(send.key, receive.key);
    assert_eq!(send.dataplane_epoch.to_native(), 7);
    let by_peer: BTreeMap<_, _> = v2.send_sessions().iter().map(|s| (s.peer, s.key)).collect();
    assert!(by_peer.contains_key(&secret(0).public_key().address().octets()), "and 2 can seal back to 0");
}

#[test]
fn a_link_that_goes_silent_takes_its_routes_away() {
    let mut sim = Sim::new(2, &[(0, 1)]);
    sim.run(Duration::from_secs(3));
    assert!(sim.next_hop(0, 1).is_some());
    sim.reachable.clear();
    sim.run(Duration::from_secs(40));
    assert_eq!(sim.next_hop(0, 1), None, "the route is withdrawn once the link is dead");
}

#[test]
fn a_link_with_no_measurements_yet_serializes_to_json_that_parses_back() {
    let link = crate::link::Link::new(Timestamp::from_nanos(1), crate::link::LinkConfig::default());
    let info = crate::api::types::LinkInfo::from_metrics(0, &link.metrics(), 0, 0);
    let text = serde_json::to_string(&info).unwrap();
    let back: crate::api::types::LinkInfo = serde_json::from_str(&text).unwrap();
    assert_eq!(back, info, "{text}");
}
