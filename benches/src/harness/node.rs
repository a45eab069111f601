//! The full mycelium node: `myceliumd` on every node, which starts and
//! supervises its `mycelium-dataplane`, peers with its neighbours (static
//! peers along the line, LAN discovery off), computes routes and sets up the
//! end-to-end sessions itself. The agents whose CPU time counts are both
//! processes of each node.
//!
//! Node `i` has a fixed key, instance `bench-<pid>-node<i>` (so its
//! `/dev/shm/mycelium-bench-<pid>-node<i>` is swept with the harness's
//! other leftovers), TUN `mhb<pid>m<i>`, shards on core `i % cores`, and
//! dials its left neighbour `udp://KEY@192.168.<150+i-1>.1:9651`.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use mycelium_common::identity::SecretKey;
use mycelium_dataplane::io::shm::read_all_counters;

use super::alt::{WorkDir, spawn, stop_all};
use super::netns::{LineNet, run_stem};
use super::process::{Guarded, wait_for};
use super::tunnel::{Agent, NodeStats, Running, Tunnel};

/// The node's UDP port (myceliumd's default).
const PORT: u16 = 9651;

/// Node `i`'s secret key.
fn secret(i: usize) -> SecretKey {
    SecretKey::from_bytes([0xB1 + i as u8; 32])
}

/// `myceliumd`'s arguments for node `i` on a line (the dataplane binary is
/// passed in the environment, `MYCELIUM_DATAPLANE`).
pub fn node_args(i: usize, key_file: &str, cores: usize, shards: usize) -> Vec<String> {
    let stem = run_stem();
    let mut args = vec![
        "--key-file".to_string(),
        key_file.to_string(),
        "--instance".into(),
        instance(i),
        "--tun-name".into(),
        format!("{stem}m{i}"),
        "--lan-discovery=false".into(),
        "--cores".into(),
        super::shard_cores(i, shards, cores),
    ];
    if i > 0 {
        let left = secret(i - 1).public_key().to_hex();
        args.extend(["--peer".into(), format!("udp://{left}@{}:{PORT}", LineNet::link_v4(i - 1, 1))]);
    }
    args
}

fn instance(i: usize) -> String {
    format!("bench-{}-node{i}", std::process::id())
}

fn shm(i: usize) -> PathBuf {
    PathBuf::from(format!("/dev/shm/mycelium-{}", instance(i)))
}

/// `myceliumd` (with its dataplane) on every node.
#[derive(Debug)]
pub struct MyceliumNode {
    pub myceliumd: PathBuf,
    pub dataplane: PathBuf,
    pub cores: usize,
    /// Shards per dataplane (at most `cores`).
    pub shards: usize,
}

struct NodeRunning {
    target: IpAddr,
    daemons: Vec<Guarded>,
    dataplanes: Vec<u32>,
    n: usize,
    _dir: WorkDir,
}

impl Tunnel for MyceliumNode {
    fn name(&self) -> &'static str {
        "mycelium node"
    }

    fn relay(&self) -> &'static str {
        "end to end; the middle node's dataplane forwards sealed packets on routes its myceliumd computed"
    }

    fn unavailable(&self, _nodes: usize) -> Option<String> {
        let gone: Vec<String> = [&self.myceliumd, &self.dataplane]
            .iter()
            .filter(|p| !p.is_file())
            .map(|p| p.display().to_string())
            .collect();
        (!gone.is_empty()).then(|| format!("{} not built (benches/harness/run.sh builds them)", gone.join(", ")))
    }

    fn start(&self, net: &LineNet) -> anyhow::Result<Box<dyn Running>> {
        let dir = WorkDir::create("node")?;
        let dataplane = self.dataplane.to_string_lossy().into_owned();
        let mut running = NodeRunning {
            target: IpAddr::V6(secret(net.len() - 1).address().ip()),
            daemons: Vec::new(),
            dataplanes: Vec::new(),
            n: net.len(),
            _dir: dir,
        };
        for i in 0..net.len() {
            let key_file = running._dir.path().join(format!("n{i}.key"));
            secret(i).save(&key_file).context("writing a key file")?;
            let args = node_args(i, &key_file.to_string_lossy(), self.cores, self.shards);
            let env = [("MYCELIUM_DATAPLANE", dataplane.as_str()), ("NO_COLOR", "1")];
            let mut daemon = spawn(net, i, &self.myceliumd, &args, &env)?;
            let ready = wait_for(Duration::from_secs(15), || {
                let log = daemon.log_text();
                (log.contains("myceliumd running") || daemon.try_wait().ok().flatten().is_some()).then_some(())
            });
            daemon.check_running("myceliumd")?;
            ready.with_context(|| format!("myceliumd on node {i} not running:\n{}", daemon.log_text()))?;
            let pid_file = shm(i).join("dataplane.pid");
            let pid =
                wait_for(Duration::from_secs(10), || std::fs::read_to_string(&pid_file).ok()?.trim().parse().ok())
                    .with_context(|| format!("node {i}: no {}", pid_file.display()))?;
            running.daemons.push(daemon);
            running.dataplanes.push(pid);
        }
        Ok(Box::new(running))
    }
}

impl Running for NodeRunning {
    fn target(&self) -> IpAddr {
        self.target
    }

    fn agents(&self) -> Vec<Agent> {
        let mut agents = Vec::new();
        for (node, (d, &dp)) in self.daemons.iter().zip(&self.dataplanes).enumerate() {
            agents.push(Agent { node, process: "myceliumd".into(), pid: d.pid() });
            agents.push(Agent { node, process: "mycelium-dataplane".into(), pid: dp });
        }
        agents
    }

    fn reach_timeout(&self) -> Duration {
        // Link handshakes, hellos, route propagation, the end-to-end handshake.
        Duration::from_secs(30)
    }

    fn stats(&self) -> Vec<NodeStats> {
        let node = |i: usize| Some(NodeStats::from_shards(i, &read_all_counters(&shm(i)).ok()?));
        (0..self.n).filter_map(node).collect()
    }

    fn logs(&self) -> Vec<String> {
        self.daemons.iter().map(Guarded::log_text).collect()
    }

    fn stop(mut self: Box<Self>) -> anyhow::Result<()> {
        let result = stop_all("myceliumd", &mut self.daemons);
        // myceliumd stops its dataplane on SIGTERM; make sure, since the next
        // path may use the same port.
        for &pid in &self.dataplanes {
            let gone =
                wait_for(Duration::from_secs(5), || (!PathBuf::from(format!("/proc/{pid}")).exists()).then_some(()));
            if gone.is_err() {
                // Safety: kill has no memory preconditions; the pid is the
                // dataplane this node's pid file named, still alive.
                unsafe { libc::kill(pid as i32, libc::SIGKILL) };
            }
        }
        for i in 0..self.n {
            let _ = std::fs::remove_dir_all(shm(i));
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_node_but_the_first_dials_its_left_neighbour_by_key() {
        let first = node_args(0, "/k0", 2, 1);
        assert!(!first.iter().any(|a| a == "--peer"), "{first:?}");
        let second = node_args(1, "/k1", 2, 1);
        let peer = second.iter().position(|a| a == "--peer").map(|p| second[p + 1].clone()).unwrap();
        assert_eq!(peer, format!("udp://{}@192.168.150.1:9651", secret(0).public_key().to_hex()));
        let cores = second.iter().position(|a| a == "--cores").map(|p| second[p + 1].clone()).unwrap();
        assert_eq!(cores, "1");
        assert!(second.contains(&"--lan-discovery=false".to_string()));
    }
}
