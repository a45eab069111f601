//! [`SnapshotView`]: zero-copy reads of a validated snapshot.
//!
//! A view exists only after [`SnapshotView::validate`] has accepted the bytes,
//! so everything here can trust the snapshot's invariants for correctness;
//! for safety it trusts nothing (all reads are `.get()`, all loops bounded).
//!
//! Per packet, the dataplane calls [`SnapshotView::lookup`]: a longest-prefix
//! match that tries each prefix length present, longest first, with one short
//! probe sequence each. It allocates nothing and returns borrowed references
//! into the mapping.

use std::net::SocketAddr;

use super::index::{prefix_hi, prefix_mask, probe, slot_hash};
use super::schema::{ArchivedLink, ArchivedRoute, ArchivedRouteSnapshot, LOCAL_LINK, LinkState, RouteSnapshot};
use super::validate::{SnapshotError, validate};
use crate::identity::PublicKey;
use crate::time::Timestamp;

/// A validated route snapshot, borrowed from its bytes.
#[derive(Clone, Copy)]
pub struct SnapshotView<'a> {
    snap: &'a ArchivedRouteSnapshot,
}

impl std::fmt::Debug for SnapshotView<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SnapshotView")
            .field("generation", &self.generation())
            .field("routes", &self.route_count())
            .field("links", &self.snap.links.len())
            .finish()
    }
}

impl<'a> SnapshotView<'a> {
    /// Validates `bytes` (structure and semantics, see [`super::validate`]).
    /// `bytes` must be aligned to 16 bytes, as an mmap or an
    /// [`AlignedVec`](rkyv::util::AlignedVec) is.
    pub fn validate(bytes: &'a [u8]) -> Result<Self, SnapshotError> {
        validate(bytes).map(|snap| SnapshotView { snap })
    }

    /// The routing engine's generation of this snapshot.
    pub fn generation(&self) -> u64 {
        self.snap.generation.to_native()
    }

    /// When the snapshot was built.
    pub fn created_at(&self) -> Timestamp {
        Timestamp::from_nanos(self.snap.created_at_ns.to_native())
    }

    /// The publishing node's public key.
    pub fn node_public_key(&self) -> PublicKey {
        PublicKey::from_bytes(self.snap.node.public_key)
    }

    /// The publishing node's overlay address bytes.
    pub fn node_address(&self) -> [u8; 16] {
        self.snap.node.address
    }

    /// Number of routes.
    pub fn route_count(&self) -> usize {
        self.snap.routes.len()
    }

    /// All routes in `(prefix, len)` order.
    pub fn routes(&self) -> impl ExactSizeIterator<Item = RouteView<'a>> + 'a {
        self.snap.routes.iter().map(|route| RouteView { route })
    }

    /// All links in id order.
    pub fn links(&self) -> impl ExactSizeIterator<Item = LinkView<'a>> + 'a {
        self.snap.links.iter().map(|link| LinkView { link })
    }

    /// The link with this id.
    pub fn link(&self, id: u32) -> Option<LinkView<'a>> {
        let links = self.snap.links.as_slice();
        let pos = links.binary_search_by_key(&id, |l| l.id.to_native()).ok()?;
        links.get(pos).map(|link| LinkView { link })
    }

    /// The longest-prefix match for `dst`, with its next hop.
    ///
    /// For routes of up to 64 bits this reads one index slot per prefix
    /// length tried and nothing else: the [`RouteHit`] borrows its route and
    /// link without reading them, so a caller that needs only the route and
    /// link numbers ([`RouteHit::route_index`], [`RouteHit::link_index`])
    /// pays one cache miss per lookup.
    // Inlined into the shard's packet loop: out of line, building and
    // returning the RouteHit through memory cost more than the probe.
    #[inline(always)]
    pub fn lookup(&self, dst: &[u8; 16]) -> Option<RouteHit<'a>> {
        let snap = self.snap;
        let slots = snap.index.slots.as_slice();
        let routes = snap.routes.as_slice();
        let addr = u128::from_be_bytes(*dst);
        for &len in snap.index.lengths.as_slice() {
            let Some(slot) = probe(slots, routes, addr & prefix_mask(len), len) else {
                continue;
            };
            let route_index = slot.route.to_native();
            let route = routes.get(route_index as usize)?;
            let link_index = slot.link.to_native();
            let next_hop = if link_index == LOCAL_LINK {
                NextHop::Local
            } else {
                NextHop::Link(LinkView { link: snap.links.get(usize::from(link_index))? })
            };
            return Some(RouteHit { route: RouteView { route }, next_hop, route_index, link_index });
        }
        None
    }

    /// Looks up a batch: `out[i]` becomes `lookup(&dsts[i])` for every `i`
    /// below both lengths.
    ///
    /// Same answers as one at a time, but when the table is bigger than the
    /// caches it is faster: for each chunk of destinations it first reads
    /// every home slot (of the longest prefix length), so the cache misses
    /// of the chunk overlap instead of queueing behind each other; the
    /// lookups proper then find their slots cached.
    pub fn lookup_batch(&self, dsts: &[[u8; 16]], out: &mut [Option<RouteHit<'a>>]) {
        const CHUNK: usize = 32;
        let snap = self.snap;
        let slots = snap.index.slots.as_slice();
        let mask = slots.len().wrapping_sub(1);
        let first_len = snap.index.lengths.first().copied().unwrap_or(0);
        for (dsts, out) in dsts.chunks(CHUNK).zip(out.chunks_mut(CHUNK)) {
            let mut touched = 0u64;
            for dst in dsts {
                let key = u128::from_be_bytes(*dst) & prefix_mask(first_len);
                let home = slots.get(slot_hash(key, first_len) as usize & mask);
                touched ^= home.map_or(0, |s| s.prefix_hi.to_native() ^ prefix_hi(key));
            }
            std::hint::black_box(touched);
            for (o, dst) in out.iter_mut().zip(dsts) {
                *o = self.lookup(dst);
            }
        }
    }

    /// The link at position `index` of [`links`](Self::links) (the
    /// position a [`RouteHit::link_index`] names).
    pub fn link_at(&self, index: u16) -> Option<LinkView<'a>> {
        self.snap.links.get(usize::from(index)).map(|link| LinkView { link })
    }

    /// Number of links.
    pub fn link_count(&self) -> usize {
        self.snap.links.len()
    }

    /// A deserialized copy, for tools and tests (allocates).
    pub fn to_snapshot(&self) -> Result<RouteSnapshot, rkyv::rancor::Error> {
        rkyv::deserialize::<RouteSnapshot, rkyv::rancor::Error>(self.snap)
    }
}

