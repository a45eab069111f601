//! Snapshot tests: round trip, lookups against a naive model, determinism,
//! and validation of broken or mutated bytes.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use proptest::prelude::*;

use super::index::prefix_mask;
use super::*;
use crate::address::mask;
use crate::identity::PublicKey;
use crate::time::Timestamp;

fn key(n: u8) -> PublicKey {
    PublicKey::from_bytes([n; 32])
}

fn node() -> NodeInfo {
    NodeInfo::from_public_key(&key(1))
}

fn link(id: u32, up: bool) -> Link {
    let addr: SocketAddr = if id.is_multiple_of(2) {
        format!("192.0.2.{}:9651", id % 250).parse().unwrap()
    } else {
        format!("[2001:db8::{id:x}]:9651").parse().unwrap()
    };
    Link::new(id, addr, if up { LinkState::Up } else { LinkState::Down }, &key(id as u8))
}

fn route(prefix: &str, next_hop: u32, metric: u16) -> Route {
    let (ip, len) = prefix.split_once('/').unwrap();
    let ip: std::net::Ipv6Addr = ip.parse().unwrap();
    let len: u8 = len.parse().unwrap();
    Route { prefix: mask(ip.octets(), len), len, next_hop, metric, seqno: 7, router_id: [metric as u8; 32] }
}

fn addr(s: &str) -> [u8; 16] {
    s.parse::<std::net::Ipv6Addr>().unwrap().octets()
}

fn sample() -> RouteSnapshot {
    SnapshotBuilder::new(node(), 42, Timestamp::from_nanos(1_000))
        .links([link(3, true), link(2, false)])
        .routes([
            route("400:1:2:3::/64", 2, 10),
            route("400:1:2:3::99/128", 3, 20),
            route("::/0", 3, 30),
            route("400::/7", LOCAL, 0),
        ])
        .build()
        .unwrap()
}

fn bytes_of(snap: &RouteSnapshot) -> AlignedVec {
    snap.to_bytes().unwrap()
}

#[test]
fn built_snapshot_round_trips_through_bytes() {
    let snap = sample();
    let bytes = bytes_of(&snap);
    let view = SnapshotView::validate(&bytes).unwrap();
    assert_eq!(view.to_snapshot().unwrap(), snap);
    // A reused buffer (holding older bytes) gives the same bytes.
    let mut old = AlignedVec::<16>::new();
    old.extend_from_slice(&[0xee; 4096]);
    assert_eq!(snap.to_bytes_in(old).unwrap().as_slice(), bytes.as_slice());
    assert_eq!(view.generation(), 42);
    assert_eq!(view.created_at(), Timestamp::from_nanos(1_000));
    assert_eq!(view.node_public_key(), key(1));
    assert_eq!(view.node_address(), key(1).address().octets());
    assert_eq!(view.route_count(), 4);
    assert_eq!(view.links().map(|l| l.id()).collect::<Vec<_>>(), vec![2, 3]);
    let l2 = view.link(2).unwrap();
    assert_eq!(l2.underlay(), Some("192.0.2.2:9651".parse().unwrap()));
    assert_eq!(l2.state(), LinkState::Down);
    assert_eq!(l2.peer(), key(2).as_bytes());
    assert_eq!(view.link(3).unwrap().underlay(), Some("[2001:db8::3]:9651".parse().unwrap()));
    assert!(view.link(4).is_none());
}

