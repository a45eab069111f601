//! Data bytes out of the dataplane's port counters.
//!
//! The dataplane counts every datagram on the node's port, the control
//! messages the daemon sends and receives through it included, and only for
//! the node as a whole. Fed with those totals, a link would take its own
//! hellos for traffic: it would stay in the fast-hello mode forever and
//! never probe its capacity. [`DataCounters`] subtracts the control bytes
//! the daemon itself handed to and got from the dataplane, so what is left
//! is data (local and transit).
//!
//! Driving it: call [`on_control_sent`](DataCounters::on_control_sent) for
//! every datagram the daemon sends and
//! [`on_control_received`](DataCounters::on_control_received) for every
//! punted control datagram; then [`on_totals`](DataCounters::on_totals)
//! with the dataplane's cumulative totals whenever they are read.
//!
//! The two sides are not counted at the same instant: a datagram the
//! dataplane counted but the daemon has not seen yet looks like data for a
//! moment, one the daemon sent but the dataplane has not yet counted (or
//! failed to send) makes the data total dip. The reported totals therefore
//! only grow (a brief surplus is not counted twice once it is explained),
//! and a dip that lasts longer than [`DEFICIT_FORGIVEN`] is accepted as
//! datagrams that were never sent, so it cannot hide later data.

use std::time::Duration;

use mycelium_common::time::Timestamp;

/// How long the data estimate may stay below what was reported before the
/// difference is written off.
pub const DEFICIT_FORGIVEN: Duration = Duration::from_secs(1);

/// Control bytes seen by the daemon, and the data totals derived so far.
#[derive(Debug, Clone, Default)]
pub struct DataCounters {
    /// Control bytes sent and received, `[tx, rx]`.
    control: [u64; 2],
    /// The dataplane's totals at the last reading.
    last_totals: Option<[u64; 2]>,
    /// Data totals reported so far; they only grow.
    seen: [i128; 2],
    deficit_since: Option<Timestamp>,
}

impl DataCounters {
    /// A control datagram of `bytes` the daemon sent through the dataplane.
    pub fn on_control_sent(&mut self, bytes: usize) {
        self.control[0] = self.control[0].saturating_add(bytes as u64);
    }

    /// A control datagram of `bytes` the dataplane punted to the daemon.
    pub fn on_control_received(&mut self, bytes: usize) {
        self.control[1] = self.control[1].saturating_add(bytes as u64);
    }

    /// Takes the dataplane's cumulative totals (every UDP payload byte sent
    /// and received); returns the cumulative data bytes `[tx, rx]` and
    /// whether any data moved since the last call.
    pub fn on_totals(&mut self, now: Timestamp, tx: u64, rx: u64) -> ([u64; 2], bool) {
        let totals = [tx, rx];
        let reset = self.last_totals.is_none_or(|last| totals[0] < last[0] || totals[1] < last[1]);
        self.last_totals = Some(totals);
        if reset {
            // First reading, or a new dataplane whose counters start at zero:
            // what the daemon counted before belongs to the old one.
            self.control = [0; 2];
            self.seen = totals.map(i128::from);
            self.deficit_since = None;
            return (self.reported(), false);
        }
        let estimate = [0, 1].map(|i| i128::from(totals[i]) - i128::from(self.control[i]));
        let mut moved = false;
        let mut deficit = false;
        for (seen, estimate) in self.seen.iter_mut().zip(estimate) {
            if estimate > *seen {
                *seen = estimate;
                moved = true;
            } else if estimate < *seen {
                deficit = true;
            }
        }
        if !deficit {
            self.deficit_since = None;
        } else if let Some(since) = self.deficit_since {
            if now.saturating_since(since) >= DEFICIT_FORGIVEN {
                // Sent by the daemon but never by the dataplane: write it off.
                for ((control, seen), estimate) in self.control.iter_mut().zip(self.seen).zip(estimate) {
                    *control = control.saturating_sub(u64::try_from(seen - estimate).unwrap_or(0));
                }
                self.deficit_since = None;
            }
        } else {
            self.deficit_since = Some(now);
        }
        (self.reported(), moved)
    }

    fn reported(&self) -> [u64; 2] {
        self.seen.map(|v| u64::try_from(v).unwrap_or(0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ms: u64) -> Timestamp {
        Timestamp::from_nanos(ms * 1_000_000)
    }

    #[test]
    fn control_messages_alone_never_count_as_data() {
        let mut d = DataCounters::default();
        assert_eq!(d.on_totals(at(0), 1000, 2000), ([1000, 2000], false));
        for i in 1..=50u64 {
            d.on_control_sent(90);
            d.on_control_received(110);
            let (data, moved) = d.on_totals(at(i * 100), 1000 + i * 90, 2000 + i * 110);
            assert!(!moved, "reading {i}");
            assert_eq!(data, [1000, 2000]);
        }
    }

    #[test]
    fn data_moves_the_totals_whatever_control_rides_along() {
        let mut d = DataCounters::default();
        d.on_totals(at(0), 0, 0);
        d.on_control_sent(100);
        assert_eq!(d.on_totals(at(100), 100 + 5000, 0), ([5000, 0], true));
        d.on_control_received(60);
        assert_eq!(d.on_totals(at(200), 5100, 60 + 1400), ([5000, 1400], true));
    }

    #[test]
    fn a_datagram_counted_before_the_daemon_saw_it_is_not_counted_twice() {
        let mut d = DataCounters::default();
        d.on_totals(at(0), 0, 0);
        // The dataplane counted a 120-byte hello the daemon has not read yet.
        assert_eq!(d.on_totals(at(100), 0, 120), ([0, 120], true));
        d.on_control_received(120);
        assert_eq!(d.on_totals(at(200), 0, 120), ([0, 120], false));
        // The next hello, read in order, moves nothing.
        d.on_control_received(120);
        assert_eq!(d.on_totals(at(300), 0, 240), ([0, 120], false));
    }

    #[test]
    fn datagrams_the_dataplane_never_sent_cannot_hide_later_data() {
        let mut d = DataCounters::default();
        d.on_totals(at(0), 0, 0);
        // Handshakes to an unreachable peer: the sends fail, nothing counted.
        d.on_control_sent(10_000);
        assert_eq!(d.on_totals(at(100), 0, 0), ([0, 0], false));
        assert_eq!(d.on_totals(at(1200), 0, 0), ([0, 0], false));
        // Then 300 data bytes leave: seen at once.
        assert_eq!(d.on_totals(at(1300), 300, 0), ([300, 0], true));
    }

    #[test]
    fn a_restarted_dataplane_starts_the_count_again() {
        let mut d = DataCounters::default();
        d.on_totals(at(0), 10_000, 10_000);
        d.on_control_sent(5_000);
        d.on_totals(at(100), 15_000, 10_000);
        assert_eq!(d.on_totals(at(200), 50, 70), ([50, 70], false));
        assert_eq!(d.on_totals(at(300), 850, 70), ([850, 70], true));
    }
}
