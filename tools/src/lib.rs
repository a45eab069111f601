//! Operator tools for mycelium: `mctl` (keys, and inspection of a running
//! node), [`sim`] (the deterministic mesh simulator for the route engine)
//! and, later, `mlab` (the namespace lab).

pub mod mctl;
pub mod sim;
