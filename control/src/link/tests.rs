//! Two links back to back on simulated time (see [`super::sim`]).

use std::time::Duration;

use mycelium_common::time::Timestamp;
use mycelium_common::wire::tlv::{ControlMessage, Hello, Ihu, METRIC_INFINITY, Probe, ProbeReport};

use super::sim::Sim;
use super::{Link, LinkClass, LinkConfig, LinkEvent, geo};
use crate::rng::Rng;

const MS: u64 = 1_000_000;
const SEC: u64 = 1_000 * MS;

fn sim(delay_ms: u64) -> Sim {
    Sim::new(LinkConfig::default(), LinkConfig::default(), Duration::from_millis(delay_ms), 7)
}

fn up_at(s: &Sim, node: usize, since: u64) -> Option<u64> {
    s.first_event(node, since, |e| *e == LinkEvent::Up)
}

fn down_at(s: &Sim, node: usize, since: u64) -> Option<u64> {
    s.first_event(node, since, |e| *e == LinkEvent::Down)
}

#[test]
fn two_links_come_up_within_a_fraction_of_a_second() {
    let mut s = sim(10);
    s.run_for(Duration::from_secs(2));
    let (a, b) = (up_at(&s, 0, 0).unwrap(), up_at(&s, 1, 0).unwrap());
    assert!(a < 300 * MS && b < 300 * MS, "up at {a} and {b} ns");
    assert!(s.links[0].is_up() && s.links[1].is_up());
    assert!(s.links[0].cost() < METRIC_INFINITY);
}

#[test]
fn rtt_converges_to_twice_the_one_way_delay_within_a_few_exchanges() {
    let mut s = sim(20);
    s.run_for(Duration::from_millis(400));
    let m = s.links[0].metrics();
    assert!(m.rtt_samples <= 6, "{} samples", m.rtt_samples);
    assert_eq!(m.rtt, Some(Duration::from_millis(40)));
    assert_eq!(s.links[1].metrics().rtt, Some(Duration::from_millis(40)));
    assert_eq!(m.rtt_jitter, Some(Duration::ZERO));
    assert_eq!(m.rtt_rejected, 0);
}

#[test]
fn rtt_with_jitter_settles_near_the_mean_and_reports_the_jitter() {
    let mut s = sim(20);
    for p in &mut s.pipes {
        p.jitter = Duration::from_millis(4);
    }
    s.traffic_bps = Some(1_000_000);
    s.run_for(Duration::from_secs(10));
    let m = s.links[0].metrics();
    // Mean one-way delay 22 ms: RTT ~44 ms.
    let rtt = m.rtt.unwrap().as_secs_f64() * 1000.0;
    assert!((41.0..47.0).contains(&rtt), "{rtt} ms");
    let jitter = m.rtt_jitter.unwrap();
    assert!(jitter > Duration::from_micros(300) && jitter < Duration::from_millis(4), "{jitter:?}");
}

#[test]
fn etx_with_10_percent_loss_each_way_is_about_1_over_0_81() {
    let mut s = sim(5);
    for p in &mut s.pipes {
        p.loss = 0.1;
    }
    s.traffic_bps = Some(1_000_000);
    s.run_for(Duration::from_secs(5));
    let (mut sum, mut n) = (0.0, 0.0);
    for _ in 0..300 {
        s.run_for(Duration::from_millis(500));
        sum += s.links[0].metrics().etx + s.links[1].metrics().etx;
        n += 2.0;
    }
    assert_eq!(down_at(&s, 0, 0), None);
    let etx = sum / n;
    let expected = 1.0 / (0.9 * 0.9);
    assert!((etx - expected).abs() / expected < 0.08, "mean etx {etx}, expected {expected}");
    let loss = s.links[0].metrics().loss_ratio;
    assert!((0.0..0.5).contains(&loss));
}

