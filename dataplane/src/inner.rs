//! Checks on the inner packet: the plaintext IPv6 packet a node's own hosts
//! write to the TUN, or that a peer sealed to us.
//!
//! Only the fixed IPv6 header is read (version, payload length, addresses);
//! extension headers and the transport are the hosts' business. Both checks
//! are what stops address spoofing across the overlay: a node may only send
//! from its own /64, and a packet opened under a peer's session must come from
//! that peer's /64.

/// Length of the fixed IPv6 header.
pub const IPV6_HEADER_LEN: usize = 40;

/// Why an inner packet was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InnerError {
    /// Not IPv6, or shorter than its header, or its payload length disagrees
    /// with the packet's size.
    NotIpv6,
    /// The source is outside the /64 it must come from.
    Spoofed,
    /// The destination is outside the overlay (`400::/7`).
    NotOverlay,
    /// The destination is multicast (the host's own neighbour discovery and
    /// MLD traffic on the TUN, which has nowhere to go on the overlay).
    Multicast,
}

/// The addresses of a checked inner IPv6 packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InnerAddrs {
    pub source: [u8; 16],
    pub destination: [u8; 16],
}

/// Reads and checks the fixed header of `packet`.
#[inline]
pub fn parse(packet: &[u8]) -> Result<InnerAddrs, InnerError> {
    let header = packet.get(..IPV6_HEADER_LEN).ok_or(InnerError::NotIpv6)?;
    if header[0] >> 4 != 6 {
        return Err(InnerError::NotIpv6);
    }
    let payload_len = usize::from(u16::from_be_bytes([header[4], header[5]]));
    // Payload length 0 means a jumbogram, which never fits an overlay MTU.
    if payload_len == 0 || IPV6_HEADER_LEN + payload_len != packet.len() {
        return Err(InnerError::NotIpv6);
    }
    let mut source = [0u8; 16];
    let mut destination = [0u8; 16];
    source.copy_from_slice(&header[8..24]);
    destination.copy_from_slice(&header[24..40]);
    Ok(InnerAddrs { source, destination })
}

/// Whether `addr` lies in the /64 of `owner`.
#[inline]
pub fn in_slash_64(addr: &[u8; 16], owner: &[u8; 16]) -> bool {
    addr[..8] == owner[..8]
}

/// Whether `addr` is an overlay unicast address (`400::/7`).
#[inline]
pub fn is_overlay(addr: &[u8; 16]) -> bool {
    addr[0] & 0xfe == 0x04
}

/// A packet from our TUN: from our /64, to another overlay address.
#[inline]
pub fn check_outgoing(packet: &[u8], local: &[u8; 16]) -> Result<InnerAddrs, InnerError> {
    let addrs = parse(packet)?;
    if addrs.destination[0] == 0xff {
        return Err(InnerError::Multicast);
    }
    if !in_slash_64(&addrs.source, local) {
        return Err(InnerError::Spoofed);
    }
    if !is_overlay(&addrs.destination) {
        return Err(InnerError::NotOverlay);
    }
    Ok(addrs)
}

/// A packet opened under `peer`'s session: from `peer`'s /64, to ours.
#[inline]
pub fn check_incoming(packet: &[u8], peer: &[u8; 16], local: &[u8; 16]) -> Result<InnerAddrs, InnerError> {
    let addrs = parse(packet)?;
    if !in_slash_64(&addrs.source, peer) {
        return Err(InnerError::Spoofed);
    }
    if !in_slash_64(&addrs.destination, local) {
        return Err(InnerError::NotOverlay);
    }
    Ok(addrs)
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOCAL: [u8; 16] =
        [0x04, 0x30, 0x93, 0x64, 0xd8, 0xd8, 0x84, 0xa9, 0xdd, 0x60, 0xde, 0x78, 0xc7, 0x67, 0xd3, 0x61];
    const PEER: [u8; 16] =
        [0x05, 0xf5, 0xdb, 0x79, 0x25, 0x73, 0xee, 0xbf, 0x15, 0xe3, 0x4a, 0xe0, 0xbb, 0x2f, 0x88, 0xe1];

    fn packet(src: [u8; 16], dst: [u8; 16], payload: usize) -> Vec<u8> {
        let mut p = vec![0u8; IPV6_HEADER_LEN + payload];
        p[0] = 0x60;
        p[4..6].copy_from_slice(&(payload as u16).to_be_bytes());
        p[6] = 58;
        p[7] = 64;
        p[8..24].copy_from_slice(&src);
        p[24..40].copy_from_slice(&dst);
        p
    }

    #[test]
    fn an_outgoing_packet_from_our_subnet_to_the_overlay_passes() {
        let mut src = LOCAL;
        src[15] = 0x99; // another host of our /64
        assert_eq!(check_outgoing(&packet(src, PEER, 8), &LOCAL), Ok(InnerAddrs { source: src, destination: PEER }));
    }

    #[test]
    fn spoofed_or_misdirected_packets_are_refused() {
        assert_eq!(check_outgoing(&packet(PEER, PEER, 8), &LOCAL), Err(InnerError::Spoofed));
        let mut outside = PEER;
        outside[0] = 0x20;
        assert_eq!(check_outgoing(&packet(LOCAL, outside, 8), &LOCAL), Err(InnerError::NotOverlay));
        let mut all_nodes = [0u8; 16];
        all_nodes[0] = 0xff;
        let link_local = [0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
        assert_eq!(check_outgoing(&packet(link_local, all_nodes, 8), &LOCAL), Err(InnerError::Multicast));
        assert_eq!(check_incoming(&packet(LOCAL, LOCAL, 8), &PEER, &LOCAL), Err(InnerError::Spoofed));
        assert_eq!(check_incoming(&packet(PEER, PEER, 8), &PEER, &LOCAL), Err(InnerError::NotOverlay));
        assert!(check_incoming(&packet(PEER, LOCAL, 8), &PEER, &LOCAL).is_ok());
    }

    #[test]
    fn malformed_headers_are_refused_at_every_length() {
        let good = packet(LOCAL, PEER, 8);
        for len in 0..good.len() {
            assert_eq!(parse(&good[..len]), Err(InnerError::NotIpv6), "length {len}");
        }
        let mut v4 = good.clone();
        v4[0] = 0x45;
        assert_eq!(parse(&v4), Err(InnerError::NotIpv6));
        let mut long = good.clone();
        long.push(0);
        assert_eq!(parse(&long), Err(InnerError::NotIpv6));
    }
}
