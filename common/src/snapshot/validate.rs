//! Validation: the one gate between mapped bytes and a [`SnapshotView`](super::SnapshotView).
//!
//! Two stages, both run once per mapping, off the packet path:
//! 1. structural: `rkyv::access` with bytecheck proves every offset and
//!    length lies inside the buffer, so no accessor can read out of bounds;
//! 2. semantic: the invariants lookups rely on for *correct* answers
//!    (sorted unique routes, masked prefixes, next hops that exist, and an
//!    index that is exactly the routes' hash table).
//!
//! Lookups never panic or loop forever even without stage 2 (every read is a
//! `.get()`, every probe bounded); stage 2 is what makes their answers right.

use rkyv::rancor;

use super::index::{lengths_of, prefix_hi, prefix_mask, slot_hash};
use super::schema::{
    ArchivedRouteSnapshot, EMPTY_SLOT, FAMILY_V4, FAMILY_V6, LOCAL, LOCAL_LINK, LinkState, SNAPSHOT_VERSION,
};

/// Why bytes are not a usable route snapshot.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    /// The bytes are not a well-formed archive (bad offsets, truncated,
    /// misaligned).
    #[error("snapshot is malformed: {0}")]
    Malformed(#[from] rancor::Error),
    /// A schema version this reader does not know.
    #[error("snapshot schema version {found}, this reader knows {SNAPSHOT_VERSION}")]
    Version {
        /// The version found.
        found: u32,
    },
    /// A route with a prefix length above 128.
    #[error("route {index}: prefix length {len} above 128")]
    PrefixLength {
        /// Position in `routes`.
        index: usize,
        /// The length.
        len: u8,
    },
    /// A route with bits set after its prefix length.
    #[error("route {index}: bits set after the prefix length")]
    HostBits {
        /// Position in `routes`.
        index: usize,
    },
    /// Routes out of `(prefix, len)` order, or a duplicate.
    #[error("route {index}: not strictly after the route before it")]
    RouteOrder {
        /// Position in `routes`.
        index: usize,
    },
    /// Links out of id order, a duplicate id, the reserved id, or one link
    /// too many.
    #[error("link {index}: id out of order, duplicate, or reserved, or too many links")]
    LinkOrder {
        /// Position in `links`.
        index: usize,
    },
    /// A link with an unknown state byte or a non-canonical address.
    #[error("link {index}: bad state or underlay address")]
    LinkField {
        /// Position in `links`.
        index: usize,
    },
    /// The index has the wrong number of slots.
    #[error("index has {slots} slots for {routes} routes (needs a power of two, at least twice as many)")]
    IndexSize {
        /// Slots found.
        slots: usize,
        /// Routes in the snapshot.
        routes: usize,
    },
    /// A slot that does not describe its route, or a route a lookup cannot
    /// reach (missing, listed twice, or behind an empty slot).
    #[error("index slot {slot} is inconsistent with the routes")]
    IndexSlot {
        /// Position in `slots`.
        slot: usize,
    },
    /// A route is missing from the index.
    #[error("index holds {found} of {routes} routes")]
    IndexCount {
        /// Non-empty slots.
        found: usize,
        /// Routes in the snapshot.
        routes: usize,
    },
    /// The list of prefix lengths is not exactly the lengths in use.
    #[error("index prefix-length list does not match the routes")]
    Lengths,
}

/// Checks `bytes` fully and returns the archived root.
pub(crate) fn validate(bytes: &[u8]) -> Result<&ArchivedRouteSnapshot, SnapshotError> {
    let snap = rkyv::access::<ArchivedRouteSnapshot, rancor::Error>(bytes)?;
    let version = snap.version.to_native();
    if version != SNAPSHOT_VERSION {
        return Err(SnapshotError::Version { found: version });
    }
    check_links(snap)?;
    check_routes(snap)?;
    check_index(snap)?;
    Ok(snap)
}

fn check_links(snap: &ArchivedRouteSnapshot) -> Result<(), SnapshotError> {
    if snap.links.len() >= usize::from(LOCAL_LINK) {
        return Err(SnapshotError::LinkOrder { index: usize::from(LOCAL_LINK) });
    }
    let mut prev: Option<u32> = None;
    for (index, link) in snap.links.iter().enumerate() {
        let id = link.id.to_native();
        if id == LOCAL || prev.is_some_and(|p| p >= id) {
            return Err(SnapshotError::LinkOrder { index });
        }
        prev = Some(id);
        let family_ok = match link.underlay.family {
            FAMILY_V4 => link.underlay.addr[4..].iter().all(|&b| b == 0),
            FAMILY_V6 => true,
            _ => false,
        };
        if !family_ok || LinkState::from_u8(link.state).is_none() {
            return Err(SnapshotError::LinkField { index });
        }
    }
    Ok(())
}

