//! Foundation of the mycelium mesh agent, shared by the control daemon, the
//! dataplane and the tools.
//!
//! - [`identity`]: a node's x25519 key pair and its on-disk key file.
//! - [`address`]: the overlay IPv6 address (and /64 subnet) a public key owns.
//! - [`crypto`]: the packet AEAD behind a small in-place trait, counter nonces,
//!   replay windows and session key derivation.
//! - [`wire`]: the packet formats (routed DATA header, CONTROL envelope and
//!   its TLVs, handshake messages) as checked zero-copy views plus `Repr`s.
//! - [`time`]: [`Timestamp`](time::Timestamp), monotonic nanoseconds that mean
//!   the same thing in every process of one host.
//!
//! Nothing in this crate reads the clock or does I/O except the explicitly
//! named shells (`Timestamp::now`, key file load/save, and the shared-memory
//! publisher and reader).

pub mod address;
pub mod crypto;
pub mod identity;
pub mod time;
pub mod wire;
