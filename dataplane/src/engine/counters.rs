//! Per-shard counters: one cache-line-aligned block of plain `AtomicU64`s per
//! shard, written only by that shard and summed by the control daemon at
//! scrape time.
//!
//! The block lives in a shared-memory file (`shard-<n>.counters` in the shm
//! directory, see `crate::io::shm`); its layout is `#[repr(C)]` and starts with
//! [`COUNTERS_MAGIC`] and the number of drop reasons, so a reader can check it
//! maps what it expects. The shard is the only writer, so increments are a
//! relaxed load and store (no locked instruction); readers see each value
//! whole, possibly a batch late.

use std::sync::atomic::{AtomicU64, Ordering};

use super::links::{LINK_SLOTS, LinkCounts};

/// First word of a counters block: "MYCNT001" as a little-endian u64.
pub const COUNTERS_MAGIC: u64 = u64::from_le_bytes(*b"MYCNT002");

macro_rules! drop_reasons {
    ($($(#[doc = $doc:literal])* $name:ident => $label:literal,)*) => {
        /// Why a packet was dropped. Each variant has its own counter.
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
        #[repr(u8)]
        pub enum DropReason {
            $($(#[doc = $doc])* $name,)*
        }

        impl DropReason {
            /// Every reason, in counter order.
            pub const ALL: &[DropReason] = &[$(DropReason::$name,)*];
            /// Number of reasons.
            pub const COUNT: usize = Self::ALL.len();

            /// The `reason` label value used in metrics.
            pub const fn label(self) -> &'static str {
                match self {
                    $(DropReason::$name => $label,)*
                }
            }
        }
    };
}

drop_reasons! {
    /// A datagram was larger than the receive buffer.
    Truncated => "truncated",
    /// A packet's header did not parse.
    Malformed => "malformed",
    /// A TUN packet that is not IPv6.
    NotIpv6 => "not_ipv6",
    /// A TUN packet to a multicast or otherwise non-unicast destination.
    NotUnicast => "not_unicast",
    /// No route for the destination.
    NoRoute => "no_route",
    /// No route snapshot has been published yet.
    NoSnapshot => "no_snapshot",
    /// The first byte is not a protocol version this dataplane speaks.
    BadVersion => "bad_version",
    /// The packet type byte is unknown.
    UnknownType => "unknown_type",
    /// No session for the packet's key id (or, from the TUN, the destination).
    NoSession => "no_session",
    /// The session has expired.
    SessionExpired => "session_expired",
    /// The packet's source is not the session's peer.
    WrongPeer => "wrong_peer",
    /// The packet did not authenticate (tampered, or wrong key).
    AuthFailed => "auth_failed",
    /// A replay: the counter was already received.
    Replayed => "replayed",
    /// The counter is older than the replay window.
    TooOld => "too_old",
    /// The inner packet's source is outside the /64 it must come from.
    Spoofed => "spoofed",
    /// The inner packet's destination is outside the overlay, or not for the
    /// node it reached.
    NotOverlay => "not_overlay",
    /// The hop limit ran out in transit.
    HopLimit => "hop_limit",
    /// Transit over the operator's cap (`--transit-limit-mbps`), from a source over its fair share.
    TransitLimit => "transit_limit",
    /// Data for this node, but the dataplane runs without a TUN.
    NoTun => "no_tun",
    /// The engine queued more outputs than the batch can hold.
    TxQueueFull => "tx_queue_full",
    /// The engine queued an output the loop cannot send (bad range, twice).
    InvalidOutput => "invalid_output",
    /// Every send slot was in flight.
    TxBusy => "tx_busy",
    /// A UDP send completed with an error.
    SendFailed => "send_failed",
    /// A TUN write completed with an error.
    TunWriteFailed => "tun_write_failed",
    /// No control daemon listens on the punt channel.
    PuntUnavailable => "punt_unavailable",
    /// The punt channel was full (the daemon is not keeping up).
    PuntFull => "punt_full",
    /// A message from the control daemon to inject did not parse.
    InjectMalformed => "inject_malformed",
    /// A TUN super-packet or vnet header that does not parse (bad lengths,
    /// checksum offset past the end), or a segmentation that did not fit.
    OffloadMalformed => "offload_malformed",
    /// A TUN super-packet we do not split (IPv4, IPv6 extension headers, ECN GSO).
    OffloadUnsupported => "offload_unsupported",
}

/// One shard's counters. Only the owning shard writes them.
#[repr(C, align(64))]
#[derive(Debug)]
pub struct ShardCounters {
    /// [`COUNTERS_MAGIC`], written last when the block is initialised.
    pub magic: AtomicU64,
    /// `DropReason::COUNT` of the writer, so a reader knows the layout.
    pub drop_reasons: AtomicU64,
    /// Generation of the route snapshot the shard uses (0: none).
    pub snapshot_generation: AtomicU64,
    /// Loop iterations that handled at least one completion.
    pub batches: AtomicU64,
    /// Datagrams received on the UDP socket.
    pub underlay_rx_packets: AtomicU64,
    /// Bytes of those datagrams (UDP payload).
    pub underlay_rx_bytes: AtomicU64,
    /// Datagrams sent on the UDP socket.
    pub underlay_tx_packets: AtomicU64,
    /// Bytes of those datagrams.
    pub underlay_tx_bytes: AtomicU64,
    /// Packets read from the TUN queue.
    pub tun_rx_packets: AtomicU64,
    /// Bytes of those packets.
    pub tun_rx_bytes: AtomicU64,
    /// Packets written to the TUN queue.
    pub tun_tx_packets: AtomicU64,
    /// Bytes of those packets.
    pub tun_tx_bytes: AtomicU64,
    /// Messages sent to the control daemon on the punt channel.
    pub punted: AtomicU64,
    /// Datagrams the control daemon asked this shard to send.
    pub injected: AtomicU64,
    /// Times the kernel found no free provided buffer (ENOBUFS). Not a drop:
    /// the packet stays queued in the kernel and the receive is re-armed, but
    /// many of these mean the shard holds its buffers too long.
    pub buffers_exhausted: AtomicU64,
    /// Dropped packets, indexed by `DropReason as usize`.
    pub drops: [AtomicU64; DropReason::COUNT],
    /// Traffic per neighbour link (see [`super::links`]).
    pub links: [SharedLinkSlot; LINK_SLOTS],
}

/// One link's counters in shared memory. `key` is the link id plus one
/// while the slot belongs to that link, 0 while it is free or changing
/// hands; a reader trusts the counts only when it read the same non-zero
/// key before and after them.
#[repr(C)]
#[derive(Debug, Default)]
pub struct SharedLinkSlot {
    pub key: AtomicU64,
    pub tx_packets: AtomicU64,
    pub tx_bytes: AtomicU64,
    pub rx_packets: AtomicU64,
    pub rx_bytes: AtomicU64,
}

impl SharedLinkSlot {
    /// Writes the slot's owner and counts (the shard is the only writer).
    pub fn publish(&self, id: Option<u32>, counts: &LinkCounts) {
        let key = id.map_or(0, |id| u64::from(id) + 1);
        if self.key.load(Ordering::Relaxed) != key {
            self.key.store(0, Ordering::Release);
        }
        self.tx_packets.store(counts.tx_packets, Ordering::Relaxed);
        self.tx_bytes.store(counts.tx_bytes, Ordering::Relaxed);
        self.rx_packets.store(counts.rx_packets, Ordering::Relaxed);
        self.rx_bytes.store(counts.rx_bytes, Ordering::Relaxed);
        self.key.store(key, Ordering::Release);
    }

    /// The owner and counts, if the slot is in use and was not changing
    /// hands while read.
    pub fn read(&self) -> Option<(u32, LinkCounts)> {
        let key = self.key.load(Ordering::Acquire);
        let counts = LinkCounts {
            tx_packets: self.tx_packets.load(Ordering::Relaxed),
            tx_bytes: self.tx_bytes.load(Ordering::Relaxed),
            rx_packets: self.rx_packets.load(Ordering::Relaxed),
            rx_bytes: self.rx_bytes.load(Ordering::Relaxed),
        };
        std::sync::atomic::fence(Ordering::Acquire);
        let id = u32::try_from(key.checked_sub(1)?).ok()?;
        (self.key.load(Ordering::Relaxed) == key).then_some((id, counts))
    }
}

impl Default for ShardCounters {
    fn default() -> Self {
        let c = ShardCounters {
            magic: AtomicU64::new(0),
            drop_reasons: AtomicU64::new(DropReason::COUNT as u64),
            snapshot_generation: AtomicU64::new(0),
            batches: AtomicU64::new(0),
            underlay_rx_packets: AtomicU64::new(0),
            underlay_rx_bytes: AtomicU64::new(0),
            underlay_tx_packets: AtomicU64::new(0),
            underlay_tx_bytes: AtomicU64::new(0),
            tun_rx_packets: AtomicU64::new(0),
            tun_rx_bytes: AtomicU64::new(0),
            tun_tx_packets: AtomicU64::new(0),
            tun_tx_bytes: AtomicU64::new(0),
            punted: AtomicU64::new(0),
            injected: AtomicU64::new(0),
            buffers_exhausted: AtomicU64::new(0),
            drops: [const { AtomicU64::new(0) }; DropReason::COUNT],
            links: std::array::from_fn(|_| SharedLinkSlot::default()),
        };
        c.magic.store(COUNTERS_MAGIC, Ordering::Release);
        c
    }
}

/// Adds `n` to a counter that only this thread writes.
#[inline]
pub fn bump(counter: &AtomicU64, n: u64) {
    counter.store(counter.load(Ordering::Relaxed).wrapping_add(n), Ordering::Relaxed);
}

impl ShardCounters {
    /// Counts `n` drops for `reason`.
    #[inline]
    pub fn drop_n(&self, reason: DropReason, n: u64) {
        bump(&self.drops[reason as usize], n);
    }

    /// Adds a batch's drop tallies (indexed by `DropReason as usize`).
    pub fn add_drops(&self, tallies: &[u64; DropReason::COUNT]) {
        for (counter, &n) in self.drops.iter().zip(tallies) {
            if n != 0 {
                bump(counter, n);
            }
        }
    }

    /// Every link slot in use: (link id, counts).
    pub fn read_links(&self) -> impl Iterator<Item = (u32, LinkCounts)> + '_ {
        self.links.iter().filter_map(SharedLinkSlot::read)
    }

    /// A plain copy of every value, for summing and printing.
    pub fn read(&self) -> CounterValues {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        CounterValues {
            snapshot_generation: get(&self.snapshot_generation),
            batches: get(&self.batches),
            underlay_rx_packets: get(&self.underlay_rx_packets),
            underlay_rx_bytes: get(&self.underlay_rx_bytes),
            underlay_tx_packets: get(&self.underlay_tx_packets),
            underlay_tx_bytes: get(&self.underlay_tx_bytes),
            tun_rx_packets: get(&self.tun_rx_packets),
            tun_rx_bytes: get(&self.tun_rx_bytes),
            tun_tx_packets: get(&self.tun_tx_packets),
            tun_tx_bytes: get(&self.tun_tx_bytes),
            punted: get(&self.punted),
            injected: get(&self.injected),
            buffers_exhausted: get(&self.buffers_exhausted),
            drops: std::array::from_fn(|i| get(&self.drops[i])),
        }
    }
}

/// Plain values of a [`ShardCounters`]; `+=` sums shards.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct CounterValues {
    /// See [`ShardCounters::snapshot_generation`] (the sum keeps the minimum).
    pub snapshot_generation: u64,
    pub batches: u64,
    pub underlay_rx_packets: u64,
    pub underlay_rx_bytes: u64,
    pub underlay_tx_packets: u64,
    pub underlay_tx_bytes: u64,
    pub tun_rx_packets: u64,
    pub tun_rx_bytes: u64,
    pub tun_tx_packets: u64,
    pub tun_tx_bytes: u64,
    pub punted: u64,
    pub injected: u64,
    pub buffers_exhausted: u64,
    /// Indexed by `DropReason as usize`.
    pub drops: [u64; DropReason::COUNT],
}

/// The node's total over its shards. The snapshot generation is the oldest
/// any shard uses (so an empty start value must not take part in the minimum).
impl std::iter::Sum for CounterValues {
    fn sum<I: Iterator<Item = CounterValues>>(mut shards: I) -> CounterValues {
        let Some(mut total) = shards.next() else {
            return CounterValues::default();
        };
        for shard in shards {
            total += shard;
        }
        total
    }
}

impl std::ops::AddAssign for CounterValues {
    fn add_assign(&mut self, o: CounterValues) {
        self.snapshot_generation = self.snapshot_generation.min(o.snapshot_generation);
        self.batches += o.batches;
        self.underlay_rx_packets += o.underlay_rx_packets;
        self.underlay_rx_bytes += o.underlay_rx_bytes;
        self.underlay_tx_packets += o.underlay_tx_packets;
        self.underlay_tx_bytes += o.underlay_tx_bytes;
        self.tun_rx_packets += o.tun_rx_packets;
        self.tun_rx_bytes += o.tun_rx_bytes;
        self.tun_tx_packets += o.tun_tx_packets;
        self.tun_tx_bytes += o.tun_tx_bytes;
        self.punted += o.punted;
        self.injected += o.injected;
        self.buffers_exhausted += o.buffers_exhausted;
        for (a, b) in self.drops.iter_mut().zip(o.drops) {
            *a += b;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_fill_whole_cache_lines_and_start_with_the_magic() {
        assert_eq!(std::mem::align_of::<ShardCounters>(), 64);
        assert_eq!(std::mem::size_of::<ShardCounters>() % 64, 0);
        let c = ShardCounters::default();
        assert_eq!(c.magic.load(Ordering::Relaxed), COUNTERS_MAGIC);
        assert_eq!(c.drop_reasons.load(Ordering::Relaxed), DropReason::COUNT as u64);
    }

    #[test]
    fn drop_labels_are_unique_snake_case() {
        let mut labels: Vec<_> = DropReason::ALL.iter().map(|r| r.label()).collect();
        assert!(labels.iter().all(|l| l.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')));
        labels.sort_unstable();
        labels.dedup();
        assert_eq!(labels.len(), DropReason::COUNT);
        for (i, r) in DropReason::ALL.iter().enumerate() {
            assert_eq!(*r as usize, i);
        }
    }

    #[test]
    fn summing_shards_adds_counts_and_keeps_the_oldest_generation() {
        let a = ShardCounters::default();
        let b = ShardCounters::default();
        bump(&a.tun_rx_packets, 3);
        bump(&b.tun_rx_packets, 4);
        a.snapshot_generation.store(7, Ordering::Relaxed);
        b.snapshot_generation.store(6, Ordering::Relaxed);
        let mut tallies = [0; DropReason::COUNT];
        tallies[DropReason::NoRoute as usize] = 2;
        a.add_drops(&tallies);
        b.drop_n(DropReason::NoRoute, 1);
        let mut sum = a.read();
        sum += b.read();
        assert_eq!(sum.tun_rx_packets, 7);
        assert_eq!(sum.snapshot_generation, 6);
        assert_eq!(sum.drops[DropReason::NoRoute as usize], 3);
    }
}
