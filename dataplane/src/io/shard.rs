//! One shard: a pinned thread's io_uring loop around an [`Engine`].
//!
//! A shard owns one io_uring ring (`SINGLE_ISSUER | DEFER_TASKRUN`, so
//! completions are only produced when the loop enters the kernel to wait for
//! them), one UDP socket of the port's reuseport group, one TUN queue (unless
//! relay-only), its end of the punt channel and its counters page. In flight,
//! at all times:
//!
//! - one multishot `RECVMSG` on the UDP socket, drawing from a provided-buffer
//!   ring (group 0);
//! - one multishot `READ` on the TUN queue, drawing from a second buffer ring
//!   (group 1), or, if the kernel refuses multishot reads on it,
//!   [`TUN_SINGLE_READS`] plain reads with buffer selection;
//! - one multishot `POLL_ADD` on the punt socket (messages to inject).
//!
//! Each iteration ([`Shard::run`]):
//! 1. one `io_uring_enter` submits everything queued by the previous iteration
//!    (sends, TUN writes, re-arms) and waits for at least one completion, or
//!    [`WAIT_TIMEOUT`] so the shutdown flag is seen;
//! 2. every completion is reaped: received packets go into an [`RxBatch`] per
//!    source, finished sends give their buffer back;
//! 3. the engine processes the batches and fills [`TxQueues`];
//! 4. outputs become `SENDMSG`/`WRITE` entries pointing into the same buffers
//!    (no copy), punts go out on the punt socket; buffers that got no output go
//!    back to their ring, and the rings' tails are published once;
//! 5. multishot operations that ended (`!more`, e.g. ENOBUFS) are re-armed and
//!    the batch's tallies are added to the shared counters.
//!
//! Buffers never leave the shard and nothing allocates per packet. A buffer is
//! with the kernel (in its ring), in the current batch, or in flight in a send;
//! the loop tracks which, so an engine bug (an output for a buffer that is not
//! in the batch, or two outputs for one buffer) is a counted drop, not memory
//! corruption.

use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use io_uring::types::{CancelBuilder, Fd, RecvMsgOut, SubmitArgs, Timespec};
use io_uring::{IoUring, cqueue, opcode, squeue};
use mycelium_common::time::Timestamp;
use tracing::{info, warn};

use super::bufring::{BufRing, Region};
use super::punt::{KIND_INJECT, PUNT_HEADER_LEN, PuntSendError, PuntSocket, decode_header};
use super::shm::CountersMap;
use super::sys::{from_sockaddr_bytes, to_sockaddr_in6};
use crate::batch::{PacketId, RxBatch, TxDest, TxEntry, TxQueues};
use crate::engine::Engine;
use crate::engine::counters::{DropReason, bump};

/// Submission queue entries per ring.
pub const SQ_ENTRIES: u32 = 1024;
/// Completion queue entries per ring.
pub const CQ_ENTRIES: u32 = 8192;
/// Receive buffers for the UDP socket (provided-buffer ring, group 0).
pub const UDP_BUFFERS: u16 = 2048;
/// Receive buffers for the TUN queue (group 1).
pub const TUN_BUFFERS: u16 = 1024;
/// Buffers for datagrams the control daemon injects.
pub const INJECT_BUFFERS: u16 = 64;
/// Size of each inject buffer (punt header included).
pub const INJECT_BUF_SIZE: usize = 4096;
/// Plain TUN reads kept in flight when multishot reads are refused.
pub const TUN_SINGLE_READS: usize = 64;
/// Longest wait for a completion, which bounds how late shutdown is seen.
pub const WAIT_TIMEOUT: Duration = Duration::from_millis(100);
/// Bytes reserved in front of TUN packets at least (room for a future virtio_net_hdr).
pub const MIN_TUN_HEADROOM: usize = 64;
/// Inject messages handled per iteration at most.
const MAX_INJECTS_PER_BATCH: usize = 64;

/// `struct io_uring_recvmsg_out`: four u32 in front of every multishot RECVMSG buffer.
const RECVMSG_OUT_LEN: usize = 16;
/// Room for the source address (a dual-stack socket always reports a sockaddr_in6).
const NAME_LEN: usize = std::mem::size_of::<libc::sockaddr_in6>();

