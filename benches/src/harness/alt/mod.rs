//! The alternatives a user would pick instead of our overlay, each a
//! [`Tunnel`](super::tunnel::Tunnel) run from its own distribution package:
//! [`wireguard`] (wireguard-go and boringtun, configured with `wg`),
//! [`yggdrasil`] and [`nebula`]. Installed by
//! `benches/harness/install-alternatives.sh`; a tool that is not found is
//! skipped with the reason.
//!
//! Each module has a pure config generator (golden-tested) and the runtime
//! glue: a private [`WorkDir`] for keys and configs, the daemons started in
//! the namespaces with their output kept ([`spawn`]), torn down on stop.

pub mod nebula;
pub mod wireguard;
pub mod yggdrasil;

use std::ffi::OsStr;
use std::net::Ipv4Addr;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::process::Stdio;

use anyhow::Context;

use super::netns::{LineNet, run_stem};
use super::process::Guarded;

/// What to tell the user when a tool is missing.
pub const INSTALL_HINT: &str = "run benches/harness/install-alternatives.sh";

/// A directory only root can read, `/tmp/mhb<pid>-<tag>`, removed on drop
/// (and by [`super::netns::sweep`] if the run dies).
#[derive(Debug)]
pub struct WorkDir(PathBuf);

impl WorkDir {
    /// Creates the directory afresh.
    pub fn create(tag: &str) -> anyhow::Result<WorkDir> {
        let path = std::env::temp_dir().join(format!("{}-{tag}", run_stem()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::DirBuilder::new().mode(0o700).create(&path).with_context(|| format!("creating {}", path.display()))?;
        Ok(WorkDir(path))
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    /// Writes `contents` to `name` in the directory, mode 0600.
    pub fn write(&self, name: &str, contents: &str) -> anyhow::Result<PathBuf> {
        let path = self.0.join(name);
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&path)
            .with_context(|| format!("writing {}", path.display()))?;
        std::io::Write::write_all(&mut f, contents.as_bytes())?;
        Ok(path)
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Where a tool is: `PATH`, the sbin directories, then
/// `target/alternatives/bin` (where the install script puts cargo-built
/// tools; found next to this executable's `target/<profile>/`) and
/// `~/.cargo/bin`.
pub fn find_tool(name: &str) -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> =
        std::env::var_os("PATH").map(|p| std::env::split_paths(&p).collect()).unwrap_or_default();
    dirs.extend(["/usr/local/sbin", "/usr/sbin", "/sbin"].map(PathBuf::from));
    if let Some(target) = std::env::current_exe().ok().and_then(|e| Some(e.parent()?.parent()?.to_path_buf())) {
        dirs.push(target.join("alternatives/bin"));
    }
    dirs.push(PathBuf::from("target/alternatives/bin"));
    if let Some(home) =
        std::env::var_os("CARGO_HOME").or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cargo").into()))
    {
        dirs.push(Path::new(&home).join("bin"));
    }
    dirs.into_iter().map(|d| d.join(name)).find(|p| p.is_file())
}

/// The tools among `names` that [`find_tool`] cannot find, as a skip
/// reason; `None` when all are there.
pub fn missing(names: &[&str]) -> Option<String> {
    let gone: Vec<&str> = names.iter().copied().filter(|n| find_tool(n).is_none()).collect();
    (!gone.is_empty()).then(|| format!("{} not found ({INSTALL_HINT})", gone.join(", ")))
}

/// The first non-empty line `program args` prints (stdout, else stderr).
pub fn tool_version(program: &str, args: &[&str]) -> Option<String> {
    let out = std::process::Command::new(find_tool(program)?).args(args).stdin(Stdio::null()).output().ok()?;
    let first = |b: &[u8]| String::from_utf8_lossy(b).lines().map(str::trim).find(|l| !l.is_empty()).map(String::from);
    first(&out.stdout).or_else(|| first(&out.stderr))
}

/// Starts `program args` in node `node`'s namespace with `envs`, its
/// output kept in the guard's log.
pub fn spawn<I, S>(
    net: &LineNet,
    node: usize,
    program: &Path,
    args: I,
    envs: &[(&str, &str)],
) -> anyhow::Result<Guarded>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut cmd = net.command(node, &program.to_string_lossy());
    cmd.args(args).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let child = cmd.spawn().with_context(|| format!("starting {} on node {node}", program.display()))?;
    Ok(Guarded::logged(child))
}

/// Node `i`'s overlay IPv4 address in a tunnel whose subnet is
/// `10.<net>.0.0/24`.
pub fn overlay_v4(net: u8, i: usize) -> Ipv4Addr {
    Ipv4Addr::new(10, net, 0, (i + 1) as u8)
}

/// Stops every daemon (SIGTERM, then SIGKILL after 5 s), and describes
/// those that did not exit cleanly.
/// A running tunnel made of one daemon per node (Yggdrasil, Nebula): the
/// address to reach on the last node, the daemons in node order, how long
/// the mesh may take to route, and the work directory kept while it runs.
#[derive(Debug)]
pub struct Daemons {
    pub process: &'static str,
    pub target: std::net::IpAddr,
    pub daemons: Vec<Guarded>,
    pub reach_timeout: std::time::Duration,
    /// Kept until the daemons are gone.
    pub dir: WorkDir,
}

impl crate::harness::tunnel::Running for Daemons {
    fn target(&self) -> std::net::IpAddr {
        self.target
    }

    fn agents(&self) -> Vec<crate::harness::tunnel::Agent> {
        let agent = |(node, d): (usize, &Guarded)| crate::harness::tunnel::Agent {
            node,
            process: self.process.into(),
            pid: d.pid(),
        };
        self.daemons.iter().enumerate().map(agent).collect()
    }

    fn reach_timeout(&self) -> std::time::Duration {
        self.reach_timeout
    }

    fn logs(&self) -> Vec<String> {
        self.daemons.iter().map(Guarded::log_text).collect()
    }

    fn stop(mut self: Box<Self>) -> anyhow::Result<()> {
        stop_all(self.process, &mut self.daemons)
    }
}

pub fn stop_all(what: &str, daemons: &mut [Guarded]) -> anyhow::Result<()> {
    let mut failures = Vec::new();
    for (i, d) in daemons.iter_mut().enumerate() {
        match d.terminate(std::time::Duration::from_secs(5)) {
            Ok(status) if status.success() || status.code().is_none() => {}
            Ok(status) => failures.push(format!("node {i}'s {what} exited with {status}")),
            Err(e) => failures.push(format!("node {i}'s {what}: {e}")),
        }
    }
    if failures.is_empty() { Ok(()) } else { anyhow::bail!("{}", failures.join("; ")) }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn a_missing_tool_is_named_with_the_install_hint_and_a_present_one_is_not() {
        let why = missing(&["sh", "mhb-no-such-tool"]).unwrap();
        assert_eq!(why, format!("mhb-no-such-tool not found ({INSTALL_HINT})"));
        assert_eq!(missing(&["sh"]), None);
    }

    #[test]
    fn a_work_directory_is_private_and_gone_after_drop() {
        let dir = WorkDir::create("unit-test").unwrap();
        let path = dir.path().to_path_buf();
        let file = dir.write("secret.key", "k").unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o700);
        assert_eq!(std::fs::metadata(&file).unwrap().permissions().mode() & 0o777, 0o600);
        drop(dir);
        assert!(!path.exists());
    }

    #[test]
    fn overlay_addresses_count_from_one() {
        assert_eq!(overlay_v4(77, 0).to_string(), "10.77.0.1");
        assert_eq!(overlay_v4(78, 2).to_string(), "10.78.0.3");
    }
}
