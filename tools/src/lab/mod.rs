//! The lab: a mesh of real `myceliumd` nodes in network namespaces on one
//! machine, joined by emulated links (`mlab-emu`), described by a topology
//! file ([`topology`]). `mlab` is its command line; scenarios and tests
//! drive it from Rust:
//!
//! ```no_run
//! use std::time::Duration;
//! use mycelium_tools::lab::{Lab, Options, topology::Topology};
//!
//! let topo = Topology::parse(&std::fs::read_to_string("tools/lab/demo.toml")?)?;
//! let lab = Lab::up(&topo, &Options::named("mine"))?;        // Drop tears it down
//! let b = lab.node("b")?.address.clone();
//! lab.ping_until_reachable("a", "b", Duration::from_secs(30))?;
//! let hop = lab.next_hop("a", "b")?;                         // which link and neighbour
//! lab.set_link("a", "b", 0, &mycelium_tools::emu::Update { up: Some(false), ..Default::default() })?;
//! let flow = lab.stream("a", "b", 5000, 1 << 20)?;          // a checked TCP stream
//! let report = flow.try_finish()?;                           // longest pause, bytes
//! lab.down()?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! - [`topology`]: the TOML file; [`up`]: building a lab; [`down`]:
//!   tearing it down from its [`state`] file (also after a crash);
//! - [`process`]: commands, detached processes, pid checks; [`signals`]:
//!   SIGINT/SIGTERM for the long-running commands;
//! - [`query`]: routes, next hops, pings and streams in a running lab;
//! - [`status`]: `mlab status`; [`demo`]: `mlab demo`; [`scenario`]:
//!   `mlab run`, the scripted scenarios and their reports;
//! - [`netns`], [`stream`]: namespaces and the checked TCP stream, shared
//!   with the end-to-end tests.

pub mod demo;
pub mod down;
pub mod netns;
pub mod process;
pub mod query;
pub mod scenario;
pub mod signals;
pub mod state;
pub mod status;
pub mod stream;
pub mod topology;
pub mod up;

use std::path::{Path, PathBuf};

pub use down::DownReport;
pub use query::{Hop, PingReport};
pub use state::{LinkState, NodeState, State};
pub use status::LabStatus;
pub use stream::{Flow, FlowReport};
pub use topology::Topology;

/// Anything that goes wrong in the lab.
#[derive(Debug, thiserror::Error)]
pub enum LabError {
    #[error("topology: {0}")]
    Topology(#[from] topology::TopologyError),
    #[error("{command}: {message}")]
    Command { command: String, message: String },
    #[error("{0}: {1}")]
    Io(PathBuf, std::io::Error),
    #[error("lab {0:?} exists already ({1}); `mlab down {0}` removes it")]
    Exists(String, PathBuf),
    #[error("no lab {0:?} ({1} not found)")]
    NoLab(String, PathBuf),
    #[error("{0}: unreadable state file: {1}")]
    Corrupt(PathBuf, String),
    #[error("bad lab name {0:?}: expected 1-12 characters, a-z and 0-9")]
    BadName(String),
    #[error("no node {0:?} in this lab")]
    NoNode(String),
    #[error("no link {0} with index {1} (there are {2})")]
    NoLink(String, usize, usize),
    #[error(
        "cannot find myceliumd, mycelium-dataplane and mlab-emu in {0}: build them (cargo build --release --workspace) or give --bin-dir"
    )]
    Binaries(String),
    #[error("key: {0}")]
    Key(String),
    #[error("{0} did not start; its log ends:\n{1}")]
    Start(String, String),
    #[error("node {0}: {1}")]
    Api(String, String),
    #[error("link {0}: {1}")]
    Emulator(String, String),
    #[error("{0}")]
    Check(String),
    #[error("interrupted")]
    Interrupted,
    #[error("teardown left things behind: {0}")]
    Teardown(String),
}

impl LabError {
    pub fn io(path: &Path, e: std::io::Error) -> LabError {
        LabError::Io(path.to_owned(), e)
    }
}

/// How to bring a lab up.
#[derive(Debug, Clone)]
pub struct Options {
    /// The lab's name: part of its namespaces, instances and state file.
    pub name: String,
    /// Where state files live ([`state::RUN_DIR`] by default).
    pub run_dir: PathBuf,
    /// Where myceliumd, mycelium-dataplane and mlab-emu are (default: next
    /// to this executable, or one directory up).
    pub bin_dir: Option<PathBuf>,
}

impl Options {
    pub fn named(name: &str) -> Options {
        Options { name: name.to_owned(), run_dir: PathBuf::from(state::RUN_DIR), bin_dir: None }
    }
}

