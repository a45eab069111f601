//! The committed seed corpus: every seed passes its target's check, and the
//! files under `corpus/` are exactly what `seeds::all()` builds. Run with
//! `MYCELIUM_WRITE_SEEDS=1` to (re)write them after a format change.

use std::path::PathBuf;

use mycelium_common::handshake::HandshakeError;
use mycelium_common::keytable::KeyTableView;
use mycelium_common::snapshot::AlignedVec;
use mycelium_fuzz::handshake::{self, INITIATOR_INDEX, RESPONDER_INDEX};
use mycelium_fuzz::seeds::{self, Seed, TARGETS};

fn corpus() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("corpus")
}

#[test]
fn every_seed_passes_its_targets_check() {
    for seed in seeds::all() {
        let (_, check) = TARGETS.iter().find(|(t, _)| *t == seed.target).expect("a known target");
        check(&seed.bytes);
    }
}

#[test]
fn committed_seed_files_match_the_generated_corpus() {
    let write = std::env::var_os("MYCELIUM_WRITE_SEEDS").is_some();
    for seed in seeds::all() {
        let dir = corpus().join(seed.target);
        let path = dir.join(format!("seed-{}", seed.name));
        if write {
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(&path, &seed.bytes).unwrap();
        }
        let on_disk = std::fs::read(&path)
            .unwrap_or_else(|e| panic!("{}: {e} (run with MYCELIUM_WRITE_SEEDS=1)", path.display()));
        assert_eq!(on_disk, seed.bytes, "{} is stale (run with MYCELIUM_WRITE_SEEDS=1)", path.display());
    }
}

#[test]
fn every_target_has_seeds() {
    let all = seeds::all();
    for (target, _) in TARGETS {
        assert!(all.iter().any(|s| s.target == target), "{target} has no seed");
    }
}

fn seed(target: &str, name: &str) -> Seed {
    seeds::all().into_iter().find(|s| s.target == target && s.name == name).expect("a known seed")
}

#[test]
fn every_key_table_seed_validates() {
    for seed in seeds::all().into_iter().filter(|s| s.target == "keytable_validate") {
        let mut buf = AlignedVec::<16>::new();
        buf.extend_from_slice(&seed.bytes);
        let view = KeyTableView::validate(&buf).unwrap_or_else(|e| panic!("seed-{}: {e}", seed.name));
        assert_eq!(view.receive_sessions().is_empty(), seed.name == "empty");
    }
}

#[test]
fn the_fixed_pair_completes_its_handshake_from_the_seeds() {
    let accepted =
        handshake::outcome(&seed("handshake_respond", "init").bytes).responded.expect("the init is accepted");
    assert_eq!((accepted.session.local_index, accepted.session.remote_index), (RESPONDER_INDEX, INITIATOR_INDEX));
    assert_eq!(accepted.timestamp, handshake::TIMESTAMP);
    let completed = handshake::outcome(&seed("handshake_respond", "response").bytes);
    let session = completed.completed.expect("the response is accepted");
    assert_eq!((&session.send, &session.receive), (&accepted.session.receive, &accepted.session.send));
    let other = handshake::outcome(&seed("handshake_respond", "init-other-peer").bytes).responded;
    assert_eq!(other.expect("another initiator's init is accepted").session.remote_index, 0x5555);
}

#[test]
fn a_flipped_byte_in_a_handshake_seed_is_refused() {
    for name in ["init", "response"] {
        let mut bytes = seed("handshake_respond", name).bytes;
        *bytes.last_mut().unwrap() ^= 1;
        let outcome = handshake::outcome(&bytes);
        let refused = if name == "init" { outcome.responded.err() } else { outcome.completed.err() };
        assert_eq!(refused, Some(HandshakeError::Authentication), "{name}");
        mycelium_fuzz::handshake_respond(&bytes);
    }
}

#[test]
fn every_address_seed_parses_as_something_or_is_a_near_miss() {
    for seed in seeds::all().into_iter().filter(|s| s.target == "address_parse") {
        let text = std::str::from_utf8(&seed.bytes).unwrap();
        let parses = text.parse::<mycelium_common::address::OverlayAddress>().is_ok()
            || text.parse::<mycelium_common::address::Subnet>().is_ok()
            || text.parse::<mycelium_common::identity::PublicKey>().is_ok();
        let near_miss = ["outside-overlay", "prefix-too-long"].contains(&seed.name);
        assert_eq!(parses, !near_miss, "seed-{}: {text:?}", seed.name);
    }
}