#[test]
fn lookup_picks_the_longest_matching_prefix_and_its_next_hop() {
    let bytes = bytes_of(&sample());
    let view = SnapshotView::validate(&bytes).unwrap();

    let hit = view.lookup(&addr("400:1:2:3::99")).unwrap();
    assert_eq!((hit.route.len(), hit.route.metric()), (128, 20));
    assert!(matches!(hit.next_hop, NextHop::Link(l) if l.id() == 3));

    let hit = view.lookup(&addr("400:1:2:3:ffff::1")).unwrap();
    assert_eq!((hit.route.len(), hit.route.metric(), hit.route.seqno()), (64, 10, 7));
    assert_eq!(hit.route.router_id(), &[10; 32]);
    assert!(matches!(hit.next_hop, NextHop::Link(l) if l.id() == 2 && l.state() == LinkState::Down));

    let hit = view.lookup(&addr("5ff::1")).unwrap();
    assert_eq!(hit.route.len(), 7);
    assert!(matches!(hit.next_hop, NextHop::Local));

    let hit = view.lookup(&addr("2001:db8::1")).unwrap();
    assert!(hit.route.is_empty());
}

#[test]
fn prefixes_longer_than_64_bits_that_share_their_first_64_are_told_apart() {
    let snap = SnapshotBuilder::new(node(), 1, Timestamp::ZERO)
        .links([link(1, true), link(2, true), link(3, true)])
        .routes([route("400:1::1/128", 1, 1), route("400:1::2/128", 2, 2), route("400:1::/96", 3, 3)])
        .build()
        .unwrap();
    let bytes = bytes_of(&snap);
    let view = SnapshotView::validate(&bytes).unwrap();
    let metric = |a: &str| view.lookup(&addr(a)).map(|h| h.route.metric());
    assert_eq!((metric("400:1::1"), metric("400:1::2"), metric("400:1::3")), (Some(1), Some(2), Some(3)));
    assert_eq!(metric("400:1::1:0:1"), None);
}

#[test]
fn a_hit_names_its_route_and_link_by_position() {
    let bytes = bytes_of(&sample());
    let view = SnapshotView::validate(&bytes).unwrap();
    let hit = view.lookup(&addr("400:1:2:3:ffff::1")).unwrap();
    let route = view.routes().nth(hit.route_index as usize).unwrap();
    assert_eq!((route.prefix(), route.len()), (hit.route.prefix(), 64));
    assert_eq!(view.link_at(hit.link_index).map(|l| l.id()), Some(2));
    let local = view.lookup(&addr("5ff::1")).unwrap();
    assert_eq!(local.link_index, LOCAL_LINK);
    assert!(view.link_at(LOCAL_LINK).is_none());
}

#[test]
fn an_index_slot_is_sixteen_bytes_and_never_straddles_a_cache_line() {
    assert_eq!(size_of::<schema::ArchivedIndexSlot>(), 16);
    assert_eq!(align_of::<schema::ArchivedIndexSlot>(), 16);
    let bytes = bytes_of(&sample());
    SnapshotView::validate(&bytes).unwrap();
    let archived = rkyv::access::<schema::ArchivedRouteSnapshot, rkyv::rancor::Error>(&bytes).unwrap();
    let offset = archived.index.slots.as_ptr() as usize - bytes.as_ptr() as usize;
    assert_eq!(offset % 16, 0);
}

#[test]
fn lookup_without_a_default_route_misses_outside_every_prefix() {
    let snap = SnapshotBuilder::new(node(), 1, Timestamp::ZERO)
        .links([link(1, true)])
        .routes([route("400:1::/64", 1, 1)])
        .build()
        .unwrap();
    let bytes = bytes_of(&snap);
    let view = SnapshotView::validate(&bytes).unwrap();
    assert!(view.lookup(&addr("400:2::1")).is_none());
    assert!(view.lookup(&addr("400:1::1")).is_some());
}

#[test]
fn empty_snapshot_validates_and_finds_nothing() {
    let snap = SnapshotBuilder::new(node(), 0, Timestamp::ZERO).build().unwrap();
    let bytes = bytes_of(&snap);
    let view = SnapshotView::validate(&bytes).unwrap();
    assert_eq!(view.route_count(), 0);
    assert!(view.lookup(&[0; 16]).is_none());
}

