use std::time::Duration;

use mycelium_common::identity::SecretKey;
use mycelium_common::keytable::KeyTableView;
use mycelium_common::time::Timestamp;

use super::*;
use crate::peer::{Entropy, SeededEntropy};

struct Pair {
    a: SessionManager,
    b: SessionManager,
    rng: SeededEntropy,
    key_a: PublicKey,
    key_b: PublicKey,
}

fn pair() -> Pair {
    let (sa, sb) = (SecretKey::from_bytes([1; 32]), SecretKey::from_bytes([2; 32]));
    let (key_a, key_b) = (sa.public_key(), sb.public_key());
    let mut rng = SeededEntropy::new(0x1234_5678);
    let mut a = SessionManager::new(sa, E2eConfig::default());
    let mut b = SessionManager::new(sb, E2eConfig::default());
    a.handle_epoch(t(0), 1, 11, &mut rng);
    b.handle_epoch(t(0), 1, 22, &mut rng);
    Pair { a, b, rng, key_a, key_b }
}

fn t(ms: u64) -> Timestamp {
    Timestamp::from_nanos(1_000_000_000 + ms * 1_000_000)
}

/// Delivers every queued transmit of both sides to the other, until quiet.
fn exchange(p: &mut Pair, now: Timestamp) -> usize {
    let mut delivered = 0;
    loop {
        let mut moved = false;
        while let Some(tx) = p.a.poll_transmit() {
            assert_eq!(tx.destination, p.key_b);
            p.b.handle_routed_handshake(now, &tx.packet, &mut p.rng).unwrap();
            moved = true;
            delivered += 1;
        }
        while let Some(tx) = p.b.poll_transmit() {
            assert_eq!(tx.destination, p.key_a);
            p.a.handle_routed_handshake(now, &tx.packet, &mut p.rng).unwrap();
            moved = true;
            delivered += 1;
        }
        if !moved {
            return delivered;
        }
    }
}

/// (send key id, send key) of `from`'s table towards `to`, and whether `to`'s
/// table has a receive key with that id and key.
fn keys_match(from: &SessionManager, to: &SessionManager, to_key: &PublicKey) -> bool {
    let (ft, tt) = (from.key_table(1, t(0)).to_bytes(), to.key_table(1, t(0)).to_bytes());
    let (fv, tv) = (KeyTableView::validate(&ft).unwrap(), KeyTableView::validate(&tt).unwrap());
    let send = fv.send_sessions().iter().find(|s| s.peer_key == *to_key.as_bytes()).expect("a send session");
    tv.receive_by_key_id(send.key_id.to_native()).is_some_and(|r| r.key == send.key)
}

#[test]
fn a_punted_packet_leads_to_a_session_on_both_sides_with_matching_keys() {
    let mut p = pair();
    p.a.handle_no_session(t(0), 2, p.key_b, &mut p.rng);
    assert_eq!(exchange(&mut p, t(5)), 2, "one init, one response");
    assert!(p.a.poll_key_table_changed() && p.b.poll_key_table_changed());
    assert!(keys_match(&p.a, &p.b, &p.key_b), "A seals what B opens");
    assert!(keys_match(&p.b, &p.a, &p.key_a), "B seals what A opens");
    let table = p.a.key_table(1, t(5));
    assert_eq!(table.send[0].dataplane_epoch, 11, "installed for A's dataplane epoch");
    // Another punt while the session is fresh starts nothing.
    p.a.handle_no_session(t(10), 3, p.key_b, &mut p.rng);
    assert!(p.a.poll_transmit().is_none());
}

#[test]
fn a_lost_init_is_retried_with_backoff_then_abandoned() {
    let mut p = pair();
    p.a.handle_no_session(t(0), 2, p.key_b, &mut p.rng);
    let first = p.a.poll_transmit().unwrap();
    p.a.handle_timeout(t(400), 3, &mut p.rng);
    assert!(p.a.poll_transmit().is_none(), "not before the retry delay");
    p.a.handle_timeout(t(500), 3, &mut p.rng);
    let second = p.a.poll_transmit().unwrap();
    assert_eq!(second.destination, first.destination);
    assert_ne!(second.packet, first.packet, "a fresh init: the responder refuses one it has seen");
    p.a.handle_timeout(t(1_000), 3, &mut p.rng);
    assert!(p.a.poll_transmit().is_none(), "the delay doubled");
    p.a.handle_timeout(t(1_500), 3, &mut p.rng);
    assert!(p.a.poll_transmit().is_some());
    p.a.handle_timeout(t(61_000), 3, &mut p.rng);
    while p.a.poll_transmit().is_some() {}
    p.a.handle_timeout(t(200_000), 3, &mut p.rng);
    assert!(p.a.poll_transmit().is_none(), "given up after the handshake timeout");
    assert!(p.a.poll_timeout().is_none());
}

