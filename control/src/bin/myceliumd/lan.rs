//! LAN discovery's I/O: one thread that keeps a [`LanSocket`] open on every
//! multicast-capable interface that is up (not loopback, not the node's
//! TUN), multicasts the node's beacon on each every [`BEACON_INTERVAL`] (and
//! at once on a newly opened one), and hands the beacons it hears to the
//! engine thread as [`Event::Lan`].
//!
//! Interfaces and their addresses are read again every [`RESCAN`] from
//! `/sys/class/net` and `/proc/net/if_inet6`. A beacon is announced from a
//! routable (global or ULA) IPv6 address of its interface: receivers dial
//! the source, and the dataplane's endpoints carry no scope id, so a
//! link-local source is not dialable; an interface without such an address
//! only listens. Beacons heard from a link-local source are skipped for the
//! same reason.
//!
//! The sockets share the node's port with the dataplane (SO_REUSEPORT), but
//! a dataplane starting up first checks the port is free, which an open
//! LAN socket would defeat: they are open only while `dataplane_up` says
//! the dataplane runs (set by the engine thread from the supervisor and the
//! epoch), and closed within [`POLL`] of it going down.

use std::collections::BTreeMap;
use std::net::{Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Sender;
use std::time::{Duration, Instant};

use mycelium_control::discovery::beacon::{BEACON_INTERVAL, Beacon, LanSocket};
use tracing::{debug, info};

use crate::runtime::Event;

/// How often interfaces and addresses are read again.
const RESCAN: Duration = Duration::from_secs(2);
/// How often the sockets are polled for beacons.
const POLL: Duration = Duration::from_millis(100);
/// Interfaces handled at most (a bound on sockets and work per turn).
const MAX_INTERFACES: usize = 64;

const IFF_UP: u32 = 0x1;
const IFF_LOOPBACK: u32 = 0x8;
const IFF_MULTICAST: u32 = 0x1000;

/// One interface worth a socket: its index and the address to announce from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Interface {
    ifindex: u32,
    source: Option<Ipv6Addr>,
}

/// Starts the LAN discovery thread; it stops when `stop` is set or the engine is gone.
pub fn spawn(
    port: u16,
    tun_name: String,
    beacon: Beacon,
    dataplane_up: Arc<AtomicBool>,
    tx: Sender<Event>,
    stop: Arc<AtomicBool>,
) -> std::io::Result<()> {
    std::thread::Builder::new().name("lan".to_owned()).spawn(move || {
        let mut sockets: BTreeMap<String, (Interface, LanSocket, Instant)> = BTreeMap::new();
        let mut next_scan = Instant::now();
        while !stop.load(Ordering::Relaxed) {
            if !dataplane_up.load(Ordering::Relaxed) {
                sockets.clear();
                next_scan = Instant::now();
                std::thread::sleep(POLL);
                continue;
            }
            let now = Instant::now();
            if now >= next_scan {
                next_scan = now + RESCAN;
                rescan(port, &tun_name, &mut sockets);
            }
            for (name, (iface, socket, next_announce)) in &mut sockets {
                // An interface with no routable address only listens.
                if iface.source.is_some() && now >= *next_announce {
                    *next_announce = now + BEACON_INTERVAL;
                    if let Err(e) = socket.announce(&beacon) {
                        debug!(interface = %name, "LAN beacon not sent: {e}");
                    }
                }
                for _ in 0..64 {
                    match socket.receive() {
                        Ok(Some((from, heard))) => {
                            if is_link_local(&from) {
                                debug!(interface = %name, %from, "LAN beacon from a link-local source skipped");
                                continue;
                            }
                            if tx.send(Event::Lan { from, beacon: heard }).is_err() {
                                return;
                            }
                        }
                        Ok(None) => break,
                        Err(e) => {
                            debug!(interface = %name, "LAN socket: {e}");
                            break;
                        }
                    }
                }
            }
            std::thread::sleep(POLL);
        }
    })?;
    Ok(())
}

