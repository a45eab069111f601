//! Link configuration: the link's class, its timers, probing limits and the
//! cost parameters, each with a documented default.

use std::fmt;
use std::time::Duration;

use mycelium_common::wire::tlv::GeoPosition;

use super::cost::CostParams;

/// The longest dead interval an active link may use: failure detection on
/// links that carry traffic must stay well under a second.
pub const MAX_ACTIVE_DEAD_INTERVAL: Duration = Duration::from_millis(500);

/// The shortest hello interval we send (one centisecond, the wire's unit).
pub const MIN_HELLO_INTERVAL: Duration = Duration::from_millis(10);

/// The longest hello interval the wire can carry (`u16` centiseconds).
pub const MAX_HELLO_INTERVAL: Duration = Duration::from_millis(u16::MAX as u64 * 10);

/// What kind of underlay a link runs over. The class adds a configurable
/// cost bias (see [`CostParams::biases`]) for what measurement cannot see:
/// variability, metering, energy.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub enum LinkClass {
    Fiber,
    #[default]
    Ethernet,
    Wifi,
    Cellular,
    Satellite,
    /// A class named in the config with its own bias (cost units).
    Custom {
        name: String,
        bias: u16,
    },
}

impl LinkClass {
    /// Lower-case name, for metrics labels and `mctl`.
    pub fn name(&self) -> &str {
        match self {
            LinkClass::Fiber => "fiber",
            LinkClass::Ethernet => "ethernet",
            LinkClass::Wifi => "wifi",
            LinkClass::Cellular => "cellular",
            LinkClass::Satellite => "satellite",
            LinkClass::Custom { name, .. } => name,
        }
    }

    /// Capacity assumed before anything is measured: fiber and ethernet
    /// 1 Gbit/s, wifi 100 Mbit/s, cellular 20 Mbit/s, satellite 50 Mbit/s,
    /// custom 100 Mbit/s. Overridden by [`LinkConfig::capacity_prior_bps`].
    pub fn default_capacity_bps(&self) -> u64 {
        match self {
            LinkClass::Fiber | LinkClass::Ethernet => 1_000_000_000,
            LinkClass::Wifi => 100_000_000,
            LinkClass::Cellular => 20_000_000,
            LinkClass::Satellite => 50_000_000,
            LinkClass::Custom { .. } => 100_000_000,
        }
    }
}

impl fmt::Display for LinkClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A setting out of its allowed range.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("active dead interval must be at most 500 ms and at least twice the active hello interval")]
    ActiveDeadInterval,
    #[error("hello intervals must be between 10 ms and 655 s, the active one no longer than the idle one")]
    HelloInterval,
    #[error("idle dead interval must be at least twice the idle hello interval")]
    IdleDeadInterval,
    #[error("data dead interval must be at most 500 ms")]
    DataDeadInterval,
    #[error("probe share must be in (0, 0.5]")]
    ProbeShare,
    #[error("probe trains need at least 2 packets of at least 64 bytes")]
    ProbeTrain,
    #[error("up_hellos must be between 1 and 16")]
    UpHellos,
    #[error("implausible ratio must be in [0, 1]")]
    ImplausibleRatio,
}

