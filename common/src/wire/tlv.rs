//! The link control messages (sent inside an authenticated control packet),
//! as plain `Repr`s, and their TLV codec. The routing engine produces and
//! consumes these.
//!
//! A control body is a sequence of TLVs ([`framing`]: type u8, length u16
//! BE, value); each message's value layout is drawn in [`codec`]. To read an
//! opened body: `for message in TlvIter::new(body) { ... }`. To write one:
//! [`ControlMessage::emit`] each message (or [`emit_messages`]) into the
//! body of a control packet, then seal it.
//!
//! Times are microseconds of the *sender's* monotonic clock (RFC 9616 style
//! timestamps; only differences of one node's own stamps are ever used).
//! Intervals are centiseconds, as in Babel (RFC 8966 section 4.6).

pub mod codec;
pub mod framing;

pub use framing::{TLV_HEADER_LEN, Tlv, TlvIter, emit_messages};

/// TLV type numbers. Babel's own (RFC 8966 section 4.3) where the message
/// is Babel's; 64 and up for ours.
pub mod types {
    pub const HELLO: u8 = 4;
    pub const IHU: u8 = 5;
    pub const UPDATE: u8 = 8;
    pub const ROUTE_REQUEST: u8 = 9;
    pub const SEQNO_REQUEST: u8 = 10;
    pub const PROBE: u8 = 64;
    pub const PROBE_REPORT: u8 = 65;
    pub const PEER_EXCHANGE: u8 = 66;
}

use std::net::{IpAddr, SocketAddr};

use crate::identity::PublicKey;

/// Babel's infinite metric: the route is retracted (RFC 8966 section 2.1).
pub const METRIC_INFINITY: u16 = 0xFFFF;

/// A node's geographic position, degrees times 10^7.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct GeoPosition {
    pub lat_e7: i32,
    pub lon_e7: i32,
}

/// Hello (RFC 8966 section 4.6.5), with an RFC 9616 timestamp and an
/// optional position.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hello {
    /// Unicast hello (sent to one neighbour) rather than multicast.
    pub unicast: bool,
    pub seqno: u16,
    /// Upper bound on the time to the next hello, centiseconds.
    pub interval_cs: u16,
    /// When the sender sent it, sender's clock.
    pub timestamp_us: u64,
    pub position: Option<GeoPosition>,
}

/// I Heard You (RFC 8966 section 4.6.6), carrying the RFC 9616 timestamps
/// the hello's sender needs to compute the round-trip time:
/// `rtt = (now - origin) - (transmit - receive)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ihu {
    /// Cost of receiving from the hello's sender, as Babel's rxcost.
    pub rxcost: u16,
    /// Upper bound on the time to the next IHU, centiseconds.
    pub interval_cs: u16,
    /// The timestamp of the last hello heard from the addressee (its clock).
    pub origin_us: u64,
    /// When that hello was received (sender of this IHU's clock).
    pub receive_us: u64,
    /// When this IHU was sent (sender of this IHU's clock).
    pub transmit_us: u64,
}

/// Update: an announcement (or retraction, metric infinite) of a prefix
/// (RFC 8966 section 4.6.9). The router id is the originating node's public
/// key; the prefix must be owned by that key's address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Update {
    pub plen: u8,
    pub interval_cs: u16,
    pub seqno: u16,
    pub metric: u16,
    pub router_id: PublicKey,
    /// Prefix bytes; bits after `plen` are zero.
    pub prefix: [u8; 16],
}

/// Route request (RFC 8966 section 4.6.10): `plen == 0` with an all-zero
/// prefix asks for a full dump.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RouteRequest {
    pub plen: u8,
    pub prefix: [u8; 16],
}

/// Seqno request (RFC 8966 section 4.6.11).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeqnoRequest {
    pub plen: u8,
    pub seqno: u16,
    pub hop_count: u8,
    pub router_id: PublicKey,
    pub prefix: [u8; 16],
}

/// One packet of an active bandwidth probe train. Padded to `padding` extra
/// zero bytes so the train has a known size on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Probe {
    pub train_id: u32,
    pub index: u16,
    pub count: u16,
    pub sent_us: u64,
    pub padding: u16,
}

/// What the receiver of a probe train saw, sent back to the prober.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProbeReport {
    pub train_id: u32,
    pub received: u16,
    /// Receive times of the first and last probe of the train (reporter's clock).
    pub first_us: u64,
    pub last_us: u64,
    /// Bytes received in the train, as measured on the wire.
    pub bytes: u32,
}

/// Most endpoints one [`PeerExchange`] TLV carries. Kept small so that
/// [`ControlMessage`] stays a small `Copy` value; a node that shares more
/// sends several TLVs.
pub const PEER_EXCHANGE_MAX_ENTRIES: usize = 4;

/// A public endpoint of a node and the key it answers handshakes with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PeerEndpoint {
    pub key: PublicKey,
    /// IPv4 travels as an IPv4-mapped IPv6 address and is read back as IPv4.
    pub ip: IpAddr,
    pub port: u16,
}

impl PeerEndpoint {
    /// The UDP endpoint to dial.
    pub fn socket_addr(&self) -> SocketAddr {
        SocketAddr::new(self.ip, self.port)
    }
}

/// Peer exchange (ours): a few endpoints of nodes the sender is linked to,
/// so that neighbours can find more peers than they were configured with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerExchange {
    len: u8,
    entries: [PeerEndpoint; PEER_EXCHANGE_MAX_ENTRIES],
}

impl PeerExchange {
    /// Up to [`PEER_EXCHANGE_MAX_ENTRIES`] endpoints; `None` when there are more.
    pub fn new(endpoints: &[PeerEndpoint]) -> Option<Self> {
        if endpoints.len() > PEER_EXCHANGE_MAX_ENTRIES {
            return None;
        }
        let filler = PeerEndpoint { key: PublicKey::from_bytes([0; 32]), ip: IpAddr::from([0u8; 16]), port: 0 };
        let mut entries = [filler; PEER_EXCHANGE_MAX_ENTRIES];
        entries[..endpoints.len()].copy_from_slice(endpoints);
        Some(PeerExchange { len: endpoints.len() as u8, entries })
    }

    /// The endpoints, in the order sent.
    pub fn entries(&self) -> &[PeerEndpoint] {
        &self.entries[..usize::from(self.len)]
    }
}

/// Any one control message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ControlMessage {
    Hello(Hello),
    Ihu(Ihu),
    Update(Update),
    RouteRequest(RouteRequest),
    SeqnoRequest(SeqnoRequest),
    Probe(Probe),
    ProbeReport(ProbeReport),
    PeerExchange(PeerExchange),
}

#[cfg(test)]
mod tests;
