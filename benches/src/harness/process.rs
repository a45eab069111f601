//! Child processes of the harness, and their CPU time.
//!
//! [`Guarded`] kills and reaps its child on drop; [`cpu_seconds`] reads a
//! process's user + system time from `/proc/PID/stat` (all its threads).
//! Every wait here is bounded.

use std::io::{BufRead, BufReader};
use std::process::{Child, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

/// A child killed (SIGKILL) and reaped on drop, unless it already exited.
#[derive(Debug)]
pub struct Guarded {
    child: Option<Child>,
    /// What it printed on stderr, line by line (if captured).
    pub log: Arc<Mutex<Vec<String>>>,
}

impl Guarded {
    /// Guards `child` without reading its output.
    pub fn new(child: Child) -> Guarded {
        Guarded { child: Some(child), log: Arc::default() }
    }

    /// Guards a child spawned with `stderr(Stdio::piped())`: a thread keeps
    /// its lines, and this returns once a line contains `ready` (or fails if
    /// the child exits, or `timeout` passes, first).
    pub fn wait_ready(mut child: Child, ready: &str, timeout: Duration) -> anyhow::Result<Guarded> {
        let stderr = child.stderr.take().context("stderr was not piped")?;
        let log: Arc<Mutex<Vec<String>>> = Arc::default();
        let (tx, rx) = mpsc::channel();
        let (sink, ready) = (Arc::clone(&log), ready.to_string());
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if line.contains(&ready) {
                    let _ = tx.send(());
                }
                if let Ok(mut l) = sink.lock() {
                    l.push(line);
                }
            }
        });
        let mut guarded = Guarded { child: Some(child), log };
        let deadline = Instant::now() + timeout;
        loop {
            if rx.recv_timeout(Duration::from_millis(20)).is_ok() {
                return Ok(guarded);
            }
            if let Some(status) = guarded.try_wait()? {
                std::thread::sleep(Duration::from_millis(100));
                bail!("exited ({status}) before it was ready:\n{}", guarded.log_text());
            }
            if Instant::now() >= deadline {
                bail!("not ready within {timeout:?}:\n{}", guarded.log_text());
            }
        }
    }

    /// Guards a child spawned with its stdout and/or stderr piped: threads
    /// keep their lines in [`Guarded::log`] (both streams, interleaved), so
    /// a chatty daemon never blocks on a full pipe.
    pub fn logged(mut child: Child) -> Guarded {
        let log: Arc<Mutex<Vec<String>>> = Arc::default();
        let streams: [Option<Box<dyn std::io::Read + Send>>; 2] = [
            child.stdout.take().map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
            child.stderr.take().map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
        ];
        for stream in streams.into_iter().flatten() {
            let sink = Arc::clone(&log);
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    if let Ok(mut l) = sink.lock() {
                        l.push(line);
                    }
                }
            });
        }
        Guarded { child: Some(child), log }
    }

    /// Fails, with what the child printed, if it has exited.
    pub fn check_running(&mut self, what: &str) -> anyhow::Result<()> {
        if let Some(status) = self.try_wait()? {
            std::thread::sleep(Duration::from_millis(100));
            bail!("{what} exited ({status}):\n{}", self.log_text());
        }
        Ok(())
    }

    /// The child's pid (0 once reaped).
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// The exit status, if it has exited.
    pub fn try_wait(&mut self) -> anyhow::Result<Option<ExitStatus>> {
        match self.child.as_mut() {
            Some(c) => Ok(c.try_wait()?),
            None => Ok(None),
        }
    }

    /// Waits up to `timeout` for the child to exit; kills it after that.
    /// Returns its status, or an error if it had to be killed.
    pub fn wait_for(&mut self, timeout: Duration) -> anyhow::Result<ExitStatus> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Some(status) = self.try_wait()? {
                self.child = None;
                return Ok(status);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        self.kill();
        bail!("still running after {timeout:?}; killed")
    }

    /// Asks the child to stop with SIGTERM; kills it if it is still running
    /// after `timeout`. Returns its status if it stopped by itself.
    pub fn terminate(&mut self, timeout: Duration) -> anyhow::Result<ExitStatus> {
        let pid = self.pid();
        if pid == 0 {
            bail!("already reaped");
        }
        // Safety: kill has no memory preconditions; `pid` is our own child,
        // not yet reaped (we hold its `Child`), so it names that process.
        unsafe { libc::kill(pid as i32, libc::SIGTERM) };
        self.wait_for(timeout)
    }

    /// Kills and reaps the child now.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// The captured stderr, joined.
    pub fn log_text(&self) -> String {
        self.log.lock().map(|l| l.join("\n")).unwrap_or_default()
    }
}

