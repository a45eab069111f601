//! Packets from the TUN: check, look up, seal, send.

use mycelium_common::address::OverlayAddress;
use mycelium_common::crypto::Seal;
use mycelium_common::snapshot::{LOCAL_LINK, SnapshotView};
use mycelium_common::wire::{DEFAULT_HOP_LIMIT, ROUTED_HEADER_LEN, RoutedKind, RoutedRepr};

use super::endpoints::LinkEndpoints;
use super::punt_limit::PuntLimiter;
use super::{SealedConfig, TAILROOM, inner_drop};
use crate::batch::{PuntKind, RxPacket, TxQueues};
use crate::engine::counters::DropReason;
use crate::engine::links::LinkTraffic;
use crate::inner;
use crate::sessions::{SendError, ShardSessions};

pub(super) struct Context<'a, 'r> {
    pub config: &'a SealedConfig,
    pub now_ns: u64,
    pub routes: Option<&'a SnapshotView<'r>>,
    pub endpoints: &'a LinkEndpoints,
    pub sessions: &'a mut ShardSessions,
    pub punts: &'a mut PuntLimiter,
    pub links: &'a mut LinkTraffic,
}

pub(super) fn handle(ctx: &mut Context<'_, '_>, packet: &mut RxPacket<'_>, out: &mut TxQueues) {
    let id = packet.id();
    let local = ctx.config.local.as_bytes();
    let addrs = match inner::check_outgoing(packet.data(), local) {
        Ok(a) => a,
        Err(e) => return out.drop_packet(id, inner_drop(e)),
    };
    if inner::in_slash_64(&addrs.destination, local) {
        return out.drop_packet(id, DropReason::NotOverlay);
    }
    let Some(routes) = ctx.routes else {
        return out.drop_packet(id, DropReason::NoSnapshot);
    };
    let Some(hit) = routes.lookup(&addrs.destination) else {
        return punt_or_drop(ctx, packet, &addrs.destination, PuntKind::NoRoute, DropReason::NoRoute, out);
    };
    if hit.link_index == LOCAL_LINK {
        return out.drop_packet(id, DropReason::NotOverlay);
    }
    let Some((endpoint, link_id)) = ctx.endpoints.get(hit.link_index) else {
        return out.drop_packet(id, DropReason::NoRoute);
    };
    // The router id is read only on the route's first packet (see ShardSessions).
    let ticket = match ctx.sessions.next_send_for_route(ctx.now_ns, hit.route_index, hit.route.router_id()) {
        // The session's peer accepts only packets for its own /64: never
        // seal for another node, whatever the route says.
        Ok(t) if inner::in_slash_64(&addrs.destination, t.key.peer()) => t,
        Ok(_) | Err(SendError::NoSession | SendError::Expired | SendError::Exhausted) => {
            return punt_or_drop(ctx, packet, &addrs.destination, PuntKind::NoSession, DropReason::NoSession, out);
        }
    };
    if packet.headroom() < ROUTED_HEADER_LEN || packet.tailroom() < TAILROOM {
        return out.drop_packet(id, DropReason::InvalidOutput);
    }
    let inner_range = packet.range();
    let range = inner_range.start - ROUTED_HEADER_LEN..inner_range.end + TAILROOM;
    let Some((header, rest)) = packet.buffer_mut()[range.clone()].split_first_chunk_mut::<ROUTED_HEADER_LEN>() else {
        return out.drop_packet(id, DropReason::InvalidOutput);
    };
    let Some((payload, tag)) = rest.split_last_chunk_mut::<TAILROOM>() else {
        return out.drop_packet(id, DropReason::InvalidOutput);
    };
    let Ok(destination) = OverlayAddress::from_bytes(addrs.destination) else {
        return out.drop_packet(id, DropReason::NotOverlay);
    };
    let repr = RoutedRepr {
        kind: RoutedKind::Data,
        hop_limit: DEFAULT_HOP_LIMIT,
        shard: ctx.config.shard,
        key_id: ticket.key.key_id(),
        counter: ticket.counter,
        source: ctx.config.local,
        destination,
        payload_len: inner_range.len(),
    };
    let aad = repr.emit_header(header);
    match ticket.key.cipher().seal_in_place(repr.nonce(), &aad, payload) {
        Ok(t) => *tag = t,
        Err(_) => return out.drop_packet(id, DropReason::InvalidOutput),
    }
    ctx.links.count_tx(link_id, range.len());
    out.send_udp(id, range, endpoint);
}

fn punt_or_drop(
    ctx: &mut Context<'_, '_>,
    packet: &RxPacket<'_>,
    destination: &[u8; 16],
    kind: PuntKind,
    reason: DropReason,
    out: &mut TxQueues,
) {
    if ctx.punts.allow(ctx.now_ns, destination) {
        out.punt(packet.id(), packet.range(), kind);
    } else {
        out.drop_packet(packet.id(), reason);
    }
}
