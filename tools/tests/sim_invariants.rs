//! The loop-freedom checker itself, and a churn scenario that exercises it:
//! links failing and returning at random, bursty loss and jitter, with the
//! invariant checked after every single event.

mod support;

use mycelium_common::wire::tlv::{ControlMessage, Update};
use mycelium_control::link::LinkClass;
use mycelium_tools::sim::rng::Rng;
use mycelium_tools::sim::{Loss, Sim, SimConfig, Topology};
use support::*;

#[test]
#[should_panic(expected = "routing loop")]
fn the_checker_catches_a_loop_made_from_a_forged_update() {
    // A square n0 - n1 - n3 - n0 of fiber, and n1 - n2 over satellite. A
    // forged update "from n1" makes n0 route to n2 through n1 with a fresh
    // seqno. Split horizon keeps n0 from offering it back to n1, but n0
    // passes it on to n3, n3 to n1, and n1 finds it much better than its
    // satellite hop: n1 -> n3 -> n0 -> n1. Only forged state can do this,
    // and the checker must see it.
    let mut t = Topology::new(4);
    t.link(0, 1, fiber(10));
    t.link(1, 2, fiber(300).class(LinkClass::Satellite));
    t.link(0, 3, fiber(10));
    t.link(3, 1, fiber(10));
    let mut sim = Sim::new(t, SimConfig::default());
    sim.run_until(secs(10));
    let target = sim.node(2).key;
    let forged = ControlMessage::Update(Update {
        plen: 64,
        interval_cs: 400,
        seqno: 100,
        metric: 5,
        router_id: target,
        prefix: target.address().subnet().prefix(),
    });
    sim.inject(0, 0, forged);
    sim.run_for(secs(10));
}

#[test]
fn loop_freedom_holds_after_every_event_while_links_fail_and_return_at_random() {
    let mut t = Topology::random_mesh(24, 5, 25, 77);
    let mut rng = Rng::new(77);
    for l in &mut t.links {
        l.props.jitter = 0.2;
        l.props.traffic_bps = Some(20_000_000);
        if rng.chance(0.3) {
            l.props.loss = Loss::GilbertElliott { p: 0.02, r: 0.3, k: 0.0, h: 0.6 };
        }
        // Each link fails a few times in the first minute, for 0.2 to 5 s.
        let mut at = 5_000 + rng.next_u64() % 10_000;
        while at < 60_000 {
            let down_for = 200 + rng.next_u64() % 4_800;
            l.props.schedule.push((ms(at), false));
            l.props.schedule.push((ms(at + down_for), true));
            at += down_for + 5_000 + rng.next_u64() % 30_000;
        }
    }
    let mut sim = Sim::new(t, SimConfig { seed: 77, ..SimConfig::default() });
    sim.run_until(secs(70));
    println!("churn: {} events, {} loop checks after route changes", sim.events, sim.loop_checks);
    assert!(sim.loop_checks > 500, "the churn should have moved routes: {}", sim.loop_checks);
    // The bursty links keep losing runs of hellos after the schedule ends, so
    // fast failure detection keeps taking one down now and then: ask for a
    // moment of full reachability, not for reachability at a fixed instant.
    let healed = sim.run_until_condition(ms(100), secs(130), Sim::all_pairs_reachable);
    assert!(healed.is_some(), "all pairs reachable again within 60 s of the last scheduled failure");
    sim.check_all_loops();
}
