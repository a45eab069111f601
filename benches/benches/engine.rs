//! The sealed engine per packet, no syscalls: the real `SealedEngine` fed
//! batches of 64 packets, with route snapshots and key tables published into
//! a temporary shared-memory directory exactly as myceliumd publishes them.
//!
//! The topology is the line A - R - B of `mycelium_benches::lab`:
//! - `seal` (A, from the TUN): inner-packet checks, route lookup, counter,
//!   routed header, AES-256-GCM seal, queue for the next hop;
//! - `transit` (R, from the underlay): classify, lookup, hop-limit
//!   decrement, queue unopened;
//! - `open` (B, from the underlay): classify, session, replay window,
//!   AES-256-GCM open, inner checks, queue the plaintext for the TUN;
//! - `aead-only`: ring's seal and open of the same sizes with the same
//!   48-byte AAD, so the engine's own share is the difference.
//!
//! each at 64 B and 1400 B inner packets; and `transit` and `seal` again with
//! 100 000 extra routes (each packet of a batch to another of them; `seal`
//! to 1024 of them, each with its own session).
//!
//! One criterion iteration is one packet (times are ns/packet). Only
//! `begin_batch` and the `process_*` call are timed; refilling the buffers
//! between batches (rewriting the inner header, sealing fresh datagrams for
//! `open` so the replay window accepts them) is not. Every packet must come
//! out where it should, or the bench panics rather than time a drop path.
//!
//! `cargo bench -p mycelium-benches --bench engine`
//!
//! With `MYCELIUM_BENCH_BATCH_MEDIAN=1` each batch of 64 is timed on its own
//! and a sample counts the median batch for all of its batches: on a shared
//! machine under load, the few batches that another process preempts (for
//! milliseconds) otherwise decide the mean of every sample.

use std::hint::black_box;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use criterion::{BenchmarkGroup, Criterion, Throughput, criterion_group, criterion_main, measurement::WallTime};
use mycelium_benches::lab::{self, LEFT_LINK, Line, RIGHT_LINK};
use mycelium_common::crypto::{Nonce, Open, PacketCipher, RingAes256Gcm, Seal, SessionKey, TAG_LEN};
use mycelium_common::shm::{Publisher, ShmDir};
use mycelium_common::time::Timestamp;
use mycelium_common::wire::ROUTED_HEADER_LEN;
use mycelium_dataplane::batch::{PacketId, RxBatch, TxDest, TxQueues};
use mycelium_dataplane::engine::Engine;
use mycelium_dataplane::engine::sealed::{SealedConfig, SealedEngine};
use mycelium_dataplane::sessions::SharedSessions;

/// Packets per engine call, as the shard loop reaps them under load.
const BATCH: usize = 64;
/// Size of each pooled buffer.
const BUF_SIZE: usize = 2048;
const EPOCH: u64 = 42;
const NOW: u64 = 1_000_000_000;
const SIZES: [usize; 2] = [64, 1400];
/// Routes added for the "at scale" cases, and sessions among them.
const SCALE_ROUTES: u32 = 100_000;
const SCALE_SESSIONS: u32 = 1024;

/// The three engines of the line, each reading its own published directory.
struct Lab {
    line: Line,
    a: SealedEngine,
    r: SealedEngine,
    b: SealedEngine,
    /// Dropped last, after the engines that map files in it.
    _dir: tempfile::TempDir,
}

fn lab(scale: bool) -> Lab {
    // /dev/shm where it exists, as in production; any temporary directory otherwise.
    let dir = tempfile::tempdir_in("/dev/shm").or_else(|_| tempfile::tempdir()).expect("temporary directory");
    let ep = |last: u8| -> SocketAddr { format!("192.0.2.{last}:9651").parse().unwrap() };
    let line = Line::new(&[1, 2, 3], &[(ep(1), ep(1)), (ep(2), ep(2)), (ep(3), ep(3))]);
    let sessions = if scale { lab::synthetic_sessions(SCALE_SESSIONS, EPOCH) } else { Vec::new() };
    // The synthetic prefixes go over A's only link, and either way at R.
    let links: [&[u32]; 3] = [&[RIGHT_LINK], &[LEFT_LINK, RIGHT_LINK], &[]];
    let mut engines = ["a", "r", "b"].into_iter().enumerate().map(|(i, name)| {
        let shm = ShmDir::new(dir.path(), name).expect("shm dir");
        let mut publisher = Publisher::create(shm.clone()).expect("publisher");
        let routes =
            if scale && !links[i].is_empty() { lab::synthetic_routes(SCALE_ROUTES, links[i]) } else { Vec::new() };
        line.publish(&mut publisher, i, 1, NOW, EPOCH, (&routes, &sessions)).expect("publish");
        let config = SealedConfig {
            shard: 0,
            local: line.nodes()[i].key.address(),
            has_tun: i != 1,
            epoch: EPOCH,
            transit_limit_bps: None,
        };
        let mut engine = SealedEngine::new(config, shm, SharedSessions::default());
        engine.begin_batch(Timestamp::from_nanos(NOW));
        assert_eq!(engine.snapshot_generation(), 1, "engine {name} took the snapshot");
        engine
    });
    let (a, r, b) = (engines.next().unwrap(), engines.next().unwrap(), engines.next().unwrap());
    Lab { line, a, r, b, _dir: dir }
}

