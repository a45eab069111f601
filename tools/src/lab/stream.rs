//! A checked TCP stream that runs while a test or scenario disturbs the
//! network, and measures the longest pause the receiver saw.
//!
//! [`Flow::try_start`] connects from one namespace to a listener in another
//! and sends a deterministic byte stream (see [`Stream`]) at most `rate`
//! bytes a second until [`Flow::try_finish`]; the receiver checks every
//! byte and records when each chunk arrived. Every wait is bounded, and
//! nothing panics: a failure comes back as an error (`start` and `finish`
//! are the panicking forms the tests use).

use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::netns::{Netns, Stream, try_accept_one, try_connect_within};

/// What the receiver saw.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct FlowReport {
    /// Bytes received, all checked.
    pub bytes: u64,
    /// Seconds from the first to the last byte.
    pub secs: f64,
    /// The longest time between two reads.
    pub longest_gap: Duration,
}

type Side<T> = JoinHandle<io::Result<io::Result<T>>>;

/// A running stream. See the module docs. Dropping it unfinished stops
/// the sender (the threads then end on their own).
#[derive(Debug)]
pub struct Flow {
    stop: Arc<AtomicBool>,
    /// Bytes received so far (checked).
    pub received: Arc<AtomicU64>,
    sides: Option<(Side<u64>, Side<FlowReport>)>,
}

impl Drop for Flow {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn receive(addr: SocketAddr, counter: &AtomicU64) -> io::Result<FlowReport> {
    let mut conn = try_accept_one(addr, Duration::from_secs(15))?;
    let mut expected = Stream::new(0xf10);
    let (mut got, mut want) = (vec![0u8; 1 << 16], vec![0u8; 1 << 16]);
    let (mut total, mut longest, mut first, mut last) = (0u64, Duration::ZERO, None, Instant::now());
    loop {
        let n = conn.read(&mut got)?;
        let now = Instant::now();
        if n == 0 {
            break;
        }
        if first.is_some() {
            longest = longest.max(now - last);
        } else {
            first = Some(now);
        }
        last = now;
        expected.fill(&mut want[..n]);
        if got[..n] != want[..n] {
            return Err(io::Error::new(io::ErrorKind::InvalidData, format!("corrupted bytes after offset {total}")));
        }
        total += n as u64;
        counter.store(total, Ordering::Relaxed);
    }
    let secs = first.map_or(0.0, |f| (last - f).as_secs_f64());
    Ok(FlowReport { bytes: total, secs, longest_gap: longest })
}

fn send(addr: SocketAddr, rate: u64, stop: &AtomicBool) -> io::Result<u64> {
    let mut conn = try_connect_within(addr, Duration::from_secs(10))?;
    let mut source = Stream::new(0xf10);
    let mut buf = vec![0u8; 16 * 1024];
    let (start, mut sent) = (Instant::now(), 0u64);
    let hard_stop = start + Duration::from_secs(120);
    while !stop.load(Ordering::Relaxed) && Instant::now() < hard_stop {
        let allowed = (start.elapsed().as_secs_f64() * rate as f64) as u64;
        if sent >= allowed {
            std::thread::sleep(Duration::from_millis(2));
            continue;
        }
        source.fill(&mut buf);
        conn.write_all(&buf)?;
        sent += buf.len() as u64;
    }
    conn.shutdown(std::net::Shutdown::Write)?;
    Ok(sent)
}

fn joined<T>(side: Side<T>, what: &str) -> io::Result<T> {
    side.join().map_err(|_| io::Error::other(format!("the {what} thread panicked")))??
}

impl Flow {
    /// Starts streaming from `from` to a listener in `to` at `addr`, at most
    /// `rate` bytes a second; waits (up to 15 s) until the first bytes have arrived.
    pub fn try_start(from: &Netns, to: &Netns, addr: SocketAddr, rate: u64) -> io::Result<Flow> {
        let stop = Arc::new(AtomicBool::new(false));
        let received = Arc::new(AtomicU64::new(0));
        let counter = Arc::clone(&received);
        let server = to.spawn_checked(move || receive(addr, &counter));
        let flag = Arc::clone(&stop);
        let client = from.spawn_checked(move || send(addr, rate, &flag));
        let flow = Flow { stop, received, sides: Some((client, server)) };
        let deadline = Instant::now() + Duration::from_secs(15);
        while flow.received.load(Ordering::Relaxed) == 0 {
            let ended = flow.sides.as_ref().is_none_or(|(c, s)| c.is_finished() || s.is_finished());
            if Instant::now() >= deadline || ended {
                let why = match flow.try_finish() {
                    Err(e) => e.to_string(),
                    Ok(_) => "nothing arrived".to_owned(),
                };
                return Err(io::Error::new(io::ErrorKind::TimedOut, format!("the stream did not start: {why}")));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Ok(flow)
    }

    /// Stops sending and waits for the receiver to get everything; checks
    /// that every byte sent arrived.
    pub fn try_finish(mut self) -> io::Result<FlowReport> {
        self.stop.store(true, Ordering::Relaxed);
        let (client, server) = self.sides.take().ok_or_else(|| io::Error::other("the stream was finished already"))?;
        let sent = joined(client, "sender");
        let report = joined(server, "receiver")?;
        let sent = sent?;
        if report.bytes != sent {
            return Err(io::Error::other(format!("{sent} bytes sent but {} arrived", report.bytes)));
        }
        Ok(report)
    }

    /// [`Flow::try_start`], panicking on failure.
    pub fn start(from: &Netns, to: &Netns, addr: SocketAddr, rate: u64) -> Flow {
        Flow::try_start(from, to, addr, rate).unwrap_or_else(|e| panic!("stream to {addr}: {e}"))
    }

    /// [`Flow::try_finish`], panicking on failure.
    pub fn finish(self) -> FlowReport {
        self.try_finish().unwrap_or_else(|e| panic!("stream: {e}"))
    }
}
