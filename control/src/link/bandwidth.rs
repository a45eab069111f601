//! Capacity: passive (the highest sustained rate the link carried is a lower
//! bound) and active (the dispersion of a short train of probe packets sent
//! back to back: the bottleneck spaces them by its serialization time, so
//! `bytes / (last - first)` is its rate).
//!
//! A train of `n` probes received over `last - first` carries `n - 1`
//! probes' worth of serialization in that span (the first one's arrival
//! starts the clock), so the estimate is `bytes * (n - 1) / n / (last -
//! first)`. The receive stamps are microseconds, which limits useful trains
//! to spans of some 100 us: at 10 Gbit/s, lengthen the train.

use std::time::Duration;

use mycelium_common::time::Timestamp;
use mycelium_common::wire::tlv::{Probe, ProbeReport};

use super::micros;

/// Wire bytes of a probe besides its padding (TLV header and fields); the
/// prober pads to the configured probe size with this estimate, and the
/// receiver reports what it really measured.
pub const PROBE_OVERHEAD: u16 = 20;

/// How long the receiver waits after the latest probe of an incomplete
/// train before reporting what it has.
pub const REPORT_WAIT: Duration = Duration::from_millis(100);

/// Most doublings of the retry delay after failed trains.
const MAX_BACKOFF_SHIFT: u32 = 10;
/// First back-off after a report that measured nothing; doubles per failure.
const FAILED_REPORT_BACKOFF: Duration = Duration::from_millis(250);

/// Passive rates from the dataplane's cumulative byte counters.
#[derive(Debug, Clone, Default)]
pub struct PassiveRate {
    last: Option<(Timestamp, u64, u64)>,
    window_start: Option<(Timestamp, u64, u64)>,
    current_bps: Option<u64>,
    max: Option<(u64, Timestamp)>,
    last_activity: Option<Timestamp>,
}

impl PassiveRate {
    /// Folds in the counters; returns whether data moved since last time.
    pub fn on_counters(&mut self, now: Timestamp, tx: u64, rx: u64, window: Duration, max_age: Duration) -> bool {
        let Some((_, last_tx, last_rx)) = self.last else {
            self.last = Some((now, tx, rx));
            self.window_start = self.last;
            return false;
        };
        if tx < last_tx || rx < last_rx || self.window_start.is_none_or(|(t, _, _)| now < t) {
            // Counters reset (dataplane restart) or time went backwards.
            self.last = Some((now, tx, rx));
            self.window_start = self.last;
            return false;
        }
        let moved = tx > last_tx || rx > last_rx;
        if moved {
            self.last_activity = Some(now);
        }
        self.last = Some((now, tx, rx));
        if let Some((start, start_tx, start_rx)) = self.window_start {
            let span = now - start;
            if span >= window && !span.is_zero() {
                let bytes = (tx - start_tx).max(rx - start_rx);
                let bps = (u128::from(bytes) * 8 * 1_000_000_000 / span.as_nanos()).min(u128::from(u64::MAX)) as u64;
                self.current_bps = Some(bps);
                let stale = self.max.is_none_or(|(_, at)| now - at > max_age);
                if stale || self.max.is_some_and(|(m, _)| bps >= m) {
                    self.max = Some((bps, now));
                }
                self.window_start = self.last;
            }
        }
        moved
    }

    /// Data moved at `now` on counters this link cannot see (the node's
    /// totals while several links share them): activity, but no rate. The
    /// next [`on_counters`](Self::on_counters) starts a fresh window, so
    /// bytes that moved meanwhile are never taken for this link's.
    pub fn on_activity(&mut self, now: Timestamp) {
        self.last_activity = Some(self.last_activity.map_or(now, |t| t.max(now)));
        self.last = None;
        self.window_start = None;
    }

    /// Rate over the last complete window.
    pub fn current_bps(&self) -> Option<u64> {
        self.current_bps
    }

    /// Highest sustained rate seen (within the max age); `None` if zero.
    pub fn max_bps(&self) -> Option<u64> {
        self.max.map(|(m, _)| m).filter(|&m| m > 0)
    }

    /// When data last moved.
    pub fn last_activity(&self) -> Option<Timestamp> {
        self.last_activity
    }
}

#[derive(Debug, Clone, Copy)]
struct InFlight {
    train_id: u32,
    sent_at: Timestamp,
}

/// The sending side of active probing.
#[derive(Debug, Clone, Default)]
pub struct Prober {
    next_train_id: u32,
    in_flight: Option<InFlight>,
    next_allowed: Timestamp,
    failures: u32,
    estimate: Option<(u64, Timestamp)>,
    trains_sent: u64,
    bytes_sent: u64,
}

