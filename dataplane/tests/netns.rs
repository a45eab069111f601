//! End-to-end tests of the I/O layer: real `mycelium-dataplane` processes with
//! the passthrough engine, in network namespaces joined by veth pairs, carrying
//! real ping and TCP traffic through real TUN devices. They need root and
//! iproute2 (CI has both); without them they print why and pass.

mod support;

use std::net::UdpSocket;
use std::os::unix::net::UnixDatagram;
use std::time::Duration;

use mycelium_dataplane::engine::counters::DropReason;
use mycelium_dataplane::engine::passthrough;
use mycelium_dataplane::io::punt::{
    CONTROL_SOCKET, KIND_INJECT, PUNT_HEADER_LEN, decode_header, encode_header, punt_path,
};
use support::{Dataplane, Netns, privileged, summed, transfer, veth};

const OVERLAY_A: &str = "400:0:0:a::1";
const OVERLAY_B: &str = "400:0:0:b::1";
const TRANSFER_BYTES: usize = 100 * 1024 * 1024;

#[test]
fn two_nodes_ping_and_carry_a_checked_100_mb_tcp_stream_over_both_underlay_families() {
    if !privileged() {
        return;
    }
    let a = Netns::new("a");
    let b = Netns::new("b");
    veth(&a, &b, 77);
    let pid = std::process::id();
    let (tun_a, tun_b) = (format!("myc{pid}a"), format!("myc{pid}b"));
    // A reaches B over IPv4, B reaches A over IPv6: both families through the dual-stack sockets.
    let dp_a = Dataplane::start(
        &a,
        "a",
        &[
            "--port",
            "9651",
            "--address",
            OVERLAY_A,
            "--tun-name",
            &tun_a,
            "--static-peer",
            &format!("{OVERLAY_B}=192.168.77.2:9651"),
        ],
    )
    .running();
    let dp_b = Dataplane::start(
        &b,
        "b",
        &[
            "--port",
            "9651",
            "--address",
            OVERLAY_B,
            "--tun-name",
            &tun_b,
            "--static-peer",
            &format!("{OVERLAY_A}=[fd00:77::1]:9651"),
        ],
    )
    .running();

    let ping = a.command("ping").args(["-6", "-c", "5", "-i", "0.2", "-W", "2", OVERLAY_B]).output().expect("run ping");
    let text = String::from_utf8_lossy(&ping.stdout);
    assert!(
        ping.status.success(),
        "ping failed:\n{text}\n{}\nA:\n{}\nB:\n{}",
        String::from_utf8_lossy(&ping.stderr),
        dp_a.log_text(),
        dp_b.log_text()
    );
    let rtt = text.lines().find(|l| l.contains("min/avg/max")).unwrap_or("").to_string();
    eprintln!("overlay ping: {rtt}");

    udp_gso_app_datagrams_arrive_whole(&a, &b);

    let overlay_secs = transfer(&a, &b, format!("[{OVERLAY_B}]:5201").parse().unwrap(), TRANSFER_BYTES);
    let raw_secs = transfer(&a, &b, "192.168.77.2:5202".parse().unwrap(), TRANSFER_BYTES);
    let mbit = |s: f64| TRANSFER_BYTES as f64 * 8.0 / s / 1e6;
    eprintln!(
        "100 MB over the passthrough overlay: {overlay_secs:.2} s ({:.0} Mbit/s); over the raw veth: {raw_secs:.2} s ({:.0} Mbit/s)",
        mbit(overlay_secs),
        mbit(raw_secs)
    );

    let (ca, cb) = (summed(&dp_a), summed(&dp_b));
    eprintln!("counters A: {ca:?}\ncounters B: {cb:?}");
    for dp in [&dp_a, &dp_b] {
        let log = dp.log_text();
        for granted in ["tun_tso=true", "udp_gso=true", "udp_gro=true"] {
            assert!(log.contains(granted), "offloads are on by default ({granted}):\n{log}");
        }
    }
    assert!(
        ca.batches * 4 < ca.tun_rx_packets,
        "A read super-packets: {} batches for {} segments",
        ca.batches,
        ca.tun_rx_packets
    );
    assert!(ca.tun_rx_bytes >= TRANSFER_BYTES as u64, "A read the stream from its TUN");
    assert!(ca.underlay_tx_bytes >= TRANSFER_BYTES as u64, "A sent it on the underlay");
    assert!(cb.underlay_rx_bytes >= TRANSFER_BYTES as u64, "B received it");
    assert!(cb.tun_tx_bytes >= TRANSFER_BYTES as u64, "B wrote it to its TUN");
    for c in [&ca, &cb] {
        for r in [
            DropReason::Malformed,
            DropReason::InvalidOutput,
            DropReason::Truncated,
            DropReason::SendFailed,
            DropReason::TunWriteFailed,
        ] {
            assert_eq!(c.drops[r as usize], 0, "{r:?}");
        }
    }

    // A destination without a peer is punted to the control daemon as a "no route" notice.
    let daemon = UnixDatagram::bind(dp_a.shm_dir.join(CONTROL_SOCKET)).expect("bind control socket");
    daemon.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let unknown = "400:0:0:c::1";
    let _ = a.command("ping").args(["-6", "-c", "3", "-i", "0.2", "-W", "1", unknown]).output().expect("run ping");
    let mut buf = [0u8; 2048];
    let n = daemon.recv(&mut buf).expect("no-route notice within 5 s");
    let (kind, _, _) = decode_header(&buf[..n]).unwrap();
    assert_eq!(kind, 2, "no route");
    let packet = &buf[PUNT_HEADER_LEN..n];
    assert_eq!(packet[0] >> 4, 6);
    assert_eq!(packet[24..40], unknown.parse::<std::net::Ipv6Addr>().unwrap().octets());

    assert_eq!(dp_a.stop(), Some(0), "clean exit on SIGTERM");
    let gone = a.command("ip").args(["link", "show", &tun_a]).output().unwrap();
    assert!(!gone.status.success(), "the TUN is removed on exit");
    assert!(!support::shm_dir("a").join("shard-0.counters").exists(), "counter files are removed on exit");
    assert_eq!(dp_b.stop(), Some(0));
}

