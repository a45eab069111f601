//! The route table proper (RFC 8966 section 3.2.6): every route heard, per
//! prefix, and route selection with hysteresis (section 3.6).

use std::collections::BTreeMap;

use mycelium_common::address::Subnet;
use mycelium_common::identity::PublicKey;
use mycelium_common::time::Timestamp;
use mycelium_common::wire::tlv::METRIC_INFINITY;

use super::config::RouterConfig;
use super::source::SourceTable;
use super::table::{LinkId, RouteInfo};

/// A neighbour as the link layer last described it.
#[derive(Debug, Clone, Copy)]
pub(super) struct Neighbour {
    pub key: PublicKey,
    pub cost: u16,
    pub smoothed: u16,
    /// Until then, routes through this neighbour may not replace a working
    /// selected route.
    pub held_until: Timestamp,
    /// Whether the end of the hold has been acted on.
    pub released: bool,
}

impl Neighbour {
    pub fn is_held(&self, now: Timestamp) -> bool {
        now < self.held_until
    }
}

/// One route as received from one neighbour.
#[derive(Debug, Clone, Copy)]
pub(super) struct StoredRoute {
    pub link: LinkId,
    pub router_id: PublicKey,
    pub seqno: u16,
    /// The metric the neighbour advertised.
    pub adv_metric: u16,
    pub expires: Timestamp,
}

/// What this node last announced for a prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Advertised {
    pub router_id: PublicKey,
    pub seqno: u16,
    pub metric: u16,
}

/// Everything known about one prefix.
#[derive(Debug, Default)]
pub(super) struct PrefixState {
    /// At most one route per link, sorted by link.
    pub routes: Vec<StoredRoute>,
    /// The selected route's link and neighbour.
    pub selected: Option<(LinkId, PublicKey)>,
    pub advertised: Option<Advertised>,
}

/// `a + b`, infinite if either is or the sum does not fit.
pub(super) fn add_metric(a: u16, b: u16) -> u16 {
    if a == METRIC_INFINITY || b == METRIC_INFINITY {
        return METRIC_INFINITY;
    }
    u16::try_from(u32::from(a) + u32::from(b)).unwrap_or(METRIC_INFINITY)
}

impl PrefixState {
    pub fn route(&self, link: LinkId) -> Option<&StoredRoute> {
        self.routes.binary_search_by_key(&link, |r| r.link).ok().map(|i| &self.routes[i])
    }

    /// Inserts or replaces the route through `route.link`.
    pub fn upsert(&mut self, route: StoredRoute) {
        match self.routes.binary_search_by_key(&route.link, |r| r.link) {
            Ok(i) => self.routes[i] = route,
            Err(i) => self.routes.insert(i, route),
        }
    }

    /// Removes the route through `link`; whether there was one.
    pub fn remove(&mut self, link: LinkId) -> bool {
        match self.routes.binary_search_by_key(&link, |r| r.link) {
            Ok(i) => {
                self.routes.remove(i);
                true
            }
            Err(_) => false,
        }
    }

    /// The usable form of a stored route: finite metric, feasible, through a
    /// neighbour that is up. `None` for anything else.
    pub fn usable(
        &self,
        route: &StoredRoute,
        prefix: &Subnet,
        neighbours: &BTreeMap<LinkId, Neighbour>,
        sources: &SourceTable,
    ) -> Option<RouteInfo> {
        let nb = neighbours.get(&route.link)?;
        let metric = add_metric(route.adv_metric, nb.cost);
        if metric == METRIC_INFINITY {
            return None;
        }
        //= https://www.rfc-editor.org/rfc/rfc8966#section-3.6
        //~ Route selection MUST NOT select a route that is unfeasible
        if !sources.is_feasible(prefix, &route.router_id, route.seqno, route.adv_metric) {
            return None;
        }
        Some(RouteInfo {
            link: route.link,
            neighbour: nb.key,
            metric,
            smoothed_metric: add_metric(route.adv_metric, nb.smoothed),
            seqno: route.seqno,
            router_id: route.router_id,
        })
    }

    /// The route selection procedure: which link should carry this prefix.
    ///
    /// - Only usable routes (finite, feasible, neighbour up) are candidates.
    /// - With no working selected route, the best candidate wins at once.
    /// - Otherwise the selected route is kept unless a candidate through a
    ///   neighbour that is no longer held beats it on both the current and
    ///   the smoothed metric by the hysteresis margin.
    ///
    /// Ties are broken by the smaller metric, then smoothed metric, then link.
    pub fn select(
        &self,
        prefix: &Subnet,
        neighbours: &BTreeMap<LinkId, Neighbour>,
        sources: &SourceTable,
        config: &RouterConfig,
        now: Timestamp,
    ) -> Option<RouteInfo> {
        let key = |r: &RouteInfo| (r.metric, r.smoothed_metric, r.link);
        let mut best: Option<RouteInfo> = None;
        let mut best_unheld: Option<RouteInfo> = None;
        let mut current: Option<RouteInfo> = None;
        for route in &self.routes {
            let Some(info) = self.usable(route, prefix, neighbours, sources) else { continue };
            if Some(info.link) == self.selected.map(|s| s.0) {
                current = Some(info);
            }
            if best.is_none_or(|b| key(&info) < key(&b)) {
                best = Some(info);
            }
            let held = neighbours.get(&info.link).is_some_and(|n| n.is_held(now));
            if !held && best_unheld.is_none_or(|b| key(&info) < key(&b)) {
                best_unheld = Some(info);
            }
        }
        //= https://www.rfc-editor.org/rfc/rfc8966#section-3.6
        //~ it is important that route selection should not oscillate
        //~ unnecessarily
        let Some(current) = current else { return best };
        match best_unheld {
            Some(c) if c.link != current.link && beats(&c, &current, config) => Some(c),
            _ => Some(current),
        }
    }

