//! The route snapshot's schema: plain Rust types that rkyv archives.
//!
//! The owned types (`RouteSnapshot`, `Route`, ...) are what the control daemon
//! builds (through [`SnapshotBuilder`](super::SnapshotBuilder)); their archived
//! twins (`ArchivedRouteSnapshot`, ...) are what a reader sees in the mapped
//! file, and only through a validated [`SnapshotView`](super::SnapshotView).
//!
//! Every archived type is `repr(C)` of fixed-size fields, little-endian, with
//! zeroed padding, so one set of inputs always gives the same bytes.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};

use rkyv::{Archive, Deserialize, Serialize};

use crate::address::OverlayAddress;
use crate::identity::PublicKey;

/// The schema version written into every snapshot; readers refuse others.
pub const SNAPSHOT_VERSION: u32 = 2;

/// The reserved next hop that means "deliver locally" (this node, or a host
/// behind it). No link may carry this id.
pub const LOCAL: u32 = u32::MAX;

/// An index slot's route number when the slot is empty.
pub const EMPTY_SLOT: u32 = u32::MAX;

/// A whole route snapshot: who publishes it, its selected routes, the links
/// they leave by, and the lookup index over the routes.
///
/// The fields are public so tests can build deliberately broken snapshots;
/// real snapshots come from [`SnapshotBuilder`](super::SnapshotBuilder), and
/// readers accept a file only after [`SnapshotView::validate`](super::SnapshotView::validate).
#[derive(Archive, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[rkyv(derive(Debug))]
pub struct RouteSnapshot {
    /// [`SNAPSHOT_VERSION`].
    pub version: u32,
    /// The routing engine's generation: grows with every new snapshot.
    pub generation: u64,
    /// When it was built, in [`Timestamp`](crate::time::Timestamp) nanoseconds.
    pub created_at_ns: u64,
    /// The publishing node.
    pub node: NodeInfo,
    /// Selected routes, sorted by `(prefix, len)`, at most one per prefix.
    pub routes: Vec<Route>,
    /// Links to neighbours, sorted by `id`, ids unique and never [`LOCAL`];
    /// fewer than 65535 of them.
    pub links: Vec<Link>,
    /// Longest-prefix-match index over `routes`.
    pub index: RouteIndex,
}

/// The publishing node's identity.
#[derive(Archive, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[rkyv(derive(Debug))]
pub struct NodeInfo {
    /// The node's x25519 public key.
    pub public_key: [u8; 32],
    /// The node's overlay address (derived from the key).
    pub address: [u8; 16],
}

impl NodeInfo {
    /// The identity of the node that owns `key`.
    pub fn from_public_key(key: &PublicKey) -> Self {
        NodeInfo { public_key: *key.as_bytes(), address: OverlayAddress::from_public_key(key).octets() }
    }
}

/// One selected route.
///
/// `router_id` is the public key of the node that originates the prefix: the
/// destination of the end-to-end session. The dataplane finds the session
/// keys for a packet by looking this key up in its separate key table; the
/// route itself carries no key material.
#[derive(Archive, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[rkyv(derive(Debug))]
pub struct Route {
    /// Network bytes; every bit after `len` is zero.
    pub prefix: [u8; 16],
    /// Prefix length in bits, 0..=128.
    pub len: u8,
    /// The id of the link to forward on, or [`LOCAL`].
    pub next_hop: u32,
    /// Babel metric (RFC 8966 section 2.1).
    pub metric: u16,
    /// Babel sequence number of the selected route.
    pub seqno: u16,
    /// Public key of the originating node (see the type docs).
    pub router_id: [u8; 32],
}

/// A link to a neighbour.
#[derive(Archive, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[rkyv(derive(Debug))]
pub struct Link {
    /// Link id, unique in the snapshot, never [`LOCAL`].
    pub id: u32,
    /// The neighbour's underlay (UDP) address.
    pub underlay: Underlay,
    /// [`LinkState`] as a byte.
    pub state: u8,
    /// The neighbour's public key.
    pub peer: [u8; 32],
}

impl Link {
    /// A link with the given fields.
    pub fn new(id: u32, underlay: SocketAddr, state: LinkState, peer: &PublicKey) -> Self {
        Link { id, underlay: Underlay::from(underlay), state: state as u8, peer: *peer.as_bytes() }
    }
}

/// Whether a link carries traffic.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum LinkState {
    /// Not usable right now; routes over it are kept as the control daemon decides.
    Down = 0,
    /// Usable.
    Up = 1,
}

impl LinkState {
    /// The state a stored byte means, if any.
    pub fn from_u8(b: u8) -> Option<Self> {
        match b {
            0 => Some(LinkState::Down),
            1 => Some(LinkState::Up),
            _ => None,
        }
    }
}

