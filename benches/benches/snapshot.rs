//! Route snapshots at 100k routes: lookups (hits spread over all routes, and
//! misses), building + serializing + publishing, validation, and a
//! subscriber's poll when nothing changed.
//!
//! Times are the benchmark thread's CPU time (`CLOCK_THREAD_CPUTIME_ID`, user
//! and kernel): what a pinned shard's core spends, without the time other
//! processes on a shared machine take from the thread. Set
//! `MYCELIUM_BENCH_WALL=1` for wall-clock time instead.
//!
//! `cargo bench -p mycelium-benches --bench snapshot -- --warm-up-time 1 --measurement-time 3`

use std::collections::BTreeSet;
use std::hint::black_box;
use std::time::Duration;

use criterion::measurement::{Measurement, ValueFormatter, WallTime};
use criterion::{BatchSize, Criterion};
use mycelium_common::identity::PublicKey;
use mycelium_common::shm::{Publisher, ROUTES, ShmDir, Subscriber};
use mycelium_common::snapshot::{
    AlignedVec, LOCAL, Link, LinkState, NextHop, NodeInfo, Route, RouteChannel, RouteSnapshot, SnapshotBuilder,
    SnapshotView,
};
use mycelium_common::time::Timestamp;

const ROUTES_N: usize = 100_000;
const LINKS_N: u32 = 64;
const QUERIES: usize = 1 << 16;

/// SplitMix64: a seeded stream, so every run benchmarks the same table.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// The upper 64 bits of an overlay address: 0x04 or 0x05, then random.
    fn overlay_net(&mut self) -> u64 {
        (self.next() & 0x01ff_ffff_ffff_ffff) | 0x0400_0000_0000_0000
    }
}

/// 100k random overlay /64s (as the mesh announces them) over 64 links, one
/// in a hundred local, in random order.
fn inputs() -> (Vec<Route>, Vec<Link>) {
    let mut rng = Rng(0x5eed);
    let links = (1..=LINKS_N)
        .map(|id| {
            let addr = format!("198.51.100.{id}:9651").parse().unwrap();
            Link::new(id, addr, LinkState::Up, &PublicKey::from_bytes([id as u8; 32]))
        })
        .collect();
    let mut nets = BTreeSet::new();
    while nets.len() < ROUTES_N {
        nets.insert(rng.overlay_net());
    }
    let mut routes: Vec<Route> = nets
        .into_iter()
        .map(|net| {
            let r = rng.next();
            Route {
                prefix: (u128::from(net) << 64).to_be_bytes(),
                len: 64,
                next_hop: if r.is_multiple_of(100) { LOCAL } else { (r % u64::from(LINKS_N)) as u32 + 1 },
                metric: (r >> 16) as u16,
                seqno: (r >> 32) as u16,
                router_id: [(r >> 48) as u8; 32],
            }
        })
        .collect();
    // Shuffle, so the builder's sort does real work.
    for i in (1..routes.len()).rev() {
        routes.swap(i, (rng.next() % (i as u64 + 1)) as usize);
    }
    (routes, links)
}

fn build(routes: Vec<Route>, links: Vec<Link>) -> RouteSnapshot {
    let node = NodeInfo::from_public_key(&PublicKey::from_bytes([1; 32]));
    SnapshotBuilder::new(node, 1, Timestamp::from_nanos(1)).links(links).routes(routes).build().unwrap()
}

/// What a shard reads per packet: the route and link positions, which come
/// from the index slot alone (the shard finds the route's session and the
/// link's endpoint by them, in its own small tables).
#[inline]
fn use_hit(view: &SnapshotView<'_>, dst: &[u8; 16]) -> Option<(u32, u16)> {
    view.lookup(dst).map(|hit| (hit.route_index, hit.link_index))
}

/// A lookup that also reads the route entry and the link (a route's first
/// packet in a shard, or a tool): the destination's key byte and link id.
#[inline]
fn use_hit_and_route(view: &SnapshotView<'_>, dst: &[u8; 16]) -> Option<(u8, u32)> {
    view.lookup(dst).map(|hit| {
        let link = match hit.next_hop {
            NextHop::Local => LOCAL,
            NextHop::Link(l) => l.id(),
        };
        (hit.route.router_id()[0], link)
    })
}

/// Criterion measurement: the calling thread's CPU time.
struct ThreadCpuTime;

