//! SIGINT and SIGTERM for the lab's long-running commands: blocked in
//! every thread (call [`block_exit_signals`] before starting any), then
//! waited for on one thread ([`wait`]). `mlab up` and `mlab demo` set
//! [`interrupt`] when one arrives: the building and the demo check
//! [`interrupted`] between steps and roll back.

use std::sync::atomic::{AtomicBool, Ordering};

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// Asks the lab's long steps to stop (they return `LabError::Interrupted`).
pub fn interrupt() {
    INTERRUPTED.store(true, Ordering::Relaxed);
}

/// Whether [`interrupt`] was called.
pub fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::Relaxed)
}

/// Blocks SIGINT and SIGTERM in the calling thread and in every thread it
/// starts afterwards; returns the set for [`wait`].
pub fn block_exit_signals() -> std::io::Result<libc::sigset_t> {
    // Safety: sigset_t is plain data that sigemptyset initialises; the
    // pointers are to a live local, and pthread_sigmask only reads it.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::sigaddset(&mut set, libc::SIGTERM);
        let rc = libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        if rc != 0 {
            return Err(std::io::Error::from_raw_os_error(rc));
        }
        Ok(set)
    }
}

/// Waits for one of the signals in `set`; returns its number.
pub fn wait(set: &libc::sigset_t) -> i32 {
    let mut sig = 0;
    // Safety: set is an initialised signal set and sig a live c_int.
    while unsafe { libc::sigwait(set, &mut sig) } != 0 {}
    sig
}