const POOL_UDP: usize = 0;
const POOL_TUN: usize = 1;
const POOL_INJECT: usize = 2;

const OP_UDP_RECV: u64 = 1;
const OP_TUN_READ: u64 = 2;
const OP_SEND: u64 = 3;
const OP_TUN_WRITE: u64 = 4;
const OP_PUNT_POLL: u64 = 5;
const OP_CANCEL: u64 = 6;

const IN_KERNEL: u8 = 0;
const IN_BATCH: u8 = 1;
const IN_FLIGHT: u8 = 2;

fn user_data(op: u64, arg: u32) -> u64 {
    (op << 32) | u64::from(arg)
}

fn packet_id(pool: usize, bid: u16) -> PacketId {
    PacketId::from_raw(((pool as u32) << 16) | u32::from(bid))
}

fn split_id(id: PacketId) -> (usize, u16) {
    ((id.raw() >> 16) as usize, id.raw() as u16)
}

/// Everything a shard is given at start.
#[derive(Debug)]
pub struct ShardParts {
    /// Shard number (also its counters and punt file number).
    pub index: usize,
    /// Its socket of the port's reuseport group.
    pub udp: OwnedFd,
    /// Its TUN queue (`None`: relay-only).
    pub tun: Option<OwnedFd>,
    /// Its punt socket (`None`: no punt channel).
    pub punt: Option<PuntSocket>,
    /// Its counters page.
    pub counters: CountersMap,
    /// The TUN MTU, which sizes the buffers.
    pub mtu: usize,
}

#[derive(Debug, Clone, Copy)]
enum TunReads {
    None,
    Multishot { armed: bool, worked: bool },
    Single { in_flight: usize },
}

/// A send in flight: its msghdr, iovec and address must stay put until it completes.
struct TxSlot {
    msg: libc::msghdr,
    iov: libc::iovec,
    addr: libc::sockaddr_in6,
    id: PacketId,
}

#[derive(Default)]
struct Tally {
    udp_rx: (u64, u64),
    udp_tx: (u64, u64),
    tun_rx: (u64, u64),
    tun_tx: (u64, u64),
    punted: u64,
    injected: u64,
    buffers_exhausted: u64,
    batches: u64,
    drops: [u64; DropReason::COUNT],
}

/// One shard's loop state. Build it on the thread that runs it.
pub struct Shard<E: Engine> {
    // Dropped first: closing the ring ends every operation before the buffers go.
    ring: IoUring,
    index: usize,
    engine: E,
    udp: OwnedFd,
    tun: Option<OwnedFd>,
    punt: Option<PuntSocket>,
    counters: CountersMap,
    udp_pool: BufRing,
    tun_pool: Option<BufRing>,
    inject_slab: Region,
    inject_free: Vec<u16>,
    states: [Vec<u8>; 3],
    udp_peers: Vec<Option<SocketAddr>>,
    recv_msg: Box<libc::msghdr>,
    slots: Box<[TxSlot]>,
    free_slots: Vec<u32>,
    cqes: Vec<(u64, i32, u32)>,
    udp_batch: RxBatch,
    tun_batch: RxBatch,
    out: TxQueues,
    udp_armed: bool,
    tun_reads: TunReads,
    punt_armed: bool,
    inject_pending: bool,
    tally: Tally,
    errors_logged: u64,
}

impl<E: Engine> std::fmt::Debug for Shard<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shard").field("index", &self.index).finish_non_exhaustive()
    }
}

fn buffer_size(min: usize) -> usize {
    min.next_power_of_two().max(2048)
}

fn build_ring() -> io::Result<IoUring> {
    let deferred = IoUring::builder()
        .setup_single_issuer()
        .setup_defer_taskrun()
        .setup_submit_all()
        .setup_cqsize(CQ_ENTRIES)
        .build(SQ_ENTRIES);
    match deferred {
        Ok(ring) => Ok(ring),
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
            IoUring::builder().setup_cqsize(CQ_ENTRIES).build(SQ_ENTRIES)
        }
        Err(e) => Err(e),
    }
}

