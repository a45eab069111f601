//! Yggdrasil 0.4, one per node, peering over TCP along the line; the middle
//! nodes route (Yggdrasil is a mesh router: traffic is encrypted end to end
//! and the relay forwards it without opening it).
//!
//! Each node gets a fresh key from `yggdrasil -genconf -json` (an ed25519
//! key in hex), a config from [`config`] (no multicast discovery, no admin
//! socket, TUN `mhb<pid>y<i>` with Yggdrasil's default MTU of 65535 unless
//! `--yggdrasil-mtu` says otherwise), and
//! its address from `yggdrasil -useconffile FILE -address`. Node `i`
//! listens on its right link (`tcp://192.168.<150+i>.1:9101`); node `i+1`
//! dials it.

use std::net::IpAddr;
use std::time::Duration;

use anyhow::Context;
use serde_json::json;

use super::{Daemons, WorkDir, find_tool, missing, spawn, tool_version};
use crate::harness::netns::{LineNet, run_stem};
use crate::harness::tunnel::{Running, Tunnel};

/// TCP port of the peering listeners.
pub const PORT: u16 = 9101;

/// Node `i`'s config on a line of `n` nodes, as JSON (which HJSON, the
/// format Yggdrasil reads, includes): keys sorted, so the text is stable.
pub fn line_config(n: usize, i: usize, private_key: &str, ifname: &str, mtu: u32) -> String {
    let listen: Vec<String> =
        if i + 1 < n { vec![format!("tcp://{}:{PORT}", LineNet::link_v4(i, 1))] } else { Vec::new() };
    let peers: Vec<String> =
        if i > 0 { vec![format!("tcp://{}:{PORT}", LineNet::link_v4(i - 1, 1))] } else { Vec::new() };
    let config = json!({
        "PrivateKey": private_key,
        "Peers": peers,
        "InterfacePeers": {},
        "Listen": listen,
        "AdminListen": "none",
        "MulticastInterfaces": [],
        "AllowedPublicKeys": [],
        "IfName": ifname,
        "IfMTU": mtu,
        "NodeInfoPrivacy": true,
        "NodeInfo": null,
    });
    serde_json::to_string_pretty(&config).unwrap_or_default() + "\n"
}

/// The `PrivateKey` of `yggdrasil -genconf -json`'s output.
pub fn private_key_of(genconf: &str) -> anyhow::Result<String> {
    let v: serde_json::Value = serde_json::from_str(genconf).context("yggdrasil -genconf -json: not JSON")?;
    let key = v["PrivateKey"].as_str().context("yggdrasil -genconf -json: no PrivateKey")?;
    anyhow::ensure!(
        key.len() == 128 && key.bytes().all(|b| b.is_ascii_hexdigit()),
        "yggdrasil -genconf -json: PrivateKey is not 64 bytes of hex"
    );
    Ok(key.to_string())
}

/// Yggdrasil on every node.
#[derive(Debug)]
pub struct Yggdrasil {
    /// The TUN MTU (Yggdrasil's default: 65535, so the inner TCP sends
    /// 64 KB segments through the TUN).
    pub mtu: u32,
}

/// Yggdrasil's default TUN MTU.
pub const DEFAULT_MTU: u32 = 65535;