/// Per-link settings. `Default` gives the documented defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct LinkConfig {
    /// Underlay class (default ethernet).
    pub class: LinkClass,
    /// Hello interval while the link carries traffic or is proving itself
    /// (default 50 ms).
    pub active_hello_interval: Duration,
    /// Hello interval while the link is idle (default 4 s).
    pub idle_hello_interval: Duration,
    /// Silence after which a fast-hello neighbour is declared down
    /// (default 300 ms, at most 500 ms).
    pub active_dead_interval: Duration,
    /// Silence after which a slow-hello neighbour is declared down (default
    /// 14 s = 3.5 idle intervals; a neighbour announcing a longer interval
    /// gets 3.5 times its interval).
    pub idle_dead_interval: Duration,
    /// An up link whose dataplane counted data from the neighbour this
    /// recently is not declared down for missing hellos or IHUs (a loaded
    /// host may delay the daemons' control messages while data flows).
    /// Default 200 ms: the daemon reads the counters every 100 ms, so data
    /// seen 200 ms ago may be up to 300 ms old, the active dead interval.
    pub data_dead_interval: Duration,
    /// The link counts as carrying traffic for this long after the data
    /// counters last moved (default 2 s).
    pub activity_timeout: Duration,
    /// Consecutive hellos (no seqno gap, none missed) needed to bring the
    /// link up, together with an IHU proving the neighbour hears us
    /// (default 3).
    pub up_hellos: u8,
    /// Largest share of the estimated capacity active probing may use over
    /// time (default 0.01).
    pub probe_share: f64,
    /// Packets per probe train (default 10).
    pub probe_train_len: u16,
    /// Wire size of one probe packet in bytes (default 1200).
    pub probe_size: u16,
    /// Re-probe an idle link when the last estimate is older (default 10 min).
    pub probe_refresh: Duration,
    /// A train without a report after this long failed (default 1 s).
    pub probe_timeout: Duration,
    /// Window over which passive rates are measured (default 1 s).
    pub passive_window: Duration,
    /// The highest passive rate is forgotten after this long (default 10 min).
    pub capacity_max_age: Duration,
    /// Capacity assumed before measurement; `None`: the class default.
    pub capacity_prior_bps: Option<u64>,
    /// Our position, sent in hellos and used for the RTT prior.
    pub local_position: Option<GeoPosition>,
    /// A smoothed RTT below this fraction of the geographic minimum is
    /// implausible (default 0.5).
    pub implausible_ratio: f64,
    /// Samples above this are discarded as absurd (default 10 s).
    pub max_rtt: Duration,
    /// RTT assumed when neither a measurement nor a geographic prior exists
    /// (default 100 ms).
    pub default_rtt: Duration,
    /// Half-life of the smoothed cost (default 4 s, as babeld).
    pub cost_half_life: Duration,
    /// Cost formula parameters.
    pub cost: CostParams,
}

impl Default for LinkConfig {
    fn default() -> Self {
        LinkConfig {
            class: LinkClass::default(),
            active_hello_interval: Duration::from_millis(50),
            idle_hello_interval: Duration::from_secs(4),
            active_dead_interval: Duration::from_millis(300),
            idle_dead_interval: Duration::from_secs(14),
            data_dead_interval: Duration::from_millis(200),
            activity_timeout: Duration::from_secs(2),
            up_hellos: 3,
            probe_share: 0.01,
            probe_train_len: 10,
            probe_size: 1200,
            probe_refresh: Duration::from_secs(600),
            probe_timeout: Duration::from_secs(1),
            passive_window: Duration::from_secs(1),
            capacity_max_age: Duration::from_secs(600),
            capacity_prior_bps: None,
            local_position: None,
            implausible_ratio: 0.5,
            max_rtt: Duration::from_secs(10),
            default_rtt: Duration::from_millis(100),
            cost_half_life: Duration::from_secs(4),
            cost: CostParams::default(),
        }
    }
}

