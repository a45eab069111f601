//! The simulator's seeded PRNG: the control crate's SplitMix64, shared with
//! the link measurement tests so both draw from one generator.

pub use mycelium_control::rng::Rng;
