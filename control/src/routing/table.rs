//! What the engine hands out: the route table snapshot and route events.
//!
//! Both are deterministic: entries sorted by prefix, fallbacks sorted by
//! (metric, link), so the same inputs give the same table byte for byte.

use std::fmt;

use mycelium_common::address::Subnet;
use mycelium_common::identity::PublicKey;

/// A link to a neighbour, numbered by whoever drives the engine. Several
/// links may lead to the same neighbour.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LinkId(pub u32);

impl fmt::Display for LinkId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "link{}", self.0)
    }
}

/// One usable route to a prefix, through one neighbour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RouteInfo {
    /// The link to the next hop.
    pub link: LinkId,
    /// The next hop.
    pub neighbour: PublicKey,
    /// Link cost plus the neighbour's advertised metric.
    pub metric: u16,
    /// The same with the link's smoothed cost.
    pub smoothed_metric: u16,
    pub seqno: u16,
    /// The node that originates the prefix.
    pub router_id: PublicKey,
}

/// The selected route to one prefix and the feasible alternatives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteEntry {
    pub prefix: Subnet,
    pub selected: RouteInfo,
    /// Feasible, finite routes through other links, best first. Any of them
    /// was loop-free when the table was made.
    pub fallbacks: Vec<RouteInfo>,
}

/// Every prefix this node can reach, sorted by prefix.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RouteTable {
    pub entries: Vec<RouteEntry>,
}

impl RouteTable {
    /// The entry for exactly `prefix`.
    pub fn get(&self, prefix: &Subnet) -> Option<&RouteEntry> {
        self.entries.binary_search_by(|e| e.prefix.cmp(prefix)).ok().map(|i| &self.entries[i])
    }
}

/// Something the engine reports, drained with
/// [`Router::poll_event`](super::Router::poll_event).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouterEvent {
    /// The selected next hop of `prefix` changed (`None`: unreachable).
    RouteChanged { prefix: Subnet, from: Option<(LinkId, PublicKey)>, to: Option<(LinkId, PublicKey)> },
    /// An update was dropped because its router id does not own the prefix.
    HijackIgnored { prefix: Subnet, router_id: PublicKey, link: LinkId },
}

/// Where a control message goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Destination {
    /// One link (unicast).
    Link(LinkId),
    /// Every link this node has (Babel's multicast).
    AllLinks,
}

/// A control message to send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transmit {
    pub to: Destination,
    pub msg: mycelium_common::wire::tlv::ControlMessage,
    /// Split horizon with poisoned reverse: the neighbour an update's route
    /// goes through, which must hear it as a retraction (its route via us
    /// would come straight back to it). Send with [`Transmit::message_for`].
    pub poison: Option<PublicKey>,
}

impl Transmit {
    /// The message as sent on a link to `neighbour`: an update for a route
    /// through that neighbour goes out with an infinite metric.
    pub fn message_for(&self, neighbour: &PublicKey) -> mycelium_common::wire::tlv::ControlMessage {
        match self.msg {
            mycelium_common::wire::tlv::ControlMessage::Update(mut u) if self.poison.as_ref() == Some(neighbour) => {
                u.metric = mycelium_common::wire::tlv::METRIC_INFINITY;
                mycelium_common::wire::tlv::ControlMessage::Update(u)
            }
            msg => msg,
        }
    }
}
