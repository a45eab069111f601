//! Loss from a reachability window (RFC 8966 Appendix A.1 and A.2.2).
//!
//! The last 16 expected hellos of the neighbour are a bit history: a 1 for
//! each one heard, a 0 for each one missed (a seqno gap, or the hello timer
//! of 1.5 announced intervals running out). A hello the timer gave up on
//! may still arrive, delayed (queueing, a path whose delay just grew): as
//! RFC 8966 Appendix A.1 says, the history is then undone back to it and
//! it counts as heard, so a slower path is not taken for a dead one. The fraction of ones is our
//! receive probability `p_in`; we send it to the neighbour as Babel's
//! `rxcost = 256 / p_in`, and the neighbour's rxcost in its IHU gives the
//! other direction, `p_out = 256 / txcost`. `ETX = 1 / (p_in * p_out)`.

/// How far a seqno may jump before the history is flushed (the neighbour
/// restarted), as RFC 8966 Appendix A.1.
pub const SEQNO_WINDOW: i16 = 16;

/// rxcost of a perfect link, as Babel: 256 means p = 1.
pub const RXCOST_PERFECT: u16 = 256;

/// What a received hello did to the history.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HelloOutcome {
    /// The expected seqno.
    InOrder,
    /// Later than expected: this many hellos were missed.
    Gap(u16),
    /// First hello, or a jump of more than 16: history restarted.
    Reset,
    /// Earlier than expected, and the hello timer had counted it (and this
    /// many hellos in all) as missed: those misses were undone.
    Recovered(u16),
    /// Earlier than expected otherwise (a duplicate, or reordered): ignored.
    Late,
}

/// The 16-bit reachability history of the neighbour's hellos.
#[derive(Debug, Clone, Default)]
pub struct HelloHistory {
    bits: u16,
    /// How many of `bits` are meaningful (at most 16).
    len: u8,
    expected: Option<u16>,
    consecutive: u16,
    /// The newest entries that are hello-timer misses, not seqno gaps.
    timer_misses: u16,
    received: u64,
    missed: u64,
}

impl HelloHistory {
    /// Records a hello with `seqno` (RFC 8966 Appendix A.1).
    pub fn on_hello(&mut self, seqno: u16) -> HelloOutcome {
        let outcome = match self.expected {
            None => HelloOutcome::Reset,
            Some(expected) => {
                let diff = seqno.wrapping_sub(expected) as i16;
                if diff == 0 {
                    HelloOutcome::InOrder
                } else if (1..=SEQNO_WINDOW).contains(&diff) {
                    HelloOutcome::Gap(diff as u16)
                } else if (-SEQNO_WINDOW..0).contains(&diff) {
                    //= https://www.rfc-editor.org/rfc/rfc8966#appendix-A.1
                    //~ if the received nr is smaller (modulo 2^16) than the
                    //~ expected sequence number ne, then the sending node has
                    //~ increased its Hello interval without our noticing; the
                    //~ receiving node removes the last (ne - nr) entries from
                    //~ this neighbour's Hello history (we "undo history")
                    // Only entries the timer guessed are undone: a hello that
                    // was heard once (a duplicate) stays ignored.
                    let back = diff.unsigned_abs();
                    if back <= self.timer_misses { HelloOutcome::Recovered(back) } else { HelloOutcome::Late }
                } else {
                    HelloOutcome::Reset
                }
            }
        };
        match outcome {
            HelloOutcome::Late => return outcome,
            HelloOutcome::Recovered(back) => {
                self.bits >>= back;
                self.len = self.len.saturating_sub(back.min(16) as u8);
                self.missed = self.missed.saturating_sub(u64::from(back));
            }
            HelloOutcome::Reset => {
                self.bits = 0;
                self.len = 0;
                self.consecutive = 0;
            }
            HelloOutcome::Gap(n) => {
                for _ in 0..n {
                    self.shift(false);
                }
                self.consecutive = 0;
                self.missed += u64::from(n);
            }
            HelloOutcome::InOrder => {}
        }
        self.shift(true);
        self.timer_misses = 0;
        self.consecutive = self.consecutive.saturating_add(1);
        self.received += 1;
        self.expected = Some(seqno.wrapping_add(1));
        outcome
    }

    /// The hello timer ran out: one expected hello was missed.
    pub fn on_missed(&mut self) {
        if let Some(expected) = self.expected {
            self.shift(false);
            self.consecutive = 0;
            self.missed += 1;
            self.timer_misses = self.timer_misses.saturating_add(1).min(SEQNO_WINDOW as u16);
            self.expected = Some(expected.wrapping_add(1));
        }
    }

    /// Forgets the history (the link went down): the next hello starts over.
    pub fn clear(&mut self) {
        *self = HelloHistory { received: self.received, missed: self.missed, ..HelloHistory::default() };
    }

    fn shift(&mut self, heard: bool) {
        self.bits = (self.bits << 1) | u16::from(heard);
        self.len = (self.len + 1).min(16);
    }

    /// Hellos heard in a row, with no gap or miss.
    pub fn consecutive(&self) -> u16 {
        self.consecutive
    }

    /// Fraction of the meaningful history heard; 0 with no history.
    pub fn receive_probability(&self) -> f64 {
        if self.len == 0 {
            return 0.0;
        }
        let mask = if self.len >= 16 { u16::MAX } else { (1u16 << self.len) - 1 };
        f64::from((self.bits & mask).count_ones()) / f64::from(self.len)
    }

