//! [`Metrics`]: the custom collector that reads every value at scrape time
//! and renders the Prometheus text format.

use std::fmt::Error as FmtError;
use std::sync::{Arc, Mutex, PoisonError};

use mycelium_dataplane::engine::counters::{CounterValues, DropReason};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;

use super::names;
use super::topn::TopN;
use super::{CounterSource, DaemonSample, MetricsSource};

/// Renders the node's metrics on demand.
pub struct Metrics {
    registry: Registry,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Metrics {
    /// Metrics of `daemon` and `counters`, keeping `transit_top_n` named
    /// transit sources, labelled with `version`.
    pub fn new(
        daemon: Arc<dyn MetricsSource>,
        counters: Arc<dyn CounterSource>,
        transit_top_n: usize,
        version: &str,
    ) -> Self {
        let mut registry = Registry::default();
        let collector = NodeCollector {
            daemon,
            counters,
            transit: Mutex::new(TopN::new(transit_top_n)),
            version: version.to_owned(),
        };
        registry.register_collector(Box::new(collector));
        Metrics { registry }
    }

    /// One scrape: reads every source now and renders text format 0.0.4.
    pub fn render(&self) -> Result<String, FmtError> {
        let mut out = String::new();
        prometheus_client::encoding::prometheus_text::encode(&mut out, &self.registry)?;
        Ok(out)
    }
}

struct NodeCollector {
    daemon: Arc<dyn MetricsSource>,
    counters: Arc<dyn CounterSource>,
    transit: Mutex<TopN>,
    version: String,
}

impl std::fmt::Debug for NodeCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeCollector").field("version", &self.version).finish_non_exhaustive()
    }
}

/// The name the encoder expects: it appends `_total` to counters and
/// `_info` to info metrics itself.
fn base(name: &'static str) -> &'static str {
    name.strip_suffix("_total").or_else(|| name.strip_suffix("_info")).unwrap_or(name)
}

impl Collector for NodeCollector {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), FmtError> {
        let sample = self.daemon.sample();
        let transit: Vec<(String, u64)> = {
            let mut top = self.transit.lock().unwrap_or_else(PoisonError::into_inner);
            top.update(&sample.transit_bytes);
            top.series().into_iter().map(|(s, v)| (s.to_owned(), v)).collect()
        };
        encode_daemon(&mut encoder, &sample, &transit)?;
        match self.counters.read() {
            Ok(shards) => encode_dataplane(&mut encoder, &shards)?,
            Err(e) => tracing::debug!(error = %e, "dataplane counters unavailable for this scrape"),
        }
        let mut info =
            encoder.encode_descriptor(base(names::BUILD_INFO), "Build of myceliumd.", None, MetricType::Info)?;
        info.encode_info(&[("version", self.version.as_str())])
    }
}

