//! The per-core packet engine of mycelium: pinned shards, each with its own
//! io_uring ring, UDP socket of the port's reuseport group and TUN queue (see
//! shared/DESIGN.md, "The shard loop").
//!
//! - [`engine`]: the pure per-packet work behind the [`engine::Engine`] trait,
//!   its counters, and [`engine::passthrough::PassthroughEngine`] (the I/O test
//!   engine, no crypto);
//! - [`batch`]: the types the loop and the engine exchange per batch;
//! - [`io`]: the loop and everything that touches the kernel;
//! - [`sessions`]: end-to-end session keys, ciphers and replay windows as the
//!   shards use them;
//! - [`inner`]: checks on the inner (plaintext) IPv6 packet;
//! - [`config`]: settings and their strict parsers.

pub mod batch;
pub mod config;
pub mod engine;
pub mod inner;
pub mod io;
pub mod offload;
pub mod sessions;
