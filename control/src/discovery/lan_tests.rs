//! The LAN beacon socket on a real link: a veth pair inside a network
//! namespace this test creates (uniquely named, always deleted). Like the
//! end-to-end tests it needs root and iproute2 (`.ci/run` provides both).

use std::process::Command;
use std::time::{Duration, Instant};

use mycelium_common::identity::PublicKey;

use super::beacon::{Beacon, LanSocket};

/// Deletes the namespace when dropped, whatever the test did.
struct Namespace(String);

impl Drop for Namespace {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

fn ip(args: &[&str]) {
    let status = Command::new("ip").args(args).status().expect("this test needs iproute2 (`ip`)");
    assert!(status.success(), "ip {args:?} failed: this test needs root to create a network namespace");
}

fn ifindex(ns: &str, name: &str) -> u32 {
    let out = Command::new("ip").args(["-n", ns, "-o", "link", "show", name]).output().unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    text.split(':').next().unwrap().trim().parse().unwrap()
}

#[test]
fn lan_socket_beacons_cross_a_link_and_are_parsed() {
    let ns = Namespace(format!("myc-lan-test-{}", std::process::id()));
    ip(&["netns", "add", &ns.0]);
    ip(&["-n", &ns.0, "link", "add", "va", "type", "veth", "peer", "name", "vb"]);
    for dev in ["va", "vb"] {
        // No duplicate address detection: the link-local source is usable at once.
        ip(&["netns", "exec", &ns.0, "sysctl", "-qw", &format!("net.ipv6.conf.{dev}.accept_dad=0")]);
        ip(&["-n", &ns.0, "link", "set", dev, "up"]);
    }
    let (va, vb) = (ifindex(&ns.0, "va"), ifindex(&ns.0, "vb"));
    let path = format!("/var/run/netns/{}", ns.0);
    let heard = std::thread::spawn(move || {
        // setns moves only this thread; its sockets live in the namespace.
        let file = std::fs::File::open(path).unwrap();
        rustix::thread::move_into_link_name_space(
            std::os::fd::AsFd::as_fd(&file),
            Some(rustix::thread::LinkNameSpaceType::Network),
        )
        .unwrap();
        let a = LanSocket::open(19651, va).unwrap();
        let b = LanSocket::open(19651, vb).unwrap();
        let beacon = Beacon { port: 19651, key: PublicKey::from_bytes([7; 32]), query: false };
        let deadline = Instant::now() + Duration::from_secs(3);
        while Instant::now() < deadline {
            a.announce(&beacon).unwrap();
            std::thread::sleep(Duration::from_millis(50));
            if let Some((from, got)) = b.receive().unwrap() {
                return Some((from, got, a.receive().unwrap()));
            }
        }
        None
    })
    .join()
    .unwrap();
    let (from, got, echo) = heard.expect("b heard a's beacon within 3 s");
    assert_eq!(got, Beacon { port: 19651, key: PublicKey::from_bytes([7; 32]), query: false });
    match from {
        std::net::SocketAddr::V6(v6) => assert!(v6.ip().is_unicast_link_local(), "{from}"),
        other => panic!("beacon from {other}"),
    }
    assert!(echo.is_none(), "no multicast loopback to the sender");
}
