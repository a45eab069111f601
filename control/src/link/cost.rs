//! The link cost: one additive `u16` metric from RTT, loss, capacity and the
//! link class. The formula, its defaults and worked examples are in the
//! [module docs of `link`](super).

use std::time::Duration;

use mycelium_common::wire::tlv::METRIC_INFINITY;

use super::config::LinkClass;

/// The largest finite cost a link may have.
pub const MAX_FINITE_COST: u16 = METRIC_INFINITY - 1;

/// Cost bias per built-in class, in cost units (1 unit = 100 us of RTT).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClassBiases {
    pub fiber: u16,
    pub ethernet: u16,
    pub wifi: u16,
    pub cellular: u16,
    pub satellite: u16,
}

impl Default for ClassBiases {
    /// fiber 0, ethernet 10 (1 ms), wifi 100 (10 ms), cellular 300 (30 ms),
    /// satellite 1000 (100 ms).
    fn default() -> Self {
        ClassBiases { fiber: 0, ethernet: 10, wifi: 100, cellular: 300, satellite: 1000 }
    }
}

impl ClassBiases {
    /// The bias of `class` (a custom class carries its own).
    pub fn bias(&self, class: &LinkClass) -> u16 {
        match class {
            LinkClass::Fiber => self.fiber,
            LinkClass::Ethernet => self.ethernet,
            LinkClass::Wifi => self.wifi,
            LinkClass::Cellular => self.cellular,
            LinkClass::Satellite => self.satellite,
            LinkClass::Custom { bias, .. } => *bias,
        }
    }
}

/// Parameters of the cost formula.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CostParams {
    /// Cost of any hop, in units (default 50 = 5 ms).
    pub hop_cost: u16,
    /// Units per millisecond of RTT (default 10: one unit is 100 us).
    pub units_per_ms: u16,
    /// How much loss amplifies the cost: `factor = 1 + loss_weight * (etx - 1)`
    /// (default 10).
    pub loss_weight: f64,
    /// The bandwidth term is the time to send this many bytes at the link's
    /// capacity (default 65,536: one TSO super-packet).
    pub burst_bytes: u32,
    /// Cap of the bandwidth term in units (default 5000 = 500 ms).
    pub bandwidth_cap: u16,
    /// Bias per class.
    pub biases: ClassBiases,
}

impl Default for CostParams {
    fn default() -> Self {
        CostParams {
            hop_cost: 50,
            units_per_ms: 10,
            loss_weight: 10.0,
            burst_bytes: 65_536,
            bandwidth_cap: 5000,
            biases: ClassBiases::default(),
        }
    }
}

/// What the cost is computed from.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CostInputs {
    /// The RTT the cost should believe (measured, or the prior).
    pub rtt: Duration,
    /// Expected transmission count `1 / (p_in * p_out)`; infinite when
    /// either direction is dead.
    pub etx: f64,
    /// Capacity in bit/s (measured or prior).
    pub capacity_bps: u64,
    /// The class bias in units.
    pub bias: u16,
}

impl CostParams {
    /// The RTT term in units.
    pub fn rtt_term(&self, rtt: Duration) -> f64 {
        rtt.as_secs_f64() * 1000.0 * f64::from(self.units_per_ms)
    }

    /// The bandwidth term in units: the time to send `burst_bytes` at the
    /// capacity, capped.
    pub fn bandwidth_term(&self, capacity_bps: u64) -> f64 {
        let cap = f64::from(self.bandwidth_cap);
        if capacity_bps == 0 {
            return cap;
        }
        let seconds = f64::from(self.burst_bytes) * 8.0 / capacity_bps as f64;
        (seconds * 1000.0 * f64::from(self.units_per_ms)).min(cap)
    }

    /// The loss factor `1 + loss_weight * (etx - 1)`.
    pub fn loss_factor(&self, etx: f64) -> f64 {
        1.0 + self.loss_weight.max(0.0) * (etx - 1.0).max(0.0)
    }