#[test]
fn a_second_dataplane_on_a_taken_port_or_instance_stops_with_a_clear_error() {
    if !privileged() {
        return;
    }
    let ns = Netns::new("p");
    let first = Dataplane::start(&ns, "p1", &["--port", "9700", "--no-tun", "--cores", "0"]).running();
    let (code, log) = Dataplane::start(&ns, "p2", &["--port", "9700", "--no-tun", "--cores", "0"]).exited();
    assert_eq!(code, Some(1));
    assert!(log.contains("UDP port 9700 is already in use"), "{log}");
    // Same instance (same shm directory), another port: the instance lock stops it.
    let (code, log) = Dataplane::start(&ns, "p1", &["--port", "9701", "--no-tun"]).exited();
    assert_eq!(code, Some(1));
    assert!(log.contains("another mycelium-dataplane of this instance is running"), "{log}");
    assert_eq!(first.stop(), Some(0));
}

#[test]
fn a_tun_name_already_in_use_and_bad_flags_stop_start_up_with_a_clear_error() {
    if !privileged() {
        return;
    }
    let ns = Netns::new("t");
    let name = format!("myc{}t", std::process::id());
    ns.ip(&["link", "add", &name, "type", "bridge"]);
    let (code, log) =
        Dataplane::start(&ns, "t1", &["--port", "9710", "--address", OVERLAY_A, "--tun-name", &name]).exited();
    assert_eq!(code, Some(1));
    assert!(log.contains("already exists"), "{log}");
    ns.ip(&["link", "show", &name]);
    // Another node's TUN: attaching more queues to it would have joined that node's device.
    let tun = format!("myc{}u", std::process::id());
    let first = Dataplane::start(&ns, "t5", &["--port", "9711", "--address", OVERLAY_A, "--tun-name", &tun]).running();
    let (code, log) =
        Dataplane::start(&ns, "t6", &["--port", "9712", "--address", OVERLAY_B, "--tun-name", &tun]).exited();
    assert_eq!(code, Some(1));
    assert!(log.contains(&format!("interface \"{tun}\" already exists")), "{log}");
    assert_eq!(first.stop(), Some(0));
    let (code, log) = Dataplane::start(&ns, "t2", &["--cores", "0,0", "--no-tun"]).exited();
    assert_eq!(code, Some(2), "clap usage error");
    assert!(log.contains("CPU 0 is named twice"), "{log}");
    let (code, log) = Dataplane::start(&ns, "t3", &["--cores", "1023", "--no-tun"]).exited();
    assert_eq!(code, Some(1));
    assert!(log.contains("CPU 1023 is not available"), "{log}");
    let (code, log) = Dataplane::start(&ns, "t4", &["--tun-name", "x"]).exited();
    assert_eq!(code, Some(1));
    assert!(log.contains("--address is required"), "{log}");
}

