//! Route requests and seqno requests (RFC 8966 section 3.8): answering,
//! forwarding with hop count and duplicate suppression, and resending our
//! own until they are satisfied.

use std::time::Duration;

use mycelium_common::address::Subnet;
use mycelium_common::identity::PublicKey;
use mycelium_common::time::Timestamp;
use mycelium_common::wire::tlv::{ControlMessage, METRIC_INFINITY, RouteRequest, SeqnoRequest};

use super::config::RouterConfig;
use super::router::Router;
use super::routes::add_metric;
use super::seqno;
use super::table::{Destination, LinkId};
use super::update::checked_prefix;

/// A seqno request this node sent or forwarded, remembered for resending
/// and to suppress duplicates.
#[derive(Debug, Clone, Copy)]
pub(super) struct PendingRequest {
    pub seqno: u16,
    pub sent_at: Timestamp,
    pub resends_left: u8,
    pub to: Destination,
    pub hop_count: u8,
}

impl PendingRequest {
    pub fn deadline(&self, config: &RouterConfig) -> Timestamp {
        self.sent_at + config.request_timeout
    }
}

impl Router {
    pub(super) fn on_route_request(&mut self, now: Timestamp, from: LinkId, r: &RouteRequest) {
        let to = Destination::Link(from);
        //= https://www.rfc-editor.org/rfc/rfc8966#section-3.8.1.1
        //~ When a node receives a route request for a given prefix, it checks its
        //~ route table for a selected route to this exact prefix.
        if r.plen == 0 && r.prefix == [0; 16] {
            self.send_dump(now, to);
            return;
        }
        let Some(prefix) = checked_prefix(r.plen, &r.prefix) else {
            self.stats.malformed_ignored += 1;
            return;
        };
        if prefix == self.local_prefix {
            self.send_update(now, to, prefix, self.local_key, self.seqno, 0);
        } else if let Some(sel) = self.selected_route(&prefix) {
            self.send_update(now, to, prefix, sel.router_id, sel.seqno, sel.metric);
        } else if let Some(adv) = self.prefixes.get(&prefix).and_then(|s| s.advertised) {
            //~ If such a route does not exist, it MUST send a retraction for that
            //~ prefix.
            self.send_update(now, to, prefix, adv.router_id, adv.seqno, METRIC_INFINITY);
        }
    }

    pub(super) fn on_seqno_request(&mut self, now: Timestamp, from: LinkId, r: &SeqnoRequest) {
        let Some(prefix) = checked_prefix(r.plen, &r.prefix) else {
            self.stats.malformed_ignored += 1;
            return;
        };
        //= https://www.rfc-editor.org/rfc/rfc8966#section-3.8.1.2
        //~ If the requested router-id is the node's own router-id, and the
        //~ requested seqno is strictly greater (modulo 2^16) than the node's own
        //~ seqno, the node MUST increase its seqno
        if prefix == self.local_prefix && r.router_id == self.local_key {
            if seqno::greater(r.seqno, self.seqno) {
                self.seqno = r.seqno;
                self.send_update(now, Destination::AllLinks, prefix, self.local_key, self.seqno, 0);
            } else {
                self.send_update(now, Destination::Link(from), prefix, self.local_key, self.seqno, 0);
            }
            return;
        }
        let selected = self.selected_route(&prefix);
        if let Some(sel) = selected
            && (sel.router_id != r.router_id || seqno::greater_or_equal(sel.seqno, r.seqno))
        {
            //~ If the node has a selected route that satisfies the request,
            //~ it SHOULD send an update
            self.send_update(now, Destination::Link(from), prefix, sel.router_id, sel.seqno, sel.metric);
            return;
        }
        //~ Otherwise, if the hop count is 2 or more, the node SHOULD forward
        //~ the request
        if r.hop_count < 2 {
            return;
        }
        let target = match selected {
            Some(sel) => Some(sel.link),
            // No selected route: the neighbour advertising the best route,
            // feasible or not, is the most likely to reach the source.
            None => self.prefixes.get(&prefix).and_then(|s| {
                s.routes
                    .iter()
                    .filter_map(|rt| {
                        let nb = self.neighbours.get(&rt.link)?;
                        let m = add_metric(rt.adv_metric, nb.cost);
                        (m != METRIC_INFINITY && rt.link != from).then_some((m, rt.link))
                    })
                    .min()
                    .map(|(_, link)| link)
            }),
        };
        let Some(target) = target else { return };
        let to = Destination::Link(target);
        if target == from || self.is_duplicate(now, prefix, r.router_id, r.seqno, to) {
            return;
        }
        let req = SeqnoRequest { hop_count: r.hop_count - 1, ..*r };
        self.push_transmit(to, ControlMessage::SeqnoRequest(req));
        self.stats.seqno_requests_forwarded += 1;
        // A request of our own for the same seqno keeps its resends.
        let resends_left =
            self.requests.get(&(prefix, r.router_id)).filter(|p| p.seqno == r.seqno).map_or(0, |p| p.resends_left);
        self.requests.insert(
            (prefix, r.router_id),
            PendingRequest { seqno: r.seqno, sent_at: now, resends_left, to, hop_count: req.hop_count },
        );
    }

