//! CPU affinity: which cores the process may use, and pinning a shard thread to one.

use std::io;

use super::sys::cvt;
use crate::config::MAX_CORES;

/// The CPUs this process may run on (`sched_getaffinity`), sorted.
pub fn allowed_cores() -> io::Result<Vec<usize>> {
    // Safety: cpu_set_t is plain old data; all zeroes is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // Safety: `set` is live and its size is passed.
    cvt(unsafe { libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) })?;
    // Safety: CPU_ISSET reads `set` at an index below CPU_SETSIZE.
    Ok((0..MAX_CORES).filter(|&c| unsafe { libc::CPU_ISSET(c, &set) }).collect())
}

/// Pins the calling thread to `core`.
pub fn pin_current_thread(core: usize) -> io::Result<()> {
    if core >= MAX_CORES {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "CPU number past CPU_SETSIZE"));
    }
    // Safety: cpu_set_t is plain old data; all zeroes is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // Safety: `core` is below CPU_SETSIZE, checked above.
    unsafe { libc::CPU_SET(core, &mut set) };
    // Safety: `set` is live and its size is passed; pid 0 is the calling thread.
    cvt(unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) }).map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_thread_can_be_pinned_to_each_allowed_core_and_nowhere_else() {
        let allowed = allowed_cores().unwrap();
        assert!(!allowed.is_empty());
        let first = allowed[0];
        std::thread::spawn(move || {
            pin_current_thread(first).unwrap();
            assert_eq!(allowed_cores().unwrap(), [first]);
            // A CPU this machine does not have (if any such number is below the limit).
            if let Some(outside) = (0..MAX_CORES).find(|c| !allowed.contains(c)) {
                assert!(pin_current_thread(outside).is_err() || allowed_cores().unwrap() == [outside]);
            }
            assert!(pin_current_thread(MAX_CORES).is_err());
        })
        .join()
        .unwrap();
    }
}
