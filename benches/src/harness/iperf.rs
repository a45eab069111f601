//! iperf3 between the ends of a line: TCP with `n` streams and UDP at a
//! fixed offered rate, each with the CPU time its agents (the path's
//! processes) spent during the run. The JSON parsers are pure and tested on
//! recorded iperf3 3.12 output.
//!
//! A run: start `iperf3 -s -1` on the last node, wait until it listens, read
//! the agents' and the machine's CPU time, run the client on the first node
//! (bounded), read the CPU times again, parse the client's JSON.

use std::net::IpAddr;
use std::time::Duration;

use anyhow::{Context, bail};
use serde::Serialize;
use serde_json::Value;

use super::measure::{Ping, spawn_ping, wait_listening, wait_output};
use super::netns::LineNet;
use super::process::{Guarded, cpu_seconds, machine_busy_seconds, quiet};
use super::tunnel::Agent;

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
    pub cpu: Cpu,
}

/// One iperf3 UDP run at a fixed offered rate.
#[derive(Debug, Clone, Serialize)]
pub struct Udp {
    /// The rate the client offered, Mbit/s, in datagrams of `datagram_bytes`.
    pub offered_mbit_s: u32,
    pub datagram_bytes: u32,
    /// What the receiver got, Mbit/s.
    pub mbit_s: f64,
    pub bytes: u64,
    /// Datagrams sent, and lost on the way (as the receiver counted them).
    pub packets: u64,
    pub lost_packets: u64,
    pub loss_percent: f64,
    pub jitter_ms: f64,
    pub cpu: Cpu,
}

/// CPU time spent during one run.
#[derive(Debug, Clone, Serialize)]
pub struct Cpu {
    /// Each agent's user and system seconds (empty for the kernel path).
    pub agents: Vec<AgentCpu>,
    /// The agents' user + system seconds per GB (10^9 bytes) received
    /// (`None`: no agents, or nothing received).
    pub s_per_gb: Option<f64>,
    /// Share of that in user mode, percent.
    pub user_percent: Option<f64>,
    /// Busy CPU seconds of the whole machine per GB: kernel work included,
    /// but so is any other load on the machine.
    pub machine_s_per_gb: f64,
}

/// One agent's CPU time during a run.
#[derive(Debug, Clone, Serialize)]
pub struct AgentCpu {
    pub node: usize,
    pub process: String,
    pub user_s: f64,
    pub system_s: f64,
    /// user + system per GB received.
    pub s_per_gb: Option<f64>,
}

/// The figures iperf3's client reports for a TCP run.
#[derive(Debug, Clone, PartialEq)]
pub struct TcpFigures {
    pub bytes: u64,
    pub bits_per_second: f64,
    pub retransmits: u64,
}

/// The figures iperf3's client reports for a UDP run (receiver's side).
#[derive(Debug, Clone, PartialEq)]
pub struct UdpFigures {
    pub bytes: u64,
    pub bits_per_second: f64,
    pub packets: u64,
    pub lost_packets: u64,
    pub lost_percent: f64,
    pub jitter_ms: f64,
}

/// Runs iperf3 TCP from the first node to `target` for `seconds` with
/// `streams` streams. With `ping`, (count, interval ms), pings run during
/// the transfer, starting half a second in: the RTT under load.
pub fn tcp(
    net: &LineNet,
    target: IpAddr,
    seconds: u32,
    streams: u32,
    agents: &[Agent],
    ping: Option<(u32, u32)>,
) -> anyhow::Result<(Tcp, Option<Ping>)> {
    let par = streams.to_string();
    let mut pinger = None;
    let (json, cpu) = run(net, target, seconds, &["-P", &par], agents, |_| {
        if let Some((count, interval)) = ping {
            std::thread::sleep(Duration::from_millis(500));
            pinger = Some(spawn_ping(net, target, count, interval)?);
        }
        Ok(())
    })?;
    let loaded = pinger.map(|p| p.finish()).transpose().context("ping under load")?;
    let f = parse_tcp(&json).with_context(|| format!("iperf3 -c {target} -P {streams}"))?;
    let cpu = cpu.finish(f.bytes);
    Ok((Tcp { streams, mbit_s: f.bits_per_second / 1e6, bytes: f.bytes, retransmits: f.retransmits, cpu }, loaded))
}

