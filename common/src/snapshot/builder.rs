//! [`SnapshotBuilder`]: from the routing engine's output to snapshot bytes.
//!
//! ```text
//! let bytes = SnapshotBuilder::new(NodeInfo::from_public_key(&key), generation, now)
//!     .links(links)
//!     .routes(routes)
//!     .build()?          // sorted, checked, indexed RouteSnapshot
//!     .to_bytes()?;      // rkyv bytes, ready for shm::Publisher::publish
//! ```
//!
//! The builder sorts routes by `(prefix, len)` and links by `id` before
//! anything else, so the same set of inputs gives byte-identical output
//! whatever order they arrive in.

use rkyv::util::AlignedVec;

use super::index::{build_slots, lengths_of, prefix_mask, table_len};
use super::schema::{
    ArchivedIndexSlot, ArchivedLink, ArchivedRoute, ArchivedRouteSnapshot, LOCAL, LOCAL_LINK, Link, NodeInfo, Route,
    RouteIndex, RouteSnapshot, SNAPSHOT_VERSION,
};
use crate::time::Timestamp;

/// Why a set of routes and links cannot make a snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BuildError {
    /// A prefix length above 128.
    #[error("route {prefix:02x?}/{len}: prefix length above 128")]
    PrefixLength {
        /// The route's prefix bytes.
        prefix: [u8; 16],
        /// The bad length.
        len: u8,
    },
    /// Bits set after the prefix length.
    #[error("route {prefix:02x?}/{len}: bits set after the prefix length")]
    HostBits {
        /// The route's prefix bytes.
        prefix: [u8; 16],
        /// The length.
        len: u8,
    },
    /// Two routes for the same prefix.
    #[error("two routes for {prefix:02x?}/{len}")]
    DuplicateRoute {
        /// The prefix bytes.
        prefix: [u8; 16],
        /// The length.
        len: u8,
    },
    /// Two links with the same id.
    #[error("two links with id {0}")]
    DuplicateLink(u32),
    /// A link using the id reserved for local delivery.
    #[error("link id {LOCAL} is reserved for local delivery")]
    ReservedLinkId,
    /// A route whose next hop is neither a link in the snapshot nor LOCAL.
    #[error("route {prefix:02x?}/{len}: next hop {next_hop} is not a link")]
    UnknownNextHop {
        /// The prefix bytes.
        prefix: [u8; 16],
        /// The length.
        len: u8,
        /// The missing link id.
        next_hop: u32,
    },
    /// More routes than the index can number.
    #[error("{0} routes do not fit in one snapshot")]
    TooManyRoutes(usize),
    /// More links than an index slot can number (65534).
    #[error("{0} links do not fit in one snapshot")]
    TooManyLinks(usize),
}

