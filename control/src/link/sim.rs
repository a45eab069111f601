//! A tiny deterministic harness: two [`Link`]s back to back on simulated
//! time, with a one-way delay, optional jitter, seeded loss, an optional
//! bottleneck rate, and per-direction mute and filters. Each node has its
//! own clock offset, so no two stamps share an origin.

use std::time::Duration;

use mycelium_common::time::Timestamp;
use mycelium_common::wire::tlv::ControlMessage;

use super::bandwidth::PROBE_OVERHEAD;
use super::{Link, LinkConfig, LinkEvent};
use crate::rng::Rng;

/// Decides whether a message passes (false drops it).
pub type Filter = Box<dyn FnMut(&ControlMessage) -> bool>;

/// One direction of the wire.
pub struct Pipe {
    pub delay: Duration,
    pub jitter: Duration,
    pub loss: f64,
    pub rate_bps: Option<u64>,
    pub mute: bool,
    /// Returns false to drop a message.
    pub filter: Option<Filter>,
    free_at: u64,
    /// Hellos delivered through this pipe.
    pub hellos_delivered: u64,
    /// (global send time ns, bytes) of every probe sent into this pipe.
    pub probes_sent: Vec<(u64, usize)>,
}

impl Pipe {
    fn new(delay: Duration) -> Self {
        Pipe {
            delay,
            jitter: Duration::ZERO,
            loss: 0.0,
            rate_bps: None,
            mute: false,
            filter: None,
            free_at: 0,
            hellos_delivered: 0,
            probes_sent: Vec::new(),
        }
    }
}

/// A recorded event: global time, node, event.
pub type Record = (u64, usize, LinkEvent);

pub struct Sim {
    /// Global time, ns.
    pub now: u64,
    pub links: [Link; 2],
    offsets: [u64; 2],
    /// `pipes[i]` carries node i's messages to the other node.
    pub pipes: [Pipe; 2],
    queue: Vec<(u64, u64, usize, ControlMessage, usize)>,
    seq: u64,
    rng: Rng,
    pub events: Vec<Record>,
    /// Data rate from node 0 to node 1 reported through `handle_traffic`.
    pub traffic_bps: Option<u64>,
    counters: [(u64, u64); 2],
    next_traffic_tick: u64,
}

const TRAFFIC_TICK: u64 = 100_000_000;
/// Guard against a link whose `poll_timeout` never moves forward.
const MAX_STEPS: u64 = 5_000_000;

pub fn wire_len(m: &ControlMessage) -> usize {
    match m {
        ControlMessage::Probe(p) => usize::from(PROBE_OVERHEAD) + usize::from(p.padding),
        ControlMessage::Hello(_) => 24,
        ControlMessage::Ihu(_) => 36,
        ControlMessage::ProbeReport(_) => 28,
        _ => 40,
    }
}

impl Sim {
    pub fn new(a: LinkConfig, b: LinkConfig, delay: Duration, seed: u64) -> Self {
        // Clocks far apart: node 1's is ~31 years ahead of node 0's.
        let offsets = [1_000_000_000, 1_000_000_000_000_000_000];
        let start = 0;
        Sim {
            now: start,
            links: [
                Link::new(Timestamp::from_nanos(start + offsets[0]), a),
                Link::new(Timestamp::from_nanos(start + offsets[1]), b),
            ],
            offsets,
            pipes: [Pipe::new(delay), Pipe::new(delay)],
            queue: Vec::new(),
            seq: 0,
            // The shared generator XORs its seed with a constant; undo it so
            // this harness draws the same stream it always did.
            rng: Rng::new(seed ^ 0x6A09_E667_F3BC_C908),
            events: Vec::new(),
            traffic_bps: None,
            counters: [(0, 0); 2],
            next_traffic_tick: 0,
        }
    }

    pub fn local(&self, i: usize) -> Timestamp {
        Timestamp::from_nanos(self.now + self.offsets[i])
    }

    fn global(&self, i: usize, t: Timestamp) -> u64 {
        t.as_nanos().saturating_sub(self.offsets[i])
    }

    pub fn run_for(&mut self, d: Duration) {
        let end = self.now + d.as_nanos() as u64;
        self.run_until(end);
    }