fn check_routes(snap: &ArchivedRouteSnapshot) -> Result<(), SnapshotError> {
    let mut prev: Option<(u128, u8)> = None;
    for (index, route) in snap.routes.iter().enumerate() {
        if route.len > 128 {
            return Err(SnapshotError::PrefixLength { index, len: route.len });
        }
        let prefix = u128::from_be_bytes(route.prefix);
        if prefix & !prefix_mask(route.len) != 0 {
            return Err(SnapshotError::HostBits { index });
        }
        let key = (prefix, route.len);
        if prev.is_some_and(|p| p >= key) {
            return Err(SnapshotError::RouteOrder { index });
        }
        prev = Some(key);
    }
    if snap.index.lengths.as_slice() != lengths_of(snap.routes.iter().map(|r| &r.len)).as_slice() {
        return Err(SnapshotError::Lengths);
    }
    Ok(())
}

/// Proves the slot table is exactly the hash table of the routes, in two
/// sequential passes:
/// 1. over the slots: each non-empty slot names a route in range, and no
///    route is named twice, and as many slots are full as there are routes
///    (so full slots and routes correspond one to one);
/// 2. over the routes: probing from each route's home position, as a lookup
///    does, reaches its slot before any empty slot (so lookups find it), and
///    that slot carries the route's key (first 64 prefix bits and length,
///    which is all a lookup of a prefix up to /64 compares), a zero reserved
///    byte, and the position of a link whose id is the route's next hop (so
///    next hops exist).
///
/// Pass 2 reads the 16-byte slots at random but the routes in order, which
/// keeps it cache friendly for big tables.
fn check_index(snap: &ArchivedRouteSnapshot) -> Result<(), SnapshotError> {
    let slots = snap.index.slots.as_slice();
    let routes = snap.routes.as_slice();
    let links = snap.links.as_slice();
    let n = slots.len();
    if !n.is_power_of_two() || n < routes.len().saturating_mul(2) || n > 1 << 31 {
        return Err(SnapshotError::IndexSize { slots: n, routes: routes.len() });
    }
    let mask = n - 1;

    let mut seen = vec![0u64; routes.len().div_ceil(64)];
    let mut found = 0usize;
    for (pos, slot) in slots.iter().enumerate() {
        let r = slot.route.to_native();
        if r == EMPTY_SLOT {
            continue;
        }
        let bad = || SnapshotError::IndexSlot { slot: pos };
        if r as usize >= routes.len() {
            return Err(bad());
        }
        let word = seen.get_mut(r as usize / 64).ok_or_else(bad)?;
        let bit = 1u64 << (r % 64);
        if *word & bit != 0 {
            return Err(bad());
        }
        *word |= bit;
        found += 1;
    }
    if found != routes.len() {
        return Err(SnapshotError::IndexCount { found, routes: routes.len() });
    }

    for (i, route) in routes.iter().enumerate() {
        let prefix = u128::from_be_bytes(route.prefix);
        let mut pos = slot_hash(prefix, route.len) as usize & mask;
        let mut slot = None;
        for _ in 0..n {
            let Some(s) = slots.get(pos) else { break };
            let r = s.route.to_native();
            if r == EMPTY_SLOT {
                break;
            }
            if r as usize == i {
                slot = Some((pos, s));
                break;
            }
            pos = (pos + 1) & mask;
        }
        // Unreachable: an empty slot lies between the home position and the
        // route's slot.
        let Some((pos, slot)) = slot else {
            return Err(SnapshotError::IndexSlot { slot: pos });
        };
        let next_hop = route.next_hop.to_native();
        let link = slot.link.to_native();
        let link_ok = if next_hop == LOCAL {
            link == LOCAL_LINK
        } else {
            links.get(usize::from(link)).is_some_and(|l| l.id.to_native() == next_hop)
        };
        let key_ok = slot.prefix_hi.to_native() == prefix_hi(prefix) && slot.len == route.len;
        if !key_ok || slot.reserved != 0 || !link_ok {
            return Err(SnapshotError::IndexSlot { slot: pos });
        }
    }
    Ok(())
}
