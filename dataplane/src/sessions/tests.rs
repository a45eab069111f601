use std::sync::Arc;

use mycelium_common::crypto::ReplayError;
use mycelium_common::keytable::{KeyTable, KeyTableView, ReceiveSession, SendSession};

use super::*;

const EPOCH: u64 = 42;

fn send(peer: u8, session_id: u64, epoch: u64) -> SendSession {
    SendSession {
        peer: [peer; 16],
        peer_key: [peer; 32],
        key_id: 100 + u32::from(peer),
        key: [peer; 32],
        session_id,
        dataplane_epoch: epoch,
        packet_limit: 3,
        expires_at_ns: 1_000,
    }
}

fn receive(key_id: u32, peer: u8, session_id: u64) -> ReceiveSession {
    ReceiveSession { key_id, peer: [peer; 16], key: [9; 32], session_id, dataplane_epoch: EPOCH, expires_at_ns: 1_000 }
}

fn build(previous: &SessionTable, table: KeyTable) -> Arc<SessionTable> {
    let bytes = table.to_bytes();
    Arc::new(previous.rebuild(&KeyTableView::validate(&bytes).unwrap(), EPOCH))
}

#[test]
fn counters_carry_on_for_the_same_session_and_restart_for_a_new_one() {
    let t1 = build(&SessionTable::empty(), KeyTable::new(1, 0, vec![send(1, 10, EPOCH)], vec![]));
    let mut shard = ShardSessions::new(Arc::clone(&t1));
    assert_eq!(shard.next_send(0, &[1; 32]).unwrap().counter, 0);
    assert_eq!(shard.next_send(0, &[1; 32]).unwrap().counter, 1);

    let t2 = build(&t1, KeyTable::new(2, 0, vec![send(1, 10, EPOCH), send(2, 20, EPOCH)], vec![]));
    assert!(Arc::ptr_eq(t1.sender(&[1; 32]).unwrap(), t2.sender(&[1; 32]).unwrap()), "cipher reused");
    shard.install(Arc::clone(&t2));
    assert_eq!(shard.next_send(0, &[1; 32]).unwrap().counter, 2);

    let t3 = build(&t2, KeyTable::new(3, 0, vec![send(1, 11, EPOCH)], vec![]));
    shard.install(t3);
    let ticket = shard.next_send(0, &[1; 32]).unwrap();
    assert_eq!((ticket.counter, ticket.key.session_id()), (0, 11));
    assert_eq!(shard.next_send(0, &[2; 32]).unwrap_err(), SendError::NoSession);
}

#[test]
fn a_shard_stops_at_the_packet_limit_and_at_expiry() {
    let t = build(&SessionTable::empty(), KeyTable::new(1, 0, vec![send(1, 10, EPOCH)], vec![]));
    let mut shard = ShardSessions::new(t);
    for _ in 0..3 {
        shard.next_send(0, &[1; 32]).unwrap();
    }
    assert_eq!(shard.next_send(0, &[1; 32]).unwrap_err(), SendError::Exhausted);
    assert_eq!(shard.next_send(1_000, &[1; 32]).unwrap_err(), SendError::Expired);
}

#[test]
fn sessions_of_another_dataplane_epoch_are_ignored() {
    let table = KeyTable::new(1, 0, vec![send(1, 10, EPOCH - 1)], vec![]);
    let t = build(&SessionTable::empty(), table);
    assert_eq!(t.len(), (0, 0));
}

#[test]
fn replay_windows_survive_a_rebuild_and_are_shared_by_shards() {
    let t1 = build(&SessionTable::empty(), KeyTable::new(1, 0, vec![], vec![receive(7, 1, 70)]));
    let key = t1.receiver(7).unwrap();
    key.check(0, &[1; 16], 3, 5).unwrap();
    key.accept(3, 5).unwrap();
    let t2 = build(&t1, KeyTable::new(2, 0, vec![], vec![receive(7, 1, 70), receive(8, 2, 80)]));
    let key = t2.receiver(7).unwrap();
    assert_eq!(key.check(0, &[1; 16], 3, 5), Err(ReceiveError::Replay(ReplayError::Duplicate)));
    assert_eq!(key.accept(3, 5), Err(ReceiveError::Replay(ReplayError::Duplicate)));
    // Another sender shard has its own counter space.
    assert_eq!(key.accept(4, 5), Ok(()));
}

#[test]
fn receive_checks_expiry_and_source() {
    let t = build(&SessionTable::empty(), KeyTable::new(1, 0, vec![], vec![receive(7, 1, 70)]));
    let key = t.receiver(7).unwrap();
    assert_eq!(key.check(0, &[2; 16], 0, 0), Err(ReceiveError::WrongPeer));
    assert_eq!(key.check(1_000, &[1; 16], 0, 0), Err(ReceiveError::Expired));
    assert!(t.receiver(8).is_none());
}

#[test]
fn a_route_keeps_its_session_until_the_keys_or_the_routes_change() {
    let t1 = build(&SessionTable::empty(), KeyTable::new(1, 0, vec![send(1, 10, EPOCH), send(2, 20, EPOCH)], vec![]));
    let mut shard = ShardSessions::new(Arc::clone(&t1));
    shard.routes_changed(2);
    assert_eq!(shard.next_send_for_route(0, 0, &[1; 32]).unwrap().key.session_id(), 10);
    // Learned: the router id is not consulted again for route 0.
    assert_eq!(shard.next_send_for_route(0, 0, &[2; 32]).unwrap().key.session_id(), 10);
    assert_eq!(shard.next_send_for_route(0, 1, &[9; 32]).unwrap_err(), SendError::NoSession);
    assert_eq!(shard.next_send_for_route(0, 1, &[2; 32]).unwrap_err(), SendError::NoSession);
    // New routes: asked again, and counters carry on.
    shard.routes_changed(2);
    let ticket = shard.next_send_for_route(0, 0, &[2; 32]).unwrap();
    assert_eq!((ticket.key.session_id(), ticket.counter), (20, 0));
    assert_eq!(shard.next_send_for_route(0, 1, &[1; 32]).unwrap().counter, 2);
    // New keys: asked again; session 20 left, session 10 carries its counter.
    let t2 = build(&t1, KeyTable::new(2, 0, vec![send(1, 10, EPOCH)], vec![]));
    shard.install(t2);
    assert_eq!(shard.next_send_for_route(0, 0, &[2; 32]).unwrap_err(), SendError::NoSession);
    assert_eq!(shard.next_send_for_route(0, 1, &[1; 32]).unwrap_err(), SendError::Exhausted);
    // A route index beyond the announced snapshot is looked up, not cached.
    assert_eq!(shard.next_send_for_route(0, 7, &[2; 32]).unwrap_err(), SendError::NoSession);
}
