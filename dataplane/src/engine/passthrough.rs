//! `PassthroughEngine`: the I/O-layer test engine. **No encryption, no
//! authentication**: it exists so the shard loop, the TUN and the sockets can be
//! tested end to end before the sealed engine (routed header, seal/open,
//! snapshot lookup, replay windows) replaces it. Never use it on a network you
//! do not control.
//!
//! Routing is a static peer table: each peer is an overlay address and the UDP
//! endpoint of the node that owns its /64.
//!
//! - From the TUN: an IPv6 packet whose destination lies in a peer's /64 is
//!   wrapped in a 4-byte header and sent to that peer; other unicast
//!   destinations are punted as "no route"; non-IPv6 and multicast are dropped.
//! - From the underlay: a data datagram whose inner destination lies in this
//!   node's /64 is written to the TUN; one for another peer's /64 is relayed
//!   (hop limit decremented); a control datagram is punted to the daemon.
//!
//! Header (4 bytes, the passthrough's own, not the mesh wire format):
//! ```text
//!  0       1       2       3
//! +-------+-------+-------+-------+
//! |  'm'  |  'p'  | kind  |  hop  |   kind: 0 data, 1 control
//! +-------+-------+-------+-------+
//! ```

use std::net::{Ipv6Addr, SocketAddr};

use mycelium_common::time::Timestamp;

use super::Engine;
use super::counters::DropReason;
use crate::batch::{PuntKind, RxBatch, TxQueues};

/// Length of the passthrough header.
pub const HEADER_LEN: usize = 4;
/// Hop limit a packet leaves its source with.
pub const INITIAL_HOP_LIMIT: u8 = 16;
const MAGIC: [u8; 2] = *b"mp";
const KIND_DATA: u8 = 0;
const KIND_CONTROL: u8 = 1;
const IPV6_HEADER_LEN: usize = 40;

/// Writes a passthrough header in front of a payload, for tests and tools.
pub fn header(control: bool, hop_limit: u8) -> [u8; HEADER_LEN] {
    [MAGIC[0], MAGIC[1], if control { KIND_CONTROL } else { KIND_DATA }, hop_limit]
}

fn prefix64(addr: &Ipv6Addr) -> u64 {
    (addr.to_bits() >> 64) as u64
}

/// The static-peer test engine. See the module docs.
#[derive(Debug, Clone)]
pub struct PassthroughEngine {
    local: Option<u64>,
    has_tun: bool,
    /// Sorted by /64 prefix, one entry per prefix.
    peers: Vec<(u64, SocketAddr)>,
}

impl PassthroughEngine {
    /// An engine for a node owning `local`'s /64, with a TUN or not (relay
    /// only), and the given static peers. A later peer for the same /64
    /// replaces an earlier one.
    pub fn new(local: Option<Ipv6Addr>, has_tun: bool, peers: &[(Ipv6Addr, SocketAddr)]) -> Self {
        let mut table: Vec<(u64, SocketAddr)> = Vec::with_capacity(peers.len());
        for (addr, endpoint) in peers {
            let prefix = prefix64(addr);
            match table.binary_search_by_key(&prefix, |p| p.0) {
                Ok(i) => table[i].1 = *endpoint,
                Err(i) => table.insert(i, (prefix, *endpoint)),
            }
        }
        PassthroughEngine { local: local.map(|a| prefix64(&a)), has_tun, peers: table }
    }

    fn peer_for(&self, dst: &[u8]) -> Option<SocketAddr> {
        let prefix = u64::from_be_bytes(dst.get(..8)?.try_into().ok()?);
        self.peers.binary_search_by_key(&prefix, |p| p.0).ok().map(|i| self.peers[i].1)
    }

    fn is_local(&self, dst: &[u8]) -> bool {
        let prefix = dst.get(..8).and_then(|b| b.try_into().ok()).map(u64::from_be_bytes);
        self.local.is_some() && prefix == self.local
    }
}

/// The destination address of an IPv6 packet, if it looks like one.
fn ipv6_destination(packet: &[u8]) -> Option<&[u8]> {
    if packet.len() < IPV6_HEADER_LEN || packet[0] >> 4 != 6 {
        return None;
    }
    Some(&packet[24..40])
}

impl Engine for PassthroughEngine {
    fn tun_headroom(&self) -> usize {
        HEADER_LEN
    }

    fn tun_tailroom(&self) -> usize {
        0
    }

