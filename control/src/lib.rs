//! The mycelium control daemon: peering, discovery, link measurement, routing, and snapshot publishing.
//!
//! - [`routing`]: the Babel-derived route engine (sans-IO).

pub mod routing;
