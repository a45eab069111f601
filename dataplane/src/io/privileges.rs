//! Start-up privilege checks (see shared/DESIGN.md, "Privileges"): say which
//! privilege is missing instead of failing later with a bare EPERM.

use thiserror::Error;

/// CAP_NET_ADMIN's bit in the capability sets.
const CAP_NET_ADMIN: u32 = 12;
/// CAP_IPC_LOCK's bit.
const CAP_IPC_LOCK: u32 = 14;

/// A privilege the dataplane needs and lacks.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum PrivilegeError {
    /// Creating the TUN needs CAP_NET_ADMIN.
    #[error(
        "missing CAP_NET_ADMIN: needed to create the TUN device (run as root, grant it with setcap or systemd AmbientCapabilities, or use --no-tun)"
    )]
    NetAdmin,
    /// Not enough lockable memory for the rings.
    #[error(
        "RLIMIT_MEMLOCK is {limit} bytes but {needed} are needed for the io_uring rings and buffer rings; raise it (ulimit -l, LimitMEMLOCK=) or grant CAP_IPC_LOCK"
    )]
    MemLock {
        /// The soft limit.
        limit: u64,
        /// What the shards need.
        needed: u64,
    },
}

/// The effective capability set of this process, from /proc/self/status.
fn effective_caps() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        .unwrap_or(0)
}

/// Whether the process has CAP_NET_ADMIN (and so may use SO_RCVBUFFORCE).
pub fn has_net_admin() -> bool {
    effective_caps() & (1 << CAP_NET_ADMIN) != 0
}

fn memlock_limit() -> u64 {
    // Safety: rlimit is plain old data, filled by getrlimit.
    let mut r: libc::rlimit = unsafe { std::mem::zeroed() };
    // Safety: `r` is live.
    if unsafe { libc::getrlimit(libc::RLIMIT_MEMLOCK, &mut r) } != 0 {
        return 0;
    }
    r.rlim_cur
}

/// Checks what a dataplane with or without a TUN, needing `memlock_bytes` of
/// locked memory, requires.
pub fn check(need_tun: bool, memlock_bytes: u64) -> Result<(), PrivilegeError> {
    let caps = effective_caps();
    if need_tun && caps & (1 << CAP_NET_ADMIN) == 0 {
        return Err(PrivilegeError::NetAdmin);
    }
    let limit = memlock_limit();
    if caps & (1 << CAP_IPC_LOCK) == 0 && limit != libc::RLIM_INFINITY && limit < memlock_bytes {
        return Err(PrivilegeError::MemLock { limit, needed: memlock_bytes });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_relay_needing_no_locked_memory_passes_and_errors_name_the_remedy() {
        assert_eq!(check(false, 0), Ok(()));
        let e = PrivilegeError::MemLock { limit: 8 << 20, needed: 16 << 20 }.to_string();
        assert!(e.contains("RLIMIT_MEMLOCK") && e.contains("CAP_IPC_LOCK"), "{e}");
        assert!(PrivilegeError::NetAdmin.to_string().contains("CAP_NET_ADMIN"));
    }
}
