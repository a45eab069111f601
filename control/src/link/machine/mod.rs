//! [`Link`]: the per-neighbour state machine tying hellos, IHUs, probes and
//! traffic counters to a link state and cost. Driving it is described in the
//! [module docs of `link`](super).

use std::collections::VecDeque;
use std::time::Duration;

use mycelium_common::time::Timestamp;
use mycelium_common::wire::tlv::{ControlMessage, GeoPosition, Hello, Ihu, METRIC_INFINITY, Probe, ProbeReport};

mod assess;

use crate::link::bandwidth::{PassiveRate, ProbePlan, ProbeReceiver, Prober};
use crate::link::config::LinkConfig;
use crate::link::cost::MAX_FINITE_COST;
use crate::link::metrics::LinkEvent;
use crate::link::reach::{self, HelloHistory};
use crate::link::rtt::{self, RttEstimator, SentStamps};
use crate::link::{geo, micros};

/// The last hello heard from the neighbour.
#[derive(Debug, Clone, Copy)]
struct HeardHello {
    at: Timestamp,
    /// Its timestamp (neighbour's clock) and our receive time, for our IHU.
    timestamp_us: u64,
    received_us: u64,
    /// The interval it promised.
    interval: Duration,
}

/// One neighbour link. See the [module docs](super) for how to drive it.
#[derive(Debug, Clone)]
pub struct Link {
    config: LinkConfig,
    plan: ProbePlan,
    /// Latest time seen through any entry point.
    now: Timestamp,
    // Our hellos.
    seqno: u16,
    next_hello: Timestamp,
    announced: Duration,
    /// Hellos still to send at the fast pace after announcing a slow one.
    slow_repeats: u8,
    sent: SentStamps,
    // The neighbour's hellos and IHUs.
    history: HelloHistory,
    heard: Option<HeardHello>,
    hello_timer: Option<Timestamp>,
    neighbour_position: Option<GeoPosition>,
    last_ihu: Option<(Timestamp, Duration)>,
    /// Fast hellos until then (new link keys: the neighbour may have
    /// restarted and be proving us again).
    fast_until: Option<Timestamp>,
    txcost: Option<u16>,
    ihu_since_down: bool,
    rtt: RttEstimator,
    implausible: bool,
    // Capacity.
    passive: PassiveRate,
    prober: Prober,
    probe_rx: ProbeReceiver,
    // State and cost.
    up: bool,
    cost: u16,
    smoothed: Option<(f64, Timestamp)>,
    reported: Option<(u16, u16)>,
    transmit: VecDeque<ControlMessage>,
    events: VecDeque<LinkEvent>,
}

/// Hellos announcing a longer interval that are sent at the fast pace.
const SLOW_REPEATS: u8 = 3;

/// `ceil(d / 10 ms)`, at least 1: an announced interval is an upper bound.
fn to_cs(d: Duration) -> u16 {
    d.as_millis().div_ceil(10).clamp(1, u128::from(u16::MAX)) as u16
}

fn from_cs(cs: u16) -> Duration {
    Duration::from_millis(u64::from(cs) * 10)
}

impl Link {
    /// A link that is down and sends its first hello at `now`.
    pub fn new(now: Timestamp, config: LinkConfig) -> Self {
        let config = config.sanitized();
        let plan = ProbePlan {
            train_len: config.probe_train_len,
            probe_size: config.probe_size,
            share: config.probe_share,
            timeout: config.probe_timeout,
            refresh: config.probe_refresh,
        };
        Link {
            announced: config.idle_hello_interval,
            config,
            plan,
            now,
            seqno: 0,
            next_hello: now,
            slow_repeats: 0,
            sent: SentStamps::default(),
            history: HelloHistory::default(),
            heard: None,
            hello_timer: None,
            neighbour_position: None,
            last_ihu: None,
            fast_until: None,
            txcost: None,
            ihu_since_down: false,
            rtt: RttEstimator::default(),
            implausible: false,
            passive: PassiveRate::default(),
            prober: Prober::default(),
            probe_rx: ProbeReceiver::default(),
            up: false,
            cost: METRIC_INFINITY,
            smoothed: None,
            reported: None,
            transmit: VecDeque::new(),
            events: VecDeque::new(),
        }
    }

    /// A hello from the neighbour (RFC 8966 section 3.4.1).
    pub fn handle_hello(&mut self, now: Timestamp, hello: &Hello) {
        self.tick(now);
        if self.history.on_hello(hello.seqno) == reach::HelloOutcome::Late {
            return;
        }
        let interval = from_cs(hello.interval_cs);
        self.heard = Some(HeardHello { at: now, timestamp_us: hello.timestamp_us, received_us: micros(now), interval });
        // RFC 8966 Appendix A.1: a hello is missed after 1.5 intervals.
        self.hello_timer = (!interval.is_zero()).then(|| now + interval * 3 / 2);
        self.neighbour_position = hello.position.filter(|p| geo::is_valid(*p));
        self.after_input(now);
    }