#[test]
fn builder_rejects_inconsistent_inputs() {
    let b = || SnapshotBuilder::new(node(), 1, Timestamp::ZERO).links([link(1, true)]);
    let r = route("400::/64", 1, 1);
    let err = |b: SnapshotBuilder| b.build().unwrap_err();
    assert!(matches!(err(b().routes([r, r])), BuildError::DuplicateRoute { len: 64, .. }));
    assert!(matches!(err(b().routes([Route { len: 129, ..r }])), BuildError::PrefixLength { len: 129, .. }));
    assert!(matches!(err(b().routes([Route { len: 4, ..r }])), BuildError::HostBits { len: 4, .. }));
    assert!(matches!(err(b().routes([Route { next_hop: 9, ..r }])), BuildError::UnknownNextHop { next_hop: 9, .. }));
    assert_eq!(err(b().links([link(1, false)])), BuildError::DuplicateLink(1));
    assert_eq!(err(b().links([Link { id: LOCAL, ..link(1, true) }])), BuildError::ReservedLinkId);
    let too_many = (2..=u32::from(u16::MAX)).map(|id| link(id, true));
    assert_eq!(err(b().links(too_many)), BuildError::TooManyLinks(65535));
}

#[test]
fn same_inputs_in_any_order_give_identical_bytes() {
    let routes: Vec<Route> =
        (0..500u32).map(|i| route(&format!("400:{:x}:{:x}::/64", i / 7, i), i % 5 + 1, i as u16)).collect();
    let links: Vec<Link> = (1..=5).map(|i| link(i, i % 2 == 0)).collect();
    let build = |routes: Vec<Route>, links: Vec<Link>| {
        SnapshotBuilder::new(node(), 9, Timestamp::from_nanos(5)).links(links).routes(routes).build().unwrap()
    };
    let reference = bytes_of(&build(routes.clone(), links.clone()));
    let mut r2 = routes.clone();
    r2.reverse();
    let mut l2 = links.clone();
    l2.reverse();
    assert_eq!(bytes_of(&build(r2, l2)).as_slice(), reference.as_slice());
    // A rotation interleaves the order differently again.
    let mut r3 = routes;
    r3.rotate_left(123);
    assert_eq!(bytes_of(&build(r3, links)).as_slice(), reference.as_slice());
}

/// Serializes `snap` after `edit` and returns the validation error.
fn reject(edit: impl FnOnce(&mut RouteSnapshot)) -> SnapshotError {
    let mut snap = sample();
    edit(&mut snap);
    let bytes = bytes_of(&snap);
    SnapshotView::validate(&bytes).unwrap_err()
}

#[test]
fn validation_rejects_semantic_corruption() {
    use SnapshotError as E;
    assert!(matches!(reject(|s| s.version = 1), E::Version { found: 1 }));
    assert!(matches!(reject(|s| s.version = 3), E::Version { found: 3 }));
    assert!(matches!(reject(|s| s.routes[1].len = 130), E::PrefixLength { index: 1, len: 130 }));
    assert!(matches!(reject(|s| s.routes[1].prefix[15] = 1), E::HostBits { index: 1 }));
    assert!(matches!(reject(|s| s.routes.swap(0, 1)), E::RouteOrder { index: 1 }));
    assert!(matches!(reject(|s| s.routes[2] = s.routes[1]), E::RouteOrder { index: 2 }));
    assert!(matches!(reject(|s| s.links.swap(0, 1)), E::LinkOrder { index: 1 }));
    assert!(matches!(reject(|s| s.links[1].id = LOCAL), E::LinkOrder { index: 1 }));
    assert!(matches!(reject(|s| s.links[0].state = 2), E::LinkField { index: 0 }));
    assert!(matches!(reject(|s| s.links[0].underlay.addr[9] = 1), E::LinkField { index: 0 }));
    assert!(matches!(reject(|s| s.links[0].underlay.family = 5), E::LinkField { index: 0 }));
    assert!(matches!(reject(|s| s.index.lengths.reverse()), E::Lengths));
    assert!(matches!(reject(|s| s.index.lengths.push(3)), E::Lengths));
    assert!(matches!(
        reject(|s| {
            s.index.slots.pop();
        }),
        E::IndexSize { slots: 7, routes: 4 }
    ));
    assert!(matches!(reject(|s| s.index.slots.truncate(4)), E::IndexSize { slots: 4, routes: 4 }));
}