/// Serialization failed (rkyv could not allocate its scratch space).
#[derive(Debug, thiserror::Error)]
#[error("serializing the route snapshot: {0}")]
pub struct SerializeError(#[from] rkyv::rancor::Error);

/// Collects one snapshot's routes and links; [`build`](Self::build) sorts,
/// checks and indexes them.
#[derive(Debug, Clone)]
pub struct SnapshotBuilder {
    node: NodeInfo,
    generation: u64,
    created_at: Timestamp,
    routes: Vec<Route>,
    links: Vec<Link>,
}

impl SnapshotBuilder {
    /// An empty snapshot of `node` at `generation`, built at `created_at`.
    pub fn new(node: NodeInfo, generation: u64, created_at: Timestamp) -> Self {
        SnapshotBuilder { node, generation, created_at, routes: Vec::new(), links: Vec::new() }
    }

    /// Adds routes (any order). The first call with a `Vec` takes it over
    /// without copying.
    pub fn routes(mut self, routes: impl IntoIterator<Item = Route>) -> Self {
        if self.routes.is_empty() {
            // Collecting a vec::IntoIter reuses its buffer.
            self.routes = routes.into_iter().collect();
        } else {
            self.routes.extend(routes);
        }
        self
    }

    /// Adds links (any order).
    pub fn links(mut self, links: impl IntoIterator<Item = Link>) -> Self {
        if self.links.is_empty() {
            self.links = links.into_iter().collect();
        } else {
            self.links.extend(links);
        }
        self
    }

    /// Sorts, checks and indexes the inputs.
    pub fn build(self) -> Result<RouteSnapshot, BuildError> {
        let SnapshotBuilder { node, generation, created_at, mut routes, mut links } = self;

        if links.len() >= usize::from(LOCAL_LINK) {
            return Err(BuildError::TooManyLinks(links.len()));
        }
        links.sort_unstable_by_key(|l| l.id);
        if links.iter().any(|l| l.id == LOCAL) {
            return Err(BuildError::ReservedLinkId);
        }
        if let Some(w) = links.windows(2).find(|w| w[0].id == w[1].id) {
            return Err(BuildError::DuplicateLink(w[0].id));
        }

        for r in &routes {
            if r.len > 128 {
                return Err(BuildError::PrefixLength { prefix: r.prefix, len: r.len });
            }
            if u128::from_be_bytes(r.prefix) & !prefix_mask(r.len) != 0 {
                return Err(BuildError::HostBits { prefix: r.prefix, len: r.len });
            }
        }
        // Big-endian u128 order is the byte order of the prefix.
        routes.sort_unstable_by_key(|r| (u128::from_be_bytes(r.prefix), r.len));
        if let Some(w) = routes.windows(2).find(|w| (w[0].prefix, w[0].len) == (w[1].prefix, w[1].len)) {
            return Err(BuildError::DuplicateRoute { prefix: w[0].prefix, len: w[0].len });
        }
        // At most 2^31 slots, so route numbers stay far below EMPTY_SLOT.
        let slots_len = table_len(routes.len()).ok_or(BuildError::TooManyRoutes(routes.len()))?;

        let mut link_pos = Vec::with_capacity(routes.len());
        for r in &routes {
            if r.next_hop == LOCAL {
                link_pos.push(LOCAL_LINK);
                continue;
            }
            match links.binary_search_by_key(&r.next_hop, |l| l.id) {
                Ok(pos) => link_pos.push(pos as u16),
                Err(_) => {
                    return Err(BuildError::UnknownNextHop { prefix: r.prefix, len: r.len, next_hop: r.next_hop });
                }
            }
        }

        let slots = build_slots(&routes, &link_pos, slots_len);
        let lengths = lengths_of(routes.iter().map(|r| &r.len));
        Ok(RouteSnapshot {
            version: SNAPSHOT_VERSION,
            generation,
            created_at_ns: created_at.as_nanos(),
            node,
            routes,
            links,
            index: RouteIndex { slots, lengths },
        })
    }
}

impl RouteSnapshot {
    /// The archived bytes, aligned for [`SnapshotView::validate`](super::SnapshotView::validate).
    pub fn to_bytes(&self) -> Result<AlignedVec, SerializeError> {
        self.to_bytes_in(AlignedVec::new())
    }

    /// Like [`to_bytes`](Self::to_bytes), but into `buf` (cleared first), so
    /// a publisher that keeps its buffer between generations does not fault
    /// in fresh pages for every snapshot.
    pub fn to_bytes_in(&self, mut buf: AlignedVec) -> Result<AlignedVec, SerializeError> {
        // Reserve the whole output up front: no regrowth copies for big tables.
        let estimate = size_of::<ArchivedRouteSnapshot>()
            + self.routes.len() * size_of::<ArchivedRoute>()
            + self.links.len() * size_of::<ArchivedLink>()
            + self.index.slots.len() * size_of::<ArchivedIndexSlot>()
            + self.index.lengths.len()
            + 64;
        buf.clear();
        buf.reserve(estimate);
        Ok(rkyv::api::high::to_bytes_in::<_, rkyv::rancor::Error>(self, buf)?)
    }
}
