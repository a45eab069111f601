//! The mycelium control daemon: peering, discovery, link measurement, routing, and snapshot publishing.
//!
//! - [`link`]: per-neighbour link measurement (RTT, loss, capacity, position)
//!   and the link cost, sans-IO.
//! - [`routing`]: the Babel-derived route engine (sans-IO).

pub mod link;
pub mod routing;