impl<E: Engine> Shard<E> {
    /// Sets up the ring, the buffer rings and the send slots.
    pub fn new(parts: ShardParts, engine: E) -> io::Result<Shard<E>> {
        let ring = build_ring()?;
        let udp_size =
            buffer_size(RECVMSG_OUT_LEN + NAME_LEN + parts.mtu + engine.tun_headroom() + engine.tun_tailroom() + 64);
        let udp_pool = BufRing::new(0, UDP_BUFFERS, udp_size, 0)?;
        udp_pool.register(&ring.submitter())?;
        let headroom = engine.tun_headroom().next_multiple_of(64).max(MIN_TUN_HEADROOM);
        let tun_pool = match parts.tun {
            Some(_) => {
                let size = buffer_size(headroom + parts.mtu + engine.tun_tailroom());
                let pool = BufRing::new(1, TUN_BUFFERS, size, headroom)?;
                pool.register(&ring.submitter())?;
                Some(pool)
            }
            None => None,
        };
        let inject_slab = Region::new(usize::from(INJECT_BUFFERS) * INJECT_BUF_SIZE)?;
        // Safety: msghdr is plain old data; all zeroes is valid.
        let mut recv_msg: Box<libc::msghdr> = Box::new(unsafe { std::mem::zeroed() });
        recv_msg.msg_namelen = NAME_LEN as libc::socklen_t;
        recv_msg.msg_controllen = 0;
        let slot_count = usize::from(UDP_BUFFERS) + usize::from(TUN_BUFFERS) + usize::from(INJECT_BUFFERS);
        let slots = (0..slot_count)
            .map(|_| TxSlot {
                // Safety: plain old data; all zeroes is valid.
                msg: unsafe { std::mem::zeroed() },
                iov: libc::iovec { iov_base: std::ptr::null_mut(), iov_len: 0 },
                addr: to_sockaddr_in6(SocketAddr::from(([0u8; 16], 0))),
                id: PacketId::from_raw(0),
            })
            .collect();
        let tun_reads =
            if parts.tun.is_some() { TunReads::Multishot { armed: false, worked: false } } else { TunReads::None };
        info!(
            shard = parts.index,
            udp_buffers = UDP_BUFFERS,
            udp_buf_size = udp_size,
            tun_buffers = if tun_pool.is_some() { TUN_BUFFERS } else { 0 },
            tun_buf_size = tun_pool.as_ref().map_or(0, |p| p.buf_size()),
            "shard ring ready"
        );
        Ok(Shard {
            ring,
            index: parts.index,
            engine,
            udp: parts.udp,
            tun: parts.tun,
            punt: parts.punt,
            counters: parts.counters,
            udp_pool,
            tun_pool,
            inject_slab,
            inject_free: (0..INJECT_BUFFERS).rev().collect(),
            states: [
                vec![IN_KERNEL; usize::from(UDP_BUFFERS)],
                vec![IN_KERNEL; usize::from(TUN_BUFFERS)],
                vec![IN_BATCH; usize::from(INJECT_BUFFERS)],
            ],
            udp_peers: vec![None; usize::from(UDP_BUFFERS)],
            recv_msg,
            slots,
            free_slots: (0..slot_count as u32).rev().collect(),
            cqes: Vec::with_capacity(CQ_ENTRIES as usize),
            udp_batch: RxBatch::with_capacity(usize::from(UDP_BUFFERS)),
            tun_batch: RxBatch::with_capacity(usize::from(TUN_BUFFERS)),
            out: TxQueues::with_capacity(usize::from(UDP_BUFFERS) + usize::from(TUN_BUFFERS)),
            udp_armed: false,
            tun_reads,
            punt_armed: false,
            inject_pending: false,
            tally: Tally::default(),
            errors_logged: 0,
        })
    }