/// A batch's worth of pooled buffers, the batch and the output queues.
struct Slots {
    bufs: Vec<Vec<u8>>,
    batch: RxBatch,
    out: TxQueues,
}

impl Slots {
    fn new() -> Self {
        Slots {
            bufs: vec![vec![0u8; BUF_SIZE]; BATCH],
            batch: RxBatch::with_capacity(BATCH),
            out: TxQueues::with_capacity(BATCH),
        }
    }

    /// Lends buffers `0..n` to the batch, packet `start..start + len` of each.
    fn fill_batch(&mut self, n: usize, start: usize, len: usize, peer: Option<SocketAddr>) {
        self.batch.clear();
        self.out.clear();
        for (i, buf) in self.bufs.iter_mut().take(n).enumerate() {
            // Safety: each buffer is its own live Vec, untouched by anything
            // else until the batch is cleared (next fill or drop of Slots).
            let pushed =
                unsafe { self.batch.push(buf.as_mut_ptr(), buf.len(), start, len, peer, PacketId::from_raw(i as u32)) };
            assert!(pushed, "buffer {i} fits the batch");
        }
    }

    /// Panics unless each of the `n` packets got exactly one output to `dest`.
    fn expect_all(&self, n: usize, dest: impl Fn(TxDest) -> bool) {
        let drops: u64 = self.out.drops().iter().sum();
        assert_eq!(drops, 0, "the engine dropped packets: {:?}", self.out.drops());
        assert_eq!(self.out.entries().len(), n);
        assert!(self.out.entries().iter().all(|e| dest(e.dest)), "outputs: {:?}", &self.out.entries()[..1]);
    }
}

fn now() -> Timestamp {
    Timestamp::from_nanos(NOW)
}

/// Adds up the timed batches of one sample: their sum, or (with
/// `MYCELIUM_BENCH_BATCH_MEDIAN` set) the median batch's time per packet
/// times the packets (see the module docs).
struct BatchTimes {
    median: bool,
    total: Duration,
    per_packet_ns: Vec<f64>,
}

impl BatchTimes {
    fn new() -> Self {
        let median = std::env::var_os("MYCELIUM_BENCH_BATCH_MEDIAN").is_some();
        BatchTimes { median, total: Duration::ZERO, per_packet_ns: Vec::new() }
    }

    fn add(&mut self, batch: Duration, packets: usize) {
        self.total += batch;
        if self.median {
            self.per_packet_ns.push(batch.as_nanos() as f64 / packets as f64);
        }
    }

    fn sample(mut self, iters: u64) -> Duration {
        if !self.median || self.per_packet_ns.is_empty() {
            return self.total;
        }
        let mid = self.per_packet_ns.len() / 2;
        let (_, median, _) = self.per_packet_ns.select_nth_unstable_by(mid, f64::total_cmp);
        Duration::from_nanos((*median * iters as f64) as u64)
    }
}

/// Runs `iters` packets in batches of [`BATCH`]: `prepare(slots, n)` untimed,
/// then `timed(slots, n)`, then `check(slots, n)` untimed. Returns the timed
/// total (see [`BatchTimes`]).
fn batches(
    iters: u64,
    slots: &mut Slots,
    mut prepare: impl FnMut(&mut Slots, usize),
    mut timed: impl FnMut(&mut Slots),
    check: impl Fn(&Slots, usize),
) -> Duration {
    let mut times = BatchTimes::new();
    let mut left = iters;
    while left > 0 {
        let n = (left as usize).min(BATCH);
        prepare(slots, n);
        let start = Instant::now();
        timed(slots);
        times.add(start.elapsed(), n);
        check(slots, n);
        left -= n as u64;
    }
    times.sample(iters)
}

