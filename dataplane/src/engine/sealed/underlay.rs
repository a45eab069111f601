//! Datagrams from the underlay: punt, deliver or forward.

use mycelium_common::crypto::{Open, ReplayError};
use mycelium_common::snapshot::SnapshotView;
use mycelium_common::wire::{self, PacketType, ROUTED_HEADER_LEN, RoutedPacket, WireError};

use super::endpoints::LinkEndpoints;
use super::{SealedConfig, inner_drop};
use crate::batch::{PuntKind, RxPacket, TxQueues};
use crate::engine::counters::DropReason;
use crate::engine::fair::FairShare;
use crate::engine::links::LinkTraffic;
use crate::engine::transit::TransitTable;
use crate::inner;
use crate::sessions::{ReceiveError, SessionTable};

pub(super) struct Context<'a, 'r> {
    pub config: &'a SealedConfig,
    pub now_ns: u64,
    pub routes: Option<&'a SnapshotView<'r>>,
    pub endpoints: &'a LinkEndpoints,
    pub sessions: &'a SessionTable,
    pub transit: &'a mut TransitTable,
    pub links: &'a mut LinkTraffic,
    pub fair: Option<&'a mut FairShare>,
}

pub(super) fn handle(ctx: Context<'_, '_>, packet: &mut RxPacket<'_>, out: &mut TxQueues) {
    let Context { config, now_ns, routes, endpoints, sessions, transit, links, fair } = ctx;
    let id = packet.id();
    let kind = match wire::classify(packet.data()) {
        Ok(k) => k,
        Err(e) => return out.drop_packet(id, wire_drop(e)),
    };
    if !kind.is_routed() {
        // CONTROL and link handshakes: the control daemon authenticates them.
        return out.punt(id, packet.range(), PuntKind::ControlFromUnderlay);
    }
    let range = packet.range();
    if let Some(from) = packet.peer() {
        links.count_rx(from, range.len());
    }
    let mut routed = match RoutedPacket::new_checked(packet.data_mut()) {
        Ok(p) => p,
        Err(e) => return out.drop_packet(id, wire_drop(e)),
    };
    let destination = routed.destination();
    if !inner::in_slash_64(&destination, config.local.as_bytes()) {
        return forward(Forwarding { routes, endpoints, transit, links, fair, now_ns }, &mut routed, range, id, out);
    }
    if kind == PacketType::RoutedHandshake {
        return out.punt(id, range, PuntKind::ControlFromUnderlay);
    }
    if !config.has_tun {
        return out.drop_packet(id, DropReason::NoTun);
    }
    let Some(key) = sessions.receiver(routed.key_id()) else {
        return out.drop_packet(id, DropReason::NoSession);
    };
    let (source, shard, counter) = (routed.source(), routed.shard(), routed.counter());
    if let Err(e) = key.check(now_ns, &source, shard, counter) {
        return out.drop_packet(id, receive_drop(e));
    }
    let (aad, nonce) = (routed.aad(), routed.nonce());
    let Some((payload, tag)) = routed.payload_and_tag_mut() else {
        return out.drop_packet(id, DropReason::Malformed);
    };
    let tag = *tag;
    if key.cipher().open_in_place(nonce, &aad, payload, &tag).is_err() {
        return out.drop_packet(id, DropReason::AuthFailed);
    }
    if let Err(e) = key.accept(shard, counter) {
        return out.drop_packet(id, receive_drop(e));
    }
    if let Err(e) = inner::check_incoming(routed.payload(), key.peer(), config.local.as_bytes()) {
        return out.drop_packet(id, inner_drop(e));
    }
    let plaintext = range.start + ROUTED_HEADER_LEN..range.end - mycelium_common::crypto::TAG_LEN;
    out.write_tun(id, plaintext);
}

/// Transit: look up, decrement the hop limit, send on unopened.
/// What forwarding a transit packet reads and counts.
struct Forwarding<'a, 'r> {
    routes: Option<&'a SnapshotView<'r>>,
    endpoints: &'a LinkEndpoints,
    transit: &'a mut TransitTable,
    links: &'a mut LinkTraffic,
    fair: Option<&'a mut FairShare>,
    now_ns: u64,
}

fn forward(
    Forwarding { routes, endpoints, transit, links, fair, now_ns }: Forwarding<'_, '_>,
    routed: &mut RoutedPacket<&mut [u8]>,
    range: std::ops::Range<usize>,
    id: crate::batch::PacketId,
    out: &mut TxQueues,
) {
    let Some(routes) = routes else {
        return out.drop_packet(id, DropReason::NoSnapshot);
    };
    let Some(hit) = routes.lookup(&routed.destination()) else {
        return out.drop_packet(id, DropReason::NoRoute);
    };
    // No endpoint: the snapshot says "local" for an address outside our
    // /64 (a route for a subnet we do not serve), nothing to deliver it to.
    let Some((endpoint, link_id)) = endpoints.get(hit.link_index) else {
        return out.drop_packet(id, DropReason::NoRoute);
    };
    match routed.decrement_hop_limit() {
        Some(_) => {
            let slot = transit.slot(&routed.source());
            if let Some(fair) = fair
                && !fair.admit(slot, range.len(), now_ns)
            {
                return out.drop_packet(id, DropReason::TransitLimit);
            }
            transit.count_at(slot, range.len());
            links.count_tx(link_id, range.len());
            out.send_udp(id, range, endpoint)
        }
        None => out.drop_packet(id, DropReason::HopLimit),
    }
}

fn wire_drop(e: WireError) -> DropReason {
    match e {
        WireError::BadVersion => DropReason::BadVersion,
        WireError::UnknownType | WireError::WrongType => DropReason::UnknownType,
        _ => DropReason::Malformed,
    }
}

fn receive_drop(e: ReceiveError) -> DropReason {
    match e {
        ReceiveError::Expired => DropReason::SessionExpired,
        ReceiveError::WrongPeer => DropReason::WrongPeer,
        ReceiveError::Replay(ReplayError::Duplicate) => DropReason::Replayed,
        ReceiveError::Replay(ReplayError::TooOld) => DropReason::TooOld,
    }
}
