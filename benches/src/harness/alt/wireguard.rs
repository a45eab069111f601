//! WireGuard in user space: wireguard-go or boringtun, one per node, each
//! creating its TUN and configured through its UAPI socket with
//! `wg setconf` (this kernel has no WireGuard module).
//!
//! Addresses: node `i` is `10.77.0.<i+1>/24` on interface `mhb<pid>w<i>`
//! (MTU 1420, WireGuard's default), listening on UDP 51820 of its link
//! addresses. WireGuard has no relaying of its own: on a line, each node
//! peers with its neighbours only, a neighbour's `AllowedIPs` are the
//! overlay addresses of every node on that side, and the middle nodes
//! forward IPv4 between their two peers in the kernel (decrypting and
//! encrypting again: hop by hop, not end to end).
//!
//! Keys are fixed per node (x25519 from a seed, base64 as `wg` writes
//! them), so the generated configs are deterministic.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use mycelium_common::identity::SecretKey;

use super::{WorkDir, find_tool, missing, overlay_v4, spawn, stop_all, tool_version};
use crate::harness::netns::{LineNet, run, run_stem};
use crate::harness::process::{Guarded, wait_for};
use crate::harness::tunnel::{Agent, Running, Tunnel};

/// The UDP port every node listens on.
pub const PORT: u16 = 51820;
/// Second octet of the overlay subnet.
const NET: u8 = 77;
const MTU: &str = "1420";

/// Which user-space WireGuard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Implementation {
    /// wireguard-go (Go), the reference user-space implementation.
    Go,
    /// boringtun (Rust), the crates.io package boringtun-cli.
    Boringtun,
}

impl Implementation {
    fn program(self) -> &'static str {
        match self {
            Implementation::Go => "wireguard-go",
            Implementation::Boringtun => "boringtun-cli",
        }
    }
}

/// A WireGuard key pair in `wg`'s base64 form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyPair {
    pub private: String,
    pub public: String,
}

impl KeyPair {
    /// The pair whose private key is `secret` (clamped by both ends alike).
    pub fn from_secret(secret: [u8; 32]) -> KeyPair {
        let public = SecretKey::from_bytes(secret).public_key();
        KeyPair { private: base64(&secret), public: base64(public.as_bytes()) }
    }

    /// Node `i`'s fixed pair.
    pub fn for_node(i: usize) -> KeyPair {
        KeyPair::from_secret([0xA0 + i as u8; 32])
    }
}

/// Standard base64 with padding (RFC 4648 section 4), as `wg` uses.
pub fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [chunk[0], chunk.get(1).copied().unwrap_or(0), chunk.get(2).copied().unwrap_or(0)];
        let n = u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]);
        for i in 0..4 {
            let c = if i <= chunk.len() { ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char } else { '=' };
            out.push(c);
        }
    }
    out
}

/// Node `i`'s `wg setconf` file on a line of `n` nodes with `keys[j]` for
/// node `j`: its private key and port, and a peer per neighbour that allows
/// the overlay addresses of every node on that side.
pub fn line_config(n: usize, i: usize, keys: &[KeyPair]) -> String {
    let mut s = format!("[Interface]\nPrivateKey = {}\nListenPort = {PORT}\n", keys[i].private);
    let mut peer = |j: usize, nodes: std::ops::Range<usize>, endpoint: String| {
        let allowed: Vec<String> = nodes.map(|k| format!("{}/32", overlay_v4(NET, k))).collect();
        s.push_str(&format!(
            "\n[Peer]\nPublicKey = {}\nAllowedIPs = {}\nEndpoint = {endpoint}:{PORT}\n",
            keys[j].public,
            allowed.join(", ")
        ));
    };
    if i > 0 {
        peer(i - 1, 0..i, LineNet::link_v4(i - 1, 1));
    }
    if i + 1 < n {
        peer(i + 1, i + 1..n, LineNet::link_v4(i, 2));
    }
    s
}

