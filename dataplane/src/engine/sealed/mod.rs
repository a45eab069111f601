//! `SealedEngine`: the real per-packet work of a shard.
//!
//! - From the TUN: check the inner IPv6 packet (ours, to the overlay), look
//!   up its destination in the route snapshot, take the next counter of the
//!   destination node's session, write the 48-byte routed header in the
//!   headroom, seal the packet in place, append the tag, and queue the whole
//!   thing for the next hop's underlay endpoint. No route or no session: the
//!   packet is punted (rate-limited per destination) so the control daemon
//!   can find a route or run a handshake, and counted.
//! - From the underlay: classify by type. DATA for our /64: find the receive
//!   key by key id, check expiry, source and replay window, open in place,
//!   mark the counter, check the inner packet came from the peer's /64 and is
//!   for ours, and queue the plaintext for the TUN. DATA or ROUTED_HANDSHAKE
//!   for someone else: look up the destination, decrement the hop limit (drop
//!   at zero) and queue the unopened bytes for the next hop. Handshakes,
//!   CONTROL packets and routed handshakes for us: punt to the control daemon.
//!
//! Every refused packet is counted under its own [`DropReason`].
//!
//! State per batch: [`Engine::begin_batch`] polls the route snapshot and key
//! table subscribers (one atomic load each when nothing changed). On a new
//! key table it picks up the [`SessionTable`] another shard already built for
//! that generation, or builds and shares it ([`SharedSessions`]): key
//! schedules run once per session per process, never per packet. On a new
//! route snapshot it rebuilds its link endpoints (ready `SocketAddr`s by
//! link position) and forgets which session each route used: per packet,
//! everything after the lookup is found by the route and link positions the
//! index slot returned, without hashing and without reading the route.

mod endpoints;
mod punt_limit;
mod tun;
mod underlay;

#[cfg(test)]
mod tests;

use std::sync::Arc;

use mycelium_common::address::OverlayAddress;
use mycelium_common::keytable::KeyChannel;
use mycelium_common::shm::{ShmDir, Subscriber};
use mycelium_common::snapshot::RouteChannel;
use mycelium_common::time::Timestamp;
use mycelium_common::wire::ROUTED_HEADER_LEN;
use tracing::warn;

use super::Engine;
use super::fair::FairShare;
use super::links::LinkTraffic;
use crate::batch::{RxBatch, TxQueues};
use crate::sessions::{SessionTable, ShardSessions, SharedSessions};
use endpoints::LinkEndpoints;
use punt_limit::PuntLimiter;

/// Bytes the engine adds in front of a TUN packet: the routed header.
pub const HEADROOM: usize = ROUTED_HEADER_LEN;
/// Bytes the engine adds after a TUN packet: the AEAD tag.
pub const TAILROOM: usize = mycelium_common::crypto::TAG_LEN;

/// What a shard's sealed engine needs to know about its node.
#[derive(Debug, Clone)]
pub struct SealedConfig {
    /// This shard's id: it goes into every nonce this shard makes.
    pub shard: u8,
    /// The node's overlay address.
    pub local: OverlayAddress,
    /// Whether the node has a TUN (false: relay only).
    pub has_tun: bool,
    /// This dataplane's incarnation (see the key table's docs).
    pub epoch: u64,
    /// This shard's cap on transit forwarding, bits per second, shared
    /// fairly between sources ([`crate::engine::fair`]); `None`: no cap.
    pub transit_limit_bps: Option<u64>,
}

/// The sealed engine of one shard. See the module docs.
pub struct SealedEngine {
    config: SealedConfig,
    routes: Subscriber<RouteChannel>,
    keys: Subscriber<KeyChannel>,
    shared: SharedSessions,
    sessions: ShardSessions,
    punts: PuntLimiter,
    transit: super::transit::TransitTable,
    /// Endpoints of the current route snapshot's links.
    endpoints: LinkEndpoints,
    links: LinkTraffic,
    fair: Option<FairShare>,
    now_ns: u64,
}

impl std::fmt::Debug for SealedEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SealedEngine")
            .field("shard", &self.config.shard)
            .field("routes", &self.routes.generation())
            .field("keys", &self.keys.generation())
            .finish()
    }
}

