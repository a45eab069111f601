//! Starts `mycelium-dataplane`, restarts it when it dies (with backoff), and
//! adopts one that is already running for this instance.
//!
//! The dataplane runs in its own process group, so a myceliumd that is
//! killed (or a Ctrl-C meant for it) leaves it forwarding with the last
//! published routes and keys. A restarted myceliumd finds it by its instance
//! lock (`dataplane.lock`, held while it runs) and adopts it: it republishes
//! routes and keys and carries on, without a restart and without dropping
//! established flows. Only on shutdown does the daemon stop the dataplane.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tracing::{error, info, warn};

/// How to start the dataplane.
#[derive(Debug, Clone)]
pub struct DataplaneSpec {
    /// The `mycelium-dataplane` executable.
    pub binary: PathBuf,
    /// Its arguments (port, cores, TUN, address, `--shm-dir`).
    pub args: Vec<String>,
    /// The instance's shared-memory directory.
    pub shm_dir: PathBuf,
}

/// What the supervisor did on a check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SupervisorEvent {
    /// A dataplane was started (pid).
    Started(u32),
    /// The dataplane exited; a restart is scheduled after the delay.
    Exited { code: Option<i32>, restart_in: Duration },
}

enum Running {
    Child(Child),
    Adopted(u32),
    None { restart_at: Instant },
}

/// The dataplane's supervisor. Call [`Supervisor::check`] every loop
/// iteration (it never blocks).
pub struct Supervisor {
    spec: DataplaneSpec,
    running: Running,
    failures: u32,
    started_at: Instant,
}

impl std::fmt::Debug for Supervisor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Supervisor").field("binary", &self.spec.binary).field("failures", &self.failures).finish()
    }
}

const PID_FILE: &str = "dataplane.pid";
const LOCK_FILE: &str = "dataplane.lock";
const BACKOFF_INITIAL: Duration = Duration::from_millis(500);
const BACKOFF_MAX: Duration = Duration::from_secs(30);
/// A dataplane that ran this long is healthy again: the backoff resets.
const HEALTHY_AFTER: Duration = Duration::from_secs(30);

impl Supervisor {
    /// Adopts the running dataplane of this instance, or starts one.
    pub fn start(spec: DataplaneSpec) -> io::Result<(Supervisor, SupervisorEvent)> {
        if let Some(pid) = running_pid(&spec.shm_dir) {
            info!(pid, "adopting the running dataplane of this instance");
            let sup = Supervisor { spec, running: Running::Adopted(pid), failures: 0, started_at: Instant::now() };
            return Ok((sup, SupervisorEvent::Started(pid)));
        }
        let mut sup = Supervisor {
            spec,
            running: Running::None { restart_at: Instant::now() },
            failures: 0,
            started_at: Instant::now(),
        };
        let pid = sup.spawn()?;
        Ok((sup, SupervisorEvent::Started(pid)))
    }

    /// Whether the running dataplane was adopted rather than started by us.
    pub fn adopted(&self) -> bool {
        matches!(self.running, Running::Adopted(_))
    }

    fn spawn(&mut self) -> io::Result<u32> {
        let child = Command::new(&self.spec.binary)
            .args(&self.spec.args)
            .stdin(Stdio::null())
            // Own process group: survives the daemon's death and terminal signals.
            .process_group(0)
            .spawn()
            .map_err(|e| io::Error::new(e.kind(), format!("starting {}: {e}", self.spec.binary.display())))?;
        let pid = child.id();
        write_pid(&self.spec.shm_dir, pid);
        info!(pid, binary = %self.spec.binary.display(), "dataplane started");
        self.running = Running::Child(child);
        self.started_at = Instant::now();
        Ok(pid)
    }

    /// Notices an exit (and schedules a restart) or performs a due restart.
    pub fn check(&mut self) -> Option<SupervisorEvent> {
        let now = Instant::now();
        let exited = match &mut self.running {
            Running::Child(child) => match child.try_wait() {
                Ok(Some(status)) => Some(status.code()),
                Ok(None) => None,
                Err(e) => {
                    warn!("checking the dataplane: {e}");
                    None
                }
            },
            Running::Adopted(_) => (!lock_held(&self.spec.shm_dir)).then_some(None),
            Running::None { restart_at } => {
                if now < *restart_at {
                    return None;
                }
                return match self.spawn() {
                    Ok(pid) => Some(SupervisorEvent::Started(pid)),
                    Err(e) => {
                        error!("{e}");
                        let delay = self.backoff();
                        self.running = Running::None { restart_at: now + delay };
                        None
                    }
                };
            }
        };
        let code = exited?;
        if now.duration_since(self.started_at) >= HEALTHY_AFTER {
            self.failures = 0;
        }
        let delay = self.backoff();
        error!(?code, restart_in_ms = delay.as_millis() as u64, "dataplane exited; restarting");
        self.running = Running::None { restart_at: now + delay };
        Some(SupervisorEvent::Exited { code, restart_in: delay })
    }