    /// Our rxcost for the neighbour's IHU: `256 / p_in`, rounded, infinite
    /// (`0xFFFF`) when nothing was heard.
    pub fn rxcost(&self) -> u16 {
        rxcost_for(self.receive_probability())
    }

    /// Hellos heard and missed since the link was created.
    pub fn totals(&self) -> (u64, u64) {
        (self.received, self.missed)
    }
}

/// `256 / p` rounded, in `[256, 0xFFFE]`, or `0xFFFF` for `p == 0`.
pub fn rxcost_for(p: f64) -> u16 {
    if p.is_nan() || p <= 0.0 {
        return u16::MAX;
    }
    (256.0 / p.min(1.0)).round().clamp(256.0, f64::from(u16::MAX - 1)) as u16
}

/// The probability a neighbour's rxcost stands for: `256 / rxcost`, at most
/// 1; 0 for the infinite rxcost.
pub fn probability_of(rxcost: u16) -> f64 {
    if rxcost == u16::MAX {
        return 0.0;
    }
    (f64::from(RXCOST_PERFECT) / f64::from(rxcost.max(RXCOST_PERFECT))).min(1.0)
}

/// `1 / (p_in * p_out)`, infinite when either is zero.
pub fn etx(p_in: f64, p_out: f64) -> f64 {
    let p = p_in * p_out;
    if p > 0.0 { 1.0 / p } else { f64::INFINITY }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_order_hellos_fill_the_history_and_count_as_consecutive() {
        let mut h = HelloHistory::default();
        assert_eq!(h.receive_probability(), 0.0);
        assert_eq!(h.rxcost(), u16::MAX);
        assert_eq!(h.on_hello(7), HelloOutcome::Reset);
        assert_eq!(h.on_hello(8), HelloOutcome::InOrder);
        assert_eq!(h.on_hello(9), HelloOutcome::InOrder);
        assert_eq!(h.consecutive(), 3);
        assert_eq!(h.receive_probability(), 1.0);
        assert_eq!(h.rxcost(), 256);
    }

    #[test]
    fn a_seqno_gap_counts_the_missing_hellos_as_lost() {
        let mut h = HelloHistory::default();
        for s in 0..8 {
            h.on_hello(s);
        }
        assert_eq!(h.on_hello(10), HelloOutcome::Gap(2));
        assert_eq!(h.consecutive(), 1);
        assert_eq!(h.receive_probability(), 9.0 / 11.0);
        assert_eq!(h.totals(), (9, 2));
    }

    #[test]
    fn missed_timers_shift_zeros_until_the_late_hello_arrives_and_undoes_them() {
        let mut h = HelloHistory::default();
        h.on_missed(); // no history yet: nothing to miss
        assert_eq!(h.totals(), (0, 0));
        for s in 0..4 {
            h.on_hello(s);
        }
        h.on_missed();
        h.on_missed();
        assert_eq!(h.consecutive(), 0);
        assert_eq!(h.receive_probability(), 4.0 / 6.0);
        // Hello 4 was only delayed: both misses since are undone, it counts.
        assert_eq!(h.on_hello(4), HelloOutcome::Recovered(2));
        assert_eq!(h.receive_probability(), 1.0);
        assert_eq!(h.totals(), (5, 0));
        assert_eq!(h.on_hello(5), HelloOutcome::InOrder);
        assert_eq!(h.receive_probability(), 1.0);
    }

    #[test]
    fn duplicates_and_hellos_older_than_the_timer_misses_are_ignored() {
        let mut h = HelloHistory::default();
        for s in 0..4 {
            h.on_hello(s);
        }
        assert_eq!(h.on_hello(2), HelloOutcome::Late, "a duplicate");
        h.on_missed();
        assert_eq!(h.on_hello(2), HelloOutcome::Late, "older than the one missed");
        assert_eq!(h.receive_probability(), 4.0 / 5.0);
        // A seqno gap is a real loss, not undone by a late arrival.
        assert_eq!(h.on_hello(7), HelloOutcome::Gap(2));
        assert_eq!(h.on_hello(6), HelloOutcome::Late);
        assert_eq!(h.totals(), (5, 3));
    }

    #[test]
    fn seqno_wraps_and_a_big_jump_resets_the_history() {
        let mut h = HelloHistory::default();
        h.on_hello(u16::MAX);
        assert_eq!(h.on_hello(0), HelloOutcome::InOrder);
        assert_eq!(h.on_hello(100), HelloOutcome::Reset);
        assert_eq!(h.receive_probability(), 1.0);
        assert_eq!(h.on_hello(50), HelloOutcome::Reset);
    }

    #[test]
    fn the_window_keeps_only_the_last_16_hellos() {
        let mut h = HelloHistory::default();
        h.on_hello(0);
        for _ in 0..8 {
            h.on_missed();
        }
        for s in 9..25 {
            h.on_hello(s);
        }
        assert_eq!(h.receive_probability(), 1.0);
    }

    #[test]
    fn rxcost_and_etx_round_trip_babel_style() {
        assert_eq!(rxcost_for(1.0), 256);
        assert_eq!(rxcost_for(0.9), 284);
        assert_eq!(rxcost_for(0.0), u16::MAX);
        assert!((probability_of(284) - 0.9).abs() < 0.002);
        assert_eq!(probability_of(u16::MAX), 0.0);
        assert_eq!(probability_of(0), 1.0);
        assert!((etx(0.9, 0.9) - 1.0 / 0.81).abs() < 1e-9);
        assert_eq!(etx(0.0, 1.0), f64::INFINITY);
    }
}
