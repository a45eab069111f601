//! A node flooded with junk on its UDP port while it carries a transfer:
//! random datagrams and truncated or garbled packets shaped like real ones
//! (protocol version 1, every packet type). The transfer completes intact,
//! neither process dies, and the dataplane counts what it dropped, by
//! reason. Needs root and iproute2; without them it says so and passes.

use std::net::UdpSocket;
use std::time::{Duration, Instant};

use mycelium_dataplane::engine::counters::{CounterValues, DropReason};
use mycelium_dataplane::io::shm::read_all_counters;
use mycelium_tests::netns::{Netns, privileged, veth};
use mycelium_tests::node::{Node, peer_url, ping_until_reachable};
use mycelium_tests::stream::Flow;

/// The node's counters summed over its shards.
fn counters(node: &Node) -> CounterValues {
    read_all_counters(&node.shm_dir()).expect("the dataplane's counters").into_iter().map(|(_, c)| c).sum()
}

/// xorshift64: junk that is the same on every run.
fn next(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

/// Sends junk to `target` for `secs` seconds (at most 200 000 datagrams); returns how many.
fn flood(target: &'static str, secs: u64) -> u64 {
    let sock = UdpSocket::bind("0.0.0.0:0").unwrap();
    let (mut state, mut sent, mut buf) = (0x9e37_79b9_7f4a_7c15u64, 0u64, [0u8; 1500]);
    let end = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < end && sent < 200_000 {
        for b in buf.iter_mut() {
            *b = next(&mut state) as u8;
        }
        let r = next(&mut state);
        let len = match sent % 4 {
            // Random bytes of any length.
            0 => (r % 1500) as usize,
            // A real header shape: version 1, a packet type, truncated anywhere.
            1 | 2 => {
                buf[0] = 1;
                buf[1] = 1 + (r % 6) as u8;
                (r >> 8) as usize % 200
            }
            // Full-size packets of each type with a garbled body.
            _ => {
                buf[0] = 1;
                buf[1] = 1 + (r % 6) as u8;
                1400
            }
        };
        let _ = sock.send_to(&buf[..len], target);
        sent += 1;
        if sent % 64 == 0 {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    sent
}

#[test]
fn junk_flooding_a_nodes_port_during_a_transfer_is_dropped_and_counted_and_the_transfer_completes_intact() {
    if !privileged() {
        return;
    }
    let (a, b) = (Netns::new("ja"), Netns::new("jb"));
    veth(&a, &b, 106);
    let mut node_b = Node::start(&b, "jb", None, &[]);
    let mut node_a = Node::start(&a, "ja", None, &["--peer", &peer_url(&node_b, "192.168.106.2")]);
    ping_until_reachable(&a, &node_b.address(), Duration::from_secs(20));
    let (dataplane_a, dataplane_b) = (node_a.dataplane_pid().unwrap(), node_b.dataplane_pid().unwrap());
    let before = counters(&node_b);

    let flow = Flow::start(&a, &b, format!("[{}]:5700", node_b.address()).parse().unwrap(), 4 << 20);
    let junk = a.spawn(|| flood("192.168.106.2:9651", 3)).join().expect("the flood");
    std::thread::sleep(Duration::from_millis(500));
    let report = flow.finish();
    let after = counters(&node_b);

    eprintln!(
        "{junk} junk datagrams in 3 s; stream {} bytes in {:.2} s, all checked, longest pause {} ms",
        report.bytes,
        report.secs,
        report.longest_gap.as_millis()
    );
    let mut dropped = 0;
    for reason in DropReason::ALL {
        let n = after.drops[*reason as usize] - before.drops[*reason as usize];
        if n > 0 {
            eprintln!("  dropped {:>16}: {n}", reason.label());
        }
        dropped += n;
    }
    eprintln!("  punted to the daemon: {}", after.punted - before.punted);
    assert!(report.bytes > 0);
    assert!(node_a.is_running() && node_b.is_running(), "both daemons survived");
    assert!(alive(dataplane_a) && alive(dataplane_b), "both dataplanes survived");
    assert!(after.drops[DropReason::Malformed as usize] > before.drops[DropReason::Malformed as usize]);
    assert!(dropped + (after.punted - before.punted) >= junk / 2, "the junk was dropped or punted, and counted");
    // The daemon still works: a fresh ping crosses.
    ping_until_reachable(&a, &node_b.address(), Duration::from_secs(10));
}

fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .is_ok_and(|s| s.rsplit(')').next().and_then(|r| r.split_whitespace().next()).is_some_and(|st| st != "Z"))
}
