//! What a [`Link`](super::Link) reports: events for the route engine and the
//! daemon's log, and a metrics snapshot for `mctl` and Prometheus.

use std::time::Duration;

use mycelium_common::time::Timestamp;
use mycelium_common::wire::tlv::GeoPosition;

use super::config::LinkClass;

/// A state change of a link, drained with
/// [`Link::poll_event`](super::Link::poll_event).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkEvent {
    /// The link proved stable; a `CostChanged` follows.
    Up,
    /// The neighbour fell silent (no hello or no IHU for the dead interval).
    /// The cost is now `METRIC_INFINITY`; no `CostChanged` is sent for that.
    Down,
    /// The current or the smoothed cost changed while up. The route engine
    /// switches to a route only when it is better on both.
    CostChanged { cost: u16, smoothed: u16 },
    /// The smoothed RTT fell below the configured fraction of the physical
    /// minimum for the two positions; the cost uses the minimum instead.
    /// The daemon logs it. Sent once each time the condition starts.
    Implausible { measured: Duration, minimum: Duration },
}

/// Everything a link measured, as a plain snapshot.
#[derive(Debug, Clone, PartialEq)]
pub struct LinkMetrics {
    pub up: bool,
    pub class: LinkClass,
    /// Current and smoothed cost (`METRIC_INFINITY` when down).
    pub cost: u16,
    pub smoothed_cost: u16,
    /// Smoothed measured RTT, its mean deviation and the latest sample.
    pub rtt: Option<Duration>,
    pub rtt_jitter: Option<Duration>,
    pub rtt_last: Option<Duration>,
    pub rtt_samples: u64,
    /// IHUs that gave no sample (unknown origin, negative, absurd).
    pub rtt_rejected: u64,
    /// Round trip at the speed of light in fiber between the two positions.
    pub rtt_prior: Option<Duration>,
    /// The RTT the cost is computed from.
    pub rtt_for_cost: Duration,
    /// The measured RTT is below the physical minimum (see `LinkEvent`).
    pub implausible: bool,
    /// Fraction of the neighbour's hellos we hear, and of ours it hears.
    pub receive_probability: f64,
    pub transmit_probability: f64,
    /// `1 - p_in * p_out`.
    pub loss_ratio: f64,
    /// `1 / (p_in * p_out)`.
    pub etx: f64,
    /// The rxcost we send, and the neighbour's (our txcost).
    pub rxcost: u16,
    pub txcost: Option<u16>,
    /// Highest sustained passive rate and the latest window's rate, bit/s.
    pub passive_bps: Option<u64>,
    pub passive_current_bps: Option<u64>,
    /// Latest probe-train estimate, bit/s.
    pub active_bps: Option<u64>,
    /// The capacity the cost uses: the higher measurement, else the prior.
    pub capacity_bps: u64,
    pub probe_trains_sent: u64,
    pub probe_bytes_sent: u64,
    /// Data moved within the activity timeout.
    pub active: bool,
    /// The interval in our latest hello, and in the neighbour's.
    pub hello_interval: Duration,
    pub neighbour_hello_interval: Option<Duration>,
    pub local_position: Option<GeoPosition>,
    pub neighbour_position: Option<GeoPosition>,
    pub last_hello: Option<Timestamp>,
    pub last_ihu: Option<Timestamp>,
    pub hellos_received: u64,
    pub hellos_missed: u64,
}
