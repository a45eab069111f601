//! Round-trip time from timestamped Hello/IHU exchanges (RFC 9616).
//!
//! Our Hello carries our send time; the neighbour's IHU echoes it as
//! `origin`, with `receive` (when it got that Hello) and `transmit` (when it
//! sent the IHU) on its own clock. Only differences of one node's own stamps
//! are used, so the two clocks may differ arbitrarily.

use std::time::Duration;

use mycelium_common::wire::tlv::Ihu;

/// Smoothing constant of RFC 9616 section 3.4 (`alpha`, babeld's default
/// decay of 42/256): `smoothed = alpha * smoothed + (1 - alpha) * sample`.
pub const RTT_ALPHA: f64 = 0.836;

/// Gain of the mean deviation (jitter), as TCP's RTTVAR (RFC 6298):
/// `jitter = (1 - beta) * jitter + beta * |smoothed - sample|`.
pub const JITTER_BETA: f64 = 0.25;

/// Longest time the neighbour may hold a hello before echoing it: beyond
/// this, clock rate differences (100 ppm is 3 ms over 30 s) spoil the sample.
pub const MAX_HOLD_US: u64 = 30_000_000;

/// How many of our recent hello stamps we remember to recognise echoes.
pub const SENT_STAMPS: usize = 16;

/// Why an IHU gave no RTT sample.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RttReject {
    /// The origin is not the stamp of one of our recent hellos.
    UnknownOrigin,
    /// `transmit < receive`, or the neighbour held the hello too long.
    BadHold,
    /// The computed RTT is negative.
    Negative,
    /// The computed RTT is above the configured maximum.
    Absurd,
}

/// The stamps of our recent hellos (our clock, microseconds).
#[derive(Debug, Clone, Default)]
pub struct SentStamps {
    stamps: [Option<u64>; SENT_STAMPS],
    next: usize,
}

impl SentStamps {
    pub fn record(&mut self, stamp_us: u64) {
        self.stamps[self.next] = Some(stamp_us);
        self.next = (self.next + 1) % SENT_STAMPS;
    }

    pub fn contains(&self, stamp_us: u64) -> bool {
        self.stamps.contains(&Some(stamp_us))
    }
}

/// One RTT sample from an IHU received at `now_us` (our clock):
/// `rtt = (now - origin) - (transmit - receive)` (RFC 9616 section 3.3).
pub fn sample(now_us: u64, ihu: &Ihu, sent: &SentStamps, max_rtt: Duration) -> Result<u64, RttReject> {
    if !sent.contains(ihu.origin_us) {
        return Err(RttReject::UnknownOrigin);
    }
    let hold = ihu.transmit_us.checked_sub(ihu.receive_us).ok_or(RttReject::BadHold)?;
    if hold > MAX_HOLD_US {
        return Err(RttReject::BadHold);
    }
    let elapsed = now_us.checked_sub(ihu.origin_us).ok_or(RttReject::Negative)?;
    let rtt = elapsed.checked_sub(hold).ok_or(RttReject::Negative)?;
    if u128::from(rtt) > max_rtt.as_micros() {
        return Err(RttReject::Absurd);
    }
    Ok(rtt)
}

/// Smoothed RTT and its mean deviation.
#[derive(Debug, Clone, Default)]
pub struct RttEstimator {
    smoothed_us: Option<f64>,
    jitter_us: f64,
    samples: u64,
    rejected: u64,
    last_us: Option<u64>,
}

impl RttEstimator {
    /// Folds in one accepted sample. The first one sets the estimate.
    pub fn add(&mut self, sample_us: u64) {
        let s = sample_us as f64;
        self.smoothed_us = Some(match self.smoothed_us {
            None => s,
            Some(prev) => {
                self.jitter_us = (1.0 - JITTER_BETA) * self.jitter_us + JITTER_BETA * (prev - s).abs();
                RTT_ALPHA * prev + (1.0 - RTT_ALPHA) * s
            }
        });
        self.samples += 1;
        self.last_us = Some(sample_us);
    }

