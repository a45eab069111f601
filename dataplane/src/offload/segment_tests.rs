//! Byte-level tests of the splitter. Checksums are verified with a separate,
//! word-by-word implementation, not with `csum`.

use super::*;
use crate::offload::vnet::FLAG_NEEDS_CSUM;

const SRC: [u8; 16] = [0x04, 0x11, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
const DST: [u8; 16] = [0x05, 0x22, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2];

/// Ones' complement sum, 16 bits at a time, as in RFC 1071's example code.
pub(crate) fn reference_sum(chunks: &[&[u8]]) -> u16 {
    let bytes: Vec<u8> = chunks.concat();
    let mut acc: u32 = 0;
    for pair in bytes.chunks(2) {
        let w = u32::from(pair[0]) << 8 | u32::from(*pair.get(1).unwrap_or(&0));
        acc += w;
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc as u16
}

/// Whether the transport checksum of a whole IPv6 packet verifies.
pub(crate) fn checksum_ok(packet: &[u8]) -> bool {
    let len = (packet.len() - 40) as u32;
    let pseudo = [&len.to_be_bytes()[..], &[0, 0, 0, packet[6]]].concat();
    reference_sum(&[&packet[8..40], &pseudo, &packet[40..]]) == 0xffff
}

/// An IPv6 TCP packet; `options` must be a multiple of 4 bytes.
pub(crate) fn tcp_packet(seq: u32, flags: u8, options: &[u8], payload: &[u8]) -> Vec<u8> {
    let tcp_len = 20 + options.len();
    let mut p = vec![0u8; 40 + tcp_len];
    p[0] = 0x60;
    p[4..6].copy_from_slice(&((tcp_len + payload.len()) as u16).to_be_bytes());
    p[6] = 6;
    p[7] = 64;
    p[8..24].copy_from_slice(&SRC);
    p[24..40].copy_from_slice(&DST);
    p[40..42].copy_from_slice(&40000u16.to_be_bytes());
    p[42..44].copy_from_slice(&5201u16.to_be_bytes());
    p[44..48].copy_from_slice(&seq.to_be_bytes());
    p[48..52].copy_from_slice(&0x0102_0304u32.to_be_bytes());
    p[52] = ((tcp_len / 4) as u8) << 4;
    p[53] = flags;
    p[54..56].copy_from_slice(&512u16.to_be_bytes());
    p[60..60 + options.len()].copy_from_slice(options);
    p.extend_from_slice(payload);
    p
}

fn udp_packet(payload: &[u8]) -> Vec<u8> {
    let mut p = vec![0u8; 48];
    p[0] = 0x60;
    p[4..6].copy_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    p[6] = 17;
    p[7] = 64;
    p[8..24].copy_from_slice(&SRC);
    p[24..40].copy_from_slice(&DST);
    p[40..42].copy_from_slice(&1000u16.to_be_bytes());
    p[42..44].copy_from_slice(&2000u16.to_be_bytes());
    p[44..46].copy_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    p.extend_from_slice(payload);
    p
}

pub(crate) fn tso(gso: u16) -> VnetHeader {
    VnetHeader {
        flags: FLAG_NEEDS_CSUM,
        gso_type: GsoType::TcpV6,
        hdr_len: 0,
        gso_size: gso,
        csum_start: 40,
        csum_offset: 16,
    }
}

pub(crate) const LAYOUT: Layout = Layout { headroom: 48, tailroom: 16, max_segments: 128 };

/// Puts `packet` at `at` in a buffer of `size` bytes and splits it from offset 0.
pub(crate) fn split(
    packet: &[u8],
    vnet: &VnetHeader,
    at: usize,
    size: usize,
) -> (Vec<u8>, Result<Segments, OffloadError>) {
    let mut buf = vec![0xeeu8; size];
    buf[at..at + packet.len()].copy_from_slice(packet);
    let r = segment_in_place(&mut buf, at..at + packet.len(), vnet, 0, &LAYOUT);
    (buf, r)
}

pub(crate) fn payload_of(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 7 + i / 251) as u8).collect()
}

#[test]
fn a_tcp_super_packet_becomes_segments_with_their_own_seq_flags_lengths_and_checksums() {
    let options = [1, 1, 8, 10, 0, 0, 0, 9, 0, 0, 0, 7];
    let payload = payload_of(3000);
    let flags = tcp_flags::ACK | tcp_flags::PSH | tcp_flags::FIN | tcp_flags::CWR;
    let packet = tcp_packet(0xffff_fc00, flags, &options, &payload);
    let (buf, r) = split(&packet, &tso(1200), 30_000, 40_000);
    let s = r.unwrap();
    assert_eq!((s.count, s.full_len, s.last_len), (3, 40 + 32 + 1200, 40 + 32 + 600));
    assert_eq!(s.stride, 48 + 40 + 32 + 1200 + 16);
    for i in 0..3 {
        let seg = &buf[s.inner(i)];
        let chunk = &payload[i * 1200..(i * 1200 + 1200).min(3000)];
        // The expected segment, built from scratch; only the checksum is copied over.
        let want_flags = match i {
            0 => tcp_flags::ACK | tcp_flags::CWR,
            1 => tcp_flags::ACK,
            _ => tcp_flags::ACK | tcp_flags::PSH | tcp_flags::FIN,
        };
        let mut want = tcp_packet(0xffff_fc00u32.wrapping_add(i as u32 * 1200), want_flags, &options, chunk);
        want[56..58].copy_from_slice(&seg[56..58]);
        assert_eq!(seg, &want[..], "segment {i}");
        assert!(checksum_ok(seg), "segment {i} checksum");
    }
    assert_eq!(s.inner(2).end + 16, s.out_start + 2 * s.stride + 48 + 40 + 32 + 600 + 16);
}

