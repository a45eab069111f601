//! Benchmarks live in `benches/benches/*.rs` (criterion); see benches/README.md for the figures and commands.