/// Destination of packet `i` of a batch: the far end, or (at scale) one of
/// the synthetic nodes, spread so consecutive packets hit different routes.
fn destination(line: &Line, scale: Option<u32>, i: u64) -> [u8; 16] {
    match scale {
        None => line.nodes()[2].address(),
        Some(count) => {
            let mut dst = lab::synthetic_node((lab::mix(i) % u64::from(count)) as u32).0;
            dst[15] = 1;
            dst
        }
    }
}

/// A's TUN side: check, lookup, seal, queue.
fn seal(group: &mut BenchmarkGroup<'_, WallTime>, name: &str, scale: bool) {
    let Lab { line, a, .. } = &mut lab(scale);
    let mut slots = Slots::new();
    let src = line.nodes()[0].address();
    let targets = scale.then_some(SCALE_SESSIONS);
    for size in SIZES {
        group.throughput(Throughput::Bytes(size as u64));
        let mut seq = 0u64;
        group.bench_function(format!("{name}/{size}B"), |b| {
            b.iter_custom(|iters| {
                batches(
                    iters,
                    &mut slots,
                    |s, n| {
                        for i in 0..n {
                            let dst = destination(line, targets, seq);
                            seq += 1;
                            let packet = lab::inner_packet(src, dst, size);
                            s.bufs[i][ROUTED_HEADER_LEN..ROUTED_HEADER_LEN + size].copy_from_slice(&packet);
                        }
                        s.fill_batch(n, ROUTED_HEADER_LEN, size, None);
                    },
                    |s| {
                        a.begin_batch(now());
                        a.process_from_tun(now(), &mut s.batch, &mut s.out);
                    },
                    |s, n| s.expect_all(n, |d| matches!(d, TxDest::Udp(_))),
                )
            })
        });
    }
}

/// R's underlay side: classify, lookup, decrement, queue unopened.
fn transit(group: &mut BenchmarkGroup<'_, WallTime>, name: &str, scale: bool) {
    let mut lab = lab(scale);
    let mut slots = Slots::new();
    let targets = scale.then_some(SCALE_ROUTES);
    for size in SIZES {
        // One real datagram from A, copied into every buffer; only the
        // destination (at scale) and the hop limit change between batches.
        let datagram = sealed_datagram(&mut lab, &mut slots, size);
        let Lab { line, r, .. } = &mut lab;
        group.throughput(Throughput::Bytes(size as u64));
        let mut seq = 0u64;
        group.bench_function(format!("{name}/{size}B"), |b| {
            b.iter_custom(|iters| {
                batches(
                    iters,
                    &mut slots,
                    |s, n| {
                        for i in 0..n {
                            let buf = &mut s.bufs[i][..datagram.len()];
                            buf.copy_from_slice(&datagram);
                            buf[32..48].copy_from_slice(&destination(line, targets, seq));
                            seq += 1;
                        }
                        s.fill_batch(n, 0, datagram.len(), Some(peer()));
                    },
                    |s| {
                        r.begin_batch(now());
                        r.process_from_underlay(now(), &mut s.batch, &mut s.out);
                    },
                    |s, n| s.expect_all(n, |d| matches!(d, TxDest::Udp(_))),
                )
            })
        });
    }
}

/// B's underlay side: open and deliver. A seals fresh datagrams (untimed)
/// for every batch, so each counter is new to B's replay window.
fn open(group: &mut BenchmarkGroup<'_, WallTime>, name: &str) {
    let mut lab = lab(false);
    let mut slots = Slots::new();
    let src = lab.line.nodes()[0].address();
    let dst = lab.line.nodes()[2].address();
    for size in SIZES {
        let packet = lab::inner_packet(src, dst, size);
        let datagram_len = ROUTED_HEADER_LEN + size + TAG_LEN;
        group.throughput(Throughput::Bytes(size as u64));
        group.bench_function(format!("{name}/{size}B"), |b| {
            b.iter_custom(|iters| {
                let Lab { a, b: engine_b, .. } = &mut lab;
                batches(
                    iters,
                    &mut slots,
                    |s, n| {
                        for buf in s.bufs.iter_mut().take(n) {
                            buf[ROUTED_HEADER_LEN..ROUTED_HEADER_LEN + size].copy_from_slice(&packet);
                        }
                        s.fill_batch(n, ROUTED_HEADER_LEN, size, None);
                        a.begin_batch(now());
                        a.process_from_tun(now(), &mut s.batch, &mut s.out);
                        s.expect_all(n, |d| matches!(d, TxDest::Udp(_)));
                        // The sealed datagrams start at offset 0 of each buffer.
                        s.fill_batch(n, 0, datagram_len, Some(peer()));
                    },
                    |s| {
                        engine_b.begin_batch(now());
                        engine_b.process_from_underlay(now(), &mut s.batch, &mut s.out);
                    },
                    |s, n| s.expect_all(n, |d| d == TxDest::Tun),
                )
            })
        });
    }
}