#[test]
fn a_udp_super_packet_becomes_datagrams_with_their_own_lengths_and_checksums() {
    let payload = payload_of(2501);
    let packet = udp_packet(&payload);
    let vnet = VnetHeader { gso_type: GsoType::UdpL4, gso_size: 1000, ..tso(0) };
    let (buf, r) = split(&packet, &vnet, 20_000, 30_000);
    let s = r.unwrap();
    assert_eq!((s.count, s.full_len, s.last_len), (3, 1048, 549));
    for i in 0..3 {
        let seg = &buf[s.inner(i)];
        assert_eq!(u16::from_be_bytes([seg[4], seg[5]]) as usize, seg.len() - 40);
        assert_eq!(u16::from_be_bytes([seg[44], seg[45]]) as usize, seg.len() - 40);
        assert_eq!(&seg[48..], &payload[i * 1000..(i * 1000 + 1000).min(2501)]);
        assert!(checksum_ok(seg), "datagram {i}");
    }
}

#[test]
fn a_super_packet_no_longer_than_one_segment_is_one_checksummed_packet() {
    let packet = tcp_packet(5, tcp_flags::ACK, &[], &payload_of(99));
    let (buf, r) = split(&packet, &tso(1200), 1000, 4000);
    let s = r.unwrap();
    assert_eq!(s.count, 1);
    assert_eq!(&buf[s.inner(0)][..56], &packet[..56]);
    assert!(checksum_ok(&buf[s.inner(0)]));
}

#[test]
fn plain_packets_flagged_needs_csum_get_their_checksum_finished() {
    let mut packet = tcp_packet(1, tcp_flags::ACK, &[], &payload_of(333));
    let len = (packet.len() - 40) as u32;
    let pseudo =
        crate::offload::csum::fold(crate::offload::csum::pseudo_ipv6(packet[8..40].try_into().unwrap(), len, 6));
    packet[56..58].copy_from_slice(&pseudo.to_be_bytes());
    finish_checksum(&mut packet, 40, 16).unwrap();
    assert!(checksum_ok(&packet));
    assert_eq!(finish_checksum(&mut packet, 40, 10_000), Err(OffloadError::Malformed));
    assert_eq!(finish_checksum(&mut packet, usize::MAX, 16), Err(OffloadError::Malformed));
}

#[test]
fn extension_headers_ipv4_bad_lengths_and_a_zero_segment_size_are_refused() {
    let good = tcp_packet(1, tcp_flags::ACK, &[], &payload_of(3000));
    let mut ext = good.clone();
    ext[6] = 0; // hop-by-hop options
    assert_eq!(split(&ext, &tso(1000), 20_000, 30_000).1, Err(OffloadError::Unsupported));
    let mut v4 = good.clone();
    v4[0] = 0x45;
    assert_eq!(split(&v4, &tso(1000), 20_000, 30_000).1, Err(OffloadError::Unsupported));
    let mut bad_len = good.clone();
    bad_len[5] ^= 1;
    assert_eq!(split(&bad_len, &tso(1000), 20_000, 30_000).1, Err(OffloadError::Malformed));
    let mut bad_doff = good.clone();
    bad_doff[52] = 0x40;
    assert_eq!(split(&bad_doff, &tso(1000), 20_000, 30_000).1, Err(OffloadError::Malformed));
    assert_eq!(split(&good, &tso(0), 20_000, 30_000).1, Err(OffloadError::Malformed));
    assert_eq!(split(&good[..30], &tso(1000), 20_000, 30_000).1, Err(OffloadError::Malformed));
    let v4gso = VnetHeader { gso_type: GsoType::TcpV4, ..tso(1000) };
    assert_eq!(split(&good, &v4gso, 20_000, 30_000).1, Err(OffloadError::Unsupported));
}

#[test]
fn too_many_segments_or_too_little_room_are_refused_without_writing() {
    let good = tcp_packet(1, tcp_flags::ACK, &[], &payload_of(3000));
    assert_eq!(split(&good, &tso(10), 20_000, 30_000).1, Err(OffloadError::TooManySegments));
    let (buf, r) = split(&good, &tso(1000), 295, 30_000);
    assert_eq!(r, Err(OffloadError::NoRoom));
    assert!(split(&good, &tso(1000), 296, 30_000).1.is_ok(), "2 * (48 + 60 + 16) + 48 bytes are enough");
    assert!(buf[..295].iter().all(|b| *b == 0xee));
    assert_eq!(
        split(&good, &tso(1000), 20_000, 20_000 + good.len()).1,
        Ok(split(&good, &tso(1000), 20_000, 30_000).1.unwrap())
    );
}
