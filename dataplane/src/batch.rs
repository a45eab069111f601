//! The two types the shard loop and the engine hand each other once per batch.
//!
//! - [`RxBatch`]: the packets the loop reaped from one source (the UDP socket or
//!   the TUN queue). Each packet sits in a pooled buffer owned by the loop; the
//!   engine gets a mutable view of the *whole* buffer (headroom, packet,
//!   tailroom), so it can prepend a header or append an AEAD tag in place.
//! - [`TxQueues`]: the engine's verdicts. For each packet it either queues an
//!   output (a byte range of that same buffer, sent to a UDP endpoint, written
//!   to the TUN, or punted to the control daemon) or drops it with a
//!   [`DropReason`]. Packets that get no output are recycled by the loop.
//!
//! Nothing here allocates after construction: both types are created once per
//! shard with a fixed capacity and cleared after every batch.
//!
//! The engine never sees io_uring: only the loop (`crate::io`) fills an
//! [`RxBatch`] (through the `unsafe` [`RxBatch::push`]) and turns [`TxQueues`]
//! into submissions.

use std::fmt;
use std::net::SocketAddr;
use std::ops::Range;

use crate::engine::counters::DropReason;

/// Which pooled buffer a packet lives in. Opaque to the engine: it only hands
/// the id back in its outputs.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct PacketId(pub(crate) u32);

impl PacketId {
    /// An id from its raw value (the loop's encoding; tests use any value).
    pub const fn from_raw(raw: u32) -> Self {
        PacketId(raw)
    }

    /// The raw value.
    pub const fn raw(self) -> u32 {
        self.0
    }
}

/// Why a packet goes to the control daemon over the punt channel.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[repr(u8)]
pub enum PuntKind {
    /// A control packet (hello, update, handshake...) received on the underlay.
    ControlFromUnderlay = 1,
    /// A packet from the TUN whose destination has no route in the snapshot.
    NoRoute = 2,
    /// A packet from the TUN to a destination with a route but no session:
    /// the daemon starts an end-to-end handshake.
    NoSession = 4,
}

/// Where one output goes.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum TxDest {
    /// A datagram to this underlay endpoint, from the node's port.
    Udp(SocketAddr),
    /// A packet written to this shard's TUN queue.
    Tun,
    /// A message to the control daemon over the punt channel.
    Punt(PuntKind),
}

/// One output: bytes `start..start + len` of packet `id`'s buffer, to `dest`.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct TxEntry {
    /// The buffer the bytes are in.
    pub id: PacketId,
    /// Offset of the first byte, from the start of the whole buffer.
    pub start: u32,
    /// Number of bytes.
    pub len: u32,
    /// Where they go.
    pub dest: TxDest,
}

#[derive(Clone, Copy)]
struct RxEntry {
    base: *mut u8,
    cap: u32,
    start: u32,
    len: u32,
    peer: Option<SocketAddr>,
    id: PacketId,
}

/// The packets of one batch from one source, each in its own pooled buffer.
pub struct RxBatch {
    entries: Vec<RxEntry>,
}

impl fmt::Debug for RxBatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RxBatch").field("len", &self.entries.len()).finish()
    }
}

impl RxBatch {
    /// An empty batch that holds at most `capacity` packets.
    pub fn with_capacity(capacity: usize) -> Self {
        RxBatch { entries: Vec::with_capacity(capacity) }
    }

    /// Adds a packet: the whole buffer is `cap` bytes at `base`, the packet is
    /// `start..start + len` of it. Returns `false` (and adds nothing) when the
    /// batch is full or the range does not fit in the buffer.
    ///
    /// # Safety
    ///
    /// `base..base + cap` must be valid for reads and writes, must not overlap
    /// any other buffer in this batch, and nothing else (this thread, another
    /// thread or the kernel) may access it until [`RxBatch::clear`] is called.
    pub unsafe fn push(
        &mut self,
        base: *mut u8,
        cap: usize,
        start: usize,
        len: usize,
        peer: Option<SocketAddr>,
        id: PacketId,
    ) -> bool {
        let fits = start.checked_add(len).is_some_and(|end| end <= cap) && u32::try_from(cap).is_ok();
        if !fits || self.entries.len() == self.entries.capacity() {
            return false;
        }
        // The casts cannot truncate: cap fits in u32 and start + len <= cap.
        self.entries.push(RxEntry { base, cap: cap as u32, start: start as u32, len: len as u32, peer, id });
        true
    }