/// Address family tag of an IPv4 [`Underlay`].
pub const FAMILY_V4: u8 = 4;
/// Address family tag of an IPv6 [`Underlay`].
pub const FAMILY_V6: u8 = 6;

/// A socket address in a fixed-size form: IPv4 addresses sit in the first
/// four bytes with the other twelve zero. IPv6 flow info and scope id are not
/// kept (underlay peers are reached by global or link-unique addresses).
#[derive(Archive, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[rkyv(derive(Debug))]
pub struct Underlay {
    /// Address bytes (see the type docs).
    pub addr: [u8; 16],
    /// UDP port.
    pub port: u16,
    /// [`FAMILY_V4`] or [`FAMILY_V6`].
    pub family: u8,
}

impl From<SocketAddr> for Underlay {
    fn from(sa: SocketAddr) -> Self {
        let mut addr = [0u8; 16];
        let family = match sa.ip() {
            IpAddr::V4(v4) => {
                addr[..4].copy_from_slice(&v4.octets());
                FAMILY_V4
            }
            IpAddr::V6(v6) => {
                addr = v6.octets();
                FAMILY_V6
            }
        };
        Underlay { addr, port: sa.port(), family }
    }
}

/// Decodes the fixed form; `None` for an unknown family or an IPv4 address
/// with stray bytes.
fn decode_underlay(addr: &[u8; 16], port: u16, family: u8) -> Option<SocketAddr> {
    match family {
        FAMILY_V4 if addr[4..].iter().all(|&b| b == 0) => {
            let ip = Ipv4Addr::new(addr[0], addr[1], addr[2], addr[3]);
            Some(SocketAddr::V4(SocketAddrV4::new(ip, port)))
        }
        FAMILY_V6 => Some(SocketAddr::V6(SocketAddrV6::new(Ipv6Addr::from(*addr), port, 0, 0))),
        _ => None,
    }
}

impl Underlay {
    /// The socket address, or `None` if the encoding is not canonical.
    pub fn to_socket_addr(&self) -> Option<SocketAddr> {
        decode_underlay(&self.addr, self.port, self.family)
    }
}

impl ArchivedUnderlay {
    /// The socket address, or `None` if the encoding is not canonical
    /// (never the case in a validated snapshot).
    pub fn to_socket_addr(&self) -> Option<SocketAddr> {
        decode_underlay(&self.addr, self.port.to_native(), self.family)
    }
}

/// The longest-prefix-match index, built once by the publisher.
///
/// An open-addressing hash table with linear probing, keyed by
/// `(masked prefix, len)`, `slots.len()` a power of two at least twice the
/// number of routes (so probes stay short and always meet an empty slot).
/// `lengths` lists the distinct prefix lengths present, longest first: a
/// lookup masks the address to each in turn and probes, so a table of /64s
/// answers in one probe sequence.
///
/// A slot is 16 bytes, 16-aligned (four to a cache line, never straddling
/// two): the first 64 bits of the prefix, its length, the route number and
/// the next-hop link position. For a prefix of at most 64 bits (every node's
/// /64, so nearly every route of the mesh) that is the whole key, so a hit
/// reads one slot and nothing else: one cache miss for a random destination
/// in a big table. Only a longer prefix also compares its last 64 bits in
/// the route. The route itself (metric, seqno, router id) is read only by
/// whoever asks for it; the dataplane finds its session by route number.
/// At 100k routes the table is 4 MiB.
#[derive(Archive, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
#[rkyv(derive(Debug))]
pub struct RouteIndex {
    /// The hash table (see [`slot_hash`](super::index::slot_hash)).
    pub slots: Vec<IndexSlot>,
    /// Distinct prefix lengths of `routes`, strictly descending.
    pub lengths: Vec<u8>,
}

/// The link position of a slot whose route is delivered locally.
pub const LOCAL_LINK: u16 = u16::MAX;

/// One hash table slot (see [`RouteIndex`]). Every byte is a field, so the
/// archived slot has no padding and the same routes give the same bytes.
#[derive(Archive, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[rkyv(derive(Debug), attr(repr(align(16))))]
pub struct IndexSlot {
    /// The first 64 bits of the route's prefix (big-endian order as a
    /// number; 0 in an empty slot).
    pub prefix_hi: u64,
    /// Position in `routes`, or [`EMPTY_SLOT`].
    pub route: u32,
    /// Position of the route's next-hop link in `links`, or [`LOCAL_LINK`].
    pub link: u16,
    /// The route's prefix length (0 in an empty slot).
    pub len: u8,
    /// Always 0.
    pub reserved: u8,
}

impl IndexSlot {
    /// An unused slot.
    pub const EMPTY: IndexSlot = IndexSlot { prefix_hi: 0, route: EMPTY_SLOT, link: 0, len: 0, reserved: 0 };
}
