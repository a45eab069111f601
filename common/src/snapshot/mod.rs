//! The route snapshot: what the control daemon publishes and every dataplane
//! shard maps read-only to forward packets.
//!
//! How to use it:
//! - Control daemon: [`SnapshotBuilder`] (node identity, generation, time,
//!   routes and links in any order) → [`RouteSnapshot`] →
//!   [`RouteSnapshot::to_bytes`] → [`shm::Publisher::publish`](crate::shm::Publisher::publish)
//!   on [`shm::ROUTES`](crate::shm::ROUTES). The same inputs always give the
//!   same bytes.
//! - Dataplane shard: a [`Subscriber<RouteChannel>`](crate::shm::Subscriber)
//!   validates each new file once ([`SnapshotView::validate`]) and hands out
//!   [`SnapshotView`]s; per packet, [`SnapshotView::lookup`] does a
//!   longest-prefix match and returns a [`RouteHit`]: the route (its
//!   `router_id` is the destination node's public key, which selects the
//!   end-to-end session in the dataplane's separate key table) and the
//!   [`NextHop`] (a link, with its underlay address, or local delivery),
//!   plus the route's and the link's positions, read from the index slot
//!   alone, so a shard that keys its per-route and per-link state by them
//!   needs one cache miss per lookup.
//!
//! Layout of the schema: [`schema`]; the lookup index (an open-addressing
//! hash table per snapshot, built by the writer and proved consistent by
//! validation): [`index`]; validation: [`validate`].

mod builder;
pub mod index;
pub mod schema;
pub mod validate;
mod view;

#[cfg(test)]
mod tests;

pub use builder::{BuildError, SerializeError, SnapshotBuilder};
pub use rkyv::util::AlignedVec;
pub use schema::{
    IndexSlot, LOCAL, LOCAL_LINK, Link, LinkState, NodeInfo, Route, RouteIndex, RouteSnapshot, SNAPSHOT_VERSION,
    Underlay,
};
pub use validate::SnapshotError;
pub use view::{LinkView, NextHop, RouteHit, RouteView, SnapshotView};

use crate::shm::{Channel, ChannelId, ROUTES};

/// The route snapshot channel for [`Subscriber`](crate::shm::Subscriber):
/// files on [`ROUTES`], validated by [`SnapshotView::validate`].
#[derive(Debug, Clone, Copy)]
pub struct RouteChannel;

impl Channel for RouteChannel {
    const ID: ChannelId = ROUTES;
    type View<'a> = SnapshotView<'a>;
    type Error = SnapshotError;

    fn validate(bytes: &[u8]) -> Result<SnapshotView<'_>, SnapshotError> {
        SnapshotView::validate(bytes)
    }

    fn shorten<'short, 'long: 'short>(view: SnapshotView<'long>) -> SnapshotView<'short> {
        view
    }
}
