//! The source table and the feasibility condition: what keeps the engine
//! loop-free at every instant.
//!
//! For each (prefix, router id) that this node has announced, the table holds
//! the feasibility distance: the best (newest seqno, then smallest metric)
//! pair ever advertised. A route is only selected if its neighbour's
//! advertisement is strictly better than that distance.

use std::collections::BTreeMap;

use mycelium_common::address::Subnet;
use mycelium_common::identity::PublicKey;
use mycelium_common::time::Timestamp;
use mycelium_common::wire::tlv::METRIC_INFINITY;

use super::seqno;

/// A feasibility distance: `(seqno, metric)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Distance {
    pub seqno: u16,
    pub metric: u16,
}

#[derive(Debug, Clone, Copy)]
struct Source {
    distance: Distance,
    refreshed: Timestamp,
}

/// Feasibility distances by (prefix, router id).
#[derive(Debug, Default)]
pub struct SourceTable {
    entries: BTreeMap<(Subnet, PublicKey), Source>,
}

impl SourceTable {
    /// The feasibility distance of `(prefix, router_id)`, if one is recorded.
    pub fn get(&self, prefix: &Subnet, router_id: &PublicKey) -> Option<Distance> {
        self.entries.get(&(*prefix, *router_id)).map(|s| s.distance)
    }

    //= https://www.rfc-editor.org/rfc/rfc8966#section-3.5.1
    //~ Given a source table, a received update with seqno s and metric m is
    //~ feasible when either it is a retraction (its metric is infinite), or
    //~ there is no entry in the source table for the source of the update,
    //~ or an entry (prefix, plen, router-id, seqno', metric') exists in the
    //~ source table, and either
    //~
    //~ *  s > seqno' (modulo 2^16), or
    //~
    //~ *  s = seqno' and m < metric'.
    /// Whether an advertisement `(seqno, metric)` of `(prefix, router_id)` is
    /// feasible.
    pub fn is_feasible(&self, prefix: &Subnet, router_id: &PublicKey, seqno: u16, metric: u16) -> bool {
        if metric == METRIC_INFINITY {
            return true;
        }
        match self.get(prefix, router_id) {
            None => true,
            Some(fd) => seqno::greater(seqno, fd.seqno) || (seqno == fd.seqno && metric < fd.metric),
        }
    }

    //= https://www.rfc-editor.org/rfc/rfc8966#section-3.7.3
    //~ Every time an update is sent for a given prefix
    //~ with a finite metric, the source table is updated
    /// Records that this node has just advertised `(seqno, metric)`.
    pub fn record_advertised(&mut self, now: Timestamp, prefix: Subnet, router_id: PublicKey, seqno: u16, metric: u16) {
        if metric == METRIC_INFINITY {
            return;
        }
        let fresh = Source { distance: Distance { seqno, metric }, refreshed: now };
        match self.entries.get_mut(&(prefix, router_id)) {
            None => {
                self.entries.insert((prefix, router_id), fresh);
            }
            Some(entry) => {
                let fd = entry.distance;
                if seqno::greater(seqno, fd.seqno) {
                    *entry = fresh;
                } else if seqno == fd.seqno {
                    entry.distance.metric = fd.metric.min(metric);
                    entry.refreshed = now;
                }
            }
        }
    }

    //= https://www.rfc-editor.org/rfc/rfc8966#section-3.2.5
    //~ If the garbage-collection timer for a source expires, the entry is
    //~ removed from the source table.
    /// Forgets sources not refreshed since `cutoff`.
    pub fn collect_garbage(&mut self, cutoff: Timestamp) {
        self.entries.retain(|_, s| s.refreshed >= cutoff);
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the table is empty.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prefix() -> Subnet {
        Subnet::new([4, 1, 2, 3, 4, 5, 6, 7, 0, 0, 0, 0, 0, 0, 0, 0], 64).unwrap()
    }

    #[test]
    fn anything_is_feasible_before_the_node_has_advertised() {
        let t = SourceTable::default();
        assert!(t.is_feasible(&prefix(), &PublicKey::from_bytes([1; 32]), 0, 500));
    }

    #[test]
    fn same_seqno_needs_a_strictly_smaller_metric_and_newer_seqno_always_wins() {
        let mut t = SourceTable::default();
        let id = PublicKey::from_bytes([1; 32]);
        t.record_advertised(Timestamp::ZERO, prefix(), id, 10, 100);
        assert!(!t.is_feasible(&prefix(), &id, 10, 100));
        assert!(t.is_feasible(&prefix(), &id, 10, 99));
        assert!(!t.is_feasible(&prefix(), &id, 9, 1));
        assert!(t.is_feasible(&prefix(), &id, 11, 60_000));
        assert!(t.is_feasible(&prefix(), &id, 9, METRIC_INFINITY));
    }

    #[test]
    fn the_distance_only_improves_within_one_seqno() {
        let mut t = SourceTable::default();
        let id = PublicKey::from_bytes([1; 32]);
        t.record_advertised(Timestamp::ZERO, prefix(), id, 10, 100);
        t.record_advertised(Timestamp::ZERO, prefix(), id, 10, 300);
        assert_eq!(t.get(&prefix(), &id), Some(Distance { seqno: 10, metric: 100 }));
        t.record_advertised(Timestamp::ZERO, prefix(), id, 9, 5);
        assert_eq!(t.get(&prefix(), &id), Some(Distance { seqno: 10, metric: 100 }));
        t.record_advertised(Timestamp::ZERO, prefix(), id, 11, 300);
        assert_eq!(t.get(&prefix(), &id), Some(Distance { seqno: 11, metric: 300 }));
    }
}
