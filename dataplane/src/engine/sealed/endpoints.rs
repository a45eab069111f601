//! The underlay endpoint of every link of the current route snapshot, as a
//! ready `SocketAddr` with the link's id, by link position.
//!
//! A snapshot stores each link's address in a fixed archived form; turning
//! it into a `SocketAddr` per packet cost about 28 instructions. The engine
//! rebuilds this table once per mapped snapshot ([`LinkEndpoints::rebuild`],
//! when the route subscriber reports a new view) and per packet reads the
//! endpoint and id of the position a lookup returned ([`LinkEndpoints::get`]),
//! without touching the snapshot's link entry.

use std::net::SocketAddr;

use mycelium_common::snapshot::SnapshotView;

/// Endpoints by link position (see the module docs).
#[derive(Debug, Default)]
pub(super) struct LinkEndpoints {
    by_position: Vec<Option<(SocketAddr, u32)>>,
}

impl LinkEndpoints {
    /// Replaces the table with the links of `view` (or none without a view).
    pub fn rebuild(&mut self, view: Option<&SnapshotView<'_>>) {
        self.by_position.clear();
        if let Some(view) = view {
            self.by_position.extend(view.links().map(|link| link.underlay().map(|addr| (addr, link.id()))));
        }
    }

    /// The endpoint and id of the link at `position`; `None` for local
    /// delivery (`LOCAL_LINK`) or a position the snapshot does not have.
    #[inline]
    pub fn get(&self, position: u16) -> Option<(SocketAddr, u32)> {
        self.by_position.get(usize::from(position)).copied().flatten()
    }
}

#[cfg(test)]
mod tests {
    use mycelium_common::identity::PublicKey;
    use mycelium_common::snapshot::{LOCAL_LINK, Link, LinkState, NodeInfo, SnapshotBuilder};
    use mycelium_common::time::Timestamp;

    use super::*;

    #[test]
    fn endpoints_follow_link_positions_and_nothing_else() {
        let peer = PublicKey::from_bytes([7; 32]);
        let a: SocketAddr = "192.0.2.1:9651".parse().unwrap();
        let b: SocketAddr = "[2001:db8::2]:1".parse().unwrap();
        let snap = SnapshotBuilder::new(NodeInfo::from_public_key(&peer), 1, Timestamp::ZERO)
            .links([Link::new(9, b, LinkState::Up, &peer), Link::new(3, a, LinkState::Up, &peer)])
            .build()
            .unwrap();
        let bytes = snap.to_bytes().unwrap();
        let view = SnapshotView::validate(&bytes).unwrap();
        let mut endpoints = LinkEndpoints::default();
        endpoints.rebuild(Some(&view));
        // Links are stored in id order: 3 then 9.
        assert_eq!((endpoints.get(0), endpoints.get(1), endpoints.get(2)), (Some((a, 3)), Some((b, 9)), None));
        assert_eq!(endpoints.get(LOCAL_LINK), None);
        endpoints.rebuild(None);
        assert_eq!(endpoints.get(0), None);
    }
}
