//! The dataplane's files in the shared-memory directory
//! (`/dev/shm/mycelium-<instance>/` by default):
//!
//! - `dataplane.lock`: held (`flock`) while a dataplane of this instance runs,
//!   so a second one for the same instance stops at start-up;
//! - `shard-<n>.counters`: each shard's [`ShardCounters`], mapped shared; the
//!   control daemon maps them read-only and sums them at scrape time
//!   ([`read_all_counters`]);
//! - `punt-<n>.sock`: each shard's end of the punt channel (see `super::punt`).
//!
//! The directory is created 0700 and every file 0600. Counter files are
//! removed when their shard stops.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::ptr::NonNull;
use std::sync::atomic::Ordering;

use thiserror::Error;

use super::sys::cvt;
use crate::engine::counters::{COUNTERS_MAGIC, CounterValues, DropReason, ShardCounters};
use crate::engine::links::LinkCounts;

/// Why the shared-memory directory cannot be used.
#[derive(Debug, Error)]
pub enum ShmError {
    /// A file operation failed.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
    /// Another dataplane of the same instance holds the lock.
    #[error("another mycelium-dataplane of this instance is running (lock {0} is held)")]
    InstanceRunning(PathBuf),
}

fn at(path: &Path) -> impl FnOnce(io::Error) -> ShmError + '_ {
    move |source| ShmError::Io { path: path.to_path_buf(), source }
}

/// The default directory for an instance.
pub fn default_dir(instance: &str) -> PathBuf {
    PathBuf::from(format!("/dev/shm/mycelium-{instance}"))
}

/// The shared-memory directory, locked for this process.
#[derive(Debug)]
pub struct ShmDir {
    path: PathBuf,
    _lock: File,
}

impl ShmDir {
    /// Creates (0700) and locks the directory.
    pub fn open(path: &Path) -> Result<ShmDir, ShmError> {
        fs::DirBuilder::new().recursive(true).mode(0o700).create(path).map_err(at(path))?;
        fs::set_permissions(path, fs::Permissions::from_mode(0o700)).map_err(at(path))?;
        let lock_path = path.join("dataplane.lock");
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(&lock_path)
            .map_err(at(&lock_path))?;
        // Safety: flock on an fd we own.
        if let Err(e) = cvt(unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) }) {
            return Err(if e.raw_os_error() == Some(libc::EWOULDBLOCK) {
                ShmError::InstanceRunning(lock_path)
            } else {
                ShmError::Io { path: lock_path, source: e }
            });
        }
        Ok(ShmDir { path: path.to_path_buf(), _lock: lock })
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Path of shard `index`'s counters file.
pub fn counters_path(dir: &Path, index: usize) -> PathBuf {
    dir.join(format!("shard-{index}.counters"))
}

const COUNTERS_LEN: usize = std::mem::size_of::<ShardCounters>();

/// A shard's counters, mapped shared from its file.
#[derive(Debug)]
pub struct CountersMap {
    ptr: NonNull<ShardCounters>,
    path: PathBuf,
    remove_on_drop: bool,
}

// Safety: the mapping is only accessed through `&ShardCounters` (atomics), which is Sync.
unsafe impl Send for CountersMap {}

fn map_file(file: &File, writable: bool) -> io::Result<NonNull<ShardCounters>> {
    let prot = if writable { libc::PROT_READ | libc::PROT_WRITE } else { libc::PROT_READ };
    // Safety: a shared mapping of a file at least COUNTERS_LEN long; the result is checked.
    let ptr = unsafe { libc::mmap(std::ptr::null_mut(), COUNTERS_LEN, prot, libc::MAP_SHARED, file.as_raw_fd(), 0) };
    if ptr == libc::MAP_FAILED {
        return Err(io::Error::last_os_error());
    }
    // mmap returns page-aligned memory, so the 64-byte alignment holds.
    NonNull::new(ptr.cast::<ShardCounters>()).ok_or_else(|| io::Error::other("mmap returned null"))
}

