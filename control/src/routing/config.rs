//! Settings of the route engine, each with its default and why.

use std::time::Duration;

/// Timers and thresholds of a [`Router`](super::Router).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RouterConfig {
    /// How often the full table is announced to every neighbour (RFC 8966
    /// section 3.7.1). Default 4 s.
    pub update_interval: Duration,
    /// A route not refreshed for this many update intervals (of its
    /// announcer) expires, as the `3.5` of babeld. Expressed in tenths:
    /// default 35.
    pub expiry_tenths: u32,
    /// How often expired routes, stale sources and pending requests are
    /// swept. Expiry and garbage collection are accurate to this. Default 1 s.
    pub housekeeping_interval: Duration,
    /// Source table entries not refreshed for this long are forgotten
    /// (RFC 8966 section 3.2.5). Default 180 s.
    pub source_gc: Duration,
    /// Hop count of the seqno requests this node originates (section 3.8.2).
    /// Default 64.
    pub request_hop_count: u8,
    /// A seqno request not answered within this time is sent again, at most
    /// `request_resends` times; it is also the window in which a duplicate
    /// request is not forwarded again. Default 500 ms.
    pub request_timeout: Duration,
    /// Default 2.
    pub request_resends: u8,
    /// Hysteresis: a new route replaces the selected one only when it is
    /// better on both the current and the smoothed metric by at least
    /// `max(hysteresis_min, metric * hysteresis_percent / 100)` of the
    /// selected route's (current, resp. smoothed) metric. Default 16 and 12 %.
    pub hysteresis_min: u16,
    /// See `hysteresis_min`.
    pub hysteresis_percent: u16,
    /// A neighbour that has been up for less than this cannot take a prefix
    /// away from a working selected route (it may still provide a route
    /// where there is none): a link that comes back must prove stable
    /// first. Default 2 s.
    pub neighbour_hold: Duration,
    /// A change of the selected route's metric is announced at once (a
    /// triggered update, section 3.7.2) when it moves by at least
    /// `max(trigger_min, old * trigger_percent / 100)`. Smaller changes wait
    /// for the next periodic update. Default 16 and 12 %.
    pub trigger_min: u16,
    /// See `trigger_min`.
    pub trigger_percent: u16,
    /// The sequence number the local route starts with. A restarting node
    /// may pass a value derived from its previous run; otherwise seqno
    /// requests bring it up to date (section 3.8.1.2).
    pub initial_seqno: u16,
}

impl Default for RouterConfig {
    fn default() -> Self {
        RouterConfig {
            update_interval: Duration::from_secs(4),
            expiry_tenths: 35,
            housekeeping_interval: Duration::from_secs(1),
            source_gc: Duration::from_secs(180),
            request_hop_count: 64,
            request_timeout: Duration::from_millis(500),
            request_resends: 2,
            hysteresis_min: 16,
            hysteresis_percent: 12,
            neighbour_hold: Duration::from_secs(2),
            trigger_min: 16,
            trigger_percent: 12,
            initial_seqno: 0,
        }
    }
}

impl RouterConfig {
    /// The update interval in centiseconds, as carried by Update TLVs.
    pub fn update_interval_cs(&self) -> u16 {
        u16::try_from(self.update_interval.as_millis() / 10).unwrap_or(u16::MAX).max(1)
    }

    /// How long a route announced with `interval_cs` lives unrefreshed.
    pub fn expiry(&self, interval_cs: u16) -> Duration {
        let interval_cs = if interval_cs == 0 { self.update_interval_cs() } else { interval_cs };
        Duration::from_millis(u64::from(interval_cs) * 10 * u64::from(self.expiry_tenths) / 10)
    }

    /// Margin by which a candidate must beat `metric` to replace it.
    pub fn hysteresis_margin(&self, metric: u16) -> u16 {
        percent_or_min(metric, self.hysteresis_percent, self.hysteresis_min)
    }

    /// Change of an advertised metric that warrants a triggered update.
    pub fn trigger_threshold(&self, metric: u16) -> u16 {
        percent_or_min(metric, self.trigger_percent, self.trigger_min)
    }
}

fn percent_or_min(metric: u16, percent: u16, min: u16) -> u16 {
    let scaled = u32::from(metric) * u32::from(percent) / 100;
    u16::try_from(scaled).unwrap_or(u16::MAX).max(min)
}
