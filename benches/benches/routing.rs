//! Route engine CPU time: one update processed (selection, triggered
//! update, drain), and a full route recomputation after a link cost change,
//! with 1k and 100k routes in the table.
//!
//! `cargo bench -p mycelium-benches --bench routing -- --measurement-time 3`

use std::hint::black_box;
use std::time::Duration;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use mycelium_common::identity::PublicKey;
use mycelium_common::time::Timestamp;
use mycelium_common::wire::tlv::{ControlMessage, Update};
use mycelium_control::routing::{LinkId, Router, RouterConfig};

fn key(i: u32) -> PublicKey {
    let mut b = [0x42u8; 32];
    b[..4].copy_from_slice(&i.to_le_bytes());
    PublicKey::from_bytes(b)
}

fn update(origin: &PublicKey, seqno: u16, metric: u16) -> ControlMessage {
    ControlMessage::Update(Update {
        plen: 64,
        interval_cs: 400,
        seqno,
        metric,
        router_id: *origin,
        prefix: origin.address().subnet().prefix(),
    })
}

/// A router with two neighbours, each offering a route to each of `n`
/// origins (link 0 at cost 10, link 1 at cost 30).
fn loaded_router(n: u32) -> (Router, Vec<PublicKey>, Timestamp) {
    let now = Timestamp::from_nanos(1_000_000_000);
    let mut r = Router::new(now, key(u32::MAX), RouterConfig::default());
    r.handle_neighbour(now, LinkId(0), key(u32::MAX - 1), 10, 10);
    r.handle_neighbour(now, LinkId(1), key(u32::MAX - 2), 30, 30);
    let origins: Vec<PublicKey> = (0..n).map(key).collect();
    for o in &origins {
        r.handle_message(now, LinkId(0), &update(o, 1, 100));
        r.handle_message(now, LinkId(1), &update(o, 1, 50));
    }
    while r.poll_transmit().is_some() {}
    while r.poll_event().is_some() {}
    let _ = r.poll_route_table();
    assert_eq!(r.selected_count(), n as usize);
    (r, origins, now)
}

fn per_update(c: &mut Criterion) {
    let mut group = c.benchmark_group("routing/update");
    group.throughput(Throughput::Elements(1));
    for n in [1_000u32, 100_000] {
        let (mut r, origins, now) = loaded_router(n);
        let mut seqnos = vec![1u16; origins.len()];
        let mut i = 0usize;
        group.bench_function(format!("{n}-routes"), |b| {
            b.iter(|| {
                // A new seqno for the next origin, round robin: feasible,
                // selected, and announced as a triggered update.
                i = (i + 1) % origins.len();
                seqnos[i] = seqnos[i].wrapping_add(1);
                r.handle_message(now, LinkId(0), black_box(&update(&origins[i], seqnos[i], 100)));
                while let Some(t) = r.poll_transmit() {
                    black_box(t);
                }
                while r.poll_event().is_some() {}
            })
        });
    }
    group.finish();
}

fn recompute(c: &mut Criterion) {
    let mut group = c.benchmark_group("routing/recompute-all");
    for n in [1_000u32, 100_000] {
        let (r, _, now) = loaded_router(n);
        group.throughput(Throughput::Elements(u64::from(n)));
        if n > 10_000 {
            group.sample_size(10);
        }
        let mut flip = false;
        let mut r = r;
        group.bench_function(format!("{n}-routes"), |b| {
            b.iter_batched(
                || (),
                |()| {
                    // Link 0's cost moves: every route through it is re-selected,
                    // and the metric change is announced.
                    flip = !flip;
                    let cost = if flip { 40 } else { 10 };
                    r.handle_neighbour(now, LinkId(0), key(u32::MAX - 1), cost, cost);
                    while let Some(t) = r.poll_transmit() {
                        black_box(t);
                    }
                    while r.poll_event().is_some() {}
                    black_box(r.poll_route_table());
                },
                BatchSize::PerIteration,
            )
        });
    }
    group.finish();
}

fn config() -> Criterion {
    Criterion::default().warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3))
}

criterion_group! { name = benches; config = config(); targets = per_update, recompute }
criterion_main!(benches);