/// The position of the slot holding route `r`.
fn slot_of(s: &RouteSnapshot, r: u32) -> usize {
    s.index.slots.iter().position(|slot| slot.route == r).unwrap()
}

#[test]
fn validation_rejects_an_index_that_does_not_match_the_routes() {
    use SnapshotError as E;
    // ::/0 moved from link 3 to link 2 without its slot: the slot names the wrong link.
    assert!(matches!(reject(|s| s.routes[0].next_hop = 2), E::IndexSlot { .. }));
    // A dangling next hop.
    assert!(matches!(reject(|s| s.routes[0].next_hop = 77), E::IndexSlot { .. }));
    // A slot pointing past the routes.
    assert!(matches!(
        reject(|s| {
            let i = slot_of(s, 0);
            s.index.slots[i].route = 9
        }),
        E::IndexSlot { .. }
    ));
    // A slot whose key differs from its route's: prefix bits, length.
    assert!(matches!(
        reject(|s| {
            let i = slot_of(s, 1);
            s.index.slots[i].prefix_hi ^= 1
        }),
        E::IndexSlot { .. }
    ));
    assert!(matches!(
        reject(|s| {
            let i = slot_of(s, 1);
            s.index.slots[i].len ^= 1
        }),
        E::IndexSlot { .. }
    ));
    // A slot with its reserved byte set.
    assert!(matches!(
        reject(|s| {
            let i = slot_of(s, 1);
            s.index.slots[i].reserved = 1
        }),
        E::IndexSlot { .. }
    ));
    // A slot naming the wrong link for its route.
    assert!(matches!(
        reject(|s| {
            let i = slot_of(s, 2);
            s.index.slots[i].link ^= 1
        }),
        E::IndexSlot { .. }
    ));
    // A route missing from the index.
    assert!(matches!(
        reject(|s| {
            let i = slot_of(s, 2);
            s.index.slots[i] = IndexSlot::EMPTY
        }),
        E::IndexCount { found: 3, routes: 4 }
    ));
    // A route listed twice (the copy in a free slot after its home).
    assert!(matches!(
        reject(|s| {
            let i = slot_of(s, 3);
            let n = s.index.slots.len();
            let free = (1..n).map(|d| (i + d) % n).find(|&p| s.index.slots[p].route == schema::EMPTY_SLOT).unwrap();
            // Fill every slot between with copies so the duplicate is reachable.
            let mut p = (i + 1) % n;
            while p != (free + 1) % n {
                s.index.slots[p] = s.index.slots[i];
                p = (p + 1) % n;
            }
        }),
        E::IndexSlot { .. }
    ));
    // A route moved behind an empty slot, where a probe would never find it.
    assert!(matches!(
        reject(|s| {
            let n = s.index.slots.len();
            let i = slot_of(s, 0);
            let moved = (1..n)
                .map(|d| (i + d) % n)
                .find(|&p| {
                    s.index.slots[p].route == schema::EMPTY_SLOT
                        && s.index.slots[(p + n - 1) % n].route == schema::EMPTY_SLOT
                })
                .unwrap();
            s.index.slots[moved] = s.index.slots[i];
            s.index.slots[i] = IndexSlot::EMPTY;
        }),
        E::IndexSlot { .. }
    ));
}

#[test]
fn validation_rejects_truncated_and_misaligned_bytes() {
    let bytes = bytes_of(&sample());
    for cut in [0, 1, bytes.len() / 2, bytes.len() - 1] {
        let mut short = AlignedVec::<16>::new();
        short.extend_from_slice(&bytes[..cut]);
        assert!(SnapshotView::validate(&short).is_err(), "cut at {cut}");
    }
    let mut shifted = AlignedVec::<16>::new();
    shifted.push(0);
    shifted.extend_from_slice(&bytes);
    assert!(matches!(SnapshotView::validate(&shifted[1..]), Err(SnapshotError::Malformed(_))));
}

