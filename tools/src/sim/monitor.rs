//! TEMPORARY link measurement for the simulator, until the sans-IO link
//! engine (`mycelium_control::link`) is merged: real Hello/IHU exchanges
//! over the emulated link give liveness and the round-trip time; loss and
//! bandwidth are read from the emulated link's properties.
//!
//! The temporary cost function (documented here because tests depend on it):
//!
//! ```text
//! cost = (10 + rtt_ms) * (1 + 16 * loss) + min(1000, 1000 / bandwidth_mbit_s)
//! ```
//!
//! where `rtt_ms` is an exponentially weighted average of the measured RTT
//! (weight 1/4 per sample), `loss` the link's long-run loss rate, and the
//! bandwidth term 0 for unlimited links. The smoothed cost follows the cost
//! with weight 1/16 per sample and starts at four times the first cost each
//! time the link comes up, so a link that returns has to prove itself for a
//! few seconds before its smoothed cost is competitive.
//!
//! The link is up from the first RTT sample and down when nothing (hello or
//! IHU) has been heard for `dead_after`.

use std::time::Duration;

use mycelium_common::time::Timestamp;
use mycelium_common::wire::tlv::{ControlMessage, Hello, Ihu, METRIC_INFINITY};

/// Timers of the temporary link monitor.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MonitorConfig {
    pub hello_interval: Duration,
    pub dead_after: Duration,
}

impl Default for MonitorConfig {
    /// 100 ms hellos, dead after 300 ms of silence: failure detection well
    /// under a second, as DESIGN.md asks of active links.
    fn default() -> Self {
        MonitorConfig { hello_interval: Duration::from_millis(100), dead_after: Duration::from_millis(300) }
    }
}

/// The temporary cost of a link with this RTT, loss rate and bandwidth.
pub fn temporary_cost(rtt_ms: f64, loss: f64, bandwidth_bps: Option<u64>) -> f64 {
    let bandwidth_term = match bandwidth_bps {
        None => 0.0,
        Some(bps) => (1000.0 / (bps as f64 / 1e6).max(1e-3)).min(1000.0),
    };
    (10.0 + rtt_ms) * (1.0 + 16.0 * loss) + bandwidth_term
}

/// One end of one link.
#[derive(Debug, Clone)]
pub struct LinkMonitor {
    config: MonitorConfig,
    loss: f64,
    bandwidth_bps: Option<u64>,
    hello_seqno: u16,
    next_hello: Timestamp,
    last_heard: Option<Timestamp>,
    up: bool,
    rtt_ms: f64,
    smoothed: f64,
    reported: (u16, u16),
}

fn micros(t: Timestamp) -> u64 {
    t.as_nanos() / 1_000
}

fn clamp_cost(c: f64) -> u16 {
    c.round().clamp(1.0, f64::from(METRIC_INFINITY - 1)) as u16
}

impl LinkMonitor {
    pub fn new(now: Timestamp, config: MonitorConfig, loss: f64, bandwidth_bps: Option<u64>) -> Self {
        LinkMonitor {
            config,
            loss,
            bandwidth_bps,
            hello_seqno: 0,
            next_hello: now,
            last_heard: None,
            up: false,
            rtt_ms: 0.0,
            smoothed: 0.0,
            reported: (METRIC_INFINITY, METRIC_INFINITY),
        }
    }

    pub fn is_up(&self) -> bool {
        self.up
    }

    fn cost(&self) -> f64 {
        temporary_cost(self.rtt_ms, self.loss, self.bandwidth_bps)
    }

    /// A hello from the other end: answer with an IHU.
    pub fn handle_hello(&mut self, now: Timestamp, hello: &Hello, out: &mut Vec<ControlMessage>) {
        self.last_heard = Some(now);
        out.push(ControlMessage::Ihu(Ihu {
            rxcost: 0,
            interval_cs: hello.interval_cs,
            origin_us: hello.timestamp_us,
            receive_us: micros(now),
            transmit_us: micros(now),
        }));
    }

