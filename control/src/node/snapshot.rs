//! The node's route snapshot for the dataplane: the router's selected routes,
//! the node's own /64 delivered locally, and the links that are up.

use mycelium_common::snapshot::{BuildError, LOCAL, Link, LinkState, NodeInfo, Route, RouteSnapshot, SnapshotBuilder};
use mycelium_common::time::Timestamp;

use super::NodeCore;

pub(super) fn build(node: &NodeCore, now: Timestamp) -> Result<RouteSnapshot, BuildError> {
    let own = node.key.address().subnet();
    let local = Route {
        prefix: own.prefix(),
        len: own.len(),
        next_hop: LOCAL,
        metric: 0,
        seqno: node.router.seqno(),
        router_id: *node.key.as_bytes(),
    };
    let routes =
        node.routes.entries.iter().filter(|e| e.prefix != own && node.links.contains_key(&e.selected.link)).map(|e| {
            Route {
                prefix: e.prefix.prefix(),
                len: e.prefix.len(),
                next_hop: e.selected.link.0,
                metric: e.selected.metric,
                seqno: e.selected.seqno,
                router_id: *e.selected.router_id.as_bytes(),
            }
        });
    let links = node.links.iter().map(|(id, nl)| Link::new(id.0, nl.endpoint, LinkState::Up, &nl.neighbour));
    SnapshotBuilder::new(NodeInfo::from_public_key(&node.key), node.route_generation, now)
        .routes(std::iter::once(local).chain(routes))
        .links(links)
        .build()
}
