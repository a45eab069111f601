//! The route engine: a Babel-derived distance-vector protocol (RFC 8966)
//! over measured link costs, sans-IO.
//!
//! Router ids are node public keys, and an update for a prefix is accepted
//! only when the router id's overlay address owns the prefix (its /64 covers
//! it). A gateway authorisation may later widen this rule; it is the single
//! check in `Router::owns`.
//!
//! Loop freedom holds at every instant: a route is only selected when it is
//! feasible against this node's source table (section 3.5.1), whatever the
//! hysteresis, holds or timers say.
//!
//! # Driving it
//!
//! ```text
//! let mut router = Router::new(now, local_key, RouterConfig::default());
//! loop {
//!     // One input at a time, each with the current time:
//!     router.handle_neighbour(now, link, key, cost, smoothed); // link layer: up, cost change, down (METRIC_INFINITY)
//!     router.handle_message(now, link, &msg);                  // a control message from a neighbour
//!     router.handle_timeout(now);                              // once now >= router.poll_timeout()
//!     // After any handle_*, drain every poll_* until it returns None:
//!     while let Some(t) = router.poll_transmit() { send(t.to, t.msg) }   // Destination::Link or AllLinks
//!     while let Some(e) = router.poll_event() { log(e) }                 // route changes, hijacks ignored
//!     if let Some(table) = router.poll_route_table() { publish(table) }  // when selected routes changed
//!     arm_timer(router.poll_timeout());
//! }
//! ```
//!
//! The engine never reads the clock, opens a socket or spawns a thread.
//! The route table is built only when polled, and only when a selected next
//! hop changed since the last one (metric changes alone do not make a new
//! table; its metrics and fallbacks are those of the moment it was built).
//!
//! # Hysteresis
//!
//! A selected route is replaced only by one that is better on both the
//! current and the smoothed metric by `max(16, 12 %)` of the selected
//! route's metric (`RouterConfig::hysteresis_*`), and a link that comes back
//! after being down cannot take a prefix away from a working route until it
//! has been up for `neighbour_hold` (2 s). A lost route is replaced at once
//! by the best feasible alternative.

// RFC citations: `//= <url>#section-X` names the section a piece of code
// implements; the `//~` lines under it paraphrase the requirement. They are
// not verbatim (s2n-quic's `//#`): no copy of RFC 8966 was reachable when
// this was written, so they should be swapped for exact quotes.

mod config;
mod requests;
mod router;
mod routes;
mod seqno;
mod source;
mod table;
mod update;

#[cfg(test)]
mod tests;

pub use config::RouterConfig;
pub use requests::request_lifetime;
pub use router::{Router, RouterStats};
pub use seqno::{greater as seqno_greater, less as seqno_less};
pub use source::{Distance, SourceTable};
pub use table::{Destination, LinkId, RouteEntry, RouteInfo, RouteTable, RouterEvent, Transmit};
