//! Two composed nodes joined by two links at once, as in the lab: A dials B
//! at two relay addresses (a fiber and a cellular emulator), and B hears
//! each link from the relay's other side. The harness also plays the
//! dataplane's per-link data counters: data goes on the link A routes B's
//! traffic over.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use mycelium_common::time::Timestamp;

use super::*;
use crate::discovery::SystemResolver;
use crate::link::LinkClass;
use crate::peer::SeededEntropy;

const WALL: u64 = 1_700_000_000_000_000_000;

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn secret(i: usize) -> SecretKey {
    SecretKey::from_bytes([i as u8 + 41; 32])
}

/// One relayed link: A sends to `a_side`, B hears it from `b_side`.
struct Wire {
    a_side: SocketAddr,
    b_side: SocketAddr,
    up: bool,
}

struct Pair {
    nodes: [NodeCore; 2],
    wires: Vec<Wire>,
    /// Data bytes each wire carried each way, as the dataplanes count them.
    data: Vec<u64>,
    /// Data bytes each node sends per 100 ms tick (and the other receives).
    data_per_tick: u64,
    next_tick: Timestamp,
    now: Timestamp,
}

impl Pair {
    /// A dials B over each of `classes` (in that order), every link its own relay.
    fn new(classes: &[Option<LinkClass>]) -> Pair {
        let now = Timestamp::from_nanos(1_000_000_000);
        let wires: Vec<Wire> = (0..classes.len())
            .map(|i| Wire {
                a_side: addr(&format!("10.0.{i}.2:9000")),
                b_side: addr(&format!("10.1.{i}.1:9000")),
                up: true,
            })
            .collect();
        let b_key = secret(1).public_key().to_hex();
        let statics: Vec<_> = wires.iter().map(|w| format!("udp://{b_key}@{}", w.a_side).parse().unwrap()).collect();
        let make = |i: usize, statics, static_classes| {
            let settings = NodeSettings {
                discovery: DiscoveryConfig { lan: false, ..DiscoveryConfig::default() },
                static_classes,
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
                WALL,
            );
            node.handle_epoch(now, WALL, 7);
            node
        };
        let nodes = [make(0, statics, classes.to_vec()), make(1, Vec::new(), Vec::new())];
        let data = vec![0; wires.len()];
        Pair { nodes, wires, data, data_per_tick: 0, next_tick: now, now }
    }

    fn run(&mut self, duration: Duration) {
        let end = self.now + duration;
        let mut steps = 0;
        while self.now < end && steps < 200_000 {
            steps += 1;
            self.deliver();
            let next = self.nodes.iter().map(NodeCore::poll_timeout).min().unwrap().min(self.next_tick);
            self.now = next.min(end).max(self.now + Duration::from_millis(1));
            if self.now >= self.next_tick {
                // The daemon reads the dataplane's counters every 100 ms.
                self.next_tick = self.now + Duration::from_millis(100);
                let carrying = self.a_to_b().and_then(|to| self.wires.iter().position(|w| w.up && w.a_side == to));
                if let Some(w) = carrying {
                    self.data[w] += self.data_per_tick;
                }
                for i in 0..2 {
                    let counts: Vec<(u32, u64, u64)> = self.nodes[i]
                        .links
                        .iter()
                        .filter_map(|(id, nl)| {
                            let w = self
                                .wires
                                .iter()
                                .position(|w| nl.endpoint == if i == 0 { w.a_side } else { w.b_side })?;
                            Some((id.0, self.data[w], self.data[w]))
                        })
                        .collect();
                    self.nodes[i].handle_link_traffic(self.now, counts);
                }
            }
            for node in &mut self.nodes {
                if node.poll_timeout() <= self.now {
                    node.handle_timeout(self.now, WALL + self.now.as_nanos());
                }
            }
        }
        self.deliver();
    }

    fn deliver(&mut self) {
        for _ in 0..1000 {
            let mut moved = false;
            for i in 0..2 {
                while let Some(out) = self.nodes[i].poll_output() {
                    let Output::Datagram { to, bytes } = out else { continue };
                    let wire = self.wires.iter().find(|w| if i == 0 { w.a_side == to } else { w.b_side == to });
                    let Some(w) = wire.filter(|w| w.up) else { continue };
                    let from = if i == 0 { w.b_side } else { w.a_side };
                    moved = true;
                    self.nodes[1 - i].handle_punt(self.now, WALL, Punted::Control { from, packet: bytes });
                }
            }
            if !moved {
                return;
            }
        }
    }

