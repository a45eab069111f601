//! Tearing a lab down from its state file: the nodes (SIGTERM, so each
//! stops its dataplane; SIGKILL after a grace period), the emulators, any
//! process still in one of the lab's namespaces (a dataplane left by a
//! killed node), the namespaces (and with them every veth), the nodes'
//! shared memory, the working directory, and last the state file. Only
//! what the state file names is touched; running it again after a partial
//! failure finishes the job.

use std::time::Duration;

use serde::Serialize;

use super::LabError;
use super::process::{kill_netns, netns_exists, run, stop};
use super::state::State;

/// What [`teardown`] did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct DownReport {
    /// Processes that stopped on SIGTERM.
    pub stopped: usize,
    /// Roles of the lab's processes that needed SIGKILL.
    pub killed: Vec<String>,
    /// Other processes found in the lab's namespaces and killed.
    pub strays: usize,
    pub namespaces: usize,
}

/// Removes everything `state` records, then the state file itself.
pub fn teardown(state: &State) -> Result<DownReport, LabError> {
    let mut report = DownReport::default();
    let (nodes, others): (Vec<_>, Vec<_>) = state.processes.iter().cloned().partition(|p| p.role.starts_with("node "));
    let running = state.processes.iter().filter(|p| super::process::alive(p)).count();
    report.killed = stop(&nodes, Duration::from_secs(10));
    report.killed.extend(stop(&others, Duration::from_secs(2)));
    report.stopped = running.saturating_sub(report.killed.len());
    let mut errors = Vec::new();
    for ns in state.namespaces.iter().rev() {
        if !netns_exists(ns) {
            continue;
        }
        report.strays += kill_netns(ns);
        match run("ip", &["netns", "del", ns]) {
            Ok(_) => report.namespaces += 1,
            Err(e) => errors.push(e.to_string()),
        }
    }
    for instance in &state.instances {
        let dir = format!("/dev/shm/mycelium-{instance}");
        if let Err(e) = std::fs::remove_dir_all(&dir)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            errors.push(format!("{dir}: {e}"));
        }
    }
    if let Err(e) = std::fs::remove_dir_all(&state.dir)
        && e.kind() != std::io::ErrorKind::NotFound
    {
        errors.push(format!("{}: {e}", state.dir.display()));
    }
    if !errors.is_empty() {
        return Err(LabError::Teardown(errors.join("; ")));
    }
    state.remove()?;
    Ok(report)
}
