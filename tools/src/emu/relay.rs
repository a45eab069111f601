//! The relay: the I/O shell around two [`Direction`] engines.
//!
//! Two UDP sockets, side A and side B. A datagram from A's peer arriving
//! on A's socket goes through the A-to-B engine and, at the instant it
//! gives, leaves through B's socket to B's peer; and the other way round.
//! A peer is configured, or learnt as the source of the latest datagram on
//! its side. One thread per direction: `ppoll` until input or the next
//! delivery, `recvmmsg` a batch, judge each datagram, `sendmmsg` what is
//! due. Deliveries never go back in time (the engine keeps order), so the
//! schedule is a FIFO of buffer slots. Slots come from a pool that grows
//! up to `max_in_flight` and then is reused: the loop does not allocate
//! once it has warmed up.
//!
//! Settings change live through [`Relay::update`] (the control socket
//! calls it); each thread picks them up before its next batch.

use std::collections::VecDeque;
use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use mycelium_common::time::Timestamp;

use super::impairment::{Counters, Direction, Impairment, Verdict};
use super::settings::Update;
use super::sys::{self, BATCH};

/// How to set a relay up.
#[derive(Debug, Clone)]
pub struct RelayConfig {
    pub listen_a: SocketAddr,
    /// `None`: learnt from the first datagram on side A.
    pub peer_a: Option<SocketAddr>,
    pub listen_b: SocketAddr,
    pub peer_b: Option<SocketAddr>,
    pub a_to_b: Impairment,
    pub b_to_a: Impairment,
    /// The B-to-A engine gets `seed + 1`.
    pub seed: u64,
    /// Larger datagrams are dropped (counted as oversize).
    pub max_datagram: usize,
    /// Datagrams held at once per direction (delay times rate); beyond it,
    /// arrivals are dropped (counted as relay_full).
    pub max_in_flight: usize,
}

impl RelayConfig {
    /// Both directions alike, defaults for the rest.
    pub fn new(listen_a: SocketAddr, listen_b: SocketAddr, impairment: Impairment, seed: u64) -> Self {
        RelayConfig {
            listen_a,
            peer_a: None,
            listen_b,
            peer_b: None,
            a_to_b: impairment,
            b_to_a: impairment,
            seed,
            max_datagram: 2048,
            max_in_flight: 32_768,
        }
    }
}

/// One direction's counters: the engine's, and the shell's own drops.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DirStats {
    pub received: u64,
    pub sent: u64,
    pub engine: Counters,
    /// Delivered by the engine but nobody to send to yet.
    pub dropped_no_peer: u64,
    pub dropped_oversize: u64,
    pub dropped_relay_full: u64,
    pub send_errors: u64,
    pub in_flight: u64,
}

struct DirShared {
    settings: Mutex<Impairment>,
    generation: AtomicU64,
    stats: Mutex<DirStats>,
}

struct Shared {
    stop: AtomicBool,
    /// Index 0: A-to-B, 1: B-to-A.
    dirs: [DirShared; 2],
    /// The peer of side A and of side B.
    peers: [Mutex<Option<SocketAddr>>; 2],
    fixed: [bool; 2],
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A running relay; dropping it stops its threads.
#[derive(Debug)]
pub struct Relay {
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<()>>,
    local: [SocketAddr; 2],
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared").field("fixed", &self.fixed).finish_non_exhaustive()
    }
}

impl Relay {
    /// Binds both sockets and starts both threads.
    pub fn start(config: RelayConfig) -> io::Result<Relay> {
        let a = Arc::new(UdpSocket::bind(config.listen_a)?);
        let b = Arc::new(UdpSocket::bind(config.listen_b)?);
        let local = [a.local_addr()?, b.local_addr()?];
        for s in [&a, &b] {
            s.set_nonblocking(true)?;
            sys::set_buffers(s.as_raw_fd(), 8 << 20);
        }
        let dir = |s: Impairment| DirShared {
            settings: Mutex::new(s),
            generation: AtomicU64::new(0),
            stats: Mutex::new(DirStats::default()),
        };
        let shared = Arc::new(Shared {
            stop: AtomicBool::new(false),
            dirs: [dir(config.a_to_b), dir(config.b_to_a)],
            peers: [Mutex::new(config.peer_a), Mutex::new(config.peer_b)],
            fixed: [config.peer_a.is_some(), config.peer_b.is_some()],
        });
        let mut threads = Vec::new();
        for (d, rx, tx) in [(0, a.clone(), b.clone()), (1, b, a)] {
            let shared = shared.clone();
            let engine = Direction::new(if d == 0 { config.a_to_b } else { config.b_to_a }, config.seed + d as u64);
            let (slot, max) = (config.max_datagram.max(1), config.max_in_flight.max(BATCH));
            let name = if d == 0 { "emu-a-to-b" } else { "emu-b-to-a" };
            let t = std::thread::Builder::new()
                .name(name.into())
                .spawn(move || Worker::new(d, engine, rx, tx, shared, slot, max).run())?;
            threads.push(t);
        }
        Ok(Relay { shared, threads, local })
    }