/// The answer to a lookup: the matching route and where to send.
///
/// The two numbers come from the index slot itself; `route` and `next_hop`
/// borrow entries that are read only when their accessors are called.
#[derive(Clone, Copy, Debug)]
pub struct RouteHit<'a> {
    /// The matching route.
    pub route: RouteView<'a>,
    /// Where packets for it go.
    pub next_hop: NextHop<'a>,
    /// The route's position in [`SnapshotView::routes`]: stable for the
    /// life of this snapshot, so a shard can key per-route state by it.
    pub route_index: u32,
    /// The next-hop link's position in [`SnapshotView::links`], or
    /// [`LOCAL_LINK`](super::schema::LOCAL_LINK) for local delivery.
    pub link_index: u16,
}

/// Where a route's packets go.
#[derive(Clone, Copy, Debug)]
pub enum NextHop<'a> {
    /// To this node (the TUN device).
    Local,
    /// Out over a link to a neighbour.
    Link(LinkView<'a>),
}

/// One route in a mapped snapshot.
#[derive(Clone, Copy)]
pub struct RouteView<'a> {
    route: &'a ArchivedRoute,
}

impl<'a> RouteView<'a> {
    /// Network bytes (host bits zero).
    pub fn prefix(&self) -> [u8; 16] {
        self.route.prefix
    }

    /// Prefix length in bits.
    pub fn len(&self) -> u8 {
        self.route.len
    }

    /// Whether this is the default route (length zero).
    pub fn is_empty(&self) -> bool {
        self.route.len == 0
    }

    /// Next-hop link id, or [`LOCAL`](super::LOCAL).
    pub fn next_hop_id(&self) -> u32 {
        self.route.next_hop.to_native()
    }

    /// Babel metric.
    pub fn metric(&self) -> u16 {
        self.route.metric.to_native()
    }

    /// Babel sequence number.
    pub fn seqno(&self) -> u16 {
        self.route.seqno.to_native()
    }

    /// Public key of the destination node: the key of the end-to-end session
    /// to seal for (look it up in the key table).
    pub fn router_id(&self) -> &'a [u8; 32] {
        &self.route.router_id
    }
}

impl std::fmt::Debug for RouteView<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{} via {}", std::net::Ipv6Addr::from(self.prefix()), self.len(), self.next_hop_id())
    }
}

/// One link in a mapped snapshot.
#[derive(Clone, Copy)]
pub struct LinkView<'a> {
    link: &'a ArchivedLink,
}

impl<'a> LinkView<'a> {
    /// Link id.
    pub fn id(&self) -> u32 {
        self.link.id.to_native()
    }

    /// The neighbour's underlay address (always `Some` in a validated snapshot).
    pub fn underlay(&self) -> Option<SocketAddr> {
        self.link.underlay.to_socket_addr()
    }

    /// Up or down (`Down` for an unknown byte, which validation rejects).
    pub fn state(&self) -> LinkState {
        LinkState::from_u8(self.link.state).unwrap_or(LinkState::Down)
    }

    /// The neighbour's public key.
    pub fn peer(&self) -> &'a [u8; 32] {
        &self.link.peer
    }
}

impl std::fmt::Debug for LinkView<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "link {} {:?} {:?}", self.id(), self.underlay(), self.state())
    }
}
