//! Emulated links: delay, jitter, loss (random or Gilbert-Elliott bursts),
//! bandwidth (serialization delay) and up/down schedules.
//!
//! Each direction of a link is a FIFO queue: a packet starts serializing
//! when the previous one is out, then flies for the delay (with jitter),
//! and never overtakes the packet before it.

use std::time::Duration;

use mycelium_common::time::Timestamp;
use mycelium_common::wire::tlv::ControlMessage;
use mycelium_control::link::LinkClass;

use super::rng::Rng;

/// How packets get lost.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Loss {
    None,
    /// Each packet independently, with this probability.
    Random(f64),
    /// Gilbert-Elliott: a good and a bad state; `p` = P(good -> bad) and
    /// `r` = P(bad -> good) per packet; loss probability `k` in the good
    /// state and `h` in the bad one.
    GilbertElliott {
        p: f64,
        r: f64,
        k: f64,
        h: f64,
    },
}

impl Loss {
    /// The long-run loss rate.
    pub fn mean(&self) -> f64 {
        match *self {
            Loss::None => 0.0,
            Loss::Random(p) => p,
            Loss::GilbertElliott { p, r, k, h } => {
                if p + r == 0.0 {
                    k
                } else {
                    (r * k + p * h) / (p + r)
                }
            }
        }
    }
}

/// What a link is like.
#[derive(Debug, Clone, PartialEq)]
pub struct LinkProps {
    /// One-way propagation delay.
    pub delay: Duration,
    /// Each packet's delay is `delay * (1 + u)`, `u` uniform in
    /// `[-jitter, jitter]` (0.2 is +-20 %).
    pub jitter: f64,
    pub loss: Loss,
    /// Bits per second; `None` is unlimited.
    pub bandwidth_bps: Option<u64>,
    /// `(at, up)`: the link goes up or down (silent both ways) at `at`.
    pub schedule: Vec<(Duration, bool)>,
    /// What the link measurement is told the link is (its cost bias and
    /// capacity prior).
    pub class: LinkClass,
    /// Emulated data traffic, reported to both ends' link measurement as
    /// byte counters (it keeps the link in fast-hello mode). Counters only:
    /// no data packets cross the emulated link.
    pub traffic_bps: Option<u64>,
}

impl LinkProps {
    /// A clean 1 Gbit/s fiber link with this one-way delay. (An unlimited
    /// link, `bandwidth_bps: None`, delivers a probe train with zero
    /// dispersion, which the link measurement cannot use and keeps retrying.)
    pub fn with_delay(delay: Duration) -> Self {
        LinkProps {
            delay,
            jitter: 0.0,
            loss: Loss::None,
            bandwidth_bps: Some(1_000_000_000),
            schedule: Vec::new(),
            class: LinkClass::Fiber,
            traffic_bps: None,
        }
    }

    pub fn jitter(mut self, jitter: f64) -> Self {
        self.jitter = jitter;
        self
    }

    pub fn loss(mut self, loss: Loss) -> Self {
        self.loss = loss;
        self
    }

    pub fn bandwidth(mut self, bps: u64) -> Self {
        self.bandwidth_bps = Some(bps);
        self
    }

    pub fn class(mut self, class: LinkClass) -> Self {
        self.class = class;
        self
    }

    pub fn traffic(mut self, bps: u64) -> Self {
        self.traffic_bps = Some(bps);
        self
    }

    pub fn down_at(mut self, at: Duration) -> Self {
        self.schedule.push((at, false));
        self
    }

    pub fn up_at(mut self, at: Duration) -> Self {
        self.schedule.push((at, true));
        self
    }
}

/// Bytes a message takes on the wire (its TLV), for serialization delay.
pub fn message_size(msg: &ControlMessage) -> usize {
    msg.buffer_len()
}

/// Per-packet overhead: IPv6 + UDP + our header and authentication tag.
pub const PACKET_OVERHEAD: usize = 48 + 8 + 32;

/// One direction of a link.
#[derive(Debug, Clone, Default)]
pub(super) struct Direction {
    busy_until: Timestamp,
    last_arrival: Timestamp,
    bad_state: bool,
}

