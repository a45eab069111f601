//! The measurements: iperf3 TCP throughput with the CPU time of the
//! processes that carry it, and ping round-trip times. Each runs one tool
//! between the two end namespaces of a [`LineNet`], bounded in time.

use std::net::IpAddr;
use std::time::Duration;

use anyhow::{Context, bail};
use serde::Serialize;

use super::netns::LineNet;
use super::process::{Guarded, cpu_seconds, machine_busy_seconds, quiet};

/// TCP port of the iperf3 server (inside its own namespace).
const IPERF_PORT: &str = "5201";

/// One iperf3 TCP run.
#[derive(Debug, Clone, Serialize)]
pub struct Tcp {
    /// Parallel streams.
    pub streams: u32,
    /// Received goodput, Mbit/s.
    pub mbit_s: f64,
    /// Bytes the receiver got.
    pub bytes: u64,
    /// TCP retransmissions the sender counted.
    pub retransmits: u64,
    /// User and system CPU seconds of the tunnel's processes during the
    /// run (`None`: the path has none, e.g. raw veth).
    pub tunnel_user_s: Option<f64>,
    pub tunnel_system_s: Option<f64>,
    /// Their sum per GB (10^9 bytes) received.
    pub tunnel_cpu_s_per_gb: Option<f64>,
    /// Busy CPU seconds of the whole machine during the run, per GB: kernel
    /// work included, but so is any other load on the machine.
    pub machine_cpu_s_per_gb: f64,
}

/// Round-trip times of one ping run, in milliseconds.
#[derive(Debug, Clone, Serialize)]
pub struct Ping {
    pub sent: u32,
    pub received: u32,
    pub min_ms: f64,
    pub avg_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

/// Runs iperf3 from the first node to `target` on the last node for
/// `seconds` with `streams` streams, measuring the CPU time of `pids`.
pub fn iperf3(net: &LineNet, target: IpAddr, seconds: u32, streams: u32, pids: &[u32]) -> anyhow::Result<Tcp> {
    let last = net.len() - 1;
    let server =
        quiet(net.command(last, "iperf3").args(["-s", "-1", "-p", IPERF_PORT])).spawn().context("iperf3 -s")?;
    let mut server = Guarded::new(server);
    wait_listening(net, last, IPERF_PORT, Duration::from_secs(5)).context("iperf3 server")?;
    let cpu_before = pids.iter().map(|&p| cpu_seconds(p)).collect::<anyhow::Result<Vec<_>>>()?;
    let machine_before = machine_busy_seconds()?;
    let (secs, par) = (seconds.to_string(), streams.to_string());
    let args =
        ["-c", &target.to_string(), "-p", IPERF_PORT, "-t", &secs, "-P", &par, "-J", "--connect-timeout", "3000"];
    let client = quiet(net.command(0, "iperf3").args(args)).spawn().context("iperf3 -c")?;
    let out = wait_output(client, Duration::from_secs(u64::from(seconds) + 20)).context("iperf3 client")?;
    let machine = machine_busy_seconds()? - machine_before;
    let cpu_after = pids.iter().map(|&p| cpu_seconds(p)).collect::<anyhow::Result<Vec<_>>>()?;
    let _ = server.wait_for(Duration::from_secs(5));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout)
        .with_context(|| format!("iperf3 output is not JSON: {}", String::from_utf8_lossy(&out.stderr)))?;
    if let Some(e) = json.get("error") {
        bail!("iperf3 -c {target} -P {streams}: {e}");
    }
    let received = &json["end"]["sum_received"];
    let bytes = received["bytes"].as_u64().context("iperf3: end.sum_received.bytes")?;
    let bps = received["bits_per_second"].as_f64().context("iperf3: end.sum_received.bits_per_second")?;
    let retransmits = json["end"]["sum_sent"]["retransmits"].as_u64().unwrap_or(0);
    let gb = bytes as f64 / 1e9;
    let spent = |pick: fn(&(f64, f64)) -> f64| {
        (!pids.is_empty()).then(|| cpu_after.iter().zip(&cpu_before).map(|(a, b)| pick(a) - pick(b)).sum::<f64>())
    };
    let (user, system) = (spent(|t| t.0), spent(|t| t.1));
    Ok(Tcp {
        streams,
        mbit_s: bps / 1e6,
        bytes,
        retransmits,
        tunnel_user_s: user,
        tunnel_system_s: system,
        tunnel_cpu_s_per_gb: user.zip(system).filter(|_| gb > 0.0).map(|(u, s)| (u + s) / gb),
        machine_cpu_s_per_gb: if gb > 0.0 { machine / gb } else { 0.0 },
    })
}

