//! Real `myceliumd` nodes (each with its real dataplane and TUN) in network
//! namespaces: they start from nothing, peer, route and carry traffic end to
//! end encrypted. Needs root and iproute2 (CI has both); without them the
//! tests say so and pass.

use std::net::UdpSocket;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use mycelium_tests::netns::{Netns, privileged, transfer, veth};
use mycelium_tests::node::{Node, peer_url, ping_until_reachable};

const TRANSFER_BYTES: usize = 200 * 1024 * 1024;

#[test]
fn two_nodes_from_nothing_peer_route_and_carry_ping_and_a_checked_200_mb_stream() {
    if !privileged() {
        return;
    }
    let (a, b) = (Netns::new("na"), Netns::new("nb"));
    veth(&a, &b, 91);
    let node_b = Node::start(&b, "nb", None, &[]);
    let node_a = Node::start(&a, "na", None, &["--peer", &peer_url(&node_b, "192.168.91.2")]);
    assert!(node_a.dir.path().join("node.key").exists(), "the key file was created on first start");

    let rtt = ping_until_reachable(&a, &node_b.address(), Duration::from_secs(20));
    eprintln!("ping over the mesh: {}", rtt.lines().find(|l| l.contains("min/avg")).unwrap_or(""));
    let secs = transfer(&a, &b, format!("[{}]:5301", node_b.address()).parse().unwrap(), TRANSFER_BYTES);
    eprintln!("200 MB over the mesh in {secs:.2} s ({:.0} Mbit/s)", TRANSFER_BYTES as f64 * 8.0 / secs / 1e6);

    // The operator's view agrees: one peer, a selected route to it.
    let routes =
        a.command(mycelium_tests::node::binary("mctl").to_str().unwrap()).args(["--json", "routes"]).output().unwrap();
    let routes = String::from_utf8_lossy(&routes.stdout);
    let prefix = format!("{}::/64", node_b.address().split(':').take(4).collect::<Vec<_>>().join(":"));
    assert!(routes.contains(&prefix), "mctl routes shows B's /64 ({prefix}): {routes}");
    assert_eq!(node_a.stop(), Some(0), "clean exit on SIGTERM");
    assert_eq!(node_b.stop(), Some(0));
}

/// Captures every frame on every interface of the calling thread's
/// namespace until `stop`, and returns (frames seen, whether `marker` was in any).
fn capture(marker: &'static [u8], stop: Arc<AtomicBool>) -> (usize, bool) {
    // Safety: plain socket(2); the fd is owned right away.
    let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW, (libc::ETH_P_ALL as u16).to_be() as i32) };
    assert!(fd >= 0, "AF_PACKET socket: {}", std::io::Error::last_os_error());
    // Safety: `fd` is a fresh descriptor nobody else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let timeout = libc::timeval { tv_sec: 0, tv_usec: 100_000 };
    // Safety: setsockopt with a live timeval of the right size.
    unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            (&timeout as *const libc::timeval).cast(),
            std::mem::size_of::<libc::timeval>() as u32,
        )
    };
    let mut buf = vec![0u8; 65_536];
    let (mut frames, mut seen) = (0, false);
    let deadline = Instant::now() + Duration::from_secs(60);
    while !stop.load(Ordering::SeqCst) && Instant::now() < deadline {
        // Safety: recv into a live buffer of the given length.
        let n = unsafe { libc::recv(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
        if n > 0 {
            frames += 1;
            seen |= buf[..n as usize].windows(marker.len()).any(|w| w == marker);
        }
    }
    (frames, seen)
}

#[test]
fn a_relay_carries_traffic_between_nodes_that_cannot_reach_each_other_and_cannot_read_it() {
    if !privileged() {
        return;
    }
    const MARKER: &[u8] = b"mycelium-plaintext-marker-4f1c9a";
    let (a, b, c) = (Netns::new("la"), Netns::new("lb"), Netns::new("lc"));
    veth(&a, &b, 92);
    veth(&b, &c, 93);
    let node_b = Node::start(&b, "lb", None, &[]);
    let node_a = Node::start(&a, "la", None, &["--peer", &peer_url(&node_b, "192.168.92.2")]);
    let node_c = Node::start(&c, "lc", None, &["--peer", &peer_url(&node_b, "192.168.93.1")]);
    ping_until_reachable(&a, &node_c.address(), Duration::from_secs(30));

    let stop = Arc::new(AtomicBool::new(false));
    let sniffer = {
        let stop = Arc::clone(&stop);
        b.spawn(move || capture(MARKER, stop))
    };
    std::thread::sleep(Duration::from_millis(200));
    // The marker crosses B twice: once sealed through the overlay, once in
    // clear on B's own underlay (proving the capture would see it).
    let to_c = format!("[{}]:5400", node_c.address());
    let receiver = c.spawn(move || {
        let sock = UdpSocket::bind(to_c).expect("bind on C's overlay address");
        sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut buf = [0u8; 256];
        let mut got = 0;
        while let Ok(n) = sock.recv(&mut buf) {
            assert_eq!(&buf[..n], MARKER);
            got += 1;
            if got == 50 {
                break;
            }
        }
        got
    });
    std::thread::sleep(Duration::from_millis(200));
    let dest = format!("[{}]:5400", node_c.address());
    a.spawn(move || {
        let sock = UdpSocket::bind("[::]:0").unwrap();
        for _ in 0..50 {
            sock.send_to(MARKER, &dest).unwrap();
            std::thread::sleep(Duration::from_millis(5));
        }
    })
    .join()
    .unwrap();
    let delivered = receiver.join().unwrap();
    assert_eq!(delivered, 50, "every datagram reached C through B");
    stop.store(true, Ordering::SeqCst);
    let (frames, seen_sealed) = sniffer.join().unwrap();
    assert!(frames >= 50, "the capture saw the relayed traffic ({frames} frames)");
    assert!(!seen_sealed, "the relay never saw the plaintext");

    let stop = Arc::new(AtomicBool::new(false));
    let sniffer = {
        let stop = Arc::clone(&stop);
        b.spawn(move || capture(MARKER, stop))
    };
    std::thread::sleep(Duration::from_millis(200));
    a.spawn(|| UdpSocket::bind("0.0.0.0:0").unwrap().send_to(MARKER, "192.168.92.2:5999").unwrap()).join().unwrap();
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::SeqCst);
    assert!(sniffer.join().unwrap().1, "control: the capture does see the marker when it is sent in clear");
    drop((node_a, node_b, node_c));
}

#[test]
fn a_node_started_with_a_deployed_networks_key_file_has_that_networks_address() {
    if !privileged() {
        return;
    }
    let ns = Netns::new("k");
    let mut secret = [0u8; 32];
    secret[31] = 1;
    let node = Node::start(&ns, "k", Some(secret), &["--no-tun"]);
    assert_eq!(node.address(), "5f5:db79:2573:eebf:15e3:4ae0:bb2f:88e1");
    assert_eq!(node.public_key(), "fd3384e132ad02a56c78f45547ee40038dc79002b90d29ed90e08eee762ae715");
}
