//! Splitting a TUN super-packet into overlay-MTU packets, in place.
//!
//! [`segment_in_place`] takes a TCP or UDP IPv6 super-packet (what the TUN
//! reads when `TUNSETOFFLOAD` enabled TSO/USO) at `packet` in `buf` and
//! writes its segments, each a complete IPv6 packet, from `out_start` on:
//!
//! ```text
//!  out_start
//!  | headroom | IPv6 | TCP | payload 0 | tailroom | headroom | IPv6 | TCP | payload 1 | tailroom | ...
//!  |<------------------------- stride -------------------->|
//! ```
//!
//! so that, once the engine has written its header into each headroom and
//! its tag into each tailroom, the sealed segments lie back to back, all
//! `stride` bytes but the last: exactly what one UDP GSO send wants.
//!
//! Every segment gets its own IPv6 payload length; TCP segments their
//! sequence number, FIN and PSH only on the last and CWR only on the first;
//! UDP segments their length; and all of them a full checksum over the
//! pseudo-header, the transport header and the payload (the super-packet's
//! partial checksum is not trusted). Segments are written front to back over
//! the super-packet's own bytes, so the caller leaves enough space between
//! `out_start` and the packet ([`segment_in_place`] checks it; about 170
//! bytes per segment).

use std::ops::Range;

use super::csum;
use super::vnet::{GsoType, VnetHeader};
use super::{IPV6_HEADER_LEN, OffloadError, PROTO_TCP, PROTO_UDP};

/// TCP flag bits (byte 13 of the TCP header).
pub mod tcp_flags {
    /// Congestion window reduced.
    pub const CWR: u8 = 0x80;
    /// ECN echo.
    pub const ECE: u8 = 0x40;
    /// Urgent.
    pub const URG: u8 = 0x20;
    /// Acknowledgment.
    pub const ACK: u8 = 0x10;
    /// Push.
    pub const PSH: u8 = 0x08;
    /// Reset.
    pub const RST: u8 = 0x04;
    /// Synchronise.
    pub const SYN: u8 = 0x02;
    /// Finish.
    pub const FIN: u8 = 0x01;
}

/// The longest IPv6 + TCP header (40 + 60).
pub const MAX_HEADER_LEN: usize = IPV6_HEADER_LEN + 60;

/// Where segments go around their inner packet.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Layout {
    /// Free bytes in front of each segment (the engine's header).
    pub headroom: usize,
    /// Free bytes after each segment (the engine's tag).
    pub tailroom: usize,
    /// The most segments one super-packet may become.
    pub max_segments: usize,
}

/// Where [`segment_in_place`] put the segments.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Segments {
    /// Number of segments (at least 1).
    pub count: usize,
    /// Distance from one segment's headroom to the next one's.
    pub stride: usize,
    /// Offset of the first segment's headroom in the buffer.
    pub out_start: usize,
    /// The headroom in front of each inner packet.
    pub headroom: usize,
    /// Length of every inner packet but the last.
    pub full_len: usize,
    /// Length of the last inner packet.
    pub last_len: usize,
}

impl Segments {
    /// Segment `i`'s inner packet, as a range of the buffer.
    pub fn inner(&self, i: usize) -> Range<usize> {
        let start = self.out_start + i * self.stride + self.headroom;
        let len = if i + 1 == self.count { self.last_len } else { self.full_len };
        start..start + len
    }
}

/// Finishes the checksum of a plain packet flagged `NEEDS_CSUM`: sums
/// everything from `csum_start` on (the field holds the pseudo-header sum, as
/// the kernel leaves it) and stores the result at `csum_start + csum_offset`.
pub fn finish_checksum(packet: &mut [u8], csum_start: usize, csum_offset: usize) -> Result<(), OffloadError> {
    let at = csum_start.checked_add(csum_offset).ok_or(OffloadError::Malformed)?;
    if at.checked_add(2).is_none_or(|end| end > packet.len()) {
        return Err(OffloadError::Malformed);
    }
    let c = csum::finish(csum::sum(&packet[csum_start..], 0));
    packet[at..at + 2].copy_from_slice(&c.to_be_bytes());
    Ok(())
}

