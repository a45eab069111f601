//! [`FakeNode`]: an in-memory [`AdminState`] and [`MetricsSource`] with a
//! small, fixed mesh, for tests of the API, the metrics and `mctl` (enabled
//! in tests and by the `fake` feature; never used by `myceliumd`).
//!
//! The node has two peers (one with two links), three routes (two selected,
//! one fallback) and two dataplane shards. Tests change any value through
//! [`FakeNode::with`].

use std::net::Ipv6Addr;
use std::sync::{Mutex, PoisonError};

use mycelium_dataplane::engine::counters::{CounterValues, DropReason};

use super::types::*;
use super::{AdminState, ApiError};
use crate::metrics::{DaemonSample, LinkSample, MetricsSource, PeerSample};

/// Everything the fake answers with; public so tests can change it.
#[derive(Debug, Clone)]
pub struct FakeData {
    pub node: NodeInfo,
    pub peers: Vec<PeerInfo>,
    pub routes: Vec<RouteInfo>,
    pub counters: Vec<(usize, CounterValues)>,
    pub graph: Graph,
    pub sample: DaemonSample,
    /// When set, every call fails with this error.
    pub fail: Option<ApiError>,
}

/// A fake daemon (see the module docs).
#[derive(Debug)]
pub struct FakeNode {
    data: Mutex<FakeData>,
}

/// Public keys of the fake mesh (64 hex digits).
pub const LOCAL_KEY: &str = "aa00000000000000000000000000000000000000000000000000000000000001";
pub const PEER_A_KEY: &str = "bb00000000000000000000000000000000000000000000000000000000000002";
pub const PEER_B_KEY: &str = "cc00000000000000000000000000000000000000000000000000000000000003";

fn link(id: u32, class: &str, rtt_ms: f64, loss: f64, bps: u64, cost: u16) -> LinkInfo {
    LinkInfo {
        id,
        class: class.to_owned(),
        state: "up".to_owned(),
        rtt_ms: Some(rtt_ms),
        jitter_ms: Some(rtt_ms / 10.0),
        loss_ratio: loss,
        etx: Some(1.0 / (1.0 - loss)),
        bandwidth_bps: Some(bps),
        rx_bytes: u64::from(id) * 1000,
        tx_bytes: u64::from(id) * 2000,
        cost,
    }
}

fn route(prefix: &str, state: RouteState, link: u32, peer: &str, metric: u16) -> RouteInfo {
    RouteInfo {
        prefix: prefix.to_owned(),
        state,
        next_hop: NextHopInfo {
            link: Some(link),
            peer: Some(peer.to_owned()),
            endpoint: Some(format!("192.0.2.{link}:9651")),
        },
        metric,
        parts: vec![
            MetricPart {
                name: format!("link {link}"),
                cost: 156,
                rtt_ms: Some(10.0),
                loss: Some(0.0),
                bandwidth_bps: Some(1_000_000_000),
                class: Some("fiber".to_owned()),
            },
            MetricPart {
                name: "advertised".to_owned(),
                cost: u32::from(metric).saturating_sub(156),
                rtt_ms: None,
                loss: None,
                bandwidth_bps: None,
                class: None,
            },
        ],
        seqno: 7,
        router_id: PEER_B_KEY.to_owned(),
        age_seconds: 3.5,
    }
}

