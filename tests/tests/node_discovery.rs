//! Finding peers without configuring them: peer exchange (a node configured
//! with one peer learns that peer's peers and links to them) and LAN
//! beacons (nodes on one switch with no configured peers find each other).
//! Needs root and iproute2; without them the tests say so and pass.

use std::time::Duration;

use mycelium_tests::netns::{Netns, bridge, privileged};
use mycelium_tests::node::{Node, peer_url, ping_until_reachable, wait_for};

#[test]
fn a_node_configured_with_one_peer_learns_that_peers_peers_by_exchange_and_links_to_them() {
    if !privileged() {
        return;
    }
    let (hub, b, c, d) = (Netns::new("xh"), Netns::new("xb"), Netns::new("xc"), Netns::new("xd"));
    bridge(&hub, &[&b, &c, &d], 107);
    let node_c = Node::start(&c, "xc", None, &[]);
    let node_b = Node::start(&b, "xb", None, &["--peer", &peer_url(&node_c, "192.168.107.2")]);
    wait_for(Duration::from_secs(10), "B peers with C", || node_b.mctl_json(&["peers"]).contains(&node_c.public_key()));
    let node_d = Node::start(&d, "xd", None, &["--peer", &peer_url(&node_b, "192.168.107.1")]);
    let took = wait_for(Duration::from_secs(20), "D learns of C and peers with it", || {
        node_d.mctl_json(&["peers"]).contains(&node_c.public_key())
    });
    eprintln!("D peered with C, learnt from B, {} ms after starting", took.as_millis());
    // C lists D once D's first message after the handshake reaches it, a few ms after D lists C.
    wait_for(Duration::from_secs(5), "C sees D too", || node_c.mctl_json(&["peers"]).contains(&node_d.public_key()));
    ping_until_reachable(&d, &node_c.address(), Duration::from_secs(10));
}

#[test]
fn three_nodes_on_one_switch_with_no_configured_peers_find_each_other_by_lan_beacons() {
    if !privileged() {
        return;
    }
    let (hub, n1, n2, n3) = (Netns::new("wh"), Netns::new("w1"), Netns::new("w2"), Netns::new("w3"));
    bridge(&hub, &[&n1, &n2, &n3], 108);
    let lan = ["--lan-discovery=true"];
    let nodes =
        [Node::start(&n1, "w1", None, &lan), Node::start(&n2, "w2", None, &lan), Node::start(&n3, "w3", None, &lan)];
    let took = wait_for(Duration::from_secs(20), "every node peers with the other two", || {
        nodes.iter().all(|me| {
            let peers = me.mctl_json(&["peers"]);
            nodes.iter().filter(|other| other.public_key() != me.public_key()).all(|o| peers.contains(&o.public_key()))
        })
    });
    eprintln!("three nodes on a switch found each other by LAN beacons in {} ms", took.as_millis());
    ping_until_reachable(&n1, &nodes[2].address(), Duration::from_secs(10));
    ping_until_reachable(&n3, &nodes[1].address(), Duration::from_secs(10));
}