/// One datagram sealed by A for B, with a `size`-byte inner packet.
fn sealed_datagram(lab: &mut Lab, slots: &mut Slots, size: usize) -> Vec<u8> {
    let packet = lab::inner_packet(lab.line.nodes()[0].address(), lab.line.nodes()[2].address(), size);
    slots.bufs[0][ROUTED_HEADER_LEN..ROUTED_HEADER_LEN + size].copy_from_slice(&packet);
    slots.fill_batch(1, ROUTED_HEADER_LEN, size, None);
    lab.a.begin_batch(now());
    lab.a.process_from_tun(now(), &mut slots.batch, &mut slots.out);
    slots.expect_all(1, |d| matches!(d, TxDest::Udp(_)));
    let e = slots.out.entries()[0];
    slots.batch.clear();
    slots.bufs[0][e.start as usize..(e.start + e.len) as usize].to_vec()
}

fn peer() -> SocketAddr {
    "192.0.2.2:9651".parse().unwrap()
}

/// ring alone, same sizes and AAD length, batched like the engine cases:
/// what the engine cannot go below.
fn aead_only(group: &mut BenchmarkGroup<'_, WallTime>) {
    let cipher = RingAes256Gcm::new(&SessionKey::from_bytes([7; 32]));
    let aad = [0x5a; ROUTED_HEADER_LEN];
    let mut bufs = vec![vec![0xa5u8; 1400]; BATCH];
    let mut tags = vec![[0u8; TAG_LEN]; BATCH];
    for size in SIZES {
        group.throughput(Throughput::Bytes(size as u64));
        let mut counter = 0u64;
        group.bench_function(format!("aead-only-seal/{size}B"), |b| {
            b.iter_custom(|iters| {
                let mut times = BatchTimes::new();
                for chunk in 0..iters.div_ceil(BATCH as u64) {
                    let n = (iters - chunk * BATCH as u64).min(BATCH as u64) as usize;
                    let start = Instant::now();
                    for buf in bufs.iter_mut().take(n) {
                        counter += 1;
                        let nonce = Nonce::new(0, counter);
                        black_box(cipher.seal_in_place(nonce, &aad, black_box(&mut buf[..size])).unwrap());
                    }
                    times.add(start.elapsed(), n);
                }
                times.sample(iters)
            })
        });
        group.bench_function(format!("aead-only-open/{size}B"), |b| {
            b.iter_custom(|iters| {
                let mut times = BatchTimes::new();
                for chunk in 0..iters.div_ceil(BATCH as u64) {
                    let n = (iters - chunk * BATCH as u64).min(BATCH as u64) as usize;
                    for (i, (buf, tag)) in bufs.iter_mut().zip(tags.iter_mut()).take(n).enumerate() {
                        buf[..size].fill(0xa5);
                        *tag = cipher.seal_in_place(Nonce::new(1, i as u64), &aad, &mut buf[..size]).unwrap();
                    }
                    let start = Instant::now();
                    for (i, (buf, tag)) in bufs.iter_mut().zip(&tags).take(n).enumerate() {
                        let nonce = Nonce::new(1, i as u64);
                        cipher.open_in_place(nonce, &aad, black_box(&mut buf[..size]), tag).unwrap();
                    }
                    times.add(start.elapsed(), n);
                }
                times.sample(iters)
            })
        });
    }
}

fn engine(c: &mut Criterion) {
    let mut group = c.benchmark_group("sealed-engine");
    seal(&mut group, "seal", false);
    transit(&mut group, "transit", false);
    open(&mut group, "open");
    transit(&mut group, "transit-100k-routes", true);
    seal(&mut group, "seal-100k-routes-1k-sessions", true);
    aead_only(&mut group);
    group.finish();
}

criterion_group!(benches, engine);
criterion_main!(benches);
