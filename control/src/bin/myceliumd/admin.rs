//! The admin API and metrics adapters: they read the status the engine loop
//! publishes after each turn, and send peer changes to the loop over a
//! channel, so server threads never touch the engine.

use std::net::Ipv6Addr;
use std::sync::Arc;
use std::sync::mpsc::{self, Sender};
use std::time::Duration;

use mycelium_common::time::Timestamp;
use mycelium_control::api::types::{
    Graph, NodeInfo, PeerInfo, RouteInfo, RouteLookup, RouteState, ShardInfo, SnapshotInfo, Totals,
};
use mycelium_control::api::{AdminState, ApiError};
use mycelium_control::metrics::{CounterSource, DaemonSample, LinkSample, MetricsSource, PeerSample, ShmCounters};
use mycelium_control::node::NodeStatus;
use mycelium_dataplane::engine::counters::CounterValues;
use parking_lot::Mutex;

/// What the loop must do for an operator.
pub enum Command {
    AddPeer(String, Sender<Result<(), String>>),
    RemovePeer(String, Sender<Result<(), String>>),
}

/// Shared between the loop (writer) and the servers (readers).
pub struct Shared {
    pub status: Mutex<NodeStatus>,
    pub snapshot_built: Mutex<Option<Timestamp>>,
    pub counters: ShmCounters,
    pub commands: Mutex<Sender<crate::runtime::Event>>,
    pub version: String,
    /// The instance's shared-memory directory (transit counter files).
    pub shm_dir: std::path::PathBuf,
}

impl Shared {
    fn counters(&self) -> Result<Vec<(usize, CounterValues)>, ApiError> {
        self.counters.read().map_err(ApiError::Internal)
    }

    fn ask(&self, make: impl FnOnce(Sender<Result<(), String>>) -> Command) -> Result<(), ApiError> {
        let (tx, rx) = mpsc::channel();
        self.commands
            .lock()
            .send(crate::runtime::Event::Command(make(tx)))
            .map_err(|_| ApiError::Unavailable("the engine loop is gone".into()))?;
        match rx.recv_timeout(Duration::from_secs(5)) {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(ApiError::BadRequest(e)),
            Err(_) => Err(ApiError::Unavailable("the engine loop did not answer within 5 s".into())),
        }
    }
}

/// The admin API's view of the daemon.
pub struct Admin(pub Arc<Shared>);

impl AdminState for Admin {
    fn node(&self) -> Result<NodeInfo, ApiError> {
        let status = self.0.status.lock().clone();
        let shards = self.0.counters().unwrap_or_default();
        let total: CounterValues = shards.iter().map(|(_, c)| *c).sum();
        let age = self.0.snapshot_built.lock().map(|t| Timestamp::now().saturating_since(t).as_secs_f64());
        Ok(NodeInfo {
            public_key: status.public_key,
            address: status.address,
            subnet: status.subnet,
            version: self.0.version.clone(),
            uptime_seconds: status.uptime_seconds,
            shards: shards.iter().map(|(i, _)| ShardInfo { index: *i as u32, core: None }).collect(),
            snapshot: SnapshotInfo { generation: status.route_generation, age_seconds: age },
            totals: Totals::from_counters(&total),
        })
    }

    fn peers(&self) -> Result<Vec<PeerInfo>, ApiError> {
        Ok(self.0.status.lock().peers.clone())
    }

    fn routes(&self) -> Result<Vec<RouteInfo>, ApiError> {
        Ok(self.0.status.lock().routes.clone())
    }

    fn lookup(&self, address: Ipv6Addr) -> Result<RouteLookup, ApiError> {
        let routes = self.0.status.lock().routes.clone();
        let prefix = mycelium_common::address::Subnet::new(address.octets(), 64)
            .map_err(|e| ApiError::BadRequest(e.to_string()))?
            .to_string();
        let mut matching = routes.into_iter().filter(|r| r.prefix == prefix);
        let all: Vec<RouteInfo> = matching.by_ref().collect();
        let selected = all.iter().find(|r| r.state == RouteState::Selected).cloned();
        let alternatives = all
            .into_iter()
            .filter(|r| r.state == RouteState::Fallback)
            .map(|route| {
                let reason = match &selected {
                    Some(s) if route.metric > s.metric => {
                        format!("metric {} is worse than the selected {}", route.metric, s.metric)
                    }
                    Some(_) => "not better by the hysteresis margin on both current and smoothed metric".to_owned(),
                    None => "no route is selected".to_owned(),
                };
                mycelium_control::api::types::Alternative { route, reason }
            })
            .collect();
        Ok(RouteLookup { address: address.to_string(), selected, alternatives })
    }

    fn counters(&self) -> Result<Vec<(usize, CounterValues)>, ApiError> {
        self.0.counters()
    }

    fn graph(&self) -> Result<Graph, ApiError> {
        Ok(self.0.status.lock().graph.clone())
    }

    fn add_peer(&self, endpoint: &str) -> Result<(), ApiError> {
        let endpoint = endpoint.to_owned();
        self.0.ask(|tx| Command::AddPeer(endpoint, tx))
    }

    fn remove_peer(&self, endpoint: &str) -> Result<(), ApiError> {
        let endpoint = endpoint.to_owned();
        self.0.ask(|tx| Command::RemovePeer(endpoint, tx))
    }
}

/// The metrics collector's view of the daemon.
pub struct Metrics(pub Arc<Shared>);

impl MetricsSource for Metrics {
    fn sample(&self) -> DaemonSample {
        let status = self.0.status.lock().clone();
        let age = self.0.snapshot_built.lock().map(|t| Timestamp::now().saturating_since(t).as_secs_f64());
        DaemonSample {
            peers: status
                .peers
                .iter()
                .map(|p| PeerSample {
                    peer: p.address.clone(),
                    receive_bytes: p.links.iter().map(|l| l.rx_bytes).sum(),
                    transmit_bytes: p.links.iter().map(|l| l.tx_bytes).sum(),
                    links: p
                        .links
                        .iter()
                        .map(|l| LinkSample {
                            link: l.id,
                            rtt_seconds: l.rtt_ms.map(|ms| ms / 1e3),
                            loss_ratio: l.loss_ratio,
                            bandwidth_bps: l.bandwidth_bps.unwrap_or(0),
                        })
                        .collect(),
                })
                .collect(),
            routes_selected: status.routes.iter().filter(|r| r.state == RouteState::Selected).count() as u64,
            routes_fallback: status.routes.iter().filter(|r| r.state == RouteState::Fallback).count() as u64,
            route_changes: status.route_changes,
            snapshot_generation: status.route_generation,
            snapshot_age_seconds: age,
            transit_bytes: transit_sources(&self.0.shm_dir),
        }
    }
}

/// Transit bytes per source /64, summed over the shards' files; what found
/// no slot in a shard's table is "unattributed".
fn transit_sources(dir: &std::path::Path) -> Vec<(String, u64)> {
    mycelium_dataplane::engine::transit::read_all_transit(dir)
        .into_iter()
        .map(|(prefix, bytes)| {
            let label = if prefix == 0 {
                "unattributed".to_owned()
            } else {
                let mut addr = [0u8; 16];
                addr[..8].copy_from_slice(&prefix.to_be_bytes());
                format!("{}/64", Ipv6Addr::from(addr))
            };
            (label, bytes)
        })
        .filter(|(_, bytes)| *bytes > 0)
        .collect()
}
