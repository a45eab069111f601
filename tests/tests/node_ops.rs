//! Operations against a running mesh of real nodes: every `mctl` command in
//! table and JSON form with real content, and `/metrics` accepted by
//! promtool with counters that move when traffic flows. Needs root and
//! iproute2 (CI has both); without them the tests say so and pass.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Output;
use std::time::Duration;

use mycelium_tests::netns::{Netns, privileged, veth};
use mycelium_tests::node::{Node, binary, peer_url, ping_until_reachable, wait_for};

fn mctl(ns: &Netns, node: &Node, args: &[&str]) -> Output {
    ns.command(binary("mctl").to_str().unwrap())
        .args(["--instance", &node.instance])
        .args(args)
        .output()
        .expect("run mctl")
}

/// Runs mctl, asserts success, returns stdout.
fn ok(ns: &Netns, node: &Node, args: &[&str]) -> String {
    let out = mctl(ns, node, args);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "mctl {args:?} failed: {}{text}", String::from_utf8_lossy(&out.stderr));
    text
}

fn json(ns: &Netns, node: &Node, args: &[&str]) -> serde_json::Value {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    let text = ok(ns, node, &all);
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("mctl {args:?}: not JSON ({e}): {text}"))
}

/// `GET /metrics` on the node's loopback, from inside its namespace.
fn scrape(ns: &Netns) -> String {
    ns.spawn(|| {
        let mut s = TcpStream::connect("127.0.0.1:9990").expect("connect to /metrics");
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s.write_all(b"GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n").unwrap();
        let mut body = String::new();
        s.read_to_string(&mut body).unwrap();
        body.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default()
    })
    .join()
    .unwrap()
}

fn metric(text: &str, name_and_labels: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(name_and_labels))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{name_and_labels} not in /metrics"))
}

