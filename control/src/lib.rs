//! The mycelium control daemon: peering, discovery, link measurement, routing, and snapshot publishing.
//!
//! - [`peer`]: authenticated links to neighbours (handshake, sealed CONTROL
//!   packets, rekey, backoff), sans-IO.
//! - [`discovery`]: whom to dial: static peers, peer exchange, LAN beacons.
//! - [`link`]: per-neighbour link measurement (RTT, loss, capacity, position)
//!   and the link cost, sans-IO.
//! - [`config`]: myceliumd's TOML file and command-line flags.

pub mod config;
pub mod discovery;
pub mod link;
pub mod peer;