    /// An IHU from the neighbour: its rxcost and an RTT sample.
    pub fn handle_ihu(&mut self, now: Timestamp, ihu: &Ihu) {
        self.tick(now);
        self.last_ihu = Some((now, from_cs(ihu.interval_cs)));
        self.txcost = Some(ihu.rxcost);
        if ihu.rxcost != METRIC_INFINITY {
            self.ihu_since_down = true;
        }
        match rtt::sample(micros(now), ihu, &self.sent, self.config.max_rtt) {
            Ok(sample) => self.rtt.add(sample),
            Err(_) => self.rtt.reject(),
        }
        self.after_input(now);
    }

    /// A probe of the neighbour's train, `wire_len` bytes on the wire.
    pub fn handle_probe(&mut self, now: Timestamp, probe: &Probe, wire_len: usize) {
        self.tick(now);
        if let Some(report) = self.probe_rx.on_probe(now, probe, wire_len) {
            self.transmit.push_back(ControlMessage::ProbeReport(report));
        }
    }

    /// The neighbour's report on our train.
    pub fn handle_probe_report(&mut self, now: Timestamp, report: &ProbeReport) {
        self.tick(now);
        if self.prober.on_report(now, report).is_some() {
            self.after_input(now);
        }
    }

    /// The link has new keys (a rekey, or the neighbour restarted and shook
    /// hands again). A restarted neighbour must hear three hellos in a row
    /// from us before it answers, so hellos go at the fast pace for
    /// `activity_timeout`, starting now, instead of every idle interval.
    pub fn handle_new_keys(&mut self, now: Timestamp) {
        self.tick(now);
        self.fast_until = Some(now + self.config.activity_timeout);
        if self.announced > self.config.active_hello_interval {
            self.next_hello = now;
        }
    }

    /// Cumulative data bytes sent to and received from this neighbour, as
    /// counted by the dataplane (data only, not this link's control
    /// messages). Call it periodically, e.g. every 100 ms.
    pub fn handle_traffic(&mut self, now: Timestamp, tx_bytes_total: u64, rx_bytes_total: u64) {
        self.tick(now);
        let (window, age) = (self.config.passive_window, self.config.capacity_max_age);
        self.passive.on_counters(now, tx_bytes_total, rx_bytes_total, window, age);
        self.after_input(now);
    }

    /// Runs the timers due at `now`.
    pub fn handle_timeout(&mut self, now: Timestamp) {
        self.tick(now);
        if let (Some(t), Some(h)) = (self.hello_timer, self.heard)
            && now >= t
            && !h.interval.is_zero()
        {
            let k = (now - t).as_nanos() / h.interval.as_nanos() + 1;
            for _ in 0..k.min(17) {
                self.history.on_missed();
            }
            self.hello_timer = Some(if k <= 17 { t + h.interval * k as u32 } else { now + h.interval });
        }
        if !self.hello_fresh(now) {
            self.hello_timer = None;
        }
        let capacity = self.capacity_bps();
        self.prober.on_timeout(now, &self.plan, capacity);
        if let Some(report) = self.probe_rx.on_timeout(now) {
            self.transmit.push_back(ControlMessage::ProbeReport(report));
        }
        self.after_input(now);
    }

    /// The next control message to send on this link; drain until `None`.
    pub fn poll_transmit(&mut self, now: Timestamp) -> Option<ControlMessage> {
        self.tick(now);
        if now >= self.next_hello {
            self.send_hello(now);
        }
        if self.probe_start().is_some_and(|at| now >= at) {
            let capacity = self.capacity_bps();
            let queue = &mut self.transmit;
            self.prober.start_train(now, &self.plan, capacity, |p| queue.push_back(ControlMessage::Probe(p)));
        }
        self.transmit.pop_front()
    }

    /// The next state change; drain until `None` after any input.
    pub fn poll_event(&mut self) -> Option<LinkEvent> {
        self.events.pop_front()
    }

    /// When [`handle_timeout`](Self::handle_timeout) (then `poll_transmit`)
    /// must run next.
    pub fn poll_timeout(&self) -> Timestamp {
        let now = self.now;
        let mut next = self.next_hello;
        let mut consider = |deadline: Option<Timestamp>| {
            if let Some(d) = deadline {
                next = next.min(d);
            }
        };
        consider(self.hello_timer);
        if self.up || self.hello_fresh(now) {
            consider(self.heard.map(|h| h.at + self.config.dead_interval_for(h.interval)));
        }
        if self.up {
            consider(self.last_ihu.map(|(at, interval)| at + self.config.dead_interval_for(interval)));
        }
        // The end of activity changes the hello interval.
        consider(self.passive.last_activity().map(|t| t + self.config.activity_timeout).filter(|&end| end > now));
        consider(self.fast_until.filter(|&end| end > now));
        consider(self.prober.timeout_at(&self.plan));
        consider(self.probe_start());
        consider(self.probe_rx.report_at());
        next
    }

