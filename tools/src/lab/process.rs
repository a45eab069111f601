//! Commands and processes for the lab: `ip` calls that report their
//! error output, processes started detached in a namespace (their own
//! process group, output to a log file, so they outlive `mlab up`), and
//! stopping them again, by pid checked against the start time recorded
//! (a pid reused by another process is left alone).

use std::fs::File;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::LabError;
use super::state::Proc;

/// Runs `program args`, returning its stdout, or an error with its stderr.
pub fn run(program: &str, args: &[&str]) -> Result<String, LabError> {
    let out = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| LabError::Command { command: format!("{program} {}", args.join(" ")), message: e.to_string() })?;
    if !out.status.success() {
        return Err(LabError::Command {
            command: format!("{program} {}", args.join(" ")),
            message: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// `ip -n NETNS args...`.
pub fn ip_in(netns: &str, args: &[&str]) -> Result<String, LabError> {
    let mut all = vec!["-n", netns];
    all.extend_from_slice(args);
    run("ip", &all)
}

/// The start time of `pid` (clock ticks since boot, field 22 of
/// `/proc/PID/stat`), `None` if there is no such process or it is a zombie.
pub fn start_time(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces and parentheses: fields
    // are counted after the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    if fields.next()? == "Z" {
        return None;
    }
    fields.nth(18)?.parse().ok()
}

/// Whether the process recorded in `p` is still running (the same process).
pub fn alive(p: &Proc) -> bool {
    p.pid > 1 && start_time(p.pid) == Some(p.start_time)
}

/// Starts `program args` in `netns`, detached (its own process group,
/// stdin closed, stdout and stderr appended to `log`), with `env` added.
pub fn spawn_in(
    netns: &str,
    role: &str,
    program: &Path,
    args: &[String],
    env: &[(&str, &Path)],
    log: &Path,
) -> Result<Proc, LabError> {
    let out = File::options().create(true).append(true).open(log).map_err(|e| LabError::io(log, e))?;
    let err = out.try_clone().map_err(|e| LabError::io(log, e))?;
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", netns]).arg(program).args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let child =
        cmd.env("NO_COLOR", "1").process_group(0).stdin(Stdio::null()).stdout(out).stderr(err).spawn().map_err(
            |e| LabError::Command { command: format!("{} ({role})", program.display()), message: e.to_string() },
        )?;
    let pid = child.id() as i32;
    // The child is not waited for here: it outlives `mlab up`, and `down`
    // finds it by pid. (A library caller's zombies are reaped at its exit.)
    let start_time = start_time(pid).unwrap_or(0);
    Ok(Proc { role: role.to_owned(), pid, start_time })
}

/// Sends `signal` to every process of `procs` still running.
fn signal_all(procs: &[Proc], signal: i32) {
    for p in procs.iter().filter(|p| alive(p)) {
        // Safety: kill(2) on a pid checked a moment ago to be the process
        // we started (same start time); at worst it has exited since.
        unsafe { libc::kill(p.pid, signal) };
    }
}

/// SIGTERM to every process of `procs`, SIGKILL to those still running
/// after `grace`; returns the roles of those that had to be killed.
pub fn stop(procs: &[Proc], grace: Duration) -> Vec<String> {
    signal_all(procs, libc::SIGTERM);
    let deadline = Instant::now() + grace;
    while procs.iter().any(alive) && Instant::now() < deadline {
        reap();
        std::thread::sleep(Duration::from_millis(20));
    }
    let stubborn: Vec<Proc> = procs.iter().filter(|p| alive(p)).cloned().collect();
    signal_all(&stubborn, libc::SIGKILL);
    let deadline = Instant::now() + Duration::from_secs(2);
    while stubborn.iter().any(alive) && Instant::now() < deadline {
        reap();
        std::thread::sleep(Duration::from_millis(10));
    }
    stubborn.into_iter().map(|p| p.role).collect()
}

/// SIGKILL to `p` if it still runs, waiting up to 2 s for it to go.
pub fn kill_now(p: &Proc) {
    signal_all(std::slice::from_ref(p), libc::SIGKILL);
    let deadline = Instant::now() + Duration::from_secs(2);
    while alive(p) && Instant::now() < deadline {
        reap();
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Reaps any of this process's children that exited (so that a library
/// caller's stopped nodes do not stay zombies).
fn reap() {
    loop {
        // Safety: waitpid with WNOHANG on any child only collects exit statuses.
        let pid = unsafe { libc::waitpid(-1, std::ptr::null_mut(), libc::WNOHANG) };
        if pid <= 0 {
            break;
        }
    }
}

/// The pids of the processes in namespace `netns` (`ip netns pids`).
pub fn netns_pids(netns: &str) -> Vec<i32> {
    run("ip", &["netns", "pids", netns])
        .map(|out| out.split_whitespace().filter_map(|p| p.parse().ok()).collect())
        .unwrap_or_default()
}

/// Kills every process left in namespace `netns` (all of them are the
/// lab's: the namespace is), waiting up to 2 s; returns how many there were.
pub fn kill_netns(netns: &str) -> usize {
    let procs: Vec<Proc> = netns_pids(netns)
        .into_iter()
        .filter_map(|pid| Some(Proc { role: format!("pid {pid} in {netns}"), pid, start_time: start_time(pid)? }))
        .collect();
    signal_all(&procs, libc::SIGKILL);
    let deadline = Instant::now() + Duration::from_secs(2);
    while procs.iter().any(alive) && Instant::now() < deadline {
        reap();
        std::thread::sleep(Duration::from_millis(10));
    }
    procs.len()
}

/// Whether namespace `name` exists.
pub fn netns_exists(name: &str) -> bool {
    Path::new("/var/run/netns").join(name).exists() || Path::new("/run/netns").join(name).exists()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_alive_by_its_start_time_and_a_wrong_start_time_is_not() {
        let pid = std::process::id() as i32;
        let t = start_time(pid).expect("our own start time");
        assert!(alive(&Proc { role: "me".into(), pid, start_time: t }));
        assert!(!alive(&Proc { role: "me".into(), pid, start_time: t + 1 }));
        assert!(!alive(&Proc { role: "init".into(), pid: 1, start_time: start_time(1).unwrap_or(0) }));
    }

    #[test]
    fn a_failing_command_reports_its_error_output() {
        let e = run("sh", &["-c", "echo oops >&2; exit 3"]).unwrap_err().to_string();
        assert!(e.contains("oops"), "{e}");
    }
}