#[test]
fn an_active_link_is_declared_down_within_500_ms_of_the_neighbour_going_silent() {
    let mut s = sim(10);
    s.traffic_bps = Some(10_000_000);
    s.run_for(Duration::from_secs(3));
    assert_eq!(s.links[0].metrics().hello_interval, Duration::from_millis(50));
    assert_eq!(s.links[0].metrics().neighbour_hello_interval, Some(Duration::from_millis(50)));
    let silent = s.now;
    s.pipes[1].mute = true;
    s.run_for(Duration::from_secs(1));
    let down = down_at(&s, 0, silent).expect("link stayed up") - silent;
    assert!(down <= 500 * MS, "down after {} ms", down / MS);
    assert!(down >= 250 * MS, "down too early, after {} ms", down / MS);
    assert_eq!(s.links[0].cost(), METRIC_INFINITY);
    assert_eq!(s.links[0].smoothed_cost(), METRIC_INFINITY);
}

#[test]
fn an_active_link_stays_up_when_its_delay_jumps_by_200_ms() {
    // Regression: hellos held up longer than the hello timer (1.5
    // intervals) were counted as missed, and when they arrived they were
    // ignored as late, so a path that merely got slower went down.
    let mut s = sim(5);
    s.traffic_bps = Some(10_000_000);
    s.run_for(Duration::from_secs(3));
    let jump = s.now;
    s.pipes[0].delay = Duration::from_millis(200);
    s.pipes[1].delay = Duration::from_millis(200);
    s.run_for(Duration::from_secs(5));
    assert_eq!(down_at(&s, 0, jump), None, "node 0 kept the link up");
    assert_eq!(down_at(&s, 1, jump), None, "node 1 kept the link up");
    let rtt = s.links[0].metrics().rtt.unwrap();
    assert!(rtt > Duration::from_millis(350), "the RTT follows: {rtt:?}");
    assert!(s.links[0].metrics().loss_ratio < 0.01, "and the delayed hellos count as heard");
}

#[test]
fn an_idle_link_is_declared_down_much_more_slowly() {
    let mut s = sim(10);
    s.run_for(Duration::from_secs(30));
    assert_eq!(s.links[0].metrics().hello_interval, Duration::from_secs(4));
    let silent = s.now;
    s.pipes[1].mute = true;
    s.run_for(Duration::from_secs(30));
    let down = down_at(&s, 0, silent).expect("link stayed up") - silent;
    assert!((10 * SEC..=18 * SEC + 10 * MS).contains(&down), "down after {} ms", down / MS);
}

#[test]
fn a_lost_announcement_of_the_slow_interval_does_not_bring_the_link_down() {
    let mut s = sim(10);
    s.traffic_bps = Some(10_000_000);
    s.run_for(Duration::from_secs(3));
    // Drop the first hello that announces the idle interval, and its IHU.
    let mut dropped = 0;
    s.pipes[1].filter = Some(Box::new(move |m| match m {
        ControlMessage::Hello(h) if h.interval_cs == 400 && dropped == 0 => {
            dropped = 1;
            false
        }
        ControlMessage::Ihu(i) if i.interval_cs == 400 && dropped == 1 => {
            dropped = 2;
            false
        }
        _ => true,
    }));
    s.traffic_bps = None;
    let idle = s.now;
    s.run_for(Duration::from_secs(30));
    assert_eq!(s.links[0].metrics().neighbour_hello_interval, Some(Duration::from_secs(4)));
    assert_eq!(down_at(&s, 0, idle), None);
    assert_eq!(down_at(&s, 1, idle), None);
}

#[test]
fn a_link_comes_back_up_only_after_three_consecutive_hellos() {
    let mut s = sim(10);
    s.traffic_bps = Some(10_000_000);
    s.run_for(Duration::from_secs(3));
    s.pipes[1].mute = true;
    s.run_for(Duration::from_secs(2));
    assert!(!s.links[0].is_up() && !s.links[1].is_up());
    s.traffic_bps = None;
    s.pipes[1].mute = false;
    let before = s.pipes[1].hellos_delivered;
    let resumed = s.now;
    for _ in 0..2000 {
        s.run_for(Duration::from_millis(1));
        let heard = s.pipes[1].hellos_delivered - before;
        if heard < 3 {
            assert!(!s.links[0].is_up(), "up after only {heard} hellos");
        }
        if s.links[0].is_up() {
            assert_eq!(heard, 3);
            break;
        }
    }
    let up = up_at(&s, 0, resumed).expect("never came back") - resumed;
    assert!(up < 500 * MS, "back up after {} ms", up / MS);
}

