//! Traffic per link: datagrams and bytes each neighbour link carried, so the
//! control daemon measures each link's load (passive capacity, fast failure
//! detection) from what that link carried, not from the node's totals.
//!
//! The engine counts into a fixed table it owns ([`LinkTraffic`]): sends by
//! the next hop's link id (a multiply and a compare), receives by the
//! datagram's source endpoint (a hash of the address into a small table
//! rebuilt when the route snapshot changes). Only endpoints of links in the
//! snapshot are counted, so junk from anywhere else never takes a slot.
//!
//! Driving it: [`LinkTraffic::resolve`] after every new route snapshot (off
//! the packet path; it allocates nothing either), [`LinkTraffic::count_tx`]
//! and [`LinkTraffic::count_rx`] per packet, and the shard loop copies the
//! slots [`LinkTraffic::take_dirty`] names into the shard's shared-memory
//! counters (`ShardCounters::links`) after each batch.
//!
//! A slot belongs to one link id until a snapshot without that link arrives;
//! then it is cleared and may be given to another link. Readers key by the
//! id stored in the slot, so a reused slot looks like a new link whose
//! counters started at zero.

use std::net::SocketAddr;

use mycelium_common::snapshot::SnapshotView;

/// Links counted per shard; a node with more links counts the rest nowhere.
pub const LINK_SLOTS: usize = 256;
/// Slots tried per link id before it is left uncounted.
const PROBES: usize = 16;
/// Entries of the endpoint index (twice the slots: short probe chains).
const ENDPOINT_ENTRIES: usize = 2 * LINK_SLOTS;

/// One link's counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LinkCounts {
    pub tx_packets: u64,
    pub tx_bytes: u64,
    pub rx_packets: u64,
    pub rx_bytes: u64,
}

#[derive(Debug, Clone, Copy, Default)]
struct Slot {
    /// The link id, if the slot is in use.
    id: Option<u32>,
    counts: LinkCounts,
}

/// One shard's traffic per link. See the module docs.
#[derive(Debug, Clone)]
pub struct LinkTraffic {
    slots: Box<[Slot; LINK_SLOTS]>,
    /// Open-addressed index from a link's underlay endpoint to its slot.
    endpoints: Box<[Option<(SocketAddr, u16)>; ENDPOINT_ENTRIES]>,
    /// Slots changed since the last `take_dirty`, one bit each.
    dirty: [u64; LINK_SLOTS / 64],
    /// Which slots are in use in the current snapshot (scratch for `resolve`).
    seen: [u64; LINK_SLOTS / 64],
}

impl Default for LinkTraffic {
    fn default() -> Self {
        LinkTraffic {
            slots: Box::new([Slot::default(); LINK_SLOTS]),
            endpoints: Box::new([None; ENDPOINT_ENTRIES]),
            dirty: [0; LINK_SLOTS / 64],
            seen: [0; LINK_SLOTS / 64],
        }
    }
}

fn id_home(id: u32) -> usize {
    ((u64::from(id)).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 56) as usize
}

fn endpoint_home(addr: &SocketAddr) -> usize {
    let (ip, port) = match addr {
        SocketAddr::V4(a) => (a.ip().to_ipv6_mapped().to_bits(), a.port()),
        SocketAddr::V6(a) => (a.ip().to_bits(), a.port()),
    };
    let folded = (ip as u64) ^ ((ip >> 64) as u64).rotate_left(17) ^ u64::from(port).rotate_left(40);
    (folded.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 55) as usize % ENDPOINT_ENTRIES
}

/// An IPv4 peer seen on a dual-stack socket arrives as `::ffff:a.b.c.d`.
fn canonical(addr: SocketAddr) -> SocketAddr {
    match addr {
        SocketAddr::V6(a) => match a.ip().to_ipv4_mapped() {
            Some(v4) => SocketAddr::new(v4.into(), a.port()),
            None => addr,
        },
        v4 => v4,
    }
}

