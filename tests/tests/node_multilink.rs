//! Two links between the same two nodes, each through its own link
//! emulator: a 5 ms "fiber" and a 40 ms "cellular" one (one way). Both come
//! up as separate links with their configured classes; a TCP stream uses
//! the fiber; when the fiber goes down it continues over the cellular link
//! (the test prints the longest pause the receiver saw); when the fiber
//! returns, traffic moves back once the link has proven stable.
//! Needs root and iproute2; without them it says so and passes.

use std::time::{Duration, Instant};

use mycelium_tests::emu::Emu;
use mycelium_tests::netns::{Netns, privileged};
use mycelium_tests::node::{Node, ping_until_reachable, wait_for};
use mycelium_tests::stream::Flow;

/// Bytes a device has sent, read inside its namespace.
fn tx_bytes(ns: &Netns, dev: &str) -> u64 {
    let out = ns.command("cat").arg(format!("/sys/class/net/{dev}/statistics/tx_bytes")).output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap_or(0)
}

fn json(node: &Node, args: &[&str]) -> serde_json::Value {
    let text = node.mctl_json(args);
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("mctl {args:?}: not JSON ({e}): {text}"))
}

/// The endpoint of A's selected next hop towards `prefix`.
fn selected_endpoint(node: &Node, prefix: &str) -> Option<String> {
    let routes = json(node, &["routes"]);
    routes
        .as_array()?
        .iter()
        .find(|r| r["prefix"] == prefix && r["state"] == "selected")
        .and_then(|r| r["nextHop"]["endpoint"].as_str().map(str::to_owned))
}

/// Which device carried nearly all of what A sent in the last 300 ms.
fn carrier<'a>(a: &Netns, devs: [&'a str; 2]) -> Option<&'a str> {
    let before = devs.map(|d| tx_bytes(a, d));
    std::thread::sleep(Duration::from_millis(300));
    let sent = [tx_bytes(a, devs[0]) - before[0], tx_bytes(a, devs[1]) - before[1]];
    if sent[0] > 10 * sent[1] {
        Some(devs[0])
    } else if sent[1] > 10 * sent[0] {
        Some(devs[1])
    } else {
        None
    }
}

#[test]
fn a_stream_moves_from_fiber_to_cellular_between_the_same_two_nodes_and_back_once_fiber_is_stable() {
    if !privileged() {
        return;
    }
    let (a, b) = (Netns::new("ma"), Netns::new("mb"));
    let pid = std::process::id() % 100_000;
    let (dev_fiber, dev_cell) = (format!("m{pid}f"), format!("m{pid}c"));
    let fiber = Emu::start("mf", &a, &dev_fiber, &b, &format!("m{pid}g"), 121, &["--delay", "5ms"]);
    let cellular = Emu::start("mc", &a, &dev_cell, &b, &format!("m{pid}d"), 123, &["--delay", "40ms"]);
    let node_b = Node::start(&b, "mb", None, &[]);
    let key = node_b.public_key();
    let (to_fiber, to_cell) = (format!("udp://{key}@{}", fiber.a_side), format!("udp://{key}@{}", cellular.a_side));
    let node_a = Node::start(
        &a,
        "ma",
        None,
        &[
            "--peer",
            &to_cell,
            "--peer",
            &to_fiber,
            "--peer-class",
            &format!("{to_cell}=cellular"),
            "--peer-class",
            &format!("{to_fiber}=fiber"),
        ],
    );
    ping_until_reachable(&a, &node_b.address(), Duration::from_secs(30));

    // Two links to one peer, each with its class, both up.
    wait_for(Duration::from_secs(10), "both links up", || {
        let peers = json(&node_a, &["peers"]);
        let links: Vec<&serde_json::Value> =
            peers.as_array().into_iter().flatten().flat_map(|p| p["links"].as_array().into_iter().flatten()).collect();
        links.len() == 2 && links.iter().all(|l| l["state"] == "up")
    });
    let peers = json(&node_a, &["peers"]);
    let class_at = |endpoint: &str| {
        peers.as_array().unwrap().iter().find(|p| p["endpoint"] == endpoint).map(|p| p["links"][0]["class"].clone())
    };
    assert_eq!(class_at(&fiber.a_side), Some("fiber".into()), "{peers}");
    assert_eq!(class_at(&cellular.a_side), Some("cellular".into()), "{peers}");
    let prefix = format!("{}::/64", node_b.address().split(':').take(4).collect::<Vec<_>>().join(":"));
    // The first link up carries the first route; fiber takes over once it
    // has held its place (a new link proves stable before it takes traffic).
    wait_for(Duration::from_secs(10), "the route on the fiber", || {
        selected_endpoint(&node_a, &prefix).as_deref() == Some(fiber.a_side.as_str())
    });

    let flow = Flow::start(&a, &b, format!("[{}]:5510", node_b.address()).parse().unwrap(), 1 << 20);
    std::thread::sleep(Duration::from_millis(500));
    let devs = [dev_fiber.as_str(), dev_cell.as_str()];
    wait_for(Duration::from_secs(5), "the stream on the fiber", || carrier(&a, devs) == Some(&dev_fiber));

    fiber.set(r#"{"up":false}"#);
    let cut = Instant::now();
    let moved = wait_for(Duration::from_secs(5), "the route on cellular", || {
        selected_endpoint(&node_a, &prefix).as_deref() == Some(cellular.a_side.as_str())
    });
    eprintln!("A's route moved to the cellular link within {} ms of the cut", moved.as_millis());
    wait_for(Duration::from_secs(5), "the stream on cellular", || carrier(&a, devs) == Some(&dev_cell));
    eprintln!("the stream runs over the cellular link {} ms after the cut", cut.elapsed().as_millis());

    fiber.set(r#"{"up":true}"#);
    let back = wait_for(Duration::from_secs(15), "the route back on the fiber", || {
        selected_endpoint(&node_a, &prefix).as_deref() == Some(fiber.a_side.as_str())
    });
    eprintln!("the route returned to the fiber {} ms after it came back", back.as_millis());
    assert!(back >= Duration::from_millis(1500), "a returning link must prove stable first ({back:?})");
    wait_for(Duration::from_secs(5), "the stream back on the fiber", || carrier(&a, devs) == Some(&dev_fiber));

    let report = flow.finish();
    eprintln!(
        "stream A->B: {} bytes in {:.2} s, all checked; longest pause at B: {} ms (goal: 500 ms)",
        report.bytes,
        report.secs,
        report.longest_gap.as_millis()
    );
    assert!(report.longest_gap < Duration::from_secs(3), "the stream resumed over cellular within 3 s");
    drop((node_a, node_b, fiber, cellular));
}