    /// `ceil(loss_factor * (hop + rtt + bandwidth)) + bias`, at least 1 and
    /// at most [`MAX_FINITE_COST`]; [`METRIC_INFINITY`] when `etx` is not
    /// finite.
    pub fn cost(&self, inputs: &CostInputs) -> u16 {
        if !inputs.etx.is_finite() || inputs.etx <= 0.0 {
            return METRIC_INFINITY;
        }
        let base = f64::from(self.hop_cost) + self.rtt_term(inputs.rtt) + self.bandwidth_term(inputs.capacity_bps);
        let total = (self.loss_factor(inputs.etx) * base).ceil() + f64::from(inputs.bias);
        if total.is_nan() {
            return METRIC_INFINITY;
        }
        // A float to integer `as` cast saturates; the clamp keeps it finite.
        (total.clamp(1.0, f64::from(MAX_FINITE_COST))) as u16
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cost(class: LinkClass, rtt_ms: u64, etx: f64, capacity_bps: u64) -> u16 {
        let p = CostParams::default();
        let bias = p.biases.bias(&class);
        p.cost(&CostInputs { rtt: Duration::from_millis(rtt_ms), etx, capacity_bps, bias })
    }

    fn path(hops: &[u16]) -> u32 {
        hops.iter().map(|&c| u32::from(c)).sum()
    }

    const GBIT: u64 = 1_000_000_000;

    #[test]
    fn two_10_ms_fiber_hops_beat_one_600_ms_satellite_hop() {
        let fiber = cost(LinkClass::Fiber, 10, 1.0, GBIT);
        let satellite = cost(LinkClass::Satellite, 600, 1.0, LinkClass::Satellite.default_capacity_bps());
        assert_eq!((fiber, satellite), (156, 7155));
        assert!(path(&[fiber, fiber]) < path(&[satellite]));
    }

    #[test]
    fn three_5_ms_fiber_hops_beat_one_300_ms_satellite_hop() {
        let fiber = cost(LinkClass::Fiber, 5, 1.0, GBIT);
        let satellite = cost(LinkClass::Satellite, 300, 1.0, LinkClass::Satellite.default_capacity_bps());
        assert_eq!((fiber, satellite), (106, 4155));
        assert!(path(&[fiber, fiber, fiber]) < path(&[satellite]));
    }

    #[test]
    fn a_clean_link_beats_a_link_with_5_percent_loss_at_two_thirds_of_its_latency() {
        let lossy = cost(LinkClass::Ethernet, 20, 1.0 / 0.95, GBIT);
        let clean = cost(LinkClass::Ethernet, 30, 1.0, GBIT);
        assert_eq!((lossy, clean), (400, 366));
        assert!(clean < lossy);
        // And at every latency from 1 ms to 1 s, on every class.
        for class in [LinkClass::Fiber, LinkClass::Ethernet, LinkClass::Wifi, LinkClass::Cellular, LinkClass::Satellite]
        {
            for rtt in (2..=1000).step_by(2) {
                let lossy = cost(class.clone(), rtt, 1.0 / 0.95, GBIT);
                let clean = cost(class.clone(), rtt * 3 / 2, 1.0, GBIT);
                assert!(clean < lossy, "{class} at {rtt} ms: clean {clean} vs lossy {lossy}");
            }
        }
    }

    #[test]
    fn a_1_gbit_link_beats_a_10_mbit_link_at_equal_latency() {
        let slow = cost(LinkClass::Ethernet, 20, 1.0, 10_000_000);
        let fast = cost(LinkClass::Ethernet, 20, 1.0, GBIT);
        assert_eq!((slow, fast), (785, 266));
        assert!(fast < slow);
        for rtt in [1, 10, 100, 1000] {
            assert!(cost(LinkClass::Ethernet, rtt, 1.0, GBIT) < cost(LinkClass::Ethernet, rtt, 1.0, 10_000_000));
        }
    }

    #[test]
    fn cost_separates_5_ms_from_300_ms_clearly() {
        let short = cost(LinkClass::Fiber, 5, 1.0, GBIT);
        let long = cost(LinkClass::Fiber, 300, 1.0, GBIT);
        assert!(u32::from(long) > 20 * u32::from(short));
    }

    #[test]
    fn a_dead_direction_costs_infinity_and_huge_inputs_stay_finite() {
        assert_eq!(cost(LinkClass::Fiber, 10, f64::INFINITY, GBIT), METRIC_INFINITY);
        assert_eq!(cost(LinkClass::Fiber, 10, f64::NAN, GBIT), METRIC_INFINITY);
        assert_eq!(cost(LinkClass::Satellite, 100_000, 50.0, 0), MAX_FINITE_COST);
        assert!(cost(LinkClass::Fiber, 0, 1.0, u64::MAX) >= 1);
    }
}
