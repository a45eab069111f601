//! The admin API's JSON documents, shared by `myceliumd` (which fills them)
//! and `mctl` (which prints them). Field names are camelCase on the wire;
//! optional measurements are `null` until measured. Every list is in the
//! order the daemon gives it; the daemon sorts (peers by public key, routes
//! by prefix, links by id) so output is deterministic.

use std::collections::BTreeMap;

use mycelium_dataplane::engine::counters::{CounterValues, DropReason};
use serde::{Deserialize, Serialize};

use crate::link::LinkMetrics;

/// `GET /api/v1/node`: who this node is and how it is doing.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeInfo {
    /// x25519 public key, 64 hex digits.
    pub public_key: String,
    /// Overlay address.
    pub address: String,
    /// The /64 the node owns.
    pub subnet: String,
    /// `myceliumd`'s version.
    pub version: String,
    pub uptime_seconds: f64,
    /// Dataplane shards and the core each runs on.
    pub shards: Vec<ShardInfo>,
    /// The route snapshot the daemon published last.
    pub snapshot: SnapshotInfo,
    /// Dataplane totals over all shards.
    pub totals: Totals,
}

/// One dataplane shard.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ShardInfo {
    pub index: u32,
    /// The CPU it is pinned to, when known.
    pub core: Option<u32>,
}

/// The last published route snapshot.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SnapshotInfo {
    /// 0: nothing published yet.
    pub generation: u64,
    /// Seconds since it was built; `null` before the first one.
    pub age_seconds: Option<f64>,
}

/// Dataplane totals (UDP underlay and TUN together are counted per
/// direction: `rx` is underlay receive plus TUN read, `tx` likewise).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Totals {
    pub rx_packets: u64,
    pub rx_bytes: u64,
    pub tx_packets: u64,
    pub tx_bytes: u64,
    /// Dropped packets, every reason.
    pub drops: u64,
}

impl Totals {
    /// Totals of summed shard counters.
    pub fn from_counters(c: &CounterValues) -> Self {
        Totals {
            rx_packets: c.underlay_rx_packets.saturating_add(c.tun_rx_packets),
            rx_bytes: c.underlay_rx_bytes.saturating_add(c.tun_rx_bytes),
            tx_packets: c.underlay_tx_packets.saturating_add(c.tun_tx_packets),
            tx_bytes: c.underlay_tx_bytes.saturating_add(c.tun_tx_bytes),
            drops: c.drops.iter().fold(0u64, |a, &b| a.saturating_add(b)),
        }
    }
}

/// `GET /api/v1/peers`: one neighbour and its links.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PeerInfo {
    /// 64 hex digits; empty before the first handshake tells us.
    pub public_key: String,
    /// Overlay address; empty while unknown.
    pub address: String,
    /// As configured or discovered, e.g. `udp://192.0.2.1:9651`.
    pub endpoint: String,
    /// The daemon's name for the peering state (e.g. `connecting`, `up`).
    pub state: String,
    pub last_handshake_seconds_ago: Option<f64>,
    pub links: Vec<LinkInfo>,
}

/// One measured link to a peer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LinkInfo {
    pub id: u32,
    /// fiber, ethernet, wifi, cellular, satellite or a custom name.
    pub class: String,
    /// `up` or `down`.
    pub state: String,
    pub rtt_ms: Option<f64>,
    pub jitter_ms: Option<f64>,
    pub loss_ratio: f64,
    /// Expected transmissions per delivery; `null` while no hello got through
    /// (infinite), since JSON has no infinity.
    pub etx: Option<f64>,
    pub bandwidth_bps: Option<u64>,
    pub rx_bytes: u64,
    pub tx_bytes: u64,
    /// The link's current cost (65535: infinite).
    pub cost: u16,
}

impl LinkInfo {
    /// The API view of a link's measurements plus its byte counters.
    /// `bandwidthBps` is the capacity the cost uses once something was
    /// measured (passive or active), `null` while only the prior is known.
    pub fn from_metrics(id: u32, m: &LinkMetrics, rx_bytes: u64, tx_bytes: u64) -> Self {
        let measured = m.passive_bps.is_some() || m.active_bps.is_some();
        LinkInfo {
            id,
            class: m.class.name().to_owned(),
            state: if m.up { "up" } else { "down" }.to_owned(),
            rtt_ms: m.rtt.map(|d| d.as_secs_f64() * 1e3),
            jitter_ms: m.rtt_jitter.map(|d| d.as_secs_f64() * 1e3),
            loss_ratio: if m.loss_ratio.is_finite() { m.loss_ratio } else { 1.0 },
            etx: m.etx.is_finite().then_some(m.etx),
            bandwidth_bps: measured.then_some(m.capacity_bps),
            rx_bytes,
            tx_bytes,
            cost: m.cost,
        }
    }
}

/// Whether a route is the one in use or one kept ready.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RouteState {
    /// In the published snapshot: packets use it.
    Selected,
    /// Feasible and kept ready, not in use.
    Fallback,
}

impl RouteState {
    /// `selected` or `fallback`.
    pub fn as_str(self) -> &'static str {
        match self {
            RouteState::Selected => "selected",
            RouteState::Fallback => "fallback",
        }
    }
}