    /// Runs until `shutdown` is set, then cancels everything in flight.
    pub fn run(&mut self, shutdown: &AtomicBool) -> io::Result<()> {
        self.rearm();
        let ts = Timespec::from(WAIT_TIMEOUT);
        let args = SubmitArgs::new().timespec(&ts);
        while !shutdown.load(Ordering::Relaxed) {
            let want = if self.inject_pending { 0 } else { 1 };
            match self.ring.submitter().submit_with_args(want, &args) {
                Ok(_) => {}
                Err(e) if matches!(e.raw_os_error(), Some(libc::ETIME | libc::EINTR | libc::EBUSY | libc::EAGAIN)) => {}
                Err(e) => return Err(e),
            }
            self.iteration();
        }
        self.drain();
        Ok(())
    }

    fn iteration(&mut self) {
        let reaped = self.reap();
        let now = Timestamp::now();
        self.engine.begin_batch(now);
        let generation = self.engine.snapshot_generation();
        let c = &self.counters.get().snapshot_generation;
        if c.load(Ordering::Relaxed) != generation {
            c.store(generation, Ordering::Relaxed);
        }
        if reaped == 0 && !self.inject_pending {
            self.rearm();
            return;
        }
        if !self.udp_batch.is_empty() {
            self.engine.process_from_underlay(now, &mut self.udp_batch, &mut self.out);
        }
        if !self.tun_batch.is_empty() {
            self.engine.process_from_tun(now, &mut self.tun_batch, &mut self.out);
        }
        self.emit_outputs();
        self.recycle_batches();
        if self.inject_pending {
            self.inject();
        }
        self.udp_pool.commit();
        if let Some(p) = &self.tun_pool {
            p.commit();
        }
        self.rearm();
        self.tally.batches += 1;
        self.flush_tally();
    }

    /// Moves every available completion into the batches; returns how many there were.
    fn reap(&mut self) -> usize {
        let mut cqes = std::mem::take(&mut self.cqes);
        cqes.clear();
        cqes.extend(self.ring.completion().take(CQ_ENTRIES as usize).map(|c| (c.user_data(), c.result(), c.flags())));
        for &(ud, res, flags) in &cqes {
            match ud >> 32 {
                OP_UDP_RECV => self.on_udp_recv(res, flags),
                OP_TUN_READ => self.on_tun_read(res, flags),
                OP_SEND | OP_TUN_WRITE => self.on_sent(ud, res),
                OP_PUNT_POLL => {
                    self.inject_pending = true;
                    if !cqueue::more(flags) {
                        self.punt_armed = false;
                    }
                }
                _ => {}
            }
        }
        let n = cqes.len();
        self.cqes = cqes;
        n
    }

    fn on_udp_recv(&mut self, res: i32, flags: u32) {
        if !cqueue::more(flags) {
            self.udp_armed = false;
        }
        let bid = cqueue::buffer_select(flags);
        if res < 0 {
            match -res {
                libc::ENOBUFS => self.tally.buffers_exhausted += 1,
                libc::ECANCELED => {}
                e => self.log_error("UDP receive", e),
            }
            if let Some(bid) = bid {
                self.give_back(packet_id(POOL_UDP, bid));
            }
            return;
        }
        let Some(bid) = bid.filter(|b| *b < UDP_BUFFERS) else { return };
        let id = packet_id(POOL_UDP, bid);
        self.states[POOL_UDP][usize::from(bid)] = IN_BATCH;
        let base = self.udp_pool.buf_ptr(bid);
        let size = self.udp_pool.buf_size();
        let len = (res as usize).min(size);
        // Safety: the kernel handed buffer `bid` to us with this completion and wrote `len` bytes
        // of it; nothing else accesses it until we give it back.
        let bytes = unsafe { std::slice::from_raw_parts(base, len) };
        let parsed = RecvMsgOut::parse(bytes, &self.recv_msg).ok().map(|m| {
            (
                m.is_payload_truncated(),
                from_sockaddr_bytes(m.name_data()),
                m.payload_data().as_ptr(),
                m.payload_data().len(),
            )
        });
        let Some((truncated, peer, payload, plen)) = parsed else {
            self.tally.drops[DropReason::Malformed as usize] += 1;
            self.give_back(id);
            return;
        };
        if truncated {
            self.tally.drops[DropReason::Truncated as usize] += 1;
            self.give_back(id);
            return;
        }
        self.tally.udp_rx.0 += 1;
        self.tally.udp_rx.1 += plen as u64;
        self.udp_peers[usize::from(bid)] = peer;
        let start = payload as usize - base as usize;
        // Safety: buffer `bid` is ours (see above) until `recycle_batches` or its send completes,
        // and no other batch entry uses it.
        if !unsafe { self.udp_batch.push(base, size, start, plen, peer, id) } {
            self.tally.drops[DropReason::TxQueueFull as usize] += 1;
            self.give_back(id);
        }
    }

