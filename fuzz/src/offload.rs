//! The dataplane's offload parsers on hostile bytes: a vnet header and the
//! packet behind it, as a TUN read hands them to the shard.
//!
//! Input: 10 bytes of `virtio_net_hdr`, then the packet. Whatever the bytes,
//! nothing panics, and a super-packet that splits gives segments that are
//! each a consistent IPv6 packet with a verifying checksum, carry the
//! original payload in order, and (TCP with only ACK/PSH) merge back into
//! runs that cover every segment with the kernel's GRO rules.

use mycelium_dataplane::offload::coalesce::{MAX_RUN, Run};
use mycelium_dataplane::offload::segment::{Layout, finish_checksum, segment_in_place, transport_header_len};
use mycelium_dataplane::offload::vnet::{GsoType, VNET_HEADER_LEN, VnetHeader};

/// Where the shard reads a super-packet (see `io::shard::TUN_VNET_DATA_OFFSET`) and its buffer size.
const AT: usize = 44 * 1024;
const BUF: usize = 128 * 1024;

/// Ones' complement sum, 16 bits at a time (independent of the dataplane's `csum`).
fn naive_sum(chunks: &[&[u8]]) -> u16 {
    let mut acc: u32 = 0;
    let mut odd: Option<u8> = None;
    for c in chunks {
        for &b in c.iter() {
            match odd.take() {
                Some(hi) => {
                    acc += u32::from(hi) << 8 | u32::from(b);
                    acc = (acc & 0xffff) + (acc >> 16);
                }
                None => odd = Some(b),
            }
        }
    }
    if let Some(hi) = odd {
        acc += u32::from(hi) << 8;
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc as u16
}

fn checksum_ok(p: &[u8]) -> bool {
    let len = ((p.len() - 40) as u32).to_be_bytes();
    naive_sum(&[&p[8..40], &len, &[0, 0, 0, p[6]], &p[40..]]) == 0xffff
}

/// The `offload_split` target.
pub fn offload_split(data: &[u8]) {
    let Ok(vnet) = VnetHeader::parse(data) else { return };
    let packet = &data[VNET_HEADER_LEN.min(data.len())..];
    if packet.len() > BUF - AT {
        return;
    }
    if vnet.gso_type == GsoType::None {
        let mut copy = packet.to_vec();
        let _ = finish_checksum(&mut copy, usize::from(vnet.csum_start), usize::from(vnet.csum_offset));
        return;
    }
    let mut buf = vec![0u8; BUF];
    buf[AT..AT + packet.len()].copy_from_slice(packet);
    let layout = Layout { headroom: 48, tailroom: 16, max_segments: 255 };
    let Ok(s) = segment_in_place(&mut buf, AT..AT + packet.len(), &vnet, 0, &layout) else { return };
    let proto = packet[6];
    let hdr = 40 + transport_header_len(packet, proto).expect("split, so the header parsed");
    let mut stream = Vec::new();
    for i in 0..s.count {
        let seg = &buf[s.inner(i)];
        assert!(s.inner(i).end + layout.tailroom <= BUF);
        assert_eq!(usize::from(u16::from_be_bytes([seg[4], seg[5]])), seg.len() - 40, "payload length");
        assert_eq!(seg[..4], packet[..4]);
        assert_eq!(seg[6..40], packet[6..40]);
        assert!(checksum_ok(seg), "segment {i} checksum");
        stream.extend_from_slice(&seg[hdr..]);
    }
    assert_eq!(stream, packet[hdr..], "the payload, in order");
    if proto != 6 || s.count < 2 {
        return;
    }
    let segs: Vec<&[u8]> = (0..s.count).map(|i| &buf[s.inner(i)]).collect();
    let Some(mut run) = Run::start(segs[0]) else { return };
    let mut covered = 1;
    while covered < segs.len() && run.try_append(segs[0], segs[covered]) {
        covered += 1;
    }
    assert_eq!(covered, s.count.min(MAX_RUN), "a split super-packet merges back whole");
}
