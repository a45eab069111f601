//! The per-core packet engine of mycelium: pinned shards, each with its own io_uring ring, UDP socket shard and TUN queue (see shared/DESIGN.md, "The shard loop").

pub mod inner;
pub mod sessions;