impl Default for FakeData {
    fn default() -> Self {
        let mut shard0 = CounterValues { snapshot_generation: 42, batches: 900, ..Default::default() };
        shard0.underlay_rx_packets = 1000;
        shard0.underlay_rx_bytes = 1_200_000;
        shard0.underlay_tx_packets = 800;
        shard0.underlay_tx_bytes = 960_000;
        shard0.tun_rx_packets = 700;
        shard0.tun_tx_packets = 600;
        shard0.drops[DropReason::NoRoute as usize] = 5;
        let mut shard1 = CounterValues { snapshot_generation: 42, batches: 100, ..Default::default() };
        shard1.underlay_rx_packets = 10;
        shard1.drops[DropReason::AuthFailed as usize] = 2;
        shard1.drops[DropReason::NoRoute as usize] = 1;
        let counters = vec![(0, shard0), (1, shard1)];
        let mut sum = CounterValues { snapshot_generation: u64::MAX, ..Default::default() };
        for (_, c) in &counters {
            sum += *c;
        }

        let node = NodeInfo {
            public_key: LOCAL_KEY.to_owned(),
            address: "4aa:1:2:3:4:5:6:7".to_owned(),
            subnet: "4aa:1:2:3::/64".to_owned(),
            version: "0.1.0".to_owned(),
            uptime_seconds: 3723.0,
            shards: vec![ShardInfo { index: 0, core: Some(2) }, ShardInfo { index: 1, core: Some(3) }],
            snapshot: SnapshotInfo { generation: 42, age_seconds: Some(1.25) },
            totals: Totals::from_counters(&sum),
        };
        let peers = vec![
            PeerInfo {
                public_key: PEER_A_KEY.to_owned(),
                address: "5bb:1::2".to_owned(),
                endpoint: "udp://192.0.2.1:9651".to_owned(),
                state: "up".to_owned(),
                last_handshake_seconds_ago: Some(12.0),
                links: vec![
                    link(1, "fiber", 10.0, 0.0, 1_000_000_000, 156),
                    link(2, "cellular", 48.5, 0.05, 20_000_000, 1210),
                ],
            },
            PeerInfo {
                public_key: PEER_B_KEY.to_owned(),
                address: "4cc:2::3".to_owned(),
                endpoint: "udp://[2001:db8::3]:9651".to_owned(),
                state: "up".to_owned(),
                last_handshake_seconds_ago: Some(30.0),
                links: vec![link(3, "satellite", 600.0, 0.01, 50_000_000, 7155)],
            },
        ];
        let routes = vec![
            route("4cc:2::/64", RouteState::Selected, 1, PEER_A_KEY, 312),
            route("4cc:2::/64", RouteState::Fallback, 3, PEER_B_KEY, 7155),
            route("5bb:1::/64", RouteState::Selected, 1, PEER_A_KEY, 156),
        ];
        let node_ids =
            [(LOCAL_KEY, "4aa:1:2:3:4:5:6:7", true), (PEER_A_KEY, "5bb:1::2", false), (PEER_B_KEY, "4cc:2::3", false)];
        let graph = Graph {
            nodes: node_ids
                .iter()
                .map(|(id, addr, local)| GraphNode { id: id.to_string(), address: addr.to_string(), local: *local })
                .collect(),
            links: vec![
                GraphLink {
                    from: LOCAL_KEY.into(),
                    to: PEER_A_KEY.into(),
                    link: Some(1),
                    class: Some("fiber".into()),
                    state: "up".into(),
                    cost: 156,
                },
                GraphLink {
                    from: LOCAL_KEY.into(),
                    to: PEER_A_KEY.into(),
                    link: Some(2),
                    class: Some("cellular".into()),
                    state: "up".into(),
                    cost: 1210,
                },
                GraphLink {
                    from: LOCAL_KEY.into(),
                    to: PEER_B_KEY.into(),
                    link: Some(3),
                    class: Some("satellite".into()),
                    state: "up".into(),
                    cost: 7155,
                },
                GraphLink {
                    from: PEER_A_KEY.into(),
                    to: PEER_B_KEY.into(),
                    link: None,
                    class: None,
                    state: "route".into(),
                    cost: 156,
                },
            ],
            paths: vec![GraphPath {
                prefix: "4cc:2::/64".into(),
                hops: vec![LOCAL_KEY.into(), PEER_A_KEY.into(), PEER_B_KEY.into()],
                link: Some(1),
                metric: 312,
            }],
        };
        let sample = DaemonSample {
            peers: vec![
                PeerSample {
                    peer: "5bb:1::2".into(),
                    receive_bytes: 3000,
                    transmit_bytes: 6000,
                    links: vec![
                        LinkSample { link: 1, rtt_seconds: Some(0.010), loss_ratio: 0.0, bandwidth_bps: 1_000_000_000 },
                        LinkSample { link: 2, rtt_seconds: None, loss_ratio: 0.05, bandwidth_bps: 20_000_000 },
                    ],
                },
                PeerSample {
                    peer: "4cc:2::3".into(),
                    receive_bytes: 3000,
                    transmit_bytes: 6000,
                    links: vec![LinkSample {
                        link: 3,
                        rtt_seconds: Some(0.6),
                        loss_ratio: 0.01,
                        bandwidth_bps: 50_000_000,
                    }],
                },
            ],
            routes_selected: 2,
            routes_fallback: 1,
            route_changes: 4,
            snapshot_generation: 42,
            snapshot_age_seconds: Some(1.25),
            transit_bytes: vec![("5bb:1::2".into(), 5000), ("4cc:2::3".into(), 700)],
        };
        FakeData { node, peers, routes, counters, graph, sample, fail: None }
    }
}

