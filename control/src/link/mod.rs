//! Link measurement and link cost, sans-IO: one [`Link`] per neighbour,
//! driven by `(now, input)`, with no sockets, no clock reads, no threads.
//!
//! # Driving a link
//!
//! ```text
//! let mut link = Link::new(now, config);
//! loop {
//!     // feed whatever happened:
//!     link.handle_hello(now, &hello) / handle_ihu / handle_probe(now, &p, wire_len)
//!         / handle_probe_report / handle_traffic(now, tx_total, rx_total)
//!         / handle_activity(now);   // data moved on counters shared with other links
//!     if now >= link.poll_timeout() { link.handle_timeout(now); }
//!     while let Some(msg) = link.poll_transmit(now) { send(msg) }   // hellos, IHUs, probes, reports
//!     while let Some(ev) = link.poll_event() { route_engine(ev) }   // Up, Down, CostChanged, Implausible
//!     sleep_until(link.poll_timeout());
//! }
//! ```
//! After any `handle_*`, drain `poll_transmit` and `poll_event`.
//! [`Link::poll_timeout`] is always a deadline (the next hello at least).
//! `Timestamp` is nanoseconds; every wire time is microseconds of the
//! sender's clock (`now_us = now.as_nanos() / 1000`, see [`micros`]). Only
//! differences of one node's own stamps are used, so the two nodes' clocks
//! may differ arbitrarily.
//!
//! # What is measured
//!
//! - **RTT** ([`rtt`]): RFC 9616. Our hello carries our send time; the
//!   neighbour's IHU echoes it (`origin`) with its receive and transmit
//!   times: `rtt = (now - origin) - (transmit - receive)`. Samples whose
//!   origin is not one of our last 16 hello stamps, negative ones, ones
//!   above `max_rtt` (10 s) and ones held over 30 s are discarded. Smoothed
//!   as RFC 9616 section 3.4 (`alpha = 0.836`); jitter is the mean deviation
//!   (`beta = 1/4`). We send our IHU with each of our hellos, echoing the
//!   neighbour's latest hello (while the link is down, only once the
//!   neighbour proved stable to us, see below).
//! - **Loss** ([`reach`]): RFC 8966 Appendix A.1 and A.2.2. A 16-hello
//!   history gives our receive rate `p_in`, sent as `rxcost = 256 / p_in`;
//!   the neighbour's rxcost gives `p_out`. `ETX = 1 / (p_in * p_out)`.
//! - **Capacity** ([`bandwidth`]): passively, the highest rate over a 1 s
//!   window of the dataplane's byte counters (a lower bound, forgotten after
//!   10 min); actively, when the link is up, idle and the estimate is
//!   missing or older than 10 min, a train of 10 x 1200-byte probes sent back
//!   to back, whose dispersion at the receiver gives the bottleneck rate.
//!   Trains start no closer than `train_bits / (probe_share * capacity)`
//!   (1 % by default) and failed trains back off exponentially. The cost uses
//!   the higher of the two; before either, a per-class prior.
//! - **Position** ([`geo`]): with our position in the config and the
//!   neighbour's in its hellos, the great-circle RTT at 2e8 m/s is the RTT
//!   prior used for the cost until there is a measurement. A smoothed RTT
//!   under half of it (`implausible_ratio`) cannot be physical: a clock or
//!   position is wrong, or someone answers IHUs early to attract traffic.
//!   Such a link raises [`LinkEvent::Implausible`], sets the metrics flag,
//!   and its cost uses the prior instead of the measurement: the prior is a
//!   floor no honest path beats, so believing it can only make the link look
//!   worse than a lie would. The ratio is 0.5, not 1, because positions are
//!   approximate and radio paths (microwave, LEO satellites) travel at up to
//!   1.5 times the speed in fiber.
//!
//! # Up, down and hello intervals
//!
//! A link that carries traffic (data counters moved in the last 2 s), or
//! whose neighbour is heard but not yet up, sends hellos every 50 ms; an
//! idle one every 4 s. Each hello announces its interval (`interval_cs`,
//! rounded up), and an interval change is announced at once with an extra
//! hello, so the announced interval is always an upper bound; a longer
//! interval is announced by three hellos still at the fast pace, so one lost
//! announcement cannot make the neighbour miss promised hellos. A receiver
//! derives the dead interval from what the neighbour announced: 300 ms
//! (`active_dead_interval`, at most 500 ms) when three announced intervals
//! fit in it, else 14 s (`idle_dead_interval`) or 3.5 announced intervals if
//! longer. The link goes down when no hello, or no IHU, arrived for the dead
//! interval (both directions must work). It comes up, at first and after
//! going down, only when it proved stable: `up_hellos` (3) consecutive
//! hellos, without a seqno gap or a missed hello timer, plus an IHU since it
//! went down showing the neighbour hears us. A link that is down sends IHUs
//! only once the neighbour proved stable to it, so each side's IHU says "your
//! hellos passed the test" and neither side comes up before both have proven
//! the other: a neighbour that hears us well but loses every third hello of
//! ours stays down on both sides. With fast hellos while proving, coming up
//! takes about 100 ms plus two one-way delays.
//!
//! # The cost
//!
//! One additive `u16` (`METRIC_INFINITY` when down). One unit is 100 us of
//! RTT-equivalent:
//!
//! ```text
//! cost = ceil(L * (hop + rtt_ms * 10 + B)) + bias          clamped to [1, 0xFFFE]
//! L    = 1 + loss_weight * (ETX - 1)                       loss factor, loss_weight = 10
//! B    = min(5000, burst_bytes * 8 / capacity_bps * 10_000) time to send 64 KiB, in units
//! hop  = 50                                                5 ms per hop
//! bias = fiber 0, ethernet 10, wifi 100, cellular 300, satellite 1000, custom: its own
//! ```
//!
//! Why this shape:
//! - RTT is linear and uncapped (RFC 9616 caps its penalty at rtt-max, which
//!   cannot tell 300 ms from 600 ms); at 10 units per ms, 5 ms and 300 ms are
//!   50 and 3000 units, so three 5 ms fiber hops (318) beat one 300 ms
//!   satellite hop (4155).
//! - The hop cost stands for what each relay adds (crypto, queueing, one
//!   more thing to fail), so among near-equal paths the shorter wins.
//! - The bandwidth term is a time too: sending one 64 KiB TSO super-packet
//!   takes 0.5 ms at 1 Gbit/s (5 units), 52 ms at 10 Mbit/s (524 units);
//!   capped at 500 ms so an unmeasured trickle is not worse than infinity.
//! - Loss multiplies (ETX), amplified tenfold: raw ETX at 5 % loss is only
//!   1.05, while TCP throughput falls as `1 / (rtt * sqrt(loss))` (Mathis),
//!   so 5 % loss is worse than 50 % more latency. With the weight, 5 % loss
//!   costs a factor 1.53.
//! - The class bias is what measurement cannot see (variability, metering,
//!   energy); configurable per class in [`CostParams::biases`].
//!
//! Worked examples with the defaults (each is a unit test in [`cost`]):
//! - 1 x 600 ms satellite (50 Mbit/s prior): `50 + 6000 + 104.9 = 6154.9`
//!   -> 6155 + 1000 = **7155**; 2 x 10 ms fiber at 1 Gbit/s: `50 + 100 + 5.2`
//!   -> 156 each, **312**: the two fiber hops win.
//! - 20 ms ethernet with 5 % loss: `1.526 * (50 + 200 + 5.2)` -> 390 + 10 =
//!   **400**; clean 30 ms ethernet: 356 + 10 = **366**: the clean link wins
//!   (and does at every latency from 1 ms to 1 s on every class).
//! - 20 ms ethernet at 10 Mbit/s: `50 + 200 + 524.3` -> 775 + 10 = **785**;
//!   at 1 Gbit/s: 256 + 10 = **266**: the faster link wins.
//!
//! The smoothed cost follows the current one with a 4 s half-life
//! (`cost_half_life`), from the cost at the time the link came up. Both are
//! reported in [`LinkEvent::CostChanged`] whenever either changes by a unit
//! (during a smoothing transient, that is about once per received hello);
//! the route engine switches only to a route better on both, which keeps
//! routes from flapping on one noisy sample.

pub mod bandwidth;
pub mod config;
pub mod cost;
pub mod geo;
mod machine;
pub mod metrics;
pub mod reach;
pub mod rtt;

#[cfg(test)]
mod sim;
#[cfg(test)]
mod tests;

use mycelium_common::time::Timestamp;

pub use config::{ConfigError, LinkClass, LinkConfig};
pub use cost::{ClassBiases, CostInputs, CostParams};
pub use machine::Link;
pub use metrics::{LinkEvent, LinkMetrics};

/// Microseconds of a [`Timestamp`], the unit of every wire time.
pub fn micros(t: Timestamp) -> u64 {
    t.as_nanos() / 1_000
}
