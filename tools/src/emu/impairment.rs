//! The sans-IO impairment engine: one per direction of an emulated link.
//!
//! Drive it with [`Direction::handle_datagram`]`(now, len)` for every
//! datagram that enters the link; the [`Verdict`] says when to deliver it or
//! why it was dropped. It never reads the clock and does no I/O, so the
//! same engine runs under the UDP relay ([`super::relay`]) and in tests on
//! simulated time.
//!
//! A datagram goes through, in order:
//! 1. **up/down**: a down link drops everything ([`DropReason::Down`]);
//! 2. **rate limiter**: a FIFO queue of at most `queue_bytes` waiting bytes
//!    in front of a wire of `rate_bps`; a datagram that does not fit is
//!    tail-dropped ([`DropReason::QueueFull`]). An idle queue always takes
//!    one datagram, whatever its size, as a real interface does;
//! 3. **loss** on the wire (random, or Gilbert-Elliott bursts; the
//!    datagram has used its share of the wire's time either way);
//! 4. **delay** plus a uniform jitter in `[-jitter, +jitter]`.
//!
//! Order is always preserved: a datagram is never delivered before the one
//! that entered the link before it (with jitter, a datagram that would
//! overtake waits for its predecessor instead). This is netem's behaviour
//! when a rate is set, and it is what a real path does almost always;
//! reordering is not emulated. It also means delivery times never go down,
//! so a shell can keep scheduled deliveries in a plain FIFO, and a live
//! change to a shorter delay lets datagrams already in flight land first.
//!
//! Loss models and the PRNG are the mesh simulator's ([`crate::sim::Loss`],
//! [`crate::sim::rng::Rng`]), so a link means the same thing in both.

use std::time::Duration;

use mycelium_common::time::Timestamp;

use crate::sim::Loss;
use crate::sim::rng::Rng;

/// What one direction of a link does to datagrams.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Impairment {
    /// One-way delay added to every datagram.
    pub delay: Duration,
    /// Each datagram's delay is `delay + u`, `u` uniform in
    /// `[-jitter, +jitter]` (and never below zero).
    pub jitter: Duration,
    pub loss: Loss,
    /// Wire rate in bits per second; `None` is unlimited (no queue).
    pub rate_bps: Option<u64>,
    /// Bytes the rate limiter's queue holds before it tail-drops.
    pub queue_bytes: u64,
    /// A down link drops everything.
    pub up: bool,
}

/// The default queue: 256 KiB, about 20 ms at 100 Mbit/s.
pub const DEFAULT_QUEUE_BYTES: u64 = 256 * 1024;

impl Default for Impairment {
    /// No impairment at all: a wire.
    fn default() -> Self {
        Impairment {
            delay: Duration::ZERO,
            jitter: Duration::ZERO,
            loss: Loss::None,
            rate_bps: None,
            queue_bytes: DEFAULT_QUEUE_BYTES,
            up: true,
        }
    }
}

/// Why a datagram was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropReason {
    Down,
    QueueFull,
    Loss,
}

/// What happens to a datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Drop(DropReason),
    /// Deliver at this instant (never earlier than the previous delivery).
    Deliver(Timestamp),
}

/// Datagrams and bytes per outcome, since the engine was made.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    pub delivered: u64,
    pub delivered_bytes: u64,
    pub dropped_down: u64,
    pub dropped_queue_full: u64,
    pub dropped_loss: u64,
}

impl Counters {
    fn count_drop(&mut self, reason: DropReason) {
        match reason {
            DropReason::Down => self.dropped_down += 1,
            DropReason::QueueFull => self.dropped_queue_full += 1,
            DropReason::Loss => self.dropped_loss += 1,
        }
    }
}

/// One direction of an emulated link, with its state.
#[derive(Debug, Clone)]
pub struct Direction {
    settings: Impairment,
    rng: Rng,
    /// When the wire finishes sending what is queued.
    busy_until: Timestamp,
    /// The latest delivery instant handed out (order is kept).
    last_delivery: Timestamp,
    /// Gilbert-Elliott: in the bad state.
    bad: bool,
    counters: Counters,
}

impl Direction {
    /// An engine with these settings; everything random comes from `seed`.
    pub fn new(settings: Impairment, seed: u64) -> Self {
        Direction {
            settings,
            rng: Rng::new(seed),
            busy_until: Timestamp::ZERO,
            last_delivery: Timestamp::ZERO,
            bad: false,
            counters: Counters::default(),
        }
    }

    pub fn settings(&self) -> &Impairment {
        &self.settings
    }

    /// New settings from the next datagram on. The queue's content and the
    /// datagrams in flight keep the times they were given.
    pub fn set(&mut self, settings: Impairment) {
        self.settings = settings;
    }

    pub fn counters(&self) -> Counters {
        self.counters
    }