/// Naive longest-prefix match: the reference the index must agree with.
fn naive_lookup(routes: &[Route], dst: &[u8; 16]) -> Option<Route> {
    let a = u128::from_be_bytes(*dst);
    routes.iter().filter(|r| a & prefix_mask(r.len) == u128::from_be_bytes(r.prefix)).max_by_key(|r| r.len).copied()
}

const BASES: [u128; 3] = [
    0x0400_1234_5678_9abc_0000_0000_0000_0000,
    0x05ff_0000_0000_0001_dead_beef_0000_0001,
    0x2001_0db8_0000_0000_0000_0000_0000_0000,
];

/// Routes and queries clustered around a few bases, so prefixes nest.
fn routes_strategy() -> impl Strategy<Value = Vec<Route>> {
    prop::collection::vec((0..BASES.len(), 0..=128u8, any::<u8>(), 0..4u32, any::<u16>()), 0..80).prop_map(|specs| {
        let mut unique = BTreeMap::new();
        for (b, len, flip, hop, metric) in specs {
            let bits = (BASES[b] ^ (1u128 << (flip % 128))) & prefix_mask(len);
            let next_hop = if hop == 0 { LOCAL } else { hop };
            let r = Route { prefix: bits.to_be_bytes(), len, next_hop, metric, seqno: 1, router_id: [b as u8; 32] };
            unique.insert((r.prefix, r.len), r);
        }
        unique.into_values().collect()
    })
}

fn query_strategy() -> impl Strategy<Value = [u8; 16]> {
    (0..BASES.len(), any::<u128>(), 0..129u32).prop_map(|(b, noise, shift)| {
        let noise = noise.checked_shr(shift).unwrap_or(0);
        (BASES[b] ^ noise).to_be_bytes()
    })
}

fn build(routes: &[Route]) -> AlignedVec {
    let links = (1..4).map(|i| link(i, true));
    let snap = SnapshotBuilder::new(node(), 1, Timestamp::ZERO).links(links).routes(routes.iter().copied()).build();
    bytes_of(&snap.unwrap())
}

