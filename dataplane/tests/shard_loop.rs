//! The shard loop in-process, relay-only (no TUN, so no root needed): a real
//! io_uring ring, a real UDP socket on loopback and the real punt and counter
//! files, driven by the passthrough engine and by an engine that misbehaves on
//! purpose.

use std::net::{SocketAddr, UdpSocket};
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use mycelium_common::time::Timestamp;
use mycelium_dataplane::batch::{PacketId, RxBatch, TxQueues};
use mycelium_dataplane::engine::Engine;
use mycelium_dataplane::engine::counters::{CounterValues, DropReason};
use mycelium_dataplane::engine::passthrough::{self, PassthroughEngine};
use mycelium_dataplane::io::punt::PuntSocket;
use mycelium_dataplane::io::shard::{Offloads, Shard, ShardParts};
use mycelium_dataplane::io::shm::{CountersMap, read_all_counters};
use mycelium_dataplane::io::socket::{bind_shard_socket, enable_offloads};

struct Running {
    port: u16,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<std::io::Result<()>>>,
    dir: PathBuf,
}

impl Running {
    /// Starts one relay-only shard with the engine `make()` on an ephemeral loopback port.
    /// With `offload`, the socket gets UDP GSO and GRO where the kernel has them.
    fn start<E: Engine + Send + 'static>(
        offload: bool,
        tag: &str,
        make: impl FnOnce() -> E + Send + 'static,
    ) -> Running {
        Running::start_polling(offload, Duration::ZERO, tag, make)
    }

    /// As [`Running::start`], with a busy-poll window.
    fn start_polling<E: Engine + Send + 'static>(
        offload: bool,
        busy_poll: Duration,
        tag: &str,
        make: impl FnOnce() -> E + Send + 'static,
    ) -> Running {
        let dir = std::env::temp_dir().join(format!("mycelium-shard-test-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let udp = bind_shard_socket(0).expect("bind");
        let udp_offload = enable_offloads(&udp, offload);
        let sock = UdpSocket::from(udp);
        let port = sock.local_addr().unwrap().port();
        let udp = OwnedFd::from(sock);
        let parts = ShardParts {
            index: 0,
            udp,
            tun: None,
            punt: Some(PuntSocket::bind(&dir, 0).unwrap()),
            counters: CountersMap::create(&dir, 0).unwrap(),
            transit_file: None,
            mtu: 1400,
            offload: Offloads { udp: udp_offload, ..Offloads::default() },
            busy_poll,
        };
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut shard = Shard::new(parts, make())?;
            shard.run(&flag)
        });
        Running { port, stop, thread: Some(thread), dir }
    }

    fn counters(&self) -> CounterValues {
        read_all_counters(&self.dir).unwrap()[0].1
    }

    /// Waits (up to 5 s) until `f` holds for the counters.
    fn wait_for(&self, what: &str, f: impl Fn(&CounterValues) -> bool) -> CounterValues {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let c = self.counters();
            if f(&c) {
                return c;
            }
            assert!(Instant::now() < deadline, "{what}: {c:?}");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn stop(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let started = Instant::now();
        self.thread.take().unwrap().join().unwrap().expect("shard loop ends cleanly");
        assert!(started.elapsed() < Duration::from_secs(2), "shutdown is seen within the wait timeout");
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn ipv6_packet(dst: &str) -> Vec<u8> {
    let mut p = vec![0u8; 40];
    p[0] = 0x60;
    p[24..40].copy_from_slice(&dst.parse::<std::net::Ipv6Addr>().unwrap().octets());
    p
}

#[test]
fn a_relay_shard_forwards_every_datagram_of_a_burst_with_one_hop_less() {
    let next_hop = UdpSocket::bind("127.0.0.1:0").unwrap();
    next_hop.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    grow_receive_buffer(&next_hop);
    let next_addr = next_hop.local_addr().unwrap();
    let shard = Running::start(false, "relay", move || {
        PassthroughEngine::new(
            Some("400:0:0:1::1".parse().unwrap()),
            false,
            &[("400:0:0:2::1".parse().unwrap(), next_addr)],
        )
    });
    const BURST: usize = 500;
    let port = shard.port;
    // Read on another thread while the burst goes out, so the next hop's socket buffer never overflows.
    let reader = std::thread::spawn(move || {
        let mut seen = vec![false; BURST];
        let mut buf = [0u8; 2048];
        for _ in 0..BURST {
            let (n, from) = next_hop.recv_from(&mut buf).expect("relayed datagram within 5 s");
            assert_eq!(from.port(), port, "relayed from the node's port");
            assert_eq!(n, passthrough::HEADER_LEN + 40 + 4);
            assert_eq!(buf[3], 4, "hop limit decremented");
            let i = u32::from_be_bytes(buf[n - 4..n].try_into().unwrap()) as usize;
            assert!(!seen[i], "datagram {i} twice");
            seen[i] = true;
        }
    });
    let sender = UdpSocket::bind("[::1]:0").unwrap();
    let to: SocketAddr = format!("[::1]:{}", shard.port).parse().unwrap();
    for i in 0..BURST {
        let mut msg = passthrough::header(false, 5).to_vec();
        msg.extend_from_slice(&ipv6_packet("400:0:0:2::1"));
        msg.extend_from_slice(&(i as u32).to_be_bytes());
        sender.send_to(&msg, to).unwrap();
        if i % 100 == 99 {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    reader.join().expect("every datagram relayed once");
    let c = shard.wait_for("counters catch up", |c| c.underlay_tx_packets == BURST as u64);
    assert_eq!(c.underlay_rx_packets, BURST as u64);
    assert_eq!(c.drops.iter().sum::<u64>(), 0);
    shard.stop();
}

#[test]
fn a_busy_polling_relay_shard_forwards_datagrams_arriving_inside_and_after_its_window_and_stops() {
    let next_hop = UdpSocket::bind("127.0.0.1:0").unwrap();
    next_hop.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let next_addr = next_hop.local_addr().unwrap();
    let shard = Running::start_polling(false, Duration::from_millis(2), "poll", move || {
        PassthroughEngine::new(
            Some("400:0:0:1::1".parse().unwrap()),
            false,
            &[("400:0:0:2::1".parse().unwrap(), next_addr)],
        )
    });
    let sender = UdpSocket::bind("[::1]:0").unwrap();
    let to: SocketAddr = format!("[::1]:{}", shard.port).parse().unwrap();
    let mut buf = [0u8; 2048];
    // One datagram at a time, each answered before the next: gaps of 0.1 ms
    // fall inside the 2 ms window (the shard is polling), gaps of 20 ms after
    // it (the shard sleeps in the kernel again).
    for i in 0..40u32 {
        let gap = if i % 2 == 0 { Duration::from_micros(100) } else { Duration::from_millis(20) };
        std::thread::sleep(gap);
        let mut msg = passthrough::header(false, 5).to_vec();
        msg.extend_from_slice(&ipv6_packet("400:0:0:2::1"));
        msg.extend_from_slice(&i.to_be_bytes());
        sender.send_to(&msg, to).unwrap();
        let (n, _) = next_hop.recv_from(&mut buf).expect("relayed datagram within 5 s");
        assert_eq!(u32::from_be_bytes(buf[n - 4..n].try_into().unwrap()), i);
    }
    let c = shard.wait_for("counters catch up", |c| c.underlay_tx_packets == 40);
    assert_eq!(c.underlay_rx_packets, 40);
    // Stop while the window of the last datagram may still be open.
    shard.stop();
}

/// The relay's GSO bursts arrive at the next hop faster than a plain reader on a
/// loaded machine takes them: give it a socket buffer as large as the kernel allows.
fn grow_receive_buffer(socket: &UdpSocket) {
    use std::os::fd::AsRawFd;
    let size: libc::c_int = 8 << 20;
    for opt in [libc::SO_RCVBUFFORCE, libc::SO_RCVBUF] {
        // Safety: an int option; `size` is live for the call.
        let r = unsafe {
            libc::setsockopt(socket.as_raw_fd(), libc::SOL_SOCKET, opt, (&size as *const libc::c_int).cast(), 4)
        };
        if r == 0 {
            return;
        }
    }
}

/// Sends `count` messages of `len` bytes each as one UDP GSO send (`UDP_SEGMENT`).
fn send_gso(sender: &UdpSocket, to: SocketAddr, messages: &[u8], len: usize) {
    use std::os::fd::AsRawFd;
    let size = len as libc::c_int;
    // Safety: UDP_SEGMENT takes an int; `size` is live for the call.
    let r =
        unsafe { libc::setsockopt(sender.as_raw_fd(), libc::SOL_UDP, 103, (&size as *const libc::c_int).cast(), 4) };
    assert_eq!(r, 0, "UDP_SEGMENT: {}", std::io::Error::last_os_error());
    sender.send_to(messages, to).unwrap();
}

#[test]
fn a_relay_shard_with_offloads_splits_gro_batches_and_forwards_them_as_gso_sends_with_one_hop_less() {
    let next_hop = UdpSocket::bind("127.0.0.1:0").unwrap();
    next_hop.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    grow_receive_buffer(&next_hop);
    let next_addr = next_hop.local_addr().unwrap();
    let shard = Running::start(true, "relay-gso", move || {
        PassthroughEngine::new(
            Some("400:0:0:1::1".parse().unwrap()),
            false,
            &[("400:0:0:2::1".parse().unwrap(), next_addr)],
        )
    });
    const SENDS: usize = 20;
    const PER_SEND: usize = 40;
    let len = passthrough::HEADER_LEN + 40 + 4;
    let port = shard.port;
    let reader = std::thread::spawn(move || {
        let mut seen = vec![false; SENDS * PER_SEND];
        let mut buf = [0u8; 2048];
        for k in 0..SENDS * PER_SEND {
            let (n, from) =
                next_hop.recv_from(&mut buf).unwrap_or_else(|e| panic!("relayed datagram {k} within 5 s: {e}"));
            assert_eq!(from.port(), port, "relayed from the node's port");
            assert_eq!(n, len, "one datagram each, as sent");
            assert_eq!(buf[3], 4, "hop limit decremented");
            let i = u32::from_be_bytes(buf[n - 4..n].try_into().unwrap()) as usize;
            assert!(!seen[i], "datagram {i} twice");
            seen[i] = true;
        }
    });
    let sender = UdpSocket::bind("127.0.0.1:0").unwrap();
    let to: SocketAddr = format!("127.0.0.1:{}", shard.port).parse().unwrap();
    for s in 0..SENDS {
        let mut msgs = Vec::new();
        for i in 0..PER_SEND {
            msgs.extend_from_slice(&passthrough::header(false, 5));
            msgs.extend_from_slice(&ipv6_packet("400:0:0:2::1"));
            msgs.extend_from_slice(&((s * PER_SEND + i) as u32).to_be_bytes());
        }
        send_gso(&sender, to, &msgs, len);
        std::thread::sleep(Duration::from_millis(2));
    }
    let joined = reader.join();
    let total = (SENDS * PER_SEND) as u64;
    assert!(joined.is_ok(), "every datagram relayed once: {:?}", shard.counters());
    let c = shard.wait_for("counters catch up", |c| c.underlay_tx_packets == total);
    assert_eq!(c.underlay_rx_packets, total);
    assert_eq!(c.drops.iter().sum::<u64>(), 0);
    assert!(c.batches <= 2 * SENDS as u64, "GRO batches, not datagram by datagram: {} batches", c.batches);
    shard.stop();
}

#[test]
fn datagrams_the_engine_rejects_or_that_overflow_the_buffer_are_counted_not_forwarded() {
    let shard = Running::start(false, "reject", || PassthroughEngine::new(None, false, &[]));
    let sender = UdpSocket::bind("127.0.0.1:0").unwrap();
    let to: SocketAddr = format!("127.0.0.1:{}", shard.port).parse().unwrap();
    sender.send_to(b"garbage", to).unwrap();
    sender.send_to(&[passthrough::header(false, 5).as_slice(), &ipv6_packet("400:0:0:9::1")].concat(), to).unwrap();
    sender.send_to(&vec![0u8; 4000], to).unwrap();
    // A control datagram with no daemon listening.
    sender.send_to(&passthrough::header(true, 1), to).unwrap();
    let c = shard.wait_for("four drops", |c| c.drops.iter().sum::<u64>() == 4);
    assert_eq!(c.drops[DropReason::Malformed as usize], 1);
    assert_eq!(c.drops[DropReason::NoRoute as usize], 1);
    assert_eq!(c.drops[DropReason::Truncated as usize], 1);
    assert_eq!(c.drops[DropReason::PuntUnavailable as usize], 1);
    shard.stop();
}

/// Queues outputs the loop must refuse: an id from no batch, a range past the
/// buffer, the same buffer twice; and one good output, to show it still works.
#[derive(Debug)]
struct Misbehaving {
    echo_to: SocketAddr,
}

impl Engine for Misbehaving {
    fn tun_headroom(&self) -> usize {
        0
    }

    fn tun_tailroom(&self) -> usize {
        0
    }

    fn process_from_underlay(&mut self, _now: Timestamp, batch: &mut RxBatch, out: &mut TxQueues) {
        for p in batch.packets_mut() {
            let (id, range) = (p.id(), p.range());
            out.send_udp(PacketId::from_raw(0xffff_0000), range.clone(), self.echo_to);
            out.send_udp(PacketId::from_raw(id.raw() ^ 1), range.clone(), self.echo_to);
            out.send_udp(id, range.start..range.start + 100_000, self.echo_to);
            out.send_udp(id, range.clone(), self.echo_to);
            out.send_udp(id, range, self.echo_to);
        }
    }

    fn process_from_tun(&mut self, _now: Timestamp, _batch: &mut RxBatch, _out: &mut TxQueues) {}
}

#[test]
fn outputs_naming_foreign_buffers_or_bad_ranges_are_refused_and_counted() {
    let echo = UdpSocket::bind("127.0.0.1:0").unwrap();
    echo.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let echo_to = echo.local_addr().unwrap();
    let shard = Running::start(false, "misbehave", move || Misbehaving { echo_to });
    let sender = UdpSocket::bind("127.0.0.1:0").unwrap();
    sender.send_to(b"one", format!("127.0.0.1:{}", shard.port)).unwrap();
    let mut buf = [0u8; 16];
    let (n, _) = echo.recv_from(&mut buf).expect("the one good output arrives");
    assert_eq!(&buf[..n], b"one");
    let c = shard.wait_for("refused outputs and the send counted", |c| {
        c.drops[DropReason::InvalidOutput as usize] == 4 && c.underlay_tx_packets == 1
    });
    assert_eq!(c.drops.iter().sum::<u64>(), 4);
    echo.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
    assert!(echo.recv_from(&mut buf).is_err(), "nothing else was sent");
    shard.stop();
}
