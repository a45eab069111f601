//! Packets from the TUN: check, look up, seal, send.

use mycelium_common::address::OverlayAddress;
use mycelium_common::crypto::Seal;
use mycelium_common::snapshot::{NextHop, SnapshotView};
use mycelium_common::wire::{DEFAULT_HOP_LIMIT, ROUTED_HEADER_LEN, RoutedKind, RoutedPacket, RoutedRepr};

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
    let NextHop::Link(link) = hit.next_hop else {
        return out.drop_packet(id, DropReason::NotOverlay);
    };
    let Some(endpoint) = link.underlay() else {
        return out.drop_packet(id, DropReason::NoRoute);
    };
    let ticket = match ctx.sessions.next_send(ctx.now_ns, hit.route.router_id()) {
        Ok(t) => t,
        Err(SendError::NoSession | SendError::Expired | SendError::Exhausted) => {
            return punt_or_drop(ctx, packet, &addrs.destination, PuntKind::NoSession, DropReason::NoSession, out);
        }
    };
    if packet.headroom() < ROUTED_HEADER_LEN || packet.tailroom() < TAILROOM {
        return out.drop_packet(id, DropReason::InvalidOutput);
    }
    let inner_range = packet.range();
    let range = inner_range.start - ROUTED_HEADER_LEN..inner_range.end + TAILROOM;
    let buf = &mut packet.buffer_mut()[range.clone()];
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
    if repr.emit(buf).is_err() {
        return out.drop_packet(id, DropReason::InvalidOutput);
    }
    let mut routed = RoutedPacket::new_unchecked(buf);
    let (aad, nonce) = (routed.aad(), routed.nonce());
    let Some((payload, tag)) = routed.payload_and_tag_mut() else {
        return out.drop_packet(id, DropReason::InvalidOutput);
    };
    match ticket.key.cipher().seal_in_place(nonce, &aad, payload) {
        Ok(t) => *tag = t,
        Err(_) => return out.drop_packet(id, DropReason::InvalidOutput),
    }
    ctx.links.count_tx(link.id(), range.len());
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
