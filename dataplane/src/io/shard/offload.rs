//! The shard's side of the offloads: cutting received buffers into batch
//! entries, and grouping outputs into GSO sends and coalesced TUN writes.
//! The byte work itself is `crate::offload`'s (pure, tested there).

use super::*;
use crate::offload::OffloadError;
use crate::offload::coalesce::Run;
use crate::offload::segment::{finish_checksum, segment_in_place};
use crate::offload::vnet::{GsoType, VNET_HEADER_LEN, VnetHeader};

/// How a received buffer is cut into the entries of a batch: segment `i`
/// is `offset + i * stride`, `stride` bytes long but the last, `last_cap`.
#[derive(Clone, Copy, Debug)]
pub(super) struct Geometry {
    pub(super) offset: usize,
    pub(super) stride: usize,
    pub(super) count: usize,
    pub(super) last_cap: usize,
}

impl Geometry {
    pub(super) fn whole(size: usize) -> Geometry {
        Geometry { offset: 0, stride: size, count: 1, last_cap: size }
    }

    /// Segment `seg`'s offset and length in the buffer.
    pub(super) fn sub(&self, seg: usize) -> Option<(usize, usize)> {
        (seg < self.count)
            .then(|| (self.offset + seg * self.stride, if seg + 1 == self.count { self.last_cap } else { self.stride }))
    }
}

/// Offloads a shard runs with (what the kernel granted).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Offloads {
    /// The TUN's.
    pub tun: TunOffload,
    /// The UDP socket's.
    pub udp: crate::io::socket::UdpOffload,
}

fn offload_drop(e: OffloadError) -> DropReason {
    match e {
        OffloadError::Unsupported => DropReason::OffloadUnsupported,
        _ => DropReason::OffloadMalformed,
    }
}

/// Whether two ids name the same buffer.
fn same_buffer(a: PacketId, b: PacketId) -> bool {
    split_id(a) == split_id(b)
}

impl<E: Engine> Shard<E> {
    /// A read from a vnet-header TUN: `len` bytes at `start` of buffer `bid`
    /// (`size` bytes at `base`). A plain packet enters the batch whole (its
    /// checksum finished if flagged); a super-packet is split in place and
    /// each segment enters the batch on its own.
    pub(super) fn read_vnet(&mut self, bid: u16, base: *mut u8, size: usize, start: usize, len: usize) {
        let id = packet_id(POOL_TUN, bid);
        let end = start.saturating_add(len).min(size);
        // Safety: the kernel handed buffer `bid` to us with this completion; nothing else
        // touches it until it is given back, and this slice ends before the batch gets it.
        let buf = unsafe { std::slice::from_raw_parts_mut(base, size) };
        let vnet = match VnetHeader::parse(&buf[start..end]) {
            Ok(v) => v,
            Err(e) => {
                self.tally.drops[offload_drop(e) as usize] += 1;
                return self.give_back(id);
            }
        };
        let packet = start + VNET_HEADER_LEN..end;
        self.tally.tun_rx.1 += packet.len() as u64;
        if vnet.gso_type == GsoType::None {
            if vnet.needs_csum() {
                let (cs, co) = (usize::from(vnet.csum_start), usize::from(vnet.csum_offset));
                if let Err(e) = finish_checksum(&mut buf[packet.clone()], cs, co) {
                    self.tally.drops[offload_drop(e) as usize] += 1;
                    return self.give_back(id);
                }
            }
            self.tally.tun_rx.0 += 1;
            self.set_geometry(POOL_TUN, bid, Geometry::whole(size));
            // Safety: as above; the batch now owns the buffer until `recycle_batches`.
            if !unsafe { self.tun_batch.push(base, size, packet.start, packet.len(), None, id) } {
                self.tally.drops[DropReason::TxQueueFull as usize] += 1;
                self.give_back(id);
            }
            return;
        }
        let segments = match segment_in_place(buf, packet, &vnet, 0, &self.layout) {
            Ok(s) => s,
            Err(e) => {
                self.tally.drops[offload_drop(e) as usize] += 1;
                return self.give_back(id);
            }
        };
        let last = segments.count - 1;
        let last_cap = segments.inner(last).end + self.layout.tailroom - (segments.out_start + last * segments.stride);
        let geo = Geometry { offset: segments.out_start, stride: segments.stride, count: segments.count, last_cap };
        self.set_geometry(POOL_TUN, bid, geo);
        self.tally.tun_rx.0 += segments.count as u64;
        let mut pushed = false;
        for i in 0..segments.count {
            let inner = segments.inner(i);
            let Some((offset, cap)) = geo.sub(i) else { break };
            // Safety: segment i is `cap` bytes at `offset` inside buffer `bid` (the split checked the
            // end against the buffer), disjoint from every other segment; the batch owns it until
            // `recycle_batches`.
            let ok = unsafe {
                self.tun_batch.push(
                    base.add(offset),
                    cap,
                    inner.start - offset,
                    inner.len(),
                    None,
                    seg_packet_id(POOL_TUN, bid, i),
                )
            };
            if ok {
                pushed = true;
            } else {
                self.tally.drops[DropReason::TxQueueFull as usize] += 1;
            }
        }
        if !pushed {
            self.give_back(id);
        }
    }