    /// Forgets every packet (their buffers go back to the loop).
    pub fn clear(&mut self) {
        self.entries.clear();
    }

    /// Number of packets.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the batch holds no packet.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The ids of the packets, in order.
    pub fn ids(&self) -> impl Iterator<Item = PacketId> + '_ {
        self.entries.iter().map(|e| e.id)
    }

    /// Packet `index`, or `None` past the end.
    pub fn packet(&mut self, index: usize) -> Option<RxPacket<'_>> {
        let e = *self.entries.get(index)?;
        Some(Self::view(e))
    }

    /// Every packet, in order, each with a mutable view of its own buffer.
    pub fn packets_mut(&mut self) -> impl Iterator<Item = RxPacket<'_>> + '_ {
        self.entries.iter().map(|e| Self::view(*e))
    }

    fn view<'a>(e: RxEntry) -> RxPacket<'a> {
        // Safety: `push`'s contract makes base..base + cap valid, disjoint from
        // every other buffer of the batch and untouched by anyone else until
        // `clear`, which needs `&mut self` and so cannot run while the returned
        // view (borrowing the batch) is alive.
        let buf = unsafe { std::slice::from_raw_parts_mut(e.base, e.cap as usize) };
        RxPacket { buf, start: e.start as usize, len: e.len as usize, peer: e.peer, id: e.id }
    }
}

/// One received packet and its whole buffer.
#[derive(Debug)]
pub struct RxPacket<'a> {
    buf: &'a mut [u8],
    start: usize,
    len: usize,
    peer: Option<SocketAddr>,
    id: PacketId,
}

impl RxPacket<'_> {
    /// The id to hand back in outputs.
    pub fn id(&self) -> PacketId {
        self.id
    }

    /// The underlay endpoint it came from (`None` for TUN packets).
    pub fn peer(&self) -> Option<SocketAddr> {
        self.peer
    }

    /// The packet's range in the whole buffer.
    pub fn range(&self) -> Range<usize> {
        self.start..self.start + self.len
    }

    /// The packet's bytes.
    pub fn data(&self) -> &[u8] {
        &self.buf[self.start..self.start + self.len]
    }

    /// The packet's bytes, writable.
    pub fn data_mut(&mut self) -> &mut [u8] {
        &mut self.buf[self.start..self.start + self.len]
    }

    /// The whole buffer: `headroom()` bytes, the packet, then `tailroom()` bytes.
    pub fn buffer_mut(&mut self) -> &mut [u8] {
        self.buf
    }

    /// Free bytes in front of the packet.
    pub fn headroom(&self) -> usize {
        self.start
    }

    /// Free bytes after the packet.
    pub fn tailroom(&self) -> usize {
        self.buf.len() - self.start - self.len
    }
}

/// The engine's verdicts for one batch: outputs in order, plus drop tallies.
#[derive(Debug)]
pub struct TxQueues {
    entries: Vec<TxEntry>,
    drops: [u64; DropReason::COUNT],
}

impl TxQueues {
    /// Empty queues that hold at most `capacity` outputs.
    pub fn with_capacity(capacity: usize) -> Self {
        TxQueues { entries: Vec::with_capacity(capacity), drops: [0; DropReason::COUNT] }
    }

    /// Queues `range` of packet `id`'s buffer as a datagram to `to`.
    pub fn send_udp(&mut self, id: PacketId, range: Range<usize>, to: SocketAddr) {
        self.push(id, range, TxDest::Udp(to));
    }

    /// Queues `range` of packet `id`'s buffer for the TUN.
    pub fn write_tun(&mut self, id: PacketId, range: Range<usize>) {
        self.push(id, range, TxDest::Tun);
    }

    /// Queues `range` of packet `id`'s buffer for the control daemon.
    pub fn punt(&mut self, id: PacketId, range: Range<usize>, kind: PuntKind) {
        self.push(id, range, TxDest::Punt(kind));
    }

