//! The `virtio_net_hdr` in front of every TUN read and write once the TUN has
//! `IFF_VNET_HDR` (10 bytes, the legacy layout the kernel uses by default).
//!
//! ```text
//!  0        1          2               4               6                8                10
//!  | flags  | gso_type | hdr_len (le)  | gso_size (le) | csum_start (le) | csum_offset (le) |
//! ```
//!
//! Fields are in the host's byte order for a legacy TUN; every host we run on
//! is little-endian, so they are read and written as little-endian.

use super::OffloadError;

/// Length of the header.
pub const VNET_HEADER_LEN: usize = 10;

/// `VIRTIO_NET_HDR_F_NEEDS_CSUM`: the checksum at `csum_start + csum_offset` must be finished.
pub const FLAG_NEEDS_CSUM: u8 = 1;
/// `VIRTIO_NET_HDR_F_DATA_VALID`: the checksum was verified.
pub const FLAG_DATA_VALID: u8 = 2;

/// What kind of super-packet (`VIRTIO_NET_HDR_GSO_*`).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum GsoType {
    /// A plain packet.
    None,
    /// IPv4 TCP.
    TcpV4,
    /// IPv4 UDP fragmentation offload (obsolete).
    Udp,
    /// IPv6 TCP.
    TcpV6,
    /// UDP segmentation (`GSO_UDP_L4`), either family.
    UdpL4,
}

impl GsoType {
    fn from_byte(b: u8) -> Option<GsoType> {
        Some(match b {
            0 => GsoType::None,
            1 => GsoType::TcpV4,
            3 => GsoType::Udp,
            4 => GsoType::TcpV6,
            5 => GsoType::UdpL4,
            _ => return None,
        })
    }

    fn to_byte(self) -> u8 {
        match self {
            GsoType::None => 0,
            GsoType::TcpV4 => 1,
            GsoType::Udp => 3,
            GsoType::TcpV6 => 4,
            GsoType::UdpL4 => 5,
        }
    }
}

/// A parsed vnet header.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct VnetHeader {
    /// `FLAG_*` bits.
    pub flags: u8,
    /// The GSO type (the ECN bit is refused at parse time).
    pub gso_type: GsoType,
    /// Length of the headers (IP + transport) as the kernel counts it; advisory.
    pub hdr_len: u16,
    /// Payload bytes per segment.
    pub gso_size: u16,
    /// Where checksumming starts, from the start of the packet.
    pub csum_start: u16,
    /// Where the checksum goes, from `csum_start`.
    pub csum_offset: u16,
}

impl VnetHeader {
    /// The header of a plain packet with nothing to do.
    pub const PLAIN: VnetHeader =
        VnetHeader { flags: 0, gso_type: GsoType::None, hdr_len: 0, gso_size: 0, csum_start: 0, csum_offset: 0 };

    /// Parses the first [`VNET_HEADER_LEN`] bytes of `bytes`.
    pub fn parse(bytes: &[u8]) -> Result<VnetHeader, OffloadError> {
        let b: &[u8; VNET_HEADER_LEN] =
            bytes.get(..VNET_HEADER_LEN).and_then(|b| b.try_into().ok()).ok_or(OffloadError::Malformed)?;
        if b[1] & 0x80 != 0 {
            return Err(OffloadError::Unsupported);
        }
        let gso_type = GsoType::from_byte(b[1]).ok_or(OffloadError::Unsupported)?;
        let le = |i: usize| u16::from_le_bytes([b[i], b[i + 1]]);
        Ok(VnetHeader { flags: b[0], gso_type, hdr_len: le(2), gso_size: le(4), csum_start: le(6), csum_offset: le(8) })
    }

    /// Writes the header into the first [`VNET_HEADER_LEN`] bytes of `out`
    /// (which must be at least that long).
    pub fn emit(&self, out: &mut [u8; VNET_HEADER_LEN]) {
        out[0] = self.flags;
        out[1] = self.gso_type.to_byte();
        out[2..4].copy_from_slice(&self.hdr_len.to_le_bytes());
        out[4..6].copy_from_slice(&self.gso_size.to_le_bytes());
        out[6..8].copy_from_slice(&self.csum_start.to_le_bytes());
        out[8..10].copy_from_slice(&self.csum_offset.to_le_bytes());
    }

    /// Whether the checksum must be finished.
    pub fn needs_csum(&self) -> bool {
        self.flags & FLAG_NEEDS_CSUM != 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tcpv6_header_parses_from_its_bytes_and_emits_them_back() {
        let bytes = [1, 4, 60, 0, 0x4c, 0x05, 40, 0, 16, 0];
        let h = VnetHeader::parse(&bytes).unwrap();
        assert_eq!(
            h,
            VnetHeader {
                flags: FLAG_NEEDS_CSUM,
                gso_type: GsoType::TcpV6,
                hdr_len: 60,
                gso_size: 1356,
                csum_start: 40,
                csum_offset: 16
            }
        );
        let mut out = [0u8; VNET_HEADER_LEN];
        h.emit(&mut out);
        assert_eq!(out, bytes);
    }

    #[test]
    fn short_headers_unknown_types_and_ecn_are_refused() {
        assert_eq!(VnetHeader::parse(&[0; 9]), Err(OffloadError::Malformed));
        assert_eq!(VnetHeader::parse(&[0, 2, 0, 0, 0, 0, 0, 0, 0, 0]), Err(OffloadError::Unsupported));
        assert_eq!(VnetHeader::parse(&[0, 0x84, 0, 0, 0, 0, 0, 0, 0, 0]), Err(OffloadError::Unsupported));
        assert_eq!(VnetHeader::parse(&[0; 10]), Ok(VnetHeader::PLAIN));
    }
}