    /// Runs until global time `end` (ns).
    pub fn run_until(&mut self, end: u64) {
        for _ in 0..MAX_STEPS {
            self.drain();
            let mut next = u64::MAX;
            for i in 0..2 {
                next = next.min(self.global(i, self.links[i].poll_timeout()));
            }
            if let Some(q) = self.queue.iter().map(|q| q.0).min() {
                next = next.min(q);
            }
            if self.traffic_bps.is_some() {
                next = next.min(self.next_traffic_tick);
            }
            let next = next.max(self.now);
            if next > end {
                self.now = end;
                return;
            }
            self.now = next;
            self.deliver_due();
            for i in 0..2 {
                let t = self.links[i].poll_timeout();
                if self.global(i, t) <= self.now {
                    let now = self.local(i);
                    self.links[i].handle_timeout(now);
                }
            }
            self.traffic_tick();
        }
        panic!("simulation did not advance: busy loop at {} ns", self.now);
    }

    fn drain(&mut self) {
        for i in 0..2 {
            let now = self.local(i);
            while let Some(m) = self.links[i].poll_transmit(now) {
                self.send(i, m);
            }
            while let Some(e) = self.links[i].poll_event() {
                self.events.push((self.now, i, e));
            }
        }
    }

    fn send(&mut self, from: usize, m: ControlMessage) {
        let len = wire_len(&m);
        let pipe = &mut self.pipes[from];
        if matches!(m, ControlMessage::Probe(_)) {
            pipe.probes_sent.push((self.now, len));
        }
        if pipe.mute || pipe.filter.as_mut().is_some_and(|f| !f(&m)) {
            return;
        }
        if pipe.loss > 0.0 && self.rng.unit() < pipe.loss {
            return;
        }
        let depart = match pipe.rate_bps {
            Some(rate) => {
                let start = pipe.free_at.max(self.now);
                pipe.free_at = start + (len as u64 * 8 * 1_000_000_000).div_ceil(rate);
                pipe.free_at
            }
            None => self.now,
        };
        let jitter = if pipe.jitter.is_zero() { 0 } else { (self.rng.unit() * pipe.jitter.as_nanos() as f64) as u64 };
        let at = depart + pipe.delay.as_nanos() as u64 + jitter;
        self.seq += 1;
        self.queue.push((at, self.seq, 1 - from, m, len));
    }

    fn deliver_due(&mut self) {
        let mut due: Vec<_> = Vec::new();
        let now = self.now;
        self.queue.retain(|q| {
            if q.0 <= now {
                due.push(*q);
                false
            } else {
                true
            }
        });
        due.sort_by_key(|q| (q.0, q.1));
        for (_, _, to, m, len) in due {
            let t = self.local(to);
            let link = &mut self.links[to];
            match m {
                ControlMessage::Hello(h) => {
                    self.pipes[1 - to].hellos_delivered += 1;
                    link.handle_hello(t, &h);
                }
                ControlMessage::Ihu(i) => link.handle_ihu(t, &i),
                ControlMessage::Probe(p) => link.handle_probe(t, &p, len),
                ControlMessage::ProbeReport(r) => link.handle_probe_report(t, &r),
                _ => {}
            }
        }
    }

    fn traffic_tick(&mut self) {
        let Some(rate) = self.traffic_bps else { return };
        if self.now < self.next_traffic_tick {
            return;
        }
        // Node 0 sends data and node 1 acknowledgements (a twentieth of it,
        // as TCP does), each while its link is up (a down link carries no
        // route); the other side counts what a working pipe delivers.
        let bytes = rate / 8 * TRAFFIC_TICK / 1_000_000_000;
        for (from, to, bytes) in [(0, 1, bytes), (1, 0, bytes / 20)] {
            if self.links[from].is_up() {
                self.counters[from].0 += bytes;
                if !self.pipes[from].mute {
                    self.counters[to].1 += bytes;
                }
            }
        }
        for i in 0..2 {
            let (tx, rx) = self.counters[i];
            let now = self.local(i);
            self.links[i].handle_traffic(now, tx, rx);
        }
        self.next_traffic_tick = self.now + TRAFFIC_TICK;
    }

    /// Global time of the first `event` at `node` after `since`.
    pub fn first_event(&self, node: usize, since: u64, pred: impl Fn(&LinkEvent) -> bool) -> Option<u64> {
        self.events.iter().find(|(t, n, e)| *t >= since && *n == node && pred(e)).map(|(t, _, _)| *t)
    }
}