    /// An IHU answering one of our hellos: an RTT sample.
    pub fn handle_ihu(&mut self, now: Timestamp, ihu: &Ihu) {
        self.last_heard = Some(now);
        let held = ihu.transmit_us.saturating_sub(ihu.receive_us);
        let rtt_us = micros(now).saturating_sub(ihu.origin_us).saturating_sub(held);
        let sample = rtt_us as f64 / 1000.0;
        if self.up {
            self.rtt_ms += (sample - self.rtt_ms) / 4.0;
            self.smoothed += (self.cost() - self.smoothed) / 16.0;
        } else {
            self.up = true;
            self.rtt_ms = sample;
            self.smoothed = 4.0 * self.cost();
        }
    }

    /// Sends hellos and notices silence.
    pub fn handle_timeout(&mut self, now: Timestamp, out: &mut Vec<ControlMessage>) {
        if now >= self.next_hello {
            self.hello_seqno = self.hello_seqno.wrapping_add(1);
            let interval_cs = u16::try_from(self.config.hello_interval.as_millis() / 10).unwrap_or(u16::MAX);
            out.push(ControlMessage::Hello(Hello {
                unicast: true,
                seqno: self.hello_seqno,
                interval_cs,
                timestamp_us: micros(now),
                position: None,
            }));
            self.next_hello = now + self.config.hello_interval;
        }
        if self.up && self.last_heard.is_some_and(|t| now >= t + self.config.dead_after) {
            self.up = false;
        }
    }

    pub fn next_timeout(&self) -> Timestamp {
        match (self.up, self.last_heard) {
            (true, Some(t)) => self.next_hello.min(t + self.config.dead_after),
            _ => self.next_hello,
        }
    }

    /// `(cost, smoothed)` if it changed since last asked; infinite = down.
    pub fn poll_cost(&mut self) -> Option<(u16, u16)> {
        let now = if self.up { (clamp_cost(self.cost()), clamp_cost(self.smoothed)) } else { (METRIC_INFINITY, METRIC_INFINITY) };
        (now != self.reported).then(|| {
            self.reported = now;
            now
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_temporary_cost_ranks_the_path_choice_scenarios() {
        // Satellite 1200 ms RTT versus two fibre hops of 20 ms RTT each.
        assert!(temporary_cost(1200.0, 0.0, None) > 2.0 * temporary_cost(20.0, 0.0, None));
        // 5 % loss versus clean at 1.5x the RTT.
        assert!(temporary_cost(40.0, 0.05, None) > temporary_cost(60.0, 0.0, None) * 1.2);
        // 10 Mbit/s versus 1 Gbit/s at equal RTT.
        assert!(temporary_cost(20.0, 0.0, Some(10_000_000)) > temporary_cost(20.0, 0.0, Some(1_000_000_000)) * 1.2);
    }

    #[test]
    fn a_link_is_up_after_the_first_rtt_sample_and_down_after_silence() {
        let t0 = Timestamp::from_nanos(1_000_000_000);
        let mut m = LinkMonitor::new(t0, MonitorConfig::default(), 0.0, None);
        let mut out = Vec::new();
        m.handle_timeout(t0, &mut out);
        let ControlMessage::Hello(h) = out[0] else { panic!("expected a hello") };
        let ihu = Ihu { rxcost: 0, interval_cs: 10, origin_us: h.timestamp_us, receive_us: 5, transmit_us: 5 };
        m.handle_ihu(t0 + Duration::from_millis(20), &ihu);
        assert!(m.is_up());
        assert_eq!(m.poll_cost(), Some((30, 120)));
        assert_eq!(m.poll_cost(), None);
        m.handle_timeout(t0 + Duration::from_millis(400), &mut out);
        assert!(!m.is_up());
        assert_eq!(m.poll_cost(), Some((METRIC_INFINITY, METRIC_INFINITY)));
    }
}