    /// Bytes waiting in the rate limiter's queue at `now` (zero without a
    /// rate).
    pub fn backlog_bytes(&self, now: Timestamp) -> u64 {
        match self.settings.rate_bps {
            Some(bps) if bps > 0 => {
                let ns = u128::from(self.busy_until.saturating_since(now).as_nanos() as u64);
                u64::try_from(ns * u128::from(bps) / 8_000_000_000).unwrap_or(u64::MAX)
            }
            _ => 0,
        }
    }

    /// A datagram of `len` bytes enters the link at `now`.
    pub fn handle_datagram(&mut self, now: Timestamp, len: usize) -> Verdict {
        let verdict = self.judge(now, len);
        match verdict {
            Verdict::Drop(reason) => self.counters.count_drop(reason),
            Verdict::Deliver(_) => {
                self.counters.delivered += 1;
                self.counters.delivered_bytes += len as u64;
            }
        }
        verdict
    }

    fn judge(&mut self, now: Timestamp, len: usize) -> Verdict {
        let s = self.settings;
        if !s.up {
            return Verdict::Drop(DropReason::Down);
        }
        let sent = match s.rate_bps {
            Some(bps) if bps > 0 => {
                let backlog = self.backlog_bytes(now);
                if backlog > 0 && backlog.saturating_add(len as u64) > s.queue_bytes {
                    return Verdict::Drop(DropReason::QueueFull);
                }
                let wire_ns = u128::from(len as u64) * 8 * 1_000_000_000 / u128::from(bps);
                let wire = Duration::from_nanos(u64::try_from(wire_ns).unwrap_or(u64::MAX));
                self.busy_until = now.max(self.busy_until) + wire;
                self.busy_until
            }
            _ => now,
        };
        if self.lost() {
            return Verdict::Drop(DropReason::Loss);
        }
        let flight = if s.jitter.is_zero() {
            s.delay
        } else {
            let offset = s.jitter.mul_f64(self.rng.unit() * 2.0);
            (s.delay + offset).saturating_sub(s.jitter)
        };
        let at = (sent + flight).max(self.last_delivery);
        self.last_delivery = at;
        Verdict::Deliver(at)
    }