impl Default for FakeNode {
    fn default() -> Self {
        FakeNode::new(FakeData::default())
    }
}

impl FakeNode {
    /// A fake answering with `data`.
    pub fn new(data: FakeData) -> Self {
        FakeNode { data: Mutex::new(data) }
    }

    /// Reads or changes the data under the lock.
    pub fn with<R>(&self, f: impl FnOnce(&mut FakeData) -> R) -> R {
        f(&mut self.data.lock().unwrap_or_else(PoisonError::into_inner))
    }

    fn read<R>(&self, f: impl FnOnce(&FakeData) -> R) -> Result<R, ApiError> {
        self.with(|d| match &d.fail {
            Some(e) => Err(e.clone()),
            None => Ok(f(d)),
        })
    }
}

/// Whether `address` is inside `prefix` (`addr/len`); false if it does not parse.
fn contains(prefix: &str, address: Ipv6Addr) -> bool {
    let Some((net, len)) = prefix.split_once('/') else { return false };
    let (Ok(net), Ok(len)) = (net.parse::<Ipv6Addr>(), len.parse::<u32>()) else { return false };
    let mask = if len == 0 { 0 } else { u128::MAX.checked_shl(128 - len.min(128)).unwrap_or(0) };
    u128::from(net) & mask == u128::from(address) & mask
}

impl AdminState for FakeNode {
    fn node(&self) -> Result<NodeInfo, ApiError> {
        self.read(|d| d.node.clone())
    }

    fn peers(&self) -> Result<Vec<PeerInfo>, ApiError> {
        self.read(|d| d.peers.clone())
    }

    fn routes(&self) -> Result<Vec<RouteInfo>, ApiError> {
        self.read(|d| d.routes.clone())
    }

    fn lookup(&self, address: Ipv6Addr) -> Result<RouteLookup, ApiError> {
        self.read(|d| {
            let matching: Vec<&RouteInfo> = d.routes.iter().filter(|r| contains(&r.prefix, address)).collect();
            let selected = matching.iter().find(|r| r.state == RouteState::Selected).map(|r| (*r).clone());
            let alternatives = matching
                .iter()
                .filter(|r| r.state != RouteState::Selected)
                .map(|r| Alternative {
                    route: (*r).clone(),
                    reason: match &selected {
                        Some(s) => format!("metric {} > {}", r.metric, s.metric),
                        None => "not selected".to_owned(),
                    },
                })
                .collect();
            RouteLookup { address: address.to_string(), selected, alternatives }
        })
    }

    fn counters(&self) -> Result<Vec<(usize, CounterValues)>, ApiError> {
        self.read(|d| d.counters.clone())
    }

    fn graph(&self) -> Result<Graph, ApiError> {
        self.read(|d| d.graph.clone())
    }

    fn add_peer(&self, endpoint: &str) -> Result<(), ApiError> {
        self.read(|_| ())?;
        if !endpoint.starts_with("udp://") {
            return Err(ApiError::BadRequest(format!("endpoint {endpoint:?}: expected udp://host:port")));
        }
        self.with(|d| {
            if d.peers.iter().any(|p| p.endpoint == endpoint) {
                return Err(ApiError::Conflict(format!("peer {endpoint} exists")));
            }
            d.peers.push(PeerInfo {
                public_key: String::new(),
                address: String::new(),
                endpoint: endpoint.to_owned(),
                state: "connecting".to_owned(),
                last_handshake_seconds_ago: None,
                links: Vec::new(),
            });
            Ok(())
        })
    }

    fn remove_peer(&self, endpoint: &str) -> Result<(), ApiError> {
        self.read(|_| ())?;
        self.with(|d| {
            let before = d.peers.len();
            d.peers.retain(|p| p.endpoint != endpoint);
            if d.peers.len() == before {
                return Err(ApiError::NotFound(format!("no peer with endpoint {endpoint}")));
            }
            Ok(())
        })
    }
}

impl MetricsSource for FakeNode {
    fn sample(&self) -> DaemonSample {
        self.with(|d| d.sample.clone())
    }
}
