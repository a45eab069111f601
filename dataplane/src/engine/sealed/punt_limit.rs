//! Rate limit for punts of TUN packets that have no route or no session:
//! the control daemon needs one packet per destination to act, not a flood.

/// Slots in the direct-mapped table of recently punted destinations.
const SLOTS: usize = 64;
/// At most one punt per destination in this interval.
const INTERVAL_NS: u64 = 100_000_000;

/// A fixed-size table: no allocation per packet. Collisions only make a punt
/// more likely, never suppress a destination for longer than the interval.
#[derive(Debug)]
pub struct PuntLimiter {
    slots: [([u8; 16], u64); SLOTS],
}

impl PuntLimiter {
    pub fn new() -> Self {
        PuntLimiter { slots: [([0; 16], 0); SLOTS] }
    }

    /// Whether a packet for `destination` should be punted now.
    #[inline]
    pub fn allow(&mut self, now_ns: u64, destination: &[u8; 16]) -> bool {
        let hash = destination.iter().fold(0u32, |h, &b| h.wrapping_mul(31).wrapping_add(u32::from(b)));
        let slot = &mut self.slots[hash as usize % SLOTS];
        if slot.0 == *destination && slot.1 != 0 && now_ns.saturating_sub(slot.1) < INTERVAL_NS {
            return false;
        }
        *slot = (*destination, now_ns.max(1));
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_punt_per_destination_per_interval() {
        let mut limiter = PuntLimiter::new();
        assert!(limiter.allow(1_000, &[4; 16]));
        assert!(!limiter.allow(2_000, &[4; 16]));
        assert!(limiter.allow(1_000 + INTERVAL_NS, &[4; 16]));
        assert!(limiter.allow(2_000, &[5; 16]));
    }
}
