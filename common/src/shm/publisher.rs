//! [`Publisher`]: the single writer of an instance directory.

use std::fs::File;
use std::io::Write;

use super::control::ControlWriter;
use super::{ChannelId, ShmDir, ShmError};

const LOCK_FILE: &str = "lock";

/// Publishes channel files and bumps their generations. One per instance:
/// it holds an exclusive lock on the directory's `lock` file while it lives.
#[derive(Debug)]
pub struct Publisher {
    dir: ShmDir,
    control: ControlWriter,
    /// Held for the lock; closing it releases the lock.
    _lock: File,
}

impl Publisher {
    /// Creates (or checks) the directory, takes the writer lock, and opens or
    /// creates the control page. An existing page keeps its generations; one
    /// of another layout is refused ([`ShmError::ControlPage`]): remove the
    /// directory, and restart its readers, which still map the old page.
    pub fn create(dir: ShmDir) -> Result<Self, ShmError> {
        dir.create()?;
        let lock_path = dir.file(LOCK_FILE);
        let lock = dir.create_file(LOCK_FILE)?;
        if let Err(e) = lock.try_lock() {
            return Err(match e {
                std::fs::TryLockError::WouldBlock => ShmError::Busy { path: lock_path },
                std::fs::TryLockError::Error(source) => ShmError::Io { path: lock_path, source },
            });
        }
        let control = ControlWriter::open_or_create(&dir)?;
        Ok(Publisher { dir, control, _lock: lock })
    }

    /// The directory published into.
    pub fn dir(&self) -> &ShmDir {
        &self.dir
    }

    /// The last generation published on `channel` (0: never).
    pub fn generation(&self, channel: ChannelId) -> u64 {
        self.control.generation(channel.slot())
    }

    /// Publishes `bytes` as the new live file of `channel`: writes
    /// `<channel>.tmp` (mode 0600), renames it over `<channel>`, then bumps the
    /// channel's generation. Returns the new generation.
    ///
    /// The bytes are not validated here: the publisher is trusted to publish
    /// what its builder made, and every reader validates anyway.
    pub fn publish(&mut self, channel: ChannelId, bytes: &[u8]) -> Result<u64, ShmError> {
        let tmp_name = format!("{}.tmp", channel.name());
        let tmp_path = self.dir.file(&tmp_name);
        let live_path = self.dir.file(channel.name());
        let mut tmp = self.dir.create_file(&tmp_name)?;
        tmp.write_all(bytes).map_err(ShmError::io(&tmp_path))?;
        drop(tmp);
        // rename(2) swaps the name atomically: a reader opening `<channel>`
        // gets either the old inode or the new, each whole.
        std::fs::rename(&tmp_path, &live_path).map_err(ShmError::io(&live_path))?;
        Ok(self.control.bump(channel.slot()))
    }
}
