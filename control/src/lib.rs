//! The mycelium control daemon: peering, discovery, link measurement, routing, and snapshot publishing.
//!
//! - [`link`]: per-neighbour link measurement (RTT, loss, capacity, position)
//!   and the link cost, sans-IO.
//! - [`api`]: the local admin API (HTTP + JSON) and the documents it serves.
//! - [`metrics`]: the Prometheus `/metrics` endpoint.
//! - [`logging`]: `tracing` output as text or JSON lines.

pub mod api;
pub mod link;
pub mod logging;
pub mod metrics;
