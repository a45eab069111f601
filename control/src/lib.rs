//! The mycelium control daemon: peering, discovery, link measurement, routing, and snapshot publishing.
//!
//! - [`daemon`]: the daemon's I/O shells (punt channel, dataplane supervisor).
//! - [`e2e`]: end-to-end session handshakes through the mesh, and the key
//!   table they give the dataplane, sans-IO.
//! - [`peer`]: authenticated links to neighbours (handshake, sealed CONTROL
//!   packets, rekey, backoff), sans-IO.
//! - [`discovery`]: whom to dial: static peers, peer exchange, LAN beacons.
//! - [`link`]: per-neighbour link measurement (RTT, loss, capacity, position)
//!   and the link cost, sans-IO.
//! - [`config`]: myceliumd's TOML file and command-line flags.
//! - [`routing`]: the Babel-derived route engine (sans-IO).
//! - [`api`]: the local admin API (HTTP + JSON) and the documents it serves.
//! - [`metrics`]: the Prometheus `/metrics` endpoint.
//! - [`node`]: all of the above composed into the node's sans-IO engine.
//! - [`rng`]: the seeded PRNG of simulations and tests.
//! - [`logging`]: `tracing` output as text or JSON lines.

pub mod api;
pub mod config;
pub mod daemon;
pub mod discovery;
pub mod e2e;
pub mod link;
pub mod logging;
pub mod metrics;
pub mod node;
pub mod peer;
pub mod rng;
pub mod routing;
