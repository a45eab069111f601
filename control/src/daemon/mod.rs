//! The I/O shells of myceliumd: the punt channel to the dataplane and the
//! dataplane's supervisor.

pub mod punt;
pub mod supervisor;
