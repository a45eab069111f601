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

/// `SOL_UDP`.
pub(crate) const SOL_UDP: i32 = 17;
/// `UDP_SEGMENT`: the GSO segment size (socket option and cmsg).
pub(crate) const UDP_SEGMENT: i32 = 103;
/// `UDP_GRO`: deliver GRO batches, with the segment size in a cmsg.
pub(crate) const UDP_GRO: i32 = 104;
/// `CMSG_SPACE(sizeof(int))` / `CMSG_SPACE(sizeof(u16))` on 64-bit Linux: header 16, data padded to 8.
pub(crate) const CMSG_INT_SPACE: usize = 24;
const CMSG_HEADER_LEN: usize = std::mem::size_of::<libc::cmsghdr>();

/// The segment size of a `UDP_GRO` control message in `control` (the cmsg
/// area a receive filled), or `None` when there is none.
pub(crate) fn gro_segment_size(control: &[u8]) -> Option<usize> {
    let mut at = 0;
    while let Some(h) = control.get(at..at + CMSG_HEADER_LEN) {
        let len = usize::from_ne_bytes(h[..8].try_into().ok()?);
        let level = i32::from_ne_bytes(h[8..12].try_into().ok()?);
        let kind = i32::from_ne_bytes(h[12..16].try_into().ok()?);
        if len < CMSG_HEADER_LEN {
            return None;
        }
        if level == SOL_UDP && kind == UDP_GRO {
            let v = control.get(at + CMSG_HEADER_LEN..at + CMSG_HEADER_LEN + 4)?;
            let size = i32::from_ne_bytes(v.try_into().ok()?);
            return usize::try_from(size).ok().filter(|s| *s > 0);
        }
        at = at.checked_add(len.next_multiple_of(8))?;
    }
    None
}

/// Writes a `UDP_SEGMENT` control message of `size` into `out`.
pub(crate) fn emit_segment_cmsg(out: &mut [u8; CMSG_INT_SPACE], size: u16) {
    out.fill(0);
    out[..8].copy_from_slice(&(CMSG_HEADER_LEN + 2).to_ne_bytes());
    out[8..12].copy_from_slice(&SOL_UDP.to_ne_bytes());
    out[12..16].copy_from_slice(&UDP_SEGMENT.to_ne_bytes());
    out[16..18].copy_from_slice(&size.to_ne_bytes());
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
    fn a_gro_control_message_gives_its_segment_size_and_others_are_skipped() {
        let mut control = vec![0u8; 48];
        control[..8].copy_from_slice(&20usize.to_ne_bytes());
        control[8..12].copy_from_slice(&libc::SOL_IP.to_ne_bytes());
        control[24..32].copy_from_slice(&20usize.to_ne_bytes());
        control[32..36].copy_from_slice(&SOL_UDP.to_ne_bytes());
        control[36..40].copy_from_slice(&UDP_GRO.to_ne_bytes());
        control[40..44].copy_from_slice(&1444i32.to_ne_bytes());
        assert_eq!(gro_segment_size(&control), Some(1444));
        assert_eq!(gro_segment_size(&control[..24]), None);
        assert_eq!(gro_segment_size(&control[..42]), None);
        assert_eq!(gro_segment_size(&[0; 16]), None, "a zero length must not loop");
        assert_eq!(gro_segment_size(&[]), None);
        let mut seg = [0u8; CMSG_INT_SPACE];
        emit_segment_cmsg(&mut seg, 1444);
        assert_eq!(usize::from_ne_bytes(seg[..8].try_into().unwrap()), 18);
        assert_eq!(u16::from_ne_bytes([seg[16], seg[17]]), 1444);
    }

    #[test]
    fn short_or_foreign_names_are_refused() {
        assert_eq!(from_sockaddr_bytes(&[0; 10]), None);
        assert_eq!(from_sockaddr_bytes(&[0; 28]), None);
    }
}
