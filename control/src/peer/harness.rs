//! A tiny deterministic network for tests: nodes with a [`PeerManager`]
//! each, datagrams delivered instantly (or dropped, or tapped) on virtual time.

use std::net::SocketAddr;
use std::time::Duration;

use mycelium_common::identity::{PublicKey, SecretKey};
use mycelium_common::time::Timestamp;

use super::{PeerEvent, PeerManager, PeeringConfig, SeededEntropy};

pub fn addr(i: usize) -> SocketAddr {
    SocketAddr::from(([10, 0, 0, i as u8], 9651))
}

/// A key whose public half orders as `rank` among keys of this helper (the
/// tie-break tests need to know which side is lower).
pub fn keys_ordered() -> (SecretKey, SecretKey) {
    let a = SecretKey::from_bytes([1; 32]);
    let b = SecretKey::from_bytes([2; 32]);
    if a.public_key() < b.public_key() { (a, b) } else { (b, a) }
}

#[derive(Debug)]
pub struct Node {
    pub addr: SocketAddr,
    pub key: PublicKey,
    pub manager: PeerManager,
    pub events: Vec<PeerEvent>,
}

#[derive(Debug)]
pub struct Net {
    pub now: Timestamp,
    pub nodes: Vec<Node>,
    /// Datagrams in flight: (from, to, bytes).
    pub wire: Vec<(SocketAddr, SocketAddr, Vec<u8>)>,
    /// Every datagram ever delivered, for replay attacks.
    pub tap: Vec<(SocketAddr, SocketAddr, Vec<u8>)>,
    /// Drop every datagram while true.
    pub cut: bool,
    /// Drop this many of the next datagrams.
    pub drop_next: usize,
    /// Drop every datagram whose type byte is listed.
    pub drop_types: Vec<u8>,
    /// Drop each datagram with this probability, in percent (seeded by `loss_state`).
    pub loss_percent: u64,
    pub loss_state: u64,
}

impl Net {
    pub fn new(secrets: Vec<SecretKey>, config: PeeringConfig) -> Self {
        let now = Timestamp::from_nanos(1_000_000_000);
        let nodes = secrets
            .into_iter()
            .enumerate()
            .map(|(i, secret)| Node {
                addr: addr(i),
                key: secret.public_key(),
                manager: PeerManager::new(
                    secret,
                    config.clone(),
                    Box::new(SeededEntropy::new(i as u64 + 1)),
                    now,
                    1_700_000_000_000_000_000,
                ),
                events: Vec::new(),
            })
            .collect();
        Net {
            now,
            nodes,
            wire: Vec::new(),
            tap: Vec::new(),
            cut: false,
            drop_next: 0,
            drop_types: Vec::new(),
            loss_percent: 0,
            loss_state: 1,
        }
    }

    /// Replaces node `i` with a fresh manager (a restart), same key and address.
    pub fn restart(&mut self, i: usize, secret: SecretKey, config: PeeringConfig, seed: u64) {
        let unix = 1_700_000_000_000_000_000 + self.now.as_nanos();
        self.nodes[i].manager = PeerManager::new(secret, config, Box::new(SeededEntropy::new(seed)), self.now, unix);
        self.nodes[i].events.clear();
    }

    pub fn collect_for_test(&mut self) {
        self.collect();
    }

    fn collect(&mut self) {
        for node in &mut self.nodes {
            while let Some((to, bytes)) = node.manager.poll_transmit() {
                self.wire.push((node.addr, to, bytes));
            }
            while let Some(event) = node.manager.poll_event() {
                node.events.push(event);
            }
        }
    }

    /// Delivers everything in flight (and what that triggers) at the current time.
    pub fn deliver(&mut self) {
        for _ in 0..100 {
            self.collect();
            if self.wire.is_empty() {
                for node in &self.nodes {
                    node.manager.check_invariants();
                }
                return;
            }
            let wire = std::mem::take(&mut self.wire);
            if self.cut {
                continue;
            }
            for (from, to, bytes) in wire {
                if self.drop_next > 0 {
                    self.drop_next -= 1;
                    continue;
                }
                if bytes.get(1).is_some_and(|t| self.drop_types.contains(t)) {
                    continue;
                }
                // splitmix64: deterministic per seed.
                self.loss_state = self.loss_state.wrapping_add(0x9e37_79b9_7f4a_7c15);
                let mut z = self.loss_state;
                z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
                z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
                if (z ^ (z >> 31)) % 100 < self.loss_percent {
                    continue;
                }
                if let Some(node) = self.nodes.iter_mut().find(|n| n.addr == to) {
                    node.manager.handle_datagram(self.now, from, &bytes);
                }
                self.tap.push((from, to, bytes));
            }
        }
        panic!("the network did not settle in 100 rounds");
    }

    /// Advances time in steps of `step` for `total`, running due timers and delivering.
    pub fn run(&mut self, total: Duration, step: Duration) {
        let end = self.now + total;
        while self.now < end {
            self.now = (self.now + step).min(end);
            for node in &mut self.nodes {
                if node.manager.poll_timeout().is_some_and(|t| t <= self.now) {
                    node.manager.handle_timeout(self.now);
                    // A deadline still in the past would make a real event loop spin.
                    let next = node.manager.poll_timeout();
                    assert!(
                        next.is_none_or(|t| t > self.now),
                        "{:?}: timer at {next:?} not moved past {:?}",
                        node.addr,
                        self.now
                    );
                }
            }
            self.deliver();
        }
    }

    pub fn messages(&self, i: usize) -> Vec<mycelium_common::wire::tlv::ControlMessage> {
        self.nodes[i]
            .events
            .iter()
            .filter_map(|e| match e {
                PeerEvent::Message { message, .. } => Some(*message),
                _ => None,
            })
            .collect()
    }

    pub fn count_events(&self, i: usize, f: impl Fn(&PeerEvent) -> bool) -> usize {
        self.nodes[i].events.iter().filter(|e| f(e)).count()
    }
}