    /// The address side A's peer sends to.
    pub fn local_a(&self) -> SocketAddr {
        self.local[0]
    }

    pub fn local_b(&self) -> SocketAddr {
        self.local[1]
    }

    /// Applies a control line; returns the settings now in force
    /// (A-to-B, B-to-A).
    pub fn update(&self, u: &Update) -> [Impairment; 2] {
        let wanted = [u.direction.includes_a_to_b(), u.direction.includes_b_to_a()];
        for (d, wanted) in wanted.into_iter().enumerate() {
            if wanted {
                let dir = &self.shared.dirs[d];
                let mut s = lock(&dir.settings);
                *s = u.apply(*s);
                dir.generation.fetch_add(1, Ordering::Release);
            }
        }
        self.settings()
    }

    pub fn settings(&self) -> [Impairment; 2] {
        [*lock(&self.shared.dirs[0].settings), *lock(&self.shared.dirs[1].settings)]
    }

    /// Counters (A-to-B, B-to-A), as of each thread's latest batch.
    pub fn stats(&self) -> [DirStats; 2] {
        [*lock(&self.shared.dirs[0].stats), *lock(&self.shared.dirs[1].stats)]
    }

    /// The peers (A, B), configured or learnt.
    pub fn peers(&self) -> [Option<SocketAddr>; 2] {
        [*lock(&self.shared.peers[0]), *lock(&self.shared.peers[1])]
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// The longest a thread sleeps, so that it notices `stop`.
const IDLE: Duration = Duration::from_millis(20);

struct Scheduled {
    at: Timestamp,
    slot: u32,
    len: u32,
}

struct Worker {
    d: usize,
    engine: Direction,
    generation: u64,
    rx: Arc<UdpSocket>,
    tx: Arc<UdpSocket>,
    shared: Arc<Shared>,
    slot_size: usize,
    max_slots: usize,
    slots: Vec<Box<[u8]>>,
    free: Vec<u32>,
    fifo: VecDeque<Scheduled>,
    /// Where arrivals go when every slot is in flight.
    trash: Box<[u8]>,
    learnt: Option<SocketAddr>,
    stats: DirStats,
    names: Vec<libc::sockaddr_storage>,
    iovs: Vec<libc::iovec>,
    hdrs: Vec<libc::mmsghdr>,
    taken: Vec<u32>,
}

impl Worker {
    fn new(
        d: usize,
        engine: Direction,
        rx: Arc<UdpSocket>,
        tx: Arc<UdpSocket>,
        shared: Arc<Shared>,
        slot_size: usize,
        max_slots: usize,
    ) -> Self {
        let iov = libc::iovec { iov_base: std::ptr::null_mut(), iov_len: 0 };
        Worker {
            d,
            engine,
            generation: 0,
            rx,
            tx,
            shared,
            slot_size,
            max_slots,
            slots: Vec::new(),
            free: Vec::with_capacity(max_slots),
            fifo: VecDeque::with_capacity(max_slots),
            trash: vec![0; slot_size + 1].into_boxed_slice(),
            learnt: None,
            stats: DirStats::default(),
            names: vec![sys::empty_sockaddr(); BATCH],
            iovs: vec![iov; BATCH],
            hdrs: vec![sys::empty_mmsghdr(); BATCH],
            taken: vec![0; BATCH],
        }
    }

    fn run(mut self) {
        let (rx, tx) = (self.rx.as_raw_fd(), self.tx.as_raw_fd());
        let mut blocked = false;
        while !self.shared.stop.load(Ordering::Relaxed) {
            let now = Timestamp::now();
            let timeout = match self.fifo.front() {
                Some(s) if !blocked => s.at.saturating_since(now).min(IDLE),
                _ => IDLE,
            };
            let Ok((readable, writable)) = sys::wait(rx, tx, blocked, timeout) else { break };
            if readable {
                self.receive();
            }
            if !blocked || writable {
                blocked = self.flush(Timestamp::now());
            }
            self.stats.engine = self.engine.counters();
            self.stats.in_flight = self.fifo.len() as u64;
            *lock(&self.shared.dirs[self.d].stats) = self.stats;
        }
    }

    fn pick_up_settings(&mut self) {
        let dir = &self.shared.dirs[self.d];
        let g = dir.generation.load(Ordering::Acquire);
        if g != self.generation {
            self.engine.set(*lock(&dir.settings));
            self.generation = g;
        }
    }

    /// Reads batches until the socket is empty (at most a few, so that
    /// deliveries are not held up).
    fn receive(&mut self) {
        for _ in 0..8 {
            while self.free.len() < BATCH && self.slots.len() < self.max_slots {
                self.free.push(self.slots.len() as u32);
                self.slots.push(vec![0; self.slot_size + 1].into_boxed_slice());
            }
            let n = self.free.len().min(BATCH);
            let trash = n == 0;
            let n = n.max(1);
            for i in 0..n {
                let buf: &mut [u8] = if trash {
                    &mut self.trash
                } else {
                    self.taken[i] = self.free.pop().expect("n is at most the free count");
                    &mut self.slots[self.taken[i] as usize]
                };
                self.iovs[i] = libc::iovec { iov_base: buf.as_mut_ptr().cast(), iov_len: buf.len() };
                let h = &mut self.hdrs[i];
                *h = sys::empty_mmsghdr();
                h.msg_hdr.msg_name = (&mut self.names[i] as *mut libc::sockaddr_storage).cast();
                h.msg_hdr.msg_namelen = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
                h.msg_hdr.msg_iov = &mut self.iovs[i];
                h.msg_hdr.msg_iovlen = 1;
            }
            let got = sys::recv_batch(self.rx.as_raw_fd(), &mut self.hdrs[..n]).unwrap_or(0);
            if !trash {
                // Slots nothing arrived in go back.
                self.free.extend_from_slice(&self.taken[got..n]);
            }
            // Settings changed while this thread slept apply to what it
            // just received.
            self.pick_up_settings();
            let now = Timestamp::now();
            for i in 0..got {
                self.stats.received += 1;
                let h = &self.hdrs[i];
                let len = h.msg_len as usize;
                if let Some(src) = sys::decode_sockaddr(&self.names[i], h.msg_hdr.msg_namelen) {
                    self.learn(src);
                }
                if trash {
                    self.stats.dropped_relay_full += 1;
                    continue;
                }
                let slot = self.taken[i];
                if len > self.slot_size {
                    self.stats.dropped_oversize += 1;
                    self.free.push(slot);
                    continue;
                }
                match self.engine.handle_datagram(now, len) {
                    Verdict::Deliver(at) => self.fifo.push_back(Scheduled { at, slot, len: len as u32 }),
                    Verdict::Drop(_) => self.free.push(slot),
                }
            }
            if got < n {
                return;
            }
        }
    }

    fn learn(&mut self, src: SocketAddr) {
        let side = self.d;
        if !self.shared.fixed[side] && self.learnt != Some(src) {
            self.learnt = Some(src);
            *lock(&self.shared.peers[side]) = Some(src);
        }
    }

    /// Sends what is due at `now`; true if the socket would block.
    fn flush(&mut self, now: Timestamp) -> bool {
        if self.fifo.front().is_none_or(|s| s.at > now) {
            return false;
        }
        let Some(peer) = *lock(&self.shared.peers[1 - self.d]) else {
            while self.fifo.front().is_some_and(|s| s.at <= now) {
                let s = self.fifo.pop_front().expect("front exists");
                self.free.push(s.slot);
                self.stats.dropped_no_peer += 1;
            }
            return false;
        };
        let mut name = sys::empty_sockaddr();
        let namelen = sys::encode_sockaddr(&peer, &mut name);
        loop {
            let n = self.fifo.iter().take(BATCH).take_while(|s| s.at <= now).count();
            if n == 0 {
                return false;
            }
            for (i, s) in self.fifo.iter().take(n).enumerate() {
                let buf = &mut self.slots[s.slot as usize];
                self.iovs[i] = libc::iovec { iov_base: buf.as_mut_ptr().cast(), iov_len: s.len as usize };
                let h = &mut self.hdrs[i];
                *h = sys::empty_mmsghdr();
                h.msg_hdr.msg_name = (&mut name as *mut libc::sockaddr_storage).cast();
                h.msg_hdr.msg_namelen = namelen;
                h.msg_hdr.msg_iov = &mut self.iovs[i];
                h.msg_hdr.msg_iovlen = 1;
            }
            match sys::send_batch(self.tx.as_raw_fd(), &mut self.hdrs[..n]) {
                Ok(sent) => {
                    for _ in 0..sent {
                        let s = self.fifo.pop_front().expect("sent from the fifo");
                        self.free.push(s.slot);
                    }
                    self.stats.sent += sent as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return true,
                Err(_) => {
                    // The first datagram cannot go (e.g. no route): drop it.
                    let s = self.fifo.pop_front().expect("n is at least one");
                    self.free.push(s.slot);
                    self.stats.send_errors += 1;
                }
            }
        }
    }
}
