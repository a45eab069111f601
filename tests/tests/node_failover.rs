//! A square of nodes, A-B-D and A-C-D (A and D not directly connected): a
//! TCP stream from A to D survives the loss of the link A is using, moving
//! to the other side; the test prints the longest pause the receiver saw.
//! Needs root and iproute2; without them it says so and passes.

use std::time::Duration;

use mycelium_tests::netns::{Netns, privileged, veth_named};
use mycelium_tests::node::{Node, peer_url, ping_until_reachable};
use mycelium_tests::stream::Flow;

/// Bytes a device has sent, read inside its namespace.
fn tx_bytes(ns: &Netns, dev: &str) -> u64 {
    let out = ns.command("cat").arg(format!("/sys/class/net/{dev}/statistics/tx_bytes")).output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap_or(0)
}

/// Seconds since midnight UTC.
fn seconds_of_day(t: std::time::SystemTime) -> f64 {
    t.duration_since(std::time::UNIX_EPOCH).unwrap().as_secs_f64() % 86_400.0
}

/// "HH:MM:SS.ffffff" (from a log line's timestamp) as seconds since midnight.
fn parse_time_of_day(s: &str) -> Option<f64> {
    let mut parts = s.split(':');
    let (h, m, sec) = (parts.next()?.parse::<f64>().ok()?, parts.next()?.parse::<f64>().ok()?, parts.next()?);
    Some(h * 3600.0 + m * 60.0 + sec.parse::<f64>().ok()?)
}

#[test]
fn a_stream_survives_the_loss_of_the_link_it_uses_by_moving_to_the_other_side_of_a_square() {
    if !privileged() {
        return;
    }
    let (a, b, c, d) = (Netns::new("sa"), Netns::new("sb"), Netns::new("sc"), Netns::new("sd"));
    let pid = std::process::id() % 100_000;
    let (ab, ac) = (format!("s{pid}ab"), format!("s{pid}ac"));
    veth_named(&a, &ab, &b, &format!("s{pid}ba"), 101);
    veth_named(&a, &ac, &c, &format!("s{pid}ca"), 102);
    veth_named(&b, &format!("s{pid}bd"), &d, &format!("s{pid}db"), 103);
    veth_named(&c, &format!("s{pid}cd"), &d, &format!("s{pid}dc"), 104);
    let node_b = Node::start(&b, "sb", None, &[]);
    let node_c = Node::start(&c, "sc", None, &[]);
    let (to_b, to_c) = (peer_url(&node_b, "192.168.101.2"), peer_url(&node_c, "192.168.102.2"));
    let node_a = Node::start(&a, "sa", None, &["--peer", &to_b, "--peer", &to_c]);
    let (to_b, to_c) = (peer_url(&node_b, "192.168.103.1"), peer_url(&node_c, "192.168.104.1"));
    let node_d = Node::start(&d, "sd", None, &["--peer", &to_b, "--peer", &to_c]);
    ping_until_reachable(&a, &node_d.address(), Duration::from_secs(30));
    ping_until_reachable(&d, &node_a.address(), Duration::from_secs(10));

    let flow = Flow::start(&a, &d, format!("[{}]:5500", node_d.address()).parse().unwrap(), 4 << 20);
    // Which side carries it: the device that sent nearly all of the last
    // 300 ms (the route may still move between the equal sides at first).
    std::thread::sleep(Duration::from_millis(1000));
    let mut choice = None;
    for _ in 0..20 {
        let before = (tx_bytes(&a, &ab), tx_bytes(&a, &ac));
        std::thread::sleep(Duration::from_millis(300));
        let (via_b, via_c) = (tx_bytes(&a, &ab) - before.0, tx_bytes(&a, &ac) - before.1);
        if via_b > 10 * via_c || via_c > 10 * via_b {
            eprintln!("in the last 300 ms: {via_b} bytes sent towards B, {via_c} towards C");
            choice = Some(if via_b > via_c { (&ab, "B") } else { (&ac, "C") });
            break;
        }
    }
    let (cut, side) = choice.expect("the stream settled on one side within 6 s");
    let cut_at = seconds_of_day(std::time::SystemTime::now());
    a.ip(&["link", "set", cut, "down"]);
    std::thread::sleep(Duration::from_secs(5));
    let prefix = format!("prefix={}::/64", node_d.address().split(':').take(4).collect::<Vec<_>>().join(":"));
    let log = node_a.log_text();
    let changes: Vec<f64> = log
        .lines()
        .filter(|l| l.contains("route changed") && l.contains(&prefix))
        .filter_map(|l| l.get(11..26).and_then(parse_time_of_day))
        .collect();
    let offsets: Vec<String> = changes.iter().map(|t| format!("{:+.0}", (t - cut_at) * 1e3)).collect();
    eprintln!("A's route to D changed at (ms from the cut): {}", offsets.join(" "));
    let switched = changes.iter().copied().find(|&t| t >= cut_at);
    if let Some(t) = switched {
        eprintln!("A's route to D moved {:.0} ms after the cut", (t - cut_at) * 1e3);
    }
    let report = flow.finish();
    eprintln!(
        "stream A->D: {} bytes in {:.2} s, all checked; longest pause at D: {} ms (the cut A-{side} link)",
        report.bytes,
        report.secs,
        report.longest_gap.as_millis()
    );
    assert!(report.bytes > 4 << 20, "the stream went on after the cut");
    assert!(report.longest_gap < Duration::from_secs(5), "the stream resumed within 5 s");
    drop((node_a, node_b, node_c, node_d));
}