    fn on_tun_read(&mut self, res: i32, flags: u32) {
        match &mut self.tun_reads {
            TunReads::Multishot { armed, .. } if !cqueue::more(flags) => *armed = false,
            TunReads::Single { in_flight } => *in_flight = in_flight.saturating_sub(1),
            _ => {}
        }
        let bid = cqueue::buffer_select(flags);
        if res <= 0 {
            match -res {
                libc::ENOBUFS => self.tally.buffers_exhausted += 1,
                libc::ECANCELED | libc::EAGAIN | 0 => {}
                libc::EINVAL | libc::EOPNOTSUPP | libc::EBADFD
                    if matches!(self.tun_reads, TunReads::Multishot { worked: false, .. }) =>
                {
                    info!(
                        shard = self.index,
                        error = -res,
                        "multishot read refused on the TUN; using {TUN_SINGLE_READS} reads in flight"
                    );
                    self.tun_reads = TunReads::Single { in_flight: 0 };
                }
                e => self.log_error("TUN read", e),
            }
            if let Some(bid) = bid {
                self.give_back(packet_id(POOL_TUN, bid));
            }
            return;
        }
        if let TunReads::Multishot { worked, .. } = &mut self.tun_reads {
            *worked = true;
        }
        let Some(pool) = &self.tun_pool else { return };
        let Some(bid) = bid.filter(|b| *b < TUN_BUFFERS) else { return };
        let id = packet_id(POOL_TUN, bid);
        self.states[POOL_TUN][usize::from(bid)] = IN_BATCH;
        let len = res as usize;
        self.tally.tun_rx.0 += 1;
        self.tally.tun_rx.1 += len as u64;
        let (base, size, start) = (pool.buf_ptr(bid), pool.buf_size(), pool.data_offset());
        // Safety: the kernel handed buffer `bid` to us with this completion; it is ours until
        // `recycle_batches` or its send completes, and no other batch entry uses it.
        if !unsafe { self.tun_batch.push(base, size, start, len, None, id) } {
            self.tally.drops[DropReason::Truncated as usize] += 1;
            self.give_back(id);
        }
    }

    fn on_sent(&mut self, ud: u64, res: i32) {
        let index = ud as u32 as usize;
        let Some(slot) = self.slots.get(index) else { return };
        let id = slot.id;
        let to_tun = ud >> 32 == OP_TUN_WRITE;
        if res < 0 {
            let reason = if to_tun { DropReason::TunWriteFailed } else { DropReason::SendFailed };
            self.tally.drops[reason as usize] += 1;
            if -res != libc::ECANCELED {
                self.log_error(if to_tun { "TUN write" } else { "UDP send" }, -res);
            }
        } else {
            let t = if to_tun { &mut self.tally.tun_tx } else { &mut self.tally.udp_tx };
            t.0 += 1;
            t.1 += res as u64;
        }
        self.free_slots.push(index as u32);
        self.give_back(id);
    }

    /// Returns a buffer to where it comes from (its ring, or the inject free list).
    fn give_back(&mut self, id: PacketId) {
        let (pool, bid) = split_id(id);
        match pool {
            POOL_UDP if bid < UDP_BUFFERS => {
                self.states[POOL_UDP][usize::from(bid)] = IN_KERNEL;
                self.udp_pool.give_back(bid);
            }
            POOL_TUN if bid < TUN_BUFFERS => {
                if let Some(p) = &mut self.tun_pool {
                    self.states[POOL_TUN][usize::from(bid)] = IN_KERNEL;
                    p.give_back(bid);
                }
            }
            POOL_INJECT if bid < INJECT_BUFFERS => {
                self.states[POOL_INJECT][usize::from(bid)] = IN_BATCH;
                self.inject_free.push(bid);
            }
            _ => {}
        }
    }