#[test]
fn a_lost_response_is_recovered_by_the_next_attempt() {
    let mut p = pair();
    p.a.handle_no_session(t(0), 2, p.key_b, &mut p.rng);
    let init = p.a.poll_transmit().unwrap();
    p.b.handle_routed_handshake(t(1), &init.packet, &mut p.rng).unwrap();
    let _lost = p.b.poll_transmit().unwrap();
    p.a.handle_timeout(t(500), 3, &mut p.rng);
    assert_eq!(exchange(&mut p, t(501)), 2, "the retry is answered");
    assert!(keys_match(&p.a, &p.b, &p.key_b) && keys_match(&p.b, &p.a, &p.key_a));
}

#[test]
fn a_replayed_init_is_refused() {
    let mut p = pair();
    p.a.handle_no_session(t(0), 2, p.key_b, &mut p.rng);
    let init = p.a.poll_transmit().unwrap();
    p.b.handle_routed_handshake(t(1), &init.packet, &mut p.rng).unwrap();
    assert_eq!(p.b.handle_routed_handshake(t(2), &init.packet, &mut p.rng), Err(E2eError::StaleInit));
}

#[test]
fn an_init_whose_source_address_is_not_the_initiators_is_refused() {
    let mut p = pair();
    p.a.handle_no_session(t(0), 2, p.key_b, &mut p.rng);
    let mut init = p.a.poll_transmit().unwrap().packet;
    init[16] ^= 1; // the routed header's source address
    assert_eq!(p.b.handle_routed_handshake(t(1), &init, &mut p.rng), Err(E2eError::SourceMismatch));
}

#[test]
fn a_stray_response_is_refused() {
    let mut p = pair();
    p.a.handle_no_session(t(0), 2, p.key_b, &mut p.rng);
    let init = p.a.poll_transmit().unwrap();
    p.b.handle_routed_handshake(t(1), &init.packet, &mut p.rng).unwrap();
    let response = p.b.poll_transmit().unwrap();
    p.a.handle_routed_handshake(t(2), &response.packet, &mut p.rng).unwrap();
    assert_eq!(p.a.handle_routed_handshake(t(3), &response.packet, &mut p.rng), Err(E2eError::UnexpectedResponse));
}

#[test]
fn rekeying_keeps_the_previous_receive_key_for_a_grace_period() {
    let mut p = pair();
    p.a.handle_no_session(t(0), 2, p.key_b, &mut p.rng);
    exchange(&mut p, t(1));
    let old_id = p.a.key_table(1, t(1)).send[0].key_id;
    let rekey_at = t(121_000);
    p.a.handle_timeout(rekey_at, 3, &mut p.rng);
    p.b.handle_timeout(rekey_at, 3, &mut p.rng);
    assert_eq!(exchange(&mut p, rekey_at), 2, "the initiator rekeyed");
    assert!(keys_match(&p.a, &p.b, &p.key_b) && keys_match(&p.b, &p.a, &p.key_a));
    let b_table = p.b.key_table(2, rekey_at);
    assert_eq!(b_table.receive.len(), 2, "old and new receive keys");
    assert!(b_table.receive.iter().any(|r| r.key_id == old_id), "the old key id still opens");
    let after_grace = rekey_at + Duration::from_secs(31);
    p.b.handle_timeout(after_grace, 4, &mut p.rng);
    assert_eq!(p.b.key_table(3, after_grace).receive.len(), 1, "the old key is gone after the grace period");
}

