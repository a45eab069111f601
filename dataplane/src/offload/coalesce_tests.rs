//! Tests of the merger, and the round trip split -> merge.

use proptest::prelude::*;

use super::*;
use crate::offload::segment::tcp_flags::{CWR, FIN, SYN};
use crate::offload::segment::tests::{checksum_ok, payload_of, split, tcp_packet, tso};
use crate::offload::segment::{Layout, finish_checksum, segment_in_place};

/// What the kernel would see after a merged write: the head, then the payload of the others.
fn merged(packets: &mut [Vec<u8>]) -> (Option<VnetHeader>, Vec<Vec<u8>>) {
    let mut out = Vec::new();
    let mut i = 0;
    let mut last_vnet = None;
    while i < packets.len() {
        let Some(mut run) = Run::start(&packets[i]) else {
            out.push(packets[i].clone());
            i += 1;
            continue;
        };
        let mut j = i + 1;
        while j < packets.len() && run.try_append(&packets[i], &packets[j]) {
            j += 1;
        }
        if run.count() == 1 {
            out.push(packets[i].clone());
        } else {
            let vnet = run.finish(&mut packets[i]);
            let mut whole = packets[i].clone();
            for p in &packets[i + 1..j] {
                whole.extend_from_slice(&p[run.header_len()..]);
            }
            assert_eq!(whole.len(), 40 + usize::from(u16::from_be_bytes([whole[4], whole[5]])));
            last_vnet = Some(vnet);
            out.push(whole);
        }
        i = j;
    }
    (last_vnet, out)
}

fn stream(packets: &[Vec<u8>]) -> Vec<u8> {
    packets.iter().flat_map(|p| p[40 + usize::from(p[52] >> 4) * 4..].to_vec()).collect()
}

#[test]
fn consecutive_full_segments_merge_into_one_packet_whose_checksum_the_kernel_can_finish() {
    let options = [1, 1, 8, 10, 0, 0, 0, 9, 0, 0, 0, 7];
    let payload = payload_of(4000);
    let mut packets: Vec<Vec<u8>> = (0..4)
        .map(|i| {
            let end = (i * 1100 + 1100).min(4000);
            let flags = if i == 3 { ACK | PSH } else { ACK };
            tcp_packet(1000 + i as u32 * 1100, flags, &options, &payload[i * 1100..end])
        })
        .collect();
    let (vnet, out) = merged(&mut packets);
    assert_eq!(out.len(), 1);
    let vnet = vnet.unwrap();
    assert_eq!(
        (vnet.gso_type, vnet.gso_size, vnet.hdr_len, vnet.csum_start, vnet.csum_offset),
        (GsoType::TcpV6, 1100, 72, 40, 16)
    );
    assert_eq!(out[0][53], ACK | PSH);
    assert_eq!(stream(&out), payload);
    let mut whole = out[0].clone();
    finish_checksum(&mut whole, 40, 16).unwrap();
    assert!(checksum_ok(&whole));
}

#[test]
fn gaps_other_flags_other_flows_and_changed_options_break_a_run() {
    let p = |seq: u32, flags: u8, n: usize| tcp_packet(seq, flags, &[], &payload_of(n));
    let head = p(0, ACK, 100);
    let mut run = Run::start(&head).unwrap();
    assert!(!run.try_append(&head, &p(101, ACK, 100)), "gap");
    assert!(!run.try_append(&head, &p(100, ACK | FIN, 100)), "fin");
    assert!(!run.try_append(&head, &p(100, ACK | CWR, 100)), "cwr");
    assert!(!run.try_append(&head, &p(100, ACK, 101)), "longer than the first");
    assert!(!run.try_append(&head, &p(100, ACK, 0)), "no payload");
    let mut other_port = p(100, ACK, 100);
    other_port[41] ^= 1;
    assert!(!run.try_append(&head, &other_port));
    let mut other_ack = p(100, ACK, 100);
    other_ack[51] ^= 1;
    assert!(!run.try_append(&head, &other_ack));
    let mut other_window = p(100, ACK, 100);
    other_window[55] ^= 1;
    assert!(!run.try_append(&head, &other_window));
    let ts = |v: u8| tcp_packet(100, ACK, &[1, 1, 8, 10, 0, 0, 0, v, 0, 0, 0, 7], &payload_of(100));
    let ts_head = tcp_packet(0, ACK, &[1, 1, 8, 10, 0, 0, 0, 9, 0, 0, 0, 7], &payload_of(100));
    let mut ts_run = Run::start(&ts_head).unwrap();
    assert!(!ts_run.try_append(&ts_head, &ts(8)));
    assert!(ts_run.try_append(&ts_head, &ts(9)));
    assert!(run.try_append(&head, &p(100, ACK, 50)));
    assert!(!run.try_append(&head, &p(150, ACK, 50)), "a short segment ends the run");
    assert_eq!(run.count(), 2);
    assert!(Run::start(&p(0, SYN, 10)).is_none());
    assert!(Run::start(&p(0, ACK, 0)).is_none());
    assert!(Run::start(&head[..30]).is_none());
    assert!(!run.try_append(&head, &head[..39]));
}

