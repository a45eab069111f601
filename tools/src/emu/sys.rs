//! The few system calls the relay needs that std does not offer:
//! socket addresses as `sockaddr_storage`, `recvmmsg`/`sendmmsg` batches,
//! `ppoll` with a nanosecond timeout, and large socket buffers.

use std::io;
use std::mem::size_of;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::RawFd;
use std::time::Duration;

/// Datagrams per `recvmmsg`/`sendmmsg` call.
pub const BATCH: usize = 64;

/// An all-zero socket address: the family is `AF_UNSPEC`.
pub fn empty_sockaddr() -> libc::sockaddr_storage {
    // Safety: sockaddr_storage is plain old data; all-zero is a valid value.
    unsafe { std::mem::zeroed() }
}

/// Writes `addr` into `out`; returns its length.
pub fn encode_sockaddr(addr: &SocketAddr, out: &mut libc::sockaddr_storage) -> libc::socklen_t {
    match addr {
        SocketAddr::V4(a) => {
            let sin = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: a.port().to_be(),
                sin_addr: libc::in_addr { s_addr: u32::from_ne_bytes(a.ip().octets()) },
                sin_zero: [0; 8],
            };
            // Safety: sockaddr_storage is larger than sockaddr_in and aligned for it.
            unsafe { std::ptr::write((out as *mut libc::sockaddr_storage).cast::<libc::sockaddr_in>(), sin) };
            size_of::<libc::sockaddr_in>() as libc::socklen_t
        }
        SocketAddr::V6(a) => {
            let sin6 = libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as libc::sa_family_t,
                sin6_port: a.port().to_be(),
                sin6_flowinfo: a.flowinfo().to_be(),
                sin6_addr: libc::in6_addr { s6_addr: a.ip().octets() },
                sin6_scope_id: a.scope_id(),
            };
            // Safety: sockaddr_storage is larger than sockaddr_in6 and aligned for it.
            unsafe { std::ptr::write((out as *mut libc::sockaddr_storage).cast::<libc::sockaddr_in6>(), sin6) };
            size_of::<libc::sockaddr_in6>() as libc::socklen_t
        }
    }
}

/// Reads a socket address the kernel wrote; `None` for other families.
pub fn decode_sockaddr(s: &libc::sockaddr_storage, len: libc::socklen_t) -> Option<SocketAddr> {
    let len = len as usize;
    match i32::from(s.ss_family) {
        libc::AF_INET if len >= size_of::<libc::sockaddr_in>() => {
            // Safety: the family and length say the storage holds a sockaddr_in.
            let sin = unsafe { &*(s as *const libc::sockaddr_storage).cast::<libc::sockaddr_in>() };
            let ip = Ipv4Addr::from(sin.sin_addr.s_addr.to_ne_bytes());
            Some(SocketAddr::V4(SocketAddrV4::new(ip, u16::from_be(sin.sin_port))))
        }
        libc::AF_INET6 if len >= size_of::<libc::sockaddr_in6>() => {
            // Safety: the family and length say the storage holds a sockaddr_in6.
            let sin6 = unsafe { &*(s as *const libc::sockaddr_storage).cast::<libc::sockaddr_in6>() };
            let ip = Ipv6Addr::from(sin6.sin6_addr.s6_addr);
            let port = u16::from_be(sin6.sin6_port);
            Some(SocketAddr::V6(SocketAddrV6::new(ip, port, u32::from_be(sin6.sin6_flowinfo), sin6.sin6_scope_id)))
        }
        _ => None,
    }
}

/// Asks for `bytes` of receive and send buffer: forced where allowed
/// (CAP_NET_ADMIN, as in the lab's namespaces), else up to the sysctl cap.
pub fn set_buffers(fd: RawFd, bytes: i32) {
    for (force, plain) in [(libc::SO_RCVBUFFORCE, libc::SO_RCVBUF), (libc::SO_SNDBUFFORCE, libc::SO_SNDBUF)] {
        if setsockopt_int(fd, force, bytes).is_err() {
            // Best effort: the kernel's default still works, only with
            // less room for bursts.
            let _ = setsockopt_int(fd, plain, bytes);
        }
    }
}