impl Drop for Guarded {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Default standard streams for a measurement tool: no input, output captured.
pub fn quiet(cmd: &mut std::process::Command) -> &mut std::process::Command {
    cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped())
}

/// Polls `f` every 20 ms until it returns `Some`, for up to `timeout`.
pub fn wait_for<T>(timeout: Duration, mut f: impl FnMut() -> Option<T>) -> anyhow::Result<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return Ok(v);
        }
        if Instant::now() >= deadline {
            bail!("gave up after {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Clock ticks per second of `/proc/PID/stat` times.
fn ticks_per_second() -> f64 {
    // Safety: sysconf only reads a configuration value.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 { t as f64 } else { 100.0 }
}

/// User and system CPU seconds of process `pid` so far (all threads).
pub fn cpu_seconds(pid: u32) -> anyhow::Result<(f64, f64)> {
    let path = format!("/proc/{pid}/stat");
    let stat = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    let (user, system) = parse_stat_times(&stat).with_context(|| format!("parsing {path}"))?;
    let hz = ticks_per_second();
    Ok((user as f64 / hz, system as f64 / hz))
}

/// utime and stime (fields 14 and 15) of a `/proc/PID/stat` line. The
/// command name (field 2) may hold spaces and parentheses, so fields are
/// counted from the last `)`.
fn parse_stat_times(stat: &str) -> Option<(u64, u64)> {
    let rest = &stat[stat.rfind(')')? + 1..];
    // After ")": field 3 (state) is the first token, so utime is token 11.
    let mut fields = rest.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some((utime, stime))
}

/// Busy (non-idle, non-iowait) CPU seconds of the whole machine so far,
/// from the `cpu` line of `/proc/stat`.
pub fn machine_busy_seconds() -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string("/proc/stat").context("reading /proc/stat")?;
    let ticks = stat.lines().next().and_then(parse_machine_busy).context("parsing /proc/stat")?;
    Ok(ticks as f64 / ticks_per_second())
}

/// user nice system idle iowait irq softirq steal ...: all but idle and iowait.
fn parse_machine_busy(line: &str) -> Option<u64> {
    let mut fields = line.strip_prefix("cpu ")?.split_whitespace().map(|f| f.parse::<u64>().ok());
    let mut busy = 0;
    for i in 0..8 {
        let v = fields.next()??;
        if i != 3 && i != 4 {
            busy += v;
        }
    }
    Some(busy)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_times_are_counted_from_the_last_parenthesis() {
        let line = "4242 (my (odd) name) S 1 4242 4242 0 -1 4194560 500 0 0 0 150 25 0 0 20 0 3 0 100";
        assert_eq!(parse_stat_times(line), Some((150, 25)));
        assert_eq!(parse_stat_times("4242 (x) S 1"), None);
    }

    #[test]
    fn machine_busy_time_leaves_out_idle_and_iowait() {
        assert_eq!(parse_machine_busy("cpu  10 1 5 1000 7 2 3 4 0 0"), Some(25));
        assert_eq!(parse_machine_busy("intr 1 2 3"), None);
    }

    #[test]
    fn our_own_cpu_time_is_readable() {
        let (user, system) = cpu_seconds(std::process::id()).unwrap();
        assert!(user >= 0.0 && system >= 0.0);
    }
}
