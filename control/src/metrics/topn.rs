//! [`TopN`]: per-source byte counters with bounded label cardinality.
//!
//! The daemon reports cumulative transit bytes per source (any number of
//! sources); Prometheus should see at most `n` `source` series plus one
//! `other`. Every byte is counted in exactly one series, the one its source
//! had when the bytes were seen, so each series only grows while it exists,
//! and the live series plus the replaced ones account for every byte seen:
//!
//! - at each scrape, a source's new bytes are its total minus the total seen
//!   at the last scrape (all of it on first sight, or after the source's own
//!   counter went backwards);
//! - each source has a score, halved at every scrape and then increased by
//!   its new bytes (recent traffic counts most, a short pause does not
//!   cost a source its name);
//! - sources with a series keep it; free places go to the sources with the
//!   highest score (ties by name); when all `n` are taken, the unnamed
//!   source with the highest score replaces the named one with the lowest,
//!   but only with more than twice its score, so two similar sources do not
//!   swap places every scrape;
//! - a named series starts at the bytes of the scrape that named it; a
//!   replaced series disappears (Prometheus sees it go stale) and its
//!   source's bytes go to `other` from then on.
//!
//! Memory is bounded by the number of sources the daemon reports: a source
//! it stops reporting is forgotten (its series, if any, stays until
//! replaced).

use std::collections::BTreeMap;

/// The label of the series that takes every unnamed source.
pub const OTHER: &str = "other";

/// Bounded per-source counters (see the module docs).
#[derive(Debug, Clone)]
pub struct TopN {
    n: usize,
    /// Named series: source -> bytes counted under its name.
    named: BTreeMap<String, u64>,
    other: u64,
    /// Every reported source at the last update.
    sources: BTreeMap<String, Seen>,
}

#[derive(Debug, Clone, Copy, Default)]
struct Seen {
    /// The cumulative total reported.
    total: u64,
    /// Decayed recent bytes.
    score: u64,
}

impl TopN {
    /// At most `n` named series (0: only `other`).
    pub fn new(n: usize) -> Self {
        TopN { n, named: BTreeMap::new(), other: 0, sources: BTreeMap::new() }
    }

    /// Takes the daemon's cumulative totals (one entry per source; a
    /// repeated source counts once, its largest total).
    pub fn update(&mut self, totals: &[(String, u64)]) {
        let mut current: BTreeMap<String, Seen> = BTreeMap::new();
        for (source, total) in totals {
            let entry = current.entry(source.clone()).or_default();
            entry.total = entry.total.max(*total);
        }
        let mut new_bytes: BTreeMap<String, u64> = BTreeMap::new();
        for (source, seen) in &mut current {
            let before = self.sources.get(source).copied().unwrap_or_default();
            let bytes = if seen.total >= before.total { seen.total - before.total } else { seen.total };
            seen.score = (before.score / 2).saturating_add(bytes);
            new_bytes.insert(source.clone(), bytes);
        }
        self.sources = current;
        self.promote();
        for (source, bytes) in new_bytes {
            match self.named.get_mut(&source) {
                Some(v) => *v = v.saturating_add(bytes),
                None => self.other = self.other.saturating_add(bytes),
            }
        }
    }

    fn score(&self, source: &str) -> u64 {
        self.sources.get(source).map_or(0, |s| s.score)
    }

