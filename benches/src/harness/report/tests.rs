use super::*;
use crate::harness::iperf::AgentCpu;

fn cpu(agents: &[(usize, &str, f64)], machine: f64) -> Cpu {
    let agents: Vec<AgentCpu> = agents
        .iter()
        .map(|&(node, process, s)| AgentCpu {
            node,
            process: process.into(),
            user_s: s / 4.0,
            system_s: 3.0 * s / 4.0,
            s_per_gb: Some(s),
        })
        .collect();
    let total: f64 = agents.iter().filter_map(|a| a.s_per_gb).sum();
    let any = !agents.is_empty();
    Cpu { s_per_gb: any.then_some(total), user_percent: any.then_some(25.0), machine_s_per_gb: machine, agents }
}

fn ping(min: f64, avg: f64, p99: f64) -> Ping {
    Ping { sent: 10, received: 10, min_ms: min, avg_ms: avg, p99_ms: p99, max_ms: p99 }
}

/// A measured row: `mbit` for one stream, `mbit * 1.5` for four; each agent
/// spends `agent_cpu` s/GB.
fn row(topology: &str, path: &str, mbit: f64, rtt: f64, agents: &[(usize, &str)], agent_cpu: f64) -> Row {
    let list: Vec<(usize, &str, f64)> = agents.iter().map(|&(n, p)| (n, p, agent_cpu)).collect();
    let tcp =
        |streams: u32, mbit_s: f64| Tcp { streams, mbit_s, bytes: 1_000_000_000, retransmits: 0, cpu: cpu(&list, 2.0) };
    let udp = Udp {
        offered_mbit_s: 500,
        datagram_bytes: 1200,
        mbit_s: 490.0,
        bytes: 1,
        packets: 100,
        lost_packets: 2,
        loss_percent: 2.0,
        jitter_ms: 0.01,
        cpu: cpu(&list, 1.0),
    };
    let mut r = Row::new(topology.into(), path, None, "relays somehow");
    r.figures = Some(Figures {
        ping_idle: ping(rtt, rtt * 2.0, rtt * 4.0),
        ping_loaded: Some(ping(rtt * 2.0, rtt * 10.0, rtt * 40.0)),
        tcp: vec![tcp(1, mbit), tcp(4, mbit * 1.5)],
        udp: Some(udp),
        agents: Vec::new(),
    });
    r
}

fn machine() -> Machine {
    Machine {
        date: "2026-11-25 20:00 UTC".into(),
        cpu_model: "AMD EPYC (aes)".into(),
        cpus: 2,
        kernel: "6.18".into(),
        load_before: "1.00 1.00 1.00".into(),
        load_after: "2.00 1.50 1.00".into(),
        command: "harness --seconds 5".into(),
        revision: "a2ee62d-dirty".into(),
        seconds: 5,
    }
}

fn report() -> Report {
    let mut skipped = Row::new("two-node".into(), "nebula", None, "relays via a relay");
    skipped.skipped = Some("nebula, nebula-cert not found (run it)\nsecond line".into());
    let mut wg = row("two-node", "wireguard-go", 500.0, 0.2, &[(0, "wireguard-go"), (1, "wireguard-go")], 10.0);
    wg.version = Some("v0.0.1".into());
    let ours = [(0, "dp"), (1, "dp")];
    let rows = vec![
        row("two-node", "raw veth", 8000.0, 0.05, &[], 0.0),
        row("two-node", "mycelium sealed", 1000.0, 0.1, &ours, 2.0),
        wg,
        skipped,
        row("line-3", "raw veth", 6000.0, 0.06, &[], 0.0),
        row("line-3", "mycelium sealed", 800.0, 0.2, &[(0, "dp"), (1, "dp"), (2, "dp")], 2.0),
    ];
    Report::new(machine(), rows)
}

#[test]
fn ratios_cover_baseline_topologies_and_ours_over_each_alternative() {
    let r = report();
    let got: Vec<(RatioKind, &str, f64)> = r.ratios.iter().map(|q| (q.kind, q.what.as_str(), q.tcp[0].ratio)).collect();
    assert_eq!(
        got,
        [
            (RatioKind::OverBaseline, "mycelium sealed / raw veth (two-node)", 0.125),
            (RatioKind::OverBaseline, "wireguard-go / raw veth (two-node)", 0.0625),
            (RatioKind::OverBaseline, "mycelium sealed / raw veth (line-3)", 800.0 / 6000.0),
            (RatioKind::OverFirstTopology, "line-3 / two-node (raw veth)", 0.75),
            (RatioKind::OverFirstTopology, "line-3 / two-node (mycelium sealed)", 0.8),
            (RatioKind::OursOverAlternative, "mycelium sealed / wireguard-go (two-node)", 2.0),
        ]
    );
    let ours_over_wg = &r.ratios[5];
    // 2 agents x 2 s/GB against 2 agents x 10 s/GB.
    assert_eq!(ours_over_wg.cpu_per_gb.iter().map(|q| q.ratio).collect::<Vec<_>>(), [0.2, 0.2]);
    assert!((ours_over_wg.added_rtt_min_us - -100.0).abs() < 1e-9);
    let over_raw = &r.ratios[0];
    assert!(over_raw.cpu_per_gb.is_empty(), "raw veth has no agents");
    assert!((over_raw.added_rtt_min_us - 50.0).abs() < 1e-9 && (over_raw.added_rtt_avg_us - 100.0).abs() < 1e-9);
}

#[test]
fn a_skipped_row_keeps_its_reason_and_takes_part_in_no_ratio() {
    let r = report();
    assert!(r.ratios.iter().all(|q| !q.what.contains("nebula")));
    let json = serde_json::to_value(&r).unwrap();
    assert_eq!(json["rows"][3]["skipped"], "nebula, nebula-cert not found (run it)\nsecond line");
    assert!(json["rows"][3]["figures"].is_null());
    assert_eq!(json["rows"][2]["figures"]["tcp"][0]["cpu"]["agents"][1]["process"], "wireguard-go");
    assert_eq!(json["ratios"][5]["kind"], "ours_over_alternative");
}

#[test]
fn the_markdown_report_is_golden() {
    let expected = include_str!("golden.md");
    assert_eq!(report().markdown(), expected);
}
