//! Static topologies for the benchmarks: who the nodes are, which routes,
//! links and session keys each one's control daemon would publish, and the
//! publishing itself (into a shared-memory directory, exactly as myceliumd
//! does).
//!
//! A [`Line`] is `n` nodes in a row, `0 - 1 - ... - n-1`: the two ends have a
//! TUN and an end-to-end session with each other; the nodes between them
//! relay. Every node has a route to every other node's /64 over the link
//! towards it. The engine micro-benchmarks publish a line into a temporary
//! directory with a fixed epoch; the throughput harness publishes one for
//! real dataplanes with the epoch each wrote.
//!
//! [`synthetic_routes`] adds many routes to made-up nodes (for lookups at
//! scale) and [`synthetic_sessions`] send sessions to some of them.

use std::net::SocketAddr;

use mycelium_common::identity::{PublicKey, SecretKey};
use mycelium_common::keytable::{KeyTable, ReceiveSession, SendSession};
use mycelium_common::shm::{KEYS, Publisher, ROUTES, ShmError};
use mycelium_common::snapshot::{BuildError, LOCAL, Link, LinkState, NodeInfo, Route, RouteSnapshot, SnapshotBuilder};

/// Link id towards the lower-numbered neighbour.
pub const LEFT_LINK: u32 = 1;
/// Link id towards the higher-numbered neighbour.
pub const RIGHT_LINK: u32 = 2;
/// Session key from the first node to the last.
pub const KEY_FORWARD: [u8; 32] = [0xab; 32];
/// Session key from the last node to the first.
pub const KEY_BACKWARD: [u8; 32] = [0xba; 32];
/// Key id the last node chose for packets from the first.
pub const KEY_ID_AT_LAST: u32 = 0xb0b;
/// Key id the first node chose for packets from the last.
pub const KEY_ID_AT_FIRST: u32 = 0xa11;
/// Packets per shard before a session must be renewed (far beyond any run).
const PACKET_LIMIT: u64 = 1 << 40;

/// One node of a [`Line`].
#[derive(Debug, Clone)]
pub struct LineNode {
    /// The node's public key (its overlay address derives from it).
    pub key: PublicKey,
    /// Underlay endpoint of the left neighbour, as this node reaches it.
    pub left: Option<SocketAddr>,
    /// Underlay endpoint of the right neighbour, as this node reaches it.
    pub right: Option<SocketAddr>,
}

impl LineNode {
    /// The node's overlay address bytes.
    pub fn address(&self) -> [u8; 16] {
        self.key.address().octets()
    }

    /// Whether this node has a TUN (the ends of the line).
    pub fn has_tun(&self, index: usize, len: usize) -> bool {
        index == 0 || index + 1 == len
    }
}

/// `n` nodes in a row; see the module docs.
#[derive(Debug, Clone)]
pub struct Line {
    nodes: Vec<LineNode>,
}