impl LinkTraffic {
    /// Takes the links of a new snapshot: every link keeps its slot (and its
    /// counts), new links get free slots, slots of links that are gone are
    /// cleared, and the endpoint index is rebuilt.
    pub fn resolve(&mut self, snapshot: &SnapshotView<'_>) {
        self.seen = [0; LINK_SLOTS / 64];
        *self.endpoints = [None; ENDPOINT_ENTRIES];
        for link in snapshot.links() {
            let Some(slot) = self.slot_of(link.id()).or_else(|| self.claim(link.id())) else { continue };
            self.seen[slot / 64] |= 1 << (slot % 64);
            if let Some(endpoint) = link.underlay() {
                self.index_endpoint(canonical(endpoint), slot as u16);
            }
        }
        for (i, slot) in self.slots.iter_mut().enumerate() {
            if slot.id.is_some() && self.seen[i / 64] & (1 << (i % 64)) == 0 {
                *slot = Slot::default();
                self.dirty[i / 64] |= 1 << (i % 64);
            }
        }
    }

    fn slot_of(&self, id: u32) -> Option<usize> {
        let home = id_home(id);
        (0..PROBES).map(|i| (home + i) % LINK_SLOTS).find(|&s| self.slots[s].id == Some(id))
    }

    fn claim(&mut self, id: u32) -> Option<usize> {
        let home = id_home(id);
        let slot = (0..PROBES).map(|i| (home + i) % LINK_SLOTS).find(|&s| self.slots[s].id.is_none())?;
        self.slots[slot] = Slot { id: Some(id), counts: LinkCounts::default() };
        self.dirty[slot / 64] |= 1 << (slot % 64);
        Some(slot)
    }

    fn index_endpoint(&mut self, endpoint: SocketAddr, slot: u16) {
        let home = endpoint_home(&endpoint);
        for i in 0..ENDPOINT_ENTRIES {
            let entry = &mut self.endpoints[(home + i) % ENDPOINT_ENTRIES];
            match entry {
                Some((e, _)) if *e == endpoint => return, // two links, one endpoint: the first keeps it
                Some(_) => continue,
                None => {
                    *entry = Some((endpoint, slot));
                    return;
                }
            }
        }
    }

    /// Counts one datagram of `len` bytes sent on link `id`.
    #[inline]
    pub fn count_tx(&mut self, id: u32, len: usize) {
        let home = id_home(id);
        for i in 0..PROBES {
            let s = (home + i) % LINK_SLOTS;
            let slot = &mut self.slots[s];
            if slot.id == Some(id) {
                slot.counts.tx_packets += 1;
                slot.counts.tx_bytes += len as u64;
                self.dirty[s / 64] |= 1 << (s % 64);
                return;
            }
        }
    }

    /// Counts one datagram of `len` bytes received from `from` (nothing if
    /// `from` is not a link's endpoint).
    #[inline]
    pub fn count_rx(&mut self, from: SocketAddr, len: usize) {
        let from = canonical(from);
        let home = endpoint_home(&from);
        for i in 0..ENDPOINT_ENTRIES {
            match self.endpoints[(home + i) % ENDPOINT_ENTRIES] {
                Some((e, s)) if e == from => {
                    let s = usize::from(s);
                    let counts = &mut self.slots[s].counts;
                    counts.rx_packets += 1;
                    counts.rx_bytes += len as u64;
                    self.dirty[s / 64] |= 1 << (s % 64);
                    return;
                }
                Some(_) => continue,
                None => return,
            }
        }
    }

    /// Calls `f(slot, id, counts)` for every slot changed since the last
    /// call (`id` `None`: the slot was freed), and forgets the changes.
    pub fn take_dirty(&mut self, mut f: impl FnMut(usize, Option<u32>, &LinkCounts)) {
        for word in 0..self.dirty.len() {
            let mut bits = std::mem::take(&mut self.dirty[word]);
            while bits != 0 {
                let slot = word * 64 + bits.trailing_zeros() as usize;
                bits &= bits - 1;
                f(slot, self.slots[slot].id, &self.slots[slot].counts);
            }
        }
    }

