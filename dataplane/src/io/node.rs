//! Starting, supervising and stopping a dataplane process's shards.
//!
//! [`Node::start`] checks everything that can fail before any packet moves,
//! in an order that gives the clearest error first: the core list against the
//! process's affinity, privileges, the instance lock, the port, the TUN name.
//! Then it starts one pinned thread per core; each builds its ring and reports
//! back before `start` returns, so a ring that cannot be set up is a start-up
//! error too.
//!
//! The caller blocks SIGINT/SIGTERM first ([`super::signals`]), then calls
//! [`Node::run_until_signal`], which returns on a signal or when a shard stops
//! on its own, and [`Node::stop`], which raises the shutdown flag (every shard
//! sees it within `WAIT_TIMEOUT`), joins the shards and releases the TUN
//! queues, punt sockets and counter files.

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use thiserror::Error;
use tracing::{error, info};

use super::affinity::{allowed_cores, pin_current_thread};
use super::privileges::{self, PrivilegeError};
use super::punt::PuntSocket;
use super::shard::Offloads;
use super::shard::{CQ_ENTRIES, SQ_ENTRIES, Shard, ShardParts, TUN_BUFFERS, UDP_BUFFERS};
use super::shm::{CountersMap, ShmDir, ShmError};
use super::signals::wait_shutdown_signal;
use super::socket::{SocketError, UdpOffload, bind_shard_socket, enable_offloads, probe_port_free};
use super::steer::{self, Steering};
use super::tun::{TunDevice, TunError};
use crate::config::{Config, format_core_list};
use crate::engine::Engine;

/// How long a shard may take to set up its ring before start-up fails.
const SHARD_START_TIMEOUT: Duration = Duration::from_secs(10);

