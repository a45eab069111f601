//! Operator tools for mycelium: `mctl` (keys, and inspection of a running
//! node) and, later, `mlab` (the namespace lab).

pub mod mctl;
