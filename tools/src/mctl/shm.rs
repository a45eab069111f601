//! Finding a node's shared memory: `--shm-dir DIR`, else
//! `/dev/shm/mycelium-<instance>` for `--instance`, else the only
//! `/dev/shm/mycelium-*` directory on the host (myceliumd names its instance
//! after the node's /64, so an operator rarely knows it by heart).

use std::path::PathBuf;

use anyhow::anyhow;
use mycelium_common::shm::ShmDir;

use super::Global;

/// The node's shared memory is not there (exit code 3).
#[derive(Debug, thiserror::Error)]
#[error(
    "no shared memory of a running node at {path}: {reason} (is mycelium-dataplane running with --instance {instance}?)"
)]
pub struct NoSharedMemory {
    /// The directory tried.
    pub path: PathBuf,
    /// The instance asked for.
    pub instance: String,
    /// What is missing.
    pub reason: String,
}

/// The instance directory path.
pub fn dir_path(g: &Global) -> PathBuf {
    if let Some(dir) = &g.shm_dir {
        return dir.clone();
    }
    if let Some(instance) = &g.instance {
        return mycelium_dataplane::io::shm::default_dir(instance);
    }
    let mut found: Vec<PathBuf> = std::fs::read_dir("/dev/shm")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_dir() && p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("mycelium-")))
        .collect();
    found.sort();
    match found.as_slice() {
        [only] => only.clone(),
        _ => mycelium_dataplane::io::shm::default_dir("default"),
    }
}

/// The instance name shown in errors.
fn instance_name(g: &Global) -> String {
    g.instance.clone().unwrap_or_else(|| "NAME (several or no nodes on this host)".to_owned())
}

/// The instance directory as a [`ShmDir`] (for snapshot subscribers).
pub fn shm_dir(g: &Global) -> anyhow::Result<ShmDir> {
    let path = dir_path(g);
    let name = path.file_name().and_then(|n| n.to_str()).and_then(|n| n.strip_prefix("mycelium-"));
    let (Some(instance), Some(base)) = (name, path.parent()) else {
        return Err(anyhow!("--shm-dir {}: expected a directory named mycelium-<instance>", path.display()));
    };
    Ok(ShmDir::new(base, instance)?)
}

/// `NoSharedMemory` for `g`'s directory.
pub fn missing(g: &Global, reason: impl Into<String>) -> NoSharedMemory {
    NoSharedMemory { path: dir_path(g), instance: instance_name(g), reason: reason.into() }
}
