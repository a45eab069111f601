//! Geography as the prior before measurement. Five nodes with positions:
//! Amsterdam (A) reaches Berlin (D) over three short hops, A-Bremen-Hamburg-D,
//! or over two hops through New York (C). The veths add no delay, so every
//! measured RTT is far below what light in fiber needs for those distances:
//! the links to and from New York use their geographic prior (about 60 ms)
//! and A routes through Europe although the other path has fewer hops.
//! Needs root and iproute2; without them it says so and passes.

use std::time::Duration;

use mycelium_tests::netns::{Netns, privileged, veth_named};
use mycelium_tests::node::{Node, peer_url, ping_until_reachable, wait_for};

fn json(node: &Node, args: &[&str]) -> serde_json::Value {
    let text = node.mctl_json(args);
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("mctl {args:?}: not JSON ({e}): {text}"))
}

/// A's routes to `prefix`: (state, next-hop peer key, metric).
fn routes_to(node: &Node, prefix: &str) -> Vec<(String, String, u64)> {
    let routes = json(node, &["routes"]);
    routes
        .as_array()
        .into_iter()
        .flatten()
        .filter(|r| r["prefix"] == prefix)
        .map(|r| {
            let state = r["state"].as_str().unwrap_or_default().to_owned();
            let peer = r["nextHop"]["peer"].as_str().unwrap_or_default().to_owned();
            (state, peer, r["metric"].as_u64().unwrap_or(u64::MAX))
        })
        .collect()
}

#[test]
fn before_measurements_mean_anything_the_geographically_shorter_path_wins_over_fewer_hops() {
    if !privileged() {
        return;
    }
    let ns: Vec<Netns> = ["ga", "gb", "ge", "gd", "gc"].iter().map(|t| Netns::new(t)).collect();
    let (a, b, e, d, c) = (&ns[0], &ns[1], &ns[2], &ns[3], &ns[4]);
    let pid = std::process::id() % 100_000;
    let dev = |x: &str| format!("g{pid}{x}");
    veth_named(a, &dev("ab"), b, &dev("ba"), 131); // Amsterdam - Bremen
    veth_named(b, &dev("be"), e, &dev("eb"), 132); // Bremen - Hamburg
    veth_named(e, &dev("ed"), d, &dev("de"), 133); // Hamburg - Berlin
    veth_named(a, &dev("ac"), c, &dev("ca"), 134); // Amsterdam - New York
    veth_named(c, &dev("cd"), d, &dev("dc"), 135); // New York - Berlin
    let node_d = Node::start(d, "gd", None, &["--position", "52.52,13.405"]);
    let node_e =
        Node::start(e, "ge", None, &["--position", "53.551,9.994", "--peer", &peer_url(&node_d, "192.168.133.2")]);
    let node_c =
        Node::start(c, "gc", None, &["--position", "40.713,-74.006", "--peer", &peer_url(&node_d, "192.168.135.2")]);
    let node_b =
        Node::start(b, "gb", None, &["--position", "53.079,8.802", "--peer", &peer_url(&node_e, "192.168.132.2")]);
    let (to_b, to_c) = (peer_url(&node_b, "192.168.131.2"), peer_url(&node_c, "192.168.134.2"));
    let node_a = Node::start(a, "ga", None, &["--position", "52.368,4.904", "--peer", &to_c, "--peer", &to_b]);

    let prefix = format!("{}::/64", node_d.address().split(':').take(4).collect::<Vec<_>>().join(":"));
    let via = |node: &Node| {
        routes_to(&node_a, &prefix).into_iter().find(|r| r.0 == "selected").map(|r| r.1 == node.public_key())
    };
    let known = wait_for(Duration::from_secs(30), "A routes to D through Bremen", || via(&node_b) == Some(true));
    eprintln!("A routes to D through Bremen {} ms after A started", known.as_millis());
    // The path through New York is not even a feasible fallback: its
    // advertised metric exceeds what A pays through Europe.
    std::thread::sleep(Duration::from_secs(3));
    let routes = routes_to(&node_a, &prefix);
    eprintln!("A's routes to D 3 s later: {routes:?}");
    assert_eq!(via(&node_b), Some(true), "still through Bremen: {routes:?}");

    // The prior is what made the difference: A's link to New York costs
    // what some 60 ms of RTT cost, though it measures next to nothing.
    let peers = json(&node_a, &["peers"]);
    let link_to = |key: &str| {
        let p = peers.as_array().unwrap().iter().find(|p| p["publicKey"] == key).expect("the peer");
        (p["links"][0]["cost"].as_u64().unwrap(), p["links"][0]["rttMs"].as_f64().unwrap_or(f64::NAN))
    };
    let (ny_cost, ny_rtt) = link_to(&node_c.public_key());
    let (bremen_cost, bremen_rtt) = link_to(&node_b.public_key());
    eprintln!(
        "A-New York: cost {ny_cost} at a measured {ny_rtt:.2} ms; A-Bremen: cost {bremen_cost} at {bremen_rtt:.2} ms"
    );
    assert!(ny_cost >= 500, "the New York link costs its geographic prior ({ny_cost})");
    assert!(ny_rtt < 25.0, "though its measured RTT is tiny ({ny_rtt} ms)");

    // Traffic follows the choice.
    ping_until_reachable(a, &node_d.address(), Duration::from_secs(20));
    let log = node_a.log_text();
    let changes: Vec<&str> = log.lines().filter(|l| l.contains("route changed") && l.contains(&prefix)).collect();
    eprintln!("A's route changes towards D:\n{}", changes.join("\n"));
    drop((node_a, node_b, node_c, node_d, node_e));
}
