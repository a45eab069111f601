//! A myceliumd killed with SIGKILL during a transfer: its dataplane keeps
//! forwarding with the last routes and keys, and a myceliumd started again
//! with the same key and instance adopts it and resumes control without
//! breaking the transfer. Needs root and iproute2; without them it says so
//! and passes.

use std::time::{Duration, Instant};

use mycelium_tests::netns::{Netns, privileged, veth};
use mycelium_tests::node::{Node, peer_url, ping_until_reachable, wait_for};
use mycelium_tests::stream::Flow;

/// Whether `pid` runs (an exited process nobody reaped, a zombie, does not).
fn alive(pid: i32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { return false };
    // The state follows the parenthesised command name.
    stat.rsplit(')').next().and_then(|rest| rest.split_whitespace().next()).is_some_and(|state| state != "Z")
}

#[test]
fn a_killed_daemon_leaves_its_dataplane_forwarding_and_a_restarted_one_adopts_it_mid_transfer() {
    if !privileged() {
        return;
    }
    let (a, b) = (Netns::new("ra"), Netns::new("rb"));
    veth(&a, &b, 105);
    let node_b = Node::start(&b, "rb", None, &[]);
    let to_b = peer_url(&node_b, "192.168.105.2");
    // A's LAN sockets share its port with the dataplane it starts and later adopts.
    let mut node_a = Node::start(&a, "ra", None, &["--peer", &to_b, "--lan-discovery=true"]);
    ping_until_reachable(&a, &node_b.address(), Duration::from_secs(20));
    let dataplane = node_a.dataplane_pid().expect("the dataplane's pid file");

    let flow = Flow::start(&a, &b, format!("[{}]:5600", node_b.address()).parse().unwrap(), 4 << 20);
    std::thread::sleep(Duration::from_millis(1000));
    node_a.kill();
    let killed_at = Instant::now();
    let at_kill = flow.received.load(std::sync::atomic::Ordering::Relaxed);
    std::thread::sleep(Duration::from_millis(1500));
    assert!(alive(dataplane), "the dataplane outlived its daemon");
    let without_daemon = flow.received.load(std::sync::atomic::Ordering::Relaxed) - at_kill;
    eprintln!("with the daemon dead for 1.5 s, {without_daemon} bytes arrived");

    node_a.respawn(&a, &["--peer", &to_b, "--lan-discovery=true"]);
    let restarted = killed_at.elapsed();
    assert!(node_a.log_text().contains("adopting the running dataplane"), "the new daemon adopted the dataplane");
    assert!(
        node_a.log_text().contains("adopted the end-to-end sessions of the previous run"),
        "the new daemon took over the session with B, keys and nonces where they were"
    );
    assert_eq!(node_a.dataplane_pid(), Some(dataplane), "the same dataplane process");
    let prefix = format!("{}::/64", node_b.address().split(':').take(4).collect::<Vec<_>>().join(":"));
    let took = wait_for(Duration::from_secs(15), "the new daemon routes to B", || {
        node_a.mctl_json(&["routes"]).contains(&prefix) && node_a.mctl_json(&["peers"]).contains(&node_b.public_key())
    });
    std::thread::sleep(Duration::from_secs(2));
    let report = flow.finish();
    eprintln!(
        "restart after {} ms; routes back {} ms later; stream {} bytes in {:.2} s, all checked, longest pause {} ms",
        restarted.as_millis(),
        took.as_millis(),
        report.bytes,
        report.secs,
        report.longest_gap.as_millis()
    );
    assert!(report.longest_gap < Duration::from_secs(15), "the stream resumed");
    assert!(without_daemon > 0, "the dataplane forwarded while the daemon was dead");
    assert!(alive(dataplane), "the adopted dataplane still runs");
    assert_eq!(node_a.stop(), Some(0), "clean exit of the adopting daemon");
    assert!(!alive(dataplane), "the dataplane stopped with the adopting daemon");
    drop(node_b);
}

/// A relay's daemon restarted: it dials the neighbours of its previous run
/// (read from the snapshot it left in shared memory), they take the new
/// handshake as new keys and hello fast so it proves them at once, and the
/// routes through it come back in a fraction of a second (before: only when
/// the neighbours' idle links timed out, about 30 s).
#[test]
fn a_restarted_relay_redials_its_neighbours_and_the_line_heals_at_once() {
    if !privileged() {
        return;
    }
    let (a, b, c) = (Netns::new("qa"), Netns::new("qb"), Netns::new("qc"));
    let pid = std::process::id() % 100_000;
    mycelium_tests::netns::veth_named(&a, &format!("q{pid}ab"), &b, &format!("q{pid}ba"), 120);
    mycelium_tests::netns::veth_named(&c, &format!("q{pid}cb"), &b, &format!("q{pid}bc"), 121);
    let mut node_b = Node::start(&b, "qb", None, &[]);
    let node_a = Node::start(&a, "qa", None, &["--peer", &peer_url(&node_b, "192.168.120.2")]);
    let node_c = Node::start(&c, "qc", None, &["--peer", &peer_url(&node_b, "192.168.121.2")]);
    ping_until_reachable(&a, &node_c.address(), Duration::from_secs(30));
    // Let the links go idle (slow hellos), as most links are most of the time.
    std::thread::sleep(Duration::from_secs(3));
    node_b.kill();
    let killed = Instant::now();
    node_b.respawn(&b, &[]);
    assert!(node_b.log_text().contains("dialing the neighbours of the previous run"));
    ping_until_reachable(&a, &node_c.address(), Duration::from_secs(30));
    let healed = killed.elapsed();
    eprintln!("A reached C through the restarted relay {} ms after the kill", healed.as_millis());
    assert!(healed < Duration::from_secs(10), "healed in {} ms", healed.as_millis());
    drop((node_a, node_b, node_c));
}
