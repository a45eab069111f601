//! TUN and UDP offloads, the pure half: no syscalls, no allocation.
//!
//! With offloads on, the TUN hands the shard TCP/UDP *super-packets* of up to
//! 64 KiB behind a [`vnet::VnetHeader`], and the UDP socket hands it GRO
//! batches of same-size datagrams. This module turns one into the other:
//!
//! - [`segment`]: splits a super-packet read from the TUN into overlay-MTU
//!   IPv6 packets, in place in the same buffer, each with room in front and
//!   behind for the engine's header and tag, and with its own IPv6 payload
//!   length, TCP sequence number and flags (or UDP length) and full checksum;
//!   it also finishes the checksum of a plain packet that asks for it
//!   (`NEEDS_CSUM`).
//! - [`coalesce`]: decides which consecutive opened TCP segments of one flow
//!   the kernel's GRO would merge, and fixes the first one's header so the
//!   run is written to the TUN as one super-packet with a GSO vnet header.
//! - [`csum`]: the Internet checksum (RFC 1071) over bytes and the IPv6
//!   pseudo-header.
//!
//! How the shard drives it (`crate::io::shard`): after a TUN read, parse the
//! vnet header; a GSO packet goes through [`segment::segment_in_place`] and
//! each resulting segment enters the TUN batch on its own; a plain one through
//! [`segment::finish_checksum`] when flagged. Before TUN writes, consecutive
//! outputs of one buffer are fed to a [`coalesce::Run`]; a run of more than
//! one packet is finished with [`coalesce::Run::finish`] and written as one
//! `writev` (vnet header, the first packet whole, the payload of the rest).
//!
//! Inner packets are IPv6 only (the overlay is IPv6-only). Anything these
//! modules do not handle (extension headers, IPv4, ECN-flagged GSO, odd
//! sizes) is refused with an [`OffloadError`], which the shard counts as a
//! drop; nothing here panics on any input.

pub mod coalesce;
pub mod csum;
pub mod segment;
pub mod vnet;

use thiserror::Error;

/// Why a packet could not be split or its checksum finished.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Error)]
pub enum OffloadError {
    /// The header or lengths are inconsistent (truncated, wrong version, a
    /// checksum offset past the end, a zero segment size).
    #[error("malformed offload packet")]
    Malformed,
    /// Well-formed, but not something we split: IPv4, extension headers,
    /// another transport than the GSO type says, ECN GSO.
    #[error("unsupported offload packet")]
    Unsupported,
    /// More segments than the caller allows.
    #[error("too many segments")]
    TooManySegments,
    /// The buffer has no room for the segments where the caller wants them.
    #[error("no room to segment in place")]
    NoRoom,
}

/// The IPv6 fixed header length.
pub const IPV6_HEADER_LEN: usize = 40;
/// IPv6 next-header value of TCP.
pub const PROTO_TCP: u8 = 6;
/// IPv6 next-header value of UDP.
pub const PROTO_UDP: u8 = 17;
