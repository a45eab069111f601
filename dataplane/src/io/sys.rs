//! Small wrappers over libc calls shared by the I/O modules.

use std::io;
use std::net::{Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::{AsRawFd, BorrowedFd};

/// Turns a libc return value into an `io::Result`.
pub(crate) fn cvt(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret < 0 { Err(io::Error::last_os_error()) } else { Ok(ret) }
}

/// Sets an integer socket option.
pub(crate) fn setsockopt_int(fd: BorrowedFd<'_>, level: i32, name: i32, value: i32) -> io::Result<()> {
    // Safety: `value` is a live c_int and the length passed is its size; the fd is borrowed, so open.
    cvt(unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            (&value as *const i32).cast(),
            std::mem::size_of::<i32>() as libc::socklen_t,
        )
    })
    .map(drop)
}

/// Reads an integer socket option.
pub(crate) fn getsockopt_int(fd: BorrowedFd<'_>, level: i32, name: i32) -> io::Result<i32> {
    let mut value: i32 = 0;
    let mut len = std::mem::size_of::<i32>() as libc::socklen_t;
    // Safety: `value` and `len` are live and `len` holds the size of `value`.
    cvt(unsafe { libc::getsockopt(fd.as_raw_fd(), level, name, (&mut value as *mut i32).cast(), &mut len) })?;
    Ok(value)
}

/// An endpoint as the `sockaddr_in6` of a dual-stack socket (IPv4 as
/// `::ffff:a.b.c.d`).
pub(crate) fn to_sockaddr_in6(addr: SocketAddr) -> libc::sockaddr_in6 {
    let (ip, port, flowinfo, scope_id) = match addr {
        SocketAddr::V4(a) => (a.ip().to_ipv6_mapped(), a.port(), 0, 0),
        SocketAddr::V6(a) => (*a.ip(), a.port(), a.flowinfo(), a.scope_id()),
    };
    libc::sockaddr_in6 {
        sin6_family: libc::AF_INET6 as libc::sa_family_t,
        sin6_port: port.to_be(),
        sin6_flowinfo: flowinfo,
        sin6_addr: libc::in6_addr { s6_addr: ip.octets() },
        sin6_scope_id: scope_id,
    }
}

/// The endpoint in the raw `sockaddr` bytes a dual-stack socket reported;
/// IPv4-mapped addresses come back as IPv4. `None` for anything else.
pub(crate) fn from_sockaddr_bytes(name: &[u8]) -> Option<SocketAddr> {
    if name.len() < std::mem::size_of::<libc::sockaddr_in6>() {
        return None;
    }
    let family = u16::from_ne_bytes([name[0], name[1]]);
    if family != libc::AF_INET6 as u16 {
        return None;
    }
    let port = u16::from_be_bytes([name[2], name[3]]);
    let flowinfo = u32::from_ne_bytes(name[4..8].try_into().ok()?);
    let ip = Ipv6Addr::from(<[u8; 16]>::try_from(&name[8..24]).ok()?);
    let scope_id = u32::from_ne_bytes(name[24..28].try_into().ok()?);
    Some(match ip.to_ipv4_mapped() {
        Some(v4) => SocketAddr::V4(SocketAddrV4::new(v4, port)),
        None => SocketAddr::V6(SocketAddrV6::new(ip, port, flowinfo, scope_id)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes(sa: &libc::sockaddr_in6) -> Vec<u8> {
        // Safety: a sockaddr_in6 is plain old data of exactly this size.
        unsafe { std::slice::from_raw_parts((sa as *const libc::sockaddr_in6).cast::<u8>(), 28) }.to_vec()
    }

    #[test]
    fn endpoints_round_trip_through_the_dual_stack_form() {
        for s in ["192.0.2.1:9651", "[2001:db8::1]:1", "[::1]:65535", "0.0.0.0:0"] {
            let a: SocketAddr = s.parse().unwrap();
            assert_eq!(from_sockaddr_bytes(&bytes(&to_sockaddr_in6(a))), Some(a), "{s}");
        }
    }

    #[test]
    fn short_or_foreign_names_are_refused() {
        assert_eq!(from_sockaddr_bytes(&[0; 10]), None);
        assert_eq!(from_sockaddr_bytes(&[0; 28]), None);
    }
}
