//! Network namespaces in a line, joined by veth pairs, and their cleanup.
//!
//! Every name starts with [`PREFIX`] and the harness's pid, so runs never
//! collide and [`sweep`] can remove everything a run (this one, or a dead
//! earlier one) left behind: the processes inside its namespaces, the
//! namespaces (which takes their veths and TUNs with them), its
//! shared-memory directories, the alternatives' work directories in the
//! temp dir and their WireGuard UAPI sockets. No interface is created in
//! the root namespace.

use std::net::Ipv6Addr;
use std::path::PathBuf;
use std::process::{Command, Output};

use anyhow::{Context, bail};

/// First characters of every namespace the harness creates.
pub const PREFIX: &str = "mhb";
/// First characters of every shared-memory directory the harness creates.
const SHM_PREFIX: &str = "mycelium-bench-";
/// Third octet (IPv4) and second group (IPv6) of the first link's subnet.
const FIRST_NET: u8 = 150;

/// Runs `program args`, failing with its output if it exits non-zero.
pub fn run(program: &str, args: &[&str]) -> anyhow::Result<String> {
    let out = Command::new(program).args(args).output().with_context(|| format!("running {program}"))?;
    check(program, args, &out)?;
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn check(program: &str, args: &[&str], out: &Output) -> anyhow::Result<()> {
    if !out.status.success() {
        bail!(
            "{program} {} failed ({}): {}{}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

/// The name stem of this run: prefix and pid.
pub fn run_stem() -> String {
    format!("{PREFIX}{}", std::process::id())
}

/// The shared-memory directory of node `index` in this run.
pub fn shm_dir(index: usize) -> PathBuf {
    PathBuf::from(format!("/dev/shm/{SHM_PREFIX}{}-n{index}", std::process::id()))
}

/// `n` namespaces in a line: node `i` and node `i + 1` share link `i`, a
/// veth pair with `192.168.<150+i>.1/24` and `fd00:<hex 150+i>::1/64` on
/// node `i`'s end, `.2` / `::2` on node `i + 1`'s end. With `forward`, the middle
/// nodes forward IPv6 and every node has routes to every link, so the raw
/// path from one end to the other crosses the relays in the kernel.
#[derive(Debug)]
pub struct LineNet {
    names: Vec<String>,
}

impl LineNet {
    /// Creates the namespaces and links (see the type docs).
    pub fn create(n: usize) -> anyhow::Result<LineNet> {
        if !(2..=9).contains(&n) {
            bail!("a line of {n} nodes: 2 to 9 are supported");
        }
        let stem = run_stem();
        let net = LineNet { names: (0..n).map(|i| format!("{stem}n{i}")).collect() };
        for name in &net.names {
            run("ip", &["netns", "add", name])?;
            net.ip(net.index(name), &["link", "set", "lo", "up"])?;
        }
        for link in 0..n - 1 {
            let (left, right) = (&net.names[link], &net.names[link + 1]);
            let (dev_l, dev_r) = (format!("{stem}v{link}a"), format!("{stem}v{link}b"));
            run("ip", &["link", "add", &dev_l, "netns", left, "type", "veth", "peer", "name", &dev_r, "netns", right])?;
            for (node, dev, host) in [(link, &dev_l, 1u16), (link + 1, &dev_r, 2)] {
                let (v4, v6) = (Self::link_v4(link, host as u8), Self::link_v6(link, host));
                net.ip(node, &["addr", "add", &format!("{v4}/24"), "dev", dev])?;
                net.ip(node, &["-6", "addr", "add", &format!("{v6}/64"), "dev", dev, "nodad"])?;
                net.ip(node, &["link", "set", dev, "up"])?;
            }
        }
        net.route_across(n)?;
        Ok(net)
    }

    fn index(&self, name: &str) -> usize {
        self.names.iter().position(|n| n == name).unwrap_or(0)
    }

    /// Relays forward IPv6; each node routes the links it is not on through
    /// its neighbour towards them.
    fn route_across(&self, n: usize) -> anyhow::Result<()> {
        for relay in 1..n - 1 {
            self.exec(relay, "sysctl", &["-q", "-w", "net.ipv6.conf.all.forwarding=1"])?;
        }
        for node in 0..n {
            for link in 0..n - 1 {
                let via = if link > node {
                    Self::link_v6(node, 2) // right neighbour, on link `node`
                } else if link + 1 < node {
                    Self::link_v6(node - 1, 1) // left neighbour, on link `node - 1`
                } else {
                    continue; // a link this node is on
                };
                let dest = format!("{}/64", Self::link_v6(link, 0));
                self.ip(node, &["-6", "route", "add", &dest, "via", &via.to_string()])?;
            }
        }
        Ok(())
    }

    /// Node `i`'s namespace name.
    pub fn name(&self, i: usize) -> &str {
        &self.names[i]
    }

    /// Number of nodes.
    pub fn len(&self) -> usize {
        self.names.len()
    }

    /// Whether the line has no node (never: `create` needs two).
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// The IPv6 address of link `link`'s end `host` (1: left node, 2: right).
    pub fn link_v6(link: usize, host: u16) -> Ipv6Addr {
        Ipv6Addr::new(0xfd00, u16::from(FIRST_NET) + link as u16, 0, 0, 0, 0, 0, host)
    }

    /// The IPv4 address of link `link`'s end `host`, as text.
    pub fn link_v4(link: usize, host: u8) -> String {
        format!("192.168.{}.{host}", u16::from(FIRST_NET) + link as u16)
    }

    /// `ip -n <node i> args`.
    pub fn ip(&self, i: usize, args: &[&str]) -> anyhow::Result<String> {
        let mut all = vec!["-n", self.names[i].as_str()];
        all.extend_from_slice(args);
        run("ip", &all)
    }

    /// Runs `program args` in node `i`'s namespace, to completion.
    pub fn exec(&self, i: usize, program: &str, args: &[&str]) -> anyhow::Result<String> {
        let mut all = vec!["netns", "exec", self.names[i].as_str(), program];
        all.extend_from_slice(args);
        run("ip", &all)
    }

    /// A command that runs `program` in node `i`'s namespace (`ip netns exec`
    /// execs it, so the child's pid is the program's).
    pub fn command(&self, i: usize, program: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.names[i], program]);
        c
    }
}

impl Drop for LineNet {
    fn drop(&mut self) {
        for name in &self.names {
            remove_namespace(name);
        }
    }
}

/// Kills every process in namespace `name`, then deletes it.
fn remove_namespace(name: &str) {
    if let Ok(out) = Command::new("ip").args(["netns", "pids", name]).output() {
        for pid in String::from_utf8_lossy(&out.stdout).split_whitespace().filter_map(|p| p.parse::<i32>().ok()) {
            // Safety: kill has no memory preconditions; the pid was just
            // listed as living in a namespace this harness created.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
    }
    let _ = Command::new("ip").args(["netns", "del", name]).output();
}

fn pid_alive(pid: u32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}

/// The harness pid a name of ours carries after `prefix`, if any.
fn owner_pid(name: &str, prefix: &str) -> Option<u32> {
    let rest = name.strip_prefix(prefix)?;
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// Removes what harness runs left behind: this run's (`include_self`) and
/// those of runs whose process is gone. Never touches another live run.
pub fn sweep(include_self: bool) {
    let me = std::process::id();
    let ours = |pid: u32| (include_self && pid == me) || (pid != me && !pid_alive(pid));
    if let Ok(out) = Command::new("ip").args(["netns", "list"]).output() {
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        for name in text.lines().filter_map(|l| l.split_whitespace().next()) {
            if owner_pid(name, PREFIX).is_some_and(ours) {
                remove_namespace(name);
            }
        }
    }
    // Shared memory of our dataplanes and nodes, the alternatives' work
    // directories, and WireGuard UAPI sockets a killed daemon left.
    let leftovers = [
        (PathBuf::from("/dev/shm"), SHM_PREFIX),
        (std::env::temp_dir(), PREFIX),
        (PathBuf::from("/var/run/wireguard"), PREFIX),
    ];
    for (dir, prefix) in leftovers {
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if owner_pid(&name, prefix).is_some_and(ours) {
                let path = entry.path();
                if path.is_dir() {
                    let _ = std::fs::remove_dir_all(&path);
                } else {
                    let _ = std::fs::remove_file(&path);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owner_pids_are_read_from_our_names_only() {
        assert_eq!(owner_pid("mhb1234n0", PREFIX), Some(1234));
        assert_eq!(owner_pid("mycelium-bench-77-n1", SHM_PREFIX), Some(77));
        assert_eq!(owner_pid("mdp1234sa", PREFIX), None);
        assert_eq!(owner_pid("mhbx", PREFIX), None);
    }

    #[test]
    fn link_addresses_follow_the_line() {
        assert_eq!(LineNet::link_v6(0, 1).to_string(), "fd00:96::1");
        assert_eq!(LineNet::link_v4(1, 2), "192.168.151.2");
    }
}