    pub fn is_up(&self) -> bool {
        self.up
    }

    /// The current cost; [`METRIC_INFINITY`] when down.
    pub fn cost(&self) -> u16 {
        self.cost
    }

    /// The cost smoothed with [`LinkConfig::cost_half_life`];
    /// [`METRIC_INFINITY`] when down.
    pub fn smoothed_cost(&self) -> u16 {
        match self.smoothed {
            Some((s, _)) => s.round().clamp(1.0, f64::from(MAX_FINITE_COST)) as u16,
            None => METRIC_INFINITY,
        }
    }

    pub fn config(&self) -> &LinkConfig {
        &self.config
    }

    fn tick(&mut self, now: Timestamp) {
        self.now = self.now.max(now);
    }

    fn send_hello(&mut self, now: Timestamp) {
        let interval = self.desired_interval(now);
        if interval > self.announced {
            self.slow_repeats = SLOW_REPEATS;
        }
        self.announced = interval;
        let stamp = micros(now);
        self.sent.record(stamp);
        let interval_cs = to_cs(interval);
        self.transmit.push_back(ControlMessage::Hello(Hello {
            unicast: true,
            seqno: self.seqno,
            interval_cs,
            timestamp_us: stamp,
            position: self.config.local_position,
        }));
        self.seqno = self.seqno.wrapping_add(1);
        // Our IHU rides with every hello (RFC 9616 section 3.1 wants it
        // sent soon after the hello it answers; the hold is subtracted).
        // While down, we answer only once the neighbour proved stable to
        // us, so neither side comes up before both have proven the other.
        let proven = self.up || self.history.consecutive() >= u16::from(self.config.up_hellos);
        if let Some(h) = self.heard.filter(|_| proven && self.hello_fresh(now)) {
            self.transmit.push_back(ControlMessage::Ihu(Ihu {
                rxcost: self.history.rxcost(),
                interval_cs,
                origin_us: h.timestamp_us,
                receive_us: h.received_us,
                transmit_us: stamp,
            }));
        }
        // The first hellos announcing a longer interval go out at the old
        // pace: if the one announcement were lost, the neighbour would miss
        // hellos it was promised and declare us down.
        let gap = if self.slow_repeats > 0 {
            self.slow_repeats -= 1;
            interval.min(self.config.active_hello_interval)
        } else {
            interval
        };
        self.next_hello = now + gap;
    }

    fn active(&self, now: Timestamp) -> bool {
        self.passive.last_activity().is_some_and(|t| now < t + self.config.activity_timeout)
    }

    fn hello_fresh(&self, now: Timestamp) -> bool {
        self.heard.is_some_and(|h| now < h.at + self.config.dead_interval_for(h.interval))
    }

    fn ihu_fresh(&self, now: Timestamp) -> bool {
        self.last_ihu.is_some_and(|(at, interval)| now < at + self.config.dead_interval_for(interval))
    }

    /// Fast hellos while traffic flows or while a heard neighbour is
    /// proving itself (so coming up takes a fraction of a second).
    fn desired_interval(&self, now: Timestamp) -> Duration {
        let pending = !self.up && self.hello_fresh(now);
        let rekeyed = self.fast_until.is_some_and(|end| now < end);
        if self.active(now) || pending || rekeyed {
            self.config.active_hello_interval
        } else {
            self.config.idle_hello_interval
        }
    }

    fn probe_start(&self) -> Option<Timestamp> {
        if !self.up || self.active(self.now) {
            return None;
        }
        self.prober.next_start(self.now, &self.plan)
    }

    fn after_input(&mut self, now: Timestamp) {
        if self.up && (!self.hello_fresh(now) || !self.ihu_fresh(now)) {
            self.go_down();
        }
        if !self.up
            && self.history.consecutive() >= u16::from(self.config.up_hellos)
            && self.ihu_since_down
            && self.hello_fresh(now)
            && self.ihu_fresh(now)
            && self.txcost != Some(METRIC_INFINITY)
        {
            self.up = true;
            self.events.push_back(LinkEvent::Up);
        }
        self.check_implausible();
        // Announce a changed interval at once: a longer one keeps the
        // promise made by the last hello, a shorter one speeds detection.
        if self.desired_interval(now) != self.announced {
            self.next_hello = self.next_hello.min(now);
        }
        self.recompute(now);
    }

    fn go_down(&mut self) {
        self.up = false;
        self.history.clear();
        self.hello_timer = None;
        self.ihu_since_down = false;
        self.events.push_back(LinkEvent::Down);
    }
}
