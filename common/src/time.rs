//! Monotonic time that can cross process boundaries.
//!
//! [`Timestamp`] is nanoseconds of `CLOCK_MONOTONIC`. That clock is one clock
//! for the whole host, so a value written by the control daemon into shared
//! memory means the same instant when the dataplane reads it. Sans-IO engines
//! never call [`Timestamp::now`]: their shells do, and pass `now` in.

use std::fmt;
use std::ops::{Add, Sub};
use std::time::Duration;

/// An instant on the host's monotonic clock, in nanoseconds.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp(u64);

impl Timestamp {
    /// The clock's origin (boot). Useful as "never" for last-seen fields.
    pub const ZERO: Timestamp = Timestamp(0);

    /// A timestamp from raw nanoseconds.
    pub const fn from_nanos(nanos: u64) -> Self {
        Timestamp(nanos)
    }

    /// Raw nanoseconds, for wire formats and shared memory.
    pub const fn as_nanos(self) -> u64 {
        self.0
    }

    /// Reads `CLOCK_MONOTONIC`. Only I/O shells call this.
    pub fn now() -> Self {
        let ts = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
        // tv_sec and tv_nsec of CLOCK_MONOTONIC are never negative.
        Timestamp((ts.tv_sec as u64).saturating_mul(1_000_000_000) + ts.tv_nsec as u64)
    }

    /// Time elapsed from `earlier` to `self`, zero if `earlier` is later.
    pub fn saturating_since(self, earlier: Timestamp) -> Duration {
        Duration::from_nanos(self.0.saturating_sub(earlier.0))
    }

    /// `self + d`, saturating at the far future instead of wrapping.
    pub fn saturating_add(self, d: Duration) -> Timestamp {
        Timestamp(self.0.saturating_add(duration_nanos(d)))
    }

    /// `self - d`, saturating at [`Timestamp::ZERO`].
    pub fn saturating_sub(self, d: Duration) -> Timestamp {
        Timestamp(self.0.saturating_sub(duration_nanos(d)))
    }
}

fn duration_nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

impl Add<Duration> for Timestamp {
    type Output = Timestamp;
    fn add(self, d: Duration) -> Timestamp {
        self.saturating_add(d)
    }
}

impl Sub<Duration> for Timestamp {
    type Output = Timestamp;
    fn sub(self, d: Duration) -> Timestamp {
        self.saturating_sub(d)
    }
}

impl Sub<Timestamp> for Timestamp {
    type Output = Duration;
    fn sub(self, earlier: Timestamp) -> Duration {
        self.saturating_since(earlier)
    }
}

impl fmt::Debug for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{:09}s", self.0 / 1_000_000_000, self.0 % 1_000_000_000)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn now_is_monotonic_and_nonzero() {
        let a = Timestamp::now();
        let b = Timestamp::now();
        assert!(a.as_nanos() > 0);
        assert!(b >= a);
    }

    #[test]
    fn arithmetic_saturates_instead_of_wrapping() {
        let t = Timestamp::from_nanos(5);
        assert_eq!(t - Duration::from_nanos(10), Timestamp::ZERO);
        assert_eq!(Timestamp::from_nanos(u64::MAX) + Duration::from_secs(1), Timestamp::from_nanos(u64::MAX));
        assert_eq!(t - Timestamp::from_nanos(9), Duration::ZERO);
        assert_eq!(Timestamp::from_nanos(3_000) - t, Duration::from_nanos(2_995));
    }

    #[test]
    fn debug_prints_seconds() {
        assert_eq!(format!("{:?}", Timestamp::from_nanos(1_500_000_000)), "1.500000000s");
    }
}