    fn promote(&mut self) {
        // Unnamed candidates with a score, highest first, then by name.
        let mut candidates: Vec<(String, u64)> = self
            .sources
            .iter()
            .filter(|(s, seen)| seen.score > 0 && s.as_str() != OTHER && !self.named.contains_key(*s))
            .map(|(s, seen)| (s.clone(), seen.score))
            .collect();
        candidates.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        for (source, score) in candidates {
            if self.named.len() < self.n {
                self.named.insert(source, 0);
                continue;
            }
            // The weakest named source (lowest score, then the last name),
            // replaced only by a clearly stronger one.
            let weakest = self
                .named
                .keys()
                .map(|s| (self.score(s), s))
                .min_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(a.1)))
                .map(|(score, s)| (score, s.clone()));
            match weakest {
                Some((weak_score, weak)) if score > weak_score.saturating_mul(2) => {
                    self.named.remove(&weak);
                    self.named.insert(source, 0);
                }
                // Candidates are sorted: no later one is stronger.
                _ => break,
            }
        }
    }

    /// The series: named sources in name order, then [`OTHER`].
    pub fn series(&self) -> Vec<(&str, u64)> {
        let mut out: Vec<(&str, u64)> = self.named.iter().map(|(s, v)| (s.as_str(), *v)).collect();
        out.push((OTHER, self.other));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn totals(pairs: &[(&str, u64)]) -> Vec<(String, u64)> {
        pairs.iter().map(|(s, v)| (s.to_string(), *v)).collect()
    }

    fn sum(t: &TopN) -> u64 {
        t.series().iter().map(|(_, v)| v).sum()
    }

    #[test]
    fn the_largest_sources_get_names_and_the_rest_goes_to_other() {
        let mut t = TopN::new(2);
        t.update(&totals(&[("a", 10), ("b", 300), ("c", 200), ("d", 5)]));
        assert_eq!(t.series(), vec![("b", 300), ("c", 200), (OTHER, 15)]);
    }

    #[test]
    fn series_only_grow_and_the_sum_equals_the_bytes_seen() {
        let mut t = TopN::new(2);
        t.update(&totals(&[("a", 100), ("b", 50), ("c", 10)]));
        t.update(&totals(&[("a", 150), ("b", 60), ("c", 1000)]));
        // Scores: a 100, b 35, c 995: c replaces b; b's series is gone.
        assert_eq!(t.series(), vec![("a", 150), ("c", 990), (OTHER, 10 + 10)]);
        assert_eq!(sum(&t), 150 + 990 + 20);
        t.update(&totals(&[("a", 150), ("b", 70), ("c", 1000)]));
        assert_eq!(t.series(), vec![("a", 150), ("c", 990), (OTHER, 30)]);
    }

    #[test]
    fn a_similar_source_does_not_replace_a_named_one() {
        let mut t = TopN::new(1);
        t.update(&totals(&[("a", 100), ("b", 90)]));
        t.update(&totals(&[("a", 200), ("b", 250)]));
        // Scores: a 150, b 205: not more than twice, a stays.
        assert_eq!(t.series(), vec![("a", 200), (OTHER, 250)]);
    }

    #[test]
    fn cardinality_stays_bounded_with_many_sources() {
        let mut t = TopN::new(10);
        for round in 1..=20u64 {
            let many: Vec<(String, u64)> = (0..1000u64).map(|i| (format!("s{i}"), round * (i % 37 + 1))).collect();
            t.update(&many);
            assert!(t.series().len() <= 11);
        }
        let expected: u64 = (0..1000u64).map(|i| 20 * (i % 37 + 1)).sum();
        assert_eq!(sum(&t), expected);
    }

    #[test]
    fn an_idle_named_source_is_replaced_once_its_score_decays() {
        let mut t = TopN::new(1);
        t.update(&totals(&[("a", 1000)]));
        t.update(&totals(&[("a", 1000), ("b", 300)]));
        // a's score 500, b's 300: a keeps its name through one idle scrape.
        assert_eq!(t.series(), vec![("a", 1000), (OTHER, 300)]);
        t.update(&totals(&[("a", 1000), ("b", 600)]));
        // a 250, b 450: still not twice.
        assert_eq!(t.series(), vec![("a", 1000), (OTHER, 600)]);
        t.update(&totals(&[("a", 1000), ("b", 900)]));
        // a 125, b 525: b takes the name with this scrape's bytes.
        assert_eq!(t.series(), vec![("b", 300), (OTHER, 600)]);
    }

    #[test]
    fn a_source_whose_counter_restarts_counts_its_new_total() {
        let mut t = TopN::new(1);
        t.update(&totals(&[("a", 100)]));
        t.update(&totals(&[("a", 30)]));
        assert_eq!(t.series(), vec![("a", 130), (OTHER, 0)]);
    }

    #[test]
    fn a_source_named_other_never_gets_its_own_series() {
        let mut t = TopN::new(3);
        t.update(&totals(&[(OTHER, 500), ("a", 1)]));
        assert_eq!(t.series(), vec![("a", 1), (OTHER, 500)]);
    }

    #[test]
    fn zero_names_puts_everything_in_other() {
        let mut t = TopN::new(0);
        t.update(&totals(&[("a", 7), ("b", 8)]));
        assert_eq!(t.series(), vec![(OTHER, 15)]);
    }
}