    /// The bytes of an output, if it names a buffer of the current batch and fits in it.
    fn output_bytes(&self, e: &TxEntry) -> Option<*mut u8> {
        let (pool, bid) = split_id(e.id);
        let (base, size) = match pool {
            POOL_UDP => (self.udp_pool.buf_ptr(bid % UDP_BUFFERS), self.udp_pool.buf_size()),
            POOL_TUN => {
                let p = self.tun_pool.as_ref()?;
                (p.buf_ptr(bid % TUN_BUFFERS), p.buf_size())
            }
            _ => return None,
        };
        let state = *self.states[pool].get(usize::from(bid))?;
        let end = (e.start as usize).checked_add(e.len as usize)?;
        (state == IN_BATCH && end <= size).then(|| {
            // Safety: start + len <= size, so the pointer stays inside buffer `bid`.
            unsafe { base.add(e.start as usize) }
        })
    }

    fn emit_outputs(&mut self) {
        let out = std::mem::replace(&mut self.out, TxQueues::with_capacity(0));
        for e in out.entries() {
            let Some(ptr) = self.output_bytes(e) else {
                self.tally.drops[DropReason::InvalidOutput as usize] += 1;
                continue;
            };
            match e.dest {
                TxDest::Udp(to) => {
                    self.queue_send(e.id, ptr, e.len, Some(to));
                }
                TxDest::Tun if self.tun.is_some() => {
                    self.queue_send(e.id, ptr, e.len, None);
                }
                TxDest::Tun => self.tally.drops[DropReason::NoTun as usize] += 1,
                TxDest::Punt(kind) => {
                    let (pool, bid) = split_id(e.id);
                    let from = if pool == POOL_UDP { self.udp_peers[usize::from(bid)] } else { None };
                    // Safety: `output_bytes` checked that the range lies in a buffer of this batch,
                    // which nothing else touches until `recycle_batches`.
                    let payload = unsafe { std::slice::from_raw_parts(ptr, e.len as usize) };
                    match self.punt.as_ref().map(|p| p.send(kind, from, payload)) {
                        Some(Ok(())) => self.tally.punted += 1,
                        Some(Err(PuntSendError::Full)) => self.tally.drops[DropReason::PuntFull as usize] += 1,
                        _ => self.tally.drops[DropReason::PuntUnavailable as usize] += 1,
                    }
                }
            }
        }
        for (sum, n) in self.tally.drops.iter_mut().zip(out.drops()) {
            *sum += n;
        }
        self.out = out;
        self.out.clear();
    }

    /// Queues a send of `len` bytes at `ptr` (inside buffer `id`) to `to`, or a TUN write when
    /// `to` is `None`. Returns whether it was queued; if not, the drop is counted and the buffer
    /// stays where it was.
    fn queue_send(&mut self, id: PacketId, ptr: *mut u8, len: u32, to: Option<SocketAddr>) -> bool {
        let Some(index) = self.free_slots.pop() else {
            self.tally.drops[DropReason::TxBusy as usize] += 1;
            return false;
        };
        let slot = &mut self.slots[index as usize];
        slot.id = id;
        let entry = match to {
            Some(to) => {
                slot.addr = to_sockaddr_in6(to);
                slot.iov = libc::iovec { iov_base: ptr.cast(), iov_len: len as usize };
                slot.msg.msg_name = (&mut slot.addr as *mut libc::sockaddr_in6).cast();
                slot.msg.msg_namelen = NAME_LEN as libc::socklen_t;
                slot.msg.msg_iov = &mut slot.iov;
                slot.msg.msg_iovlen = 1;
                opcode::SendMsg::new(Fd(self.udp.as_raw_fd()), &slot.msg).build().user_data(user_data(OP_SEND, index))
            }
            None => {
                let fd = self.tun.as_ref().map_or(-1, |t| t.as_raw_fd());
                opcode::Write::new(Fd(fd), ptr, len).build().user_data(user_data(OP_TUN_WRITE, index))
            }
        };
        if !self.push_sqe(&entry) {
            self.free_slots.push(index);
            self.tally.drops[DropReason::TxBusy as usize] += 1;
            return false;
        }
        let (pool, bid) = split_id(id);
        self.states[pool][usize::from(bid)] = IN_FLIGHT;
        true
    }