#[test]
fn a_flapping_neighbour_never_comes_back_up() {
    let mut s = sim(10);
    s.run_for(Duration::from_secs(2));
    s.pipes[1].mute = true;
    s.run_for(Duration::from_secs(40));
    assert!(!s.links[0].is_up() && !s.links[1].is_up());
    // Every third hello of the neighbour is lost.
    let mut n = 0u32;
    s.pipes[1].filter = Some(Box::new(move |m| {
        if matches!(m, ControlMessage::Hello(_)) {
            n += 1;
            !n.is_multiple_of(3)
        } else {
            true
        }
    }));
    s.pipes[1].mute = false;
    let resumed = s.now;
    s.run_for(Duration::from_secs(20));
    assert!(s.pipes[1].hellos_delivered > 100);
    assert_eq!(up_at(&s, 0, resumed), None);
    // Nor does the side that hears well: it gets no IHU from an unproven link.
    assert_eq!(up_at(&s, 1, resumed), None);
}

fn probed(rate_bps: u64, config: LinkConfig) -> Sim {
    let mut s = Sim::new(config.clone(), config, Duration::from_millis(10), 11);
    for p in &mut s.pipes {
        p.rate_bps = Some(rate_bps);
    }
    s
}

#[test]
fn probe_trains_measure_a_10_mbit_bottleneck_within_20_percent() {
    let mut s = probed(10_000_000, LinkConfig::default());
    s.run_for(Duration::from_secs(5));
    let m = s.links[0].metrics();
    let bps = m.active_bps.expect("no estimate") as f64;
    assert!((bps - 10e6).abs() / 10e6 < 0.2, "{bps} bit/s");
    assert_eq!(m.capacity_bps, m.active_bps.unwrap());
    assert_eq!(m.probe_trains_sent, 1);
    // The slow link costs more than the 1 Gbit/s prior made it look.
    let unprobed = Sim::new(LinkConfig::default(), LinkConfig::default(), Duration::from_millis(10), 11);
    let mut unprobed = unprobed;
    unprobed.run_for(Duration::from_millis(200));
    assert!(unprobed.links[0].is_up());
    assert!(s.links[0].cost() > unprobed.links[0].cost() + 400);
}

#[test]
fn probing_never_uses_more_than_its_share_of_the_capacity() {
    let config = LinkConfig {
        probe_refresh: Duration::ZERO, // always stale: probe as often as allowed
        capacity_prior_bps: Some(10_000_000),
        ..LinkConfig::default()
    };
    let mut s = probed(10_000_000, config);
    s.run_for(Duration::from_secs(120));
    let sent = &s.pipes[0].probes_sent;
    let share_bits = 0.01 * 10e6;
    let train_bits = 10.0 * 1200.0 * 8.0;
    for &(start, _) in sent {
        let window = 10 * SEC;
        let bits: f64 =
            sent.iter().filter(|(t, _)| (start..start + window).contains(t)).map(|(_, b)| *b as f64 * 8.0).sum();
        assert!(bits <= share_bits * 10.0 + train_bits, "{bits} bits in 10 s from {start}");
    }
    let total: f64 = sent.iter().map(|(_, b)| *b as f64 * 8.0).sum();
    assert!(total / 120.0 > share_bits * 0.5, "probing too little to test the limit: {} bit/s", total / 120.0);
}

#[test]
fn probing_waits_while_the_link_carries_traffic() {
    let config = LinkConfig { probe_refresh: Duration::from_secs(2), ..LinkConfig::default() };
    let mut s = probed(10_000_000, config);
    s.traffic_bps = Some(2_000_000);
    s.run_for(Duration::from_secs(1));
    let trains = s.links[0].metrics().probe_trains_sent;
    s.run_for(Duration::from_secs(9));
    let m = s.links[0].metrics();
    assert_eq!(m.probe_trains_sent, trains);
    assert_eq!(m.passive_bps, Some(2_000_000));
    assert!(m.active);
    s.traffic_bps = None;
    s.run_for(Duration::from_secs(5));
    assert!(!s.links[0].metrics().active);
    assert!(s.links[0].metrics().probe_trains_sent > trains);
}