fn is_link_local(addr: &SocketAddr) -> bool {
    matches!(addr, SocketAddr::V6(v6) if v6.ip().is_unicast_link_local())
}

/// Opens sockets on new or changed interfaces and closes those gone.
fn rescan(port: u16, tun_name: &str, sockets: &mut BTreeMap<String, (Interface, LanSocket, Instant)>) {
    let found = interfaces(tun_name);
    sockets.retain(|name, (iface, _, _)| found.get(name) == Some(iface));
    for (name, iface) in found {
        if sockets.contains_key(&name) {
            continue;
        }
        match LanSocket::open_from(port, iface.ifindex, iface.source) {
            Ok(socket) => {
                info!(interface = %name, source = ?iface.source, "LAN discovery on");
                sockets.insert(name, (iface, socket, Instant::now()));
            }
            Err(e) => debug!(interface = %name, "LAN socket not opened: {e}"),
        }
    }
}

/// The interfaces worth a LAN socket, by name.
fn interfaces(tun_name: &str) -> BTreeMap<String, Interface> {
    let sources = routable_addresses();
    let mut out = BTreeMap::new();
    let Ok(dir) = std::fs::read_dir("/sys/class/net") else { return out };
    for entry in dir.flatten().take(4 * MAX_INTERFACES) {
        let Ok(name) = entry.file_name().into_string() else { continue };
        if name == tun_name || out.len() >= MAX_INTERFACES {
            continue;
        }
        let read = |file: &str| std::fs::read_to_string(entry.path().join(file)).ok();
        let flags = read("flags").and_then(|f| u32::from_str_radix(f.trim().trim_start_matches("0x"), 16).ok());
        let ifindex = read("ifindex").and_then(|i| i.trim().parse::<u32>().ok());
        let (Some(flags), Some(ifindex)) = (flags, ifindex) else { continue };
        if flags & IFF_UP == 0 || flags & IFF_LOOPBACK != 0 || flags & IFF_MULTICAST == 0 {
            continue;
        }
        out.insert(name, Interface { ifindex, source: sources.get(&ifindex).copied() });
    }
    out
}

/// One routable (global scope, usable) IPv6 address per interface index,
/// from `/proc/net/if_inet6` (`ADDR IFINDEX PREFIXLEN SCOPE FLAGS NAME`, hex).
fn routable_addresses() -> BTreeMap<u32, Ipv6Addr> {
    let text = std::fs::read_to_string("/proc/net/if_inet6").unwrap_or_default();
    parse_if_inet6(&text)
}

fn parse_if_inet6(text: &str) -> BTreeMap<u32, Ipv6Addr> {
    const TENTATIVE_OR_FAILED: u32 = 0x40 | 0x08;
    let mut out = BTreeMap::new();
    for line in text.lines().take(4096) {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let [addr, index, _, scope, flags, ..] = fields[..] else { continue };
        if addr.len() != 32 {
            continue;
        }
        let (Ok(addr), Ok(index), Ok(scope), Ok(flags)) = (
            u128::from_str_radix(addr, 16),
            u32::from_str_radix(index, 16),
            u32::from_str_radix(scope, 16),
            u32::from_str_radix(flags, 16),
        ) else {
            continue;
        };
        let addr = Ipv6Addr::from(addr);
        if scope != 0 || flags & TENTATIVE_OR_FAILED != 0 || addr.is_loopback() {
            continue;
        }
        out.entry(index).or_insert(addr);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routable_addresses_are_read_from_if_inet6_skipping_link_local_and_tentative_ones() {
        let text = "\
fe80000000000000a8c1abfffe123456 05 40 20 80     veth0
fd000107000000000000000000000002 05 40 00 80     veth0
fd000108000000000000000000000002 06 40 00 c0     veth1
00000000000000000000000000000001 01 80 10 80       lo
garbage line
";
        let got = parse_if_inet6(text);
        assert_eq!(got.len(), 1, "{got:?}");
        assert_eq!(got[&5], "fd00:107::2".parse::<Ipv6Addr>().unwrap());
    }
}
