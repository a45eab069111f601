//! Key table validation on arbitrary bytes.
//!
//! The bytes are copied into a 16-byte aligned buffer (as a mapping would
//! be) and validated. Validation must never panic; when it accepts, the
//! table's invariants hold and every lookup agrees with a linear scan: for
//! each listed peer and key id, their neighbours (one above, one below), the
//! extremes, and values taken from the input.

use mycelium_common::keytable::{ArchivedReceiveSession, ArchivedSendSession, KeyTableView};
use mycelium_common::snapshot::AlignedVec;

/// Sessions and input-derived queries checked per input: the scan makes
/// each check linear, so the whole input quadratic.
const CHECKED: usize = 64;

/// `KeyTableView::validate`, then every lookup.
pub fn keytable_validate(data: &[u8]) {
    let mut buf = AlignedVec::<16>::with_capacity(data.len());
    buf.extend_from_slice(data);
    let Ok(view) = KeyTableView::validate(&buf) else {
        return;
    };
    let _ = (view.generation(), format!("{view:?}"));
    let send = view.send_sessions();
    let receive = view.receive_sessions();
    assert!(send.windows(2).all(|w| w[0].peer < w[1].peer), "send sessions sorted and unique");
    assert!(
        receive.windows(2).all(|w| w[0].key_id.to_native() < w[1].key_id.to_native()),
        "receive sessions sorted and unique"
    );
    assert!(
        send.iter().all(|s| s.key_id.to_native() != 0) && receive.iter().all(|r| r.key_id.to_native() != 0),
        "key id 0 is reserved"
    );

    let mut peers = vec![[0u8; 16], [0xff; 16]];
    for s in send.iter().take(CHECKED) {
        let _ = (s.peer_key, s.key, s.session_id, s.dataplane_epoch, s.packet_limit, s.expires_at_ns);
        let p = u128::from_be_bytes(s.peer);
        peers.extend([p, p.wrapping_add(1), p.wrapping_sub(1)].map(u128::to_be_bytes));
    }
    peers.extend(data.chunks_exact(16).take(CHECKED).map(|c| <[u8; 16]>::try_from(c).expect("16 bytes")));
    for peer in peers {
        let scan = send.iter().find(|s| s.peer == peer);
        assert_eq!(view.send_to(&peer).map(send_ptr), scan.map(send_ptr), "send_to({peer:02x?})");
    }

    let mut ids = vec![0, 1, u32::MAX];
    for r in receive.iter().take(CHECKED) {
        let _ = (r.peer, r.key, r.session_id, r.dataplane_epoch, r.expires_at_ns);
        let id = r.key_id.to_native();
        ids.extend([id, id.wrapping_add(1), id.wrapping_sub(1)]);
    }
    ids.extend(send.iter().take(CHECKED).map(|s| s.key_id.to_native()));
    ids.extend(data.chunks_exact(4).take(CHECKED).map(|c| u32::from_be_bytes(c.try_into().expect("4 bytes"))));
    for id in ids {
        let scan = receive.iter().find(|r| r.key_id.to_native() == id);
        assert_eq!(view.receive_by_key_id(id).map(receive_ptr), scan.map(receive_ptr), "receive_by_key_id({id})");
    }
}

fn send_ptr(s: &ArchivedSendSession) -> *const ArchivedSendSession {
    std::ptr::from_ref(s)
}

fn receive_ptr(r: &ArchivedReceiveSession) -> *const ArchivedReceiveSession {
    std::ptr::from_ref(r)
}