fn setsockopt_int(fd: RawFd, opt: libc::c_int, value: i32) -> io::Result<()> {
    // Safety: the pointer and length describe a live c_int.
    let rc = unsafe {
        libc::setsockopt(fd, libc::SOL_SOCKET, opt, (&value as *const i32).cast(), size_of::<i32>() as libc::socklen_t)
    };
    if rc == 0 { Ok(()) } else { Err(io::Error::last_os_error()) }
}

/// Waits until `fd` is readable (and, with `want_write`, `out` is
/// writable) or `timeout` passes. Returns (readable, writable).
pub fn wait(fd: RawFd, out: RawFd, want_write: bool, timeout: Duration) -> io::Result<(bool, bool)> {
    let mut fds = [
        libc::pollfd { fd, events: libc::POLLIN, revents: 0 },
        libc::pollfd { fd: out, events: libc::POLLOUT, revents: 0 },
    ];
    let nfds: libc::nfds_t = if want_write { 2 } else { 1 };
    let ts = libc::timespec {
        tv_sec: timeout.as_secs().min(i32::MAX as u64) as libc::time_t,
        tv_nsec: libc::c_long::from(timeout.subsec_nanos() as i32),
    };
    // Safety: fds has at least nfds entries, ts is a live timespec, and a
    // null signal mask leaves the thread's mask as it is.
    let rc = unsafe { libc::ppoll(fds.as_mut_ptr(), nfds, &ts, std::ptr::null()) };
    if rc < 0 {
        let err = io::Error::last_os_error();
        return if err.kind() == io::ErrorKind::Interrupted { Ok((false, false)) } else { Err(err) };
    }
    let ready = |p: &libc::pollfd| p.revents & (p.events | libc::POLLERR) != 0;
    Ok((ready(&fds[0]), want_write && ready(&fds[1])))
}

/// `recvmmsg` without waiting: fills `hdrs[..n]` (whose iovecs and names
/// the caller has pointed at live buffers); returns how many arrived.
pub fn recv_batch(fd: RawFd, hdrs: &mut [libc::mmsghdr]) -> io::Result<usize> {
    // Safety: every header's iovec and name point at buffers the caller
    // keeps alive and unaliased for this call; the count is the slice's length.
    let rc = unsafe {
        libc::recvmmsg(fd, hdrs.as_mut_ptr(), hdrs.len() as libc::c_uint, libc::MSG_DONTWAIT, std::ptr::null_mut())
    };
    if rc < 0 { Err(io::Error::last_os_error()) } else { Ok(rc as usize) }
}

/// `sendmmsg` without waiting; returns how many left.
pub fn send_batch(fd: RawFd, hdrs: &mut [libc::mmsghdr]) -> io::Result<usize> {
    // Safety: every header's iovec and name point at live buffers the
    // caller keeps for this call; the count is the slice's length.
    let rc = unsafe { libc::sendmmsg(fd, hdrs.as_mut_ptr(), hdrs.len() as libc::c_uint, libc::MSG_DONTWAIT) };
    if rc < 0 { Err(io::Error::last_os_error()) } else { Ok(rc as usize) }
}

/// An empty message header, to be pointed at buffers before each call.
pub fn empty_mmsghdr() -> libc::mmsghdr {
    // Safety: mmsghdr is plain old data (null pointers, zero lengths).
    unsafe { std::mem::zeroed() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn socket_addresses_survive_the_round_trip() {
        for addr in ["127.0.0.1:4000", "[::1]:9651", "[fe80::1%3]:1", "[400::1]:65535"] {
            let addr: SocketAddr = addr.parse().unwrap();
            let mut s = empty_sockaddr();
            let len = encode_sockaddr(&addr, &mut s);
            assert_eq!(decode_sockaddr(&s, len), Some(addr));
        }
        assert_eq!(decode_sockaddr(&empty_sockaddr(), 128), None);
    }
}
