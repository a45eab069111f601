//! Path choice, hijack and route table snapshots in the simulator. Loop
//! freedom is checked after every event of every run (the simulator panics
//! otherwise).

mod support;

use mycelium_common::wire::tlv::{ControlMessage, Update};
use mycelium_control::link::LinkClass;
use mycelium_tools::sim::{LinkProps, Loss, Sim, SimConfig, Topology};
use support::*;

fn converged(topology: Topology, seed: u64, run: std::time::Duration) -> Sim {
    let mut sim = Sim::new(topology, SimConfig { seed, ..SimConfig::default() });
    sim.run_until(run);
    assert!(sim.all_pairs_reachable());
    sim.check_all_loops();
    sim
}

#[test]
fn two_fibre_hops_of_10_ms_beat_one_satellite_hop_of_600_ms() {
    let mut t = Topology::new(3);
    t.link(0, 2, fiber(600).class(LinkClass::Satellite)); // one-way latency 600 ms
    t.link(0, 1, fiber(10));
    t.link(1, 2, fiber(10));
    let sim = converged(t, 1, secs(30));
    assert_eq!(sim.path(0, 2), Some(vec![0, 1, 2]));
    assert_eq!(sim.path(2, 0), Some(vec![2, 1, 0]));
}

#[test]
fn a_clean_link_beats_a_link_with_5_percent_loss_at_two_thirds_of_its_latency() {
    // Both carry data, so hellos go at the fast pace and the 16-hello loss
    // window fills in about a second (an idle link takes a minute).
    let mut t = Topology::new(2);
    t.link(0, 1, fiber(20).loss(Loss::Random(0.05)).traffic(10_000_000));
    let clean = t.link(0, 1, fiber(30).traffic(10_000_000));
    let sim = converged(t, 2, secs(30));
    assert_eq!(sim.next_link(0, 1), Some(clean));
    assert_eq!(sim.next_link(1, 0), Some(clean));
}

#[test]
fn a_1_gbit_link_beats_a_10_mbit_link_of_the_same_latency() {
    let mut t = Topology::new(2);
    t.link(0, 1, fiber(10).bandwidth(10_000_000));
    let fast = t.link(0, 1, fiber(10).bandwidth(1_000_000_000));
    let sim = converged(t, 3, secs(30));
    assert_eq!(sim.next_link(0, 1), Some(fast));
    assert_eq!(sim.next_link(1, 0), Some(fast));
}

#[test]
fn bursty_gilbert_elliott_loss_does_not_break_convergence() {
    let bursty = Loss::GilbertElliott { p: 0.02, r: 0.3, k: 0.0, h: 0.7 };
    let mut t = Topology::square(fiber(10).loss(bursty));
    t.link(0, 2, fiber(15).loss(bursty));
    let sim = converged(t, 4, secs(60));
    assert!(sim.loop_checks > 0);
}

#[test]
fn a_node_announcing_a_prefix_it_does_not_own_is_ignored_by_every_other_node() {
    // Line n0 - n1 - n2 - n3 - n4; n4 claims n0's prefix with its own key,
    // at metric 0, to both directions of its only link and keeps doing so.
    let t = Topology::line(5, fiber(10));
    let mut sim = Sim::new(t, SimConfig::default());
    sim.run_until(secs(5));
    let victim = sim.node(0).router.local_prefix();
    let thief = sim.node(4).key;
    let forged = ControlMessage::Update(Update {
        plen: 64,
        interval_cs: 400,
        seqno: 1000,
        metric: 0,
        router_id: thief,
        prefix: victim.prefix(),
    });
    for _ in 0..10 {
        sim.inject(3, 3, forged);
        sim.run_for(ms(500));
    }
    sim.run_for(secs(10));
    assert!(sim.hijacks_ignored >= 10);
    for i in 1..5 {
        assert_eq!(sim.path(i, 0), Some((0..=i).rev().collect::<Vec<_>>()), "node {i}");
        let entry = sim.route_table(i);
        let e = entry.get(&victim).expect("route to the victim");
        assert_eq!(e.selected.router_id, sim.node(0).key);
        assert!(e.fallbacks.iter().all(|f| f.router_id == sim.node(0).key));
    }
}

#[test]
fn square_route_tables_match_the_snapshot() {
    let mut t = Topology::square(fiber(10));
    t.link(0, 2, fiber(25));
    let sim = converged(t, 11, secs(30));
    insta::assert_snapshot!(render_tables(&sim));
}

#[test]
fn line_route_tables_match_the_snapshot() {
    let sim = converged(Topology::line(4, fiber(5)), 12, secs(30));
    insta::assert_snapshot!(render_tables(&sim));
}

#[test]
fn mixed_link_route_tables_match_the_snapshot() {
    let mut t = Topology::new(5);
    t.link(0, 1, fiber(10));
    t.link(1, 2, fiber(10).bandwidth(10_000_000));
    t.link(0, 2, fiber(300));
    t.link(2, 3, fiber(5).loss(Loss::Random(0.05)));
    t.link(1, 3, LinkProps::with_delay(ms(20)));
    t.link(3, 4, fiber(2));
    let sim = converged(t, 13, secs(30));
    insta::assert_snapshot!(render_tables(&sim));
}

#[test]
fn the_same_seed_gives_the_same_run() {
    let run = || {
        let mut sim = Sim::new(Topology::random_mesh(30, 5, 20, 99), SimConfig { seed: 5, ..SimConfig::default() });
        sim.run_until(secs(10));
        (render_tables(&sim), sim.events)
    };
    assert_eq!(run(), run());
}

#[test]
fn a_thief_with_several_neighbours_cannot_pull_any_of_them_towards_a_prefix_it_does_not_own() {
    // Square n0-n1-n2-n3-n0 plus n2-n0; n2 (three neighbours) claims n0's
    // prefix under its own key on every link, again and again.
    let mut t = Topology::square(fiber(10));
    t.link(2, 0, fiber(40));
    let mut sim = Sim::new(t, SimConfig::default());
    sim.run_until(secs(5));
    let victim = sim.node(0).router.local_prefix();
    let forged = ControlMessage::Update(Update {
        plen: 64,
        interval_cs: 400,
        seqno: 7,
        metric: 0,
        router_id: sim.node(2).key,
        prefix: victim.prefix(),
    });
    let thief_links: Vec<(usize, usize)> =
        sim.links().iter().enumerate().filter(|(_, l)| l.a == 2 || l.b == 2).map(|(i, l)| (l.other(2), i)).collect();
    for _ in 0..10 {
        for &(node, link) in &thief_links {
            sim.inject(node, link, forged);
        }
        sim.run_for(ms(500));
    }
    assert!(sim.hijacks_ignored >= 30);
    for i in 1..4 {
        let path = sim.path(i, 0).expect("route to n0");
        assert_eq!(path.last(), Some(&0));
        let e = sim.route_table(i).get(&victim).cloned().expect("entry");
        assert_eq!(e.selected.router_id, sim.node(0).key, "node {i}");
    }
}