impl Tunnel for Yggdrasil {
    fn name(&self) -> &'static str {
        "yggdrasil"
    }

    fn version(&self) -> Option<String> {
        // 0.4 prints "Build name: ..." then "Build version: ..."; Debian's build leaves both "unknown".
        let out = std::process::Command::new(find_tool("yggdrasil")?).arg("-version").output().ok()?;
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let version = text.lines().find_map(|l| l.strip_prefix("Build version:")).map(str::trim);
        let package = std::process::Command::new("dpkg-query").args(["-W", "-f", "${Version}", "yggdrasil"]).output();
        let package =
            package.ok().filter(|o| o.status.success()).map(|o| String::from_utf8_lossy(&o.stdout).into_owned());
        let version = match (version.filter(|v| *v != "unknown"), package) {
            (Some(v), _) => v.to_string(),
            (None, Some(p)) => format!("{p} (Debian package)"),
            (None, None) => tool_version("yggdrasil", &["-version"])?,
        };
        Some(format!("{version}, TUN MTU {}", self.mtu))
    }

    fn relay(&self) -> &'static str {
        "end to end; the middle node's yggdrasil routes the encrypted traffic between its two TCP peerings"
    }

    fn unavailable(&self, _nodes: usize) -> Option<String> {
        missing(&["yggdrasil"])
    }

    fn start(&self, net: &LineNet) -> anyhow::Result<Box<dyn Running>> {
        let binary = find_tool("yggdrasil").context("yggdrasil not found")?;
        let ygg = binary.to_string_lossy();
        let dir = WorkDir::create("ygg")?;
        let mut configs = Vec::new();
        for i in 0..net.len() {
            let genconf = crate::harness::netns::run(&ygg, &["-genconf", "-json"])?;
            let key = private_key_of(&genconf)?;
            let ifname = format!("{}y{i}", run_stem());
            configs.push(dir.write(&format!("ygg{i}.conf"), &line_config(net.len(), i, &key, &ifname, self.mtu))?);
        }
        let last = configs.last().context("no nodes")?.to_string_lossy().into_owned();
        let address = crate::harness::netns::run(&ygg, &["-useconffile", &last, "-address"])?;
        let target: IpAddr = address.trim().parse().with_context(|| format!("yggdrasil -address: {address:?}"))?;
        // Peerings, then the spanning tree and the path lookup.
        let reach_timeout = Duration::from_secs(30);
        let mut running = Daemons { process: "yggdrasil", target, daemons: Vec::new(), reach_timeout, dir };
        for (i, conf) in configs.iter().enumerate() {
            let args = ["-useconffile", &conf.to_string_lossy(), "-logto", "stdout", "-loglevel", "warn"];
            let mut daemon = spawn(net, i, &binary, args, &[])?;
            std::thread::sleep(Duration::from_millis(200));
            daemon.check_running("yggdrasil")?;
            running.daemons.push(daemon);
        }
        Ok(Box::new(running))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "d994fd1659a55eb0bd9fecd1f6187558df56a1c6982ca2c88ea7ebce0425d13c\
                       3716d21ea21887230be5767b1e7c6b9fe34d9b5648dd135cabf3b13d62142d71";

    #[test]
    fn the_middle_of_a_line_listens_right_and_dials_left_golden() {
        let expected = format!(
            r#"{{
  "AdminListen": "none",
  "AllowedPublicKeys": [],
  "IfMTU": 65535,
  "IfName": "mhb7y1",
  "InterfacePeers": {{}},
  "Listen": [
    "tcp://192.168.151.1:9101"
  ],
  "MulticastInterfaces": [],
  "NodeInfo": null,
  "NodeInfoPrivacy": true,
  "Peers": [
    "tcp://192.168.150.1:9101"
  ],
  "PrivateKey": "{KEY}"
}}
"#
        );
        assert_eq!(line_config(3, 1, KEY, "mhb7y1", DEFAULT_MTU), expected);
    }

    #[test]
    fn the_ends_of_a_line_only_listen_or_only_dial() {
        let first: serde_json::Value = serde_json::from_str(&line_config(2, 0, KEY, "a", 1400)).unwrap();
        let last: serde_json::Value = serde_json::from_str(&line_config(2, 1, KEY, "b", 1400)).unwrap();
        assert_eq!(first["Listen"], json!(["tcp://192.168.150.1:9101"]));
        assert_eq!(first["Peers"], json!([]));
        assert_eq!(last["Listen"], json!([]));
        assert_eq!(last["Peers"], json!(["tcp://192.168.150.1:9101"]));
        assert_eq!(last["IfMTU"], json!(1400));
    }

    #[test]
    fn the_private_key_is_taken_from_genconf_output_and_checked() {
        let genconf = format!(r#"{{"Peers": [], "PrivateKey": "{KEY}", "IfMTU": 65535}}"#);
        assert_eq!(private_key_of(&genconf).unwrap(), KEY);
        assert!(private_key_of(r#"{"PrivateKey": "abc"}"#).is_err());
        assert!(private_key_of("PrivateKey: x").is_err());
    }
}
