//! Random meshes of 100 and 1,000 nodes: convergence, CPU time and memory
//! of the engines, node failure and partition healing. Loop freedom is
//! checked after every event (the simulator panics otherwise).
//!
//! The 1,000-node test is ignored in debug builds (it takes minutes
//! unoptimised); run it with
//! `cargo test -p mycelium-tools --release --test sim_scale -- --nocapture`.

mod support;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};
use std::time::{Duration, Instant};

use mycelium_tools::sim::{Sim, SimConfig, Topology};
use support::*;

/// Counts live heap bytes, to measure what the routers hold.
struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

// Safety: forwards to the system allocator and only adds a counter.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        // Safety: the caller upholds `alloc`'s contract, passed on unchanged.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        // Safety: `ptr` came from `alloc` above with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Converges a random mesh and prints the figures; returns the simulation.
/// With `traffic`, every link carries data (fast hellos, failure detection
/// in 300 ms); without, links are idle (4 s hellos, 14 s to notice silence).
fn converge(n: usize, degree: usize, seed: u64, traffic: bool) -> Sim {
    let mut topology = Topology::random_mesh(n, degree, 30, seed);
    if traffic {
        for l in &mut topology.links {
            l.props.traffic_bps = Some(10_000_000);
        }
    }
    let avg = topology.average_degree();
    assert!((4.0..=8.0).contains(&avg), "average degree {avg}");
    let mut sim = Sim::new(topology, SimConfig { seed, ..SimConfig::default() });
    let wall = Instant::now();
    let reach = sim.run_until_condition(ms(100), secs(120), |s| s.all_pairs_reachable()).expect("converged");
    // Then let it settle (metrics, holds, smoothing), counting the route
    // changes of the second half.
    sim.run_for(secs(10));
    sim.reset_route_changes();
    sim.run_for(secs(10));
    let late: u64 =
        (0..n).flat_map(|i| (0..n).map(move |j| (i, j))).map(|(i, j)| u64::from(sim.route_changes(i, j))).sum();
    assert!(sim.all_pairs_reachable());
    let settled = sim.last_route_change.as_nanos().saturating_sub(1_000_000_000);
    let cpu: Duration = sim.nodes().iter().map(|n| n.engine_cpu).sum();
    println!(
        "{n} nodes, average degree {avg:.1}: all pairs reachable after {reach:?} simulated, last route change at {:?}; \
         {late} route changes (of {} node pairs) in its last 10 s; {} events, wall {:?}; \
         engine CPU {:?} per node ({:?} in all); {} loop checks",
        Duration::from_nanos(settled),
        n * (n - 1),
        sim.events,
        wall.elapsed(),
        cpu / n as u32,
        cpu,
        sim.loop_checks
    );
    sim
}

fn report_memory(sim: Sim) {
    let n = sim.nodes().len();
    let (routes, sources): (usize, usize) =
        sim.nodes().iter().map(|n| n.router.sizes()).fold((0, 0), |a, b| (a.0 + b.0, a.1 + b.1));
    let routers = sim.into_routers();
    let with = LIVE.load(Ordering::Relaxed);
    drop(routers);
    let without = LIVE.load(Ordering::Relaxed);
    println!(
        "{n} nodes: engine memory {} KiB per node; {} routes and {} sources stored per node",
        (with - without) / n as isize / 1024,
        routes / n,
        sources / n
    );
}

#[test]
fn a_random_mesh_of_100_nodes_converges_with_all_pairs_reachable() {
    let mut sim = converge(100, 6, 100, false);
    sim.check_all_loops();
    report_memory(sim);
}

#[test]
#[cfg_attr(debug_assertions, ignore = "minutes unoptimised: run with --release")]
fn a_random_mesh_of_1000_nodes_converges_with_all_pairs_reachable() {
    let mut sim = converge(1000, 6, 1000, false);
    sim.check_all_loops();
    report_memory(sim);
}

#[test]
fn a_failed_node_is_routed_around_and_forgotten() {
    failed_node(false);
    failed_node(true);
}

fn failed_node(traffic: bool) {
    let mut sim = converge(100, 5, 7, traffic);
    // Fail the node that carries the most routes: its neighbours' links.
    let victim = (0..100).max_by_key(|&i| sim.links().iter().filter(|l| l.a == i || l.b == i).count()).unwrap();
    let prefix = sim.node(victim).router.local_prefix();
    sim.fail_node(victim);
    let start = sim.elapsed();
    let reach = sim.run_until_condition(ms(50), start + secs(60), |s| s.all_pairs_reachable()).expect("reconverged");
    let gone = sim
        .run_until_condition(ms(100), start + secs(120), |s| {
            (0..100).filter(|&i| i != victim).all(|i| s.node(i).router.selected_next_hop(&prefix).is_none())
        })
        .expect("the failed node's prefix is forgotten");
    println!(
        "node failure (links {}): live pairs reachable again after {:?}; failed node's prefix gone everywhere after {:?}",
        if traffic { "carrying data" } else { "idle" },
        reach - start,
        gone - start
    );
    sim.check_all_loops();
}

#[test]
fn a_partition_that_heals_reconverges() {
    let mut sim = converge(100, 5, 8, false);
    let cut: Vec<usize> =
        (0..sim.links().len()).filter(|&l| (sim.links()[l].a < 50) != (sim.links()[l].b < 50)).collect();
    for &l in &cut {
        sim.set_link_up(l, false);
    }
    let start = sim.elapsed();
    let split = sim
        .run_until_condition(ms(100), start + secs(120), |s| {
            (0..100).all(|i| (0..100).filter(|&j| (i < 50) != (j < 50)).all(|j| s.next_link(i, j).is_none()))
        })
        .expect("routes across the cut vanish");
    assert!(!sim.all_pairs_reachable());
    for &l in &cut {
        sim.set_link_up(l, true);
    }
    let healed_at = sim.elapsed();
    let healed = sim.run_until_condition(ms(50), healed_at + secs(60), |s| s.all_pairs_reachable()).expect("healed");
    println!(
        "partition of {} links: routes across it gone after {:?}; all pairs reachable {:?} after healing",
        cut.len(),
        split - start,
        healed - healed_at
    );
    sim.check_all_loops();
}