impl LinkConfig {
    /// Checks every range; the daemon rejects a config that fails.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let hello_ok = |d: Duration| (MIN_HELLO_INTERVAL..=MAX_HELLO_INTERVAL).contains(&d);
        if !hello_ok(self.active_hello_interval)
            || !hello_ok(self.idle_hello_interval)
            || self.active_hello_interval > self.idle_hello_interval
        {
            return Err(ConfigError::HelloInterval);
        }
        if self.active_dead_interval > MAX_ACTIVE_DEAD_INTERVAL
            || self.active_dead_interval < self.active_hello_interval * 2
        {
            return Err(ConfigError::ActiveDeadInterval);
        }
        if self.idle_dead_interval < self.idle_hello_interval * 2 {
            return Err(ConfigError::IdleDeadInterval);
        }
        if self.data_dead_interval > MAX_ACTIVE_DEAD_INTERVAL {
            return Err(ConfigError::DataDeadInterval);
        }
        if !(self.probe_share > 0.0 && self.probe_share <= 0.5) {
            return Err(ConfigError::ProbeShare);
        }
        if self.probe_train_len < 2 || self.probe_size < 64 {
            return Err(ConfigError::ProbeTrain);
        }
        if !(1..=16).contains(&self.up_hellos) {
            return Err(ConfigError::UpHellos);
        }
        if !(0.0..=1.0).contains(&self.implausible_ratio) {
            return Err(ConfigError::ImplausibleRatio);
        }
        Ok(())
    }

    /// The config with every out-of-range value replaced by its default, so
    /// a [`Link`](super::Link) never runs on nonsense even if the caller
    /// skipped [`validate`](Self::validate).
    pub fn sanitized(mut self) -> Self {
        if self.validate().is_ok() {
            return self;
        }
        let d = LinkConfig::default();
        let clamp_hello = |v: Duration| v.clamp(MIN_HELLO_INTERVAL, MAX_HELLO_INTERVAL);
        self.active_hello_interval = clamp_hello(self.active_hello_interval);
        self.idle_hello_interval = clamp_hello(self.idle_hello_interval).max(self.active_hello_interval);
        if self.validate() == Err(ConfigError::ActiveDeadInterval) {
            self.active_hello_interval = self.active_hello_interval.min(d.active_hello_interval);
            self.active_dead_interval =
                self.active_dead_interval.clamp(self.active_hello_interval * 2, MAX_ACTIVE_DEAD_INTERVAL);
        }
        self.idle_dead_interval = self.idle_dead_interval.max(self.idle_hello_interval * 2);
        self.data_dead_interval = self.data_dead_interval.min(MAX_ACTIVE_DEAD_INTERVAL);
        if !(self.probe_share > 0.0 && self.probe_share <= 0.5) {
            self.probe_share = d.probe_share;
        }
        self.probe_train_len = self.probe_train_len.max(2);
        self.probe_size = self.probe_size.max(64);
        self.up_hellos = self.up_hellos.clamp(1, 16);
        if !(0.0..=1.0).contains(&self.implausible_ratio) {
            self.implausible_ratio = d.implausible_ratio;
        }
        self
    }

    /// The capacity assumed before measurement.
    pub fn capacity_prior(&self) -> u64 {
        self.capacity_prior_bps.unwrap_or_else(|| self.class.default_capacity_bps()).max(1)
    }

    /// The dead interval that matches a neighbour's announced hello interval:
    /// the active one when at least three hellos fit in it, else the idle one
    /// (or 3.5 announced intervals if that is longer). A zero interval (no
    /// promise) gets the idle dead interval.
    pub fn dead_interval_for(&self, announced: Duration) -> Duration {
        if announced.is_zero() {
            self.idle_dead_interval
        } else if announced * 3 <= self.active_dead_interval {
            self.active_dead_interval
        } else {
            self.idle_dead_interval.max(announced * 7 / 2)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        assert_eq!(LinkConfig::default().validate(), Ok(()));
    }

    #[test]
    fn an_active_dead_interval_over_500_ms_is_rejected_and_clamped() {
        let c = LinkConfig { active_dead_interval: Duration::from_secs(2), ..LinkConfig::default() };
        assert_eq!(c.validate(), Err(ConfigError::ActiveDeadInterval));
        let s = c.sanitized();
        assert_eq!(s.validate(), Ok(()));
        assert_eq!(s.active_dead_interval, MAX_ACTIVE_DEAD_INTERVAL);
    }

    #[test]
    fn nonsense_values_are_sanitized_into_a_valid_config() {
        let c = LinkConfig {
            active_hello_interval: Duration::ZERO,
            idle_hello_interval: Duration::from_secs(100_000),
            active_dead_interval: Duration::ZERO,
            idle_dead_interval: Duration::ZERO,
            probe_share: f64::NAN,
            probe_train_len: 0,
            probe_size: 0,
            up_hellos: 0,
            implausible_ratio: -1.0,
            ..LinkConfig::default()
        };
        assert_eq!(c.sanitized().validate(), Ok(()));
    }

    #[test]
    fn dead_interval_follows_the_neighbours_announced_interval() {
        let c = LinkConfig::default();
        assert_eq!(c.dead_interval_for(Duration::from_millis(50)), Duration::from_millis(300));
        assert_eq!(c.dead_interval_for(Duration::from_secs(4)), Duration::from_secs(14));
        assert_eq!(c.dead_interval_for(Duration::from_secs(10)), Duration::from_secs(35));
        assert_eq!(c.dead_interval_for(Duration::ZERO), Duration::from_secs(14));
    }
}
