//! The link emulator's relay over loopback: it carries datagrams intact
//! and in order both ways, learns peers, adds the delay it is told, and
//! takes settings changes live through its control socket. Every wait is
//! bounded.

use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mycelium_tools::emu::control::{ControlServer, request};
use mycelium_tools::emu::{Impairment, Relay, RelayConfig};

fn loopback() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

fn peer() -> UdpSocket {
    let s = UdpSocket::bind(loopback()).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(500))).unwrap();
    s
}

/// Peers A and B and a relay between them, peers configured.
fn setup(impairment: Impairment) -> (UdpSocket, UdpSocket, Relay) {
    let (a, b) = (peer(), peer());
    let mut config = RelayConfig::new(loopback(), loopback(), impairment, 7);
    config.peer_a = Some(a.local_addr().unwrap());
    config.peer_b = Some(b.local_addr().unwrap());
    (a, b, Relay::start(config).unwrap())
}

/// A 1400 B datagram carrying its sequence number and a pattern.
fn datagram(seq: u32) -> [u8; 1400] {
    let mut d = [0u8; 1400];
    d[..4].copy_from_slice(&seq.to_be_bytes());
    for (i, x) in d[4..].iter_mut().enumerate() {
        *x = (seq as usize).wrapping_mul(31).wrapping_add(i) as u8;
    }
    d
}

/// Sends `n` datagrams from `from` to `to` with at most `window` in
/// flight, and checks that `at` gets every one, intact and in order.
fn stream(from: &UdpSocket, to: SocketAddr, at: &UdpSocket, n: u32, window: u32) {
    let mut buf = [0u8; 2048];
    let (mut sent, mut got) = (0u32, 0u32);
    let deadline = Instant::now() + Duration::from_secs(20);
    while got < n {
        assert!(Instant::now() < deadline, "only {got} of {n} arrived in time");
        while sent < n && sent - got < window {
            from.send_to(&datagram(sent), to).unwrap();
            sent += 1;
        }
        let len = at.recv(&mut buf).unwrap_or_else(|e| panic!("datagram {got} of {n} lost: {e}"));
        assert_eq!(&buf[..len], &datagram(got)[..], "datagram {got} damaged or out of order");
        got += 1;
    }
}

#[test]
fn with_no_impairment_every_datagram_arrives_intact_and_in_order_both_ways() {
    let (a, b, relay) = setup(Impairment::default());
    stream(&a, relay.local_a(), &b, 20_000, 64);
    stream(&b, relay.local_b(), &a, 20_000, 64);
    let [ab, ba] = relay.stats();
    assert_eq!((ab.received, ab.sent, ba.received, ba.sent), (20_000, 20_000, 20_000, 20_000));
}

#[test]
fn peers_are_learnt_from_the_datagrams_they_send() {
    let (a, b) = (peer(), peer());
    let mut config = RelayConfig::new(loopback(), loopback(), Impairment::default(), 1);
    config.peer_b = Some(b.local_addr().unwrap());
    let relay = Relay::start(config).unwrap();
    stream(&a, relay.local_a(), &b, 10, 1);
    assert_eq!(relay.peers()[0], Some(a.local_addr().unwrap()));
    stream(&b, relay.local_b(), &a, 10, 1);
}