/// Why a node's state could not be published.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// The snapshot did not build.
    #[error("building the snapshot: {0}")]
    Build(#[from] BuildError),
    /// The snapshot did not serialize.
    #[error("serializing the snapshot: {0}")]
    Serialize(#[from] mycelium_common::snapshot::SerializeError),
    /// Writing to shared memory failed.
    #[error("publishing: {0}")]
    Shm(#[from] ShmError),
}

impl Line {
    /// A line whose node `i` has secret key `[seeds[i]; 32]`; `endpoints[i]`
    /// is node `i`'s underlay endpoint as its left neighbour sees it, then as
    /// its right neighbour sees it (unused ends may be any address).
    pub fn new(seeds: &[u8], endpoints: &[(SocketAddr, SocketAddr)]) -> Line {
        assert_eq!(seeds.len(), endpoints.len(), "one endpoint pair per node");
        let nodes = (0..seeds.len())
            .map(|i| LineNode {
                key: SecretKey::from_bytes([seeds[i]; 32]).public_key(),
                left: i.checked_sub(1).map(|l| endpoints[l].1),
                right: endpoints.get(i + 1).map(|r| r.0),
            })
            .collect();
        Line { nodes }
    }

    /// The nodes, left to right.
    pub fn nodes(&self) -> &[LineNode] {
        &self.nodes
    }

    /// Node `me`'s snapshot: its own /64 local, every other node's /64 over
    /// the link towards it, plus `extra` routes.
    pub fn snapshot(
        &self,
        me: usize,
        generation: u64,
        now_ns: u64,
        extra: &[Route],
    ) -> Result<RouteSnapshot, BuildError> {
        let node = &self.nodes[me];
        let mut routes: Vec<Route> = self
            .nodes
            .iter()
            .enumerate()
            .map(|(j, other)| {
                let next_hop = match j.cmp(&me) {
                    std::cmp::Ordering::Less => LEFT_LINK,
                    std::cmp::Ordering::Equal => LOCAL,
                    std::cmp::Ordering::Greater => RIGHT_LINK,
                };
                route(slash_64(&other.key), next_hop, *other.key.as_bytes())
            })
            .collect();
        routes.extend_from_slice(extra);
        let mut links = Vec::new();
        if let (Some(ep), Some(peer)) = (node.left, me.checked_sub(1).map(|l| &self.nodes[l])) {
            links.push(Link::new(LEFT_LINK, ep, LinkState::Up, &peer.key));
        }
        if let (Some(ep), Some(peer)) = (node.right, self.nodes.get(me + 1)) {
            links.push(Link::new(RIGHT_LINK, ep, LinkState::Up, &peer.key));
        }
        let created = mycelium_common::time::Timestamp::from_nanos(now_ns);
        SnapshotBuilder::new(NodeInfo::from_public_key(&node.key), generation, created)
            .routes(routes)
            .links(links)
            .build()
    }

    /// Node `me`'s key table: the two ends have a session with each other
    /// (plus `extra` send sessions at the first node); relays have none.
    pub fn key_table(&self, me: usize, generation: u64, now_ns: u64, epoch: u64, extra: &[SendSession]) -> KeyTable {
        let last = self.nodes.len() - 1;
        let (mut send, mut receive) = (Vec::new(), Vec::new());
        let mut session = |peer: usize, key, send_id, receive_key, receive_id| {
            let peer = &self.nodes[peer];
            send.push(send_session(peer.address(), *peer.key.as_bytes(), send_id, key, epoch));
            receive.push(ReceiveSession {
                key_id: receive_id,
                peer: peer.address(),
                key: receive_key,
                session_id: 1,
                dataplane_epoch: epoch,
                expires_at_ns: u64::MAX,
            });
        };
        if me == 0 {
            session(last, KEY_FORWARD, KEY_ID_AT_LAST, KEY_BACKWARD, KEY_ID_AT_FIRST);
        } else if me == last {
            session(0, KEY_BACKWARD, KEY_ID_AT_FIRST, KEY_FORWARD, KEY_ID_AT_LAST);
        }
        if me == 0 {
            send.extend_from_slice(extra);
        }
        KeyTable::new(generation, now_ns, send, receive)
    }

    /// Publishes node `me`'s snapshot and key table through `publisher`.
    pub fn publish(
        &self,
        publisher: &mut Publisher,
        me: usize,
        generation: u64,
        now_ns: u64,
        epoch: u64,
        extra: (&[Route], &[SendSession]),
    ) -> Result<(), PublishError> {
        let snapshot = self.snapshot(me, generation, now_ns, extra.0)?;
        publisher.publish(ROUTES, &snapshot.to_bytes()?)?;
        publisher.publish(KEYS, &self.key_table(me, generation, now_ns, epoch, extra.1).to_bytes())?;
        Ok(())
    }
}

/// The /64 prefix of `key`'s overlay address.
pub fn slash_64(key: &PublicKey) -> [u8; 16] {
    key.address().subnet().prefix()
}

fn route(prefix: [u8; 16], next_hop: u32, router_id: [u8; 32]) -> Route {
    Route { prefix, len: 64, next_hop, metric: 96, seqno: 1, router_id }
}

/// A send session to `peer` (address and key) stamped with `key_id`.
pub fn send_session(peer: [u8; 16], peer_key: [u8; 32], key_id: u32, key: [u8; 32], epoch: u64) -> SendSession {
    SendSession {
        peer,
        peer_key,
        key_id,
        key,
        session_id: 1,
        dataplane_epoch: epoch,
        packet_limit: PACKET_LIMIT,
        expires_at_ns: u64::MAX,
    }
}

/// A made-up node: a /64 in `400::/7` and a router id, both unique for
/// each `index` (the index is in the prefix) and spread like real ones.
pub fn synthetic_node(index: u32) -> ([u8; 16], [u8; 32]) {
    let mut prefix = [0u8; 16];
    let h = mix(u64::from(index));
    prefix[0] = 0x05;
    prefix[1..4].copy_from_slice(&h.to_be_bytes()[..3]);
    prefix[4..8].copy_from_slice(&index.to_be_bytes());
    let mut router_id = [0u8; 32];
    for (i, chunk) in router_id.chunks_mut(8).enumerate() {
        chunk.copy_from_slice(&mix(h ^ i as u64).to_le_bytes());
    }
    (prefix, router_id)
}

/// `count` routes to made-up nodes ([`synthetic_node`] `0..count`), spread
/// over `links` round-robin.
pub fn synthetic_routes(count: u32, links: &[u32]) -> Vec<Route> {
    (0..count)
        .map(|i| {
            let (prefix, router_id) = synthetic_node(i);
            route(prefix, links[i as usize % links.len()], router_id)
        })
        .collect()
}

/// Send sessions to made-up nodes `0..count` (each with its own key).
pub fn synthetic_sessions(count: u32, epoch: u64) -> Vec<SendSession> {
    (0..count)
        .map(|i| {
            let (prefix, router_id) = synthetic_node(i);
            let mut key = [0u8; 32];
            key[..4].copy_from_slice(&i.to_be_bytes());
            send_session(prefix, router_id, 0x1000_0000 + i, key, epoch)
        })
        .collect()
}

/// SplitMix64's output function: a fixed, well-spread 64-bit mix.
pub fn mix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// An IPv6/UDP packet of `len` bytes in total (at least 48) from `src` to `dst`.
pub fn inner_packet(src: [u8; 16], dst: [u8; 16], len: usize) -> Vec<u8> {
    assert!((48..=65535).contains(&len), "an inner packet of {len} bytes");
    let mut p = vec![0x60, 0, 0, 0];
    p.extend_from_slice(&((len - 40) as u16).to_be_bytes());
    p.extend_from_slice(&[17, 64]);
    p.extend_from_slice(&src);
    p.extend_from_slice(&dst);
    p.resize(len, 0x5a);
    p
}

#[cfg(test)]
mod tests {
    use mycelium_common::snapshot::{NextHop, SnapshotView};

    use super::*;

    fn three() -> Line {
        let ep = |n: u8| -> SocketAddr { format!("192.0.2.{n}:9651").parse().unwrap() };
        Line::new(&[1, 2, 3], &[(ep(1), ep(1)), (ep(2), ep(12)), (ep(3), ep(3))])
    }

    #[test]
    fn a_relay_routes_each_end_over_the_link_towards_it() {
        let line = three();
        let bytes = line.snapshot(1, 1, 0, &[]).unwrap().to_bytes().unwrap();
        let view = SnapshotView::validate(&bytes).unwrap();
        let via = |node: &LineNode| match view.lookup(&node.address()).unwrap().next_hop {
            NextHop::Link(l) => (l.id(), l.underlay().unwrap()),
            NextHop::Local => panic!("local"),
        };
        assert_eq!(via(&line.nodes()[0]), (LEFT_LINK, "192.0.2.1:9651".parse().unwrap()));
        assert_eq!(via(&line.nodes()[2]), (RIGHT_LINK, "192.0.2.3:9651".parse().unwrap()));
        assert!(matches!(view.lookup(&line.nodes()[1].address()).unwrap().next_hop, NextHop::Local));
    }

    #[test]
    fn the_ends_hold_mirrored_sessions_and_relays_hold_none() {
        let line = three();
        let first = line.key_table(0, 1, 0, 7, &[]);
        let last = line.key_table(2, 1, 0, 7, &[]);
        assert_eq!(first.send[0].key, last.receive[0].key);
        assert_eq!(first.send[0].key_id, last.receive[0].key_id);
        assert_eq!(last.send[0].key_id, first.receive[0].key_id);
        assert!(line.key_table(1, 1, 0, 7, &[]).send.is_empty());
    }

    #[test]
    fn synthetic_routes_are_unique_overlay_prefixes_that_build_into_a_snapshot() {
        let line = three();
        let extra = synthetic_routes(5000, &[LEFT_LINK, RIGHT_LINK]);
        let bytes = line.snapshot(1, 1, 0, &extra).unwrap().to_bytes().unwrap();
        let view = SnapshotView::validate(&bytes).unwrap();
        assert_eq!(view.route_count(), 5003);
        let mut dst = synthetic_node(4321).0;
        dst[15] = 1;
        assert_eq!(view.lookup(&dst).unwrap().route.router_id(), &synthetic_node(4321).1);
    }
}