#[test]
fn a_run_stops_at_the_segment_limit_and_at_64_kib() {
    let head = tcp_packet(0, ACK, &[], &payload_of(100));
    let mut run = Run::start(&head).unwrap();
    for i in 1..MAX_RUN {
        assert!(run.try_append(&head, &tcp_packet(i as u32 * 100, ACK, &[], &payload_of(100))));
    }
    assert!(!run.try_append(&head, &tcp_packet(MAX_RUN as u32 * 100, ACK, &[], &payload_of(100))));
    let big = tcp_packet(0, ACK, &[], &payload_of(30_000));
    let mut run = Run::start(&big).unwrap();
    assert!(run.try_append(&big, &tcp_packet(30_000, ACK, &[], &payload_of(30_000))));
    assert!(!run.try_append(&big, &tcp_packet(60_000, ACK, &[], &payload_of(30_000))));
}

proptest! {
    #[test]
    fn splitting_then_merging_gives_back_the_tcp_byte_stream(
        len in 1usize..20_000,
        gso in 200u16..1500,
        words in 0usize..=10,
        psh in any::<bool>(),
        seq in any::<u32>(),
    ) {
        let options: Vec<u8> = (0..words * 4).map(|i| if i % 4 == 0 { 1 } else { i as u8 }).collect();
        let payload = payload_of(len);
        let flags = if psh { ACK | PSH } else { ACK };
        let packet = tcp_packet(seq, flags, &options, &payload);
        let (buf, r) = split(&packet, &tso(gso), 30_000, 60_000);
        let s = r.unwrap();
        let mut segs: Vec<Vec<u8>> = (0..s.count).map(|i| buf[s.inner(i)].to_vec()).collect();
        for seg in &segs {
            prop_assert!(checksum_ok(seg));
        }
        let (_, out) = merged(&mut segs);
        prop_assert_eq!(stream(&out), payload);
        prop_assert_eq!(out.len(), s.count.div_ceil(MAX_RUN));
    }

    #[test]
    fn any_bytes_and_any_vnet_header_are_refused_or_split_without_panicking(
        bytes in proptest::collection::vec(any::<u8>(), 0..3000),
        vnet in proptest::collection::vec(any::<u8>(), 10),
        at in 0usize..4000,
    ) {
        if let Ok(h) = VnetHeader::parse(&vnet) {
            let mut buf = vec![0u8; 8000];
            let at = at.min(8000 - bytes.len());
            buf[at..at + bytes.len()].copy_from_slice(&bytes);
            let layout = Layout { headroom: 48, tailroom: 16, max_segments: 128 };
            if let Ok(s) = segment_in_place(&mut buf, at..at + bytes.len(), &h, 0, &layout) {
                prop_assert!(s.inner(s.count - 1).end <= buf.len());
            }
            let _ = finish_checksum(&mut buf[at..at + bytes.len()], usize::from(h.csum_start), usize::from(h.csum_offset));
        }
        if let Some(mut run) = Run::start(&bytes) {
            let _ = run.try_append(&bytes, &bytes);
        }
    }
}