/// A running lab. One made by [`Lab::up`] is torn down on drop (or by
/// [`Lab::down`]); one opened by [`Lab::open`] (or kept with [`Lab::keep`])
/// is left running.
#[derive(Debug)]
pub struct Lab {
    state: State,
    owned: bool,
}

impl Lab {
    /// Builds and starts the lab; on error nothing is left behind.
    pub fn up(topo: &Topology, opts: &Options) -> Result<Lab, LabError> {
        if !state::valid_lab_name(&opts.name) {
            return Err(LabError::BadName(opts.name.clone()));
        }
        let bins = up::Binaries::find(opts.bin_dir.as_deref())?;
        let mut state = State::create(&opts.run_dir, &opts.name)?;
        up::build(topo, &mut state, &bins)?;
        Ok(Lab { state, owned: true })
    }

    /// A lab already running, from its state file.
    pub fn open(run_dir: &Path, name: &str) -> Result<Lab, LabError> {
        Ok(Lab { state: State::load(run_dir, name)?, owned: false })
    }

    /// Leaves the lab running when this handle is dropped.
    pub fn keep(mut self) -> State {
        self.owned = false;
        self.state.clone()
    }

    /// Tears the lab down (everything in its state file).
    pub fn down(mut self) -> Result<DownReport, LabError> {
        self.owned = false;
        down::teardown(&self.state)
    }

    pub fn state(&self) -> &State {
        &self.state
    }

    pub fn name(&self) -> &str {
        &self.state.name
    }

    /// A node: its namespace, key, overlay address, API, log.
    pub fn node(&self, name: &str) -> Result<&NodeState, LabError> {
        self.state.node(name)
    }

    /// The node's namespace, for [`netns::Netns::spawn`] and friends.
    pub fn netns(&self, node: &str) -> Result<netns::Netns, LabError> {
        Ok(netns::Netns::existing(&self.node(node)?.netns))
    }

    /// A command that runs `program` in `node`'s namespace.
    pub fn command(&self, node: &str, program: &str) -> Result<std::process::Command, LabError> {
        Ok(self.netns(node)?.command(program))
    }

    /// Runs `args[0] args[1..]` in `node`'s namespace and collects its output.
    pub fn exec(&self, node: &str, args: &[&str]) -> Result<std::process::Output, LabError> {
        let (program, rest) = args.split_first().ok_or_else(|| LabError::Check("exec: no command given".into()))?;
        let mut cmd = self.command(node, program)?;
        cmd.args(rest).stdin(std::process::Stdio::null());
        cmd.output().map_err(|e| LabError::Command { command: args.join(" "), message: e.to_string() })
    }
}

/// Node processes: kill, stop and start a node's daemon.
impl Lab {
    fn daemon(&self, node: &str) -> Result<Option<state::Proc>, LabError> {
        let role = format!("node {}", self.node(node)?.name);
        Ok(self.state.processes.iter().find(|p| p.role == role && process::alive(p)).cloned())
    }

    /// Whether `node`'s daemon runs.
    pub fn node_running(&self, node: &str) -> Result<bool, LabError> {
        Ok(self.daemon(node)?.is_some())
    }

    /// Kills `node`'s daemon with SIGKILL; its dataplane, a process of its
    /// own, keeps forwarding on the last routes it was given.
    pub fn kill_node(&mut self, node: &str) -> Result<(), LabError> {
        if let Some(p) = self.daemon(node)? {
            process::kill_now(&p);
        }
        Ok(())
    }

    /// Stops `node` with SIGTERM (the daemon stops its dataplane), SIGKILL
    /// after 10 s.
    pub fn stop_node(&mut self, node: &str) -> Result<(), LabError> {
        if let Some(p) = self.daemon(node)? {
            process::stop(&[p], std::time::Duration::from_secs(10));
        }
        Ok(())
    }

    /// Starts `node`'s daemon again (same key, config and instance: it
    /// adopts a dataplane still running) and waits until it runs.
    pub fn start_node(&mut self, node: &str) -> Result<(), LabError> {
        if self.node_running(node)? {
            return Err(LabError::Check(format!("node {node} is running already")));
        }
        let i = self.state.nodes.iter().position(|n| n.name == node).ok_or_else(|| LabError::NoNode(node.into()))?;
        let bins =
            self.state.binaries.clone().ok_or_else(|| LabError::Check("the state file names no binaries".into()))?;
        let started = up::start_node(&mut self.state, &bins, i)?;
        up::wait_for_nodes(&self.state, &[started])
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if self.owned {
            let _ = down::teardown(&self.state);
        }
    }
}
