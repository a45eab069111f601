//! Foundation of the mycelium mesh agent, shared by the control daemon, the
//! dataplane and the tools.
//!
//! - [`identity`]: a node's x25519 key pair and its on-disk key file.
//! - [`address`]: the overlay IPv6 address (and /64 subnet) a public key owns.
//! - [`crypto`]: the packet AEAD behind a small in-place trait, counter nonces,
//!   replay windows and session key derivation.
//! - [`handshake`]: the identity-proving, forward-secret key exchange for
//!   links and end-to-end sessions.
//! - [`keytable`]: the end-to-end session keys the control daemon installs in
//!   the dataplane through shared memory.
//! - [`wire`]: the packet formats (routed DATA header, CONTROL envelope and
//!   its TLVs, handshake messages) as checked zero-copy views plus `Repr`s.
//! - [`time`]: [`Timestamp`](time::Timestamp), monotonic nanoseconds that mean
//!   the same thing in every process of one host.
//! - [`snapshot`]: the route snapshot (rkyv schema, deterministic builder,
//!   validation, zero-copy longest-prefix-match lookups).
//! - [`shm`]: publishing snapshots through `/dev/shm` (one writer, lock-free
//!   readers that validate each new file once).
//!
//! Nothing in this crate reads the clock or does I/O except the explicitly
//! named shells (`Timestamp::now`, key file load/save, and the shared-memory
//! publisher and reader).

pub mod address;
pub mod crypto;
pub mod handshake;
pub mod identity;
pub mod keytable;
pub mod shm;
pub mod snapshot;
pub mod time;
pub mod wire;
