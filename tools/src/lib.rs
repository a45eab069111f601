//! Operator tools for mycelium: `mctl` (keys, and inspection of a running
//! node), [`sim`] (the deterministic mesh simulator for the route engine),
//! [`emu`] (the user-space link emulator behind `mlab-emu`) and [`lab`]
//! (the namespace lab behind `mlab`).

pub mod emu;
pub mod lab;
pub mod mctl;
pub mod sim;
