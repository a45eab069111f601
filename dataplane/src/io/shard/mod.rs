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
//! Offloads (see `crate::offload` and the [`offload`] submodule): with a
//! vnet-header TUN, a super-packet read from the TUN is split in place into
//! segments that enter the TUN batch one by one; with UDP GRO, a receive
//! holding many datagrams enters the UDP batch as one entry per datagram. On
//! the way out, consecutive same-size sends of one buffer to one endpoint go
//! as one `SENDMSG` with a `UDP_SEGMENT` cmsg, and consecutive TUN writes of
//! one TCP flow from one buffer as one `WRITEV` of a GSO super-packet.
//!
//! Buffers never leave the shard and nothing allocates per packet. A buffer is
//! with the kernel (in its ring), in the current batch, or out of the batch
//! with sends still in flight (counted per buffer, since segments of one
//! buffer may go out in several sends); the loop tracks which, so an engine
//! bug (an output for a buffer that is not in the batch, or outside its
//! segment) is a counted drop, not memory corruption.

use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use io_uring::types::{CancelBuilder, Fd, RecvMsgOut, SubmitArgs, Timespec};
use io_uring::{IoUring, cqueue, opcode, squeue};
use mycelium_common::time::Timestamp;
use tracing::{info, warn};

mod offload;
mod rx;
mod tx;
mod wait;

use offload::Geometry;
pub use offload::Offloads;

use super::bufring::{BufRing, Region};
use super::punt::{KIND_INJECT, PUNT_HEADER_LEN, PuntSendError, PuntSocket, decode_header};
use super::shm::CountersMap;
use super::sys::{from_sockaddr_bytes, to_sockaddr_in6};
use super::tun::TunOffload;
use crate::batch::{PacketId, RxBatch, TxDest, TxEntry, TxQueues};
use crate::engine::Engine;
use crate::engine::counters::{DropReason, bump};
use crate::offload::coalesce::MAX_RUN;
use crate::offload::segment::Layout;

/// Submission queue entries per ring.
pub const SQ_ENTRIES: u32 = 1024;
/// Completion queue entries per ring.
pub const CQ_ENTRIES: u32 = 8192;
/// Receive buffers for the UDP socket (provided-buffer ring, group 0).
pub const UDP_BUFFERS: u16 = 2048;
/// Receive buffers for the TUN queue (group 1).
pub const TUN_BUFFERS: u16 = 1024;
/// Receive buffers for the UDP socket with GRO (each takes up to 64 KiB).
pub const UDP_GRO_BUFFERS: u16 = 512;
/// Size of a GRO receive buffer: room for 64 KiB of datagrams, the recvmsg
/// header, the source address and the GRO cmsg, in whole pages.
pub const UDP_GRO_BUF_SIZE: usize = 68 * 1024;
/// Receive buffers for a vnet-header TUN (each takes a super-packet).
pub const TUN_VNET_BUFFERS: u16 = 256;
/// Size of a vnet-header TUN buffer: the super-packet is read at
/// [`TUN_VNET_DATA_OFFSET`] and split towards the front, which leaves room
/// for [`MAX_SEGMENTS`] segments' added headers.
pub const TUN_VNET_BUF_SIZE: usize = 128 * 1024;
/// Where the kernel writes a vnet-header TUN read (64 KiB + 10 still fit after it).
pub const TUN_VNET_DATA_OFFSET: usize = 44 * 1024;
/// The most segments one super-packet becomes (the segment number is 8 bits of a [`PacketId`]).
pub const MAX_SEGMENTS: usize = 255;
/// Send and write slots (operations in flight at most).
pub const TX_SLOTS: usize = 4096;
/// Datagrams in one GSO send at most (the kernel's `UDP_MAX_SEGMENTS` is 64 or 128).
pub const MAX_GSO_SEGMENTS: usize = 64;
/// Bytes in one GSO send at most (below the 64 KiB an IP packet may carry).
pub const MAX_GSO_BYTES: usize = 64_000;
/// Entries a batch holds at most when receives are split into segments.
const SPLIT_BATCH_CAPACITY: usize = 8192;
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