    fn backoff(&mut self) -> Duration {
        let delay = BACKOFF_INITIAL.saturating_mul(1 << self.failures.min(10)).min(BACKOFF_MAX);
        self.failures += 1;
        delay
    }

    /// Stops the dataplane (SIGTERM, then SIGKILL after 5 s).
    pub fn stop(self) {
        let pid = match &self.running {
            Running::Child(c) => c.id(),
            Running::Adopted(pid) => *pid,
            Running::None { .. } => return,
        };
        // Safety: kill(2) on a pid; at worst it names a process that already exited.
        unsafe { libc::kill(pid as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(5);
        match self.running {
            Running::Child(mut child) => {
                while Instant::now() < deadline {
                    if let Ok(Some(_)) = child.try_wait() {
                        return;
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
                let _ = child.kill();
                let _ = child.wait();
            }
            Running::Adopted(pid) => {
                while Instant::now() < deadline && lock_held(&self.spec.shm_dir) {
                    std::thread::sleep(Duration::from_millis(20));
                }
                if lock_held(&self.spec.shm_dir) {
                    // Safety: as above.
                    unsafe { libc::kill(pid as i32, libc::SIGKILL) };
                }
            }
            Running::None { .. } => {}
        }
    }
}

fn write_pid(dir: &Path, pid: u32) {
    let path = dir.join(PID_FILE);
    let result = OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .mode(0o600)
        .open(&path)
        .and_then(|mut f| io::Write::write_all(&mut f, pid.to_string().as_bytes()));
    if let Err(e) = result {
        warn!("{}: {e}", path.display());
    }
}

/// The pid of the dataplane running for `dir`, if one holds its lock.
fn running_pid(dir: &Path) -> Option<u32> {
    if !lock_held(dir) {
        return None;
    }
    std::fs::read_to_string(dir.join(PID_FILE)).ok()?.trim().parse().ok()
}

/// Whether some process holds the dataplane's instance lock.
fn lock_held(dir: &Path) -> bool {
    let Ok(file) = File::open(dir.join(LOCK_FILE)) else {
        return false;
    };
    // Safety: flock on an fd we own; a lock we get is released when `file` closes.
    let got = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0;
    !got
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(dir: &Path, script: &str) -> DataplaneSpec {
        DataplaneSpec { binary: "/bin/sh".into(), args: vec!["-c".into(), script.into()], shm_dir: dir.to_path_buf() }
    }

    #[test]
    fn a_dataplane_that_dies_is_restarted_with_growing_delays() {
        let dir = tempfile::tempdir().unwrap();
        let (mut sup, event) = Supervisor::start(spec(dir.path(), "exit 3")).unwrap();
        assert!(matches!(event, SupervisorEvent::Started(_)));
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut delays = Vec::new();
        while delays.len() < 2 && Instant::now() < deadline {
            if let Some(SupervisorEvent::Exited { code, restart_in }) = sup.check() {
                assert_eq!(code, Some(3));
                delays.push(restart_in);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(delays, vec![Duration::from_millis(500), Duration::from_millis(1000)]);
        sup.stop();
    }

    #[test]
    fn a_running_dataplane_is_adopted_not_duplicated() {
        let dir = tempfile::tempdir().unwrap();
        let lock =
            OpenOptions::new().create(true).truncate(false).write(true).open(dir.path().join(LOCK_FILE)).unwrap();
        // Safety: flock on an fd we own.
        assert_eq!(unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) }, 0);
        write_pid(dir.path(), 4_000_000);
        let (mut sup, event) = Supervisor::start(spec(dir.path(), "exit 1")).unwrap();
        assert_eq!(event, SupervisorEvent::Started(4_000_000));
        assert_eq!(sup.check(), None, "still running while the lock is held");
        drop(lock);
        assert!(matches!(sup.check(), Some(SupervisorEvent::Exited { .. })), "the lock's release is an exit");
    }
}