    /// The usable routes other than `selected`, best first.
    pub fn fallbacks(
        &self,
        prefix: &Subnet,
        selected: LinkId,
        neighbours: &BTreeMap<LinkId, Neighbour>,
        sources: &SourceTable,
    ) -> Vec<RouteInfo> {
        let mut out: Vec<RouteInfo> = self
            .routes
            .iter()
            .filter(|r| r.link != selected)
            .filter_map(|r| self.usable(r, prefix, neighbours, sources))
            .collect();
        out.sort_by_key(|r| (r.metric, r.smoothed_metric, r.link));
        out
    }
}

/// Hysteresis: `candidate` is better than `current` by the margin on both
/// the current and the smoothed metric.
fn beats(candidate: &RouteInfo, current: &RouteInfo, config: &RouterConfig) -> bool {
    let clear = |cand: u16, cur: u16| u32::from(cand) + u32::from(config.hysteresis_margin(cur)) <= u32::from(cur);
    clear(candidate.metric, current.metric) && clear(candidate.smoothed_metric, current.smoothed_metric)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prefix() -> Subnet {
        Subnet::new([4, 9, 9, 9, 9, 9, 9, 9, 0, 0, 0, 0, 0, 0, 0, 0], 64).unwrap()
    }

    fn setup(costs: &[(u16, u16)]) -> (PrefixState, BTreeMap<LinkId, Neighbour>) {
        let mut state = PrefixState::default();
        let mut nbs = BTreeMap::new();
        for (i, &(cost, smoothed)) in costs.iter().enumerate() {
            let link = LinkId(i as u32);
            nbs.insert(
                link,
                Neighbour {
                    key: PublicKey::from_bytes([i as u8; 32]),
                    cost,
                    smoothed,
                    held_until: Timestamp::ZERO,
                    released: true,
                },
            );
            state.upsert(StoredRoute {
                link,
                router_id: PublicKey::from_bytes([0xAA; 32]),
                seqno: 1,
                adv_metric: 100,
                expires: Timestamp::from_nanos(u64::MAX),
            });
        }
        (state, nbs)
    }

    #[test]
    fn with_nothing_selected_the_best_route_wins_immediately() {
        let (state, nbs) = setup(&[(50, 50), (40, 40)]);
        let sel = state.select(&prefix(), &nbs, &SourceTable::default(), &RouterConfig::default(), Timestamp::ZERO);
        assert_eq!(sel.map(|r| (r.link, r.metric)), Some((LinkId(1), 140)));
    }

    #[test]
    fn a_slightly_better_route_does_not_replace_the_selected_one() {
        let (mut state, nbs) = setup(&[(50, 50), (40, 40)]);
        state.selected = Some((LinkId(0), PublicKey::from_bytes([0; 32])));
        let sel = state.select(&prefix(), &nbs, &SourceTable::default(), &RouterConfig::default(), Timestamp::ZERO);
        assert_eq!(sel.map(|r| r.link), Some(LinkId(0)));
    }

    #[test]
    fn a_route_better_only_on_the_current_metric_does_not_replace_the_selected_one() {
        let (mut state, nbs) = setup(&[(100, 100), (10, 200)]);
        state.selected = Some((LinkId(0), PublicKey::from_bytes([0; 32])));
        let sel = state.select(&prefix(), &nbs, &SourceTable::default(), &RouterConfig::default(), Timestamp::ZERO);
        assert_eq!(sel.map(|r| r.link), Some(LinkId(0)));
    }

    #[test]
    fn a_route_better_on_both_metrics_by_the_margin_replaces_the_selected_one() {
        let (mut state, nbs) = setup(&[(100, 100), (10, 10)]);
        state.selected = Some((LinkId(0), PublicKey::from_bytes([0; 32])));
        let sel = state.select(&prefix(), &nbs, &SourceTable::default(), &RouterConfig::default(), Timestamp::ZERO);
        assert_eq!(sel.map(|r| r.link), Some(LinkId(1)));
    }

    #[test]
    fn a_held_neighbour_cannot_take_over_but_can_fill_a_gap() {
        let (mut state, mut nbs) = setup(&[(100, 100), (10, 10)]);
        nbs.get_mut(&LinkId(1)).unwrap().held_until = Timestamp::from_nanos(10);
        state.selected = Some((LinkId(0), PublicKey::from_bytes([0; 32])));
        let cfg = RouterConfig::default();
        let sel = state.select(&prefix(), &nbs, &SourceTable::default(), &cfg, Timestamp::ZERO);
        assert_eq!(sel.map(|r| r.link), Some(LinkId(0)));
        nbs.remove(&LinkId(0));
        let sel = state.select(&prefix(), &nbs, &SourceTable::default(), &cfg, Timestamp::ZERO);
        assert_eq!(sel.map(|r| r.link), Some(LinkId(1)));
    }

    #[test]
    fn an_unfeasible_route_is_never_selected_even_when_it_is_the_only_one() {
        let (state, nbs) = setup(&[(10, 10)]);
        let mut sources = SourceTable::default();
        sources.record_advertised(Timestamp::ZERO, prefix(), PublicKey::from_bytes([0xAA; 32]), 1, 100);
        let sel = state.select(&prefix(), &nbs, &sources, &RouterConfig::default(), Timestamp::ZERO);
        assert_eq!(sel, None);
    }

    #[test]
    fn metrics_saturate_at_infinity() {
        assert_eq!(add_metric(60_000, 6_000), METRIC_INFINITY);
        assert_eq!(add_metric(METRIC_INFINITY, 0), METRIC_INFINITY);
        assert_eq!(add_metric(1, 2), 3);
    }
}
