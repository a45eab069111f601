//! Fair sharing of transit capacity: an operator may cap what a relay
//! forwards for others (`--transit-limit-mbps`), and the cap is shared
//! max-min fairly between the sources (per source /64, the slots of the
//! [`TransitTable`](super::transit::TransitTable)), so one heavy sender cannot
//! crowd out the others.
//!
//! Each source has a token bucket refilled continuously at its fair rate,
//! so drops are spread out the way TCP copes with (a budget per period
//! would let a sender burst through it and then starve it for the rest of
//! the period, into retransmission timeouts). The rates are recomputed
//! every [`PERIOD`] from what each source offered in the previous one: the
//! limit is water-filled over the sources' demands (each raised by a
//! quarter plus two packets a period, so a source can grow), and the rate
//! no source claimed feeds a shared pool bucket any packet may draw from,
//! which is how a new source gets through before it has a rate. A packet
//! that finds neither its own tokens nor the pool's is dropped and counted
//! (`transit_limit`). Buckets hold [`BURST`] of their rate (at least two
//! packets; the pool [`BURST`] of the whole limit), and what overflows a
//! source's bucket (rate it was given and did not use) goes to the pool.
//!
//! Driving it (sans-IO, no allocation): [`FairShare::roll`] once per batch
//! with the time, [`FairShare::admit`] per transit packet with its source
//! slot and the time. Each shard has its own instance with its share of
//! the limit (limit / shards); the receive steering (`crate::io::steer`)
//! spreads transit DATA over the shards by origin shard and node pair, so
//! a source's traffic reaches several shards when it comes from several.

use super::transit::SLOTS;

/// How often the fair rates are recomputed.
pub const PERIOD: std::time::Duration = std::time::Duration::from_millis(50);
/// Depth of a bucket, in time at its rate.
pub const BURST: std::time::Duration = std::time::Duration::from_millis(100);
/// Entries: one per transit slot plus "other", plus the pool.
const ENTRIES: usize = SLOTS + 2;
const POOL: usize = SLOTS + 1;
/// Room a demand is given to grow per period: two full-size packets.
const GROWTH_BYTES: u64 = 2 * 1500;
/// The smallest bucket: two full-size packets.
const MIN_DEPTH: u64 = 2 * 1500;
const NS: u128 = 1_000_000_000;

/// A token bucket; tokens are byte-nanoseconds (bytes x 1e9), so a refill
/// is one multiplication: `rate (bytes/s) x elapsed (ns)`.
#[derive(Debug, Clone, Copy, Default)]
struct Bucket {
    rate: u64,
    depth: u128,
    tokens: u128,
    refilled_ns: u64,
}

impl Bucket {
    /// Sets the rate, and the depth to [`BURST`] at `depth_rate`. A bucket
    /// given a rate after having none starts full.
    fn set_rate(&mut self, rate: u64, depth_rate: u64) {
        let depth = (u128::from(depth_rate) * BURST.as_nanos() / NS).max(u128::from(MIN_DEPTH)) * NS;
        if self.rate == 0 && rate > 0 {
            self.tokens = depth;
        }
        self.rate = rate;
        self.depth = depth;
        self.tokens = self.tokens.min(depth);
    }

    /// Refills for the time since the last refill; returns what overflowed
    /// the depth (tokens the owner did not use, for the pool).
    #[inline]
    fn refill(&mut self, now_ns: u64) -> u128 {
        let elapsed = now_ns.saturating_sub(self.refilled_ns);
        self.refilled_ns = self.refilled_ns.max(now_ns);
        let full = self.tokens + u128::from(self.rate) * u128::from(elapsed);
        self.tokens = full.min(self.depth);
        full - self.tokens
    }

    #[inline]
    fn take(&mut self, len: u64) -> bool {
        let need = u128::from(len) * NS;
        if self.tokens >= need {
            self.tokens -= need;
            true
        } else {
            false
        }
    }
}

/// One shard's transit limiter. See the module docs.
#[derive(Debug, Clone)]
pub struct FairShare {
    /// Bytes per second this shard may forward.
    capacity: u64,
    period_end_ns: u64,
    offered: Box<[u64; ENTRIES]>,
    /// Each source's recent demand: what it offered, decaying by a quarter
    /// a period, so a source that paused (a TCP sender waiting out a
    /// retransmission timeout) keeps its share for a few periods instead of
    /// finding only the pool, which a heavy sender drains.
    recent: Box<[u64; ENTRIES]>,
    buckets: Box<[Bucket; ENTRIES]>,
    order: Box<[u16; POOL]>,
}

impl FairShare {
    /// A limiter forwarding at most `bits_per_second`.
    pub fn new(bits_per_second: u64) -> Self {
        FairShare {
            capacity: (bits_per_second / 8).max(1),
            period_end_ns: 0,
            offered: Box::new([0; ENTRIES]),
            recent: Box::new([0; ENTRIES]),
            buckets: Box::new([Bucket::default(); ENTRIES]),
            order: Box::new(std::array::from_fn(|i| i as u16)),
        }
    }

    /// Recomputes the rates when a period is over.
    pub fn roll(&mut self, now_ns: u64) {
        if now_ns < self.period_end_ns {
            return;
        }
        let period = PERIOD.as_nanos() as u64;
        // After an idle gap the last demand is stale: everyone starts from the pool.
        if now_ns >= self.period_end_ns.saturating_add(period) {
            self.offered.fill(0);
            self.recent.fill(0);
        }
        self.period_end_ns = now_ns + period;
        self.allocate();
        self.offered.fill(0);
    }

