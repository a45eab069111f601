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

mod rx;
mod tx;

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
/// How often a shard publishes its transit table (when it changed).
const TRANSIT_PUBLISH_INTERVAL: Duration = Duration::from_secs(1);
/// Bytes reserved in front of TUN packets at least (room for a future virtio_net_hdr).
pub const MIN_TUN_HEADROOM: usize = 64;
/// How long punts are counted as unavailable, without trying, after a send found no daemon.
pub const PUNT_RETRY: Duration = Duration::from_millis(100);
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
    /// Where to publish the engine's transit table (`None`: nowhere).
    pub transit_file: Option<std::path::PathBuf>,
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
    transit_file: Option<std::path::PathBuf>,
    transit_flushed_at: Timestamp,
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
    punt_retry_at: Timestamp,
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
            transit_file: parts.transit_file,
            transit_flushed_at: Timestamp::ZERO,
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
            punt_retry_at: Timestamp::ZERO,
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
            self.publish_transit();
        }
        self.drain();
        if let Some(path) = &self.transit_file {
            let _ = std::fs::remove_file(path);
        }
        Ok(())
    }

    /// Writes the engine's transit table for the control daemon, at most
    /// once a second and only when it changed: a temporary file renamed over
    /// the live one, so a reader sees a whole table.
    fn publish_transit(&mut self) {
        let now = Timestamp::now();
        if now.saturating_since(self.transit_flushed_at) < TRANSIT_PUBLISH_INTERVAL {
            return;
        }
        self.transit_flushed_at = now;
        let (Some(path), Some(table)) = (&self.transit_file, self.engine.transit()) else { return };
        if !table.take_dirty() {
            return;
        }
        let tmp = path.with_extension("transit.tmp");
        let written = std::fs::write(&tmp, table.encode()).and_then(|()| std::fs::rename(&tmp, path));
        if let Err(e) = written {
            tracing::debug!(shard = self.index, "publishing transit counters: {e}");
        }
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
        self.emit_outputs(now);
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
        if let Some(links) = self.engine.links() {
            links.take_dirty(|slot, id, counts| c.links[slot].publish(id, counts));
        }
    }
}