/// Why the dataplane cannot start, or stopped.
#[derive(Debug, Error)]
pub enum NodeError {
    /// The affinity mask cannot be read.
    #[error("cannot read the process's CPU affinity: {0}")]
    Affinity(io::Error),
    /// A requested core is outside the affinity mask.
    #[error("CPU {core} is not available to this process (allowed: {allowed})")]
    CoreUnavailable {
        /// The core.
        core: usize,
        /// The allowed list, formatted.
        allowed: String,
    },
    /// A privilege is missing.
    #[error(transparent)]
    Privilege(#[from] PrivilegeError),
    /// The shared-memory directory cannot be used.
    #[error(transparent)]
    Shm(#[from] ShmError),
    /// The UDP port cannot be used.
    #[error(transparent)]
    Socket(#[from] SocketError),
    /// The TUN cannot be set up.
    #[error(transparent)]
    Tun(#[from] TunError),
    /// A punt socket cannot be bound.
    #[error("punt socket of shard {shard}: {source}")]
    Punt {
        /// The shard.
        shard: usize,
        /// The error.
        source: io::Error,
    },
    /// A shard could not start (pinning, ring or buffer setup).
    #[error("shard {shard} on CPU {core}: {what}: {source}")]
    ShardStart {
        /// The shard.
        shard: usize,
        /// Its CPU.
        core: usize,
        /// The step that failed.
        what: &'static str,
        /// The error.
        source: io::Error,
    },
    /// A shard's loop failed.
    #[error("shard {shard} failed: {source}")]
    ShardFailed {
        /// The shard.
        shard: usize,
        /// The error.
        source: io::Error,
    },
    /// A shard panicked.
    #[error("shard {0} panicked")]
    ShardPanicked(usize),
}

/// Locked memory a shard needs, counted generously: its SQ/CQ rings and the buffer rings.
pub const MEMLOCK_PER_SHARD: u64 =
    (SQ_ENTRIES as u64 * 64 + CQ_ENTRIES as u64 * 16 + (UDP_BUFFERS as u64 + TUN_BUFFERS as u64) * 16) + 64 * 1024;

/// The cores to run on: `requested` (each checked against the affinity mask), or every allowed core.
pub fn resolve_cores(requested: Option<&[usize]>) -> Result<Vec<usize>, NodeError> {
    let allowed = allowed_cores().map_err(NodeError::Affinity)?;
    match requested {
        None => Ok(allowed),
        Some(cores) => {
            if let Some(&core) = cores.iter().find(|c| !allowed.contains(c)) {
                return Err(NodeError::CoreUnavailable { core, allowed: format_core_list(&allowed) });
            }
            Ok(cores.to_vec())
        }
    }
}

/// Attaches the reuseport program that spreads DATA over the shards (the
/// sockets were bound in shard order, so the group's index i is shard i).
/// Failing is not fatal: the kernel's 4-tuple hash still works.
fn steer_receives(config: &Config, sockets: &[std::os::fd::OwnedFd]) {
    use std::os::fd::AsFd;
    let Some(first) = sockets.first() else { return };
    if !config.steer {
        info!(shards = sockets.len(), "receive steering off (--no-steer): the kernel's hash picks the shard");
        return;
    }
    match steer::attach(first.as_fd(), sockets.len()) {
        Ok(Steering::Attached) => info!(shards = sockets.len(), "receive steering attached"),
        Ok(Steering::OneShard) => info!("receive steering not needed (one shard)"),
        Err(e) => tracing::warn!(
            shards = sockets.len(),
            "receive steering not attached ({e}): each peer's traffic stays on one shard"
        ),
    }
}

/// A running dataplane.
#[derive(Debug)]
pub struct Node {
    shutdown: Arc<AtomicBool>,
    shards: Vec<(usize, JoinHandle<io::Result<()>>)>,
    tun_name: Option<String>,
    _shm: ShmDir,
}

impl Node {
    /// Checks the machine, opens everything and starts one shard per core,
    /// each with the engine `make_engine(shard_index)`.
    pub fn start<E, F>(config: &Config, mut make_engine: F) -> Result<Node, NodeError>
    where
        E: Engine + Send + 'static,
        F: FnMut(usize) -> E,
    {
        let cores = resolve_cores(config.cores.as_deref())?;
        privileges::check(config.tun.is_some(), MEMLOCK_PER_SHARD * cores.len() as u64)?;
        if !privileges::has_net_admin() {
            tracing::warn!("no CAP_NET_ADMIN: socket buffers will be capped by net.core.rmem_max/wmem_max");
        }
        let shm = ShmDir::open(&config.shm_dir)?;
        probe_port_free(config.port)?;
        let mut sockets = Vec::with_capacity(cores.len());
        let mut udp_offload = None::<UdpOffload>;
        for _ in &cores {
            let fd = bind_shard_socket(config.port)?;
            let granted = enable_offloads(&fd, config.offload);
            // Every shard runs with what all of them got.
            let all = udp_offload.unwrap_or(granted);
            udp_offload = Some(UdpOffload { gso: all.gso && granted.gso, gro: all.gro && granted.gro });
            sockets.push(fd);
        }
        let udp_offload = udp_offload.unwrap_or_default();
        steer_receives(config, &sockets);
        let mut tun = match &config.tun {
            // Super-packets from the TUN only pay off when they can leave as GSO sends.
            Some(t) => Some(TunDevice::create(t, cores.len(), config.offload && udp_offload.gso)?),
            None => None,
        };
        let offload = Offloads { tun: tun.as_ref().map(TunDevice::offload).unwrap_or_default(), udp: udp_offload };
        info!(
            asked = config.offload,
            tun_vnet_hdr = offload.tun.vnet_hdr,
            tun_tso = offload.tun.tso,
            tun_uso = offload.tun.uso,
            udp_gso = offload.udp.gso,
            udp_gro = offload.udp.gro,
            "offloads"
        );
        let tun_name = tun.as_ref().map(|t| t.name().to_string());
        let mut queues = tun.as_mut().map(|t| t.take_queues()).unwrap_or_default().into_iter();
        let mtu = config.tun.as_ref().map_or(1400, |t| t.mtu as usize);

        let shutdown = Arc::new(AtomicBool::new(false));
        let (ready_tx, ready_rx) = mpsc::channel::<Result<usize, NodeError>>();
        let mut node = Node { shutdown: shutdown.clone(), shards: Vec::new(), tun_name, _shm: shm };
        for (index, (core, udp)) in cores.iter().copied().zip(sockets).enumerate() {
            let punt =
                PuntSocket::bind(node._shm.path(), index).map_err(|source| NodeError::Punt { shard: index, source })?;
            let counters = CountersMap::create(node._shm.path(), index)?;
            let transit_file = Some(crate::engine::transit::transit_path(node._shm.path(), index));
            let parts = ShardParts {
                index,
                udp,
                tun: queues.next(),
                punt: Some(punt),
                counters,
                transit_file,
                mtu,
                offload,
                busy_poll: config.busy_poll,
            };
            let engine = make_engine(index);
            let (ready, stop) = (ready_tx.clone(), shutdown.clone());
            let handle = std::thread::Builder::new()
                .name(format!("shard-{index}"))
                .spawn(move || shard_main(index, core, parts, engine, &ready, &stop))
                .map_err(|source| NodeError::ShardStart { shard: index, core, what: "spawn", source })?;
            node.shards.push((index, handle));
        }
        drop(ready_tx);
        for _ in 0..node.shards.len() {
            match ready_rx.recv_timeout(SHARD_START_TIMEOUT) {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => {
                    let _ = node.stop();
                    return Err(e);
                }
                Err(_) => {
                    let _ = node.stop();
                    return Err(NodeError::ShardStart {
                        shard: usize::MAX,
                        core: usize::MAX,
                        what: "start-up",
                        source: io::Error::from(io::ErrorKind::TimedOut),
                    });
                }
            }
        }
        info!(
            shards = node.shards.len(),
            cores = %format_core_list(&cores),
            port = config.port,
            tun = node.tun_name.as_deref().unwrap_or("none (relay only)"),
            busy_poll_us = config.busy_poll.as_micros(),
            "dataplane running"
        );
        Ok(node)
    }

    /// The flag that stops every shard.
    pub fn shutdown_flag(&self) -> Arc<AtomicBool> {
        self.shutdown.clone()
    }

    /// Waits for SIGINT/SIGTERM (which the caller blocked before [`Node::start`])
    /// or for a shard to stop on its own.
    pub fn run_until_signal(&self) {
        loop {
            if let Some(sig) = wait_shutdown_signal(Duration::from_millis(200)) {
                info!(signal = sig, "shutting down");
                return;
            }
            if self.shutdown.load(Ordering::Relaxed) || self.shards.iter().any(|(_, h)| h.is_finished()) {
                return;
            }
        }
    }

    /// Stops every shard and releases everything; returns the first shard failure.
    pub fn stop(mut self) -> Result<(), NodeError> {
        self.shutdown.store(true, Ordering::Relaxed);
        let mut first = None;
        for (index, handle) in self.shards.drain(..) {
            let result = match handle.join() {
                Ok(Ok(())) => Ok(()),
                Ok(Err(source)) => Err(NodeError::ShardFailed { shard: index, source }),
                Err(_) => Err(NodeError::ShardPanicked(index)),
            };
            if let Err(e) = result {
                error!(shard = index, "{e}");
                first.get_or_insert(e);
            }
        }
        if let Some(name) = &self.tun_name {
            info!(tun = %name, "TUN queues closed; the kernel removes the device");
        }
        first.map_or(Ok(()), Err)
    }
}

impl Drop for Node {
    /// A node dropped without [`Node::stop`] (an early return) still stops its shards.
    fn drop(&mut self) {
        self.shutdown.store(true, Ordering::Relaxed);
        for (_, handle) in self.shards.drain(..) {
            let _ = handle.join();
        }
    }
}

fn shard_main<E: Engine>(
    index: usize,
    core: usize,
    parts: ShardParts,
    engine: E,
    ready: &mpsc::Sender<Result<usize, NodeError>>,
    shutdown: &AtomicBool,
) -> io::Result<()> {
    let fail = |what: &'static str, source: io::Error| {
        let kind = source.kind();
        let raw = source.raw_os_error();
        let _ = ready.send(Err(NodeError::ShardStart { shard: index, core, what, source }));
        raw.map_or_else(|| io::Error::from(kind), io::Error::from_raw_os_error)
    };
    if let Err(e) = pin_current_thread(core) {
        return Err(fail("sched_setaffinity", e));
    }
    let mut shard = match Shard::new(parts, engine) {
        Ok(s) => s,
        Err(e) => return Err(fail("io_uring and buffer ring setup", e)),
    };
    let _ = ready.send(Ok(index));
    let result = shard.run(shutdown);
    if let Err(e) = &result {
        error!(shard = index, "shard loop failed: {e}");
        shutdown.store(true, Ordering::Relaxed);
    }
    result
}
