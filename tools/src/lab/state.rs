//! The state file of a lab (`<run dir>/<lab>.json`, `/run/mlab` by
//! default): everything `mlab up` created, written as it goes (each change
//! is saved before the next thing is made), so that `mlab down` removes all
//! of it, and only it, even after `mlab` or a node was killed.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::LabError;
use super::topology::Dial;

/// The default directory of state files and lab working directories.
pub const RUN_DIR: &str = "/run/mlab";

/// A process the lab started; `start_time` (from `/proc/PID/stat`) tells
/// it from a later process that got the same pid.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Proc {
    /// What it is, e.g. `node a` or `emulator 0`.
    pub role: String,
    pub pid: i32,
    pub start_time: u64,
}

/// A node as started.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeState {
    pub name: String,
    pub netns: String,
    pub public_key: String,
    pub address: String,
    /// The node's /64, as routes name it.
    pub subnet: String,
    /// Admin API address inside the node's namespace.
    pub api: String,
    /// Names its shared memory, `/dev/shm/mycelium-<instance>`.
    pub instance: String,
    pub config: PathBuf,
    pub log: PathBuf,
    /// Extra daemon flags from the topology.
    #[serde(default)]
    pub args: Vec<String>,
}

/// A link as built: node `a`'s side is the /30 `net_a`, node `b`'s `net_b`;
/// the emulator listens on `emu_a` (what `a` dials) and `emu_b` (what `b` dials).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LinkState {
    pub a: String,
    pub b: String,
    /// Index among the links between these two nodes (file order).
    pub index: usize,
    pub netns: String,
    pub class: String,
    pub dial: Dial,
    /// Underlay address of node `a` on this link, and of node `b`.
    pub ip_a: String,
    pub ip_b: String,
    /// Emulator endpoints, `ip:port`.
    pub emu_a: String,
    pub emu_b: String,
    pub control: PathBuf,
    /// The device name on node `a`'s side and on node `b`'s.
    pub dev_a: String,
    pub dev_b: String,
}

/// Everything one lab made.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct State {
    pub name: String,
    /// Configs, keys, logs and control sockets.
    pub dir: PathBuf,
    pub namespaces: Vec<String>,
    pub processes: Vec<Proc>,
    /// Node instances (their shared memory is removed on down).
    pub instances: Vec<String>,
    pub nodes: Vec<NodeState>,
    pub links: Vec<LinkState>,
    /// The binaries it runs (set before the first node starts).
    #[serde(default)]
    pub binaries: Option<super::up::Binaries>,
    /// Whether `up` finished.
    pub complete: bool,
    #[serde(skip)]
    pub path: PathBuf,
}

impl State {
    /// A new lab's state, at `<run_dir>/<name>.json`; refuses a name in use.
    pub fn create(run_dir: &Path, name: &str) -> Result<State, LabError> {
        std::fs::create_dir_all(run_dir).map_err(|e| LabError::io(run_dir, e))?;
        let path = state_path(run_dir, name);
        if path.exists() {
            return Err(LabError::Exists(name.to_owned(), path));
        }
        let dir = run_dir.join(name);
        let state = State { name: name.to_owned(), dir: dir.clone(), path, ..State::default() };
        state.save()?;
        std::fs::create_dir_all(&dir).map_err(|e| LabError::io(&dir, e))?;
        Ok(state)
    }

    /// The state of lab `name` under `run_dir`.
    pub fn load(run_dir: &Path, name: &str) -> Result<State, LabError> {
        let path = state_path(run_dir, name);
        let text = std::fs::read_to_string(&path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => LabError::NoLab(name.to_owned(), path.clone()),
            _ => LabError::io(&path, e),
        })?;
        let mut state: State =
            serde_json::from_str(&text).map_err(|e| LabError::Corrupt(path.clone(), e.to_string()))?;
        state.path = path;
        Ok(state)
    }

    /// Writes the file (atomically: a temporary file renamed over it).
    pub fn save(&self) -> Result<(), LabError> {
        let tmp = self.path.with_extension("json.tmp");
        let text =
            serde_json::to_string_pretty(self).map_err(|e| LabError::Corrupt(self.path.clone(), e.to_string()))?;
        std::fs::write(&tmp, text).map_err(|e| LabError::io(&tmp, e))?;
        std::fs::rename(&tmp, &self.path).map_err(|e| LabError::io(&self.path, e))
    }

    /// Removes the state file.
    pub fn remove(&self) -> Result<(), LabError> {
        match std::fs::remove_file(&self.path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(LabError::io(&self.path, e)),
            _ => Ok(()),
        }
    }

    pub fn node(&self, name: &str) -> Result<&NodeState, LabError> {
        self.nodes.iter().find(|n| n.name == name).ok_or_else(|| LabError::NoNode(name.to_owned()))
    }

    /// The `index`-th link between `x` and `y`, either way round.
    pub fn link(&self, x: &str, y: &str, index: usize) -> Result<&LinkState, LabError> {
        self.node(x)?;
        self.node(y)?;
        let joins = |l: &&LinkState| (l.a == x && l.b == y) || (l.a == y && l.b == x);
        let between: Vec<&LinkState> = self.links.iter().filter(joins).collect();
        between.get(index).copied().ok_or_else(|| LabError::NoLink(format!("{x}-{y}"), index, between.len()))
    }
}

/// `<run_dir>/<name>.json`.
pub fn state_path(run_dir: &Path, name: &str) -> PathBuf {
    run_dir.join(format!("{name}.json"))
}

/// The labs with a state file under `run_dir`, sorted.
pub fn list(run_dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(run_dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.strip_suffix(".json").map(str::to_owned))
        .collect();
    names.sort();
    names
}

/// Lab names become parts of namespace and instance names.
pub fn valid_lab_name(s: &str) -> bool {
    (1..=12).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_state_file_round_trips_and_a_second_lab_of_the_same_name_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = State::create(dir.path(), "t1").unwrap();
        s.namespaces.push("mlab-t1-a".into());
        s.processes.push(Proc { role: "node a".into(), pid: 42, start_time: 7 });
        s.save().unwrap();
        let back = State::load(dir.path(), "t1").unwrap();
        assert_eq!(back, s);
        assert!(matches!(State::create(dir.path(), "t1"), Err(LabError::Exists(..))));
        assert_eq!(list(dir.path()), ["t1"]);
        back.remove().unwrap();
        assert!(matches!(State::load(dir.path(), "t1"), Err(LabError::NoLab(..))));
    }

    #[test]
    fn lab_names_are_short_and_plain() {
        assert!(valid_lab_name("demo"));
        assert!(valid_lab_name("t123"));
        assert!(!valid_lab_name(""));
        assert!(!valid_lab_name("a-b"));
        assert!(!valid_lab_name("waytoolonglabname"));
    }
}