#[test]
fn control_datagrams_reach_the_daemon_and_the_daemon_can_send_from_the_node_port() {
    if !privileged() {
        return;
    }
    let ns = Netns::new("c");
    let dp = Dataplane::start(&ns, "c", &["--port", "9720", "--no-tun", "--cores", "0"]).running();
    let daemon = UnixDatagram::bind(dp.shm_dir.join(CONTROL_SOCKET)).expect("bind control socket");
    daemon.set_read_timeout(Some(Duration::from_secs(5))).unwrap();

    // A control datagram from a peer is punted with its source.
    let from = ns
        .spawn(|| {
            let peer = UdpSocket::bind("127.0.0.1:0").unwrap();
            let mut msg = passthrough::header(true, 1).to_vec();
            msg.extend_from_slice(b"hello daemon");
            peer.send_to(&msg, "127.0.0.1:9720").unwrap();
            peer.local_addr().unwrap()
        })
        .join()
        .unwrap();
    let mut buf = [0u8; 256];
    let n = daemon.recv(&mut buf).expect("punted control datagram within 5 s");
    let (kind, endpoint, shard) = decode_header(&buf[..n]).unwrap();
    assert_eq!((kind, endpoint, shard), (1, from, 0));
    assert_eq!(&buf[PUNT_HEADER_LEN + passthrough::HEADER_LEN..n], b"hello daemon");

    // The daemon asks the shard to send a datagram from the node's port.
    let receiver = ns.spawn(|| {
        let sock = UdpSocket::bind("127.0.0.1:9721").unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut buf = [0u8; 64];
        let (n, src) = sock.recv_from(&mut buf).expect("injected datagram within 5 s");
        (buf[..n].to_vec(), src)
    });
    std::thread::sleep(Duration::from_millis(100));
    let mut msg = encode_header(KIND_INJECT, 0, Some("127.0.0.1:9721".parse().unwrap())).to_vec();
    msg.extend_from_slice(b"from the daemon");
    daemon.send_to(&msg, punt_path(&dp.shm_dir, 0)).unwrap();
    daemon.send_to(b"garbage", punt_path(&dp.shm_dir, 0)).unwrap();
    let (payload, src) = receiver.join().unwrap();
    assert_eq!(payload, b"from the daemon");
    assert_eq!(src.port(), 9720, "sent from the node's port");

    std::thread::sleep(Duration::from_millis(300));
    let c = summed(&dp);
    assert_eq!((c.punted, c.injected), (1, 1));
    assert_eq!(c.drops[DropReason::InjectMalformed as usize], 1);
    assert_eq!(dp.stop(), Some(0));
}

#[test]
fn a_relay_only_node_carries_ping_between_two_nodes_that_cannot_reach_each_other() {
    if !privileged() {
        return;
    }
    let a = Netns::new("ra");
    let r = Netns::new("rr");
    let b = Netns::new("rb");
    veth(&a, &r, 78);
    veth(&r, &b, 79);
    let pid = std::process::id();
    let (tun_a, tun_b) = (format!("myc{pid}x"), format!("myc{pid}y"));
    let _dp_a = Dataplane::start(
        &a,
        "ra",
        &["--address", OVERLAY_A, "--tun-name", &tun_a, "--static-peer", &format!("{OVERLAY_B}=192.168.78.2:9651")],
    )
    .running();
    let dp_r = Dataplane::start(
        &r,
        "rr",
        &[
            "--no-tun",
            "--static-peer",
            &format!("{OVERLAY_A}=192.168.78.1:9651"),
            "--static-peer",
            &format!("{OVERLAY_B}=192.168.79.2:9651"),
        ],
    )
    .running();
    let _dp_b = Dataplane::start(
        &b,
        "rb",
        &["--address", OVERLAY_B, "--tun-name", &tun_b, "--static-peer", &format!("{OVERLAY_A}=192.168.79.1:9651")],
    )
    .running();
    let ping = a.command("ping").args(["-6", "-c", "3", "-i", "0.2", "-W", "2", OVERLAY_B]).output().expect("run ping");
    assert!(ping.status.success(), "ping through the relay failed:\n{}", String::from_utf8_lossy(&ping.stdout));
    let c = summed(&dp_r);
    assert!(c.underlay_rx_packets >= 6 && c.underlay_tx_packets >= 6, "the relay carried both directions: {c:?}");
    assert_eq!((c.tun_rx_packets, c.tun_tx_packets), (0, 0));
}