/// Both sides start a handshake at once; `a_completes_first`: A gets the
/// response to its init before B's init reaches it. Returns the pair
/// after the grace period (when only the current sessions' keys are left).
fn crossed(a_completes_first: bool) -> Pair {
    let mut p = pair();
    p.a.handle_no_session(t(0), 2, p.key_b, &mut p.rng);
    p.b.handle_no_session(t(0), 2, p.key_a, &mut p.rng);
    let (init_a, init_b) = (p.a.poll_transmit().unwrap(), p.b.poll_transmit().unwrap());
    p.b.handle_routed_handshake(t(1), &init_a.packet, &mut p.rng).unwrap();
    let response_b = p.b.poll_transmit().unwrap();
    if a_completes_first {
        p.a.handle_routed_handshake(t(2), &response_b.packet, &mut p.rng).unwrap();
        p.a.handle_routed_handshake(t(3), &init_b.packet, &mut p.rng).unwrap();
    } else {
        p.a.handle_routed_handshake(t(2), &init_b.packet, &mut p.rng).unwrap();
        p.a.handle_routed_handshake(t(3), &response_b.packet, &mut p.rng).unwrap();
    }
    let response_a = p.a.poll_transmit().unwrap();
    p.b.handle_routed_handshake(t(4), &response_a.packet, &mut p.rng).unwrap();
    assert!(p.a.poll_transmit().is_none() && p.b.poll_transmit().is_none());
    let after_grace = t(4) + Duration::from_secs(31);
    p.a.handle_timeout(after_grace, 3, &mut p.rng);
    p.b.handle_timeout(after_grace, 3, &mut p.rng);
    p
}

#[test]
fn crossed_handshakes_leave_both_sides_sending_with_one_session_after_the_grace_period() {
    for a_completes_first in [false, true] {
        let p = crossed(a_completes_first);
        assert!(keys_match(&p.a, &p.b, &p.key_b), "A seals what B opens (A completed first: {a_completes_first})");
        assert!(keys_match(&p.b, &p.a, &p.key_a), "B seals what A opens (A completed first: {a_completes_first})");
    }
}

#[test]
fn a_dataplane_restart_re_establishes_every_session() {
    let mut p = pair();
    p.a.handle_no_session(t(0), 2, p.key_b, &mut p.rng);
    exchange(&mut p, t(1));
    p.a.handle_epoch(t(2), 3, 12, &mut p.rng);
    assert!(p.a.key_table(1, t(2)).send.is_empty(), "no key of the old epoch survives");
    assert_eq!(exchange(&mut p, t(3)), 2);
    let table = p.a.key_table(2, t(3));
    assert_eq!((table.send.len(), table.send[0].dataplane_epoch), (1, 12));
    assert!(keys_match(&p.a, &p.b, &p.key_b));
}

#[test]
fn garbage_routed_handshakes_are_errors_not_panics() {
    let mut p = pair();
    for len in 0..200 {
        let mut junk = vec![0u8; len];
        p.rng.fill(&mut junk);
        if len > 2 {
            junk[0] = 1;
            junk[1] = 5;
        }
        assert!(p.b.handle_routed_handshake(t(1), &junk, &mut p.rng).is_err());
    }
}

#[test]
fn a_restarted_manager_adopts_the_published_sessions_of_its_dataplane_epoch_only() {
    let mut p = pair();
    p.a.handle_no_session(t(0), 2, p.key_b, &mut p.rng);
    exchange(&mut p, t(5));
    let published = p.a.key_table(7, t(5)).to_bytes();
    let view = KeyTableView::validate(&published).unwrap();

    // A new run of A, adopting the dataplane of epoch 11.
    let mut again = SessionManager::new(SecretKey::from_bytes([1; 32]), E2eConfig::default());
    again.set_session_id_base(1_000);
    assert_eq!(again.import(t(9), 99, &view), 0, "sessions of another dataplane are not taken");
    assert_eq!(again.import(t(9), 11, &view), 1);
    assert!(again.poll_key_table_changed());
    let republished = again.key_table(8, t(9));
    let original = p.a.key_table(8, t(9));
    assert_eq!(republished.send, original.send, "same keys, ids and session id: the dataplane keeps its counters");
    assert_eq!(republished.receive, original.receive);
    assert!(keys_match(&again, &p.b, &p.key_b), "A still seals what B opens");
    // The dataplane's epoch is the one adopted: nothing is torn down.
    again.handle_epoch(t(10), 3, 11, &mut p.rng);
    assert!(again.poll_transmit().is_none());
    assert_eq!(again.sessions().count(), 1);
    // A session made later gets an id above the adopted one and the base.
    let mut fresh = SessionManager::new(SecretKey::from_bytes([1; 32]), E2eConfig::default());
    fresh.set_session_id_base(1_000);
    fresh.handle_epoch(t(0), 1, 11, &mut p.rng);
    fresh.handle_no_session(t(0), 5, p.key_b, &mut p.rng);
    let init = fresh.poll_transmit().unwrap();
    let response = {
        p.b.handle_routed_handshake(t(1), &init.packet, &mut p.rng).unwrap();
        p.b.poll_transmit().unwrap()
    };
    fresh.handle_routed_handshake(t(2), &response.packet, &mut p.rng).unwrap();
    assert!(fresh.key_table(1, t(2)).send[0].session_id >= 1_000);
}