    /// Pushes one entry, flushing the submission queue to the kernel if it is full.
    fn push_sqe(&mut self, entry: &squeue::Entry) -> bool {
        for _ in 0..3 {
            // Safety: every pointer in the entries this loop builds (msghdr, iovec, address,
            // buffers) refers to memory owned by the shard that stays put and untouched until
            // the entry's completion is reaped (send slots are boxed, buffers are marked in flight).
            if unsafe { self.ring.submission().push(entry) }.is_ok() {
                return true;
            }
            if let Err(e) = self.ring.submit() {
                self.log_error("submit", e.raw_os_error().unwrap_or(0));
            }
        }
        false
    }

    /// Gives back every buffer of the batches that got no output, and empties them.
    fn recycle_batches(&mut self) {
        for pool in [POOL_UDP, POOL_TUN] {
            let batch = if pool == POOL_UDP { &mut self.udp_batch } else { &mut self.tun_batch };
            for id in batch.ids() {
                let (_, bid) = split_id(id);
                if self.states[pool][usize::from(bid)] != IN_BATCH {
                    continue;
                }
                self.states[pool][usize::from(bid)] = IN_KERNEL;
                match pool {
                    POOL_UDP => self.udp_pool.give_back(bid),
                    _ => {
                        if let Some(p) = &mut self.tun_pool {
                            p.give_back(bid);
                        }
                    }
                }
            }
            batch.clear();
        }
    }

    /// Sends the datagrams the control daemon queued on the punt socket.
    fn inject(&mut self) {
        self.inject_pending = false;
        let Some(punt) = self.punt.take() else { return };
        self.inject_pending = self.inject_from(&punt);
        self.punt = Some(punt);
    }

    /// Drains up to [`MAX_INJECTS_PER_BATCH`] messages; returns whether more may be waiting.
    fn inject_from(&mut self, punt: &PuntSocket) -> bool {
        for _ in 0..MAX_INJECTS_PER_BATCH {
            let Some(bid) = self.inject_free.pop() else {
                // No buffer free: take the message off the queue anyway, and count it.
                let mut scratch = [0u8; 1];
                match punt.recv(&mut scratch) {
                    Ok(Some(_)) => self.tally.drops[DropReason::TxBusy as usize] += 1,
                    _ => return false,
                }
                continue;
            };
            // Safety: inject buffer `bid` is on the free list, so nothing else uses it, and the
            // offset stays inside the slab.
            let buf = unsafe {
                std::slice::from_raw_parts_mut(
                    self.inject_slab.as_ptr().add(usize::from(bid) * INJECT_BUF_SIZE),
                    INJECT_BUF_SIZE,
                )
            };
            let n = match punt.recv(buf) {
                Ok(Some(n)) => n,
                Ok(None) => {
                    self.inject_free.push(bid);
                    return false;
                }
                Err(e) => {
                    self.inject_free.push(bid);
                    self.log_error("punt receive", e.raw_os_error().unwrap_or(0));
                    return false;
                }
            };
            let to = match decode_header(&buf[..n.min(INJECT_BUF_SIZE)]) {
                Some((KIND_INJECT, to, _)) if n <= INJECT_BUF_SIZE && n > PUNT_HEADER_LEN => to,
                _ => {
                    self.inject_free.push(bid);
                    self.tally.drops[DropReason::InjectMalformed as usize] += 1;
                    continue;
                }
            };
            let ptr = buf[PUNT_HEADER_LEN..].as_mut_ptr();
            if self.queue_send(packet_id(POOL_INJECT, bid), ptr, (n - PUNT_HEADER_LEN) as u32, Some(to)) {
                self.tally.injected += 1;
            } else {
                self.inject_free.push(bid);
            }
        }
        true
    }

