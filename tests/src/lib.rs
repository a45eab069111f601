//! Support for the end-to-end tests: network namespaces and processes the
//! tests create and always clean up.
//!
//! - [`netns`]: namespaces, veth pairs, a checked TCP transfer (the lab's,
//!   re-exported from `mycelium_tools::lab::netns`);
//! - [`node`]: a real `myceliumd` (with its real dataplane) in a namespace;
//! - [`stream`]: a checked TCP stream that measures its longest pause (the
//!   lab's, re-exported);
//! - [`emu`]: an `mlab-emu` link emulator between two nodes.
//!
//! The tests run the workspace's binaries from the target directory, so run
//! them with `cargo test --workspace --all-targets` (which builds them).

pub mod emu;
pub use mycelium_tools::lab::{netns, stream};
pub mod node;