/// `GET /api/v1/routes`: one route, selected or fallback.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RouteInfo {
    /// e.g. `4a0:1234:5678:9abc::/64`.
    pub prefix: String,
    pub state: RouteState,
    pub next_hop: NextHopInfo,
    /// Babel metric (65535: infinite, a retraction).
    pub metric: u16,
    /// How the metric is made, as the daemon reports it: typically the link
    /// to the next hop, then what the neighbour advertised.
    pub parts: Vec<MetricPart>,
    pub seqno: u16,
    /// Public key of the originating node (64 hex digits).
    pub router_id: String,
    /// Seconds since the last update for it.
    pub age_seconds: f64,
}

/// Where a route leads: a link to a peer, or local delivery (all `null`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NextHopInfo {
    pub link: Option<u32>,
    /// The neighbour's public key.
    pub peer: Option<String>,
    /// The neighbour's underlay address.
    pub endpoint: Option<String>,
}

/// One term of a route's metric.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MetricPart {
    /// What this part is, e.g. `link 3` or `advertised`.
    pub name: String,
    pub cost: u32,
    pub rtt_ms: Option<f64>,
    pub loss: Option<f64>,
    pub bandwidth_bps: Option<u64>,
    pub class: Option<String>,
}

/// `GET /api/v1/routes/lookup?address=`: the route used now and the others.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RouteLookup {
    /// The address asked about.
    pub address: String,
    /// The route the daemon would choose now; `null` when there is none.
    pub selected: Option<RouteInfo>,
    /// Every other candidate and why it lost.
    pub alternatives: Vec<Alternative>,
}

/// A candidate route that was not chosen.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Alternative {
    pub route: RouteInfo,
    /// e.g. `metric 412 > 266`, `not feasible (seqno 10, metric 300 >= 250)`.
    pub reason: String,
}

/// `GET /api/v1/counters`: every shard's dataplane counters.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Counters {
    pub shards: Vec<ShardCounterInfo>,
}

/// One shard's counters, every drop reason included (zeros too).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ShardCounterInfo {
    pub shard: u32,
    pub snapshot_generation: u64,
    pub batches: u64,
    pub underlay_rx_packets: u64,
    pub underlay_rx_bytes: u64,
    pub underlay_tx_packets: u64,
    pub underlay_tx_bytes: u64,
    pub tun_rx_packets: u64,
    pub tun_rx_bytes: u64,
    pub tun_tx_packets: u64,
    pub tun_tx_bytes: u64,
    pub punted: u64,
    pub injected: u64,
    /// Keyed by the reason's label (`no_route`, `auth_failed`, ...).
    pub drops: BTreeMap<String, u64>,
}

impl ShardCounterInfo {
    /// The API view of one shard's values.
    pub fn from_values(shard: u32, c: &CounterValues) -> Self {
        ShardCounterInfo {
            shard,
            snapshot_generation: c.snapshot_generation,
            batches: c.batches,
            underlay_rx_packets: c.underlay_rx_packets,
            underlay_rx_bytes: c.underlay_rx_bytes,
            underlay_tx_packets: c.underlay_tx_packets,
            underlay_tx_bytes: c.underlay_tx_bytes,
            tun_rx_packets: c.tun_rx_packets,
            tun_rx_bytes: c.tun_rx_bytes,
            tun_tx_packets: c.tun_tx_packets,
            tun_tx_bytes: c.tun_tx_bytes,
            punted: c.punted,
            injected: c.injected,
            drops: DropReason::ALL.iter().map(|&r| (r.label().to_owned(), c.drops[r as usize])).collect(),
        }
    }
}

impl Counters {
    /// The API view of `(shard, values)` pairs as `read_all_counters` gives them.
    pub fn from_shards(shards: &[(usize, CounterValues)]) -> Self {
        let shards = shards
            .iter()
            .map(|(i, c)| ShardCounterInfo::from_values(u32::try_from(*i).unwrap_or(u32::MAX), c))
            .collect();
        Counters { shards }
    }
}

/// `GET /api/v1/graph`: what this node knows of the mesh.
///
/// A distance-vector node knows its own links and, per destination, the
/// neighbour it goes through; `paths` are those selected paths as far as
/// the node knows them (local node, next hop, ..., destination).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Graph {
    pub nodes: Vec<GraphNode>,
    pub links: Vec<GraphLink>,
    pub paths: Vec<GraphPath>,
}

/// A node of the graph.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GraphNode {
    /// Public key, 64 hex digits (the id links and paths refer to).
    pub id: String,
    pub address: String,
    /// This node.
    pub local: bool,
}

/// An edge of the graph: a measured link, or a hop known only from routes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GraphLink {
    pub from: String,
    pub to: String,
    /// The link id, for this node's own links.
    pub link: Option<u32>,
    pub class: Option<String>,
    /// `up`, `down`, or `route` for a hop known only from route metrics.
    pub state: String,
    pub cost: u32,
}

/// A selected path to one destination.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GraphPath {
    pub prefix: String,
    /// Node ids from this node to the destination.
    pub hops: Vec<String>,
    /// This node's link to the first hop (`null` for a local prefix).
    pub link: Option<u32>,
    pub metric: u32,
}

/// `POST /api/v1/peers` body, and the reply of `POST` and `DELETE`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PeerRequest {
    /// `udp://host:port`.
    pub endpoint: String,
}

/// Every error reply: `{"error": "..."}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: String,
}