fn paris_new_york() -> (LinkConfig, LinkConfig) {
    let paris = LinkConfig { local_position: Some(geo::from_degrees(48.8566, 2.3522)), ..LinkConfig::default() };
    let new_york = LinkConfig { local_position: Some(geo::from_degrees(40.7128, -74.0060)), ..LinkConfig::default() };
    (paris, new_york)
}

#[test]
fn the_geo_prior_gives_about_58_ms_from_paris_to_new_york_before_any_measurement() {
    let (paris, new_york) = paris_new_york();
    let now = Timestamp::from_nanos(SEC);
    let mut link = Link::new(now, paris);
    let hello = Hello { unicast: true, seqno: 1, interval_cs: 5, timestamp_us: 77, position: new_york.local_position };
    link.handle_hello(now, &hello);
    let m = link.metrics();
    let prior = m.rtt_prior.unwrap();
    assert!((Duration::from_millis(57)..Duration::from_millis(59)).contains(&prior), "{prior:?}");
    assert_eq!(m.rtt, None);
    assert_eq!(m.rtt_for_cost, prior);
}

#[test]
fn a_10_ms_rtt_between_paris_and_new_york_is_flagged_implausible_and_not_trusted() {
    let (paris, new_york) = paris_new_york();
    let mut s = Sim::new(paris, new_york, Duration::from_millis(5), 3);
    s.run_for(Duration::from_secs(1));
    let m = s.links[0].metrics();
    assert_eq!(m.rtt, Some(Duration::from_millis(10)));
    assert!(m.implausible);
    assert_eq!(m.rtt_for_cost, m.rtt_prior.unwrap());
    let flagged = s.events.iter().filter(|(_, n, e)| *n == 0 && matches!(e, LinkEvent::Implausible { .. })).count();
    assert_eq!(flagged, 1);
    // A plausible 70 ms is trusted.
    let (paris, new_york) = paris_new_york();
    let mut s = Sim::new(paris, new_york, Duration::from_millis(35), 3);
    s.run_for(Duration::from_secs(1));
    let m = s.links[0].metrics();
    assert!(!m.implausible);
    assert_eq!(m.rtt_for_cost, Duration::from_millis(70));
}

#[test]
fn measured_latency_and_class_order_the_costs_of_real_links() {
    let run = |delay_ms, class: LinkClass| {
        let config = LinkConfig { class, capacity_prior_bps: Some(1_000_000_000), ..LinkConfig::default() };
        let mut s = Sim::new(config.clone(), config, Duration::from_millis(delay_ms), 5);
        s.run_for(Duration::from_secs(2));
        u32::from(s.links[0].cost())
    };
    let fiber = run(5, LinkClass::Fiber);
    let satellite = run(300, LinkClass::Satellite);
    assert!(3 * fiber < satellite, "3 x {fiber} vs {satellite}");
    let custom = run(5, LinkClass::Custom { name: "radio".into(), bias: 500 });
    assert_eq!(custom, fiber + 500);
}

#[test]
fn the_smoothed_cost_lags_a_jump_in_the_current_cost() {
    let mut s = sim(5);
    s.traffic_bps = Some(1_000_000);
    s.run_for(Duration::from_secs(20));
    let before = s.links[0].cost();
    assert_eq!(s.links[0].smoothed_cost(), before);
    let changed = s.now;
    for p in &mut s.pipes {
        p.delay = Duration::from_millis(100);
    }
    s.run_for(Duration::from_secs(1));
    let jump = s.events.iter().find_map(|(t, n, e)| match e {
        LinkEvent::CostChanged { cost, smoothed } if *n == 0 && *t >= changed && *cost > before + 1000 => {
            Some((*cost, *smoothed))
        }
        _ => None,
    });
    let (cost, smoothed) = jump.expect("cost did not follow the latency");
    assert!(smoothed < before + (cost - before) / 4, "{before} -> {smoothed} -> {cost}");
    s.run_for(Duration::from_secs(40));
    let (cost, smoothed) = (s.links[0].cost(), s.links[0].smoothed_cost());
    assert!(cost > 2000 && cost.abs_diff(smoothed) <= cost / 100, "{cost} vs {smoothed}");
    let last = s.events.iter().rev().find_map(|(_, n, e)| match e {
        LinkEvent::CostChanged { cost, smoothed } if *n == 0 => Some((*cost, *smoothed)),
        _ => None,
    });
    assert_eq!(last, Some((cost, smoothed)));
}