/// One user-space WireGuard per node.
#[derive(Debug)]
pub struct WireGuard {
    pub implementation: Implementation,
}

struct WgRunning {
    target: IpAddr,
    daemons: Vec<Guarded>,
    process: &'static str,
    /// Namespaces of the middle nodes, which forward while this runs.
    forwarding: Vec<String>,
    _dir: WorkDir,
}

impl WireGuard {
    fn interface(i: usize) -> String {
        format!("{}w{i}", run_stem())
    }

    fn start_node(&self, net: &LineNet, dir: &WorkDir, keys: &[KeyPair], i: usize) -> anyhow::Result<Guarded> {
        let program = self.implementation.program();
        let binary = find_tool(program).with_context(|| format!("{program} not found"))?;
        let ifname = Self::interface(i);
        let mut daemon = match self.implementation {
            Implementation::Go => spawn(
                net,
                i,
                &binary,
                ["-f", &ifname],
                &[("LOG_LEVEL", "error"), ("WG_I_PREFER_BUGGY_USERSPACE_TO_POLISHED_KMOD", "1")],
            )?,
            Implementation::Boringtun => {
                let log = dir.path().join(format!("boringtun-{i}.log"));
                let log = log.to_string_lossy();
                spawn(net, i, &binary, ["-f", "--disable-drop-privileges", "-l", &log, &ifname], &[])?
            }
        };
        let socket = PathBuf::from(format!("/var/run/wireguard/{ifname}.sock"));
        wait_for(Duration::from_secs(10), || socket.exists().then_some(()))
            .with_context(|| format!("{program} on node {i}: no {} ({})", socket.display(), daemon.log_text()))?;
        daemon.check_running(program)?;
        let conf = dir.write(&format!("wg{i}.conf"), &line_config(net.len(), i, keys))?;
        let wg = find_tool("wg").context("wg not found")?;
        net.exec(i, &wg.to_string_lossy(), &["setconf", &ifname, &conf.to_string_lossy()])?;
        net.ip(i, &["addr", "add", &format!("{}/24", overlay_v4(NET, i)), "dev", &ifname])?;
        net.ip(i, &["link", "set", &ifname, "mtu", MTU, "up"])?;
        if i > 0 && i + 1 < net.len() {
            // The middle node routes between its two peers, out of the
            // interface it came in by: forward, and send no redirects.
            let redirects = format!("net.ipv4.conf.{ifname}.send_redirects=0");
            for setting in ["net.ipv4.ip_forward=1", "net.ipv4.conf.all.send_redirects=0", &redirects] {
                net.exec(i, "sysctl", &["-q", "-w", setting])?;
            }
        }
        Ok(daemon)
    }
}

impl Tunnel for WireGuard {
    fn name(&self) -> &'static str {
        self.implementation.program().trim_end_matches("-cli")
    }

    fn version(&self) -> Option<String> {
        let v = tool_version(self.implementation.program(), &["--version"])?;
        // wireguard-go prints "wireguard-go v0.0.2022..." first; boringtun "boringtun 0.7.1".
        Some(v.split_whitespace().nth(1).unwrap_or(&v).to_string())
    }

    fn relay(&self) -> &'static str {
        "not a relay of its own: the middle node peers with both ends and the kernel forwards \
         between the two peers (decrypted there, encrypted again)"
    }

    fn unavailable(&self, _nodes: usize) -> Option<String> {
        missing(&[self.implementation.program(), "wg"])
    }

    fn start(&self, net: &LineNet) -> anyhow::Result<Box<dyn Running>> {
        let dir = WorkDir::create(self.name())?;
        let keys: Vec<KeyPair> = (0..net.len()).map(KeyPair::for_node).collect();
        let mut running = WgRunning {
            target: IpAddr::V4(overlay_v4(NET, net.len() - 1)),
            daemons: Vec::new(),
            process: self.implementation.program(),
            forwarding: (1..net.len() - 1).map(|i| net.name(i).to_string()).collect(),
            _dir: dir,
        };
        for i in 0..net.len() {
            let daemon = self.start_node(net, &running._dir, &keys, i)?;
            running.daemons.push(daemon);
        }
        Ok(Box::new(running))
    }
}

