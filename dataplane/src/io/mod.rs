//! Everything that touches the kernel: rings, sockets, the TUN, shared memory,
//! CPU affinity, signals. The engine (`crate::engine`) never sees any of it.
//!
//! - [`node`]: start-up checks, one pinned shard thread per core, shutdown.
//! - [`shard`]: a shard's io_uring loop around the engine.
//! - [`bufring`]: provided-buffer rings and their buffers.
//! - [`socket`], [`tun`], [`punt`], [`shm`]: the shard's files.
//! - [`steer`]: the reuseport program that spreads DATA over the receiving shards.
//! - [`affinity`], [`privileges`], [`signals`]: process set-up.

pub mod affinity;
pub mod bufring;
pub mod node;
pub mod privileges;
pub mod punt;
pub mod shard;
pub mod shm;
pub mod signals;
pub mod socket;
pub mod steer;
mod sys;
pub mod tun;
