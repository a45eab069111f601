//! The control page: one 4 KiB file holding each channel's publish generation.
//!
//! ```text
//! offset  size  field
//!      0     8  magic "MYCSHMv1"
//!      8     4  layout version (u32, little-endian) = 1
//!     12     4  number of slots (u32, little-endian) = CONTROL_SLOTS
//!     16    48  zero
//!     64     8  slot 0 generation (AtomicU64, native endian), own cache line
//!    128     8  slot 1 generation ...
//!  64+64i    8  slot i generation, i < CONTROL_SLOTS
//! ```
//!
//! The header is written once, into a temporary file, before the page is
//! renamed into place; after that only the generations change, and only
//! through atomics. A generation of 0 means "never published".

use std::fs::File;
use std::io::{ErrorKind, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

use memmap2::{MmapOptions, MmapRaw};

use super::{ShmDir, ShmError};

/// Size of the control page file.
pub const CONTROL_PAGE_SIZE: usize = 4096;
/// Number of generation slots (channels) in the control page.
pub const CONTROL_SLOTS: usize = 16;

const MAGIC: &[u8; 8] = b"MYCSHMv1";
const LAYOUT_VERSION: u32 = 1;
const SLOT_BASE: usize = 64;
const SLOT_STRIDE: usize = 64;
pub(crate) const CONTROL_FILE: &str = "control";
const CONTROL_TMP: &str = "control.tmp";

fn header() -> [u8; CONTROL_PAGE_SIZE] {
    let mut page = [0u8; CONTROL_PAGE_SIZE];
    page[..8].copy_from_slice(MAGIC);
    page[8..12].copy_from_slice(&LAYOUT_VERSION.to_le_bytes());
    page[12..16].copy_from_slice(&(CONTROL_SLOTS as u32).to_le_bytes());
    page
}

/// A mapped control page, seen only through raw pointers ([`MmapRaw`] never
/// hands out references), since other processes change the generation words.
#[derive(Debug)]
struct Page {
    raw: MmapRaw,
}

impl Page {
    /// Checks the page's size and header.
    fn check_header(&self) -> Result<(), &'static str> {
        if self.raw.len() != CONTROL_PAGE_SIZE {
            return Err("wrong size");
        }
        let mut found = [0u8; 16];
        // Safety: the mapping is live for as long as `self` and is 4096
        // readable bytes (checked above, and the file's size was checked
        // before mapping). The first 16 bytes are the header, written before
        // the page went live and never after, so this plain copy races with
        // nothing.
        unsafe { std::ptr::copy_nonoverlapping(self.raw.as_ptr(), found.as_mut_ptr(), found.len()) };
        let want = header();
        if found[..8] != want[..8] {
            return Err("bad magic");
        }
        if found[8..16] != want[8..16] {
            return Err("other layout version");
        }
        Ok(())
    }

    /// The generation atomic of `slot`.
    fn slot(&self, slot: usize) -> Option<&AtomicU64> {
        let offset = SLOT_BASE + SLOT_STRIDE * slot;
        if slot >= CONTROL_SLOTS || self.raw.len() < offset + 8 {
            return None;
        }
        let ptr = self.raw.as_ptr().wrapping_add(offset);
        if ptr.align_offset(align_of::<AtomicU64>()) != 0 {
            return None;
        }
        // Safety: `ptr` points to 8 bytes inside the mapping (bounds checked
        // above), which stays mapped while `self` lives, and the returned
        // reference borrows `self`. It is aligned for AtomicU64 (checked
        // above; a mapping is page-aligned and the offset a multiple of 64).
        // AtomicU64 has the layout of u64 and wraps an UnsafeCell, so a shared
        // reference asserts nothing about other writers, and every process
        // touches these 8 bytes only through atomics once the page is live.
        // Readers map the page read-only and only ever `load`, which std's
        // atomic docs allow on read-only memory for lock-free widths
        // (AtomicU64 on 64-bit targets).
        Some(unsafe { &*ptr.cast::<AtomicU64>() })
    }
}

/// Opens a control file's mapping after checking the file's size, so no
/// access can run past its end.
fn map_page(file: &File, path: PathBuf, writable: bool) -> Result<Page, ShmError> {
    let meta = file.metadata().map_err(ShmError::io(&path))?;
    if meta.len() != CONTROL_PAGE_SIZE as u64 {
        return Err(ShmError::ControlPage { path, reason: "wrong size" });
    }
    let mut opts = MmapOptions::new();
    opts.len(CONTROL_PAGE_SIZE);
    let raw = if writable { opts.map_raw(file) } else { opts.map_raw_read_only(file) };
    let page = Page { raw: raw.map_err(ShmError::io(&path))? };
    page.check_header().map_err(|reason| ShmError::ControlPage { path, reason })?;
    Ok(page)
}

/// The writer's read-write mapping of the control page.
#[derive(Debug)]
pub(crate) struct ControlWriter {
    page: Page,
}

impl ControlWriter {
    /// Opens the existing page (keeping its generations, so readers of a
    /// restarted writer continue where they were), or creates a fresh one via
    /// a temporary file and a rename so no reader ever sees a partial header.
    pub(crate) fn open_or_create(dir: &ShmDir) -> Result<Self, ShmError> {
        let path = dir.file(CONTROL_FILE);
        let file = match File::options().read(true).write(true).open(&path) {
            Ok(file) => file,
            Err(e) if e.kind() == ErrorKind::NotFound => {
                let mut tmp = dir.create_file(CONTROL_TMP)?;
                tmp.write_all(&header()).map_err(ShmError::io(dir.file(CONTROL_TMP)))?;
                std::fs::rename(dir.file(CONTROL_TMP), &path).map_err(ShmError::io(&path))?;
                tmp
            }
            Err(e) => return Err(ShmError::Io { path, source: e }),
        };
        Ok(ControlWriter { page: map_page(&file, path, true)? })
    }

    /// The current generation of `slot` (0 if never published).
    pub(crate) fn generation(&self, slot: usize) -> u64 {
        self.page.slot(slot).map_or(0, |g| g.load(Ordering::Acquire))
    }

    /// Bumps `slot`'s generation with a Release store: everything written
    /// before (the renamed file) is visible to a reader whose Acquire load
    /// sees the new value. Returns the new generation (0 for a bad slot).
    pub(crate) fn bump(&self, slot: usize) -> u64 {
        let Some(g) = self.page.slot(slot) else {
            return 0;
        };
        let next = g.load(Ordering::Relaxed).wrapping_add(1).max(1);
        g.store(next, Ordering::Release);
        next
    }
}

/// A reader's read-only mapping of the control page.
#[derive(Debug)]
pub(crate) struct ControlReader {
    page: Page,
}

impl ControlReader {
    /// Maps the page; `Ok(None)` if no writer has created it yet.
    pub(crate) fn open(dir: &ShmDir) -> Result<Option<Self>, ShmError> {
        let path = dir.file(CONTROL_FILE);
        let file = match File::open(&path) {
            Ok(file) => file,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(ShmError::Io { path, source: e }),
        };
        dir.check()?;
        Ok(Some(ControlReader { page: map_page(&file, path, false)? }))
    }

    /// The current generation of `slot` (one Acquire load).
    #[inline]
    pub(crate) fn generation(&self, slot: usize) -> u64 {
        self.page.slot(slot).map_or(0, |g| g.load(Ordering::Acquire))
    }
}