/// The transport header length of an IPv6 packet carrying `proto` directly
/// (no extension headers), after checking the IPv6 header against the packet.
pub fn transport_header_len(packet: &[u8], proto: u8) -> Result<usize, OffloadError> {
    if packet.len() < IPV6_HEADER_LEN {
        return Err(OffloadError::Malformed);
    }
    if packet[0] >> 4 != 6 || packet[6] != proto {
        return Err(OffloadError::Unsupported);
    }
    if usize::from(u16::from_be_bytes([packet[4], packet[5]])) != packet.len() - IPV6_HEADER_LEN {
        return Err(OffloadError::Malformed);
    }
    let l4 = if proto == PROTO_TCP {
        let doff = usize::from(*packet.get(IPV6_HEADER_LEN + 12).ok_or(OffloadError::Malformed)? >> 4) * 4;
        if doff < 20 {
            return Err(OffloadError::Malformed);
        }
        doff
    } else {
        8
    };
    if IPV6_HEADER_LEN + l4 > packet.len() { Err(OffloadError::Malformed) } else { Ok(l4) }
}

/// Splits the super-packet at `packet` in `buf` into segments from
/// `out_start` on (see the module docs). Nothing is written unless it
/// succeeds.
pub fn segment_in_place(
    buf: &mut [u8],
    packet: Range<usize>,
    vnet: &VnetHeader,
    out_start: usize,
    layout: &Layout,
) -> Result<Segments, OffloadError> {
    let proto = match vnet.gso_type {
        GsoType::TcpV6 => PROTO_TCP,
        GsoType::UdpL4 => PROTO_UDP,
        GsoType::TcpV4 | GsoType::Udp => return Err(OffloadError::Unsupported),
        GsoType::None => return Err(OffloadError::Malformed),
    };
    let pkt = buf.get(packet.clone()).ok_or(OffloadError::Malformed)?;
    let l4 = transport_header_len(pkt, proto)?;
    let hdr_len = IPV6_HEADER_LEN + l4;
    let payload = pkt.len() - hdr_len;
    let gso = usize::from(vnet.gso_size);
    if gso == 0 {
        return Err(OffloadError::Malformed);
    }
    let count = if payload == 0 { 1 } else { payload.div_ceil(gso) };
    if count > layout.max_segments {
        return Err(OffloadError::TooManySegments);
    }
    let first = gso.min(payload);
    let last = payload - (count - 1) * first;
    let overhead = layout.headroom + hdr_len + layout.tailroom;
    let stride = overhead + first;
    let room_before = out_start + (count - 1) * overhead + layout.headroom <= packet.start;
    let end = out_start + (count - 1) * stride + overhead + last;
    if !room_before || end > buf.len() {
        return Err(OffloadError::NoRoom);
    }
    let mut hdr = [0u8; MAX_HEADER_LEN];
    hdr[..hdr_len].copy_from_slice(&pkt[..hdr_len]);
    let segments = Segments {
        count,
        stride,
        out_start,
        headroom: layout.headroom,
        full_len: hdr_len + first,
        last_len: hdr_len + last,
    };
    for i in 0..count {
        let len = if i + 1 == count { last } else { first };
        let src = packet.start + hdr_len + i * first;
        let inner = segments.inner(i);
        buf.copy_within(src..src + len, inner.start + hdr_len);
        let seg = &mut buf[inner];
        seg[..hdr_len].copy_from_slice(&hdr[..hdr_len]);
        fix_segment(seg, proto, l4, i, count, (i * first) as u32);
    }
    Ok(segments)
}

/// Fixes one segment's lengths, TCP sequence and flags, and checksum.
fn fix_segment(seg: &mut [u8], proto: u8, l4: usize, index: usize, count: usize, offset: u32) {
    let l4_len = seg.len() - IPV6_HEADER_LEN;
    seg[4..6].copy_from_slice(&(l4_len as u16).to_be_bytes());
    let t = IPV6_HEADER_LEN;
    let csum_at = if proto == PROTO_TCP {
        let seq = u32::from_be_bytes([seg[t + 4], seg[t + 5], seg[t + 6], seg[t + 7]]).wrapping_add(offset);
        seg[t + 4..t + 8].copy_from_slice(&seq.to_be_bytes());
        if index + 1 != count {
            seg[t + 13] &= !(tcp_flags::FIN | tcp_flags::PSH);
        }
        if index != 0 {
            seg[t + 13] &= !tcp_flags::CWR;
        }
        t + 16
    } else {
        seg[t + 4..t + 6].copy_from_slice(&(l4_len as u16).to_be_bytes());
        t + 6
    };
    debug_assert!(l4 >= 8);
    seg[csum_at..csum_at + 2].fill(0);
    let addrs: &[u8; 32] = seg[8..40].try_into().unwrap_or(&[0; 32]);
    let acc = csum::sum(&seg[t..], csum::pseudo_ipv6(addrs, l4_len as u32, proto));
    seg[csum_at..csum_at + 2].copy_from_slice(&csum::finish(acc).to_be_bytes());
}

#[cfg(test)]
#[path = "segment_tests.rs"]
pub(crate) mod tests;