#[test]
fn hostile_or_garbled_messages_never_panic_and_time_always_advances() {
    let mut rng = Rng::new(99);
    let mut link = Link::new(Timestamp::from_nanos(5), LinkConfig::default());
    let mut now = Timestamp::from_nanos(5);
    for _ in 0..20_000 {
        now = now + Duration::from_micros(rng.next_u64() % 100_000);
        let r = rng.next_u64();
        let any = |rng: &mut Rng| {
            if rng.next_u64().is_multiple_of(4) {
                u64::MAX - rng.next_u64() % 3
            } else {
                rng.next_u64() % 1_000_000_000
            }
        };
        match r % 5 {
            0 => link.handle_hello(
                now,
                &Hello {
                    unicast: r & 8 != 0,
                    seqno: (rng.next_u64() % 40) as u16,
                    interval_cs: ((rng.next_u64() % 3) as u16).wrapping_mul(rng.next_u64() as u16),
                    timestamp_us: any(&mut rng),
                    position: Some(mycelium_common::wire::tlv::GeoPosition {
                        lat_e7: rng.next_u64() as i32,
                        lon_e7: rng.next_u64() as i32,
                    }),
                },
            ),
            1 => link.handle_ihu(
                now,
                &Ihu {
                    rxcost: rng.next_u64() as u16,
                    interval_cs: rng.next_u64() as u16,
                    origin_us: any(&mut rng),
                    receive_us: any(&mut rng),
                    transmit_us: any(&mut rng),
                },
            ),
            2 => link.handle_probe(
                now,
                &Probe {
                    train_id: (rng.next_u64() % 3) as u32,
                    index: rng.next_u64() as u16,
                    count: rng.next_u64() as u16,
                    sent_us: any(&mut rng),
                    padding: rng.next_u64() as u16,
                },
                rng.next_u64() as usize,
            ),
            3 => link.handle_probe_report(
                now,
                &ProbeReport {
                    train_id: (rng.next_u64() % 3) as u32,
                    received: rng.next_u64() as u16,
                    first_us: any(&mut rng),
                    last_us: any(&mut rng),
                    bytes: rng.next_u64() as u32,
                },
            ),
            _ => link.handle_traffic(now, any(&mut rng), any(&mut rng)),
        }
        if link.poll_timeout() <= now {
            link.handle_timeout(now);
        }
        while link.poll_transmit(now).is_some() {}
        while link.poll_event().is_some() {}
        assert!(link.poll_timeout() > now, "deadline {:?} not after {:?}", link.poll_timeout(), now);
        let _ = link.metrics();
    }
}

/// Times of the hellos a lone link sends between `from` and `to` (ms),
/// stepping its timers every millisecond.
fn hello_times(link: &mut Link, from: u64, to: u64) -> Vec<u64> {
    let mut times = Vec::new();
    for ms in from..to {
        let now = Timestamp::from_nanos(ms * 1_000_000);
        if now >= link.poll_timeout() {
            link.handle_timeout(now);
        }
        while let Some(m) = link.poll_transmit(now) {
            if matches!(m, ControlMessage::Hello(_)) {
                times.push(ms);
            }
        }
    }
    times
}

#[test]
fn new_keys_bring_fast_hellos_for_a_while_so_a_restarted_neighbour_proves_us_quickly() {
    let mut link = Link::new(Timestamp::from_nanos(0), LinkConfig::default());
    assert_eq!(hello_times(&mut link, 0, 10_000).len(), 3, "idle: a hello every 4 s");
    link.handle_new_keys(Timestamp::from_nanos(10_000 * 1_000_000));
    let fast = hello_times(&mut link, 10_000, 12_000);
    assert_eq!(fast.first(), Some(&10_000), "the first fast hello goes at once");
    assert!(fast.len() >= 35, "hellos every 50 ms for 2 s: {}", fast.len());
    let later = hello_times(&mut link, 12_500, 30_000);
    assert!(later.len() <= 8, "back to the idle pace: {later:?}");
}
