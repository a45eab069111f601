//! The lookup index: its hash, its construction, and its probe loop.
//!
//! The builder, the validator and the reader all go through the functions
//! here, so the three can never disagree about where a key lives.
//!
//! The hash is a fixed multiply/xor mix of the two 64-bit halves of the masked
//! prefix and the length: deterministic across processes and runs (no random
//! seed), so the same routes give the same table. Prefixes are announced under
//! keys whose addresses are BLAKE3 outputs, so they cannot be chosen freely to
//! collide; and even a table full of collisions only makes probes longer,
//! since every probe loop is bounded by the table length.

use super::schema::{ArchivedIndexSlot, ArchivedRoute, EMPTY_SLOT, IndexSlot, Route};

/// The bit mask that keeps the first `len` bits of an address (`len` > 128 is
/// treated as 128).
#[inline]
pub(crate) fn prefix_mask(len: u8) -> u128 {
    let len = u32::from(len.min(128));
    if len == 0 { 0 } else { u128::MAX << (128 - len) }
}

/// The hash of `(prefix, len)`: its low bits (reduced to the table size) are
/// where the probe sequence starts. `prefix` must already be masked to `len`.
#[inline]
pub fn slot_hash(prefix: u128, len: u8) -> u64 {
    let hi = (prefix >> 64) as u64;
    let lo = prefix as u64;
    let mut h = hi.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    h ^= lo.wrapping_add(u64::from(len)).wrapping_mul(0xc2b2_ae3d_27d4_eb4f);
    h ^= h >> 32;
    h = h.wrapping_mul(0x1656_67b1_9e37_79f9);
    h ^ (h >> 29)
}

/// The number of slots for `routes` routes: a power of two, at least twice
/// the number of routes, at least 2. `None` if that would not fit in a `u32`
/// route number.
pub(crate) fn table_len(routes: usize) -> Option<usize> {
    let want = routes.checked_mul(2)?.max(2).checked_next_power_of_two()?;
    (want <= 1 << 31).then_some(want)
}

/// The first 64 bits of a prefix: what a slot stores of its key.
#[inline]
pub(crate) fn prefix_hi(prefix: u128) -> u64 {
    (prefix >> 64) as u64
}

/// Builds the slot table for `routes` (sorted, unique, masked). `link_pos`
/// gives each route's next-hop position in `links` (or `LOCAL_LINK`).
/// Insertion follows route order, so the table is a function of the routes
/// alone.
pub(crate) fn build_slots(routes: &[Route], link_pos: &[u16], len: usize) -> Vec<IndexSlot> {
    let mut slots = vec![IndexSlot::EMPTY; len];
    let mask = len - 1;
    for (i, (route, &link)) in routes.iter().zip(link_pos).enumerate() {
        let prefix = u128::from_be_bytes(route.prefix);
        let hash = slot_hash(prefix, route.len);
        let mut pos = hash as usize & mask;
        // At most half the table is full, so an empty slot is always found.
        for _ in 0..len {
            if slots[pos].route == EMPTY_SLOT {
                slots[pos] =
                    IndexSlot { prefix_hi: prefix_hi(prefix), route: i as u32, link, len: route.len, reserved: 0 };
                break;
            }
            pos = (pos + 1) & mask;
        }
    }
    slots
}

/// The distinct prefix lengths of `routes`, longest first.
pub(crate) fn lengths_of<'a>(lens: impl Iterator<Item = &'a u8>) -> Vec<u8> {
    let mut present = [false; 129];
    for &len in lens {
        if let Some(p) = present.get_mut(usize::from(len)) {
            *p = true;
        }
    }
    (0..=128u8).rev().filter(|&l| present[usize::from(l)]).collect()
}

/// Probes for the exact key `(prefix, len)` (prefix masked). Returns the
/// slot, or `None` if an empty slot or the end of the bound is met first.
/// For `len` <= 64 the slot holds the whole key and no route is read; a
/// longer prefix also compares its last 64 bits in its route. Never panics
/// and never runs more than `slots.len()` steps, whatever the table holds.
#[inline]
pub(crate) fn probe<'a>(
    slots: &'a [ArchivedIndexSlot],
    routes: &[ArchivedRoute],
    prefix: u128,
    len: u8,
) -> Option<&'a ArchivedIndexSlot> {
    let n = slots.len();
    let mask = n.wrapping_sub(1);
    let hi = prefix_hi(prefix);
    let mut pos = slot_hash(prefix, len) as usize & mask;
    for _ in 0..n {
        let slot = slots.get(pos)?;
        let r = slot.route.to_native();
        if r == EMPTY_SLOT {
            return None;
        }
        if slot.prefix_hi.to_native() == hi
            && slot.len == len
            && (len <= 64 || routes.get(r as usize).is_some_and(|route| route.prefix == prefix.to_be_bytes()))
        {
            return Some(slot);
        }
        pos = (pos + 1) & mask;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_a_power_of_two_at_least_twice_the_routes() {
        assert_eq!(table_len(0), Some(2));
        assert_eq!(table_len(1), Some(2));
        assert_eq!(table_len(2), Some(4));
        assert_eq!(table_len(3), Some(8));
        assert_eq!(table_len(100_000), Some(262_144));
        assert_eq!(table_len(usize::MAX), None);
    }

    #[test]
    fn prefix_mask_keeps_exactly_len_bits() {
        assert_eq!(prefix_mask(0), 0);
        assert_eq!(prefix_mask(1), 1 << 127);
        assert_eq!(prefix_mask(64), u128::from(u64::MAX) << 64);
        assert_eq!(prefix_mask(128), u128::MAX);
        assert_eq!(prefix_mask(200), u128::MAX);
    }

    #[test]
    fn hash_is_a_fixed_function_of_its_inputs() {
        // A change here changes every snapshot's bytes: bump SNAPSHOT_VERSION.
        assert_eq!(slot_hash(0, 0), 0);
        assert_eq!(slot_hash(0x0400 << 112, 64), slot_hash(0x0400 << 112, 64));
        assert_ne!(slot_hash(0x0400 << 112, 64), slot_hash(0x0400 << 112, 63));
        assert_eq!(slot_hash(0x0400_0000_0000_0001 << 64, 64), 0x5841_2841_0ef1_73e3);
    }

    #[test]
    fn lengths_are_distinct_and_longest_first() {
        assert_eq!(lengths_of([64u8, 0, 128, 64, 7].iter()), vec![128, 64, 7, 0]);
        assert_eq!(lengths_of([].iter()), Vec::<u8>::new());
    }
}
