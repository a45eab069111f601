//! A lock-free anti-replay window that several shards can update at once.
//!
//! The kernel usually keeps one sender's packets on one receive shard, but
//! nothing guarantees it (a rehash, a changed shard count): when packets of
//! one counter space arrive on two shards, both must see one window, or a
//! replay sent to the other shard would be accepted. This window lives in
//! memory shared by the shards and is updated with compare-and-swap only:
//! no lock, no allocation, one or two atomic operations per packet.
//!
//! Layout: `SLOTS` atomic words, each holding a 32-bit *tag* (the counter's
//! word number, `counter / 32`) and a 32-bit bitmap of the counters of that
//! word already received. Counter `c` lives in slot `(c / 32) % SLOTS`. If
//! the slot holds a newer word, `c` is too old; if it holds `c`'s word, the
//! bit says whether `c` was seen; if it holds an older word, that word has
//! left the window and the slot is taken over. So every counter is accepted
//! at most once, whatever the interleaving, and any counter within
//! [`SHARED_WINDOW`] of the highest one seen is accepted if new.
//!
//! Drive it like [`super::ReplayWindow`]: `check` before opening, `accept`
//! after the tag verified.

use std::sync::atomic::{AtomicU64, Ordering};

use super::ReplayError;

const SLOTS: usize = 128;
const BITS_PER_SLOT: u64 = 32;

/// Counters at or above this are refused: the 32-bit tags would wrap. Keys
/// are rotated long before (see `SendSession::packet_limit`).
pub const COUNTER_LIMIT: u64 = (1 << 32) * BITS_PER_SLOT;

/// How far behind the highest counter seen a new counter is still accepted.
pub const SHARED_WINDOW: u64 = (SLOTS as u64 - 1) * BITS_PER_SLOT;
const _: () = assert!(SHARED_WINDOW >= 2048, "the replay window must be at least 2048 packets wide");

/// The shared receive-side replay state of one sender's counter space.
pub struct SharedReplayWindow {
    slots: [AtomicU64; SLOTS],
}

impl Default for SharedReplayWindow {
    fn default() -> Self {
        SharedReplayWindow::new()
    }
}

impl std::fmt::Debug for SharedReplayWindow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SharedReplayWindow(..)")
    }
}

#[inline]
fn split(counter: u64) -> (usize, u32, u32) {
    let word = counter / BITS_PER_SLOT;
    ((word % SLOTS as u64) as usize, word as u32, 1u32 << (counter % BITS_PER_SLOT))
}

#[inline]
fn unpack(slot: u64) -> (u32, u32) {
    ((slot >> 32) as u32, slot as u32)
}

#[inline]
fn pack(tag: u32, bits: u32) -> u64 {
    (u64::from(tag) << 32) | u64::from(bits)
}

impl SharedReplayWindow {
    /// An empty window.
    pub fn new() -> Self {
        SharedReplayWindow { slots: std::array::from_fn(|_| AtomicU64::new(0)) }
    }

    /// Whether `counter` could be accepted now. Changes nothing.
    #[inline]
    pub fn check(&self, counter: u64) -> Result<(), ReplayError> {
        if counter >= COUNTER_LIMIT {
            return Err(ReplayError::TooOld);
        }
        let (index, tag, bit) = split(counter);
        let (slot_tag, bits) = unpack(self.slots[index].load(Ordering::Acquire));
        if slot_tag > tag {
            Err(ReplayError::TooOld)
        } else if slot_tag == tag && bits & bit != 0 {
            Err(ReplayError::Duplicate)
        } else {
            Ok(())
        }
    }

    /// Marks `counter` as received (after its packet authenticated). Exactly
    /// one of several concurrent calls with the same counter succeeds.
    #[inline]
    pub fn accept(&self, counter: u64) -> Result<(), ReplayError> {
        if counter >= COUNTER_LIMIT {
            return Err(ReplayError::TooOld);
        }
        let (index, tag, bit) = split(counter);
        let slot = &self.slots[index];
        let mut current = slot.load(Ordering::Acquire);
        loop {
            let (slot_tag, bits) = unpack(current);
            let next = if slot_tag > tag {
                return Err(ReplayError::TooOld);
            } else if slot_tag == tag {
                if bits & bit != 0 {
                    return Err(ReplayError::Duplicate);
                }
                pack(tag, bits | bit)
            } else {
                pack(tag, bit)
            };
            match slot.compare_exchange_weak(current, next, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => return Ok(()),
                Err(actual) => current = actual,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn duplicates_and_old_counters_are_refused() {
        let w = SharedReplayWindow::new();
        assert_eq!(w.accept(0), Ok(()));
        assert_eq!(w.accept(0), Err(ReplayError::Duplicate));
        assert_eq!(w.check(0), Err(ReplayError::Duplicate));
        let top = 10 * SHARED_WINDOW;
        assert_eq!(w.accept(top), Ok(()));
        assert_eq!(w.accept(top - SHARED_WINDOW), Ok(()), "the window's far edge is inside");
        assert_eq!(w.accept(top - SHARED_WINDOW - BITS_PER_SLOT), Err(ReplayError::TooOld));
        // Counter 0's slot was never reused, so it is still known as seen.
        assert_eq!(w.accept(0), Err(ReplayError::Duplicate));
    }

    #[test]
    fn reordering_within_the_window_is_accepted_once() {
        let w = SharedReplayWindow::new();
        for c in (0..SHARED_WINDOW).rev() {
            assert_eq!(w.accept(c), Ok(()), "{c}");
        }
        for c in 0..SHARED_WINDOW {
            assert_eq!(w.accept(c), Err(ReplayError::Duplicate), "{c}");
        }
    }

    #[test]
    fn a_far_future_counter_retires_the_old_words() {
        let w = SharedReplayWindow::new();
        for c in 0..500 {
            w.accept(c).unwrap();
        }
        let far = 1u64 << 30;
        w.accept(far).unwrap();
        assert_eq!(w.check(far + 1), Ok(()));
        assert_eq!(w.accept(far), Err(ReplayError::Duplicate));
        assert_eq!(w.check(COUNTER_LIMIT), Err(ReplayError::TooOld));
    }

    #[test]
    fn concurrent_shards_accept_every_counter_exactly_once() {
        let w = Arc::new(SharedReplayWindow::new());
        let threads = 4;
        let per_thread = 200_000u64;
        // Every thread offers every counter, in a shifted order; only one
        // acceptance per counter may happen in total.
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let w = Arc::clone(&w);
                std::thread::spawn(move || {
                    let mut accepted = 0u64;
                    for i in 0..per_thread {
                        let c = i + (t * 7) % 64;
                        if w.accept(c).is_ok() {
                            accepted += 1;
                        }
                    }
                    accepted
                })
            })
            .collect();
        let total: u64 = handles.into_iter().map(|h| h.join().unwrap()).sum();
        let distinct = per_thread + 7 * (threads - 1) % 64;
        assert!(total <= distinct, "{total} acceptances of {distinct} distinct counters");
        // Threads run nearly in step, so almost all counters get accepted by someone.
        assert!(total > distinct / 2, "only {total} of {distinct}");
    }
}
