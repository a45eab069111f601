//! Publishing snapshots through shared memory: one writer (the control
//! daemon), many readers (dataplane shards, `mctl`), no locks on the read
//! side.
//!
//! Layout, in one directory per node instance, `/dev/shm/mycelium-<instance>/`
//! (mode 0700, every file 0600, see [`ShmDir`]):
//! - `control`: one 4 KiB page with a magic, a layout version, and one
//!   `AtomicU64` publish generation per channel slot ([`ROUTES`] = 0,
//!   [`KEYS`] = 1);
//! - `<channel>`: the live file of each channel (e.g. `routes`);
//! - `<channel>.tmp`: the writer's scratch file; `lock`: held by the writer.
//!
//! How to drive it:
//! - Writer: [`Publisher::create`] once, then [`Publisher::publish`] per
//!   snapshot. It writes `<channel>.tmp`, renames it over `<channel>`, then
//!   bumps the channel's generation (Release). A live file is never
//!   rewritten in place: readers that still map an old one keep a whole,
//!   unchanging file until they unmap it.
//! - Reader: [`Subscriber::new`] once, then [`Subscriber::poll`] once per
//!   batch and [`Subscriber::current`] for the view. A poll with no change is
//!   one Acquire load and allocates nothing. On a change the reader maps the
//!   live file read-only, validates it once through the [`Channel`]'s
//!   validator, and swaps; a file that fails validation is reported and the
//!   last good mapping stays. If the writer dies, readers keep serving what
//!   they have; a restarted writer continues the same generations.
//!
//! All the `unsafe` of this crate's shared-memory use (mapping files, atomics
//! in a mapped page, the lifetime of a view over its mapping) is in this
//! module.

mod control;
mod dir;
mod publisher;
mod subscriber;

#[cfg(test)]
mod tests;

use std::path::PathBuf;

pub use control::{CONTROL_PAGE_SIZE, CONTROL_SLOTS};
pub use dir::ShmDir;
pub use publisher::Publisher;
pub use subscriber::{Poll, SubscribeError, Subscriber};

/// A named channel with its fixed generation slot in the control page.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChannelId {
    name: &'static str,
    slot: usize,
}

impl ChannelId {
    /// The live file's name in the instance directory.
    pub const fn name(&self) -> &'static str {
        self.name
    }

    /// The generation slot in the control page.
    pub const fn slot(&self) -> usize {
        self.slot
    }
}

/// Route snapshots ([`crate::snapshot`]).
pub const ROUTES: ChannelId = ChannelId { name: "routes", slot: 0 };
/// Session key tables ([`crate::keytable`]).
pub const KEYS: ChannelId = ChannelId { name: "keys", slot: 1 };

/// What a channel carries and how a reader accepts it.
///
/// `validate` runs once per new mapping; the view it returns may borrow only
/// from the bytes it was given. `shorten` is always written `{ view }`: it
/// compiles only if the view is covariant in its lifetime, which is what lets
/// a [`Subscriber`] hand out views tied to its own borrow.
pub trait Channel {
    /// The channel's name and slot.
    const ID: ChannelId;
    /// A validated, zero-copy view of the channel's bytes.
    type View<'a>: Copy;
    /// Why bytes were rejected.
    type Error: std::error::Error + Send + Sync + 'static;
    /// Checks `bytes` fully and returns the view over them.
    fn validate(bytes: &[u8]) -> Result<Self::View<'_>, Self::Error>;
    /// Shortens a view's lifetime (write `{ view }`).
    fn shorten<'short, 'long: 'short>(view: Self::View<'long>) -> Self::View<'short>;
}

/// Errors of the shared-memory directory, control page and files.
#[derive(Debug, thiserror::Error)]
pub enum ShmError {
    /// A file system call failed.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// The instance name would not make a single safe path component.
    #[error("instance name {0:?} must be 1-64 characters of [A-Za-z0-9_.-], not starting with '.'")]
    InstanceName(String),
    /// The directory is not a private directory of this user.
    #[error("{path}: not a directory owned by this user with mode 0700 (mode {mode:o}); remove it")]
    InsecureDirectory {
        /// The directory.
        path: PathBuf,
        /// Its mode bits.
        mode: u32,
    },
    /// The control page has the wrong size, magic or layout version.
    #[error("{path}: not a control page of this layout ({reason})")]
    ControlPage {
        /// The control file.
        path: PathBuf,
        /// What is wrong.
        reason: &'static str,
    },
    /// Another publisher holds this instance's lock.
    #[error("{path}: another publisher is running for this instance")]
    Busy {
        /// The lock file.
        path: PathBuf,
    },
}

impl ShmError {
    fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> ShmError {
        let path = path.into();
        move |source| ShmError::Io { path, source }
    }
}