    /// Max-min fair rates (bytes/s) for the demands of the period that ended.
    fn allocate(&mut self) {
        let per_second = 1_000_000_000 / PERIOD.as_nanos() as u64;
        let demand = |offered: u64| if offered == 0 { 0 } else { (offered + offered / 4 + GROWTH_BYTES) * per_second };
        for (recent, &offered) in self.recent.iter_mut().zip(self.offered.iter()) {
            *recent = offered.max(*recent - *recent / 4);
        }
        let recent = &self.recent;
        self.order.sort_unstable_by_key(|&i| demand(recent[usize::from(i)]));
        let mut remaining = self.capacity;
        let mut left = self.recent[..POOL].iter().filter(|&&o| o > 0).count() as u64;
        for &i in self.order.iter() {
            let d = demand(self.recent[usize::from(i)]);
            let granted = if d == 0 { 0 } else { d.min(remaining / left) };
            self.buckets[usize::from(i)].set_rate(granted, granted);
            remaining -= granted;
            left = left.saturating_sub(u64::from(d != 0));
        }
        self.buckets[POOL].set_rate(remaining, self.capacity);
    }

    /// Whether a transit packet of `len` bytes from source `slot` (a
    /// transit-table slot; `SLOTS` is "other") may be forwarded at `now_ns`.
    #[inline]
    pub fn admit(&mut self, slot: usize, len: usize, now_ns: u64) -> bool {
        let slot = slot.min(SLOTS);
        let len = len as u64;
        self.offered[slot] += len;
        let unused = self.buckets[slot].refill(now_ns);
        let pool = &mut self.buckets[POOL];
        pool.refill(now_ns);
        pool.tokens = (pool.tokens + unused).min(pool.depth);
        self.buckets[slot].take(len) || self.buckets[POOL].take(len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    /// Runs for `secs` in steps of 100 us; source `i` offers `offers[i]`
    /// bytes a second in 1000-byte packets. Returns the bytes admitted per
    /// source over the last second.
    fn run(limit_bps: u64, offers: &[u64], secs: u64) -> Vec<u64> {
        let mut f = FairShare::new(limit_bps);
        let mut admitted = vec![0; offers.len()];
        let mut owed = vec![0u64; offers.len()];
        let step = MS / 10;
        for t in 0..secs * 10_000 {
            let now = t * step;
            f.roll(now);
            if t == (secs - 1) * 10_000 {
                admitted.iter_mut().for_each(|a| *a = 0);
            }
            for (src, &rate) in offers.iter().enumerate() {
                owed[src] += rate / 10_000;
                while owed[src] >= 1000 {
                    owed[src] -= 1000;
                    if f.admit(src, 1000, now) {
                        admitted[src] += 1000;
                    }
                }
            }
        }
        admitted
    }

    #[test]
    fn two_heavy_sources_get_half_each() {
        // A 16 Mbit/s cap is 2 MB/s; both offer 6 MB/s.
        let got = run(16_000_000, &[6_000_000, 6_000_000], 3);
        let total: u64 = got.iter().sum();
        assert!((1_950_000..=2_030_000).contains(&total), "{got:?}");
        assert!(got.iter().all(|&g| (950_000..=1_050_000).contains(&g)), "{got:?}");
    }

    #[test]
    fn a_light_source_gets_all_it_asks_and_the_heavy_one_the_rest() {
        let got = run(16_000_000, &[200_000, 8_000_000], 3);
        assert_eq!(got[0], 200_000, "{got:?}");
        assert!(got[1] >= 1_700_000 && got[0] + got[1] <= 2_030_000, "{got:?}");
    }

    #[test]
    fn drops_are_spread_over_the_period_not_bunched_at_its_end() {
        // One source at 4x the cap: within any 5 ms it still gets packets through.
        let mut f = FairShare::new(16_000_000);
        let mut last_admit = 0;
        let mut longest_gap = 0;
        for t in 0..20_000u64 {
            let now = t * MS / 10;
            f.roll(now);
            if f.admit(0, 1000, now) {
                longest_gap = longest_gap.max(now - last_admit);
                last_admit = now;
            }
        }
        assert!(longest_gap <= 2 * MS, "longest stretch without a packet through: {longest_gap} ns");
    }

    #[test]
    fn a_new_source_gets_through_from_the_pool_before_it_has_a_rate() {
        let mut f = FairShare::new(16_000_000);
        f.roll(0);
        assert!(f.admit(5, 1000, 1));
        assert!(f.admit(6, 1000, 2));
        // A source's packets beyond its bucket and the pool are refused.
        assert!(!(0..300).all(|i| f.admit(7, 1000, 3 + i)));
    }

    #[test]
    fn a_tiny_limit_holds_over_time_after_a_first_burst_of_a_few_packets() {
        let mut f = FairShare::new(8_000); // 1000 bytes a second
        let admitted = (0..2000u64).filter(|&i| {
            f.roll(i * 50 * MS);
            f.admit(0, 1000, i * 50 * MS)
        });
        assert!((100..=106).contains(&admitted.count()), "about one packet a second over 100 s");
    }
}
