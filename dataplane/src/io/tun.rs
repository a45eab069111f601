//! The multi-queue TUN device: one queue per shard.
//!
//! [`TunDevice::create`] refuses a name that already exists (a second
//! `TUNSETIFF` with `IFF_MULTI_QUEUE` on an existing TUN would silently *join*
//! it), opens one queue per shard with `IFF_TUN | IFF_NO_PI | IFF_MULTI_QUEUE`,
//! then configures the interface with `ip` (MTU, link up, the node's address
//! with prefix length 64, and the route for 400::/7). The device is not
//! persistent: when the last queue is closed the kernel removes it, with its
//! address and route, so dropping the [`TunDevice`] (or the process dying)
//! cleans up.
//!
//! Offloads: asked for (`offload: true`), every queue is opened with
//! `IFF_VNET_HDR` and the device gets `TUNSETOFFLOAD` with checksum, TSO4/6
//! and, where the kernel knows them, USO4/6; reads then return super-packets
//! of up to 64 KiB and every read and write carries a `virtio_net_hdr`
//! (`crate::offload::vnet`). If the kernel refuses `TUNSETOFFLOAD`, the
//! device is recreated without `IFF_VNET_HDR` and runs packet by packet;
//! [`TunDevice::offload`] says what is in use.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;
use std::process::Command;

use thiserror::Error;

use super::sys::cvt;
use crate::config::TunConfig;

/// Packets the kernel queues for each TUN queue before dropping. The default
/// (500) overflows whenever a shard is descheduled for a moment under load,
/// which TCP sees as loss: measured on two oversubscribed cores, 500 cost
/// thousands of retransmits per 5 s stream and 2000 none.
pub const TUN_TX_QUEUE_LEN: u32 = 2000;

/// The overlay range routed into the TUN.
pub const OVERLAY_ROUTE: &str = "400::/7";

/// Why the TUN cannot be set up.
#[derive(Debug, Error)]
pub enum TunError {
    /// An interface of that name exists.
    #[error("interface {0:?} already exists (another node or program uses that name); pick another --tun-name")]
    NameInUse(String),
    /// /dev/net/tun could not be opened.
    #[error("cannot open /dev/net/tun: {0} (is the tun module loaded, and does the process have CAP_NET_ADMIN?)")]
    Open(io::Error),
    /// TUNSETIFF failed.
    #[error("cannot create TUN queue {queue} of {name:?}: {source}")]
    SetIff {
        /// Interface name.
        name: String,
        /// Queue index.
        queue: usize,
        /// The error.
        source: io::Error,
    },
    /// An `ip` command failed.
    #[error("`ip {args}` failed: {detail}")]
    Ip {
        /// The arguments.
        args: String,
        /// Its stderr or the spawn error.
        detail: String,
    },
}

/// An open multi-queue TUN device.
#[derive(Debug)]
pub struct TunDevice {
    name: String,
    queues: Vec<OwnedFd>,
    offload: TunOffload,
}

/// The offloads a TUN device runs with.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TunOffload {
    /// Every read and write carries a `virtio_net_hdr`.
    pub vnet_hdr: bool,
    /// Reads may be TCP super-packets (TSO4/6, with checksum offload).
    pub tso: bool,
    /// Reads may be UDP super-packets (USO4/6).
    pub uso: bool,
}

#[repr(C)]
struct IfReq {
    name: [u8; libc::IFNAMSIZ],
    flags: libc::c_short,
    _pad: [u8; 22],
}