    /// Drops packet `id`, counting it under `reason`. Its buffer is recycled.
    pub fn drop_packet(&mut self, _id: PacketId, reason: DropReason) {
        self.count_drop(reason);
    }

    /// Counts one dropped packet under `reason` (for drops the loop itself sees).
    pub fn count_drop(&mut self, reason: DropReason) {
        self.drops[reason as usize] += 1;
    }

    fn push(&mut self, id: PacketId, range: Range<usize>, dest: TxDest) {
        let (Ok(start), Ok(len)) = (u32::try_from(range.start), u32::try_from(range.len())) else {
            self.count_drop(DropReason::InvalidOutput);
            return;
        };
        if range.start > range.end {
            self.count_drop(DropReason::InvalidOutput);
        } else if self.entries.len() == self.entries.capacity() {
            self.count_drop(DropReason::TxQueueFull);
        } else {
            self.entries.push(TxEntry { id, start, len, dest });
        }
    }

    /// The queued outputs, in the order the engine queued them.
    pub fn entries(&self) -> &[TxEntry] {
        &self.entries
    }

    /// Drops counted so far, indexed by `DropReason as usize`.
    pub fn drops(&self) -> &[u64; DropReason::COUNT] {
        &self.drops
    }

    /// Forgets all outputs and zeroes the drop tallies.
    pub fn clear(&mut self) {
        self.entries.clear();
        self.drops = [0; DropReason::COUNT];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_lends_each_buffer_with_its_headroom_and_tailroom() {
        let mut a = vec![0u8; 64];
        let mut b = vec![0u8; 32];
        let mut batch = RxBatch::with_capacity(2);
        // Safety: two distinct live vectors, untouched until the batch is dropped.
        unsafe {
            assert!(batch.push(a.as_mut_ptr(), a.len(), 16, 10, None, PacketId(1)));
            assert!(batch.push(b.as_mut_ptr(), b.len(), 0, 32, None, PacketId(2)));
        }
        let mut p = batch.packet(0).unwrap();
        assert_eq!((p.headroom(), p.data().len(), p.tailroom()), (16, 10, 38));
        p.data_mut().fill(7);
        assert!(batch.packet(2).is_none());
        let ids: Vec<_> = batch.ids().collect();
        assert_eq!(ids, [PacketId(1), PacketId(2)]);
        batch.clear();
        assert_eq!(&a[16..26], &[7; 10]);
        assert_eq!(a[15], 0);
    }

    #[test]
    fn a_batch_refuses_packets_past_its_capacity_or_outside_their_buffer() {
        let mut a = [0u8; 8];
        let mut batch = RxBatch::with_capacity(1);
        // Safety: one live array, untouched until the batch is dropped.
        unsafe {
            assert!(!batch.push(a.as_mut_ptr(), 8, 4, 5, None, PacketId(0)));
            assert!(!batch.push(a.as_mut_ptr(), 8, usize::MAX, 2, None, PacketId(0)));
            assert!(batch.push(a.as_mut_ptr(), 8, 0, 8, None, PacketId(0)));
            assert!(!batch.push(a.as_mut_ptr(), 8, 0, 8, None, PacketId(0)));
        }
        assert_eq!(batch.len(), 1);
    }

    #[test]
    fn tx_queues_count_overflow_and_bad_ranges_as_drops() {
        let mut out = TxQueues::with_capacity(1);
        out.write_tun(PacketId(0), 0..10);
        out.write_tun(PacketId(1), 0..10);
        #[allow(clippy::reversed_empty_ranges)]
        out.write_tun(PacketId(2), 10..0);
        out.drop_packet(PacketId(3), DropReason::NoRoute);
        assert_eq!(out.entries().len(), 1);
        assert_eq!(out.drops()[DropReason::TxQueueFull as usize], 1);
        assert_eq!(out.drops()[DropReason::InvalidOutput as usize], 1);
        assert_eq!(out.drops()[DropReason::NoRoute as usize], 1);
        out.clear();
        assert!(out.entries().is_empty());
        assert_eq!(out.drops().iter().sum::<u64>(), 0);
    }
}
