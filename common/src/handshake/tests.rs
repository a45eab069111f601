use super::*;

struct Pair {
    alice: SecretKey,
    bob: SecretKey,
}

fn pair() -> Pair {
    Pair { alice: SecretKey::from_bytes([1; 32]), bob: SecretKey::from_bytes([2; 32]) }
}

fn eph(byte: u8) -> SecretKey {
    SecretKey::from_bytes([byte; 32])
}

#[test]
fn both_sides_derive_matching_keys_and_learn_each_other() {
    let p = pair();
    let (init, waiting) = initiate(&p.alice, p.bob.public_key(), eph(10), 111, 5_000, Purpose::EndToEnd).unwrap();
    let accepted = respond(&p.bob, &init, eph(20), 222, Purpose::EndToEnd).unwrap();
    assert_eq!(accepted.timestamp, 5_000);
    assert_eq!(accepted.session.peer, p.alice.public_key());
    assert_eq!((accepted.session.local_index, accepted.session.remote_index), (222, 111));
    let alice = waiting.handle_response(&accepted.response).unwrap();
    assert_eq!(alice.peer, p.bob.public_key());
    assert_eq!((alice.local_index, alice.remote_index), (111, 222));
    assert_eq!(alice.send, accepted.session.receive);
    assert_eq!(alice.receive, accepted.session.send);
    assert_ne!(alice.send, alice.receive);
}

#[test]
fn fresh_ephemerals_give_fresh_session_keys() {
    let p = pair();
    let run = |e_i: u8, e_r: u8| {
        let (init, waiting) = initiate(&p.alice, p.bob.public_key(), eph(e_i), 1, 1, Purpose::Link).unwrap();
        let accepted = respond(&p.bob, &init, eph(e_r), 2, Purpose::Link).unwrap();
        waiting.handle_response(&accepted.response).unwrap().send
    };
    assert_ne!(run(10, 20), run(11, 20));
    assert_ne!(run(10, 20), run(10, 21));
}

#[test]
fn an_init_for_another_node_is_refused() {
    let p = pair();
    let carol = SecretKey::from_bytes([3; 32]);
    let (init, _) = initiate(&p.alice, p.bob.public_key(), eph(10), 1, 1, Purpose::Link).unwrap();
    assert_eq!(respond(&carol, &init, eph(20), 2, Purpose::Link).unwrap_err(), HandshakeError::Authentication);
}

#[test]
fn an_init_claiming_a_static_key_it_does_not_hold_is_refused() {
    let p = pair();
    let mallory = SecretKey::from_bytes([4; 32]);
    let (mut init, _) = initiate(&mallory, p.bob.public_key(), eph(10), 1, 1, Purpose::Link).unwrap();
    // Mallory swaps in Alice's static key: the sealed timestamp no longer opens.
    init[40..72].copy_from_slice(p.alice.public_key().as_bytes());
    assert_eq!(respond(&p.bob, &init, eph(20), 2, Purpose::Link).unwrap_err(), HandshakeError::Authentication);
}

#[test]
fn any_flipped_byte_of_either_message_is_refused() {
    let p = pair();
    let (init, _) = initiate(&p.alice, p.bob.public_key(), eph(10), 1, 1, Purpose::Link).unwrap();
    for i in 0..init.len() {
        let mut bad = init;
        bad[i] ^= 0x01;
        // Reserved bytes (2..4) are ignored by design; everything else counts.
        if (2..4).contains(&i) {
            continue;
        }
        assert!(respond(&p.bob, &bad, eph(20), 2, Purpose::Link).is_err(), "byte {i}");
    }
    let accepted = respond(&p.bob, &init, eph(20), 2, Purpose::Link).unwrap();
    for i in (0..accepted.response.len()).filter(|i| !(2..4).contains(i)) {
        let (init2, waiting) = initiate(&p.alice, p.bob.public_key(), eph(10), 1, 1, Purpose::Link).unwrap();
        assert_eq!(init2, init);
        let mut bad = accepted.response;
        bad[i] ^= 0x01;
        assert!(waiting.handle_response(&bad).is_err(), "byte {i}");
    }
}

#[test]
fn a_response_to_another_handshake_is_refused() {
    let p = pair();
    let (init, _) = initiate(&p.alice, p.bob.public_key(), eph(10), 1, 1, Purpose::Link).unwrap();
    let accepted = respond(&p.bob, &init, eph(20), 2, Purpose::Link).unwrap();
    let (_, other) = initiate(&p.alice, p.bob.public_key(), eph(11), 7, 2, Purpose::Link).unwrap();
    assert_eq!(
        other.handle_response(&accepted.response).unwrap_err(),
        HandshakeError::WrongIndex { got: 1, expected: 7 }
    );
}

#[test]
fn purposes_do_not_mix() {
    let p = pair();
    let (init, _) = initiate(&p.alice, p.bob.public_key(), eph(10), 1, 1, Purpose::Link).unwrap();
    assert_eq!(respond(&p.bob, &init, eph(20), 2, Purpose::EndToEnd).unwrap_err(), HandshakeError::Authentication);
}

#[test]
fn a_low_order_ephemeral_is_refused() {
    let p = pair();
    let (mut init, _) = initiate(&p.alice, p.bob.public_key(), eph(10), 1, 1, Purpose::Link).unwrap();
    init[8..40].fill(0);
    assert_eq!(respond(&p.bob, &init, eph(20), 2, Purpose::Link).unwrap_err(), HandshakeError::LowOrderKey);
}

#[test]
fn truncated_messages_are_wire_errors() {
    let p = pair();
    let (init, _) = initiate(&p.alice, p.bob.public_key(), eph(10), 1, 1, Purpose::Link).unwrap();
    assert!(matches!(respond(&p.bob, &init[..95], eph(20), 2, Purpose::Link), Err(HandshakeError::Wire(_))));
}
