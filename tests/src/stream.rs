//! A checked TCP stream that runs while a test disturbs the network, and
//! measures the longest pause the receiver saw.
//!
//! [`Flow::start`] connects from one namespace to a listener in another and
//! sends a deterministic byte stream (see [`Stream`]) at most `rate` bytes a
//! second until [`Flow::finish`]; the receiver checks every byte and records
//! when each chunk arrived. Every wait is bounded.

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::netns::{Netns, Stream};

/// What the receiver saw.
#[derive(Debug, Clone, Copy)]
pub struct FlowReport {
    /// Bytes received, all checked.
    pub bytes: u64,
    /// Seconds from the first to the last byte.
    pub secs: f64,
    /// The longest time between two reads.
    pub longest_gap: Duration,
}

/// A running stream. See the module docs.
#[derive(Debug)]
pub struct Flow {
    stop: Arc<AtomicBool>,
    /// Bytes received so far (checked).
    pub received: Arc<AtomicU64>,
    client: JoinHandle<u64>,
    server: JoinHandle<FlowReport>,
}

impl Flow {
    /// Starts streaming from `from` to a listener in `to` at `addr`, at most
    /// `rate` bytes a second; waits until the first bytes have arrived.
    pub fn start(from: &Netns, to: &Netns, addr: SocketAddr, rate: u64) -> Flow {
        let stop = Arc::new(AtomicBool::new(false));
        let received = Arc::new(AtomicU64::new(0));
        let counter = Arc::clone(&received);
        let server = to.spawn(move || {
            let mut conn = crate::netns::accept_one(addr);
            let mut expected = Stream::new(0xf10);
            let (mut got, mut want) = (vec![0u8; 1 << 16], vec![0u8; 1 << 16]);
            let (mut total, mut longest, mut first, mut last) = (0u64, Duration::ZERO, None, Instant::now());
            loop {
                let n = conn.read(&mut got).expect("read (timed out or failed)");
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
                assert!(got[..n] == want[..n], "corrupted bytes after offset {total}");
                total += n as u64;
                counter.store(total, Ordering::Relaxed);
            }
            let secs = first.map_or(0.0, |f| (last - f).as_secs_f64());
            FlowReport { bytes: total, secs, longest_gap: longest }
        });
        let flag = Arc::clone(&stop);
        let client = from.spawn(move || {
            let mut conn = crate::netns::connect_within(addr);
            let mut source = Stream::new(0xf10);
            let mut buf = vec![0u8; 16 * 1024];
            let (start, mut sent) = (Instant::now(), 0u64);
            let hard_stop = start + Duration::from_secs(120);
            while !flag.load(Ordering::Relaxed) && Instant::now() < hard_stop {
                let allowed = (start.elapsed().as_secs_f64() * rate as f64) as u64;
                if sent >= allowed {
                    std::thread::sleep(Duration::from_millis(2));
                    continue;
                }
                source.fill(&mut buf);
                conn.write_all(&buf).expect("write");
                sent += buf.len() as u64;
            }
            conn.shutdown(std::net::Shutdown::Write).unwrap();
            sent
        });
        let flow = Flow { stop, received, client, server };
        let deadline = Instant::now() + Duration::from_secs(15);
        while flow.received.load(Ordering::Relaxed) == 0 {
            assert!(Instant::now() < deadline, "the stream did not start within 15 s");
            std::thread::sleep(Duration::from_millis(10));
        }
        flow
    }

    /// Stops sending and waits for the receiver to get everything; checks
    /// that every byte sent arrived.
    pub fn finish(self) -> FlowReport {
        self.stop.store(true, Ordering::Relaxed);
        let sent = self.client.join().expect("the sender failed");
        let report = self.server.join().expect("the receiver failed");
        assert_eq!(report.bytes, sent, "every byte sent arrived");
        report
    }
}
