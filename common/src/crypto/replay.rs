//! Sliding anti-replay window over packet counters (the bitmap scheme of
//! RFC 6479, as WireGuard uses it).
//!
//! Drive it in two steps per packet: [`ReplayWindow::check`] before the
//! (costly) open, to drop duplicates and stale packets cheaply, then
//! [`ReplayWindow::accept`] after the tag verified, which re-checks and marks
//! the counter. Only authenticated counters ever move the window, so forged
//! packets cannot push it forward.

/// 64-bit words in the bitmap.
const WORDS: usize = 64;
/// Bits in the bitmap.
const BITS: u64 = (WORDS as u64) * 64;

/// How far behind the highest accepted counter a packet may arrive and still
/// be accepted (once). One word of the ring is always the one being filled,
/// so the usable width is the bitmap less a word.
pub const WINDOW: u64 = BITS - 64;
const _: () = assert!(WINDOW >= 2048, "the replay window must be at least 2048 packets wide");

/// Why a counter was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ReplayError {
    #[error("counter already received")]
    Duplicate,
    #[error("counter is older than the replay window")]
    TooOld,
}

/// The receive-side replay state of one sender's counter space.
#[derive(Clone)]
pub struct ReplayWindow {
    /// Highest accepted counter; meaningless until `seen_any`.
    last: u64,
    seen_any: bool,
    bitmap: [u64; WORDS],
}

impl Default for ReplayWindow {
    fn default() -> Self {
        ReplayWindow::new()
    }
}

impl std::fmt::Debug for ReplayWindow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReplayWindow").field("last", &self.last).field("seen_any", &self.seen_any).finish()
    }
}

impl ReplayWindow {
    /// An empty window: every counter is acceptable.
    pub const fn new() -> Self {
        ReplayWindow { last: 0, seen_any: false, bitmap: [0; WORDS] }
    }

    /// The highest counter accepted so far.
    pub fn highest(&self) -> Option<u64> {
        self.seen_any.then_some(self.last)
    }

    /// Whether `counter` could be accepted. Does not change the window.
    #[inline]
    pub fn check(&self, counter: u64) -> Result<(), ReplayError> {
        if !self.seen_any || counter > self.last {
            return Ok(());
        }
        if self.last - counter >= WINDOW {
            return Err(ReplayError::TooOld);
        }
        let (word, bit) = position(counter);
        if self.bitmap[word] & bit != 0 { Err(ReplayError::Duplicate) } else { Ok(()) }
    }

    /// Marks `counter` as received, after its packet authenticated.
    /// Re-checks, so of two copies opened in one batch only the first passes.
    #[inline]
    pub fn accept(&mut self, counter: u64) -> Result<(), ReplayError> {
        self.check(counter)?;
        if !self.seen_any {
            self.bitmap = [0; WORDS];
            self.seen_any = true;
            self.last = counter;
        } else if counter > self.last {
            let old_word = self.last / 64;
            let new_word = counter / 64;
            let advance = (new_word - old_word).min(WORDS as u64);
            for i in 1..=advance {
                self.bitmap[((old_word + i) % WORDS as u64) as usize] = 0;
            }
            self.last = counter;
        }
        let (word, bit) = position(counter);
        self.bitmap[word] |= bit;
        Ok(())
    }
}

#[inline]
fn position(counter: u64) -> (usize, u64) {
    (((counter / 64) % WORDS as u64) as usize, 1u64 << (counter % 64))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn duplicates_are_refused() {
        let mut w = ReplayWindow::new();
        assert_eq!(w.accept(0), Ok(()));
        assert_eq!(w.check(0), Err(ReplayError::Duplicate));
        assert_eq!(w.accept(0), Err(ReplayError::Duplicate));
        assert_eq!(w.accept(5), Ok(()));
        assert_eq!(w.accept(5), Err(ReplayError::Duplicate));
    }

    #[test]
    fn reordered_packets_inside_the_window_are_accepted_once() {
        let mut w = ReplayWindow::new();
        w.accept(100).unwrap();
        for c in (0..100).rev() {
            assert_eq!(w.accept(c), Ok(()), "counter {c}");
        }
        for c in 0..=100 {
            assert_eq!(w.accept(c), Err(ReplayError::Duplicate), "counter {c}");
        }
    }

    #[test]
    fn window_edges() {
        let mut w = ReplayWindow::new();
        let top = 10 * WINDOW;
        w.accept(top).unwrap();
        // The oldest counter still inside the window, and the first outside.
        assert_eq!(w.check(top - (WINDOW - 1)), Ok(()));
        assert_eq!(w.check(top - WINDOW), Err(ReplayError::TooOld));
        assert_eq!(w.accept(top - (WINDOW - 1)), Ok(()));
        assert_eq!(w.accept(top - (WINDOW - 1)), Err(ReplayError::Duplicate));
        // Moving the top by one pushes that oldest counter out.
        w.accept(top + 1).unwrap();
        assert_eq!(w.check(top - (WINDOW - 1)), Err(ReplayError::TooOld));
        assert_eq!(w.check(top + 1 - (WINDOW - 1)), Ok(()));
    }

    #[test]
    fn old_packets_are_refused() {
        let mut w = ReplayWindow::new();
        w.accept(5000).unwrap();
        assert_eq!(w.accept(5000 - WINDOW - 1), Err(ReplayError::TooOld));
        assert_eq!(w.accept(0), Err(ReplayError::TooOld));
    }

    #[test]
    fn a_far_future_counter_slides_the_whole_window() {
        let mut w = ReplayWindow::new();
        for c in 0..3000 {
            w.accept(c).unwrap();
        }
        let far = 1u64 << 40;
        w.accept(far).unwrap();
        // Bits of the old counters must not linger where the ring wrapped.
        for back in 1..WINDOW {
            assert_eq!(w.check(far - back), Ok(()), "far - {back}");
        }
        assert_eq!(w.check(2999), Err(ReplayError::TooOld));
        assert_eq!(w.accept(u64::MAX), Ok(()));
        assert_eq!(w.accept(u64::MAX), Err(ReplayError::Duplicate));
    }

    #[test]
    fn check_never_changes_the_window() {
        let mut w = ReplayWindow::new();
        w.accept(10).unwrap();
        assert_eq!(w.check(11), Ok(()));
        assert_eq!(w.check(11), Ok(()));
        assert_eq!(w.highest(), Some(10));
    }

    proptest! {
        /// Against a model: a set of every accepted counter and the maximum.
        #[test]
        fn matches_a_set_model(counters in proptest::collection::vec(0u64..20_000, 1..2_000)) {
            let mut w = ReplayWindow::new();
            let mut seen = std::collections::BTreeSet::new();
            let mut max: Option<u64> = None;
            for c in counters {
                let expected = match max {
                    Some(m) if c <= m && m - c >= WINDOW => Err(ReplayError::TooOld),
                    _ if seen.contains(&c) => Err(ReplayError::Duplicate),
                    _ => Ok(()),
                };
                prop_assert_eq!(w.accept(c), expected, "counter {}", c);
                if expected.is_ok() {
                    seen.insert(c);
                    max = Some(max.map_or(c, |m| m.max(c)));
                }
            }
        }
    }
}
