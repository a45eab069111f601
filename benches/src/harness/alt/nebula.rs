//! Nebula 1.6, one per node, with certificates from a throw-away CA made by
//! `nebula-cert` for each start.
//!
//! Node `i` is `10.78.0.<i+1>/24` on TUN `mhb<pid>b<i>` (Nebula's default MTU
//! 1300), listening on UDP 4242 of all its addresses, AES-GCM (Nebula's
//! default cipher), firewall open. Node 1 is the lighthouse (found by the
//! others through `static_host_map` on their shared link). On a line of
//! three, node 1 is also the relay (`am_relay`), and the ends name it in
//! `relay.relays`: the ends cannot reach each other's underlay address
//! (nothing routes IPv4 across the middle, and `local_allow_list` keeps
//! them from advertising their IPv6 link addresses, which the kernel would
//! forward), so they talk through it, still encrypted end to end. Nebula relays one hop only: longer lines are
//! skipped.

use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::time::Duration;

use anyhow::Context;

use super::{Daemons, WorkDir, find_tool, missing, overlay_v4, spawn, tool_version};
use crate::harness::netns::{LineNet, run_stem};
use crate::harness::process::Guarded;
use crate::harness::tunnel::{Running, Tunnel};

/// The UDP port every node listens on.
pub const PORT: u16 = 4242;
/// Second octet of the overlay subnet.
const NET: u8 = 78;
/// The lighthouse (and, on a line of three, the relay).
const LIGHTHOUSE: usize = 1;

/// Node `i`'s overlay address.
pub fn address(i: usize) -> Ipv4Addr {
    overlay_v4(NET, i)
}

/// Node `i`'s config on a line of `n` (2 or 3) nodes, its certificates in
/// `pki_dir` as `ca.crt`, `n<i>.crt` and `n<i>.key`.
pub fn line_config(n: usize, i: usize, pki_dir: &Path, ifname: &str) -> String {
    let lighthouse = address(LIGHTHOUSE);
    let am_lighthouse = i == LIGHTHOUSE;
    let am_relay = am_lighthouse && n > 2;
    // The lighthouse's underlay address on the link this node shares with it.
    let underlay = if i < LIGHTHOUSE { LineNet::link_v4(i, 2) } else { LineNet::link_v4(LIGHTHOUSE, 1) };
    let static_map =
        if am_lighthouse { " {}".to_string() } else { format!("\n  \"{lighthouse}\": [\"{underlay}:{PORT}\"]") };
    let hosts = if am_lighthouse { "[]".to_string() } else { format!("[\"{lighthouse}\"]") };
    let relays = if n > 2 && !am_relay { format!("[\"{lighthouse}\"]") } else { "[]".to_string() };
    let dir = pki_dir.display();
    format!(
        "pki:
  ca: {dir}/ca.crt
  cert: {dir}/n{i}.crt
  key: {dir}/n{i}.key
static_host_map:{static_map}
lighthouse:
  am_lighthouse: {am_lighthouse}
  interval: 60
  hosts: {hosts}
  local_allow_list:
    \"192.168.0.0/16\": true
listen:
  host: 0.0.0.0
  port: {PORT}
punchy:
  punch: false
relay:
  am_relay: {am_relay}
  use_relays: true
  relays: {relays}
tun:
  disabled: false
  dev: {ifname}
  drop_local_broadcast: false
  drop_multicast: false
  tx_queue: 500
  mtu: 1300
logging:
  level: warning
  format: text
firewall:
  outbound:
    - port: any
      proto: any
      host: any
  inbound:
    - port: any
      proto: any
      host: any
"
    )
}

/// Nebula on every node.
#[derive(Debug)]
pub struct Nebula;

impl Nebula {
    /// A CA and one certificate per node in `dir`.
    fn make_pki(dir: &Path, n: usize) -> anyhow::Result<()> {
        let cert = find_tool("nebula-cert").context("nebula-cert not found")?;
        let cert = cert.to_string_lossy();
        let path = |name: &str| dir.join(name).to_string_lossy().into_owned();
        let (ca_crt, ca_key) = (path("ca.crt"), path("ca.key"));
        crate::harness::netns::run(
            &cert,
            &["ca", "-name", "mycelium-bench", "-out-crt", &ca_crt, "-out-key", &ca_key],
        )?;
        for i in 0..n {
            let ip = format!("{}/24", address(i));
            let (crt, key) = (path(&format!("n{i}.crt")), path(&format!("n{i}.key")));
            let name = format!("n{i}");
            let args = [
                "sign", "-ca-crt", &ca_crt, "-ca-key", &ca_key, "-name", &name, "-ip", &ip, "-out-crt", &crt,
                "-out-key", &key,
            ];
            crate::harness::netns::run(&cert, &args)?;
        }
        Ok(())
    }
}

