//! Route snapshot validation on arbitrary bytes.
//!
//! The bytes are copied into an aligned buffer (as a mapping would be) and
//! validated. Validation must never panic; when it accepts, every lookup must
//! agree with a naive longest-prefix match over the routes the view lists
//! (for the first routes, queried at their own prefix, at their last address,
//! and at addresses taken from the input).

#![no_main]

use mycelium_common::snapshot::{AlignedVec, LOCAL, NextHop, SnapshotView};

/// Routes checked per input: the naive model is quadratic.
const CHECKED: usize = 64;

fn naive(routes: &[([u8; 16], u8)], dst: u128) -> Option<([u8; 16], u8)> {
    routes
        .iter()
        .filter(|(prefix, len)| {
            let mask = if *len == 0 { 0 } else { u128::MAX << (128 - u32::from((*len).min(128))) };
            dst & mask == u128::from_be_bytes(*prefix)
        })
        .max_by_key(|(_, len)| *len)
        .copied()
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let mut buf = AlignedVec::<16>::with_capacity(data.len());
    buf.extend_from_slice(data);
    let Ok(view) = SnapshotView::validate(&buf) else {
        return;
    };
    let _ = (view.generation(), view.created_at(), view.node_public_key(), view.node_address());
    for link in view.links() {
        assert!(link.underlay().is_some(), "validated links have canonical addresses");
        assert_eq!(view.link(link.id()).map(|l| l.id()), Some(link.id()));
    }
    let routes: Vec<([u8; 16], u8)> = view.routes().map(|r| (r.prefix(), r.len())).collect();
    let small = routes.len() <= CHECKED;
    let mut queries: Vec<u128> = Vec::new();
    for &(prefix, len) in routes.iter().take(CHECKED) {
        let p = u128::from_be_bytes(prefix);
        let host = if len >= 128 { 0 } else { u128::MAX >> len };
        queries.extend([p, p | host]);
    }
    queries.extend(data.chunks_exact(16).take(CHECKED).map(|c| u128::from_be_bytes(c.try_into().unwrap())));
    for q in queries {
        let hit = view.lookup(&q.to_be_bytes());
        if let Some(hit) = hit {
            let (prefix, len) = (hit.route.prefix(), hit.route.len());
            let mask = if len == 0 { 0 } else { u128::MAX << (128 - u32::from(len.min(128))) };
            assert_eq!(q & mask, u128::from_be_bytes(prefix), "a hit covers the address");
            match hit.next_hop {
                NextHop::Local => assert_eq!(hit.route.next_hop_id(), LOCAL),
                NextHop::Link(l) => assert_eq!(l.id(), hit.route.next_hop_id()),
            }
        }
        if small {
            assert_eq!(hit.map(|h| (h.route.prefix(), h.route.len())), naive(&routes, q));
        }
    }
});
