//! The mycelium control daemon: peering, discovery, link measurement, routing, and snapshot publishing.
//!
//! - [`daemon`]: the daemon's I/O shells (punt channel, dataplane supervisor).
//! - [`e2e`]: end-to-end session handshakes through the mesh, and the key
//!   table they give the dataplane, sans-IO.
//! - [`link`]: per-neighbour link measurement (RTT, loss, capacity, position)
//!   and the link cost, sans-IO.

pub mod daemon;
pub mod e2e;
pub mod link;