/// A link between two nodes, with its state.
#[derive(Debug, Clone)]
pub struct SimLink {
    pub a: usize,
    pub b: usize,
    pub props: LinkProps,
    pub up: bool,
    pub(super) dirs: [Direction; 2],
    pub(super) rng: Rng,
}

impl SimLink {
    pub(super) fn new(a: usize, b: usize, props: LinkProps, rng: Rng) -> Self {
        SimLink { a, b, props, up: true, dirs: Default::default(), rng }
    }

    /// The node at the other end from `node`.
    pub fn other(&self, node: usize) -> usize {
        if node == self.a { self.b } else { self.a }
    }

    /// When a packet of `bytes` sent by `from` at `now` arrives, or `None`
    /// if it is lost.
    pub(super) fn transmit(&mut self, now: Timestamp, from: usize, bytes: usize) -> Option<Timestamp> {
        if !self.up {
            return None;
        }
        let d = usize::from(from != self.a);
        let dir = &mut self.dirs[d];
        let start = now.max(dir.busy_until);
        let serialization = match self.props.bandwidth_bps {
            Some(bps) if bps > 0 => Duration::from_nanos((bytes as u64 * 8).saturating_mul(1_000_000_000) / bps),
            _ => Duration::ZERO,
        };
        dir.busy_until = start + serialization;
        let lost = match self.props.loss {
            Loss::None => false,
            Loss::Random(p) => self.rng.chance(p),
            Loss::GilbertElliott { p, r, k, h } => {
                dir.bad_state = if dir.bad_state { !self.rng.chance(r) } else { self.rng.chance(p) };
                self.rng.chance(if dir.bad_state { h } else { k })
            }
        };
        if lost {
            return None;
        }
        let jitter = if self.props.jitter > 0.0 { (self.rng.unit() * 2.0 - 1.0) * self.props.jitter } else { 0.0 };
        let flight = self.props.delay.mul_f64((1.0 + jitter).max(0.0));
        let arrival = (dir.busy_until + flight).max(dir.last_arrival);
        dir.last_arrival = arrival;
        Some(arrival)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bandwidth_adds_serialization_delay_and_packets_queue_behind_each_other() {
        let props = LinkProps::with_delay(Duration::from_millis(10)).bandwidth(8_000_000);
        let mut l = SimLink::new(0, 1, props, Rng::new(1));
        let t0 = Timestamp::from_nanos(0);
        // 1000 bytes at 8 Mbit/s: 1 ms on the wire.
        assert_eq!(l.transmit(t0, 0, 1000), Some(Timestamp::from_nanos(11_000_000)));
        assert_eq!(l.transmit(t0, 0, 1000), Some(Timestamp::from_nanos(12_000_000)));
        // The other direction is independent.
        assert_eq!(l.transmit(t0, 1, 1000), Some(Timestamp::from_nanos(11_000_000)));
    }

    #[test]
    fn gilbert_elliott_loss_comes_in_bursts_at_the_expected_rate() {
        let loss = Loss::GilbertElliott { p: 0.01, r: 0.2, k: 0.0, h: 0.8 };
        let mut l = SimLink::new(0, 1, LinkProps::with_delay(Duration::ZERO).loss(loss), Rng::new(3));
        let lost: Vec<bool> = (0..200_000).map(|_| l.transmit(Timestamp::ZERO, 0, 1).is_none()).collect();
        let rate = lost.iter().filter(|x| **x).count() as f64 / lost.len() as f64;
        assert!((rate - loss.mean()).abs() < 0.01, "rate {rate} mean {}", loss.mean());
        let pairs =
            lost.windows(2).filter(|w| w[0] && w[1]).count() as f64 / lost.iter().filter(|x| **x).count() as f64;
        assert!(pairs > 0.5, "losses should cluster: {pairs}");
    }

    #[test]
    fn a_down_link_drops_everything() {
        let mut l = SimLink::new(0, 1, LinkProps::with_delay(Duration::ZERO), Rng::new(1));
        l.up = false;
        assert_eq!(l.transmit(Timestamp::ZERO, 0, 10), None);
    }
}