    /// A GRO receive: `len` bytes of datagrams, `stride` bytes each but the last, at
    /// `start` of UDP buffer `bid`; each enters the batch on its own.
    pub(super) fn split_gro(&mut self, bid: u16, start: usize, len: usize, stride: usize, peer: Option<SocketAddr>) {
        let id = packet_id(POOL_UDP, bid);
        let count = len.div_ceil(stride);
        if count > MAX_SEGMENTS {
            self.tally.drops[DropReason::Truncated as usize] += count as u64;
            return self.give_back(id);
        }
        let geo = Geometry { offset: start, stride, count, last_cap: len - (count - 1) * stride };
        self.set_geometry(POOL_UDP, bid, geo);
        let base = self.udp_pool.buf_ptr(bid);
        let mut pushed = false;
        for i in 0..count {
            let Some((offset, cap)) = geo.sub(i) else { break };
            self.tally.udp_rx.0 += 1;
            self.tally.udp_rx.1 += cap as u64;
            // Safety: datagram i is `cap` bytes at `offset` inside buffer `bid` (offset + cap <=
            // start + len, which the receive wrote), disjoint from the others; the batch owns it
            // until `recycle_batches`.
            let ok =
                unsafe { self.udp_batch.push(base.add(offset), cap, 0, cap, peer, seg_packet_id(POOL_UDP, bid, i)) };
            if ok {
                pushed = true;
            } else {
                self.tally.drops[DropReason::TxQueueFull as usize] += 1;
            }
        }
        if !pushed {
            self.give_back(id);
        }
    }

    /// Sends `entries[0]` (whose bytes are at `ptr`) to `to`, with as many of the entries
    /// right after it as can share one GSO send: same buffer and endpoint, back to back
    /// in memory, all as long as the first but the last, which may be shorter. Returns how
    /// many entries it consumed.
    pub(super) fn emit_udp(&mut self, entries: &[TxEntry], ptr: *mut u8, to: SocketAddr) -> usize {
        let first = entries[0];
        let size = first.len as usize;
        let (mut n, mut total, mut prev_len) = (1, size, size);
        if self.gso_on && size > 0 && size <= usize::from(u16::MAX) {
            while n < entries.len() && n < MAX_GSO_SEGMENTS && prev_len == size {
                let f = entries[n];
                let len = f.len as usize;
                if f.dest != first.dest || !same_buffer(f.id, first.id) || len == 0 || len > size {
                    break;
                }
                if total + len > MAX_GSO_BYTES || self.output_bytes(&f) != Some(ptr.wrapping_add(total)) {
                    break;
                }
                if !self.claim(f.id) {
                    break;
                }
                total += len;
                prev_len = len;
                n += 1;
            }
        }
        let segment = if n > 1 { size as u16 } else { 0 };
        self.queue_udp(first.id, ptr, total, to, segment, n);
        n
    }

    /// Writes `entries[0]` (whose bytes are at `ptr`) to the TUN, merged with the entries
    /// right after it that continue its TCP flow (see `crate::offload::coalesce`) when the
    /// TUN takes vnet headers. Returns how many entries it consumed.
    pub(super) fn emit_tun(&mut self, entries: &[TxEntry], ptr: *mut u8) -> usize {
        let first = entries[0];
        let len = first.len as usize;
        if !self.offload.tun.vnet_hdr {
            self.queue_tun(first.id, None, &[(ptr, len)], 0);
            return 1;
        }
        // Safety: `output_bytes` checked the range is inside a segment of a buffer of this
        // batch, which nothing else touches until `recycle_batches`; later parts are checked
        // to start past the end of the previous one, so no two slices overlap.
        let head = unsafe { std::slice::from_raw_parts_mut(ptr, len) };
        let Some(mut run) = Run::start(head) else {
            self.queue_tun(first.id, Some(&VnetHeader::PLAIN), &[(ptr, len)], 0);
            return 1;
        };
        let mut parts = [(std::ptr::null_mut::<u8>(), 0usize); MAX_RUN];
        parts[0] = (ptr, len);
        let mut n = 1;
        while n < entries.len() && n < MAX_RUN {
            let f = entries[n];
            if f.dest != TxDest::Tun || !same_buffer(f.id, first.id) {
                break;
            }
            let Some(p) = self.output_bytes(&f) else { break };
            let (prev, prev_len) = parts[n - 1];
            if (p as usize) < prev as usize + prev_len {
                break;
            }
            // Safety: as above; this range starts after every earlier part.
            let next = unsafe { std::slice::from_raw_parts(p, f.len as usize) };
            // Checked before appending: the run counts what it accepts.
            if self.claimed(f.id) || !run.try_append(head, next) {
                break;
            }
            self.claim(f.id);
            parts[n] = (p, f.len as usize);
            n += 1;
        }
        if n == 1 {
            self.queue_tun(first.id, Some(&VnetHeader::PLAIN), &parts[..1], 0);
        } else {
            let vnet = run.finish(head);
            self.queue_tun(first.id, Some(&vnet), &parts[..n], run.header_len());
        }
        n
    }
}