/// Train shape and limits, from the link config.
#[derive(Debug, Clone, Copy)]
pub struct ProbePlan {
    pub train_len: u16,
    pub probe_size: u16,
    pub share: f64,
    pub timeout: Duration,
    pub refresh: Duration,
}

impl ProbePlan {
    fn train_bits(&self) -> f64 {
        f64::from(self.train_len) * f64::from(self.probe_size) * 8.0
    }

    /// Gap between train starts that keeps probing under `share` of
    /// `capacity_bps`.
    pub fn budget_gap(&self, capacity_bps: u64) -> Duration {
        let secs = self.train_bits() / (self.share * capacity_bps.max(1) as f64);
        Duration::try_from_secs_f64(secs).unwrap_or(Duration::MAX)
    }
}

impl Prober {
    /// Whether the estimate is missing or older than `refresh`.
    pub fn wants_estimate(&self, now: Timestamp, refresh: Duration) -> bool {
        self.estimate.is_none_or(|(_, at)| now - at >= refresh)
    }

    /// When a train may start, if one is wanted (ignoring link state).
    pub fn next_start(&self, now: Timestamp, plan: &ProbePlan) -> Option<Timestamp> {
        if self.in_flight.is_some() || !self.wants_estimate(now, plan.refresh) {
            return None;
        }
        Some(self.next_allowed)
    }

    /// Starts a train at `now`: pushes its probes through `emit` and books
    /// its bits against the budget at `capacity_bps`.
    pub fn start_train(&mut self, now: Timestamp, plan: &ProbePlan, capacity_bps: u64, mut emit: impl FnMut(Probe)) {
        let train_id = self.next_train_id;
        self.next_train_id = self.next_train_id.wrapping_add(1);
        let padding = plan.probe_size.saturating_sub(PROBE_OVERHEAD);
        for index in 0..plan.train_len {
            emit(Probe { train_id, index, count: plan.train_len, sent_us: micros(now), padding });
        }
        self.in_flight = Some(InFlight { train_id, sent_at: now });
        self.next_allowed = now + plan.budget_gap(capacity_bps);
        self.trains_sent += 1;
        self.bytes_sent += u64::from(plan.train_len) * u64::from(plan.probe_size);
    }

    /// Deadline of the train in flight.
    pub fn timeout_at(&self, plan: &ProbePlan) -> Option<Timestamp> {
        self.in_flight.map(|f| f.sent_at + plan.timeout)
    }

    /// Gives up on a train without report; retries back off exponentially.
    pub fn on_timeout(&mut self, now: Timestamp, plan: &ProbePlan, capacity_bps: u64) {
        let Some(f) = self.in_flight else { return };
        if now < f.sent_at + plan.timeout {
            return;
        }
        self.in_flight = None;
        self.failures = (self.failures + 1).min(MAX_BACKOFF_SHIFT);
        let base = plan.budget_gap(capacity_bps).max(plan.timeout);
        let backoff = base.saturating_mul(1 << self.failures).min(plan.refresh.max(base));
        self.next_allowed = self.next_allowed.max(f.sent_at + backoff);
    }

    /// Takes a report; returns the new estimate if it matched the train in
    /// flight and was usable.
    pub fn on_report(&mut self, now: Timestamp, report: &ProbeReport) -> Option<u64> {
        self.in_flight.filter(|f| f.train_id == report.train_id)?;
        self.in_flight = None;
        if report.received < 2 || report.bytes == 0 {
            // Nothing to measure: back off like a lost train, or a link that
            // loses probes would be probed again at once, without end.
            self.failures = (self.failures + 1).min(MAX_BACKOFF_SHIFT);
            let backoff = FAILED_REPORT_BACKOFF.saturating_mul(1 << self.failures);
            self.next_allowed = self.next_allowed.max(now + backoff);
            return None;
        }
        // A train that arrived within one clock tick came over a link faster
        // than the receiver's microsecond stamps can tell: one microsecond
        // gives a lower bound of the capacity, which is all the cost needs.
        let span_us = report.last_us.saturating_sub(report.first_us).max(1);
        let n = u128::from(report.received);
        let bits = u128::from(report.bytes) * 8 * (n - 1) / n;
        let bps = (bits * 1_000_000 / u128::from(span_us)).min(u128::from(u64::MAX)) as u64;
        self.failures = 0;
        self.estimate = Some((bps, now));
        Some(bps)
    }

    pub fn estimate_bps(&self) -> Option<u64> {
        self.estimate.map(|(b, _)| b)
    }

