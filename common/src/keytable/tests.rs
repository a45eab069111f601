use super::*;

fn send(peer: u8, session_id: u64) -> SendSession {
    SendSession {
        peer: [peer; 16],
        peer_key: [peer; 32],
        key_id: u32::from(peer) + 1,
        key: [0xaa; 32],
        session_id,
        dataplane_epoch: 7,
        packet_limit: 1 << 40,
        expires_at_ns: 1_000,
    }
}

fn receive(key_id: u32, peer: u8) -> ReceiveSession {
    ReceiveSession {
        key_id,
        peer: [peer; 16],
        key: [0xbb; 32],
        session_id: 1,
        dataplane_epoch: 7,
        expires_at_ns: 1_000,
    }
}

#[test]
fn lookups_find_sessions_by_peer_and_by_key_id() {
    let table = KeyTable::new(3, 9, vec![send(5, 1), send(2, 1)], vec![receive(40, 2), receive(10, 5)]);
    let bytes = table.to_bytes();
    let view = KeyTableView::validate(&bytes).unwrap();
    assert_eq!(view.generation(), 3);
    assert_eq!(view.send_to(&[5; 16]).unwrap().key_id.to_native(), 6);
    assert!(view.send_to(&[3; 16]).is_none());
    assert_eq!(view.receive_by_key_id(40).unwrap().peer, [2; 16]);
    assert!(view.receive_by_key_id(41).is_none());
}

#[test]
fn the_same_sessions_in_any_order_give_the_same_bytes() {
    let a = KeyTable::new(1, 2, vec![send(1, 1), send(2, 1), send(3, 1)], vec![receive(5, 1), receive(6, 2)]);
    let b = KeyTable::new(1, 2, vec![send(3, 1), send(1, 1), send(2, 1)], vec![receive(6, 2), receive(5, 1)]);
    assert_eq!(a.to_bytes().as_slice(), b.to_bytes().as_slice());
}

#[test]
fn the_newest_session_for_a_peer_wins() {
    let table = KeyTable::new(1, 2, vec![send(1, 4), send(1, 9), send(1, 2)], vec![]);
    assert_eq!(table.send.len(), 1);
    assert_eq!(table.send[0].session_id, 9);
}

#[test]
fn unsorted_or_reserved_tables_are_refused() {
    let mut table = KeyTable::new(1, 2, vec![send(1, 1), send(2, 1)], vec![]);
    table.send.swap(0, 1);
    assert_eq!(KeyTableView::validate(&table.to_bytes()).unwrap_err(), KeyTableError::SendOrder);

    let table = KeyTable::new(1, 2, vec![], vec![receive(0, 1)]);
    assert_eq!(KeyTableView::validate(&table.to_bytes()).unwrap_err(), KeyTableError::ReservedKeyId);

    let mut table = KeyTable::new(1, 2, vec![], vec![]);
    table.version = 99;
    assert_eq!(KeyTableView::validate(&table.to_bytes()).unwrap_err(), KeyTableError::Version { found: 99 });
}

#[test]
fn garbage_and_truncated_bytes_are_refused_without_panicking() {
    let table = KeyTable::new(1, 2, vec![send(1, 1)], vec![receive(5, 1)]);
    let bytes = table.to_bytes();
    for len in 0..bytes.len() {
        let mut cut = rkyv::util::AlignedVec::<16>::new();
        cut.extend_from_slice(&bytes[..len]);
        assert!(KeyTableView::validate(&cut).is_err(), "truncated to {len}");
    }
    for i in 0..bytes.len() {
        let mut flipped = rkyv::util::AlignedVec::<16>::new();
        flipped.extend_from_slice(&bytes);
        flipped[i] ^= 0xff;
        // Any outcome but a panic is fine: a flipped key byte is still valid.
        let _ = KeyTableView::validate(&flipped);
    }
}