    /// Re-arms the multishot operations that ended.
    fn rearm(&mut self) {
        if !self.udp_armed {
            let e = opcode::RecvMsgMulti::new(Fd(self.udp.as_raw_fd()), &*self.recv_msg, self.udp_pool.bgid())
                .build()
                .user_data(user_data(OP_UDP_RECV, 0));
            self.udp_armed = self.push_sqe(&e);
        }
        if let (Some(tun), Some(pool)) = (&self.tun, &self.tun_pool) {
            let (fd, bgid, len) = (tun.as_raw_fd(), pool.bgid(), (pool.buf_size() - pool.data_offset()) as u32);
            match self.tun_reads {
                TunReads::Multishot { armed: false, worked } => {
                    let e = opcode::ReadMulti::new(Fd(fd), 0, bgid).build().user_data(user_data(OP_TUN_READ, 0));
                    let armed = self.push_sqe(&e);
                    self.tun_reads = TunReads::Multishot { armed, worked };
                }
                TunReads::Single { mut in_flight } => {
                    while in_flight < TUN_SINGLE_READS {
                        let e = opcode::Read::new(Fd(fd), std::ptr::null_mut(), len)
                            .buf_group(bgid)
                            .build()
                            .flags(squeue::Flags::BUFFER_SELECT)
                            .user_data(user_data(OP_TUN_READ, 0));
                        if !self.push_sqe(&e) {
                            break;
                        }
                        in_flight += 1;
                    }
                    self.tun_reads = TunReads::Single { in_flight };
                }
                _ => {}
            }
        }
        if let Some(punt) = &self.punt
            && !self.punt_armed
        {
            let e = opcode::PollAdd::new(Fd(punt.raw_fd()), libc::POLLIN as u32)
                .multi(true)
                .build()
                .user_data(user_data(OP_PUNT_POLL, 0));
            self.punt_armed = self.push_sqe(&e);
        }
    }

    fn outstanding(&self) -> bool {
        let sends = self.free_slots.len() < self.slots.len();
        let tun = match self.tun_reads {
            TunReads::Multishot { armed, .. } => armed,
            TunReads::Single { in_flight } => in_flight > 0,
            TunReads::None => false,
        };
        sends || tun || self.udp_armed || self.punt_armed
    }

    /// Cancels every operation and reaps until none is left (bounded to about a second), so
    /// the kernel no longer refers to the buffers when they are unmapped.
    fn drain(&mut self) {
        let cancel = opcode::AsyncCancel2::new(CancelBuilder::any()).build().user_data(user_data(OP_CANCEL, 0));
        // Stop re-arming: mark everything as not wanted before cancelling.
        self.push_sqe(&cancel);
        let ts = Timespec::from(Duration::from_millis(20));
        let args = SubmitArgs::new().timespec(&ts);
        for _ in 0..50 {
            let _ = self.ring.submitter().submit_with_args(1, &args);
            self.reap();
            self.recycle_batches();
            if !self.outstanding() {
                break;
            }
        }
        self.flush_tally();
    }

    fn log_error(&mut self, what: &str, errno: i32) {
        self.errors_logged += 1;
        if self.errors_logged.is_power_of_two() {
            warn!(
                shard = self.index,
                errno,
                count = self.errors_logged,
                "{what} failed: {}",
                io::Error::from_raw_os_error(errno)
            );
        }
    }

    fn flush_tally(&mut self) {
        let t = std::mem::take(&mut self.tally);
        let c = self.counters.get();
        for (counter, n) in [
            (&c.underlay_rx_packets, t.udp_rx.0),
            (&c.underlay_rx_bytes, t.udp_rx.1),
            (&c.underlay_tx_packets, t.udp_tx.0),
            (&c.underlay_tx_bytes, t.udp_tx.1),
            (&c.tun_rx_packets, t.tun_rx.0),
            (&c.tun_rx_bytes, t.tun_rx.1),
            (&c.tun_tx_packets, t.tun_tx.0),
            (&c.tun_tx_bytes, t.tun_tx.1),
            (&c.punted, t.punted),
            (&c.injected, t.injected),
            (&c.batches, t.batches),
            (&c.buffers_exhausted, t.buffers_exhausted),
        ] {
            if n != 0 {
                bump(counter, n);
            }
        }
        c.add_drops(&t.drops);
    }
}