/// Runs iperf3 UDP from the first node to `target` for `seconds`, offering
/// `mbit_s` in datagrams of `datagram_bytes` payload.
pub fn udp(
    net: &LineNet,
    target: IpAddr,
    seconds: u32,
    mbit_s: u32,
    datagram_bytes: u32,
    agents: &[Agent],
) -> anyhow::Result<Udp> {
    let (rate, len) = (format!("{mbit_s}M"), datagram_bytes.to_string());
    let (json, cpu) = run(net, target, seconds, &["-u", "-b", &rate, "-l", &len], agents, |_| Ok(()))?;
    let f = parse_udp(&json).with_context(|| format!("iperf3 -u -c {target} -b {rate}"))?;
    Ok(Udp {
        offered_mbit_s: mbit_s,
        datagram_bytes,
        mbit_s: f.bits_per_second / 1e6,
        bytes: f.bytes,
        packets: f.packets,
        lost_packets: f.lost_packets,
        loss_percent: f.lost_percent,
        jitter_ms: f.jitter_ms,
        cpu: cpu.finish(f.bytes),
    })
}

/// CPU times read before a run.
struct CpuMeter<'a> {
    agents: &'a [Agent],
    before: Vec<(f64, f64)>,
    after: Vec<(f64, f64)>,
    machine: f64,
}

impl CpuMeter<'_> {
    fn finish(self, bytes: u64) -> Cpu {
        let gb = bytes as f64 / 1e9;
        let per_gb = |s: f64| (gb > 0.0).then(|| s / gb);
        let agents: Vec<AgentCpu> = self
            .agents
            .iter()
            .zip(self.before.iter().zip(&self.after))
            .map(|(a, (b, e))| {
                let (user_s, system_s) = (e.0 - b.0, e.1 - b.1);
                AgentCpu {
                    node: a.node,
                    process: a.process.clone(),
                    user_s,
                    system_s,
                    s_per_gb: per_gb(user_s + system_s),
                }
            })
            .collect();
        let (user, system) = agents.iter().fold((0.0, 0.0), |(u, s), a| (u + a.user_s, s + a.system_s));
        let any = !agents.is_empty();
        Cpu {
            s_per_gb: if any { per_gb(user + system) } else { None },
            user_percent: (any && user + system > 0.0).then(|| 100.0 * user / (user + system)),
            machine_s_per_gb: per_gb(self.machine).unwrap_or(0.0),
            agents,
        }
    }
}

/// One client run with `extra` arguments; `during` runs once the client
/// has started. Returns the client's JSON and the CPU times around it.
fn run<'a>(
    net: &LineNet,
    target: IpAddr,
    seconds: u32,
    extra: &[&str],
    agents: &'a [Agent],
    during: impl FnOnce(&LineNet) -> anyhow::Result<()>,
) -> anyhow::Result<(Vec<u8>, CpuMeter<'a>)> {
    let last = net.len() - 1;
    let server =
        quiet(net.command(last, "iperf3").args(["-s", "-1", "-p", IPERF_PORT])).spawn().context("iperf3 -s")?;
    let mut server = Guarded::new(server);
    wait_listening(net, last, IPERF_PORT, Duration::from_secs(5)).context("iperf3 server")?;
    let read_agents = || agents.iter().map(|a| cpu_seconds(a.pid)).collect::<anyhow::Result<Vec<_>>>();
    let before = read_agents()?;
    let machine_before = machine_busy_seconds()?;
    let (secs, target_s) = (seconds.to_string(), target.to_string());
    let args = ["-c", &target_s, "-p", IPERF_PORT, "-t", &secs, "-J", "--connect-timeout", "3000"];
    let client = quiet(net.command(0, "iperf3").args(args).args(extra)).spawn().context("iperf3 -c")?;
    let started = during(net);
    let out = wait_output(client, Duration::from_secs(u64::from(seconds) + 20)).context("iperf3 client")?;
    started?;
    let machine = machine_busy_seconds()? - machine_before;
    let after = read_agents()?;
    let _ = server.wait_for(Duration::from_secs(5));
    if out.stdout.is_empty() {
        bail!("iperf3 client printed nothing ({}): {}", out.status, String::from_utf8_lossy(&out.stderr));
    }
    Ok((out.stdout, CpuMeter { agents, before, after, machine }))
}

fn parse(json: &[u8]) -> anyhow::Result<Value> {
    let v: Value = serde_json::from_slice(json).context("iperf3 output is not JSON")?;
    if let Some(e) = v.get("error") {
        bail!("iperf3: {e}");
    }
    Ok(v)
}

/// The receiver's bytes and rate and the sender's retransmissions.
pub fn parse_tcp(json: &[u8]) -> anyhow::Result<TcpFigures> {
    let v = parse(json)?;
    let received = &v["end"]["sum_received"];
    Ok(TcpFigures {
        bytes: received["bytes"].as_u64().context("iperf3: end.sum_received.bytes")?,
        bits_per_second: received["bits_per_second"].as_f64().context("iperf3: end.sum_received.bits_per_second")?,
        retransmits: v["end"]["sum_sent"]["retransmits"].as_u64().unwrap_or(0),
    })
}