    /// Trains and probe bytes sent so far.
    pub fn sent(&self) -> (u64, u64) {
        (self.trains_sent, self.bytes_sent)
    }
}

#[derive(Debug, Clone, Copy)]
struct TrainRx {
    train_id: u32,
    count: u16,
    last_index: u16,
    received: u16,
    first_us: u64,
    last_us: u64,
    bytes: u32,
    last_at: Timestamp,
    reported: bool,
}

/// The receiving side: counts one train at a time and reports it.
#[derive(Debug, Clone, Default)]
pub struct ProbeReceiver {
    train: Option<TrainRx>,
}

impl ProbeReceiver {
    /// Takes a probe of `wire_len` bytes; returns a report when the train is
    /// complete (its last index arrived).
    pub fn on_probe(&mut self, now: Timestamp, probe: &Probe, wire_len: usize) -> Option<ProbeReport> {
        if probe.count == 0 || probe.index >= probe.count {
            return None;
        }
        let len = u32::try_from(wire_len).unwrap_or(u32::MAX);
        let now_us = micros(now);
        match &mut self.train {
            Some(t) if t.train_id == probe.train_id => {
                if t.reported || probe.index <= t.last_index {
                    return None;
                }
                t.last_index = probe.index;
                t.received = t.received.saturating_add(1);
                t.last_us = now_us;
                t.bytes = t.bytes.saturating_add(len);
                t.last_at = now;
            }
            _ => {
                self.train = Some(TrainRx {
                    train_id: probe.train_id,
                    count: probe.count,
                    last_index: probe.index,
                    received: 1,
                    first_us: now_us,
                    last_us: now_us,
                    bytes: len,
                    last_at: now,
                    reported: false,
                });
            }
        }
        let t = self.train.as_ref()?;
        if probe.index + 1 == t.count { self.report() } else { None }
    }

    /// When an incomplete train will be reported anyway.
    pub fn report_at(&self) -> Option<Timestamp> {
        self.train.filter(|t| !t.reported).map(|t| t.last_at + REPORT_WAIT)
    }

    /// Reports an incomplete train whose wait ran out.
    pub fn on_timeout(&mut self, now: Timestamp) -> Option<ProbeReport> {
        if self.report_at().is_some_and(|at| now >= at) { self.report() } else { None }
    }