    /// The counts of link `id`, if it has a slot.
    pub fn get(&self, id: u32) -> Option<LinkCounts> {
        self.slot_of(id).map(|s| self.slots[s].counts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mycelium_common::identity::SecretKey;
    use mycelium_common::snapshot::{Link, LinkState, NodeInfo, SnapshotBuilder};
    use mycelium_common::time::Timestamp;

    fn snapshot_bytes(links: &[(u32, &str)]) -> impl std::ops::Deref<Target = [u8]> {
        let key = SecretKey::from_bytes([7; 32]).public_key();
        let links = links.iter().map(|(id, ep)| Link::new(*id, ep.parse().unwrap(), LinkState::Up, &key));
        let snapshot = SnapshotBuilder::new(NodeInfo::from_public_key(&key), 1, Timestamp::from_nanos(1))
            .links(links)
            .build()
            .unwrap();
        snapshot.to_bytes().unwrap()
    }

    fn resolved(links: &[(u32, &str)]) -> LinkTraffic {
        let mut t = LinkTraffic::default();
        t.resolve(&SnapshotView::validate(&snapshot_bytes(links)).unwrap());
        t
    }

    #[test]
    fn sends_and_receives_are_counted_on_their_own_link() {
        let mut t = resolved(&[(0, "10.0.0.1:9651"), (7, "[2001:db8::2]:9651"), (9, "10.0.0.1:9652")]);
        t.count_tx(0, 100);
        t.count_tx(7, 1400);
        t.count_tx(7, 1400);
        t.count_rx("10.0.0.1:9652".parse().unwrap(), 60);
        t.count_rx("[::ffff:10.0.0.1]:9651".parse().unwrap(), 80); // dual-stack view of link 0
        t.count_rx("[2001:db8::2]:9651".parse().unwrap(), 1448);
        assert_eq!(t.get(0), Some(LinkCounts { tx_packets: 1, tx_bytes: 100, rx_packets: 1, rx_bytes: 80 }));
        assert_eq!(t.get(7), Some(LinkCounts { tx_packets: 2, tx_bytes: 2800, rx_packets: 1, rx_bytes: 1448 }));
        assert_eq!(t.get(9), Some(LinkCounts { tx_packets: 0, tx_bytes: 0, rx_packets: 1, rx_bytes: 60 }));
    }

    #[test]
    fn datagrams_from_strangers_and_sends_on_unknown_links_take_no_slot() {
        let mut t = resolved(&[(1, "10.0.0.1:9651")]);
        for port in 0..2000u16 {
            t.count_rx(SocketAddr::new("10.9.9.9".parse().unwrap(), port), 100);
            t.count_tx(u32::from(port) + 2, 100);
        }
        assert_eq!(t.get(1), Some(LinkCounts::default()));
        let mut used = 0;
        t.take_dirty(|_, id, _| used += usize::from(id.is_some()));
        assert_eq!(used, 1);
    }

    #[test]
    fn a_link_keeps_its_counts_across_snapshots_and_a_removed_link_is_cleared() {
        let mut t = resolved(&[(1, "10.0.0.1:9651"), (2, "10.0.0.2:9651")]);
        t.count_tx(1, 10);
        t.count_tx(2, 20);
        t.take_dirty(|_, _, _| {});
        t.resolve(&SnapshotView::validate(&snapshot_bytes(&[(1, "10.0.0.1:9651"), (3, "10.0.0.3:9651")])).unwrap());
        assert_eq!(t.get(1).unwrap().tx_bytes, 10);
        assert_eq!(t.get(2), None);
        assert_eq!(t.get(3), Some(LinkCounts::default()));
        let mut changed = Vec::new();
        t.take_dirty(|_, id, c| changed.push((id, c.tx_bytes)));
        changed.sort();
        assert_eq!(changed, vec![(None, 0), (Some(3), 0)]);
        t.count_rx("10.0.0.2:9651".parse().unwrap(), 5); // the old endpoint is forgotten
        assert_eq!(t.get(3).unwrap().rx_bytes, 0);
    }

    #[test]
    fn every_link_of_a_full_table_is_counted() {
        let links: Vec<(u32, String)> =
            (0..200u32).map(|i| (i * 7919, format!("10.1.{}.{}:9651", i / 250, i % 250))).collect();
        let refs: Vec<(u32, &str)> = links.iter().map(|(i, s)| (*i, s.as_str())).collect();
        let mut t = resolved(&refs);
        for (id, ep) in &links {
            t.count_tx(*id, 1);
            t.count_rx(ep.parse().unwrap(), 2);
        }
        let counted = links.iter().filter(|(id, _)| t.get(*id).is_some_and(|c| c.tx_bytes == 1 && c.rx_bytes == 2));
        assert_eq!(counted.count(), 200, "16 probes find a slot for each of 200 links in 256 slots");
    }
}
