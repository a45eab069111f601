//! One peer link's lifecycle, as enum variants that hold their own data:
//!
//! ```text
//!   Idle { retry_at } --timer--> Handshaking --response / first packet--> Established
//!        ^                            |                                     |   ^
//!        |      handshake timeout     |                                     |   | rekey (new session,
//!        +----------(backoff)---------+                                     |   | old receive key kept)
//!        +---------------(dead: nothing heard, or session expired)----------+---+
//! ```
//!
//! A peer we dial (configured or discovered) goes back to `Idle` with a
//! backoff; one that dialed us is forgotten instead.

use std::net::SocketAddr;

use mycelium_common::handshake::AwaitingResponse;
use mycelium_common::identity::PublicKey;
use mycelium_common::time::Timestamp;
use mycelium_common::wire::HANDSHAKE_INIT_LEN;

use super::LinkId;
use super::session::LinkSession;

/// Our half-open handshake as initiator.
#[derive(Debug)]
pub struct Initiating {
    pub waiting: AwaitingResponse,
    pub init: [u8; HANDSHAKE_INIT_LEN],
    /// When this attempt (the first of its inits) started: the timeout runs from here.
    pub started_at: Timestamp,
    pub retransmit_at: Timestamp,
    /// Inits sent in this attempt.
    pub sent: u32,
}

impl Initiating {
    pub fn local_index(&self) -> u32 {
        self.waiting.local_index()
    }
}

/// No session yet: our init is out, or we answered the peer's init and wait
/// for its first packet (which confirms the peer completed it).
#[derive(Debug)]
pub struct Handshaking {
    pub initiating: Option<Initiating>,
    /// Answered, unconfirmed, and until when we wait for confirmation.
    pub responded: Option<(LinkSession, Timestamp)>,
}

/// A working link.
#[derive(Debug)]
pub struct Established {
    /// The session we send on.
    pub current: LinkSession,
    /// After a rekey: the old session, receive only, until the deadline.
    pub previous: Option<(LinkSession, Timestamp)>,
    /// A session we answered (the peer rekeyed or restarted), unconfirmed.
    pub next: Option<(LinkSession, Timestamp)>,
    /// Our own rekey handshake in flight.
    pub rekey: Option<Initiating>,
    pub last_received: Timestamp,
    pub last_sent: Timestamp,
    /// Whether a packet arrived on `current` (proving the peer has it).
    pub heard_on_current: bool,
    /// When we last sent a keepalive to confirm `current` because the peer
    /// still used `previous` (its confirmation may have been lost).
    pub confirmed_at: Timestamp,
}

impl Established {
    pub fn new(current: LinkSession, now: Timestamp, heard: bool) -> Self {
        Established {
            current,
            previous: None,
            next: None,
            rekey: None,
            last_received: now,
            last_sent: now,
            heard_on_current: heard,
            confirmed_at: now,
        }
    }
}

/// Where a peer link is in its lifecycle.
#[derive(Debug)]
pub enum PeerState {
    /// Waiting to dial (again) at `retry_at`.
    Idle {
        retry_at: Timestamp,
    },
    Handshaking(Box<Handshaking>),
    Established(Box<Established>),
}

impl PeerState {
    /// Which of the three states, without its data.
    pub fn kind(&self) -> LinkState {
        match self {
            PeerState::Idle { .. } => LinkState::Idle,
            PeerState::Handshaking(_) => LinkState::Handshaking,
            PeerState::Established(_) => LinkState::Established,
        }
    }
}

/// A peer link's state, as reported (see [`PeerState`] for the data each holds).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum LinkState {
    Idle,
    Handshaking,
    Established,
}

impl LinkState {
    /// A short name for logs, metrics and `mctl`.
    pub fn name(self) -> &'static str {
        match self {
            LinkState::Idle => "idle",
            LinkState::Handshaking => "handshaking",
            LinkState::Established => "established",
        }
    }
}

/// Traffic of one peer link, for metrics (`mycelium_peer_*_total{peer}`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PeerStats {
    /// Authenticated CONTROL packets received, and their datagram bytes.
    pub rx_packets: u64,
    pub rx_bytes: u64,
    /// CONTROL packets sent (keepalives included), and their datagram bytes.
    pub tx_packets: u64,
    pub tx_bytes: u64,
    /// Malformed TLVs inside authenticated packets.
    pub malformed_tlvs: u64,
    /// Sessions made on this link (the first, then each rekey).
    pub sessions: u64,
}

/// One peer link: an endpoint and the key expected there.
#[derive(Debug)]
pub struct Peer {
    pub link: LinkId,
    pub endpoint: SocketAddr,
    /// The peer's static key: the one we dial, or the one that dialed us.
    pub key: PublicKey,
    /// Whether we (re)dial it; a peer that only dialed us is forgotten when it dies.
    pub dial: bool,
    /// Failed attempts since it was last established (drives the backoff).
    pub attempts: u32,
    /// Highest handshake timestamp accepted from this key on this link.
    pub last_timestamp: Option<u64>,
    pub state: PeerState,
    pub stats: PeerStats,
}

impl Peer {
    /// Every index of ours that names this peer (sessions and handshakes).
    pub fn indexes(&self) -> Vec<u32> {
        let mut out = Vec::new();
        match &self.state {
            PeerState::Idle { .. } => {}
            PeerState::Handshaking(h) => {
                out.extend(h.initiating.as_ref().map(Initiating::local_index));
                out.extend(h.responded.as_ref().map(|(s, _)| s.local_index));
            }
            PeerState::Established(e) => {
                out.push(e.current.local_index);
                out.extend(e.previous.as_ref().map(|(s, _)| s.local_index));
                out.extend(e.next.as_ref().map(|(s, _)| s.local_index));
                out.extend(e.rekey.as_ref().map(Initiating::local_index));
            }
        }
        out
    }

    /// Whether a handshake of ours is in flight (for the tie-break).
    pub fn is_initiating(&self) -> bool {
        match &self.state {
            PeerState::Handshaking(h) => h.initiating.is_some(),
            PeerState::Established(e) => e.rekey.is_some(),
            PeerState::Idle { .. } => false,
        }
    }

    pub fn is_up(&self) -> bool {
        matches!(self.state, PeerState::Established(_))
    }

    /// Takes our in-flight handshake whose index is `index`, if any.
    pub fn take_initiating(&mut self, index: u32) -> Option<Initiating> {
        let slot = match &mut self.state {
            PeerState::Handshaking(h) => &mut h.initiating,
            PeerState::Established(e) => &mut e.rekey,
            PeerState::Idle { .. } => return None,
        };
        if slot.as_ref().is_some_and(|i| i.local_index() == index) { slot.take() } else { None }
    }
}