/// A packet id: the segment number in the top 8 bits, then the pool, then the buffer.
fn packet_id(pool: usize, bid: u16) -> PacketId {
    seg_packet_id(pool, bid, 0)
}

fn seg_packet_id(pool: usize, bid: u16, seg: usize) -> PacketId {
    PacketId::from_raw(((seg as u32 & 0xff) << 24) | ((pool as u32 & 0xff) << 16) | u32::from(bid))
}

fn split_id(id: PacketId) -> (usize, u16) {
    (((id.raw() >> 16) & 0xff) as usize, id.raw() as u16)
}

fn seg_of(id: PacketId) -> usize {
    (id.raw() >> 24) as usize
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
    /// The offloads the TUN and socket were granted.
    pub offload: Offloads,
    /// How long to keep polling for more work after a completion before
    /// sleeping in the kernel (zero: never poll; see the `wait` module).
    pub busy_poll: Duration,
}

#[derive(Debug, Clone, Copy)]
enum TunReads {
    None,
    Multishot { armed: bool, worked: bool },
    Single { in_flight: usize },
}

/// Room for one cmsg (`UDP_SEGMENT`), aligned as a `cmsghdr` must be.
#[repr(C, align(8))]
struct CmsgBuf([u8; super::sys::CMSG_INT_SPACE]);

