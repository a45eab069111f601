//! The peering layer: authenticated links to neighbours over UDP, sans-IO.
//!
//! # Driving it
//!
//! ```text
//! let mut peers = PeerManager::new(secret, PeeringConfig::default(), Box::new(OsEntropy::new()), now, unix_nanos);
//! peers.connect(now, endpoint, peer_key)?;                 // static or discovered peers
//! loop {
//!     peers.handle_datagram(now, from, &bytes);            // handshake (0x03/0x04) and CONTROL (0x02) only
//!     peers.send_control(now, link, &[messages])?;         // from the link and routing engines
//!     if peers.poll_timeout().is_some_and(|t| t <= now) { peers.handle_timeout(now) }
//!     while let Some((to, datagram)) = peers.poll_transmit() { socket.send_to(&datagram, to) }
//!     while let Some(event) = peers.poll_event() { ... }   // Up, Down, Rekeyed, Failed, Message
//! }
//! ```
//! After any `handle_*`, `connect` or `send_control`, drain `poll_transmit`
//! and `poll_event`. Time (`now`, monotonic) and randomness ([`Entropy`])
//! are inputs; nothing here reads a clock or touches a socket.
//!
//! # The protocol
//!
//! - The link handshake ([`mycelium_common::handshake`], `Purpose::Link`)
//!   travels bare: HANDSHAKE_INIT (0x03), HANDSHAKE_RESPONSE (0x04). The
//!   initiator must know the responder's key (IK): from the config, a LAN
//!   beacon, a peer exchange, or a key query ([`crate::discovery`]).
//! - Everything after it is a CONTROL packet ([`session`]): envelope header
//!   (receiver index, counter) as associated data, nonce `control_nonce(counter)`,
//!   the TLV body sealed with the link key. Messages are packed into as few
//!   packets as fit [`PeeringConfig::max_datagram`].
//! - The initiator sends a CONTROL packet (empty body: a keepalive) as soon
//!   as it has the response; the responder installs a session only when the
//!   first packet on it opens (a replayed init thus never yields a link).
//! - **Who the peer is.** The handshake proves the peer holds the static key
//!   it names; its overlay address is derived from that key, so nobody can
//!   appear as an address it does not own. An endpoint dialed with a key
//!   only accepts that key, in its response (IK binds it) and in inits it
//!   sends us ([`DropReason::UnexpectedKey`]).
//! - **Simultaneous initiation.** When an init arrives while our own
//!   handshake with that peer is in flight (first contact or rekey), the
//!   init of the side with the *lower public key* (bytewise) wins: the
//!   lower side drops the other's init ([`DropReason::HandshakeCollision`])
//!   and waits for its response; the higher side abandons its own
//!   handshake and answers. Both end up on the same session in one round trip.
//! - **Replay.** An init's sealed timestamp (wall-clock nanoseconds, from
//!   `unix_nanos` at start plus monotonic time since, strictly increasing)
//!   must exceed the last one accepted on that link; CONTROL counters go
//!   through a replay window; forged packets fail to open. All are dropped
//!   and counted per [`DropReason`], never fatal.
//! - **Rekey.** The initiator of the current session starts a new handshake
//!   `rekey_after_time` (2 min) after it was made; the responder does so
//!   `responder_rekey_slack` (10 s) later if the initiator did not; either
//!   side does once it sealed `rekey_after_packets`. The old session stays
//!   open for receiving for `previous_session_grace` (10 s) after the new
//!   one is confirmed, so packets in flight are not lost. The initiator
//!   confirms a new session with a keepalive on it; while the peer still
//!   sends on the old one, it confirms again (at most once a second). A session is never
//!   used after `reject_after_time` (3 min): if no rekey succeeded by then,
//!   the link is down.
//! - **Dead and backoff.** No authenticated packet for `dead_after` (30 s;
//!   keepalives go out after `keepalive_interval`, 10 s, of silence) takes
//!   the link down. A handshake attempt retransmits fresh inits at 1, 2, 4, 8 s
//!   and gives up after `handshake_timeout` (15 s). Then a dialed peer waits
//!   `min(backoff_max, backoff_initial * 2^attempts)` less up to 25 % jitter
//!   (1 s doubling to 5 min by default) before dialing again; a link that was
//!   up redials after `backoff_initial`.
//! - **Endpoints.** A link is bound to the endpoint it was made with
//!   ([`canonical_endpoint`]); CONTROL packets from elsewhere are dropped
//!   ([`DropReason::WrongEndpoint`]). A peer whose address changes (NAT
//!   rebinding) is seen as dead and dials again; a DNS peer is moved with
//!   [`PeerManager::set_endpoint`].
//! - **Floods.** Inits are answered at most 5 back to back then 1/s per
//!   source address and 200/s overall ([`RateLimits`]); new inbound peers are
//!   refused beyond `max_peers`.

mod backoff;
mod counters;
mod entropy;
mod manager;
mod ratelimit;
mod receive;
pub mod session;
mod state;
mod timers;

#[cfg(test)]
pub(crate) mod harness;
#[cfg(test)]
mod tests;

