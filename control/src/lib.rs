//! The mycelium control daemon: peering, discovery, link measurement, routing, and snapshot publishing.
//!
//! - [`link`]: per-neighbour link measurement (RTT, loss, capacity, position)
//!   and the link cost, sans-IO.

pub mod discovery;
pub mod link;
pub mod peer;