    /// Counts a discarded sample.
    pub fn reject(&mut self) {
        self.rejected += 1;
    }

    pub fn smoothed(&self) -> Option<Duration> {
        self.smoothed_us.map(|us| Duration::from_nanos((us * 1000.0) as u64))
    }

    /// Mean deviation; `None` before the first sample.
    pub fn jitter(&self) -> Option<Duration> {
        self.smoothed_us.map(|_| Duration::from_nanos((self.jitter_us * 1000.0) as u64))
    }

    pub fn last(&self) -> Option<Duration> {
        self.last_us.map(Duration::from_micros)
    }

    pub fn samples(&self) -> u64 {
        self.samples
    }

    pub fn rejected(&self) -> u64 {
        self.rejected
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ihu(origin_us: u64, receive_us: u64, transmit_us: u64) -> Ihu {
        Ihu { rxcost: 256, interval_cs: 400, origin_us, receive_us, transmit_us }
    }

    fn sent(stamps: &[u64]) -> SentStamps {
        let mut s = SentStamps::default();
        for &t in stamps {
            s.record(t);
        }
        s
    }

    const MAX: Duration = Duration::from_secs(10);

    #[test]
    fn sample_subtracts_the_neighbours_hold_time_whatever_its_clock() {
        // We sent at 1_000 us; it received at its 9e15 and held 500 us.
        let i = ihu(1_000, 9_000_000_000_000_000, 9_000_000_000_000_500);
        assert_eq!(sample(21_500, &i, &sent(&[1_000]), MAX), Ok(20_000));
    }

    #[test]
    fn negative_absurd_unknown_and_held_samples_are_discarded() {
        let s = sent(&[1_000]);
        assert_eq!(sample(1_100, &ihu(1_000, 0, 500), &s, MAX), Err(RttReject::Negative));
        assert_eq!(sample(20_000_000, &ihu(1_000, 0, 0), &s, MAX), Err(RttReject::Absurd));
        assert_eq!(sample(5_000, &ihu(2_000, 0, 0), &s, MAX), Err(RttReject::UnknownOrigin));
        assert_eq!(sample(5_000, &ihu(1_000, 10, 0), &s, MAX), Err(RttReject::BadHold));
        assert_eq!(sample(500, &ihu(1_000, 0, 0), &s, MAX), Err(RttReject::Negative));
        assert_eq!(sample(99_000_000, &ihu(1_000, 0, 60_000_000), &s, MAX), Err(RttReject::BadHold));
    }

    #[test]
    fn only_the_last_16_hello_stamps_are_recognised() {
        let s = sent(&(1..=20).collect::<Vec<_>>());
        assert!(!s.contains(4));
        assert!(s.contains(5) && s.contains(20));
    }

    #[test]
    fn smoothing_follows_rfc_9616_and_jitter_tracks_the_mean_deviation() {
        let mut e = RttEstimator::default();
        assert_eq!(e.smoothed(), None);
        e.add(10_000);
        assert_eq!(e.smoothed(), Some(Duration::from_millis(10)));
        assert_eq!(e.jitter(), Some(Duration::ZERO));
        e.add(20_000);
        let expected = RTT_ALPHA * 10_000.0 + (1.0 - RTT_ALPHA) * 20_000.0;
        assert_eq!(e.smoothed(), Some(Duration::from_nanos((expected * 1000.0) as u64)));
        assert_eq!(e.jitter(), Some(Duration::from_micros(2_500)));
        for _ in 0..100 {
            e.add(30_000);
        }
        let s = e.smoothed().unwrap();
        assert!(s > Duration::from_micros(29_990) && s <= Duration::from_millis(30), "{s:?}");
        assert!(e.jitter().unwrap() < Duration::from_micros(10));
    }
}
