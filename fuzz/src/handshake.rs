//! The handshake state machine on arbitrary bytes, with fixed keys.
//!
//! Each input goes to both sides: [`respond`] (as a HandshakeInit to the
//! fixed responder) and [`AwaitingResponse::handle_response`] (as the answer
//! to the fixed initiator's init). Neither may panic; a refusal of malformed
//! bytes names the wire error; whatever is accepted is consistent with the
//! message (peer, indexes, a response that answers the init), and the fixed
//! pair, when it meets its own messages, ends with crosswise equal keys.
//! The seeds hold valid messages from these keys, so the fuzzer starts on
//! the authenticated paths.

use mycelium_common::crypto::kdf::Purpose;
use mycelium_common::handshake::{
    Accepted, AwaitingResponse, Established, HandshakeError, Role, initiate as start, respond,
};
use mycelium_common::identity::SecretKey;
use mycelium_common::wire::{
    HANDSHAKE_INIT_LEN, HandshakeInit, HandshakeInitRepr, HandshakeResponse, HandshakeResponseRepr,
};

/// The fixed initiator's index (responses must name it).
pub const INITIATOR_INDEX: u32 = 0x1111_1111;
/// The fixed responder's index.
pub const RESPONDER_INDEX: u32 = 0x2222_2222;
/// The fixed initiator's timestamp.
pub const TIMESTAMP: u64 = 1_764_000_000_000_000_000;

/// A fixed key: `[byte; 32]`.
pub fn key(byte: u8) -> SecretKey {
    SecretKey::from_bytes([byte; 32])
}

/// The fixed initiator's static key.
pub fn initiator() -> SecretKey {
    key(1)
}

/// The fixed responder's static key.
pub fn responder() -> SecretKey {
    key(2)
}

fn initiator_ephemeral() -> SecretKey {
    key(3)
}

fn responder_ephemeral() -> SecretKey {
    key(4)
}

/// The fixed initiator's init to the fixed responder, and its waiting state.
pub fn initiate() -> ([u8; HANDSHAKE_INIT_LEN], AwaitingResponse) {
    start(&initiator(), responder().public_key(), initiator_ephemeral(), INITIATOR_INDEX, TIMESTAMP, Purpose::Link)
        .expect("the fixed keys are not low order")
}

/// The fixed responder's answer to `init`.
pub fn answer(init: &[u8]) -> Result<Accepted, HandshakeError> {
    respond(&responder(), init, responder_ephemeral(), RESPONDER_INDEX, Purpose::Link)
}

/// What each side made of one input.
#[derive(Debug)]
pub struct Outcome {
    /// The fixed responder, taking the input as an init.
    pub responded: Result<Accepted, HandshakeError>,
    /// The fixed initiator, taking the input as the response to its init.
    pub completed: Result<Established, HandshakeError>,
}

/// Runs both sides on `data`.
pub fn outcome(data: &[u8]) -> Outcome {
    let responded = answer(data);
    let (_, waiting) = initiate();
    Outcome { responded, completed: waiting.handle_response(data) }
}

/// `respond` and `handle_response` on arbitrary bytes.
pub fn handshake_respond(data: &[u8]) {
    let Outcome { responded, completed } = outcome(data);
    match (HandshakeInit::new_checked(data), responded) {
        (Err(wire), responded) => assert_eq!(responded, Err(HandshakeError::Wire(wire))),
        (Ok(init), Ok(accepted)) => check_accepted(data, &init, &accepted),
        (Ok(_), Err(e)) => assert!(!matches!(e, HandshakeError::Wire(_) | HandshakeError::WrongIndex { .. }), "{e}"),
    }
    match (HandshakeResponse::new_checked(data), completed) {
        (Err(wire), completed) => assert_eq!(completed, Err(HandshakeError::Wire(wire))),
        (Ok(response), completed) => {
            let repr = HandshakeResponseRepr::parse(&response).expect("a checked response parses");
            match completed {
                Ok(session) => check_completed(data, &repr, &session),
                Err(HandshakeError::WrongIndex { got, expected }) => {
                    assert_eq!((got, expected), (repr.receiver_index, INITIATOR_INDEX));
                }
                Err(e) => {
                    assert_eq!(repr.receiver_index, INITIATOR_INDEX, "{e} before the index check");
                    assert!(matches!(e, HandshakeError::Authentication | HandshakeError::LowOrderKey), "{e}");
                }
            }
        }
    }
}

/// A responder's acceptance agrees with the init, and its response answers it.
fn check_accepted(data: &[u8], init: &HandshakeInit<&[u8]>, accepted: &Accepted) {
    let repr = HandshakeInitRepr::parse(init).expect("a checked init parses");
    let session = &accepted.session;
    assert_eq!((session.role, session.peer), (Role::Responder, repr.static_key));
    assert_eq!((session.local_index, session.remote_index), (RESPONDER_INDEX, repr.sender_index));
    assert_ne!(session.send, session.receive);
    let response = HandshakeResponse::new_checked(&accepted.response[..]).expect("a response is well formed");
    let response = HandshakeResponseRepr::parse(&response).expect("a checked response parses");
    assert_eq!((response.sender_index, response.receiver_index), (RESPONDER_INDEX, repr.sender_index));
    assert_eq!(response.ephemeral, responder_ephemeral().public_key());

    let (own_init, waiting) = initiate();
    if data == own_init {
        assert_eq!(accepted.timestamp, TIMESTAMP);
        let initiator = waiting.handle_response(&accepted.response).expect("the pair completes its own handshake");
        assert_eq!((&initiator.send, &initiator.receive), (&session.receive, &session.send));
    }
}

/// An initiator's completed session agrees with the response.
fn check_completed(data: &[u8], repr: &HandshakeResponseRepr, session: &Established) {
    assert_eq!((session.role, session.peer), (Role::Initiator, responder().public_key()));
    assert_eq!((session.local_index, session.remote_index), (INITIATOR_INDEX, repr.sender_index));
    assert_ne!(session.send, session.receive);
    let accepted = answer(&initiate().0).expect("the fixed responder accepts the fixed init");
    if data == accepted.response {
        assert_eq!((&session.send, &session.receive), (&accepted.session.receive, &accepted.session.send));
    }
}