use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use mycelium_common::identity::PublicKey;
use mycelium_common::time::Timestamp;
use mycelium_common::wire::tlv::ControlMessage;

pub use backoff::delay as backoff_delay;
pub use counters::{DropCounters, DropReason};
pub use entropy::{Entropy, OsEntropy, SeededEntropy};
pub use manager::{ConnectError, PeerInfo, PeerManager, SendError};
pub use ratelimit::{HandshakeLimiter, RateLimits};
pub use state::{LinkState, PeerState, PeerStats};

/// The form endpoints are kept and compared in: an IPv4-mapped IPv6
/// address (what a dual-stack socket reports for an IPv4 peer) becomes
/// IPv4, and IPv6 flow information is cleared; the scope id stays (it
/// names the interface of a link-local peer). Every endpoint that enters
/// the [`PeerManager`] goes through it, so the I/O shell may pass addresses
/// as its socket reports them; it must send to IPv4 endpoints accordingly.
pub fn canonical_endpoint(endpoint: SocketAddr) -> SocketAddr {
    match endpoint {
        SocketAddr::V6(v6) => match v6.ip().to_ipv4_mapped() {
            Some(v4) => SocketAddr::new(v4.into(), v6.port()),
            None => SocketAddr::V6(std::net::SocketAddrV6::new(*v6.ip(), v6.port(), 0, v6.scope_id())),
        },
        v4 => v4,
    }
}

/// One peer link, for as long as the [`PeerManager`] knows its endpoint.
/// The routing and link engines key their neighbours by it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LinkId(pub u64);

impl fmt::Display for LinkId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "link{}", self.0)
    }
}

/// Why a link went down.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DownReason {
    /// Nothing authenticated heard for `dead_after`.
    Timeout,
    /// The session reached `reject_after_time` without a successful rekey.
    SessionExpired,
    /// [`PeerManager::disconnect`].
    Disconnected,
}

/// What the peering layer tells the rest of the daemon.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeerEvent {
    /// A link is established: start link measurement and routing on it.
    Up { link: LinkId, peer: PublicKey, endpoint: SocketAddr },
    /// The link is gone: its neighbour is unreachable through it.
    Down { link: LinkId, peer: PublicKey, endpoint: SocketAddr, reason: DownReason },
    /// New link keys are in use (our rekey, the peer's, or the peer restarted).
    Rekeyed { link: LinkId, peer: PublicKey },
    /// A dial attempt failed; the next one is at `retry_at` (re-resolve a
    /// DNS name and [`PeerManager::set_endpoint`] before then).
    Failed { link: LinkId, peer: PublicKey, endpoint: SocketAddr, attempts: u32, retry_at: Timestamp },
    /// An authenticated control message from the neighbour.
    Message { link: LinkId, message: ControlMessage },
}

/// The peering layer's settings. `Default` gives the documented defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeeringConfig {
    /// Largest CONTROL datagram we send, UDP payload bytes (default 1232:
    /// the IPv6 minimum MTU less IPv6 and UDP headers).
    pub max_datagram: usize,
    /// First init retransmission; each next waits twice as long (default 1 s).
    pub handshake_retransmit: Duration,
    /// A handshake attempt gives up after this long (default 15 s).
    pub handshake_timeout: Duration,
    /// The session's initiator rekeys when it is this old (default 120 s).
    pub rekey_after_time: Duration,
    /// The responder rekeys this much later if the initiator did not (default 10 s).
    pub responder_rekey_slack: Duration,
    /// Either side rekeys after sealing this many packets (default 2^48).
    pub rekey_after_packets: u64,
    /// A session is never used past this age (default 180 s).
    pub reject_after_time: Duration,
    /// The old session's receive key lives this long after a rekey (default 10 s).
    pub previous_session_grace: Duration,
    /// Send an empty CONTROL packet after this long without sending (default 10 s).
    pub keepalive_interval: Duration,
    /// The link is dead after this long without an authenticated packet (default 30 s).
    pub dead_after: Duration,
    /// First redial delay (default 1 s).
    pub backoff_initial: Duration,
    /// Longest redial delay (default 300 s).
    pub backoff_max: Duration,
    /// Peers (dialed and inbound) held at once (default 256).
    pub max_peers: usize,
    pub rate_limits: RateLimits,
}

impl Default for PeeringConfig {
    fn default() -> Self {
        PeeringConfig {
            max_datagram: 1232,
            handshake_retransmit: Duration::from_secs(1),
            handshake_timeout: Duration::from_secs(15),
            rekey_after_time: Duration::from_secs(120),
            responder_rekey_slack: Duration::from_secs(10),
            rekey_after_packets: 1 << 48,
            reject_after_time: Duration::from_secs(180),
            previous_session_grace: Duration::from_secs(10),
            keepalive_interval: Duration::from_secs(10),
            dead_after: Duration::from_secs(30),
            backoff_initial: Duration::from_secs(1),
            backoff_max: Duration::from_secs(300),
            max_peers: 256,
            rate_limits: RateLimits::default(),
        }
    }
}