impl Running for WgRunning {
    fn target(&self) -> IpAddr {
        self.target
    }

    fn agents(&self) -> Vec<Agent> {
        let agent = |(node, d): (usize, &Guarded)| Agent { node, process: self.process.into(), pid: d.pid() };
        self.daemons.iter().enumerate().map(agent).collect()
    }

    fn logs(&self) -> Vec<String> {
        self.daemons.iter().map(Guarded::log_text).collect()
    }

    fn stop(mut self: Box<Self>) -> anyhow::Result<()> {
        // The next path on these namespaces starts from the same settings.
        for ns in &self.forwarding {
            let _ = run("ip", &["netns", "exec", ns, "sysctl", "-q", "-w", "net.ipv4.ip_forward=0"]);
        }
        stop_all(self.process, &mut self.daemons)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc_4648_vectors() {
        let cases = [("", ""), ("f", "Zg=="), ("fo", "Zm8="), ("foo", "Zm9v"), ("foobar", "Zm9vYmFy")];
        for (plain, encoded) in cases {
            assert_eq!(base64(plain.as_bytes()), encoded);
        }
    }

    #[test]
    fn key_pairs_match_rfc_7748s_x25519_vector_in_wg_form() {
        let secret = hex::decode("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a").unwrap();
        let public = hex::decode("8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a").unwrap();
        let pair = KeyPair::from_secret(secret.clone().try_into().unwrap());
        assert_eq!(pair.private, base64(&secret));
        assert_eq!(pair.public, base64(&public));
        assert_eq!(pair.public, "hSDwCYkwp1R0i33ctD73Wg2/Og0mOBr066SpjqqbTmo=");
    }

    #[test]
    fn the_middle_of_a_three_node_line_peers_both_ways_with_one_side_each() {
        let keys: Vec<KeyPair> = (0..3).map(KeyPair::for_node).collect();
        let expected = format!(
            "[Interface]\nPrivateKey = {}\nListenPort = 51820\n\n\
             [Peer]\nPublicKey = {}\nAllowedIPs = 10.77.0.1/32\nEndpoint = 192.168.150.1:51820\n\n\
             [Peer]\nPublicKey = {}\nAllowedIPs = 10.77.0.3/32\nEndpoint = 192.168.151.2:51820\n",
            keys[1].private, keys[0].public, keys[2].public
        );
        assert_eq!(line_config(3, 1, &keys), expected);
    }

    #[test]
    fn an_end_of_a_three_node_line_reaches_both_others_through_its_neighbour() {
        let keys: Vec<KeyPair> = (0..3).map(KeyPair::for_node).collect();
        let expected = format!(
            "[Interface]\nPrivateKey = {}\nListenPort = 51820\n\n\
             [Peer]\nPublicKey = {}\nAllowedIPs = 10.77.0.2/32, 10.77.0.3/32\nEndpoint = 192.168.150.2:51820\n",
            keys[0].private, keys[1].public
        );
        assert_eq!(line_config(3, 0, &keys), expected);
        let last = line_config(3, 2, &keys);
        assert!(last.contains("AllowedIPs = 10.77.0.1/32, 10.77.0.2/32\nEndpoint = 192.168.151.1:51820\n"), "{last}");
    }

    #[test]
    fn fixed_node_keys_are_stable_golden_text() {
        let k = KeyPair::for_node(0);
        assert_eq!(k.private, "oKCgoKCgoKCgoKCgoKCgoKCgoKCgoKCgoKCgoKCgoKA=");
        assert_eq!(k.public.len(), 44);
        assert_ne!(KeyPair::for_node(1).public, k.public);
    }
}
