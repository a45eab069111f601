//! [`ShmDir`]: the per-instance directory and its permissions.

use std::fs::{self, DirBuilder, OpenOptions};
use std::io::ErrorKind;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::ShmError;

/// Where the system keeps shared memory.
pub const SYSTEM_BASE: &str = "/dev/shm";

/// The directory `<base>/mycelium-<instance>/` of one node instance.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShmDir {
    path: PathBuf,
}

impl ShmDir {
    /// The directory for `instance` under `base` (tests pass a temporary
    /// directory; agents use [`ShmDir::system`]). Nothing is created yet.
    pub fn new(base: impl AsRef<Path>, instance: &str) -> Result<Self, ShmError> {
        let ok_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-');
        if instance.is_empty() || instance.len() > 64 || instance.starts_with('.') || !instance.chars().all(ok_char) {
            return Err(ShmError::InstanceName(instance.to_owned()));
        }
        Ok(ShmDir { path: base.as_ref().join(format!("mycelium-{instance}")) })
    }

    /// A directory at an explicit path (an operator's `--shm-dir`).
    pub fn at(path: impl Into<PathBuf>) -> Self {
        ShmDir { path: path.into() }
    }

    /// The directory for `instance` under `/dev/shm`.
    pub fn system(instance: &str) -> Result<Self, ShmError> {
        ShmDir::new(SYSTEM_BASE, instance)
    }

    /// The directory's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The path of a file in the directory.
    pub(crate) fn file(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    /// Creates the directory with mode 0700, or checks an existing one is a
    /// directory of this user that nobody else can enter.
    pub fn create(&self) -> Result<(), ShmError> {
        match DirBuilder::new().mode(0o700).create(&self.path) {
            Ok(()) => {
                // The umask may have taken bits away; set exactly 0700.
                fs::set_permissions(&self.path, fs::Permissions::from_mode(0o700)).map_err(ShmError::io(&self.path))?;
                Ok(())
            }
            Err(e) if e.kind() == ErrorKind::AlreadyExists => self.check(),
            Err(e) => Err(ShmError::Io { path: self.path.clone(), source: e }),
        }
    }

    /// Checks the directory is a real directory (not a link), owned by this
    /// user, with no access for group or others.
    pub fn check(&self) -> Result<(), ShmError> {
        let meta = fs::symlink_metadata(&self.path).map_err(ShmError::io(&self.path))?;
        let mode = meta.mode() & 0o7777;
        if !meta.is_dir() || meta.uid() != rustix::process::geteuid().as_raw() || mode & 0o077 != 0 {
            return Err(ShmError::InsecureDirectory { path: self.path.clone(), mode });
        }
        Ok(())
    }

    /// Removes the directory and everything in it (tests, and a node's clean
    /// shutdown). Readers that still map files keep them until they unmap.
    pub fn remove(&self) -> Result<(), ShmError> {
        match fs::remove_dir_all(&self.path) {
            Err(e) if e.kind() != ErrorKind::NotFound => Err(ShmError::Io { path: self.path.clone(), source: e }),
            _ => Ok(()),
        }
    }

    /// Opens `name` for writing: created (or truncated) with mode 0600, and
    /// set to exactly 0600 whatever the umask or an earlier run left.
    pub(crate) fn create_file(&self, name: &str) -> Result<fs::File, ShmError> {
        let path = self.file(name);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&path)
            .map_err(ShmError::io(&path))?;
        file.set_permissions(fs::Permissions::from_mode(0o600)).map_err(ShmError::io(&path))?;
        Ok(file)
    }
}
