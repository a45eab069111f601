//! Receiving updates (RFC 8966 section 3.5.3 and 3.5.4).

use mycelium_common::address::Subnet;
use mycelium_common::time::Timestamp;
use mycelium_common::wire::tlv::{METRIC_INFINITY, Update};

use super::router::Router;
use super::routes::{StoredRoute, add_metric};
use super::seqno;
use super::table::{Destination, LinkId, RouterEvent};

/// The prefix of a TLV, if it is well formed (length at most 128, no bits
/// set after it).
pub(super) fn checked_prefix(plen: u8, bytes: &[u8; 16]) -> Option<Subnet> {
    let subnet = Subnet::new(*bytes, plen).ok()?;
    (subnet.prefix() == *bytes).then_some(subnet)
}

impl Router {
    pub(super) fn on_update(&mut self, now: Timestamp, from: LinkId, u: &Update) {
        self.stats.updates_received += 1;
        let Some(nb) = self.neighbours.get(&from).copied() else { return };
        let Some(prefix) = checked_prefix(u.plen, &u.prefix) else {
            self.stats.malformed_ignored += 1;
            return;
        };
        // Our own announcements, echoed back by a neighbour.
        if u.router_id == self.local_key {
            return;
        }
        // Router ids are public keys, and a key owns exactly the /64 of its
        // overlay address: anything else is a hijack attempt.
        if !self.owns(&u.router_id, &prefix) {
            self.stats.hijacks_ignored += 1;
            self.push_event(RouterEvent::HijackIgnored { prefix, router_id: u.router_id, link: from });
            return;
        }

        let existing = self.prefixes.get(&prefix).and_then(|s| s.route(from)).copied();

        //= https://www.rfc-editor.org/rfc/rfc8966#section-3.5.4
        //~ If the metric field of the update is infinite (a retraction)
        if u.metric == METRIC_INFINITY {
            if existing.is_some() {
                if let Some(state) = self.prefixes.get_mut(&prefix) {
                    state.remove(from);
                }
                self.refresh(now, prefix);
            }
            return;
        }

        let feasible = self.sources.is_feasible(&prefix, &u.router_id, u.seqno, u.metric);
        let route = StoredRoute {
            link: from,
            router_id: u.router_id,
            seqno: u.seqno,
            adv_metric: u.metric,
            expires: now + self.config.expiry(u.interval_cs),
        };
        // The common case, a periodic refresh of an unchanged feasible
        // route: only its expiry moves, so selection cannot change.
        if feasible
            && existing.is_some_and(|e| (e.router_id, e.seqno, e.adv_metric) == (u.router_id, u.seqno, u.metric))
        {
            if let Some(state) = self.prefixes.get_mut(&prefix) {
                state.upsert(route);
            }
            return;
        }
        if !feasible {
            self.stats.updates_unfeasible += 1;
            //= https://www.rfc-editor.org/rfc/rfc8966#section-3.5.4
            //~ If no entry exists in the route table for
            //~ this neighbour and prefix, and the update is unfeasible,
            //~ then the update is ignored.
            //= https://www.rfc-editor.org/rfc/rfc8966#section-3.5.4
            //~ if the entry is currently selected, the update is unfeasible,
            //~ and the router-id of the update is equal to the router-id of
            //~ the entry, then the update MAY be ignored
            // We do ignore it: a metric that grew along the selected path
            // (a noisy RTT upstream) would otherwise leave the prefix with
            // no route until the seqno request below is answered, and every
            // node downstream would retract it in turn. The kept entry is
            // still feasible, and expires unless refreshed.
            let selected = self.prefixes.get(&prefix).and_then(|s| s.selected).is_some_and(|(link, _)| link == from);
            if selected && existing.is_some_and(|e| e.router_id == u.router_id) {
                self.request_for_unfeasible(now, from, prefix, u, add_metric(u.metric, nb.cost));
                return;
            }
            if existing.is_some() {
                // The entry takes the new values and, being unfeasible, is
                // unselected by the refresh below: stricter than keeping
                // the old values, and never unsafe.
                if let Some(state) = self.prefixes.get_mut(&prefix) {
                    state.upsert(route);
                }
                self.refresh(now, prefix);
            }
            self.request_for_unfeasible(now, from, prefix, u, add_metric(u.metric, nb.cost));
            return;
        }

        self.prefixes.entry(prefix).or_default().upsert(route);
        if let Some(req) = self.requests.get(&(prefix, u.router_id))
            && seqno::greater_or_equal(u.seqno, req.seqno)
        {
            self.requests.remove(&(prefix, u.router_id));
        }
        self.refresh(now, prefix);
    }

    //= https://www.rfc-editor.org/rfc/rfc8966#section-3.8.2.2
    //~ a node SHOULD send a unicast seqno request
    //~ when it receives an unfeasible update for a route that is currently
    //~ selected
    /// An unfeasible update that would be better than what we have (or
    /// would end a starvation) asks its sender for a newer seqno.
    fn request_for_unfeasible(&mut self, now: Timestamp, from: LinkId, prefix: Subnet, u: &Update, metric: u16) {
        let current = self.selected_route(&prefix);
        let worth_it = match current {
            None => true,
            Some(sel) => metric < sel.metric || sel.link == from,
        };
        if worth_it {
            self.request_seqno(now, prefix, u.router_id, Destination::Link(from));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_with_host_bits_set_or_too_long_are_malformed() {
        let mut bytes = [0u8; 16];
        bytes[0] = 4;
        bytes[15] = 1;
        assert!(checked_prefix(64, &bytes).is_none());
        assert!(checked_prefix(129, &[0; 16]).is_none());
        assert!(checked_prefix(128, &bytes).is_some());
    }
}
