//! The punt channel between the shards and the control daemon.
//!
//! Each shard binds a Unix *datagram* socket `punt-<n>.sock` in the shm
//! directory. It sends to the daemon's socket `control.sock` (same directory):
//! control packets received on the underlay and "no route" notices; the daemon
//! sends to a shard's socket the datagrams it wants sent from the node's port
//! (hellos, updates, handshakes), which the shard injects on its UDP socket.
//!
//! Why a datagram socket rather than a shared-memory ring: punted traffic is
//! control traffic (a few hundred packets per second per link, not the data
//! path), so a syscall per message costs nothing that matters, while the socket
//! gives for free what a ring would need code for: message boundaries, a wake-up
//! for the daemon's event loop (it is just another fd), back-pressure that
//! never blocks the shard (`MSG_DONTWAIT`: a full queue is a counted drop),
//! and no shared state to corrupt if either side dies. While no daemon
//! listens, a shard counts punts as unavailable for `PUNT_RETRY` (100 ms)
//! after each failed send instead of failing one syscall per packet. Sends go out with
//! `sendmsg` and two iovecs, so the packet is not copied in user space.
//!
//! Every message starts with a 24-byte header:
//! ```text
//!  0       1       2               4                              20              22      24
//! +-------+-------+---------------+------------------------------+---------------+-------+
//! | kind  |   0   |  port (BE)    |  IPv6 address (IPv4 mapped)  | shard (BE)    |   0   |
//! +-------+-------+---------------+------------------------------+---------------+-------+
//! ```
//! `kind` 1: control packet from the underlay, the endpoint is its source;
//! 2: no route, the endpoint is zero and the payload is the overlay packet;
//! 4: no session, the endpoint is zero and the payload is the overlay packet
//! (the daemon starts an end-to-end handshake with its destination);
//! 3 (daemon to shard): inject, the endpoint is the destination. The payload
//! (the datagram or packet) follows the header.

use std::io;
use std::net::{Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use thiserror::Error;

use super::sys::cvt;
use crate::batch::PuntKind;

/// Length of the punt header.
pub const PUNT_HEADER_LEN: usize = 24;
/// Kind byte of an inject message (daemon to shard).
pub const KIND_INJECT: u8 = 3;
/// Name of the daemon's socket in the shm directory.
pub const CONTROL_SOCKET: &str = "control.sock";

/// Path of shard `index`'s punt socket.
pub fn punt_path(dir: &Path, index: usize) -> PathBuf {
    dir.join(format!("punt-{index}.sock"))
}

/// Builds a punt header.
pub fn encode_header(kind: u8, shard: u16, endpoint: Option<SocketAddr>) -> [u8; PUNT_HEADER_LEN] {
    let mut h = [0u8; PUNT_HEADER_LEN];
    h[0] = kind;
    if let Some(ep) = endpoint {
        let ip = match ep {
            SocketAddr::V4(a) => a.ip().to_ipv6_mapped(),
            SocketAddr::V6(a) => *a.ip(),
        };
        h[2..4].copy_from_slice(&ep.port().to_be_bytes());
        h[4..20].copy_from_slice(&ip.octets());
    }
    h[20..22].copy_from_slice(&shard.to_be_bytes());
    h
}

/// A parsed punt header: kind, endpoint (IPv4-mapped shown as IPv4), shard.
pub fn decode_header(msg: &[u8]) -> Option<(u8, SocketAddr, u16)> {
    let h = msg.get(..PUNT_HEADER_LEN)?;
    let port = u16::from_be_bytes([h[2], h[3]]);
    let ip = Ipv6Addr::from(<[u8; 16]>::try_from(&h[4..20]).ok()?);
    let endpoint = match ip.to_ipv4_mapped() {
        Some(v4) => SocketAddr::V4(SocketAddrV4::new(v4, port)),
        None => SocketAddr::V6(SocketAddrV6::new(ip, port, 0, 0)),
    };
    Some((h[0], endpoint, u16::from_be_bytes([h[20], h[21]])))
}

/// Why a punt was not delivered (each is a counted drop).
#[derive(Debug, Error, Clone, Copy, PartialEq, Eq)]
pub enum PuntSendError {
    /// No daemon socket, or nobody reads it.
    #[error("no control daemon on the punt channel")]
    Unavailable,
    /// The daemon's queue is full.
    #[error("punt channel full")]
    Full,
}

/// A shard's end of the punt channel.
#[derive(Debug)]
pub struct PuntSocket {
    fd: OwnedFd,
    path: PathBuf,
    daemon: libc::sockaddr_un,
    daemon_len: libc::socklen_t,
    shard: u16,
}

fn sockaddr_un(path: &Path) -> io::Result<(libc::sockaddr_un, libc::socklen_t)> {
    // Safety: sockaddr_un is plain old data; all zeroes is a valid (empty) value.
    let mut sa: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    sa.sun_family = libc::AF_UNIX as libc::sa_family_t;
    let bytes = path.as_os_str().as_bytes();
    if bytes.len() >= sa.sun_path.len() {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "socket path too long"));
    }
    for (d, s) in sa.sun_path.iter_mut().zip(bytes) {
        *d = *s as libc::c_char;
    }
    let len = std::mem::size_of::<libc::sa_family_t>() + bytes.len() + 1;
    Ok((sa, len as libc::socklen_t))
}

