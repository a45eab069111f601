//! A relay with a transit cap shares it fairly: A and C both send to D
//! through B, which forwards at most 20 Mbit/s for others. A sends four
//! streams as fast as it can, C one steady 4 Mbit/s stream: C keeps all of
//! its 4 Mbit/s, A gets the rest, and B never forwards much more than the
//! cap. (With the same cap as one shared bucket, C got 1.9-3.2 Mbit/s in
//! this test: its packets were dropped as often as A's.) (A relay polices,
//! it does not queue: one TCP stream through the cap gets about half of it
//! here, 10 of 20 Mbit/s, because a drop at the tail of a burst costs TCP a
//! retransmission timeout.) Needs root and iproute2; without them it says
//! so and passes.

use std::sync::atomic::Ordering;
use std::time::Duration;

use mycelium_tests::netns::{Netns, privileged, veth_named};
use mycelium_tests::node::{Node, peer_url, ping_until_reachable};
use mycelium_tests::stream::Flow;

#[test]
fn a_capped_relay_gives_a_light_sender_all_it_asks_and_the_heavy_one_the_rest() {
    if !privileged() {
        return;
    }
    let (a, b, c, d) = (Netns::new("ta"), Netns::new("tb"), Netns::new("tc"), Netns::new("td"));
    let pid = std::process::id() % 100_000;
    for (x, name, net) in [(&a, 'a', 110), (&c, 'c', 111), (&d, 'd', 112)] {
        veth_named(x, &format!("t{pid}{name}b"), &b, &format!("t{pid}b{name}"), net);
    }
    // One shard, so the whole cap is one limiter (shards split it otherwise).
    let node_b = Node::start(&b, "tb", None, &["--transit-limit-mbps", "20", "--cores", "0"]);
    let node_a = Node::start(&a, "ta", None, &["--peer", &peer_url(&node_b, "192.168.110.2")]);
    let node_c = Node::start(&c, "tc", None, &["--peer", &peer_url(&node_b, "192.168.111.2")]);
    let node_d = Node::start(&d, "td", None, &["--peer", &peer_url(&node_b, "192.168.112.2")]);
    ping_until_reachable(&a, &node_d.address(), Duration::from_secs(30));
    ping_until_reachable(&c, &node_d.address(), Duration::from_secs(30));

    let to_d = |port: u16| format!("[{}]:{port}", node_d.address()).parse().unwrap();
    // Four streams from A, so A alone could fill the cap.
    let heavy: Vec<Flow> = (0..4).map(|i| Flow::start(&a, &d, to_d(5701 + i), 1 << 30)).collect();
    let light = Flow::start(&c, &d, to_d(5710), 500_000); // 4 Mbit/s
    let heavy_bytes = || heavy.iter().map(|f| f.received.load(Ordering::Relaxed)).sum::<u64>();
    std::thread::sleep(Duration::from_secs(2));
    let before = (heavy_bytes(), light.received.load(Ordering::Relaxed));
    let window = Duration::from_secs(5);
    std::thread::sleep(window);
    let after = (heavy_bytes(), light.received.load(Ordering::Relaxed));
    let mbps = |bytes: u64| bytes as f64 * 8.0 / window.as_secs_f64() / 1e6;
    let (heavy_mbps, light_mbps) = (mbps(after.0 - before.0), mbps(after.1 - before.1));
    eprintln!("through a 20 Mbit/s relay: heavy sender {heavy_mbps:.1} Mbit/s, light sender {light_mbps:.1} Mbit/s");
    heavy.into_iter().for_each(|f| {
        f.finish();
    });
    light.finish();

    assert!(light_mbps >= 3.5, "the light sender keeps its 4 Mbit/s: {light_mbps:.1}");
    assert!(heavy_mbps + light_mbps <= 24.0, "the relay holds its cap: {:.1}", heavy_mbps + light_mbps);
    assert!(heavy_mbps > light_mbps, "the heavy sender gets the rest: {heavy_mbps:.1}");
    let counters = node_b.mctl_json(&["--instance", &node_b.instance, "counters"]);
    assert!(counters.contains("transit_limit"), "{counters}");
    drop((node_a, node_b, node_c, node_d));
}