    fn process_from_tun(&mut self, _now: Timestamp, batch: &mut RxBatch, out: &mut TxQueues) {
        for mut p in batch.packets_mut() {
            let id = p.id();
            let Some(dst) = ipv6_destination(p.data()) else {
                out.drop_packet(id, DropReason::NotIpv6);
                continue;
            };
            if dst[0] == 0xff {
                out.drop_packet(id, DropReason::NotUnicast);
                continue;
            }
            let Some(endpoint) = self.peer_for(dst) else {
                out.punt(id, p.range(), PuntKind::NoRoute);
                continue;
            };
            if p.headroom() < HEADER_LEN {
                out.drop_packet(id, DropReason::InvalidOutput);
                continue;
            }
            let range = p.range();
            let start = range.start - HEADER_LEN;
            p.buffer_mut()[start..range.start].copy_from_slice(&header(false, INITIAL_HOP_LIMIT));
            out.send_udp(id, start..range.end, endpoint);
        }
    }

    fn process_from_underlay(&mut self, _now: Timestamp, batch: &mut RxBatch, out: &mut TxQueues) {
        for mut p in batch.packets_mut() {
            let id = p.id();
            let range = p.range();
            let data = p.data();
            if data.len() < HEADER_LEN || data[..2] != MAGIC {
                out.drop_packet(id, DropReason::Malformed);
                continue;
            }
            match data[2] {
                KIND_CONTROL => {
                    out.punt(id, range, PuntKind::ControlFromUnderlay);
                    continue;
                }
                KIND_DATA => {}
                _ => {
                    out.drop_packet(id, DropReason::Malformed);
                    continue;
                }
            }
            let Some(dst) = ipv6_destination(&data[HEADER_LEN..]) else {
                out.drop_packet(id, DropReason::Malformed);
                continue;
            };
            if self.is_local(dst) {
                if self.has_tun {
                    out.write_tun(id, range.start + HEADER_LEN..range.end);
                } else {
                    out.drop_packet(id, DropReason::NoTun);
                }
                continue;
            }
            let Some(next) = self.peer_for(dst) else {
                out.drop_packet(id, DropReason::NoRoute);
                continue;
            };
            let hop = data[3];
            if hop <= 1 {
                out.drop_packet(id, DropReason::HopLimit);
                continue;
            }
            p.data_mut()[3] = hop - 1;
            out.send_udp(id, range, next);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::{PacketId, TxDest, TxEntry};

    const LOCAL: Ipv6Addr = Ipv6Addr::new(0x400, 0, 0, 1, 0, 0, 0, 1);
    const PEER: Ipv6Addr = Ipv6Addr::new(0x400, 0, 0, 2, 0, 0, 0, 1);
    const FAR: Ipv6Addr = Ipv6Addr::new(0x400, 0, 0, 3, 0, 0, 0, 1);

    fn peer_endpoint() -> SocketAddr {
        "192.0.2.2:9651".parse().unwrap()
    }

    fn engine() -> PassthroughEngine {
        PassthroughEngine::new(Some(LOCAL), true, &[(PEER, peer_endpoint())])
    }

    fn ipv6_packet(dst: Ipv6Addr, payload: &[u8]) -> Vec<u8> {
        let mut p = vec![0u8; IPV6_HEADER_LEN];
        p[0] = 0x60;
        p[4..6].copy_from_slice(&(payload.len() as u16).to_be_bytes());
        p[6] = 17;
        p[7] = 64;
        p[8..24].copy_from_slice(&LOCAL.octets());
        p[24..40].copy_from_slice(&dst.octets());
        p.extend_from_slice(payload);
        p
    }

    /// Runs one batch of one packet placed after `headroom` bytes; returns the
    /// buffer afterwards and the verdicts.
    fn run(from_tun: bool, headroom: usize, packet: &[u8]) -> (Vec<u8>, Vec<TxEntry>, TxQueues) {
        let mut e = engine();
        let mut buf = vec![0u8; headroom + packet.len()];
        buf[headroom..].copy_from_slice(packet);
        let mut batch = RxBatch::with_capacity(1);
        let peer = (!from_tun).then(peer_endpoint);
        // Safety: `buf` lives until the end of this function and nothing else touches it meanwhile.
        assert!(unsafe { batch.push(buf.as_mut_ptr(), buf.len(), headroom, packet.len(), peer, PacketId(9)) });
        let mut out = TxQueues::with_capacity(4);
        if from_tun {
            e.process_from_tun(Timestamp::ZERO, &mut batch, &mut out);
        } else {
            e.process_from_underlay(Timestamp::ZERO, &mut batch, &mut out);
        }
        batch.clear();
        let entries = out.entries().to_vec();
        (buf, entries, out)
    }

    #[test]
    fn a_tun_packet_for_a_peer_leaves_wrapped_in_place_toward_its_endpoint() {
        let packet = ipv6_packet(PEER, b"hello");
        let (buf, entries, _) = run(true, 8, &packet);
        assert_eq!(entries, [TxEntry { id: PacketId(9), start: 4, len: 49, dest: TxDest::Udp(peer_endpoint()) }]);
        assert_eq!(&buf[4..8], b"mp\x00\x10");
        assert_eq!(&buf[8..], &packet[..]);
    }

    #[test]
    fn a_tun_packet_without_a_peer_is_punted_as_no_route() {
        let (_, entries, _) = run(true, 8, &ipv6_packet(FAR, b"x"));
        assert_eq!(entries[0].dest, TxDest::Punt(PuntKind::NoRoute));
        assert_eq!((entries[0].start, entries[0].len), (8, 41));
    }

    #[test]
    fn ipv4_and_multicast_from_the_tun_are_dropped_and_counted() {
        let (_, entries, out) = run(true, 8, &[0x45; 60]);
        assert!(entries.is_empty());
        assert_eq!(out.drops()[DropReason::NotIpv6 as usize], 1);
        let (_, entries, out) = run(true, 8, &ipv6_packet("ff02::2".parse().unwrap(), b""));
        assert!(entries.is_empty());
        assert_eq!(out.drops()[DropReason::NotUnicast as usize], 1);
    }

    #[test]
    fn a_datagram_for_this_node_goes_to_the_tun_without_its_header() {
        let inner = ipv6_packet(LOCAL, b"data");
        let datagram = [&header(false, 3)[..], &inner].concat();
        let (_, entries, _) = run(false, 0, &datagram);
        assert_eq!(entries, [TxEntry { id: PacketId(9), start: 4, len: inner.len() as u32, dest: TxDest::Tun }]);
    }

    #[test]
    fn a_datagram_in_transit_is_relayed_with_one_hop_less_until_the_limit() {
        let datagram = [&header(false, 3)[..], &ipv6_packet(PEER, b"data")].concat();
        let (buf, entries, _) = run(false, 0, &datagram);
        assert_eq!(entries[0].dest, TxDest::Udp(peer_endpoint()));
        assert_eq!(buf[3], 2);
        let datagram = [&header(false, 1)[..], &ipv6_packet(PEER, b"data")].concat();
        let (_, entries, out) = run(false, 0, &datagram);
        assert!(entries.is_empty());
        assert_eq!(out.drops()[DropReason::HopLimit as usize], 1);
    }

    #[test]
    fn control_datagrams_are_punted_and_garbage_is_counted_malformed() {
        let (_, entries, _) = run(false, 0, &[&header(true, 1)[..], b"hello"].concat());
        assert_eq!(entries[0].dest, TxDest::Punt(PuntKind::ControlFromUnderlay));
        for garbage in [&b""[..], b"mp", b"xx\x00\x01", b"mp\x07\x01", b"mp\x00\x01short"] {
            let (_, entries, out) = run(false, 0, garbage);
            assert!(entries.is_empty());
            assert_eq!(out.drops()[DropReason::Malformed as usize], 1, "{garbage:?}");
        }
    }

    #[test]
    fn a_relay_without_tun_drops_data_addressed_to_itself() {
        let mut e = PassthroughEngine::new(Some(LOCAL), false, &[(PEER, peer_endpoint())]);
        let mut buf = [&header(false, 3)[..], &ipv6_packet(LOCAL, b"")].concat();
        let mut batch = RxBatch::with_capacity(1);
        // Safety: `buf` outlives the batch's use and nothing else touches it.
        assert!(unsafe { batch.push(buf.as_mut_ptr(), buf.len(), 0, buf.len(), None, PacketId(1)) });
        let mut out = TxQueues::with_capacity(1);
        e.process_from_underlay(Timestamp::ZERO, &mut batch, &mut out);
        assert_eq!(out.drops()[DropReason::NoTun as usize], 1);
    }
}
