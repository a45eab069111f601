//! The pure offload work per super-packet (no syscalls, no crypto): splitting
//! a 64 KiB TCP super-packet from the TUN into TUN-MTU segments in place (with
//! their checksums), merging the opened segments back into one run, and the
//! checksum alone.
//!
//! `cargo bench -p mycelium-benches --bench offload -- --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use mycelium_dataplane::offload::coalesce::Run;
use mycelium_dataplane::offload::csum;
use mycelium_dataplane::offload::segment::{Layout, segment_in_place};
use mycelium_dataplane::offload::vnet::{FLAG_NEEDS_CSUM, GsoType, VnetHeader};

/// Where the shard reads a super-packet, and its buffer size.
const AT: usize = 44 * 1024;
const BUF: usize = 128 * 1024;
/// MSS of a 1380-byte TUN MTU with TCP timestamps.
const MSS: u16 = 1308;

/// An IPv6 TCP packet with a timestamp option and `payload` bytes.
fn tcp_packet(payload: usize) -> Vec<u8> {
    let mut p = vec![0u8; 72];
    p[0] = 0x60;
    p[4..6].copy_from_slice(&((32 + payload) as u16).to_be_bytes());
    p[6] = 6;
    p[7] = 64;
    p[8] = 0x04;
    p[24] = 0x05;
    p[52] = 8 << 4;
    p[53] = 0x10;
    p[60..72].copy_from_slice(&[1, 1, 8, 10, 0, 0, 0, 9, 0, 0, 0, 7]);
    p.extend((0..payload).map(|i| i as u8));
    p
}

fn offload(c: &mut Criterion) {
    let payload = 65_535 - 32 - 40;
    let packet = tcp_packet(payload);
    let vnet = VnetHeader {
        flags: FLAG_NEEDS_CSUM,
        gso_type: GsoType::TcpV6,
        hdr_len: 72,
        gso_size: MSS,
        csum_start: 40,
        csum_offset: 16,
    };
    let layout = Layout { headroom: 48, tailroom: 16, max_segments: 255 };
    let mut buf = vec![0u8; BUF];
    let mut group = c.benchmark_group("offload");
    group.throughput(Throughput::Bytes(packet.len() as u64));
    group.bench_function("split-64KiB-tso", |b| {
        b.iter(|| {
            buf[AT..AT + packet.len()].copy_from_slice(&packet);
            black_box(segment_in_place(&mut buf, AT..AT + packet.len(), &vnet, 0, &layout).unwrap());
        })
    });
    buf[AT..AT + packet.len()].copy_from_slice(&packet);
    let s = segment_in_place(&mut buf, AT..AT + packet.len(), &vnet, 0, &layout).unwrap();
    let mut segs: Vec<Vec<u8>> = (0..s.count).map(|i| buf[s.inner(i)].to_vec()).collect();
    let first = segs[0].clone();
    group.bench_function("merge-64KiB-run", |b| {
        b.iter(|| {
            let (head, rest) = segs.split_first_mut().unwrap();
            // `finish` rewrote the head's length last time round.
            head.copy_from_slice(&first);
            let mut run = Run::start(head).unwrap();
            for next in rest.iter() {
                if !run.try_append(head, next) {
                    break;
                }
            }
            black_box(run.finish(head));
        })
    });
    group.bench_function("checksum-64KiB", |b| b.iter(|| black_box(csum::fold(csum::sum(black_box(&packet), 0)))));
    group.finish();
}

criterion_group!(benches, offload);
criterion_main!(benches);
