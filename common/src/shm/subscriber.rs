//! [`Subscriber`]: a reader's current mapping of one channel.
//!
//! ```text
//! let mut routes = Subscriber::<RouteChannel>::new(ShmDir::system("node1")?);
//! loop {                                   // per batch
//!     if let Err(e) = routes.poll() { count_and_log(e) }   // cheap when unchanged
//!     if let Some(view) = routes.current() { forward(view, batch) }
//! }
//! ```

use std::fs::File;
use std::path::PathBuf;

use memmap2::{Mmap, MmapOptions};

use super::control::ControlReader;
use super::{Channel, ShmDir, ShmError};

/// What a poll found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Poll {
    /// Nothing new; [`Subscriber::current`] is as before.
    Unchanged,
    /// A new file was mapped, validated and swapped in.
    Updated {
        /// The publish generation that announced it.
        generation: u64,
    },
    /// The writer has not created the control page or published this
    /// channel yet; poll again later.
    NotPublished,
}

/// A poll failed; the last good mapping (if any) stays current.
#[derive(Debug, thiserror::Error)]
pub enum SubscribeError<E: std::error::Error + 'static> {
    /// The directory, control page or live file could not be used.
    #[error(transparent)]
    Shm(#[from] ShmError),
    /// The published file did not validate.
    #[error("published generation {generation} rejected: {source}")]
    Invalid {
        /// The publish generation whose file was rejected.
        generation: u64,
        /// Why.
        #[source]
        source: E,
    },
}

/// A validated view together with the mapping it borrows.
struct Current<C: Channel> {
    /// Borrows `_map`'s memory; never handed out with this lifetime (see
    /// [`Subscriber::current`]). Declared first so it is dropped first.
    view: C::View<'static>,
    generation: u64,
    _map: Mmap,
}

/// One reader of one channel of an instance directory.
pub struct Subscriber<C: Channel> {
    dir: ShmDir,
    live_path: PathBuf,
    control: Option<ControlReader>,
    current: Option<Current<C>>,
    /// The last generation acted on (mapped or rejected): a bad file is
    /// reported once, not on every poll.
    seen: u64,
}

impl<C: Channel> std::fmt::Debug for Subscriber<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscriber")
            .field("path", &self.live_path)
            .field("generation", &self.generation())
            .field("seen", &self.seen)
            .finish()
    }
}

impl<C: Channel> Subscriber<C> {
    /// A reader of channel `C` in `dir`. Touches nothing until the first poll.
    pub fn new(dir: ShmDir) -> Self {
        let live_path = dir.file(C::ID.name());
        Subscriber { dir, live_path, control: None, current: None, seen: 0 }
    }

    /// Checks for a new publication and swaps it in if it validates.
    ///
    /// With nothing new this is one Acquire load, no system call and no
    /// allocation. Before the writer has created the control page, each poll
    /// tries to open it (one failed `open`): poll less often until then.
    #[inline]
    pub fn poll(&mut self) -> Result<Poll, SubscribeError<C::Error>> {
        let generation = match &self.control {
            Some(control) => control.generation(C::ID.slot()),
            None => return self.poll_cold(),
        };
        if generation == self.seen {
            return Ok(if self.current.is_some() || generation != 0 { Poll::Unchanged } else { Poll::NotPublished });
        }
        self.swap(generation)
    }

    /// The current view, if any publication has validated. It borrows the
    /// subscriber, so the mapping cannot be swapped while it is in use.
    #[inline]
    pub fn current(&self) -> Option<C::View<'_>> {
        self.current.as_ref().map(|c| C::shorten(c.view))
    }

    /// The publish generation of the current view.
    pub fn generation(&self) -> Option<u64> {
        self.current.as_ref().map(|c| c.generation)
    }

    #[cold]
    fn poll_cold(&mut self) -> Result<Poll, SubscribeError<C::Error>> {
        let Some(control) = ControlReader::open(&self.dir)? else {
            return Ok(Poll::NotPublished);
        };
        let generation = control.generation(C::ID.slot());
        self.control = Some(control);
        if generation == 0 {
            return Ok(Poll::NotPublished);
        }
        self.swap(generation)
    }

    /// Maps, validates and installs the live file announced by `generation`.
    #[cold]
    fn swap(&mut self, generation: u64) -> Result<Poll, SubscribeError<C::Error>> {
        self.seen = generation;
        if generation == 0 {
            // A page recreated from scratch: nothing published there yet.
            return Ok(Poll::NotPublished);
        }
        let path = &self.live_path;
        let file = File::open(path).map_err(ShmError::io(path))?;
        // Safety: the file is in this user's private 0700 directory (checked
        // when the control page was opened), and the publisher never writes a
        // live file in place: it writes a new inode and renames it over the
        // name, so the bytes this mapping sees never change while it lives.
        let map = unsafe { MmapOptions::new().populate().map(&file) }.map_err(ShmError::io(path))?;
        let view = C::validate(&map).map_err(|source| SubscribeError::Invalid { generation, source })?;
        // Safety: `view` borrows only the mapped memory (validate's signature
        // ties it to `map`'s bytes and nothing else). That memory stays at the
        // same address until `map` is unmapped, and `map` moves into the same
        // `Current` as the view, which drops the view no later than the map.
        // The 'static view is never handed out: `current` shortens it to a
        // borrow of `self` (C::shorten, checked covariant by the compiler).
        // View is Copy, so copying its bits out leaves nothing to drop twice.
        let view: C::View<'static> = unsafe { std::mem::transmute_copy(&view) };
        self.current = Some(Current { view, generation, _map: map });
        Ok(Poll::Updated { generation })
    }
}
