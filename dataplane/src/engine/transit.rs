//! Transit accounting: bytes this node forwarded for others, per source /64.
//!
//! The engine counts into a fixed table it owns (no allocation, no lock,
//! a few instructions per forwarded packet); the shard loop writes the table
//! to `shard-<n>.transit` in the shared-memory directory about once a second
//! (temp file and rename, off the packet path), and the control daemon sums
//! the shards' files for `mycelium_transit_bytes_total{source}`, keeping the
//! top sources by name and the rest as "other".
//!
//! File format: little-endian u64 triples `(source /64 prefix, bytes,
//! packets)`, one per used slot, then one with prefix 0 for everything that
//! found no slot.

use std::path::{Path, PathBuf};

/// Sources tracked by name per shard.
pub const SLOTS: usize = 256;
/// Slots tried per source before it is counted as "other".
const PROBES: usize = 8;

/// One shard's transit bytes per source /64.
#[derive(Debug, Clone)]
pub struct TransitTable {
    /// (source /64 as u64, bytes, packets); prefix 0 marks a free slot (no
    /// overlay /64 starts with a zero byte).
    slots: Box<[(u64, u64, u64); SLOTS]>,
    other: (u64, u64),
    dirty: bool,
}

impl Default for TransitTable {
    fn default() -> Self {
        TransitTable { slots: Box::new([(0, 0, 0); SLOTS]), other: (0, 0), dirty: false }
    }
}

impl TransitTable {
    /// Counts one forwarded packet of `len` bytes from `source`.
    #[inline]
    pub fn count(&mut self, source: &[u8; 16], len: usize) {
        let slot = self.slot(source);
        self.count_at(slot, len);
    }

    /// The slot of `source`'s /64 (claimed if new), or [`SLOTS`] when it
    /// found none and counts as "other".
    #[inline]
    pub fn slot(&mut self, source: &[u8; 16]) -> usize {
        let prefix = u64::from_be_bytes([
            source[0], source[1], source[2], source[3], source[4], source[5], source[6], source[7],
        ]);
        let start = (prefix.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 56) as usize;
        for i in 0..PROBES {
            let s = (start + i) % SLOTS;
            let slot = &mut self.slots[s];
            if slot.0 == prefix || slot.0 == 0 {
                slot.0 = prefix;
                return s;
            }
        }
        SLOTS
    }

    /// Counts one forwarded packet of `len` bytes in `slot` (from [`TransitTable::slot`]).
    #[inline]
    pub fn count_at(&mut self, slot: usize, len: usize) {
        self.dirty = true;
        match self.slots.get_mut(slot) {
            Some(s) => *s = (s.0, s.1 + len as u64, s.2 + 1),
            None => self.other = (self.other.0 + len as u64, self.other.1 + 1),
        }
    }

    /// Whether anything was counted since the last [`TransitTable::take_dirty`].
    pub fn take_dirty(&mut self) -> bool {
        std::mem::take(&mut self.dirty)
    }

    /// Every counted source: (prefix, bytes, packets), then "other" as prefix 0.
    pub fn entries(&self) -> impl Iterator<Item = (u64, u64, u64)> + '_ {
        self.slots.iter().copied().filter(|s| s.0 != 0).chain(std::iter::once((0, self.other.0, self.other.1)))
    }

    /// The file format: the entries as little-endian u64 triples.
    pub fn encode(&self) -> Vec<u8> {
        self.entries().flat_map(|(p, b, n)| [p, b, n]).flat_map(u64::to_le_bytes).collect()
    }
}

/// Path of shard `index`'s transit file.
pub fn transit_path(dir: &Path, index: usize) -> PathBuf {
    dir.join(format!("shard-{index}.transit"))
}

/// Sums every shard's transit file in `dir`: (source /64 prefix, bytes),
/// prefix 0 for "other". Unreadable or malformed files are skipped.
pub fn read_all_transit(dir: &Path) -> Vec<(u64, u64)> {
    let mut totals = std::collections::BTreeMap::new();
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    for entry in entries.flatten() {
        let name = entry.file_name();
        if !name.to_str().is_some_and(|n| n.starts_with("shard-") && n.ends_with(".transit")) {
            continue;
        }
        let Ok(bytes) = std::fs::read(entry.path()) else { continue };
        if bytes.len() % 24 != 0 {
            continue;
        }
        for triple in bytes.chunks_exact(24) {
            let word = |i: usize| u64::from_le_bytes(triple[i * 8..i * 8 + 8].try_into().expect("8 bytes"));
            *totals.entry(word(0)).or_insert(0u64) += word(1);
        }
    }
    totals.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_are_counted_apart_and_overflow_goes_to_other() {
        let mut t = TransitTable::default();
        let mut a = [0u8; 16];
        a[0] = 4;
        t.count(&a, 100);
        t.count(&a, 50);
        let entries: Vec<_> = t.entries().collect();
        assert_eq!(entries[0], (u64::from_be_bytes([4, 0, 0, 0, 0, 0, 0, 0]), 150, 2));
        for i in 0..2_000u32 {
            let mut s = [0u8; 16];
            s[0] = 5;
            s[4..8].copy_from_slice(&i.to_be_bytes());
            t.count(&s, 10);
        }
        let total: u64 = t.entries().map(|e| e.1).sum();
        assert_eq!(total, 150 + 20_000, "nothing is lost, overflow lands in other");
        assert!(t.entries().last().unwrap().1 > 0);
        assert!(t.take_dirty() && !t.take_dirty());
    }

    #[test]
    fn files_of_all_shards_are_summed() {
        let dir = tempfile::tempdir().unwrap();
        let mut t = TransitTable::default();
        let mut a = [0u8; 16];
        a[0] = 4;
        t.count(&a, 7);
        std::fs::write(transit_path(dir.path(), 0), t.encode()).unwrap();
        std::fs::write(transit_path(dir.path(), 1), t.encode()).unwrap();
        std::fs::write(dir.path().join("shard-2.transit"), b"bad").unwrap();
        let sums = read_all_transit(dir.path());
        assert_eq!(sums, vec![(0, 0), (u64::from_be_bytes([4, 0, 0, 0, 0, 0, 0, 0]), 14)]);
    }
}