/// One-way delays of `n` datagrams sent `gap` apart from `from` to `at`.
fn delays(from: &UdpSocket, to: SocketAddr, at: &UdpSocket, n: usize, gap: Duration) -> Vec<Duration> {
    let mut buf = [0u8; 64];
    (0..n)
        .map(|_| {
            let sent = Instant::now();
            from.send_to(b"ping", to).unwrap();
            at.recv(&mut buf).expect("the datagram arrives");
            let d = sent.elapsed();
            std::thread::sleep(gap);
            d
        })
        .collect()
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

#[test]
fn a_20_ms_delay_is_measured_within_tolerance() {
    let delay = Duration::from_millis(20);
    let (a, b, relay) = setup(Impairment { delay, ..Impairment::default() });
    let d = delays(&a, relay.local_a(), &b, 40, Duration::from_millis(2));
    let (min, med) = (*d.iter().min().unwrap(), median(d.clone()));
    println!("20 ms link: min {min:?}, median {med:?}, max {:?}", d.iter().max().unwrap());
    assert!(min >= delay, "early delivery: {min:?}");
    assert!(med < delay + Duration::from_millis(3), "median {med:?}");
}

#[test]
fn settings_changed_on_the_control_socket_take_effect_at_once() {
    let (a, b, relay) = setup(Impairment::default());
    let relay = Arc::new(relay);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("emu.sock");
    let _control = ControlServer::start(&path, relay.clone()).unwrap();

    let before = median(delays(&a, relay.local_a(), &b, 10, Duration::ZERO));
    assert!(before < Duration::from_millis(10), "{before:?}");

    let reply = request(&path, r#"{"delay_ms":50}"#).unwrap();
    assert_eq!(reply["ok"], true, "{reply}");
    assert_eq!(reply["a_to_b"]["settings"]["delay_ms"], 50.0);
    let after = median(delays(&a, relay.local_a(), &b, 10, Duration::ZERO));
    assert!(after >= Duration::from_millis(50) && after < Duration::from_millis(60), "{after:?}");
    // The other direction changed too.
    assert!(median(delays(&b, relay.local_b(), &a, 3, Duration::ZERO)) >= Duration::from_millis(50));

    // Down in one direction only: A-to-B goes silent, B-to-A still works.
    let reply = request(&path, r#"{"direction":"a_to_b","up":false,"delay_ms":0}"#).unwrap();
    assert_eq!(reply["ok"], true, "{reply}");
    for i in 0..5 {
        a.send_to(&datagram(i), relay.local_a()).unwrap();
    }
    b.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
    assert!(b.recv(&mut [0u8; 2048]).is_err(), "a down link delivered");
    delays(&b, relay.local_b(), &a, 1, Duration::ZERO);
    let reply = request(&path, r#"{"stats":true}"#).unwrap();
    assert_eq!(reply["a_to_b"]["stats"]["dropped_down"], 5, "{reply}");

    let reply = request(&path, r#"{"up":true,"delay_ms":0}"#).unwrap();
    assert_eq!(reply["ok"], true, "{reply}");
    stream(&a, relay.local_a(), &b, 10, 1);

    let reply = request(&path, r#"{"delay":80}"#).unwrap();
    assert_eq!(reply["ok"], false);
    assert!(reply["error"].as_str().unwrap().contains("unknown field"), "{reply}");
}

#[test]
fn a_rate_limit_spaces_datagrams_out_and_tail_drops_beyond_its_queue() {
    // 8 Mbit/s: 1 ms per 1000 B datagram; the queue holds 20 of them.
    let impairment = Impairment { rate_bps: Some(8_000_000), queue_bytes: 20_000, ..Impairment::default() };
    let (a, b, relay) = setup(impairment);
    for i in 0..100 {
        a.send_to(&datagram(i)[..1000], relay.local_a()).unwrap();
    }
    b.set_read_timeout(Some(Duration::from_millis(300))).unwrap();
    let mut buf = [0u8; 2048];
    let mut arrivals = Vec::new();
    while arrivals.len() < 100 && b.recv(&mut buf).is_ok() {
        arrivals.push(Instant::now());
    }
    let deadline = Instant::now() + Duration::from_secs(2);
    while relay.stats()[0].received < 100 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    let s = relay.stats()[0];
    let n = arrivals.len() as u64;
    assert_eq!((s.received, s.sent), (100, n));
    assert_eq!(s.engine.dropped_queue_full, 100 - n);
    assert!(s.engine.dropped_queue_full > 0, "{s:?}");
    let span = arrivals[arrivals.len() - 1].duration_since(arrivals[0]);
    // n datagrams take n - 1 ms after the first is out (loopback adds a little jitter).
    assert!(span.as_secs_f64() >= (n - 1) as f64 * 0.001 * 0.9, "{n} datagrams in {span:?}");
}
