//! The node's UDP port: one dual-stack socket per shard, all in one
//! SO_REUSEPORT group.
//!
//! Each shard binds an `AF_INET6` socket to `[::]:port` with `IPV6_V6ONLY=0`,
//! so one socket carries both IPv4 underlay (seen as `::ffff:a.b.c.d`, handed
//! to the engine as plain IPv4) and IPv6 underlay. Which shard receives a
//! datagram is the steering program's choice for DATA ([`super::steer`]) and
//! the kernel's reuseport hash of the underlay 4-tuple for everything else
//! (or for all of it with `--no-steer`). This needs IPv6 enabled in the kernel, which
//! every supported host has; the alternative (one v4 and one v6 socket per
//! shard) would double the multishot receives and the buffer rings for nothing.
//!
//! A second process binding the same port would silently join the group and
//! take a share of the traffic, so [`probe_port_free`] binds the port *without*
//! SO_REUSEPORT first: if anything holds it, that bind fails and start-up stops
//! with a clear error.

use std::io;
use std::os::fd::{AsFd, FromRawFd, OwnedFd};

use thiserror::Error;
use tracing::warn;

use super::sys::{SOL_UDP, UDP_GRO, UDP_SEGMENT, cvt, getsockopt_int, setsockopt_int, to_sockaddr_in6};

/// Receive and send buffer size asked for each shard socket.
pub const SOCKET_BUFFER_BYTES: i32 = 8 << 20;

/// Why the port cannot be used.
#[derive(Debug, Error)]
pub enum SocketError {
    /// Something else already holds the port.
    #[error("UDP port {port} is already in use (another mycelium-dataplane or another program holds it)")]
    PortInUse {
        /// The port.
        port: u16,
    },
    /// Any other socket call failed.
    #[error("UDP port {port}: {what}: {source}")]
    Os {
        /// The port.
        port: u16,
        /// The call that failed.
        what: &'static str,
        /// The error.
        source: io::Error,
    },
}

fn os(port: u16, what: &'static str) -> impl FnOnce(io::Error) -> SocketError {
    move |source| SocketError::Os { port, what, source }
}

fn new_socket(port: u16) -> Result<OwnedFd, SocketError> {
    // Safety: plain socket(2) call; the result is checked before use.
    let fd = cvt(unsafe { libc::socket(libc::AF_INET6, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) })
        .map_err(os(port, "socket(AF_INET6)"))?;
    // Safety: `fd` was just returned by socket(2) and is owned by nobody else.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    setsockopt_int(fd.as_fd(), libc::IPPROTO_IPV6, libc::IPV6_V6ONLY, 0).map_err(os(port, "IPV6_V6ONLY=0"))?;
    Ok(fd)
}

fn bind(fd: &OwnedFd, port: u16) -> io::Result<()> {
    let sa = to_sockaddr_in6(std::net::SocketAddr::from((std::net::Ipv6Addr::UNSPECIFIED, port)));
    // Safety: `sa` is a live sockaddr_in6 and its size is passed.
    cvt(unsafe {
        libc::bind(
            std::os::fd::AsRawFd::as_raw_fd(fd),
            (&sa as *const libc::sockaddr_in6).cast(),
            std::mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t,
        )
    })
    .map(drop)
}

/// Fails with [`SocketError::PortInUse`] if anything holds `port` (UDP, both families).
pub fn probe_port_free(port: u16) -> Result<(), SocketError> {
    let fd = new_socket(port)?;
    match bind(&fd, port) {
        Ok(()) => Ok(()),
        Err(e) if e.raw_os_error() == Some(libc::EADDRINUSE) => Err(SocketError::PortInUse { port }),
        Err(e) => Err(os(port, "bind")(e)),
    }
}

/// Sets a buffer size with the FORCE option (needs CAP_NET_ADMIN), falling
/// back to the plain option (capped by net.core.*mem_max) with a warning.
fn set_buffer(fd: &OwnedFd, port: u16, force: i32, plain: i32, what: &str) -> Result<(), SocketError> {
    if setsockopt_int(fd.as_fd(), libc::SOL_SOCKET, force, SOCKET_BUFFER_BYTES).is_ok() {
        return Ok(());
    }
    setsockopt_int(fd.as_fd(), libc::SOL_SOCKET, plain, SOCKET_BUFFER_BYTES).map_err(os(port, "SO_*BUF"))?;
    let got = getsockopt_int(fd.as_fd(), libc::SOL_SOCKET, plain).unwrap_or(0);
    warn!(
        port,
        asked = SOCKET_BUFFER_BYTES,
        got,
        "{what}FORCE not permitted (no CAP_NET_ADMIN); the kernel capped the socket buffer"
    );
    Ok(())
}

/// A shard's socket: dual-stack, nonblocking, in the port's reuseport group,
/// with large buffers.
pub fn bind_shard_socket(port: u16) -> Result<OwnedFd, SocketError> {
    let fd = new_socket(port)?;
    setsockopt_int(fd.as_fd(), libc::SOL_SOCKET, libc::SO_REUSEPORT, 1).map_err(os(port, "SO_REUSEPORT"))?;
    set_buffer(&fd, port, libc::SO_RCVBUFFORCE, libc::SO_RCVBUF, "SO_RCVBUF")?;
    set_buffer(&fd, port, libc::SO_SNDBUFFORCE, libc::SO_SNDBUF, "SO_SNDBUF")?;
    match bind(&fd, port) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(libc::EADDRINUSE) => return Err(SocketError::PortInUse { port }),
        Err(e) => return Err(os(port, "bind")(e)),
    }
    // Safety: F_SETFL on an fd we own, with flags read from it just before.
    let flags = cvt(unsafe { libc::fcntl(std::os::fd::AsRawFd::as_raw_fd(&fd), libc::F_GETFL) })
        .map_err(os(port, "F_GETFL"))?;
    // Safety: as above.
    cvt(unsafe { libc::fcntl(std::os::fd::AsRawFd::as_raw_fd(&fd), libc::F_SETFL, flags | libc::O_NONBLOCK) })
        .map_err(os(port, "O_NONBLOCK"))?;
    Ok(fd)
}

/// The UDP offloads a shard socket runs with.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct UdpOffload {
    /// Sends may carry a `UDP_SEGMENT` cmsg (GSO).
    pub gso: bool,
    /// Receives deliver GRO batches with a `UDP_GRO` cmsg.
    pub gro: bool,
}

/// Turns on GRO and checks that the kernel knows GSO (`UDP_SEGMENT` is
/// readable); returns what works. Nothing is turned on when `wanted` is false.
pub fn enable_offloads(fd: &OwnedFd, wanted: bool) -> UdpOffload {
    if !wanted {
        return UdpOffload::default();
    }
    let gso = getsockopt_int(fd.as_fd(), SOL_UDP, UDP_SEGMENT).is_ok();
    let gro = setsockopt_int(fd.as_fd(), SOL_UDP, UDP_GRO, 1).is_ok();
    UdpOffload { gso, gro }
}
