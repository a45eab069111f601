//! The committed seed corpus: every seed passes its target's check, and the
//! files under `corpus/` are exactly what `seeds::all()` builds. Run with
//! `MYCELIUM_WRITE_SEEDS=1` to (re)write them after a format change.

use std::path::PathBuf;

use mycelium_fuzz::seeds::{self, TARGETS};

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