    fn report(&mut self) -> Option<ProbeReport> {
        let t = self.train.as_mut()?;
        t.reported = true;
        Some(ProbeReport {
            train_id: t.train_id,
            received: t.received,
            first_us: t.first_us,
            last_us: t.last_us,
            bytes: t.bytes,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ms: u64) -> Timestamp {
        Timestamp::from_nanos(ms * 1_000_000)
    }

    const W: Duration = Duration::from_secs(1);
    const AGE: Duration = Duration::from_secs(600);

    #[test]
    fn passive_rate_keeps_the_highest_sustained_window() {
        let mut p = PassiveRate::default();
        assert!(!p.on_counters(at(0), 0, 0, W, AGE));
        assert!(p.on_counters(at(500), 500_000, 0, W, AGE));
        assert!(p.on_counters(at(1000), 1_250_000, 10, W, AGE)); // 10 Mbit/s
        assert_eq!(p.current_bps(), Some(10_000_000));
        assert!(p.on_counters(at(2000), 1_375_000, 10, W, AGE)); // 1 Mbit/s
        assert_eq!(p.current_bps(), Some(1_000_000));
        assert_eq!(p.max_bps(), Some(10_000_000));
        assert_eq!(p.last_activity(), Some(at(2000)));
        assert!(!p.on_counters(at(3000), 1_375_000, 10, W, AGE));
        assert_eq!(p.last_activity(), Some(at(2000)));
    }

    #[test]
    fn activity_without_counters_restarts_the_window_so_shared_bytes_never_count() {
        let mut p = PassiveRate::default();
        p.on_counters(at(0), 0, 0, W, AGE);
        p.on_activity(at(500));
        assert_eq!(p.last_activity(), Some(at(500)));
        // 100 MB moved while the counters were the node's, not this link's.
        assert!(!p.on_counters(at(1500), 100_000_000, 0, W, AGE));
        assert_eq!(p.max_bps(), None);
        assert!(p.on_counters(at(2500), 100_125_000, 0, W, AGE));
        assert_eq!(p.max_bps(), Some(1_000_000));
    }

    #[test]
    fn passive_max_is_forgotten_when_old_and_counters_may_reset() {
        let mut p = PassiveRate::default();
        p.on_counters(at(0), 0, 0, W, AGE);
        p.on_counters(at(1000), 1_250_000, 0, W, AGE);
        assert_eq!(p.max_bps(), Some(10_000_000));
        p.on_counters(at(700_000), 1_250_000, 0, W, AGE);
        assert_eq!(p.max_bps(), None);
        assert!(!p.on_counters(at(701_000), 5, 5, W, AGE));
        assert!(p.on_counters(at(702_000), 125_005, 5, W, AGE));
        assert_eq!(p.current_bps(), Some(1_000_000));
    }

    fn plan() -> ProbePlan {
        ProbePlan {
            train_len: 10,
            probe_size: 1200,
            share: 0.01,
            timeout: Duration::from_secs(1),
            refresh: Duration::from_secs(600),
        }
    }

    #[test]
    fn the_budget_gap_keeps_trains_under_the_share() {
        // 96 kbit per train at 1 % of 10 Mbit/s: one train per 0.96 s.
        assert_eq!(plan().budget_gap(10_000_000), Duration::from_millis(960));
    }

    #[test]
    fn a_complete_train_is_reported_and_gives_the_dispersion_rate() {
        let mut prober = Prober::default();
        let mut rx = ProbeReceiver::default();
        let mut probes = Vec::new();
        prober.start_train(at(0), &plan(), 1_000_000_000, |p| probes.push(p));
        assert_eq!(probes.len(), 10);
        assert_eq!(probes[0].padding, 1180);
        let mut report = None;
        for (i, p) in probes.iter().enumerate() {
            // 1200 bytes at 10 Mbit/s: 960 us apart.
            let r = rx.on_probe(Timestamp::from_nanos(5_000_000 + i as u64 * 960_000), p, 1200);
            assert_eq!(r.is_some(), i == 9);
            report = report.or(r);
        }
        let report = report.unwrap();
        assert_eq!((report.received, report.bytes), (10, 12_000));
        assert_eq!(prober.on_report(at(20), &report), Some(10_000_000));
        assert!(!prober.wants_estimate(at(20), plan().refresh));
    }

    #[test]
    fn a_train_faster_than_the_clock_gives_a_lower_bound_not_a_retry_storm() {
        let mut prober = Prober::default();
        let mut probes = Vec::new();
        prober.start_train(at(0), &plan(), 1_000_000_000, |p| probes.push(p));
        let report = ProbeReport { train_id: probes[0].train_id, received: 10, first_us: 7, last_us: 7, bytes: 12_000 };
        assert_eq!(prober.on_report(at(1), &report), Some(12_000 * 8 * 9 / 10 * 1_000_000));
        assert!(!prober.wants_estimate(at(2), plan().refresh), "no new train right away");
    }

    #[test]
    fn an_incomplete_train_is_reported_after_the_wait() {
        let mut rx = ProbeReceiver::default();
        let p = |index| Probe { train_id: 3, index, count: 10, sent_us: 0, padding: 0 };
        assert_eq!(rx.on_probe(at(0), &p(0), 100), None);
        assert_eq!(rx.on_probe(at(1), &p(0), 100), None); // duplicate ignored
        assert_eq!(rx.on_probe(at(2), &p(4), 100), None);
        assert_eq!(rx.report_at(), Some(at(102)));
        assert_eq!(rx.on_timeout(at(101)), None);
        let r = rx.on_timeout(at(102)).unwrap();
        assert_eq!((r.received, r.bytes, r.last_us - r.first_us), (2, 200, 2000));
        assert_eq!(rx.report_at(), None);
        assert_eq!(rx.on_probe(at(3), &Probe { index: 10, ..p(0) }, 100), None);
    }

    #[test]
    fn failed_trains_back_off_and_foreign_reports_are_ignored() {
        let mut prober = Prober::default();
        let plan = plan();
        prober.start_train(at(0), &plan, 10_000_000, |_| {});
        assert_eq!(prober.next_start(at(0), &plan), None);
        let foreign = ProbeReport { train_id: 99, received: 10, first_us: 0, last_us: 10, bytes: 100 };
        assert_eq!(prober.on_report(at(5), &foreign), None);
        prober.on_timeout(at(999), &plan, 10_000_000);
        assert_eq!(prober.timeout_at(&plan), Some(at(1000)));
        prober.on_timeout(at(1000), &plan, 10_000_000);
        assert_eq!(prober.next_start(at(1000), &plan), Some(at(2000)));
        prober.start_train(at(2000), &plan, 10_000_000, |_| {});
        prober.on_timeout(at(3000), &plan, 10_000_000);
        assert_eq!(prober.next_start(at(3000), &plan), Some(at(6000)));
    }
}
