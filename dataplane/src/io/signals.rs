//! Shutdown signals. The main thread blocks SIGINT and SIGTERM before it
//! starts the shards (which inherit the mask, so no shard is ever interrupted),
//! then waits for them with a timeout so it can also notice a failed shard.

use std::io;
use std::time::Duration;

fn shutdown_set() -> libc::sigset_t {
    // Safety: sigset_t is plain old data; sigemptyset initialises it.
    let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
    // Safety: `set` is live; SIGINT and SIGTERM are valid signal numbers.
    unsafe {
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::sigaddset(&mut set, libc::SIGTERM);
    }
    set
}

/// Blocks SIGINT and SIGTERM in the calling thread (and the threads it starts later).
pub fn block_shutdown_signals() -> io::Result<()> {
    let set = shutdown_set();
    // Safety: `set` is initialised; the old mask is not wanted.
    let rc = unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) };
    if rc == 0 { Ok(()) } else { Err(io::Error::from_raw_os_error(rc)) }
}

/// Waits up to `timeout` for SIGINT or SIGTERM (which must be blocked);
/// returns the signal number if one came.
pub fn wait_shutdown_signal(timeout: Duration) -> Option<i32> {
    let set = shutdown_set();
    let ts = libc::timespec { tv_sec: timeout.as_secs() as libc::time_t, tv_nsec: timeout.subsec_nanos() as _ };
    // Safety: `set` and `ts` are live; no siginfo is wanted.
    let sig = unsafe { libc::sigtimedwait(&set, std::ptr::null_mut(), &ts) };
    (sig > 0).then_some(sig)
}
