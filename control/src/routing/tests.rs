//! Engine tests driven message by message (the simulator in `mycelium-tools`
//! covers whole meshes).

use std::time::Duration;

use mycelium_common::identity::PublicKey;
use mycelium_common::time::Timestamp;
use mycelium_common::wire::tlv::{ControlMessage, METRIC_INFINITY, SeqnoRequest, Update};

use super::*;

fn key(n: u8) -> PublicKey {
    PublicKey::from_bytes([n; 32])
}

fn t(ms: u64) -> Timestamp {
    Timestamp::from_nanos(1_000_000_000 + ms * 1_000_000)
}

fn drain(r: &mut Router) -> Vec<Transmit> {
    std::iter::from_fn(|| r.poll_transmit()).collect()
}

fn update_for(origin: PublicKey, seqno: u16, metric: u16) -> ControlMessage {
    let prefix = origin.address().subnet();
    ControlMessage::Update(Update {
        plen: 64,
        interval_cs: 400,
        seqno,
        metric,
        router_id: origin,
        prefix: prefix.prefix(),
    })
}

#[test]
fn a_new_neighbour_gets_the_local_route_at_once() {
    let mut r = Router::new(t(0), key(1), RouterConfig::default());
    r.handle_neighbour(t(0), LinkId(7), key(2), 10, 10);
    let out = drain(&mut r);
    let own = key(1).address().subnet();
    assert!(out.iter().any(|tx| tx.to == Destination::Link(LinkId(7))
        && matches!(tx.msg, ControlMessage::Update(u) if u.prefix == own.prefix() && u.plen == 64 && u.metric == 0 && u.router_id == key(1))));
}

#[test]
fn an_update_from_a_key_that_does_not_own_the_prefix_is_ignored() {
    let mut r = Router::new(t(0), key(1), RouterConfig::default());
    r.handle_neighbour(t(0), LinkId(0), key(2), 10, 10);
    drain(&mut r);
    let victim = key(3).address().subnet();
    let forged = ControlMessage::Update(Update {
        plen: 64,
        interval_cs: 400,
        seqno: 1,
        metric: 0,
        router_id: key(2),
        prefix: victim.prefix(),
    });
    r.handle_message(t(1), LinkId(0), &forged);
    assert!(r.selected_next_hop(&victim).is_none());
    assert_eq!(r.stats().hijacks_ignored, 1);
    assert!(matches!(r.poll_event(), Some(RouterEvent::HijackIgnored { .. })));
    assert!(r.poll_route_table().is_none());
}

#[test]
fn a_feasible_update_installs_a_route_and_is_propagated() {
    let mut r = Router::new(t(0), key(1), RouterConfig::default());
    r.handle_neighbour(t(0), LinkId(0), key(2), 10, 12);
    drain(&mut r);
    r.handle_message(t(1), LinkId(0), &update_for(key(2), 5, 0));
    let table = r.poll_route_table().expect("selected routes changed");
    assert_eq!(table.entries.len(), 1);
    let e = &table.entries[0];
    assert_eq!(
        (e.selected.link, e.selected.metric, e.selected.smoothed_metric, e.selected.seqno),
        (LinkId(0), 10, 12, 5)
    );
    let out = drain(&mut r);
    assert!(out.iter().any(|tx| tx.to == Destination::AllLinks
        && matches!(tx.msg, ControlMessage::Update(u) if u.router_id == key(2) && u.metric == 10 && u.seqno == 5)));
    assert!(r.poll_route_table().is_none());
}

#[test]
fn losing_the_only_route_sends_a_retraction_and_a_seqno_request() {
    let mut r = Router::new(t(0), key(1), RouterConfig::default());
    r.handle_neighbour(t(0), LinkId(0), key(2), 10, 10);
    r.handle_message(t(1), LinkId(0), &update_for(key(2), 5, 0));
    drain(&mut r);
    r.handle_message(t(2), LinkId(0), &update_for(key(2), 5, METRIC_INFINITY));
    assert!(r.selected_next_hop(&key(2).address().subnet()).is_none());
    let out = drain(&mut r);
    assert!(out.iter().any(|tx| matches!(tx.msg, ControlMessage::Update(u) if u.metric == METRIC_INFINITY)));
    assert!(
        out.iter().any(|tx| matches!(tx.msg, ControlMessage::SeqnoRequest(q) if q.seqno == 6 && q.router_id == key(2)))
    );
}

#[test]
fn an_unfeasible_update_is_not_selected_until_the_seqno_moves_on() {
    let mut r = Router::new(t(0), key(1), RouterConfig::default());
    r.handle_neighbour(t(0), LinkId(0), key(2), 10, 10);
    r.handle_neighbour(t(0), LinkId(1), key(3), 10, 10);
    r.handle_message(t(1), LinkId(0), &update_for(key(9), 5, 20));
    drain(&mut r);
    // Advertised 30 for seqno 5; link 1 offers 30 too: not strictly better.
    r.handle_message(t(2), LinkId(0), &update_for(key(9), 5, METRIC_INFINITY));
    r.handle_message(t(2), LinkId(1), &update_for(key(9), 5, 30));
    assert!(r.selected_next_hop(&key(9).address().subnet()).is_none());
    r.handle_message(t(3), LinkId(1), &update_for(key(9), 6, 30));
    assert_eq!(r.selected_next_hop(&key(9).address().subnet()), Some((LinkId(1), key(3))));
}

