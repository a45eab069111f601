//! What the node shows the admin API and `/metrics`: a copy of its state
//! taken by the engine loop, so server threads never touch the engine.

use mycelium_common::time::Timestamp;

use super::NodeCore;
use crate::api::types::{
    Graph, GraphLink, GraphNode, GraphPath, LinkInfo, MetricPart, NextHopInfo, PeerInfo, RouteInfo, RouteState,
};
use crate::routing::RouteInfo as EngineRoute;

/// The node's state as the operator sees it.
#[derive(Debug, Clone, Default)]
pub struct NodeStatus {
    pub public_key: String,
    pub address: String,
    pub subnet: String,
    pub uptime_seconds: f64,
    pub peers: Vec<PeerInfo>,
    pub routes: Vec<RouteInfo>,
    pub graph: Graph,
    pub route_changes: u64,
    pub route_generation: u64,
}

impl NodeCore {
    /// A copy of the state for the admin API and metrics.
    pub fn status(&self, now: Timestamp) -> NodeStatus {
        let address = self.key.address();
        let peers = self
            .links
            .iter()
            .map(|(id, nl)| {
                let stats = self.peers.peers().find(|p| p.link == nl.peer_link).map(|p| p.stats);
                let (rx, tx) = stats.map_or((0, 0), |s| (s.rx_bytes, s.tx_bytes));
                let (rx, tx) = (rx + nl.data.1, tx + nl.data.0);
                PeerInfo {
                    public_key: nl.neighbour.to_hex(),
                    address: nl.neighbour.address().to_string(),
                    endpoint: nl.endpoint.to_string(),
                    state: if nl.link.is_up() { "up" } else { "measuring" }.to_owned(),
                    last_handshake_seconds_ago: None,
                    links: vec![LinkInfo::from_metrics(id.0, &nl.link.metrics(), rx, tx)],
                }
            })
            .collect();
        let mut routes = Vec::new();
        let mut graph = Graph::default();
        let me = self.key.to_hex();
        graph.nodes.push(GraphNode { id: me.clone(), address: address.to_string(), local: true });
        for (id, nl) in &self.links {
            graph.nodes.push(GraphNode {
                id: nl.neighbour.to_hex(),
                address: nl.neighbour.address().to_string(),
                local: false,
            });
            graph.links.push(GraphLink {
                from: me.clone(),
                to: nl.neighbour.to_hex(),
                link: Some(id.0),
                class: Some(nl.link.metrics().class.name().to_owned()),
                state: if nl.link.is_up() { "up" } else { "down" }.to_owned(),
                cost: u32::from(nl.link.cost()),
            });
        }
        // The router's live table: the published one changes only with the
        // selected next hops, so its metrics would be stale.
        for entry in &self.router.route_table().entries {
            let prefix = entry.prefix.to_string();
            routes.push(self.route_info(&prefix, &entry.selected, RouteState::Selected, now));
            for fallback in &entry.fallbacks {
                routes.push(self.route_info(&prefix, fallback, RouteState::Fallback, now));
            }
            let dest = entry.selected.router_id.to_hex();
            if !graph.nodes.iter().any(|n| n.id == dest) {
                graph.nodes.push(GraphNode {
                    id: dest.clone(),
                    address: entry.selected.router_id.address().to_string(),
                    local: false,
                });
            }
            let via = entry.selected.neighbour.to_hex();
            let mut hops = vec![me.clone(), via.clone()];
            if via != dest {
                hops.push(dest.clone());
                if !graph.links.iter().any(|l| l.from == via && l.to == dest) {
                    graph.links.push(GraphLink {
                        from: via,
                        to: dest,
                        link: None,
                        class: None,
                        state: "route".to_owned(),
                        cost: u32::from(entry.selected.metric),
                    });
                }
            }
            graph.paths.push(GraphPath {
                prefix,
                hops,
                link: Some(entry.selected.link.0),
                metric: u32::from(entry.selected.metric),
            });
        }
        NodeStatus {
            public_key: me,
            address: address.to_string(),
            subnet: address.subnet().to_string(),
            uptime_seconds: now.saturating_since(self.started).as_secs_f64(),
            peers,
            routes,
            graph,
            route_changes: self.route_changes,
            route_generation: self.route_generation,
        }
    }

    fn route_info(&self, prefix: &str, route: &EngineRoute, state: RouteState, now: Timestamp) -> RouteInfo {
        let link = self.links.get(&route.link);
        let metrics = link.map(|nl| nl.link.metrics());
        let part = metrics.as_ref().map(|m| MetricPart {
            name: "first hop".to_owned(),
            cost: u32::from(m.cost),
            rtt_ms: m.rtt.map(|d| d.as_secs_f64() * 1e3),
            loss: Some(m.loss_ratio),
            bandwidth_bps: Some(m.capacity_bps),
            class: Some(m.class.name().to_owned()),
        });
        RouteInfo {
            prefix: prefix.to_owned(),
            state,
            next_hop: NextHopInfo {
                link: Some(route.link.0),
                peer: Some(route.neighbour.to_hex()),
                endpoint: link.map(|nl| nl.endpoint.to_string()),
            },
            metric: route.metric,
            parts: part.into_iter().collect(),
            seqno: route.seqno,
            router_id: route.router_id.to_hex(),
            age_seconds: now.saturating_since(self.started).as_secs_f64(),
        }
    }
}