fn encode_daemon(e: &mut DescriptorEncoder<'_>, s: &DaemonSample, transit: &[(String, u64)]) -> Result<(), FmtError> {
    let help = "Bytes received from a peer over all its links.";
    let mut m = e.encode_descriptor(base(names::PEER_RECEIVE_BYTES), help, None, MetricType::Counter)?;
    for p in &s.peers {
        ConstCounter::new(p.receive_bytes).encode(m.encode_family(&[("peer", p.peer.as_str())])?)?;
    }
    let help = "Bytes sent to a peer over all its links.";
    let mut m = e.encode_descriptor(base(names::PEER_TRANSMIT_BYTES), help, None, MetricType::Counter)?;
    for p in &s.peers {
        ConstCounter::new(p.transmit_bytes).encode(m.encode_family(&[("peer", p.peer.as_str())])?)?;
    }

    let links = || s.peers.iter().flat_map(|p| p.links.iter().map(move |l| (p.peer.as_str(), l.link.to_string(), l)));
    let help = "Smoothed round-trip time of a link (RFC 9616).";
    let mut m = e.encode_descriptor(names::LINK_RTT, help, None, MetricType::Gauge)?;
    for (peer, link, l) in links() {
        if let Some(rtt) = l.rtt_seconds {
            ConstGauge::new(rtt).encode(m.encode_family(&[("peer", peer), ("link", &link)])?)?;
        }
    }
    let help = "Loss ratio of a link: 1 - p_in * p_out from the hello reachability windows.";
    let mut m = e.encode_descriptor(names::LINK_LOSS, help, None, MetricType::Gauge)?;
    for (peer, link, l) in links() {
        ConstGauge::new(l.loss_ratio).encode(m.encode_family(&[("peer", peer), ("link", &link)])?)?;
    }
    let help = "Capacity of a link used by its cost (measured, or the class prior), in bytes per second.";
    let mut m = e.encode_descriptor(names::LINK_BANDWIDTH, help, None, MetricType::Gauge)?;
    for (peer, link, l) in links() {
        let bytes = l.bandwidth_bps as f64 / 8.0;
        ConstGauge::new(bytes).encode(m.encode_family(&[("peer", peer), ("link", &link)])?)?;
    }

    let help = "Routes by state: selected (in the published snapshot) or fallback (kept ready).";
    let mut m = e.encode_descriptor(names::ROUTES, help, None, MetricType::Gauge)?;
    ConstGauge::new(s.routes_selected).encode(m.encode_family(&[("state", "selected")])?)?;
    ConstGauge::new(s.routes_fallback).encode(m.encode_family(&[("state", "fallback")])?)?;
    let help = "Changes of selected routes since the daemon started.";
    let m = e.encode_descriptor(base(names::ROUTE_CHANGES), help, None, MetricType::Counter)?;
    ConstCounter::new(s.route_changes).encode(m)?;

    let help = "Generation of the last published route snapshot (0: none yet).";
    let m = e.encode_descriptor(names::SNAPSHOT_GENERATION, help, None, MetricType::Gauge)?;
    ConstGauge::new(s.snapshot_generation).encode(m)?;
    let help = "Seconds since the last published route snapshot was built.";
    let m = e.encode_descriptor(names::SNAPSHOT_AGE, help, None, MetricType::Gauge)?;
    if let Some(age) = s.snapshot_age_seconds {
        ConstGauge::new(age).encode(m)?;
    }

    let help = "Bytes relayed for other nodes, by source: the top sources by recent traffic, the rest as other.";
    let mut m = e.encode_descriptor(base(names::TRANSIT_BYTES), help, None, MetricType::Counter)?;
    for (source, bytes) in transit {
        ConstCounter::new(*bytes).encode(m.encode_family(&[("source", source.as_str())])?)?;
    }
    Ok(())
}

fn encode_dataplane(e: &mut DescriptorEncoder<'_>, shards: &[(usize, CounterValues)]) -> Result<(), FmtError> {
    let help = "Dataplane shards with a counters block.";
    let m = e.encode_descriptor(names::DATAPLANE_SHARDS, help, None, MetricType::Gauge)?;
    ConstGauge::new(shards.len() as u64).encode(m)?;

    let by_direction = |c: &CounterValues| {
        [
            ("underlay_rx", c.underlay_rx_packets, c.underlay_rx_bytes),
            ("underlay_tx", c.underlay_tx_packets, c.underlay_tx_bytes),
            ("tun_rx", c.tun_rx_packets, c.tun_rx_bytes),
            ("tun_tx", c.tun_tx_packets, c.tun_tx_bytes),
        ]
    };
    let help = "Packets through the dataplane by direction and shard (UDP underlay, TUN).";
    let mut m = e.encode_descriptor(base(names::DATAPLANE_PACKETS), help, None, MetricType::Counter)?;
    for (shard, c) in shards {
        let shard = shard.to_string();
        for (direction, packets, _) in by_direction(c) {
            ConstCounter::new(packets).encode(m.encode_family(&[("direction", direction), ("shard", &shard)])?)?;
        }
    }
    let help = "Bytes through the dataplane by direction and shard (UDP payload, TUN packet).";
    let mut m = e.encode_descriptor(base(names::DATAPLANE_BYTES), help, None, MetricType::Counter)?;
    for (shard, c) in shards {
        let shard = shard.to_string();
        for (direction, _, bytes) in by_direction(c) {
            ConstCounter::new(bytes).encode(m.encode_family(&[("direction", direction), ("shard", &shard)])?)?;
        }
    }

    let help = "Packets the dataplane dropped, by reason, summed over shards.";
    let mut m = e.encode_descriptor(base(names::DATAPLANE_DROPPED), help, None, MetricType::Counter)?;
    for &reason in DropReason::ALL {
        let total = shards.iter().fold(0u64, |a, (_, c)| a.wrapping_add(c.drops[reason as usize]));
        ConstCounter::new(total).encode(m.encode_family(&[("reason", reason.label())])?)?;
    }
    Ok(())
}