/// Pings `target` from the first node: `count` echoes `interval_ms` apart.
pub fn ping(net: &LineNet, target: IpAddr, count: u32, interval_ms: u32) -> anyhow::Result<Ping> {
    let interval = format!("{:.3}", f64::from(interval_ms) / 1000.0);
    let deadline = (count * interval_ms / 1000 + 5).to_string();
    let (count_s, target_s) = (count.to_string(), target.to_string());
    let args = ["-c", &count_s, "-i", &interval, "-W", "1", "-w", &deadline, "-n", &target_s];
    let child = quiet(&mut net.command(0, "ping")).args(args).spawn().context("ping")?;
    let out = wait_output(child, Duration::from_secs(u64::from(count * interval_ms / 1000) + 10))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let rtts: Vec<f64> = text.lines().filter_map(rtt_of_line).collect();
    summarize(count, rtts).with_context(|| format!("ping {target}: no reply\n{text}"))
}

/// Sends single pings until one is answered, for up to `timeout`.
pub fn wait_reachable(net: &LineNet, target: IpAddr, timeout: Duration) -> anyhow::Result<()> {
    let deadline = std::time::Instant::now() + timeout;
    let target_s = target.to_string();
    while std::time::Instant::now() < deadline {
        let child = quiet(&mut net.command(0, "ping")).args(["-c", "1", "-W", "1", "-n", &target_s]).spawn()?;
        if wait_output(child, Duration::from_secs(5))?.status.success() {
            return Ok(());
        }
    }
    bail!("{target} did not answer a ping within {timeout:?}")
}

/// Waits until a TCP socket listens on `port` in node `node`'s namespace.
fn wait_listening(net: &LineNet, node: usize, port: &str, timeout: Duration) -> anyhow::Result<()> {
    let deadline = std::time::Instant::now() + timeout;
    let filter = format!("sport = :{port}");
    while std::time::Instant::now() < deadline {
        if net.exec(node, "ss", &["-Hltn", &filter]).is_ok_and(|out| !out.trim().is_empty()) {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    bail!("nothing listens on port {port} after {timeout:?}")
}

fn wait_output(child: std::process::Child, timeout: Duration) -> anyhow::Result<std::process::Output> {
    // A thread waits for the output; the guard kills the child if it overruns.
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(timeout) {
        Ok(out) => Ok(out?),
        Err(_) => {
            // Safety: kill has no memory preconditions; `pid` is our child,
            // which the waiting thread reaps once it dies.
            unsafe { libc::kill(pid as i32, libc::SIGKILL) };
            bail!("pid {pid} still running after {timeout:?}; killed")
        }
    }
}

/// The `time=X ms` of a ping reply line.
fn rtt_of_line(line: &str) -> Option<f64> {
    let rest = line.split("time=").nth(1)?;
    rest.split_whitespace().next()?.parse().ok()
}

fn summarize(sent: u32, mut rtts: Vec<f64>) -> Option<Ping> {
    if rtts.is_empty() {
        return None;
    }
    rtts.sort_by(f64::total_cmp);
    let n = rtts.len();
    // Nearest rank: the smallest value with at least 99 % of samples at or below it.
    let p99 = rtts[(n * 99).div_ceil(100).saturating_sub(1)];
    Some(Ping {
        sent,
        received: n as u32,
        min_ms: rtts[0],
        avg_ms: rtts.iter().sum::<f64>() / n as f64,
        p99_ms: p99,
        max_ms: rtts[n - 1],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reply_lines_give_their_round_trip_time() {
        assert_eq!(rtt_of_line("64 bytes from fd00:96::2: icmp_seq=1 ttl=64 time=0.045 ms"), Some(0.045));
        assert_eq!(rtt_of_line("PING fd00:96::2(fd00:96::2) 56 data bytes"), None);
    }

    #[test]
    fn the_99th_percentile_is_the_nearest_rank() {
        let rtts: Vec<f64> = (1..=200).map(f64::from).collect();
        let p = summarize(200, rtts).unwrap();
        assert_eq!((p.min_ms, p.p99_ms, p.max_ms, p.avg_ms), (1.0, 198.0, 200.0, 100.5));
        let few = summarize(3, vec![3.0, 1.0, 2.0]).unwrap();
        assert_eq!((few.p99_ms, few.received), (3.0, 3));
        assert!(summarize(3, vec![]).is_none());
    }
}