impl Tunnel for Nebula {
    fn name(&self) -> &'static str {
        "nebula"
    }

    fn version(&self) -> Option<String> {
        let v = tool_version("nebula", &["-version"])?;
        Some(v.strip_prefix("Version: ").unwrap_or(&v).to_string())
    }

    fn relay(&self) -> &'static str {
        "end to end; the middle node is the lighthouse and a Nebula relay (am_relay), forwarding the \
         ends' encrypted packets"
    }

    fn unavailable(&self, nodes: usize) -> Option<String> {
        if nodes > 3 {
            return Some("Nebula relays one hop only; a line of more than three nodes has no path".into());
        }
        missing(&["nebula", "nebula-cert"])
    }

    fn start(&self, net: &LineNet) -> anyhow::Result<Box<dyn Running>> {
        let binary = find_tool("nebula").context("nebula not found")?;
        let dir = WorkDir::create("nebula")?;
        Self::make_pki(dir.path(), net.len())?;
        let mut configs = Vec::new();
        for i in 0..net.len() {
            let ifname = format!("{}b{i}", run_stem());
            configs.push(dir.write(&format!("n{i}.yml"), &line_config(net.len(), i, dir.path(), &ifname))?);
        }
        // Lighthouse query, a failed direct handshake, then the relay.
        let reach_timeout = Duration::from_secs(30);
        let target = IpAddr::V4(address(net.len() - 1));
        let mut running = Daemons { process: "nebula", target, daemons: Vec::new(), reach_timeout, dir };
        // The lighthouse first, so the others find it at once.
        let order: Vec<usize> =
            std::iter::once(LIGHTHOUSE).chain((0..net.len()).filter(|&i| i != LIGHTHOUSE)).collect();
        let mut started: Vec<(usize, Guarded)> = Vec::new();
        for i in order {
            let mut daemon = spawn(net, i, &binary, ["-config", &configs[i].to_string_lossy()], &[])?;
            std::thread::sleep(Duration::from_millis(200));
            daemon.check_running("nebula")?;
            started.push((i, daemon));
        }
        started.sort_by_key(|(i, _)| *i);
        running.daemons = started.into_iter().map(|(_, d)| d).collect();
        Ok(Box::new(running))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_end_of_a_three_node_line_finds_the_lighthouse_and_names_it_as_its_relay_golden() {
        let expected = "pki:
  ca: /pki/ca.crt
  cert: /pki/n0.crt
  key: /pki/n0.key
static_host_map:
  \"10.78.0.2\": [\"192.168.150.2:4242\"]
lighthouse:
  am_lighthouse: false
  interval: 60
  hosts: [\"10.78.0.2\"]
  local_allow_list:
    \"192.168.0.0/16\": true
listen:
  host: 0.0.0.0
  port: 4242
punchy:
  punch: false
relay:
  am_relay: false
  use_relays: true
  relays: [\"10.78.0.2\"]
tun:
  disabled: false
  dev: mhb7b0
  drop_local_broadcast: false
  drop_multicast: false
  tx_queue: 500
  mtu: 1300
logging:
  level: warning
  format: text
firewall:
  outbound:
    - port: any
      proto: any
      host: any
  inbound:
    - port: any
      proto: any
      host: any
";
        assert_eq!(line_config(3, 0, Path::new("/pki"), "mhb7b0"), expected);
    }

    #[test]
    fn the_middle_of_a_three_node_line_is_lighthouse_and_relay() {
        let c = line_config(3, 1, Path::new("/pki"), "x");
        assert!(c.contains("static_host_map: {}\n"), "{c}");
        assert!(c.contains("  am_lighthouse: true\n  interval: 60\n  hosts: []\n  local_allow_list:\n"), "{c}");
        assert!(c.contains("  am_relay: true\n  use_relays: true\n  relays: []\n"), "{c}");
        let last = line_config(3, 2, Path::new("/pki"), "x");
        assert!(last.contains("\"10.78.0.2\": [\"192.168.151.1:4242\"]"), "{last}");
        assert!(last.contains("cert: /pki/n2.crt"), "{last}");
    }

    #[test]
    fn on_two_nodes_nobody_relays_and_the_far_end_is_the_lighthouse() {
        let first = line_config(2, 0, Path::new("/pki"), "x");
        assert!(first.contains("\"10.78.0.2\": [\"192.168.150.2:4242\"]"), "{first}");
        assert!(first.contains("  am_relay: false\n  use_relays: true\n  relays: []\n"), "{first}");
        assert!(line_config(2, 1, Path::new("/pki"), "x").contains("am_lighthouse: true"));
    }

    #[test]
    fn lines_longer_than_three_are_refused_with_a_reason() {
        assert!(Nebula.unavailable(4).unwrap().contains("one hop"));
    }
}
