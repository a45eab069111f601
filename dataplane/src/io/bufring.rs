//! A provided-buffer ring (`IORING_REGISTER_PBUF_RING`) and the buffers behind it.
//!
//! The kernel picks a buffer from the ring for each multishot completion and
//! tells which in the CQE flags (`cqueue::buffer_select`). The loop owns the
//! buffer until it gives it back with [`BufRing::give_back`]; buffers come back
//! in any order, and [`BufRing::commit`] publishes them to the kernel once per
//! batch (one release store of the tail).
//!
//! Each buffer is `buf_size` bytes; the kernel writes from `data_offset`
//! onwards, which leaves headroom in front of the data (the engine's header on
//! TUN packets). Both regions are anonymous mappings: page-aligned (the ring
//! must be), never moved, and unmapped on drop, after the owning io_uring is
//! gone (the shard drops its ring first).

use std::io;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU16, Ordering};

use io_uring::types::BufRingEntry;

/// An anonymous, private, read-write mapping.
#[derive(Debug)]
pub(crate) struct Region {
    ptr: NonNull<u8>,
    len: usize,
}

impl Region {
    pub(crate) fn new(len: usize) -> io::Result<Region> {
        // Safety: an anonymous mapping at an address of the kernel's choosing; the result is checked.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_POPULATE,
                -1,
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let ptr = NonNull::new(ptr.cast::<u8>()).ok_or_else(|| io::Error::other("mmap returned null"))?;
        Ok(Region { ptr, len })
    }

    pub(crate) fn as_ptr(&self) -> *mut u8 {
        self.ptr.as_ptr()
    }
}

impl Drop for Region {
    fn drop(&mut self) {
        // Safety: `ptr`/`len` are exactly what mmap returned and nothing uses them past this point.
        unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.len) };
    }
}

/// A buffer group: `count` buffers of `buf_size` bytes and the ring that lends them to the kernel.
#[derive(Debug)]
pub struct BufRing {
    ring: Region,
    slab: Region,
    bgid: u16,
    count: u16,
    mask: u16,
    buf_size: usize,
    data_offset: usize,
    tail: u16,
}

impl BufRing {
    /// Allocates `count` buffers (a power of two, at most 32768) and fills the ring with all of them.
    pub fn new(bgid: u16, count: u16, buf_size: usize, data_offset: usize) -> io::Result<BufRing> {
        if !count.is_power_of_two() || count > 32768 || data_offset >= buf_size || u32::try_from(buf_size).is_err() {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "bad buffer ring geometry"));
        }
        let ring = Region::new(usize::from(count) * std::mem::size_of::<BufRingEntry>())?;
        let slab = Region::new(usize::from(count) * buf_size)?;
        let mut br = BufRing { ring, slab, bgid, count, mask: count - 1, buf_size, data_offset, tail: 0 };
        for bid in 0..count {
            br.give_back(bid);
        }
        br.commit();
        Ok(br)
    }

    /// Registers the ring with `submitter`'s io_uring as buffer group `bgid`.
    pub fn register(&self, submitter: &io_uring::Submitter<'_>) -> io::Result<()> {
        // Safety: the ring region stays mapped until `self` drops, and the shard drops its io_uring
        // (which unregisters everything) before its buffer rings.
        unsafe { submitter.register_buf_ring_with_flags(self.ring.as_ptr() as u64, self.count, self.bgid, 0) }
    }

    /// The buffer group id.
    pub fn bgid(&self) -> u16 {
        self.bgid
    }

    /// Number of buffers.
    pub fn count(&self) -> u16 {
        self.count
    }

    /// Size of each buffer, headroom included.
    pub fn buf_size(&self) -> usize {
        self.buf_size
    }

    /// Where the kernel starts writing in each buffer.
    pub fn data_offset(&self) -> usize {
        self.data_offset
    }

    /// Start of buffer `bid` (its headroom included). `bid` must be below `count`.
    pub fn buf_ptr(&self, bid: u16) -> *mut u8 {
        debug_assert!(bid < self.count);
        // Safety: bid < count, so the offset stays inside the slab mapping.
        unsafe { self.slab.as_ptr().add(usize::from(bid % self.count) * self.buf_size) }
    }

    /// Puts buffer `bid` back in the ring (visible to the kernel after [`BufRing::commit`]).
    /// The caller must own it: taken from a completion and not given back since.
    pub fn give_back(&mut self, bid: u16) {
        let bid = bid % self.count;
        let addr = self.buf_ptr(bid) as u64 + self.data_offset as u64;
        // Safety: the index is masked into the ring, which holds `count` entries; the kernel only
        // reads entries between its head and our published tail, and this one is past the tail.
        let entry = unsafe { &mut *self.ring.as_ptr().cast::<BufRingEntry>().add(usize::from(self.tail & self.mask)) };
        entry.set_addr(addr);
        entry.set_len((self.buf_size - self.data_offset) as u32);
        entry.set_bid(bid);
        self.tail = self.tail.wrapping_add(1);
    }

    /// Publishes every buffer given back so far.
    pub fn commit(&self) {
        // Safety: the ring region starts with a properly initialised entry, whose `resv` field is
        // the shared tail; it is 2-byte aligned inside a page-aligned mapping, so it can be used
        // as an AtomicU16, which the kernel reads with acquire semantics.
        let tail = unsafe { &*BufRingEntry::tail(self.ring.as_ptr().cast::<BufRingEntry>()).cast::<AtomicU16>() };
        tail.store(self.tail, Ordering::Release);
    }
}