fn thread_cpu_now() -> Duration {
    let ts = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

impl Measurement for ThreadCpuTime {
    type Intermediate = Duration;
    type Value = Duration;

    fn start(&self) -> Duration {
        thread_cpu_now()
    }
    fn end(&self, start: Duration) -> Duration {
        thread_cpu_now().saturating_sub(start)
    }
    fn add(&self, a: &Duration, b: &Duration) -> Duration {
        *a + *b
    }
    fn zero(&self) -> Duration {
        Duration::ZERO
    }
    fn to_f64(&self, d: &Duration) -> f64 {
        d.as_nanos() as f64
    }
    fn formatter(&self) -> &dyn ValueFormatter {
        static WALL: WallTime = WallTime;
        WALL.formatter()
    }
}

fn lookups<M: Measurement>(c: &mut Criterion<M>) {
    let (routes, links) = inputs();
    let bytes = build(routes.clone(), links).to_bytes().unwrap();
    let view = SnapshotView::validate(&bytes).unwrap();
    let mut rng = Rng(7);
    let hits: Vec<[u8; 16]> = (0..QUERIES)
        .map(|_| {
            let r = &routes[(rng.next() % ROUTES_N as u64) as usize];
            (u128::from_be_bytes(r.prefix) | u128::from(rng.next())).to_be_bytes()
        })
        .collect();
    let present: BTreeSet<[u8; 16]> = routes.iter().map(|r| r.prefix).collect();
    let misses: Vec<[u8; 16]> = std::iter::repeat_with(|| (u128::from(rng.overlay_net()) << 64 | 1).to_be_bytes())
        .filter(|a| !present.contains(&(u128::from_be_bytes(*a) & !u128::from(u64::MAX)).to_be_bytes()))
        .take(QUERIES)
        .collect();
    assert!(hits.iter().all(|h| view.lookup(h).is_some()));
    assert!(misses.iter().all(|m| view.lookup(m).is_none()));

    // A working set of 1024 destinations (the active flows of a busy
    // shard): its routes stay cached, so this is the lookup's own cost.
    let hot: Vec<[u8; 16]> = hits.iter().take(1024).cycle().take(QUERIES).copied().collect();

    let mut group = c.benchmark_group("snapshot/lookup-100k");
    for (name, queries) in [("hit-hot-1k", &hot), ("hit-random", &hits), ("miss-random", &misses)] {
        let mut i = 0usize;
        group.bench_function(name, |b| {
            b.iter(|| {
                i = (i + 1) & (QUERIES - 1);
                black_box(use_hit(&view, black_box(&queries[i])))
            })
        });
    }
    let mut i = 0usize;
    group.bench_function("hit-random-read-route", |b| {
        b.iter(|| {
            i = (i + 1) & (QUERIES - 1);
            black_box(use_hit_and_route(&view, black_box(&hits[i])))
        })
    });
    // Batches of 32, as a shard looks up a received batch; time per batch.
    let mut out = vec![None; 32];
    for (name, queries) in [("batch32-hit-random", &hits), ("batch32-miss-random", &misses)] {
        let mut i = 0usize;
        group.bench_function(name, |b| {
            b.iter(|| {
                i = (i + 32) & (QUERIES - 1);
                view.lookup_batch(black_box(&queries[i..i + 32]), &mut out);
                let mut sum = 0u32;
                for hit in out.iter().flatten() {
                    sum = sum.wrapping_add(hit.route_index).wrapping_add(u32::from(hit.link_index));
                }
                black_box(sum)
            })
        });
    }
    group.finish();
}

fn publishing<M: Measurement>(c: &mut Criterion<M>) {
    let (routes, links) = inputs();
    let base = tempfile::Builder::new()
        .prefix("mycelium-bench-")
        .tempdir_in(if std::path::Path::new("/dev/shm").is_dir() { "/dev/shm" } else { "/tmp" })
        .unwrap();
    let mut publisher = Publisher::create(ShmDir::new(base.path(), "bench").unwrap()).unwrap();
    let snap = build(routes.clone(), links.clone());
    let bytes = snap.to_bytes().unwrap();
    eprintln!("100k-route snapshot: {} bytes, {} index slots", bytes.len(), snap.index.slots.len());

    let mut group = c.benchmark_group("snapshot/publish-100k");
    group.sample_size(20);
    let input = || (routes.clone(), links.clone());
    // The routing engine keeps its table in a BTreeMap: already in order.
    let mut sorted = routes.clone();
    sorted.sort_by_key(|r| (u128::from_be_bytes(r.prefix), r.len));
    let sorted_input = || (sorted.clone(), links.clone());
    group.bench_function("build-shuffled", |b| b.iter_batched(input, |(r, l)| build(r, l), BatchSize::LargeInput));
    group.bench_function("build-sorted", |b| b.iter_batched(sorted_input, |(r, l)| build(r, l), BatchSize::LargeInput));
    group.bench_function("serialize", |b| b.iter(|| snap.to_bytes().unwrap()));
    group.bench_function("publish", |b| b.iter(|| publisher.publish(ROUTES, &bytes).unwrap()));
    // As the control daemon runs it: one serialization buffer kept across
    // generations.
    let mut buf = Some(AlignedVec::new());
    for (name, input) in [
        ("build+serialize+publish-shuffled", &input as &dyn Fn() -> _),
        ("build+serialize+publish-sorted", &sorted_input),
    ] {
        group.bench_function(name, |b| {
            b.iter_batched(
                input,
                |(r, l)| {
                    let bytes = build(r, l).to_bytes_in(buf.take().unwrap_or_default()).unwrap();
                    let generation = publisher.publish(ROUTES, &bytes).unwrap();
                    buf = Some(bytes);
                    generation
                },
                BatchSize::LargeInput,
            )
        });
    }
    group.bench_function("validate", |b| b.iter(|| SnapshotView::validate(black_box(&bytes)).unwrap().route_count()));

    let mut sub = Subscriber::<RouteChannel>::new(publisher.dir().clone());
    sub.poll().unwrap();
    group.bench_function("subscriber-poll-unchanged", |b| b.iter(|| black_box(sub.poll().unwrap())));
    group.finish();
}

fn run<M: Measurement>(mut c: Criterion<M>) {
    lookups(&mut c);
    publishing(&mut c);
    c.final_summary();
}

fn main() {
    if std::env::var_os("MYCELIUM_BENCH_WALL").is_some() {
        run(Criterion::default().configure_from_args());
    } else {
        run(Criterion::default().with_measurement(ThreadCpuTime).configure_from_args());
    }
}
