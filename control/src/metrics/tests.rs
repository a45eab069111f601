//! `/metrics` of a fake daemon: names, values, validity (promtool), and
//! counters moving between scrapes over real HTTP.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::Duration;

use mycelium_dataplane::engine::counters::{CounterValues, DropReason};

use super::*;
use crate::api::fake::FakeNode;

fn metrics_of(fake: &Arc<FakeNode>, top_n: usize) -> Metrics {
    let counters = fake.clone();
    let read = move || -> Result<Vec<(usize, CounterValues)>, String> { Ok(counters.with(|d| d.counters.clone())) };
    Metrics::new(fake.clone(), Arc::new(read), top_n, "1.2.3")
}

/// The value of the sample line that starts with `series` exactly (name and
/// labels as rendered).
fn value(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

#[test]
fn a_scrape_has_every_metric_with_the_fake_daemons_values() {
    let fake = Arc::new(FakeNode::default());
    let text = metrics_of(&fake, 10).render().unwrap();
    for name in names::ALL {
        assert!(text.contains(&format!("# TYPE {name} ")), "{name} missing:\n{text}");
    }
    let v = |s| value(&text, s).unwrap_or_else(|| panic!("no {s}:\n{text}"));
    assert_eq!(v(r#"mycelium_peer_receive_bytes_total{peer="5bb:1::2"}"#), 3000.0);
    assert_eq!(v(r#"mycelium_peer_transmit_bytes_total{peer="4cc:2::3"}"#), 6000.0);
    assert_eq!(v(r#"mycelium_link_rtt_seconds{peer="4cc:2::3",link="3"}"#), 0.6);
    assert_eq!(value(&text, r#"mycelium_link_rtt_seconds{peer="5bb:1::2",link="2"}"#), None, "unmeasured RTT");
    assert_eq!(v(r#"mycelium_link_loss_ratio{peer="5bb:1::2",link="2"}"#), 0.05);
    assert_eq!(v(r#"mycelium_link_bandwidth_bytes_per_second{peer="5bb:1::2",link="1"}"#), 125e6);
    assert_eq!(v(r#"mycelium_routes{state="selected"}"#), 2.0);
    assert_eq!(v(r#"mycelium_routes{state="fallback"}"#), 1.0);
    assert_eq!(v("mycelium_route_changes_total"), 4.0);
    assert_eq!(v("mycelium_snapshot_generation"), 42.0);
    assert_eq!(v("mycelium_snapshot_age_seconds"), 1.25);
    assert_eq!(v(r#"mycelium_dataplane_packets_total{direction="underlay_rx",shard="0"}"#), 1000.0);
    assert_eq!(v(r#"mycelium_dataplane_packets_total{direction="underlay_rx",shard="1"}"#), 10.0);
    assert_eq!(v(r#"mycelium_dataplane_packets_total{direction="tun_tx",shard="0"}"#), 600.0);
    assert_eq!(v(r#"mycelium_dataplane_bytes_total{direction="underlay_tx",shard="0"}"#), 960_000.0);
    assert_eq!(v(r#"mycelium_dataplane_dropped_packets_total{reason="no_route"}"#), 6.0);
    assert_eq!(v(r#"mycelium_dataplane_dropped_packets_total{reason="auth_failed"}"#), 2.0);
    for reason in DropReason::ALL {
        let series = format!(r#"mycelium_dataplane_dropped_packets_total{{reason="{}"}}"#, reason.label());
        assert!(value(&text, &series).is_some(), "{series}");
    }
    assert_eq!(v("mycelium_dataplane_shards"), 2.0);
    assert_eq!(v(r#"mycelium_transit_bytes_total{source="5bb:1::2"}"#), 5000.0);
    assert_eq!(v(r#"mycelium_transit_bytes_total{source="other"}"#), 0.0);
    assert_eq!(v(r#"mycelium_build_info{version="1.2.3"}"#), 1.0);
}

#[test]
fn transit_sources_beyond_the_top_n_are_summed_as_other() {
    let fake = Arc::new(FakeNode::default());
    let text = metrics_of(&fake, 1).render().unwrap();
    assert_eq!(value(&text, r#"mycelium_transit_bytes_total{source="5bb:1::2"}"#), Some(5000.0));
    assert_eq!(value(&text, r#"mycelium_transit_bytes_total{source="4cc:2::3"}"#), None);
    assert_eq!(value(&text, r#"mycelium_transit_bytes_total{source="other"}"#), Some(700.0));
}

#[test]
fn without_dataplane_counters_the_daemon_metrics_are_still_served() {
    let fake = Arc::new(FakeNode::default());
    let failing = || -> Result<Vec<(usize, CounterValues)>, String> { Err("no such directory".into()) };
    let text = Metrics::new(fake, Arc::new(failing), 10, "1").render().unwrap();
    assert!(!text.contains("mycelium_dataplane_packets_total{"), "{text}");
    assert_eq!(value(&text, "mycelium_route_changes_total"), Some(4.0));
}

#[test]
fn the_shared_memory_source_reads_real_counter_files() {
    let dir = tempfile::tempdir().unwrap();
    let map = mycelium_dataplane::io::shm::CountersMap::create(dir.path(), 3).unwrap();
    mycelium_dataplane::engine::counters::bump(&map.get().tun_rx_packets, 77);
    map.get().drop_n(DropReason::Replayed, 9);
    let source = ShmCounters::new(dir.path());
    let fake = Arc::new(FakeNode::default());
    let text = Metrics::new(fake, Arc::new(source), 10, "1").render().unwrap();
    assert_eq!(value(&text, r#"mycelium_dataplane_packets_total{direction="tun_rx",shard="3"}"#), Some(77.0));
    assert_eq!(value(&text, r#"mycelium_dataplane_dropped_packets_total{reason="replayed"}"#), Some(9.0));
}

#[test]
fn label_values_with_quotes_and_newlines_are_escaped() {
    let fake = Arc::new(FakeNode::default());
    fake.with(|d| d.sample.peers[0].peer = "a\"b\\c\nd".into());
    let text = metrics_of(&fake, 10).render().unwrap();
    assert!(text.contains(r#"peer="a\"b\\c\nd""#), "{text}");
    promtool_check(&text);
}

/// Runs `promtool check metrics` on `text` (Debian package `prometheus`).
fn promtool_check(text: &str) {
    let mut child = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("promtool not found: install the Debian package `prometheus` (apt-get install prometheus)");
    child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    let report = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success() && report.trim().is_empty(), "promtool check metrics:\n{report}\n---\n{text}");
}

#[test]
fn promtool_accepts_the_rendered_metrics() {
    let fake = Arc::new(FakeNode::default());
    let text = metrics_of(&fake, 10).render().unwrap();
    promtool_check(&text);
    // And an empty daemon (no peers, no snapshot yet).
    fake.with(|d| d.sample = DaemonSample::default());
    promtool_check(&metrics_of(&fake, 10).render().unwrap());
}

fn scrape(addr: std::net::SocketAddr, path: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let status = out.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let body = out.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default();
    (status, body)
}

#[test]
fn counters_move_between_two_scrapes_over_http() {
    let fake = Arc::new(FakeNode::default());
    let counters = fake.clone();
    let read = move || -> Result<Vec<(usize, CounterValues)>, String> { Ok(counters.with(|d| d.counters.clone())) };
    let config = MetricsConfig { addr: "127.0.0.1:0".parse().unwrap(), ..MetricsConfig::default() };
    let server = start(&config, fake.clone(), Arc::new(read)).unwrap();
    let addr = server.local_addr();

    let (status, first) = scrape(addr, "/metrics");
    assert_eq!(status, 200);
    fake.with(|d| {
        d.counters[0].1.underlay_rx_packets += 500;
        d.counters[1].1.drops[DropReason::NoRoute as usize] += 4;
        d.sample.route_changes += 1;
        d.sample.peers[0].receive_bytes += 1234;
        d.sample.transit_bytes[1].1 += 100;
    });
    let (_, second) = scrape(addr, "/metrics");
    let delta = |series: &str| value(&second, series).unwrap() - value(&first, series).unwrap();
    assert_eq!(delta(r#"mycelium_dataplane_packets_total{direction="underlay_rx",shard="0"}"#), 500.0);
    assert_eq!(delta(r#"mycelium_dataplane_dropped_packets_total{reason="no_route"}"#), 4.0);
    assert_eq!(delta("mycelium_route_changes_total"), 1.0);
    assert_eq!(delta(r#"mycelium_peer_receive_bytes_total{peer="5bb:1::2"}"#), 1234.0);
    assert_eq!(delta(r#"mycelium_transit_bytes_total{source="4cc:2::3"}"#), 100.0);
    assert_eq!(delta(r#"mycelium_dataplane_packets_total{direction="tun_rx",shard="0"}"#), 0.0);

    assert_eq!(scrape(addr, "/").0, 404);
    assert_eq!(scrape(addr, "/metrics?x=1").0, 200);
}

#[test]
fn metrics_refuse_a_public_address_unless_allowed() {
    let fake = Arc::new(FakeNode::default());
    let config = MetricsConfig { addr: "0.0.0.0:0".parse().unwrap(), ..MetricsConfig::default() };
    let err = start(&config, fake.clone(), Arc::new(ShmCounters::new("/nonexistent"))).unwrap_err();
    assert!(err.to_string().contains("not a loopback address"), "{err}");
}
