//! How much the relay carries with no impairment: a paced stream of
//! 1400 B datagrams over loopback through the relay, printed, not asserted
//! (throughput depends on the machine). Run in release:
//!
//! ```text
//! EMU_OFFER_MBIT=1200 cargo test --release -p mycelium-tools --test emu_throughput -- --ignored --nocapture
//! ```

use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use mycelium_tools::emu::{Impairment, Relay, RelayConfig};

fn udp_rcvbuf_errors() -> u64 {
    let snmp = std::fs::read_to_string("/proc/net/snmp").unwrap_or_default();
    let udp: Vec<&str> = snmp.lines().filter(|l| l.starts_with("Udp:")).collect();
    let (Some(names), Some(values)) = (udp.first(), udp.get(1)) else { return 0 };
    let i = names.split_whitespace().position(|n| n == "RcvbufErrors");
    i.and_then(|i| values.split_whitespace().nth(i)?.parse().ok()).unwrap_or(0)
}

fn big_buffers(s: &UdpSocket) {
    let bytes: libc::c_int = 8 << 20;
    for opt in [libc::SO_RCVBUFFORCE, libc::SO_RCVBUF, libc::SO_SNDBUF] {
        // Safety: the pointer and length describe a live c_int.
        unsafe {
            libc::setsockopt(
                s.as_raw_fd(),
                libc::SOL_SOCKET,
                opt,
                (&bytes as *const libc::c_int).cast(),
                size_of::<libc::c_int>() as libc::socklen_t,
            );
        }
    }
}

#[test]
#[ignore = "a measurement: run in release with --ignored --nocapture"]
fn zero_impairment_relay_throughput_of_1400_byte_datagrams() {
    let offer_mbit: f64 = std::env::var("EMU_OFFER_MBIT").ok().and_then(|v| v.parse().ok()).unwrap_or(1200.0);
    let seconds: f64 = std::env::var("EMU_SECONDS").ok().and_then(|v| v.parse().ok()).unwrap_or(3.0);
    let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let (a, b) = (UdpSocket::bind(any).unwrap(), UdpSocket::bind(any).unwrap());
    big_buffers(&a);
    big_buffers(&b);
    let mut config = RelayConfig::new(any, any, Impairment::default(), 1);
    config.peer_a = Some(a.local_addr().unwrap());
    config.peer_b = Some(b.local_addr().unwrap());
    let relay = Relay::start(config).unwrap();
    let to = relay.local_a();
    let errors_before = udp_rcvbuf_errors();

    let total = (offer_mbit * 1e6 / 8.0 / 1400.0 * seconds) as u64;
    let receiver = std::thread::spawn(move || {
        b.set_read_timeout(Some(Duration::from_millis(500))).unwrap();
        let mut buf = [0u8; 2048];
        let (mut got, mut first, mut last) = (0u64, None, Instant::now());
        while got < total {
            if b.recv(&mut buf).is_err() {
                break;
            }
            got += 1;
            last = Instant::now();
            first.get_or_insert(last);
        }
        (got, first.map(|f| last.duration_since(f)).unwrap_or_default())
    });
    let pps = offer_mbit * 1e6 / 8.0 / 1400.0;
    let payload = [0x5au8; 1400];
    let start = Instant::now();
    let mut sent = 0u64;
    while sent < total {
        let due = ((start.elapsed().as_secs_f64() * pps) as u64).min(total);
        while sent < due {
            if a.send_to(&payload, to).is_ok() {
                sent += 1;
            }
        }
        std::hint::spin_loop();
    }
    let send_time = start.elapsed();
    let (got, span) = receiver.join().unwrap();
    let [ab, _] = relay.stats();
    let mbit = |n: u64, d: Duration| n as f64 * 1400.0 * 8.0 / d.as_secs_f64() / 1e6;
    println!(
        "offered {:.0} Mbit/s ({sent} datagrams in {send_time:.2?}); received {got} at {:.0} Mbit/s; \
         relay received {} sent {} in flight {}; lost {} ({:.3} %); UDP RcvbufErrors +{}",
        mbit(sent, send_time),
        mbit(got, span),
        ab.received,
        ab.sent,
        ab.in_flight,
        sent - got,
        (sent - got) as f64 * 100.0 / sent as f64,
        udp_rcvbuf_errors() - errors_before,
    );
}
