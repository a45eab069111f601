//! Every metric name `/metrics` exposes, as scraped (counters with their
//! `_total`, the info gauge with its `_info`). The Grafana dashboard's test
//! checks each name it queries is one of these.

pub const PEER_RECEIVE_BYTES: &str = "mycelium_peer_receive_bytes_total";
pub const PEER_TRANSMIT_BYTES: &str = "mycelium_peer_transmit_bytes_total";
pub const LINK_RTT: &str = "mycelium_link_rtt_seconds";
pub const LINK_LOSS: &str = "mycelium_link_loss_ratio";
pub const LINK_BANDWIDTH: &str = "mycelium_link_bandwidth_bytes_per_second";
pub const ROUTES: &str = "mycelium_routes";
pub const ROUTE_CHANGES: &str = "mycelium_route_changes_total";
pub const DATAPLANE_PACKETS: &str = "mycelium_dataplane_packets_total";
pub const DATAPLANE_BYTES: &str = "mycelium_dataplane_bytes_total";
pub const DATAPLANE_DROPPED: &str = "mycelium_dataplane_dropped_packets_total";
pub const DATAPLANE_SHARDS: &str = "mycelium_dataplane_shards";
pub const SNAPSHOT_GENERATION: &str = "mycelium_snapshot_generation";
pub const SNAPSHOT_AGE: &str = "mycelium_snapshot_age_seconds";
pub const TRANSIT_BYTES: &str = "mycelium_transit_bytes_total";
pub const BUILD_INFO: &str = "mycelium_build_info";

/// All of the above.
pub const ALL: &[&str] = &[
    PEER_RECEIVE_BYTES,
    PEER_TRANSMIT_BYTES,
    LINK_RTT,
    LINK_LOSS,
    LINK_BANDWIDTH,
    ROUTES,
    ROUTE_CHANGES,
    DATAPLANE_PACKETS,
    DATAPLANE_BYTES,
    DATAPLANE_DROPPED,
    DATAPLANE_SHARDS,
    SNAPSHOT_GENERATION,
    SNAPSHOT_AGE,
    TRANSIT_BYTES,
    BUILD_INFO,
];

/// The `direction` label values of the dataplane packet and byte counters.
pub const DIRECTIONS: &[&str] = &["underlay_rx", "underlay_tx", "tun_rx", "tun_tx"];