/// A send or write in flight: everything it points to must stay put until it completes.
struct TxSlot {
    msg: libc::msghdr,
    iovs: [libc::iovec; MAX_RUN + 1],
    addr: libc::sockaddr_in6,
    cmsg: CmsgBuf,
    vnet: [u8; crate::offload::vnet::VNET_HEADER_LEN],
    id: PacketId,
    /// Inner packets (datagrams, or segments of a super-packet) it carries.
    packets: u32,
    /// Bytes of vnet header it writes (not counted as packet bytes).
    vnet_len: u32,
    gso: bool,
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
    inflight: [Vec<u16>; 2],
    geo: [Vec<Geometry>; 2],
    /// Per buffer, which of its segments already got an output (one each).
    emitted: [Vec<[u64; 4]>; 2],
    offload: Offloads,
    busy_poll: Duration,
    layout: Layout,
    gso_on: bool,
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
        .setup_taskrun_flag()
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
        let offload = Offloads {
            tun: if parts.tun.is_some() { parts.offload.tun } else { TunOffload::default() },
            udp: parts.offload.udp,
        };
        let (udp_count, udp_size) = if offload.udp.gro {
            (UDP_GRO_BUFFERS, UDP_GRO_BUF_SIZE)
        } else {
            let min = RECVMSG_OUT_LEN + NAME_LEN + parts.mtu + engine.tun_headroom() + engine.tun_tailroom() + 64;
            (UDP_BUFFERS, buffer_size(min))
        };
        let udp_pool = BufRing::new(0, udp_count, udp_size, 0)?;
        udp_pool.register(&ring.submitter())?;
        let headroom = engine.tun_headroom().next_multiple_of(64).max(MIN_TUN_HEADROOM);
        let tun_pool = match parts.tun {
            Some(_) if offload.tun.vnet_hdr => {
                let pool = BufRing::new(1, TUN_VNET_BUFFERS, TUN_VNET_BUF_SIZE, TUN_VNET_DATA_OFFSET)?;
                pool.register(&ring.submitter())?;
                Some(pool)
            }
            Some(_) => {
                let size = buffer_size(headroom + parts.mtu + engine.tun_tailroom());
                let pool = BufRing::new(1, TUN_BUFFERS, size, headroom)?;
                pool.register(&ring.submitter())?;
                Some(pool)
            }
            None => None,
        };
        let tun_count = tun_pool.as_ref().map_or(0, BufRing::count);
        let tun_buf_size = tun_pool.as_ref().map_or(0, BufRing::buf_size);
        let layout =
            Layout { headroom: engine.tun_headroom(), tailroom: engine.tun_tailroom(), max_segments: MAX_SEGMENTS };
        let inject_slab = Region::new(usize::from(INJECT_BUFFERS) * INJECT_BUF_SIZE)?;
        // Safety: msghdr is plain old data; all zeroes is valid.
        let mut recv_msg: Box<libc::msghdr> = Box::new(unsafe { std::mem::zeroed() });
        recv_msg.msg_namelen = NAME_LEN as libc::socklen_t;
        recv_msg.msg_controllen = if offload.udp.gro { super::sys::CMSG_INT_SPACE } else { 0 };
        let slot_count = TX_SLOTS;
        let slots = (0..slot_count)
            .map(|_| TxSlot {
                // Safety: plain old data; all zeroes is valid.
                msg: unsafe { std::mem::zeroed() },
                iovs: [libc::iovec { iov_base: std::ptr::null_mut(), iov_len: 0 }; MAX_RUN + 1],
                addr: to_sockaddr_in6(SocketAddr::from(([0u8; 16], 0))),
                cmsg: CmsgBuf([0; super::sys::CMSG_INT_SPACE]),
                vnet: [0; crate::offload::vnet::VNET_HEADER_LEN],
                id: PacketId::from_raw(0),
                packets: 0,
                vnet_len: 0,
                gso: false,
            })
            .collect();
        let udp_batch = if offload.udp.gro { SPLIT_BATCH_CAPACITY } else { usize::from(udp_count) };
        let tun_batch = if offload.tun.vnet_hdr { SPLIT_BATCH_CAPACITY } else { usize::from(tun_count) };
        let tun_reads =
            if parts.tun.is_some() { TunReads::Multishot { armed: false, worked: false } } else { TunReads::None };
        info!(
            shard = parts.index,
            udp_buffers = udp_count,
            udp_buf_size = udp_size,
            tun_buffers = tun_count,
            tun_buf_size = tun_pool.as_ref().map_or(0, |p| p.buf_size()),
            tun_vnet_hdr = offload.tun.vnet_hdr,
            udp_gso = offload.udp.gso,
            udp_gro = offload.udp.gro,
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
                vec![IN_KERNEL; usize::from(udp_count)],
                vec![IN_KERNEL; usize::from(tun_count)],
                vec![IN_BATCH; usize::from(INJECT_BUFFERS)],
            ],
            inflight: [vec![0; usize::from(udp_count)], vec![0; usize::from(tun_count)]],
            geo: [
                vec![Geometry::whole(udp_size); usize::from(udp_count)],
                vec![Geometry::whole(tun_buf_size); usize::from(tun_count)],
            ],
            emitted: [vec![[0; 4]; usize::from(udp_count)], vec![[0; 4]; usize::from(tun_count)]],
            offload,
            busy_poll: parts.busy_poll,
            layout,
            gso_on: offload.udp.gso,
            udp_peers: vec![None; usize::from(udp_count)],
            recv_msg,
            slots,
            free_slots: (0..slot_count as u32).rev().collect(),
            cqes: Vec::with_capacity(CQ_ENTRIES as usize),
            udp_batch: RxBatch::with_capacity(udp_batch),
            tun_batch: RxBatch::with_capacity(tun_batch),
            out: TxQueues::with_capacity(udp_batch + tun_batch),
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
        let mut poll_until = None;
        while !shutdown.load(Ordering::Relaxed) {
            poll_until = self.wait(poll_until, shutdown)?;
            if self.iteration() && !self.busy_poll.is_zero() {
                poll_until = Some(Timestamp::now() + self.busy_poll);
            }
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

    /// One pass over what the kernel completed; whether there was anything.
    fn iteration(&mut self) -> bool {
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
            return false;
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
        true
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