impl PuntSocket {
    /// Binds shard `index`'s socket (0600, nonblocking) in `dir`, replacing a stale one.
    pub fn bind(dir: &Path, index: usize) -> io::Result<PuntSocket> {
        let path = punt_path(dir, index);
        let (sa, len) = sockaddr_un(&path)?;
        let (daemon, daemon_len) = sockaddr_un(&dir.join(CONTROL_SOCKET))?;
        // Safety: plain socket(2); the result is checked.
        let fd = cvt(unsafe {
            libc::socket(libc::AF_UNIX, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK, 0)
        })?;
        // Safety: `fd` was just returned by socket(2) and is owned by nobody else.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        let _ = std::fs::remove_file(&path);
        // Safety: `sa` is a live sockaddr_un and `len` covers the family and the NUL-terminated path.
        cvt(unsafe { libc::bind(fd.as_raw_fd(), (&sa as *const libc::sockaddr_un).cast(), len) })?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
        let shard = u16::try_from(index).unwrap_or(u16::MAX);
        Ok(PuntSocket { fd, path, daemon, daemon_len, shard })
    }

    /// The socket's fd, to poll in the ring.
    pub fn raw_fd(&self) -> i32 {
        self.fd.as_raw_fd()
    }

    /// Sends `payload` to the daemon with a header of `kind`, without blocking.
    pub fn send(&self, kind: PuntKind, endpoint: Option<SocketAddr>, payload: &[u8]) -> Result<(), PuntSendError> {
        let header = encode_header(kind as u8, self.shard, endpoint);
        let mut iov = [
            libc::iovec { iov_base: header.as_ptr() as *mut libc::c_void, iov_len: header.len() },
            libc::iovec { iov_base: payload.as_ptr() as *mut libc::c_void, iov_len: payload.len() },
        ];
        // Safety: msghdr is plain old data; all zeroes is valid and the used fields are set below.
        let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
        msg.msg_name = (&self.daemon as *const libc::sockaddr_un) as *mut libc::c_void;
        msg.msg_namelen = self.daemon_len;
        msg.msg_iov = iov.as_mut_ptr();
        msg.msg_iovlen = iov.len();
        // Safety: every pointer in `msg` refers to a live local or field for the duration of the call;
        // the kernel only reads them.
        let ret = unsafe { libc::sendmsg(self.fd.as_raw_fd(), &msg, libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL) };
        if ret >= 0 {
            return Ok(());
        }
        match io::Error::last_os_error().raw_os_error() {
            Some(libc::EAGAIN) | Some(libc::ENOBUFS) => Err(PuntSendError::Full),
            _ => Err(PuntSendError::Unavailable),
        }
    }

    /// Receives one message into `buf` without blocking: `Ok(None)` when none is
    /// waiting, else its full length (which may exceed `buf.len()`: truncated).
    pub fn recv(&self, buf: &mut [u8]) -> io::Result<Option<usize>> {
        // Safety: `buf` is live and writable for its length.
        let ret = unsafe {
            libc::recv(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), libc::MSG_DONTWAIT | libc::MSG_TRUNC)
        };
        if ret >= 0 {
            return Ok(Some(ret as usize));
        }
        let e = io::Error::last_os_error();
        if e.raw_os_error() == Some(libc::EAGAIN) { Ok(None) } else { Err(e) }
    }
}

impl Drop for PuntSocket {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixDatagram;

    #[test]
    fn headers_round_trip_for_both_families() {
        for ep in ["192.0.2.1:9651", "[2001:db8::1]:7"] {
            let ep: SocketAddr = ep.parse().unwrap();
            let h = encode_header(KIND_INJECT, 3, Some(ep));
            assert_eq!(decode_header(&h), Some((KIND_INJECT, ep, 3)));
        }
        assert_eq!(decode_header(&[0; 23]), None);
    }

    #[test]
    fn punts_reach_the_daemon_and_injects_reach_the_shard() {
        let dir = std::env::temp_dir().join(format!("mycelium-punt-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let shard = PuntSocket::bind(&dir, 0).unwrap();
        assert_eq!(shard.send(PuntKind::NoRoute, None, b"x"), Err(PuntSendError::Unavailable));
        let daemon = UnixDatagram::bind(dir.join(CONTROL_SOCKET)).unwrap();
        let from: SocketAddr = "192.0.2.9:1".parse().unwrap();
        shard.send(PuntKind::ControlFromUnderlay, Some(from), b"hello").unwrap();
        let mut buf = [0u8; 64];
        let n = daemon.recv(&mut buf).unwrap();
        assert_eq!(decode_header(&buf[..n]), Some((1, from, 0)));
        assert_eq!(&buf[PUNT_HEADER_LEN..n], b"hello");
        assert_eq!(shard.recv(&mut buf).unwrap(), None);
        let mut msg = encode_header(KIND_INJECT, 0, Some(from)).to_vec();
        msg.extend_from_slice(b"payload");
        daemon.send_to(&msg, punt_path(&dir, 0)).unwrap();
        assert_eq!(shard.recv(&mut buf[..8]).unwrap(), Some(msg.len()));
        drop(shard);
        assert!(!punt_path(&dir, 0).exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