#[test]
fn every_mctl_command_and_the_metrics_endpoint_show_the_real_mesh() {
    if !privileged() {
        return;
    }
    let (a, b, c) = (Netns::new("oa"), Netns::new("ob"), Netns::new("oc"));
    veth(&a, &b, 94);
    veth(&b, &c, 95);
    let node_b = Node::start(&b, "ob", None, &[]);
    let node_c = Node::start(&c, "oc", None, &["--peer", &peer_url(&node_b, "192.168.95.1")]);
    let node_a = Node::start(&a, "oa", None, &["--peer", &peer_url(&node_b, "192.168.94.2")]);
    ping_until_reachable(&a, &node_c.address(), Duration::from_secs(30));
    let (addr_b, addr_c) = (node_b.address(), node_c.address());

    // status
    let status = json(&a, &node_a, &["status"]);
    assert_eq!(status["address"], node_a.address());
    assert_eq!(status["publicKey"], node_a.public_key());
    assert!(status["snapshot"]["generation"].as_u64().unwrap() > 0);
    assert!(status["totals"]["txPackets"].as_u64().unwrap() > 0, "{status}");
    let table = ok(&a, &node_a, &["status"]);
    assert!(table.contains(&node_a.address()) && table.contains("snapshot:"), "{table}");

    // peers: B, with a measured link
    let peers = json(&a, &node_a, &["peers"]);
    let peer = &peers.as_array().unwrap()[0];
    assert_eq!(peer["address"], addr_b);
    assert_eq!(peer["endpoint"], "192.168.94.2:9651");
    assert!(peer["links"][0]["rttMs"].as_f64().is_some(), "{peers}");
    assert!(ok(&a, &node_a, &["peers"]).contains("192.168.94.2:9651"));

    // routes: B's and C's /64, both through B
    let prefix = |addr: &str| format!("{}::/64", addr.split(':').take(4).collect::<Vec<_>>().join(":"));
    let routes = json(&a, &node_a, &["routes", "--selected"]);
    let selected: Vec<&serde_json::Value> = routes.as_array().unwrap().iter().collect();
    for addr in [&addr_b, &addr_c] {
        let r = selected.iter().find(|r| r["prefix"] == prefix(addr)).unwrap_or_else(|| panic!("{routes}"));
        assert_eq!(r["nextHop"]["endpoint"], "192.168.94.2:9651");
    }
    assert!(json(&a, &node_a, &["routes", "--all"]).as_array().unwrap().len() >= 2);
    let table = ok(&a, &node_a, &["routes"]);
    assert!(table.contains(&prefix(&addr_c)), "{table}");

    // route ADDRESS: the dataplane's own view from shared memory
    let route = json(&a, &node_a, &["route", &addr_c]);
    let text = route.to_string();
    assert!(text.contains("192.168.94.2:9651") && text.contains(&prefix(&addr_c)), "{text}");
    assert!(ok(&a, &node_a, &["route", &addr_c]).contains("next hop"));

    // counters, all shards and one
    let counters = json(&a, &node_a, &["counters"]).to_string();
    assert!(counters.contains("auth_failed") && counters.contains("underlayTxPackets"), "{counters}");
    assert!(ok(&a, &node_a, &["counters", "--shard", "0"]).contains("no_route"));

    // graph: DOT with all three nodes, and SVG when dot is installed
    let dot = ok(&a, &node_a, &["graph"]);
    assert!(dot.starts_with("digraph"), "{dot}");
    for key in [node_a.public_key(), node_b.public_key(), node_c.public_key()] {
        assert!(dot.contains(&key[..12]), "{key} in {dot}");
    }
    assert!(json(&a, &node_a, &["graph"])["nodes"].as_array().unwrap().len() >= 3);
    if std::process::Command::new("dot").arg("-V").output().is_ok() {
        let svg = node_a.dir.path().join("mesh.svg");
        ok(&a, &node_a, &["graph", "--svg", svg.to_str().unwrap()]);
        assert!(std::fs::read_to_string(&svg).unwrap().contains("<svg"));
    }

    // peer remove / add, live
    let b_url = peer_url(&node_b, "192.168.94.2");
    ok(&a, &node_a, &["peer", "remove", "udp://192.168.94.2:9651"]);
    wait_for(Duration::from_secs(10), "B gone from A's peers", || {
        json(&a, &node_a, &["peers"]).as_array().is_some_and(|p| p.is_empty())
    });
    ok(&a, &node_a, &["peer", "add", &b_url]);
    wait_for(Duration::from_secs(15), "B back in A's peers", || {
        json(&a, &node_a, &["peers"]).as_array().is_some_and(|p| p.len() == 1)
    });
    let bad = mctl(&a, &node_a, &["peer", "add", "udp://nonsense"]);
    assert_eq!(bad.status.code(), Some(1), "a bad endpoint is refused with exit 1");

    // metrics: promtool accepts them, and counters move with traffic
    ping_until_reachable(&a, &addr_c, Duration::from_secs(30));
    let before = scrape(&a);
    assert!(before.contains("mycelium_build_info"), "{before}");
    if std::process::Command::new("promtool").arg("--version").output().is_ok() {
        let mut check = std::process::Command::new("promtool")
            .args(["check", "metrics"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        check.stdin.take().unwrap().write_all(before.as_bytes()).unwrap();
        let out = check.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "promtool: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let sent = |t: &str| -> f64 {
        t.lines()
            .filter(|l| l.starts_with("mycelium_dataplane_packets_total{direction=\"tun_rx\""))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    };
    ping_until_reachable(&a, &addr_c, Duration::from_secs(10));
    let after = scrape(&a);
    assert!(sent(&after) > sent(&before), "TUN packets counted: {} -> {}", sent(&before), sent(&after));
    assert!(metric(&after, "mycelium_routes{state=\"selected\"}") >= 2.0);
    assert!(after.contains(&format!("mycelium_link_rtt_seconds{{peer=\"{addr_b}\"")), "{after}");

    // B relays A's traffic to C: its transit bytes are accounted to A's /64
    // (shards publish them about once a second).
    let a_source =
        format!("mycelium_transit_bytes_total{{source=\"{}/64\"}}", prefix(&node_a.address()).trim_end_matches("/64"));
    wait_for(Duration::from_secs(10), "B's transit bytes from A", || {
        ping_until_reachable(&a, &addr_c, Duration::from_secs(5));
        scrape(&b).lines().any(|l| l.starts_with(&a_source) && !l.ends_with(" 0"))
    });

    // Per-link traffic: 20 MB from A to C through B leave B on its link to
    // C, while its link to A only carries the acknowledgements back.
    let link_tx = |peer: &str| -> u64 {
        let peers = json(&b, &node_b, &["peers"]);
        let p = peers.as_array().unwrap().iter().find(|p| p["address"] == peer).unwrap_or_else(|| panic!("{peers}"));
        p["links"][0]["txBytes"].as_u64().unwrap_or_else(|| panic!("{peers}"))
    };
    let before = (link_tx(&node_a.address()), link_tx(&addr_c));
    let port = format!("[{addr_c}]:5600").parse().unwrap();
    mycelium_tests::netns::transfer(&a, &c, port, 20 << 20);
    wait_for(Duration::from_secs(5), "B's link counters to catch up", || link_tx(&addr_c) - before.1 >= 20 << 20);
    let (to_a, to_c) = (link_tx(&node_a.address()) - before.0, link_tx(&addr_c) - before.1);
    assert!(to_a < to_c / 4, "B sent {to_c} bytes on its link to C and only {to_a} on its link to A");
    drop((node_a, node_b, node_c));
}