    fn lost(&mut self) -> bool {
        match self.settings.loss {
            Loss::None => false,
            Loss::Random(p) => self.rng.chance(p),
            Loss::GilbertElliott { p, r, k, h } => {
                self.bad = if self.bad { !self.rng.chance(r) } else { self.rng.chance(p) };
                self.rng.chance(if self.bad { h } else { k })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn at(d: Duration) -> Timestamp {
        Timestamp::ZERO + d
    }

    fn delivered(v: Verdict) -> Timestamp {
        match v {
            Verdict::Deliver(t) => t,
            Verdict::Drop(r) => panic!("dropped: {r:?}"),
        }
    }

    #[test]
    fn no_impairment_delivers_at_once_and_counts() {
        let mut d = Direction::new(Impairment::default(), 1);
        assert_eq!(d.handle_datagram(at(ms(5)), 1400), Verdict::Deliver(at(ms(5))));
        assert_eq!(d.counters(), Counters { delivered: 1, delivered_bytes: 1400, ..Counters::default() });
    }

    #[test]
    fn delay_with_jitter_stays_in_bounds_and_averages_the_delay() {
        let s = Impairment { delay: ms(20), jitter: ms(5), ..Impairment::default() };
        let mut d = Direction::new(s, 7);
        let n = 10_000u64;
        let mut sum = 0.0;
        for i in 0..n {
            // 20 ms apart, more than twice the jitter: order never holds one back.
            let now = at(ms(20 * i));
            let flight = delivered(d.handle_datagram(now, 100)).saturating_since(now);
            assert!(flight >= ms(15) && flight <= ms(25), "{flight:?}");
            sum += flight.as_secs_f64();
        }
        let mean = sum / n as f64;
        assert!((mean - 0.020).abs() < 0.0002, "mean {mean}");
    }

    #[test]
    fn jitter_never_reorders() {
        let s = Impairment { delay: ms(10), jitter: ms(8), ..Impairment::default() };
        let mut d = Direction::new(s, 3);
        let mut last = Timestamp::ZERO;
        for i in 0..10_000 {
            let t = delivered(d.handle_datagram(at(Duration::from_micros(100 * i)), 100));
            assert!(t >= last);
            last = t;
        }
    }

    #[test]
    fn random_loss_matches_its_rate() {
        let s = Impairment { loss: Loss::Random(0.02), ..Impairment::default() };
        let mut d = Direction::new(s, 11);
        for _ in 0..200_000 {
            d.handle_datagram(Timestamp::ZERO, 100);
        }
        let c = d.counters();
        let rate = c.dropped_loss as f64 / 200_000.0;
        assert!((rate - 0.02).abs() < 0.002, "rate {rate}");
        assert_eq!(c.delivered + c.dropped_loss, 200_000);
    }

    #[test]
    fn gilbert_elliott_loss_has_its_mean_and_burst_length() {
        // Bad state loses everything, good state nothing: bursts are the
        // bad-state sojourns, geometric with mean 1/r = 4 datagrams.
        let loss = Loss::GilbertElliott { p: 0.01, r: 0.25, k: 0.0, h: 1.0 };
        let mut d = Direction::new(Impairment { loss, ..Impairment::default() }, 5);
        let lost: Vec<bool> = (0..400_000)
            .map(|_| matches!(d.handle_datagram(Timestamp::ZERO, 100), Verdict::Drop(DropReason::Loss)))
            .collect();
        let n_lost = lost.iter().filter(|x| **x).count() as f64;
        let rate = n_lost / lost.len() as f64;
        assert!((rate - loss.mean()).abs() < 0.005, "rate {rate} mean {}", loss.mean());
        let bursts = lost.windows(2).filter(|w| !w[0] && w[1]).count() as f64;
        let mean_burst = n_lost / bursts;
        assert!((mean_burst - 4.0).abs() < 0.3, "mean burst {mean_burst}");
    }

    #[test]
    fn rate_limit_caps_throughput_and_tail_drops_when_the_queue_is_full() {
        // 10 Mbit/s wire, 15 kB queue, offered 20 Mbit/s (1250 B every 0.5 ms) for 1 s.
        let s = Impairment { rate_bps: Some(10_000_000), queue_bytes: 15_000, ..Impairment::default() };
        let mut d = Direction::new(s, 1);
        let mut last = Timestamp::ZERO;
        for i in 0..2000u64 {
            let now = at(Duration::from_micros(500 * i));
            match d.handle_datagram(now, 1250) {
                Verdict::Deliver(t) => {
                    // Never more than a full queue plus this datagram ahead: 16.25 kB = 13 ms.
                    assert!(t.saturating_since(now) <= ms(13), "{:?}", t.saturating_since(now));
                    last = t;
                }
                Verdict::Drop(r) => assert_eq!(r, DropReason::QueueFull),
            }
            assert!(d.backlog_bytes(now) <= 15_000);
        }
        let c = d.counters();
        let mbps = c.delivered_bytes as f64 * 8.0 / last.saturating_since(Timestamp::ZERO).as_secs_f64() / 1e6;
        assert!((mbps - 10.0).abs() < 0.1, "{mbps} Mbit/s");
        // Half the offered load cannot fit.
        assert!((c.dropped_queue_full as f64 - 1000.0).abs() < 20.0, "{c:?}");
    }

    #[test]
    fn an_idle_queue_takes_one_datagram_larger_than_itself() {
        let s = Impairment { rate_bps: Some(8_000_000), queue_bytes: 100, ..Impairment::default() };
        let mut d = Direction::new(s, 1);
        // 1000 B at 8 Mbit/s: 1 ms on the wire.
        assert_eq!(d.handle_datagram(Timestamp::ZERO, 1000), Verdict::Deliver(at(ms(1))));
        assert_eq!(d.handle_datagram(Timestamp::ZERO, 1000), Verdict::Drop(DropReason::QueueFull));
        assert_eq!(d.handle_datagram(at(ms(1)), 1000), Verdict::Deliver(at(ms(2))));
    }

    #[test]
    fn a_down_link_drops_everything_until_it_comes_back_up() {
        let mut d = Direction::new(Impairment::default(), 1);
        d.set(Impairment { up: false, ..*d.settings() });
        assert_eq!(d.handle_datagram(Timestamp::ZERO, 10), Verdict::Drop(DropReason::Down));
        d.set(Impairment { up: true, ..*d.settings() });
        assert_eq!(d.handle_datagram(Timestamp::ZERO, 10), Verdict::Deliver(Timestamp::ZERO));
        assert_eq!(d.counters().dropped_down, 1);
    }

    #[test]
    fn a_shorter_delay_set_live_lets_datagrams_in_flight_land_first() {
        let mut d = Direction::new(Impairment { delay: ms(80), ..Impairment::default() }, 1);
        assert_eq!(d.handle_datagram(Timestamp::ZERO, 10), Verdict::Deliver(at(ms(80))));
        d.set(Impairment { delay: ms(10), ..*d.settings() });
        assert_eq!(d.handle_datagram(at(ms(1)), 10), Verdict::Deliver(at(ms(80))));
        assert_eq!(d.handle_datagram(at(ms(100)), 10), Verdict::Deliver(at(ms(110))));
    }

    #[test]
    fn the_same_seed_gives_the_same_verdicts() {
        let s = Impairment {
            delay: ms(10),
            jitter: ms(3),
            loss: Loss::GilbertElliott { p: 0.05, r: 0.3, k: 0.01, h: 0.7 },
            rate_bps: Some(50_000_000),
            queue_bytes: 20_000,
            up: true,
        };
        let run = |seed| {
            let mut d = Direction::new(s, seed);
            (0..5000u64).map(|i| d.handle_datagram(at(Duration::from_micros(150 * i)), 1400)).collect::<Vec<_>>()
        };
        assert_eq!(run(9), run(9));
        assert_ne!(run(9), run(10));
    }
}