impl SealedEngine {
    /// An engine reading snapshots and key tables published in `dir`, sharing
    /// built session tables with the other shards through `shared`.
    pub fn new(config: SealedConfig, dir: ShmDir, shared: SharedSessions) -> Self {
        SealedEngine {
            config: config.clone(),
            routes: Subscriber::new(dir.clone()),
            keys: Subscriber::new(dir),
            sessions: ShardSessions::new(Arc::new(SessionTable::empty())),
            shared,
            punts: PuntLimiter::new(),
            transit: super::transit::TransitTable::default(),
            endpoints: LinkEndpoints::default(),
            links: LinkTraffic::default(),
            fair: config.transit_limit_bps.map(FairShare::new),
            now_ns: 0,
        }
    }

    fn refresh(&mut self) {
        match self.routes.poll() {
            // The only moment the current view changes: everything kept by
            // route or link position follows it here.
            Ok(mycelium_common::shm::Poll::Updated { .. }) => {
                let view = self.routes.current();
                self.endpoints.rebuild(view.as_ref());
                self.sessions.routes_changed(view.map_or(0, |v| v.route_count()));
                if let Some(view) = view {
                    self.links.resolve(&view);
                }
            }
            Ok(_) => {}
            Err(e) => warn!(shard = self.config.shard, "route snapshot not taken: {e}"),
        }
        match self.keys.poll() {
            Ok(mycelium_common::shm::Poll::Updated { .. }) => {
                if let Some(view) = self.keys.current() {
                    let table = self.shared.refresh(&view, self.config.epoch);
                    self.sessions.install(table);
                }
            }
            Ok(_) => {}
            Err(e) => warn!(shard = self.config.shard, "key table not taken: {e}"),
        }
    }
}

impl Engine for SealedEngine {
    fn tun_headroom(&self) -> usize {
        HEADROOM
    }

    fn tun_tailroom(&self) -> usize {
        TAILROOM
    }

    fn begin_batch(&mut self, now: Timestamp) {
        self.now_ns = now.as_nanos();
        if let Some(fair) = &mut self.fair {
            fair.roll(self.now_ns);
        }
        self.refresh();
    }

    fn transit(&mut self) -> Option<&mut super::transit::TransitTable> {
        Some(&mut self.transit)
    }

    fn links(&mut self) -> Option<&mut LinkTraffic> {
        Some(&mut self.links)
    }

    fn snapshot_generation(&self) -> u64 {
        self.routes.current().map_or(0, |v| v.generation())
    }

    fn process_from_underlay(&mut self, _now: Timestamp, batch: &mut RxBatch, out: &mut TxQueues) {
        let routes = self.routes.current();
        for mut packet in batch.packets_mut() {
            let ctx = underlay::Context {
                config: &self.config,
                now_ns: self.now_ns,
                routes: routes.as_ref(),
                endpoints: &self.endpoints,
                sessions: self.sessions.table(),
                transit: &mut self.transit,
                links: &mut self.links,
                fair: self.fair.as_mut(),
            };
            underlay::handle(ctx, &mut packet, out);
        }
    }

    fn process_from_tun(&mut self, _now: Timestamp, batch: &mut RxBatch, out: &mut TxQueues) {
        let routes = self.routes.current();
        for mut packet in batch.packets_mut() {
            let mut ctx = tun::Context {
                config: &self.config,
                now_ns: self.now_ns,
                routes: routes.as_ref(),
                endpoints: &self.endpoints,
                sessions: &mut self.sessions,
                punts: &mut self.punts,
                links: &mut self.links,
            };
            tun::handle(&mut ctx, &mut packet, out);
        }
    }
}

/// The drop reason for an inner packet that failed its checks.
fn inner_drop(e: crate::inner::InnerError) -> super::counters::DropReason {
    use super::counters::DropReason;
    use crate::inner::InnerError;
    match e {
        InnerError::NotIpv6 => DropReason::NotIpv6,
        InnerError::Spoofed => DropReason::Spoofed,
        InnerError::NotOverlay => DropReason::NotOverlay,
        InnerError::Multicast => DropReason::NotUnicast,
    }
}