#[test]
fn two_nodes_carry_a_checked_100_mb_tcp_stream_without_offloads() {
    if !privileged() {
        return;
    }
    let a = Netns::new("na");
    let b = Netns::new("nb");
    veth(&a, &b, 78);
    let pid = std::process::id();
    let (tun_a, tun_b) = (format!("myc{pid}c"), format!("myc{pid}d"));
    let start = |ns: &Netns, tag: &str, tun: &str, address: &str, peer: String| {
        let args = ["--port", "9651", "--address", address, "--tun-name", tun, "--static-peer", &peer, "--no-offload"];
        Dataplane::start(ns, tag, &args).running()
    };
    let dp_a = start(&a, "na", &tun_a, OVERLAY_A, format!("{OVERLAY_B}=192.168.78.2:9651"));
    let dp_b = start(&b, "nb", &tun_b, OVERLAY_B, format!("{OVERLAY_A}=192.168.78.1:9651"));
    let secs = transfer(&a, &b, format!("[{OVERLAY_B}]:5201").parse().unwrap(), TRANSFER_BYTES);
    eprintln!("100 MB without offloads: {secs:.2} s ({:.0} Mbit/s)", TRANSFER_BYTES as f64 * 8.0 / secs / 1e6);
    let (ca, cb) = (summed(&dp_a), summed(&dp_b));
    for dp in [&dp_a, &dp_b] {
        let log = dp.log_text();
        for off in ["asked=false", "tun_vnet_hdr=false", "udp_gso=false", "udp_gro=false"] {
            assert!(log.contains(off), "--no-offload turns every offload off ({off}):\n{log}");
        }
    }
    assert!(ca.tun_rx_bytes >= TRANSFER_BYTES as u64 && cb.tun_tx_bytes >= TRANSFER_BYTES as u64);
    for c in [&ca, &cb] {
        for r in [DropReason::Malformed, DropReason::InvalidOutput, DropReason::Truncated, DropReason::OffloadMalformed]
        {
            assert_eq!(c.drops[r as usize], 0, "{r:?}");
        }
    }
    assert_eq!(dp_a.stop(), Some(0));
    assert_eq!(dp_b.stop(), Some(0));
}

/// An application sending with UDP GSO over the overlay: the TUN hands the
/// dataplane USO super-packets, which it splits; every datagram arrives once,
/// whole and with a valid checksum (the receiving kernel drops bad ones).
fn udp_gso_app_datagrams_arrive_whole(a: &Netns, b: &Netns) {
    const SENDS: usize = 10;
    const PER_SEND: usize = 20;
    const SIZE: usize = 1000;
    let receiver = b.spawn(|| {
        let sock = UdpSocket::bind(format!("[{OVERLAY_B}]:5300")).expect("bind on B's overlay address");
        sock.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
        let mut seen = [false; SENDS * PER_SEND];
        let mut buf = [0u8; 4096];
        while let Ok(n) = sock.recv(&mut buf) {
            assert_eq!(n, SIZE, "one datagram per segment");
            let i = u32::from_be_bytes(buf[..4].try_into().unwrap()) as usize;
            assert!(buf[4..n].iter().all(|&x| x == i as u8), "datagram {i} intact");
            assert!(!seen[i], "datagram {i} twice");
            seen[i] = true;
            if seen.iter().all(|s| *s) {
                break;
            }
        }
        seen.iter().filter(|s| **s).count()
    });
    std::thread::sleep(Duration::from_millis(200));
    a.spawn(|| {
        use std::os::fd::AsRawFd;
        let sock = UdpSocket::bind("[::]:0").unwrap();
        let size = SIZE as libc::c_int;
        // Safety: UDP_SEGMENT takes an int; `size` is live for the call.
        let rc =
            unsafe { libc::setsockopt(sock.as_raw_fd(), libc::SOL_UDP, 103, (&size as *const libc::c_int).cast(), 4) };
        assert_eq!(rc, 0, "UDP_SEGMENT: {}", std::io::Error::last_os_error());
        for s in 0..SENDS {
            let mut msg = Vec::with_capacity(SIZE * PER_SEND);
            for k in 0..PER_SEND {
                let i = s * PER_SEND + k;
                msg.extend_from_slice(&(i as u32).to_be_bytes());
                msg.resize(msg.len() + SIZE - 4, i as u8);
            }
            sock.send_to(&msg, format!("[{OVERLAY_B}]:5300")).unwrap();
            std::thread::sleep(Duration::from_millis(20));
        }
    })
    .join()
    .unwrap();
    assert_eq!(receiver.join().unwrap(), SENDS * PER_SEND, "every GSO datagram arrived");
}
