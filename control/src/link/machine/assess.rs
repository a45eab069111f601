//! What a [`Link`] makes of its measurements: the RTT to believe, the
//! capacity, ETX, the cost and its smoothed value, and the metrics snapshot.

use std::time::Duration;

use mycelium_common::time::Timestamp;
use mycelium_common::wire::tlv::METRIC_INFINITY;

use super::Link;
use crate::link::cost::CostInputs;
use crate::link::geo;
use crate::link::metrics::{LinkEvent, LinkMetrics};
use crate::link::reach;

impl Link {
    /// Everything measured, for `mctl` and the metrics endpoint.
    pub fn metrics(&self) -> LinkMetrics {
        let (p_in, p_out) = self.probabilities();
        let (hellos_received, hellos_missed) = self.history.totals();
        let (probe_trains_sent, probe_bytes_sent) = self.prober.sent();
        LinkMetrics {
            up: self.up,
            class: self.config.class.clone(),
            cost: self.cost,
            smoothed_cost: self.smoothed_cost(),
            rtt: self.rtt.smoothed(),
            rtt_jitter: self.rtt.jitter(),
            rtt_last: self.rtt.last(),
            rtt_samples: self.rtt.samples(),
            rtt_rejected: self.rtt.rejected(),
            rtt_prior: self.rtt_prior(),
            rtt_for_cost: self.rtt_for_cost(),
            implausible: self.implausible,
            receive_probability: p_in,
            transmit_probability: p_out,
            loss_ratio: 1.0 - p_in * p_out,
            etx: reach::etx(p_in, p_out),
            rxcost: self.history.rxcost(),
            txcost: self.txcost,
            passive_bps: self.passive.max_bps(),
            passive_current_bps: self.passive.current_bps(),
            active_bps: self.prober.estimate_bps(),
            capacity_bps: self.capacity_bps(),
            probe_trains_sent,
            probe_bytes_sent,
            active: self.active(self.now),
            hello_interval: self.announced,
            neighbour_hello_interval: self.heard.map(|h| h.interval),
            local_position: self.config.local_position,
            neighbour_position: self.neighbour_position,
            last_hello: self.heard.map(|h| h.at),
            last_ihu: self.last_ihu.map(|(at, _)| at),
            hellos_received,
            hellos_missed,
        }
    }

    pub(super) fn check_implausible(&mut self) {
        let implausible = match (self.rtt.smoothed(), self.rtt_prior()) {
            (Some(measured), Some(minimum)) => {
                measured.as_secs_f64() < minimum.as_secs_f64() * self.config.implausible_ratio
            }
            _ => false,
        };
        if implausible
            && !self.implausible
            && let (Some(measured), Some(minimum)) = (self.rtt.smoothed(), self.rtt_prior())
        {
            self.events.push_back(LinkEvent::Implausible { measured, minimum });
        }
        self.implausible = implausible;
    }

    pub(super) fn rtt_prior(&self) -> Option<Duration> {
        geo::rtt_prior(self.config.local_position?, self.neighbour_position?)
    }

    /// Measured RTT unless it is implausible; else the geographic prior;
    /// else the configured default.
    pub(super) fn rtt_for_cost(&self) -> Duration {
        match (self.rtt.smoothed(), self.rtt_prior()) {
            (Some(measured), _) if !self.implausible => measured,
            (_, Some(prior)) => prior,
            (Some(measured), None) => measured,
            (None, None) => self.config.default_rtt,
        }
    }

    pub(super) fn probabilities(&self) -> (f64, f64) {
        let p_in = self.history.receive_probability();
        let p_out = self.txcost.map_or(0.0, reach::probability_of);
        (p_in, p_out)
    }

    /// The active estimate (the prior until there is one), raised to the
    /// passive lower bound if traffic ever went faster.
    pub(super) fn capacity_bps(&self) -> u64 {
        let estimate = self.prober.estimate_bps().unwrap_or_else(|| self.config.capacity_prior());
        self.passive.max_bps().unwrap_or(0).max(estimate).max(1)
    }

    pub(super) fn recompute(&mut self, now: Timestamp) {
        if !self.up {
            self.cost = METRIC_INFINITY;
            self.smoothed = None;
            self.reported = None;
            return;
        }
        let (p_in, p_out) = self.probabilities();
        let inputs = CostInputs {
            rtt: self.rtt_for_cost(),
            etx: reach::etx(p_in, p_out),
            capacity_bps: self.capacity_bps(),
            bias: self.config.cost.biases.bias(&self.config.class),
        };
        self.cost = self.config.cost.cost(&inputs);
        let c = f64::from(self.cost);
        self.smoothed = match self.smoothed {
            _ if self.cost == METRIC_INFINITY => None,
            None => Some((c, now)),
            Some((s, at)) => {
                let half_life = self.config.cost_half_life.as_secs_f64();
                let keep = if half_life > 0.0 { 0.5f64.powf((now - at).as_secs_f64() / half_life) } else { 0.0 };
                Some((c + (s - c) * keep, now))
            }
        };
        let pair = (self.cost, self.smoothed_cost());
        if self.reported != Some(pair) {
            self.reported = Some(pair);
            self.events.push_back(LinkEvent::CostChanged { cost: pair.0, smoothed: pair.1 });
        }
    }
}
