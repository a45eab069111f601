//! Finding peers: static peers from the config, peer exchange between
//! neighbours, and LAN beacons; sans-IO except the explicit shells
//! ([`SystemResolver`], [`beacon::LanSocket`]).
//!
//! # Driving it
//!
//! [`Discovery`] sits next to the [`PeerManager`](crate::peer::PeerManager) and tells it whom to dial:
//!
//! ```text
//! let mut discovery = Discovery::new(DiscoveryConfig { .. }, peers.local_public_key(), static_peers, now);
//! loop {
//!     if now >= discovery.poll_timeout() { discovery.handle_timeout(now, &mut peers, &mut resolver) }
//!     for event in peer events { discovery.handle_event(now, &event, &mut peers, &mut resolver) }
//!     for (from, beacon) in lan_socket / punted key queries { discovery.handle_beacon(now, from, &beacon, via_lan, &mut peers) }
//!     while let Some((to, bytes)) = discovery.poll_transmit() { send(to, bytes) }   // key queries and answers
//!     every BEACON_INTERVAL, if lan_discovery: lan_socket.announce(&discovery.beacon())
//! }
//! ```
//!
//! - **Static peers** are dialed at start and kept: the [`PeerManager`](crate::peer::PeerManager)
//!   redials them with its backoff; on each failure ([`PeerEvent::Failed`](crate::peer::PeerEvent::Failed))
//!   or loss of the link, a DNS name is resolved again and the link moved to the new address
//!   before the next attempt. A static peer without a key in the config is
//!   first asked for it with a beacon query ([`beacon`]), with backoff.
//! - **Peer exchange**: every `exchange_interval` (60 s), and one second
//!   after any link comes up (so a new neighbour learns our peers at once), each neighbour gets
//!   the endpoints and keys of up to `exchange_entries` (16) of the peers we
//!   dialed (their endpoints accept handshakes; inbound peers' source
//!   addresses may be NAT mappings), except itself, four per
//!   [`PeerExchange`](mycelium_common::wire::tlv::PeerExchange) TLV.
//! - **Candidates**: endpoints learnt from peer exchange and LAN beacons, at
//!   most `max_candidates` (64), are dialed while the node has fewer than
//!   `target_peers` established or handshaking links; a candidate that
//!   failed `candidate_attempts` (3) times is dropped.

pub mod beacon;
pub mod candidates;
mod engine;
pub mod static_peer;

#[cfg(test)]
mod lan_tests;
#[cfg(test)]
mod tests;

use std::time::Duration;

pub use beacon::{Beacon, LanSocket};
pub use candidates::{Candidate, Candidates, Source};
pub use engine::Discovery;
pub use static_peer::{Host, PeerUrlError, Resolver, StaticPeer, SystemResolver};

/// Discovery settings. `Default` gives the documented defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiscoveryConfig {
    /// Our UDP port (announced in beacons).
    pub port: u16,
    /// Links the node tries to keep, dialing candidates while below (default 8).
    pub target_peers: usize,
    /// Learn peers from LAN beacons (default true).
    pub lan: bool,
    /// How often neighbours get a peer exchange (default 60 s).
    pub exchange_interval: Duration,
    /// Endpoints sent to each neighbour per exchange (default 16).
    pub exchange_entries: usize,
    /// Learnt candidates kept (default 64).
    pub max_candidates: usize,
    /// Failed dial attempts after which a candidate is dropped (default 3).
    pub candidate_attempts: u32,
    /// First retry of a static peer that could not be resolved or did not
    /// tell its key (default 1 s, doubling).
    pub retry_initial: Duration,
    /// Longest such retry (default 300 s).
    pub retry_max: Duration,
}

impl Default for DiscoveryConfig {
    fn default() -> Self {
        DiscoveryConfig {
            port: 9651,
            target_peers: 8,
            lan: true,
            exchange_interval: Duration::from_secs(60),
            exchange_entries: 16,
            max_candidates: 64,
            candidate_attempts: 3,
            retry_initial: Duration::from_secs(1),
            retry_max: Duration::from_secs(300),
        }
    }
}
