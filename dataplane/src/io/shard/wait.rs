//! How a shard waits for the kernel: asleep in `io_uring_enter`, or, for a
//! short while after each batch, busy-polling.
//!
//! Sleeping costs a wake-up per arrival: on an idle core (and even more on an
//! idle vCPU of a virtual machine, where the host has to schedule it again)
//! that is tens of microseconds, paid on every hop of a round trip. With a
//! busy-poll window (`--busy-poll-us`, myceliumd's `busy_poll_us`), a shard
//! that just did work keeps its core awake for that long, watching the ring
//! without a system call:
//!
//! - the ring is set up with `DEFER_TASKRUN | TASKRUN_FLAG`, so an arrival
//!   (a UDP receive or a TUN read completing) only queues task work and sets
//!   `IORING_SQ_TASKRUN` in the shared SQ flags; the shard sees the flag with
//!   one atomic load and enters the kernel (`GETEVENTS`, no waiting) only
//!   then, to turn that work into completions;
//! - completions already posted (sends finishing) are seen in the CQ ring.
//!
//! The window restarts after every batch that had completions and ends, back
//! to sleeping, once it passes without any. Polling burns the core for at most
//! the window after the last packet, so its cost is bounded by the packet rate
//! times the window; the default is zero (never poll), the right choice for a
//! host that runs other work, and a gateway that wants the lowest latency turns
//! it on.

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};

use io_uring::types::{SubmitArgs, Timespec};
use mycelium_common::time::Timestamp;

use super::{Shard, WAIT_TIMEOUT};
use crate::engine::Engine;

/// Spins between two clock reads while polling.
const SPINS_PER_CLOCK_READ: u32 = 64;

impl<E: Engine> Shard<E> {
    /// Submits what the last iteration queued and waits for completions:
    /// polls until `poll_until` if that is set and still ahead, else sleeps
    /// (at most [`WAIT_TIMEOUT`], so shutdown is seen). Returns the polling
    /// deadline still in force (`None` once it has passed).
    pub(super) fn wait(
        &mut self,
        poll_until: Option<Timestamp>,
        shutdown: &AtomicBool,
    ) -> io::Result<Option<Timestamp>> {
        if let Some(deadline) = poll_until {
            self.enter_if_needed()?;
            if self.poll_for_work(deadline, shutdown) {
                self.enter_if_needed()?;
                return Ok(poll_until);
            }
        }
        self.enter(!self.inject_pending)?;
        Ok(None)
    }

    /// Spins until completions are posted, task work is flagged, shutdown is
    /// asked for, or `deadline` passes (`false`).
    fn poll_for_work(&mut self, deadline: Timestamp, shutdown: &AtomicBool) -> bool {
        loop {
            for _ in 0..SPINS_PER_CLOCK_READ {
                if self.inject_pending || self.ring.submission().taskrun() || !self.ring.completion().is_empty() {
                    return true;
                }
                std::hint::spin_loop();
            }
            if shutdown.load(Ordering::Relaxed) || Timestamp::now() >= deadline {
                return false;
            }
        }
    }

    /// Enters the kernel without waiting, only if entries are queued or task
    /// work is flagged (which the enter then runs: `GETEVENTS`).
    fn enter_if_needed(&mut self) -> io::Result<()> {
        let sq = self.ring.submission();
        if sq.is_empty() && !sq.taskrun() {
            return Ok(());
        }
        drop(sq);
        self.enter(false)
    }

    /// One `io_uring_enter`: submits the queued entries and, with `block`,
    /// waits for at least one completion or [`WAIT_TIMEOUT`].
    fn enter(&mut self, block: bool) -> io::Result<()> {
        let ts = Timespec::from(WAIT_TIMEOUT);
        let args = SubmitArgs::new().timespec(&ts);
        match self.ring.submitter().submit_with_args(usize::from(block), &args) {
            Ok(_) => Ok(()),
            Err(e) if matches!(e.raw_os_error(), Some(libc::ETIME | libc::EINTR | libc::EBUSY | libc::EAGAIN)) => {
                Ok(())
            }
            Err(e) => Err(e),
        }
    }
}