    /// Whether a request for `seqno` or newer went the same way within the
    /// timeout. One that went elsewhere (say, towards a next hop that has
    /// since failed) does not count: suppressing on it could starve us.
    fn is_duplicate(&self, now: Timestamp, prefix: Subnet, router_id: PublicKey, seqno: u16, to: Destination) -> bool {
        self.requests
            .get(&(prefix, router_id))
            .is_some_and(|p| p.to == to && seqno::greater_or_equal(p.seqno, seqno) && now < p.deadline(&self.config))
    }

    /// Asks for a seqno newer than our feasibility distance of
    /// `(prefix, router_id)`, which makes every route to it feasible again.
    pub(super) fn request_seqno(&mut self, now: Timestamp, prefix: Subnet, router_id: PublicKey, to: Destination) {
        let Some(fd) = self.sources.get(&prefix, &router_id) else { return };
        let wanted = seqno::plus(fd.seqno, 1);
        if self.is_duplicate(now, prefix, router_id, wanted, to) {
            return;
        }
        let hop_count = self.config.request_hop_count;
        self.send_seqno_request(prefix, router_id, wanted, hop_count, to);
        self.requests.insert(
            (prefix, router_id),
            PendingRequest { seqno: wanted, sent_at: now, resends_left: self.config.request_resends, to, hop_count },
        );
    }

    fn send_seqno_request(&mut self, prefix: Subnet, router_id: PublicKey, seqno: u16, hop_count: u8, to: Destination) {
        let msg = ControlMessage::SeqnoRequest(SeqnoRequest {
            plen: prefix.len(),
            seqno,
            hop_count,
            router_id,
            prefix: prefix.prefix(),
        });
        self.push_transmit(to, msg);
        self.stats.seqno_requests_sent += 1;
    }

    //= https://www.rfc-editor.org/rfc/rfc8966#section-3.8.2.1
    //~ If the node does not receive a reply
    //~ to a seqno request, it MAY resend it
    /// Resends unsatisfied requests of our own; forgets the rest.
    pub(super) fn run_requests(&mut self, now: Timestamp) {
        let due: Vec<((Subnet, PublicKey), PendingRequest)> =
            self.requests.iter().filter(|(_, p)| now >= p.deadline(&self.config)).map(|(k, p)| (*k, *p)).collect();
        for ((prefix, router_id), pending) in due {
            let satisfied = self
                .selected_route(&prefix)
                .is_some_and(|s| s.router_id == router_id && seqno::greater_or_equal(s.seqno, pending.seqno));
            if pending.resends_left == 0 || satisfied {
                self.requests.remove(&(prefix, router_id));
                continue;
            }
            self.send_seqno_request(prefix, router_id, pending.seqno, pending.hop_count, pending.to);
            self.requests.insert(
                (prefix, router_id),
                PendingRequest { sent_at: now, resends_left: pending.resends_left - 1, ..pending },
            );
        }
    }
}

/// How long after the last resend a request is given up: for docs and tests.
pub fn request_lifetime(config: &RouterConfig) -> Duration {
    config.request_timeout * (u32::from(config.request_resends) + 1)
}
