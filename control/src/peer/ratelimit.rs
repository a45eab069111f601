//! Rate limits on handshake responses: a token bucket per source address
//! and one for all sources together, so a flood of inits (each costs four
//! x25519 agreements) neither burns the CPU nor turns us into an amplifier.
//!
//! The per-source table is bounded; when it is full, buckets that have
//! refilled completely (idle sources) are forgotten, and if none has, a new
//! source is refused until one does.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Duration;

use mycelium_common::time::Timestamp;

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: u32,
    updated: Timestamp,
}

impl Bucket {
    fn refill(&mut self, now: Timestamp, burst: u32, every: Duration) {
        let elapsed = now.saturating_since(self.updated);
        let earned = (elapsed.as_nanos() / every.as_nanos().max(1)).min(u128::from(burst)) as u32;
        if earned > 0 {
            self.tokens = (self.tokens + earned).min(burst);
            self.updated = if self.tokens == burst { now } else { self.updated + every * earned };
        }
    }

    fn take(&mut self, now: Timestamp, burst: u32, every: Duration) -> bool {
        self.refill(now, burst, every);
        if self.tokens == 0 {
            return false;
        }
        self.tokens -= 1;
        true
    }
}

/// Settings of the handshake limiter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimits {
    /// Handshakes one source address may send back to back (default 5).
    pub per_source_burst: u32,
    /// One more handshake per source every this long (default 1 s).
    pub per_source_every: Duration,
    /// Handshakes from all sources back to back (default 100).
    pub global_burst: u32,
    /// One more handshake overall every this long (default 5 ms: 200/s).
    pub global_every: Duration,
    /// Source addresses tracked at once (default 4096).
    pub max_sources: usize,
}

impl Default for RateLimits {
    fn default() -> Self {
        RateLimits {
            per_source_burst: 5,
            per_source_every: Duration::from_secs(1),
            global_burst: 100,
            global_every: Duration::from_millis(5),
            max_sources: 4096,
        }
    }
}

/// Decides whether a handshake from a source may be answered now.
#[derive(Debug, Clone)]
pub struct HandshakeLimiter {
    limits: RateLimits,
    global: Bucket,
    sources: BTreeMap<IpAddr, Bucket>,
}

impl HandshakeLimiter {
    pub fn new(limits: RateLimits, now: Timestamp) -> Self {
        HandshakeLimiter {
            limits,
            global: Bucket { tokens: limits.global_burst, updated: now },
            sources: BTreeMap::new(),
        }
    }

    /// Takes a token for `source`; false when it (or everyone) is over the rate.
    pub fn allow(&mut self, now: Timestamp, source: IpAddr) -> bool {
        let l = self.limits;
        if !self.sources.contains_key(&source) && self.sources.len() >= l.max_sources {
            self.sources.retain(|_, b| {
                b.refill(now, l.per_source_burst, l.per_source_every);
                b.tokens < l.per_source_burst
            });
            if self.sources.len() >= l.max_sources {
                return false;
            }
        }
        let bucket = self.sources.entry(source).or_insert(Bucket { tokens: l.per_source_burst, updated: now });
        if !bucket.take(now, l.per_source_burst, l.per_source_every) {
            return false;
        }
        self.global.take(now, l.global_burst, l.global_every)
    }

    /// Source addresses currently tracked.
    pub fn tracked(&self) -> usize {
        self.sources.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([192, 0, 2, last])
    }

    fn at(ms: u64) -> Timestamp {
        Timestamp::from_nanos(ms * 1_000_000)
    }

    #[test]
    fn a_source_gets_its_burst_then_one_per_interval() {
        let mut l = HandshakeLimiter::new(RateLimits::default(), at(0));
        assert_eq!((0..10).filter(|_| l.allow(at(0), ip(1))).count(), 5);
        assert!(l.allow(at(0), ip(2)), "other sources are not affected");
        assert!(!l.allow(at(999), ip(1)));
        assert!(l.allow(at(1000), ip(1)));
        assert!(!l.allow(at(1000), ip(1)));
    }

    #[test]
    fn the_global_bucket_caps_many_sources() {
        let limits = RateLimits { global_burst: 3, ..RateLimits::default() };
        let mut l = HandshakeLimiter::new(limits, at(0));
        assert_eq!((0..10).filter(|&i| l.allow(at(0), ip(i))).count(), 3);
    }

    #[test]
    fn the_source_table_is_bounded_and_forgets_idle_sources() {
        let limits = RateLimits { max_sources: 2, ..RateLimits::default() };
        let mut l = HandshakeLimiter::new(limits, at(0));
        assert!(l.allow(at(0), ip(1)) && l.allow(at(0), ip(2)));
        assert!(!l.allow(at(0), ip(3)), "full of busy sources");
        assert!(l.allow(at(5000), ip(3)), "idle ones are forgotten");
        assert!(l.tracked() <= 2);
    }
}
