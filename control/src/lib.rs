//! The mycelium control daemon: peering, discovery, link measurement, routing, and snapshot publishing.
