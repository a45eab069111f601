//! Benchmarks of mycelium; see benches/README.md for the figures and commands.
//!
//! - `benches/benches/*.rs`: criterion micro-benchmarks (crypto, the sealed
//!   engine per packet);
//! - [`lab`]: static topologies and their publishing, shared by the engine
//!   bench and the throughput harness;
//! - `src/bin/harness.rs` and [`harness`]: the throughput harness (raw veth
//!   against the overlay in network namespaces; run `benches/harness/run.sh`
//!   as root).

pub mod harness;
pub mod lab;