impl CountersMap {
    /// Creates (0600, replacing a stale one) and maps shard `index`'s counters, zeroed.
    pub fn create(dir: &Path, index: usize) -> Result<CountersMap, ShmError> {
        let path = counters_path(dir, index);
        let _ = fs::remove_file(&path);
        let file =
            OpenOptions::new().create_new(true).read(true).write(true).mode(0o600).open(&path).map_err(at(&path))?;
        file.set_len(COUNTERS_LEN as u64).map_err(at(&path))?;
        let ptr = map_file(&file, true).map_err(at(&path))?;
        let map = CountersMap { ptr, path, remove_on_drop: true };
        let c = map.get();
        c.drop_reasons.store(DropReason::COUNT as u64, Ordering::Relaxed);
        c.magic.store(COUNTERS_MAGIC, Ordering::Release);
        Ok(map)
    }

    /// Maps an existing counters file read-only; `None` if it is not a counters block of this layout.
    pub fn open_read_only(path: &Path) -> Result<Option<CountersMap>, ShmError> {
        let file = File::open(path).map_err(at(path))?;
        if file.metadata().map_err(at(path))?.len() < COUNTERS_LEN as u64 {
            return Ok(None);
        }
        let ptr = map_file(&file, false).map_err(at(path))?;
        let map = CountersMap { ptr, path: path.to_path_buf(), remove_on_drop: false };
        let c = map.get();
        let ok = c.magic.load(Ordering::Acquire) == COUNTERS_MAGIC
            && c.drop_reasons.load(Ordering::Relaxed) == DropReason::COUNT as u64;
        Ok(ok.then_some(map))
    }

    /// The counters.
    pub fn get(&self) -> &ShardCounters {
        // Safety: the mapping is COUNTERS_LEN bytes, page-aligned, zero-initialised or written
        // by a writer of the same layout (checked by `open_read_only`); every field is an
        // AtomicU64, for which any bit pattern is valid. A read-only mapping is only read.
        unsafe { self.ptr.as_ref() }
    }
}

impl Drop for CountersMap {
    fn drop(&mut self) {
        // Safety: unmaps exactly the mapping made in `map_file`; no reference outlives `self`.
        unsafe { libc::munmap(self.ptr.as_ptr().cast(), COUNTERS_LEN) };
        if self.remove_on_drop {
            let _ = fs::remove_file(&self.path);
        }
    }
}

/// Calls `f(shard, counters)` for every shard's counters block in `dir`
/// (files that are not counters blocks of this layout are skipped).
fn for_each_shard(dir: &Path, mut f: impl FnMut(usize, &ShardCounters)) -> Result<(), ShmError> {
    for entry in fs::read_dir(dir).map_err(at(dir))? {
        let entry = entry.map_err(at(dir))?;
        let name = entry.file_name();
        let Some(index) = name
            .to_str()
            .and_then(|n| n.strip_prefix("shard-"))
            .and_then(|n| n.strip_suffix(".counters"))
            .and_then(|n| n.parse::<usize>().ok())
        else {
            continue;
        };
        if let Some(map) = CountersMap::open_read_only(&entry.path())? {
            f(index, map.get());
        }
    }
    Ok(())
}

/// Reads every shard's counters in `dir`, in shard order.
pub fn read_all_counters(dir: &Path) -> Result<Vec<(usize, CounterValues)>, ShmError> {
    let mut out = Vec::new();
    for_each_shard(dir, |index, c| out.push((index, c.read())))?;
    out.sort_by_key(|(i, _)| *i);
    Ok(out)
}

/// Traffic per link id, summed over the shards in `dir`.
pub fn read_link_counters(dir: &Path) -> Result<BTreeMap<u32, LinkCounts>, ShmError> {
    let mut out = BTreeMap::<u32, LinkCounts>::new();
    for_each_shard(dir, |_, c| {
        for (id, counts) in c.read_links() {
            let sum = out.entry(id).or_default();
            sum.tx_packets += counts.tx_packets;
            sum.tx_bytes += counts.tx_bytes;
            sum.rx_packets += counts.rx_packets;
            sum.rx_bytes += counts.rx_bytes;
        }
    })?;
    Ok(out)
}