proptest! {
    #[test]
    fn lookup_agrees_with_a_naive_longest_prefix_match(
        routes in routes_strategy(),
        queries in prop::collection::vec(query_strategy(), 1..40),
    ) {
        let bytes = build(&routes);
        let view = SnapshotView::validate(&bytes).unwrap();
        let probes: Vec<[u8; 16]> = queries.iter().copied().chain(routes.iter().map(|r| r.prefix)).collect();
        let mut batch = vec![None; probes.len()];
        view.lookup_batch(&probes, &mut batch);
        for (q, b) in probes.iter().zip(&batch) {
            let one = view.lookup(q).map(|h| (h.route.prefix(), h.route.len(), h.route.next_hop_id()));
            prop_assert_eq!(b.map(|h| (h.route.prefix(), h.route.len(), h.route.next_hop_id())), one);
        }
        for q in probes {
            let got = view.lookup(&q).map(|h| (h.route.prefix(), h.route.len(), h.route.next_hop_id(), h.route.metric()));
            let want = naive_lookup(&routes, &q).map(|r| (r.prefix, r.len, r.next_hop, r.metric));
            prop_assert_eq!(got, want);
            if let Some(hit) = view.lookup(&q) {
                let listed = view.routes().nth(hit.route_index as usize).map(|r| (r.prefix(), r.len()));
                prop_assert_eq!(listed, Some((hit.route.prefix(), hit.route.len())));
                prop_assert_eq!(view.link_at(hit.link_index).map(|l| l.id()), match hit.next_hop {
                    NextHop::Local => None,
                    NextHop::Link(l) => Some(l.id()),
                });
                match hit.next_hop {
                    NextHop::Local => prop_assert_eq!(hit.route.next_hop_id(), LOCAL),
                    NextHop::Link(l) => prop_assert_eq!(l.id(), hit.route.next_hop_id()),
                }
            }
        }
    }

    #[test]
    fn shuffled_inputs_give_identical_bytes(routes in routes_strategy(), seed in any::<u64>()) {
        let mut shuffled = routes.clone();
        // Fisher-Yates with a xorshift: any permutation the seed picks.
        let mut x = seed | 1;
        for i in (1..shuffled.len()).rev() {
            x ^= x << 13; x ^= x >> 7; x ^= x << 17;
            shuffled.swap(i, (x % (i as u64 + 1)) as usize);
        }
        let (a, b) = (build(&routes), build(&shuffled));
        prop_assert_eq!(a.as_slice(), b.as_slice());
    }

    #[test]
    fn mutated_bytes_never_panic_and_valid_ones_still_answer(
        routes in routes_strategy(),
        flips in prop::collection::vec((any::<prop::sample::Index>(), 1..=255u8), 1..8),
        queries in prop::collection::vec(query_strategy(), 1..8),
    ) {
        let mut bytes = build(&routes);
        for (at, x) in flips {
            let i = at.index(bytes.len());
            bytes[i] ^= x;
        }
        if let Ok(view) = SnapshotView::validate(&bytes) {
            // Still valid after the flips (e.g. a metric byte): lookups stay
            // consistent with the routes the view itself lists.
            let listed: Vec<Route> = view.routes().map(|r| Route {
                prefix: r.prefix(), len: r.len(), next_hop: r.next_hop_id(), metric: r.metric(),
                seqno: r.seqno(), router_id: *r.router_id(),
            }).collect();
            for q in queries {
                let got = view.lookup(&q).map(|h| (h.route.prefix(), h.route.len()));
                prop_assert_eq!(got, naive_lookup(&listed, &q).map(|r| (r.prefix, r.len)));
            }
        }
    }
}

/// The fuzz target's seeds (`fuzz/corpus/snapshot_validate/seed-*`): a small
/// snapshot exercising every kind of route and link, and an empty one.
fn fuzz_seeds() -> Vec<(&'static str, AlignedVec)> {
    let peer = key(9);
    let links = [
        Link::new(1, "192.0.2.1:9651".parse().unwrap(), LinkState::Up, &peer),
        Link::new(2, "[2001:db8::1]:1".parse().unwrap(), LinkState::Down, &peer),
    ];
    let mk = |p: u128, len: u8, next_hop: u32| Route {
        prefix: p.to_be_bytes(),
        len,
        next_hop,
        metric: 1,
        seqno: 2,
        router_id: [3; 32],
    };
    let base = 0x0400_0001_u128 << 96;
    let routes = [mk(0, 0, 1), mk(0x0400 << 112, 7, LOCAL), mk(base, 64, 2), mk(base | 5, 128, 1)];
    let small = SnapshotBuilder::new(node(), 1, Timestamp::from_nanos(1)).links(links).routes(routes).build();
    let empty = SnapshotBuilder::new(node(), 0, Timestamp::ZERO).build();
    vec![("seed-small", bytes_of(&small.unwrap())), ("seed-empty", bytes_of(&empty.unwrap()))]
}

#[test]
fn committed_fuzz_seeds_are_current_snapshots() {
    // Run with MYCELIUM_WRITE_SEEDS=1 to rewrite them after a schema change.
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/snapshot_validate");
    let write = std::env::var_os("MYCELIUM_WRITE_SEEDS").is_some();
    for (name, bytes) in fuzz_seeds() {
        SnapshotView::validate(&bytes).unwrap();
        let path = dir.join(name);
        if write {
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(&path, &bytes).unwrap();
        }
        let on_disk = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert_eq!(on_disk, bytes.as_slice(), "{} is stale (run with MYCELIUM_WRITE_SEEDS=1)", path.display());
    }
}
