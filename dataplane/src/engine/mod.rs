//! The pure half of a shard: what happens to each packet.
//!
//! The shard loop (`crate::io::shard`) owns the ring, the sockets and the
//! buffers; once per loop iteration it calls, in this order:
//!
//! 1. [`Engine::begin_batch`] with the current time (the place to pick up a new
//!    route snapshot or expire state), also on idle wake-ups;
//! 2. [`Engine::process_from_underlay`] with the datagrams reaped from the UDP
//!    socket, if any;
//! 3. [`Engine::process_from_tun`] with the packets reaped from the TUN queue,
//!    if any;
//!
//! then submits every output of [`TxQueues`] in one go, recycles the buffers of
//! packets that got no output and adds the drop tallies to the shard's
//! [`counters::ShardCounters`]. An engine never reads the clock, never does
//! I/O and never allocates per packet.
//!
//! Buffers: a TUN packet arrives with at least [`Engine::tun_headroom`] free
//! bytes in front of it and [`Engine::tun_tailroom`] after it, so the engine
//! can prepend its header and append a tag in place and queue the grown range.
//! An underlay datagram arrives at the start of its payload area; the engine
//! queues a sub-range of it (for example the decrypted inner packet) for the
//! TUN, or the whole datagram (after decrementing a hop limit) for a next hop.
//!
//! [`passthrough::PassthroughEngine`] is the I/O-layer test engine (no crypto)
//! until the sealed engine replaces it.

pub mod counters;
pub mod fair;
pub mod links;
pub mod passthrough;
pub mod sealed;
pub mod transit;

use mycelium_common::time::Timestamp;

use crate::batch::{RxBatch, TxQueues};

/// What the shard loop calls per batch. One instance per shard, never shared.
pub trait Engine {
    /// Free bytes the engine needs in front of every TUN packet.
    fn tun_headroom(&self) -> usize;

    /// Free bytes the engine needs after every TUN packet.
    fn tun_tailroom(&self) -> usize;

    /// Called once per loop iteration, before the batches, and at least every
    /// `WAIT_TIMEOUT` (100 ms) when idle: the place to pick up a new route
    /// snapshot or expire state.
    fn begin_batch(&mut self, now: Timestamp) {
        let _ = now;
    }

    /// Generation of the route snapshot in use (0: none); the loop publishes it
    /// in the shard's counters after [`Engine::begin_batch`].
    fn snapshot_generation(&self) -> u64 {
        0
    }

    /// Transit bytes per source, for the loop to publish now and then
    /// (`None`: this engine does not count them).
    fn transit(&mut self) -> Option<&mut transit::TransitTable> {
        None
    }

    /// Traffic per link, for the loop to publish after each batch (`None`:
    /// this engine does not count it).
    fn links(&mut self) -> Option<&mut links::LinkTraffic> {
        None
    }

    /// Handles datagrams received on the node's UDP port. Each packet has
    /// [`RxPacket::peer`](crate::batch::RxPacket::peer) set to its source.
    fn process_from_underlay(&mut self, now: Timestamp, batch: &mut RxBatch, out: &mut TxQueues);

    /// Handles packets read from this shard's TUN queue.
    fn process_from_tun(&mut self, now: Timestamp, batch: &mut RxBatch, out: &mut TxQueues);
}