/// Name of the file holding the running dataplane's epoch.
pub const EPOCH_FILE: &str = "dataplane.epoch";

/// Publishes this dataplane's epoch (its start time, monotonic ns): the
/// control daemon installs session keys for this epoch only (see
/// `mycelium_common::keytable`). Written to a temporary file and renamed, so
/// a reader sees the old value or the new one, whole.
pub fn write_epoch(dir: &Path, epoch: u64) -> Result<(), ShmError> {
    let tmp = dir.join(format!("{EPOCH_FILE}.tmp"));
    let live = dir.join(EPOCH_FILE);
    let mut file =
        OpenOptions::new().create(true).truncate(true).write(true).mode(0o600).open(&tmp).map_err(at(&tmp))?;
    io::Write::write_all(&mut file, &epoch.to_le_bytes()).map_err(at(&tmp))?;
    fs::rename(&tmp, &live).map_err(at(&live))
}

/// The epoch of the dataplane running for this directory, if one wrote it.
pub fn read_epoch(dir: &Path) -> Result<Option<u64>, ShmError> {
    let path = dir.join(EPOCH_FILE);
    match fs::read(&path) {
        Ok(bytes) => Ok(<[u8; 8]>::try_from(bytes.as_slice()).ok().map(u64::from_le_bytes)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(ShmError::Io { path, source: e }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::counters::bump;

    fn temp_dir(tag: &str) -> PathBuf {
        std::env::temp_dir().join(format!("mycelium-shm-test-{tag}-{}", std::process::id()))
    }

    #[test]
    fn link_counters_are_summed_over_shards_by_link_id_and_freed_slots_are_skipped() {
        let dir = temp_dir("links");
        let shm = ShmDir::open(&dir).unwrap();
        let a = CountersMap::create(shm.path(), 0).unwrap();
        let b = CountersMap::create(shm.path(), 1).unwrap();
        let counts = |tx, rx| LinkCounts { tx_packets: 1, tx_bytes: tx, rx_packets: 2, rx_bytes: rx };
        a.get().links[3].publish(Some(7), &counts(100, 10));
        a.get().links[4].publish(Some(0), &counts(5, 5));
        b.get().links[9].publish(Some(7), &counts(1000, 20));
        b.get().links[10].publish(Some(8), &counts(1, 1));
        b.get().links[10].publish(None, &LinkCounts::default());
        let links = read_link_counters(shm.path()).unwrap();
        assert_eq!(links.keys().copied().collect::<Vec<_>>(), vec![0, 7]);
        assert_eq!(links[&7], LinkCounts { tx_packets: 2, tx_bytes: 1100, rx_packets: 4, rx_bytes: 30 });
        drop((a, b));
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn counters_written_by_a_shard_are_read_back_by_another_mapping() {
        let dir = temp_dir("rw");
        let shm = ShmDir::open(&dir).unwrap();
        let a = CountersMap::create(shm.path(), 0).unwrap();
        let b = CountersMap::create(shm.path(), 1).unwrap();
        bump(&a.get().tun_rx_packets, 5);
        b.get().drop_n(DropReason::NoRoute, 2);
        let mode = fs::metadata(counters_path(shm.path(), 0)).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let all = read_all_counters(shm.path()).unwrap();
        assert_eq!(all.len(), 2);
        assert_eq!(all[0].1.tun_rx_packets, 5);
        assert_eq!(all[1].1.drops[DropReason::NoRoute as usize], 2);
        drop((a, b));
        assert!(read_all_counters(shm.path()).unwrap().is_empty());
        drop(shm);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_second_dataplane_of_the_same_instance_is_refused() {
        let dir = temp_dir("lock");
        let first = ShmDir::open(&dir).unwrap();
        assert!(matches!(ShmDir::open(&dir), Err(ShmError::InstanceRunning(_))));
        drop(first);
        assert!(ShmDir::open(&dir).is_ok());
        fs::remove_dir_all(&dir).unwrap();
    }
}
