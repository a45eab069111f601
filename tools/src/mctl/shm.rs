//! Finding a node's shared memory: `--shm-dir DIR`, else
//! `/dev/shm/mycelium-<instance>` (the dataplane's own default).

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
    g.shm_dir.clone().unwrap_or_else(|| mycelium_dataplane::io::shm::default_dir(&g.instance))
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
    NoSharedMemory { path: dir_path(g), instance: g.instance.clone(), reason: reason.into() }
}