fn open_queue(name: &str, queue: usize, vnet_hdr: bool) -> Result<OwnedFd, TunError> {
    // Safety: open(2) with a NUL-terminated literal path; the result is checked.
    let fd = cvt(unsafe { libc::open(c"/dev/net/tun".as_ptr(), libc::O_RDWR | libc::O_CLOEXEC | libc::O_NONBLOCK) })
        .map_err(TunError::Open)?;
    // Safety: `fd` was just returned by open(2) and is owned by nobody else.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let mut req = IfReq { name: [0; libc::IFNAMSIZ], flags: 0, _pad: [0; 22] };
    // The name was checked to be at most IFNAMSIZ - 1 bytes, so a NUL remains.
    req.name[..name.len()].copy_from_slice(name.as_bytes());
    let vnet = if vnet_hdr { libc::IFF_VNET_HDR } else { 0 };
    req.flags = (libc::IFF_TUN | libc::IFF_NO_PI | libc::IFF_MULTI_QUEUE | vnet) as libc::c_short;
    // Safety: TUNSETIFF reads and writes a struct ifreq; `req` has its layout (16-byte name, flags, padding to 40 bytes).
    cvt(unsafe { libc::ioctl(fd.as_raw_fd(), libc::TUNSETIFF, &mut req as *mut IfReq) })
        .map_err(|source| TunError::SetIff { name: name.to_string(), queue, source })?;
    Ok(fd)
}

/// Asks for checksum offload and TSO, with USO if the kernel knows it;
/// returns what was accepted (nothing: `TUNSETOFFLOAD` refused both).
fn set_offload(fd: &OwnedFd) -> TunOffload {
    let base = libc::TUN_F_CSUM | libc::TUN_F_TSO4 | libc::TUN_F_TSO6;
    for (flags, uso) in [(base | libc::TUN_F_USO4 | libc::TUN_F_USO6, true), (base, false)] {
        // Safety: TUNSETOFFLOAD takes its flags by value; the fd is an open TUN queue.
        if unsafe { libc::ioctl(fd.as_raw_fd(), libc::TUNSETOFFLOAD, libc::c_ulong::from(flags)) } == 0 {
            return TunOffload { vnet_hdr: true, tso: true, uso };
        }
    }
    TunOffload::default()
}

fn ip(args: &[&str]) -> Result<(), TunError> {
    let joined = args.join(" ");
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| TunError::Ip { args: joined.clone(), detail: e.to_string() })?;
    if out.status.success() {
        Ok(())
    } else {
        Err(TunError::Ip { args: joined, detail: String::from_utf8_lossy(&out.stderr).trim().to_string() })
    }
}

/// Whether an interface of this name exists in the current namespace.
pub fn interface_exists(name: &str) -> bool {
    Path::new("/sys/class/net").join(name).exists()
}

impl TunDevice {
    /// Creates the device with `queues` queues and configures it, with
    /// offloads if `offload` and the kernel accepts them (see the module docs).
    pub fn create(config: &TunConfig, queues: usize, offload: bool) -> Result<TunDevice, TunError> {
        if interface_exists(&config.name) {
            return Err(TunError::NameInUse(config.name.clone()));
        }
        let mut fds = Vec::with_capacity(queues);
        let mut granted = TunOffload::default();
        if offload {
            let first = open_queue(&config.name, 0, true)?;
            granted = set_offload(&first);
            if granted.tso {
                fds.push(first);
            } else {
                tracing::warn!(tun = %config.name, "TUNSETOFFLOAD refused: the TUN runs without offloads");
                // Closing the only queue removes the device; it is recreated below without IFF_VNET_HDR.
                drop(first);
            }
        }
        for q in fds.len()..queues.max(1) {
            fds.push(open_queue(&config.name, q, granted.vnet_hdr)?);
        }
        let dev = TunDevice { name: config.name.clone(), queues: fds, offload: granted };
        let name = dev.name.as_str();
        let mtu = config.mtu.to_string();
        let addr = format!("{}/64", config.address);
        ip(&["link", "set", "dev", name, "mtu", &mtu, "txqueuelen", &TUN_TX_QUEUE_LEN.to_string()])?;
        ip(&["-6", "addr", "add", &addr, "dev", name, "nodad"])?;
        ip(&["link", "set", "dev", name, "up"])?;
        ip(&["-6", "route", "replace", OVERLAY_ROUTE, "dev", name, "src", &config.address.to_string()])?;
        Ok(dev)
    }

    /// The offloads in use.
    pub fn offload(&self) -> TunOffload {
        self.offload
    }

    /// The interface name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Takes the queues out, one per shard; the device goes away when the last is closed.
    pub fn take_queues(&mut self) -> Vec<OwnedFd> {
        std::mem::take(&mut self.queues)
    }
}