#[test]
fn an_unfeasible_metric_increase_on_the_selected_route_keeps_it_while_a_newer_seqno_is_requested() {
    let mut r = Router::new(t(0), key(1), RouterConfig::default());
    r.handle_neighbour(t(0), LinkId(0), key(2), 10, 10);
    r.handle_message(t(1), LinkId(0), &update_for(key(9), 5, 20));
    drain(&mut r);
    let prefix = key(9).address().subnet();
    // We advertised 30 for seqno 5; the neighbour's metric grows to 40.
    r.handle_message(t(2), LinkId(0), &update_for(key(9), 5, 40));
    assert_eq!(r.selected_next_hop(&prefix), Some((LinkId(0), key(2))), "no starvation meanwhile");
    assert_eq!(r.selected_route(&prefix).map(|s| s.metric), Some(30), "on the last feasible values");
    let sent = drain(&mut r);
    let asked = sent.iter().any(|t| {
        t.to == Destination::Link(LinkId(0))
            && matches!(t.msg, ControlMessage::SeqnoRequest(SeqnoRequest { seqno: 6, .. }))
    });
    assert!(asked, "a seqno request goes to the neighbour: {sent:?}");
    assert!(!sent.iter().any(|t| matches!(&t.msg, ControlMessage::Update(u) if u.metric == METRIC_INFINITY)));
    // The newer seqno brings the real metric.
    r.handle_message(t(3), LinkId(0), &update_for(key(9), 6, 40));
    assert_eq!(r.selected_route(&prefix).map(|s| s.metric), Some(50));
}

#[test]
fn a_seqno_request_for_the_local_route_raises_the_seqno() {
    let mut r = Router::new(t(0), key(1), RouterConfig::default());
    r.handle_neighbour(t(0), LinkId(0), key(2), 10, 10);
    drain(&mut r);
    let own = key(1).address().subnet();
    let req = SeqnoRequest { plen: 64, seqno: 3, hop_count: 10, router_id: key(1), prefix: own.prefix() };
    r.handle_message(t(1), LinkId(0), &ControlMessage::SeqnoRequest(req));
    assert_eq!(r.seqno(), 3);
    assert!(
        drain(&mut r).iter().any(|tx| matches!(tx.msg, ControlMessage::Update(u) if u.seqno == 3 && u.metric == 0))
    );
}

#[test]
fn routes_expire_when_not_refreshed() {
    let cfg = RouterConfig::default();
    let mut r = Router::new(t(0), key(1), cfg);
    r.handle_neighbour(t(0), LinkId(0), key(2), 10, 10);
    r.handle_message(t(0), LinkId(0), &update_for(key(2), 1, 0));
    let prefix = key(2).address().subnet();
    assert!(r.selected_next_hop(&prefix).is_some());
    let mut now = t(0);
    let end = t(0) + cfg.expiry(400) + Duration::from_secs(2);
    while now < end {
        now = r.poll_timeout().max(now);
        r.handle_timeout(now);
        drain(&mut r);
    }
    assert!(r.selected_next_hop(&prefix).is_none());
}

#[test]
fn malformed_and_unknown_link_messages_are_ignored_without_panicking() {
    let mut r = Router::new(t(0), key(1), RouterConfig::default());
    let bad = ControlMessage::Update(Update {
        plen: 200,
        interval_cs: 0,
        seqno: 0,
        metric: 0,
        router_id: key(2),
        prefix: [0xFF; 16],
    });
    r.handle_message(t(0), LinkId(0), &bad);
    r.handle_neighbour(t(0), LinkId(0), key(2), 10, 10);
    r.handle_message(t(0), LinkId(0), &bad);
    let req = SeqnoRequest { plen: 255, seqno: 0, hop_count: 0, router_id: key(2), prefix: [0xFF; 16] };
    r.handle_message(t(0), LinkId(0), &ControlMessage::SeqnoRequest(req));
    assert_eq!(r.stats().malformed_ignored, 2);
    assert_eq!(r.selected_count(), 0);
}