/// The receiver's bytes, rate, loss and jitter (iperf3 >= 3.11 has
/// `end.sum_received` for UDP; older ones only `end.sum`, whose loss
/// figures are the receiver's too, but whose bytes are the sender's).
pub fn parse_udp(json: &[u8]) -> anyhow::Result<UdpFigures> {
    let v = parse(json)?;
    let end = &v["end"];
    let sum = if end["sum_received"].is_object() { &end["sum_received"] } else { &end["sum"] };
    let field = |name: &str| sum[name].as_f64().with_context(|| format!("iperf3: end.sum_received.{name}"));
    let (packets, lost) = (field("packets")? as u64, field("lost_packets")? as u64);
    let mut bytes = field("bytes")? as u64;
    let mut bits_per_second = field("bits_per_second")?;
    if !end["sum_received"].is_object() && packets > 0 {
        let kept = (packets - lost.min(packets)) as f64 / packets as f64;
        bytes = (bytes as f64 * kept) as u64;
        bits_per_second *= kept;
    }
    Ok(UdpFigures {
        bytes,
        bits_per_second,
        packets,
        lost_packets: lost,
        lost_percent: field("lost_percent")?,
        jitter_ms: field("jitter_ms").unwrap_or(0.0),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_recorded_tcp_run_gives_the_receivers_bytes_and_the_senders_retransmits() {
        let f = parse_tcp(include_bytes!("testdata/iperf3-tcp.json")).unwrap();
        assert_eq!(f.bytes, 2_416_967_680);
        assert!((f.bits_per_second - 19_314_090_344.723_568).abs() < 1e-3);
        assert_eq!(f.retransmits, 0);
    }

    #[test]
    fn a_recorded_udp_run_gives_the_receivers_bytes_and_loss() {
        let f = parse_udp(include_bytes!("testdata/iperf3-udp.json")).unwrap();
        assert_eq!((f.bytes, f.packets, f.lost_packets), (53_829_600, 52_006, 7_148));
        assert!((f.bits_per_second - 430_536_484.998_995).abs() < 1e-3);
        assert!((f.lost_percent - 13.744_567_934_469_1).abs() < 1e-9);
        assert!(f.jitter_ms > 0.0 && f.jitter_ms < 0.01);
    }

    #[test]
    fn udp_output_without_a_receiver_sum_scales_the_senders_bytes_by_what_arrived() {
        let json = br#"{"end": {"sum": {"bytes": 1000, "bits_per_second": 8000.0, "packets": 10,
            "lost_packets": 5, "lost_percent": 50.0, "jitter_ms": 0.5}}}"#;
        let f = parse_udp(json).unwrap();
        assert_eq!((f.bytes, f.bits_per_second, f.lost_percent), (500, 4000.0, 50.0));
    }

    #[test]
    fn an_iperf3_error_or_a_missing_field_is_an_error_not_a_zero() {
        let err = parse_tcp(br#"{"start": {}, "error": "unable to connect to server"}"#).unwrap_err();
        assert!(format!("{err:#}").contains("unable to connect"), "{err:#}");
        assert!(parse_tcp(br#"{"end": {"sum_sent": {"bytes": 1}}}"#).is_err());
        assert!(parse_udp(br#"{"end": {}}"#).is_err());
        assert!(parse_tcp(b"iperf3: error - no JSON").is_err());
    }

    #[test]
    fn cpu_per_gb_sums_the_agents_and_keeps_each() {
        let agents = [Agent { node: 0, process: "a".into(), pid: 1 }, Agent { node: 1, process: "b".into(), pid: 2 }];
        let meter = CpuMeter {
            agents: &agents,
            before: vec![(1.0, 1.0), (0.0, 0.0)],
            after: vec![(2.0, 3.0), (0.5, 0.5)],
            machine: 8.0,
        };
        let cpu = meter.finish(2_000_000_000);
        assert_eq!(cpu.s_per_gb, Some(2.0));
        assert_eq!(cpu.user_percent, Some(100.0 * 1.5 / 4.0));
        assert_eq!(cpu.machine_s_per_gb, 4.0);
        assert_eq!(cpu.agents[0].s_per_gb, Some(1.5));
        assert_eq!(cpu.agents[1].s_per_gb, Some(0.5));
        let none = CpuMeter { agents: &[], before: vec![], after: vec![], machine: 1.0 }.finish(0);
        assert_eq!((none.s_per_gb, none.user_percent, none.machine_s_per_gb), (None, None, 0.0));
    }
}