    /// A's selected next hop towards B: the relay address of the link.
    fn a_to_b(&self) -> Option<SocketAddr> {
        self.nodes[0].next_hop_endpoint(&secret(1).public_key())
    }

    /// A's links by relay address: (class, metrics).
    fn a_links(&self) -> BTreeMap<SocketAddr, crate::link::LinkMetrics> {
        self.nodes[0].links.values().map(|nl| (nl.endpoint, nl.link.metrics())).collect()
    }
}

#[test]
fn two_links_to_one_peer_stay_two_links_each_with_its_configured_class() {
    let mut pair = Pair::new(&[Some(LinkClass::Cellular), Some(LinkClass::Fiber)]);
    pair.run(Duration::from_secs(3));
    let links = pair.a_links();
    assert_eq!(links.len(), 2, "one link per relay, not one per peer");
    assert!(links.values().all(|m| m.up));
    assert_eq!(links[&addr("10.0.0.2:9000")].class, LinkClass::Cellular);
    assert_eq!(links[&addr("10.0.1.2:9000")].class, LinkClass::Fiber);
    // B dialed nothing: its links keep the default class.
    assert!(pair.nodes[1].links.values().all(|nl| nl.link.metrics().class == LinkClass::Ethernet));
    // Equal measurements: the class bias decides, though cellular came first.
    assert_eq!(pair.a_to_b(), Some(addr("10.0.1.2:9000")), "traffic uses the fiber link");
}

#[test]
fn the_fiber_link_fails_over_to_cellular_at_once_and_takes_traffic_back_once_stable() {
    let mut pair = Pair::new(&[Some(LinkClass::Cellular), Some(LinkClass::Fiber)]);
    pair.data_per_tick = 100_000;
    pair.run(Duration::from_secs(5));
    let (cellular, fiber) = (addr("10.0.0.2:9000"), addr("10.0.1.2:9000"));
    assert_eq!(pair.a_to_b(), Some(fiber));
    pair.wires[1].up = false;
    let mut moved_after = None;
    for step in 1..=10 {
        pair.run(Duration::from_millis(50));
        if pair.a_to_b() == Some(cellular) {
            moved_after = Some(step * 50);
            break;
        }
    }
    let moved_after = moved_after.expect("the route moved to cellular within 500 ms");
    assert!(moved_after <= 400, "moved after {moved_after} ms");
    pair.wires[1].up = true;
    pair.run(Duration::from_millis(1500));
    assert_eq!(pair.a_to_b(), Some(cellular), "a link just back must prove stable first");
    pair.run(Duration::from_secs(4));
    assert_eq!(pair.a_to_b(), Some(fiber), "and then takes the traffic back");
}

#[test]
fn idle_links_slow_their_hellos_and_data_makes_the_link_carrying_it_active_and_measures_it() {
    let mut pair = Pair::new(&[Some(LinkClass::Cellular), Some(LinkClass::Fiber)]);
    pair.run(Duration::from_secs(10));
    for (endpoint, m) in pair.a_links() {
        assert!(m.up, "{endpoint}");
        assert!(!m.active, "{endpoint} idle");
        assert_eq!(m.hello_interval, Duration::from_secs(4), "{endpoint}");
    }
    pair.data_per_tick = 1_250_000; // 100 Mbit/s, over fiber
    pair.run(Duration::from_secs(3));
    let links = pair.a_links();
    let (cellular, fiber) = (&links[&addr("10.0.0.2:9000")], &links[&addr("10.0.1.2:9000")]);
    assert!(fiber.active, "the link carrying the data is active");
    assert_eq!(fiber.hello_interval, Duration::from_millis(50));
    let bps = fiber.passive_bps.expect("its own rate, measured");
    assert!((100_000_000..110_000_000).contains(&bps), "{bps}");
    assert!(!cellular.active, "the idle link stays idle");
    assert_eq!(cellular.passive_bps, None, "and the fiber's rate is not taken for its capacity");
}
