//! Ping round-trip times between the ends of a line, and the bounded waits
//! the measurements share. Parsing of ping's output is pure and tested on
//! recorded output; iperf3 runs are in [`super::iperf`].

use std::net::IpAddr;
use std::process::{Child, Output};
use std::time::Duration;

use anyhow::{Context, bail};
use serde::Serialize;

use super::netns::LineNet;
use super::process::quiet;

/// Round-trip times of one ping run, in milliseconds.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Ping {
    pub sent: u32,
    pub received: u32,
    pub min_ms: f64,
    pub avg_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

/// A ping run that is under way (see [`spawn_ping`]).
#[derive(Debug)]
pub struct PingRun {
    child: Child,
    target: IpAddr,
    count: u32,
    timeout: Duration,
}

/// Starts pinging `target` from the first node: `count` echoes
/// `interval_ms` apart; [`PingRun::finish`] collects the result.
pub fn spawn_ping(net: &LineNet, target: IpAddr, count: u32, interval_ms: u32) -> anyhow::Result<PingRun> {
    let interval = format!("{:.3}", f64::from(interval_ms) / 1000.0);
    let deadline = (count * interval_ms / 1000 + 5).to_string();
    let (count_s, target_s) = (count.to_string(), target.to_string());
    let args = ["-c", &count_s, "-i", &interval, "-W", "1", "-w", &deadline, "-n", &target_s];
    let child = quiet(&mut net.command(0, "ping")).args(args).spawn().context("ping")?;
    let timeout = Duration::from_secs(u64::from(count * interval_ms / 1000) + 10);
    Ok(PingRun { child, target, count, timeout })
}

impl PingRun {
    /// Waits for the run to end (bounded) and summarises its replies.
    pub fn finish(self) -> anyhow::Result<Ping> {
        let out = wait_output(self.child, self.timeout)?;
        let text = String::from_utf8_lossy(&out.stdout);
        parse_ping(self.count, &text).with_context(|| format!("ping {}: no reply\n{text}", self.target))
    }
}

/// Pings `target` from the first node: `count` echoes `interval_ms` apart.
pub fn ping(net: &LineNet, target: IpAddr, count: u32, interval_ms: u32) -> anyhow::Result<Ping> {
    spawn_ping(net, target, count, interval_ms)?.finish()
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
        std::thread::sleep(Duration::from_millis(100));
    }
    bail!("{target} did not answer a ping within {timeout:?}")
}

/// Waits until a TCP socket listens on `port` in node `node`'s namespace.
pub fn wait_listening(net: &LineNet, node: usize, port: &str, timeout: Duration) -> anyhow::Result<()> {
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

/// Collects a child's output, killing it if it runs past `timeout`.
pub fn wait_output(child: Child, timeout: Duration) -> anyhow::Result<Output> {
    // A thread waits for the output; the child is killed if it overruns.
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

/// Summarises ping's output (`sent` echoes): None without a single reply.
pub fn parse_ping(sent: u32, text: &str) -> Option<Ping> {
    summarize(sent, text.lines().filter_map(rtt_of_line).collect())
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
        assert_eq!(rtt_of_line("64 bytes from x: time=garbage ms"), None);
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

    #[test]
    fn a_recorded_ping_run_counts_replies_and_ignores_the_summary_lines() {
        let p = parse_ping(5, include_str!("testdata/ping-ipv4.txt")).unwrap();
        assert_eq!((p.sent, p.received, p.min_ms, p.p99_ms, p.max_ms), (5, 4, 0.388, 1.02, 1.02));
        assert!((p.avg_ms - 0.555_25).abs() < 1e-9, "{}", p.avg_ms);
    }

    #[test]
    fn a_ping_run_without_replies_has_no_figures() {
        let text = "PING 10.0.0.9 (10.0.0.9) 56(84) bytes of data.\n\n--- 10.0.0.9 ping statistics ---\n\
                    3 packets transmitted, 0 received, 100% packet loss, time 2040ms\n";
        assert_eq!(parse_ping(3, text), None);
    }
}