#[test]
fn an_unanswered_seqno_request_is_resent_then_given_up() {
    let cfg = RouterConfig::default();
    let mut r = Router::new(t(0), key(1), cfg);
    r.handle_neighbour(t(0), LinkId(0), key(2), 10, 10);
    r.handle_neighbour(t(0), LinkId(1), key(3), 10, 10);
    r.handle_message(t(1), LinkId(0), &update_for(key(9), 5, 20));
    drain(&mut r);
    r.handle_neighbour(t(2), LinkId(0), key(2), METRIC_INFINITY, METRIC_INFINITY);
    let count = |out: &[Transmit]| {
        out.iter().filter(|tx| matches!(tx.msg, ControlMessage::SeqnoRequest(q) if q.seqno == 6)).count()
    };
    assert_eq!(count(&drain(&mut r)), 1);
    let mut sent = 0;
    let mut now = t(2);
    while now < t(5_000) {
        now = r.poll_timeout().max(now + Duration::from_millis(1));
        r.handle_timeout(now);
        sent += count(&drain(&mut r));
    }
    assert_eq!(sent, usize::from(cfg.request_resends));
}

#[test]
fn a_request_forwarded_towards_a_failed_neighbour_does_not_suppress_our_own() {
    // Regression: a node that had forwarded a neighbour's seqno request
    // towards its next hop treated its own request, made when that next hop
    // failed, as a duplicate; the forwarded one was lost with the next hop,
    // and the node starved until the next periodic update.
    let mut r = Router::new(t(0), key(1), RouterConfig::default());
    r.handle_neighbour(t(0), LinkId(0), key(2), 10, 10);
    r.handle_neighbour(t(0), LinkId(1), key(3), 10, 10);
    r.handle_message(t(1), LinkId(0), &update_for(key(9), 5, 20));
    drain(&mut r);
    let prefix = key(9).address().subnet();
    let req = SeqnoRequest { plen: 64, seqno: 6, hop_count: 10, router_id: key(9), prefix: prefix.prefix() };
    r.handle_message(t(2), LinkId(1), &ControlMessage::SeqnoRequest(req));
    assert!(drain(&mut r).iter().any(|tx| tx.to == Destination::Link(LinkId(0))
        && matches!(tx.msg, ControlMessage::SeqnoRequest(q) if q.seqno == 6 && q.hop_count == 9)));
    r.handle_neighbour(t(3), LinkId(0), key(2), METRIC_INFINITY, METRIC_INFINITY);
    assert!(
        drain(&mut r)
            .iter()
            .any(|tx| tx.to == Destination::AllLinks
                && matches!(tx.msg, ControlMessage::SeqnoRequest(q) if q.seqno == 6))
    );
}

#[test]
fn a_new_neighbour_is_asked_for_its_full_table_and_a_wildcard_request_gets_one() {
    let mut a = Router::new(t(0), key(1), RouterConfig::default());
    a.handle_neighbour(t(0), LinkId(0), key(2), 10, 10);
    let out = drain(&mut a);
    let request = out
        .iter()
        .find(|tx| matches!(tx.msg, ControlMessage::RouteRequest(q) if q.plen == 0))
        .expect("wildcard request");
    assert_eq!(request.to, Destination::Link(LinkId(0)));
    a.handle_message(t(1), LinkId(0), &update_for(key(2), 1, 0));
    drain(&mut a);
    a.handle_message(t(2), LinkId(0), &request.msg);
    let dump = drain(&mut a);
    let updates: Vec<_> = dump
        .iter()
        .filter_map(|tx| if let ControlMessage::Update(u) = tx.msg { Some((tx.to, u.router_id)) } else { None })
        .collect();
    assert_eq!(updates, vec![(Destination::Link(LinkId(0)), key(1)), (Destination::Link(LinkId(0)), key(2))]);
}

#[test]
fn a_zero_link_cost_counts_as_one_so_the_selected_route_stays_feasible() {
    let mut r = Router::new(t(0), key(1), RouterConfig::default());
    r.handle_neighbour(t(0), LinkId(0), key(2), 0, 0);
    r.handle_message(t(1), LinkId(0), &update_for(key(9), 5, 20));
    drain(&mut r);
    let prefix = key(9).address().subnet();
    let sel = r.selected_route(&prefix).expect("selected");
    assert_eq!(sel.metric, 21);
    assert_eq!(r.route_table().entries.len(), 1);
}

#[test]
fn a_route_is_offered_to_every_neighbour_but_the_one_it_goes_through_which_hears_a_retraction() {
    let mut r = Router::new(t(0), key(1), RouterConfig::default());
    r.handle_neighbour(t(0), LinkId(0), key(2), 10, 10);
    r.handle_neighbour(t(0), LinkId(1), key(3), 10, 10);
    drain(&mut r);
    r.handle_message(t(1), LinkId(0), &update_for(key(2), 5, 0));
    let out = drain(&mut r);
    let prefix = key(2).address().subnet().prefix();
    let update = out
        .iter()
        .find(|tx| tx.to == Destination::AllLinks && matches!(tx.msg, ControlMessage::Update(u) if u.prefix == prefix))
        .expect("the new route is propagated");
    let metric_to = |n: u8| match update.message_for(&key(n)) {
        ControlMessage::Update(u) => u.metric,
        other => panic!("{other:?}"),
    };
    assert_eq!(metric_to(3), 10, "the other neighbour hears the route");
    assert_eq!(metric_to(2), METRIC_INFINITY, "the next hop hears a retraction (poisoned reverse)");
}
