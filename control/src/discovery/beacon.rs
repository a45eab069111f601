//! LAN discovery beacons, and the unicast key query built on the same
//! message.
//!
//! ```text
//!  0        1        2        3
//! +--------+--------+--------+--------+
//! |   1    |  0x06  |  'M'   |  'Y'   |   protocol version, packet type BEACON, magic
//! +--------+--------+--------+--------+
//! |  'C'   |  'B'   |version | flags  |   beacon version 1; flags 0x01: query
//! +--------+--------+--------+--------+
//! |  port (u16 BE)  |                 |
//! +--------+--------+                 +
//! |        public key (32 bytes)      |
//! +-----------------------------------+   42
//! ```
//!
//! A node multicasts its beacon every [`BEACON_INTERVAL`] to [`LAN_GROUP`]
//! on its port, with a hop limit of 1 so it never leaves the link; nodes
//! that hear it learn a candidate `(source address, port, key)` to dial.
//! A beacon with the query flag, sent unicast to a static peer whose key
//! the config does not name, asks it to answer with its own beacon.
//!
//! Beacons are signed by nothing: they only say "try a handshake with this
//! key here", and the handshake proves the key. A forged beacon can at worst
//! make us dial a node that does not exist (bounded by the candidate set);
//! a forged answer to a key query makes us peer with the forger, which is
//! trust on first use, the same as any keyless peer config. Name the key in
//! the config (`udp://KEY@HOST:PORT`) to rule that out.
//!
//! A beacon starts like every mesh packet (protocol version, then its
//! packet type, [`PacketType::Beacon`](mycelium_common::wire::PacketType)),
//! so a key query sent to a node's port reaches its daemon: the dataplane
//! punts it like any packet that is not routed.

use std::io;
use std::net::{Ipv6Addr, SocketAddr, SocketAddrV6, UdpSocket};
use std::time::Duration;

use mycelium_common::identity::PublicKey;

/// The packet preamble: protocol version and packet type.
pub const PREAMBLE: [u8; 2] = [mycelium_common::wire::VERSION, mycelium_common::wire::PacketType::Beacon as u8];
/// Beacon magic: "MYCB".
pub const MAGIC: [u8; 4] = *b"MYCB";
/// The beacon format version.
pub const BEACON_VERSION: u8 = 1;
/// Length of a beacon.
pub const BEACON_LEN: usize = 42;
/// The link-local multicast group beacons go to (ff02::/16: link scope).
pub const LAN_GROUP: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0x6d79, 0x6362);
/// How often a node multicasts its beacon.
pub const BEACON_INTERVAL: Duration = Duration::from_secs(10);

const FLAG_QUERY: u8 = 0x01;

/// Why bytes are not a beacon.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BeaconError {
    #[error("not a beacon (length or magic)")]
    NotBeacon,
    #[error("unsupported beacon version {0}")]
    Version(u8),
    #[error("port 0")]
    Port,
}

/// A beacon as plain values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Beacon {
    /// The sender's UDP port (its handshakes go there).
    pub port: u16,
    pub key: PublicKey,
    /// Asks the receiver to answer with its own beacon (unicast).
    pub query: bool,
}

impl Beacon {
    /// Reads a beacon. Unknown flag bits are ignored.
    pub fn parse(bytes: &[u8]) -> Result<Self, BeaconError> {
        let bytes: &[u8; BEACON_LEN] = bytes.try_into().map_err(|_| BeaconError::NotBeacon)?;
        if bytes[..2] != PREAMBLE || bytes[2..6] != MAGIC {
            return Err(BeaconError::NotBeacon);
        }
        if bytes[6] != BEACON_VERSION {
            return Err(BeaconError::Version(bytes[6]));
        }
        let port = u16::from_be_bytes([bytes[8], bytes[9]]);
        if port == 0 {
            return Err(BeaconError::Port);
        }
        let mut key = [0u8; 32];
        key.copy_from_slice(&bytes[10..]);
        Ok(Beacon { port, key: PublicKey::from_bytes(key), query: bytes[7] & FLAG_QUERY != 0 })
    }

    /// Writes the 42 bytes.
    pub fn emit(&self) -> [u8; BEACON_LEN] {
        let mut out = [0u8; BEACON_LEN];
        out[..2].copy_from_slice(&PREAMBLE);
        out[2..6].copy_from_slice(&MAGIC);
        out[6] = BEACON_VERSION;
        out[7] = if self.query { FLAG_QUERY } else { 0 };
        out[8..10].copy_from_slice(&self.port.to_be_bytes());
        out[10..].copy_from_slice(self.key.as_bytes());
        out
    }
}

/// The I/O shell: a UDP socket bound to [`LAN_GROUP`] on the node's port,
/// joined on one interface, sending with hop limit 1 and no loopback.
/// `SO_REUSEPORT` lets it share the port with the dataplane's sockets;
/// being bound to the group address, it receives beacons only.
///
/// Beacons go out from the interface's link-local address unless the
/// socket is opened [with a source](LanSocket::open_from): the receivers
/// dial the beacon's source address, and a link-local one needs a scope id
/// that the dataplane's endpoints do not carry, so the daemon announces from
/// a routable (global or ULA) address of the interface.
#[derive(Debug)]
pub struct LanSocket {
    socket: UdpSocket,
    /// Sends from a routable source, if one was given.
    sender: Option<UdpSocket>,
    group: SocketAddrV6,
}

impl LanSocket {
    /// Opens the socket on interface `ifindex`, announcing from its
    /// link-local address.
    pub fn open(port: u16, ifindex: u32) -> io::Result<Self> {
        Self::open_from(port, ifindex, None)
    }

    /// Opens the socket on interface `ifindex`; beacons are announced from
    /// `source` (an address of that interface) when given.
    pub fn open_from(port: u16, ifindex: u32, source: Option<Ipv6Addr>) -> io::Result<Self> {
        use rustix::net::{AddressFamily, SocketType, bind, socket, sockopt};
        let fd = socket(AddressFamily::INET6, SocketType::DGRAM, None)?;
        sockopt::set_socket_reuseport(&fd, true)?;
        sockopt::set_ipv6_v6only(&fd, true)?;
        let group = SocketAddrV6::new(LAN_GROUP, port, 0, ifindex);
        bind(&fd, &SocketAddr::V6(group))?;
        sockopt::set_ipv6_add_membership(&fd, &LAN_GROUP, ifindex)?;
        sockopt::set_ipv6_multicast_if(&fd, ifindex)?;
        sockopt::set_ipv6_multicast_hops(&fd, 1)?;
        sockopt::set_ipv6_multicast_loop(&fd, false)?;
        let socket = UdpSocket::from(fd);
        socket.set_nonblocking(true)?;
        let sender = match source {
            Some(source) => {
                let sender = UdpSocket::bind(SocketAddrV6::new(source, 0, 0, 0))?;
                sockopt::set_ipv6_multicast_if(&sender, ifindex)?;
                sockopt::set_ipv6_multicast_hops(&sender, 1)?;
                sockopt::set_ipv6_multicast_loop(&sender, false)?;
                sender.set_nonblocking(true)?;
                Some(sender)
            }
            None => None,
        };
        Ok(LanSocket { socket, sender, group })
    }

    /// Multicasts our beacon on the link.
    pub fn announce(&self, beacon: &Beacon) -> io::Result<()> {
        self.sender.as_ref().unwrap_or(&self.socket).send_to(&beacon.emit(), self.group).map(|_| ())
    }

    /// The next beacon heard, if any (non-blocking); non-beacons are skipped.
    pub fn receive(&self) -> io::Result<Option<(SocketAddr, Beacon)>> {
        let mut buf = [0u8; 64];
        loop {
            match self.socket.recv_from(&mut buf) {
                Ok((len, from)) => {
                    if let Ok(beacon) = Beacon::parse(&buf[..len]) {
                        return Ok(Some((from, beacon)));
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(None),
                Err(e) => return Err(e),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn a_beacon_emits_its_vector_and_parses_back() {
        let beacon = Beacon { port: 9651, key: PublicKey::from_bytes([0xab; 32]), query: true };
        let bytes = beacon.emit();
        assert_eq!(&bytes[..10], &[1, 6, b'M', b'Y', b'C', b'B', 1, 1, 0x25, 0xb3]);
        assert_eq!(&bytes[10..], &[0xab; 32]);
        assert_eq!(Beacon::parse(&bytes), Ok(beacon));
        let kind = mycelium_common::wire::classify(&bytes);
        assert_eq!(kind, Ok(mycelium_common::wire::PacketType::Beacon), "punted by the dataplane, not routed");
    }

    #[test]
    fn wrong_length_magic_version_or_port_are_refused() {
        let good = Beacon { port: 1, key: PublicKey::from_bytes([1; 32]), query: false }.emit();
        assert_eq!(Beacon::parse(&good[..41]), Err(BeaconError::NotBeacon));
        assert_eq!(Beacon::parse(&[&good[..], &[0]].concat()), Err(BeaconError::NotBeacon));
        for at in [0, 1, 2] {
            let mut bad = good;
            bad[at] ^= 0x40;
            assert_eq!(Beacon::parse(&bad), Err(BeaconError::NotBeacon), "byte {at}");
        }
        let mut bad = good;
        bad[6] = 2;
        assert_eq!(Beacon::parse(&bad), Err(BeaconError::Version(2)));
        let mut bad = good;
        bad[8..10].fill(0);
        assert_eq!(Beacon::parse(&bad), Err(BeaconError::Port));
        let mut flags = good;
        flags[7] = 0xfe;
        assert_eq!(Beacon::parse(&flags).map(|b| b.query), Ok(false), "unknown flags are ignored");
    }

    #[test]
    fn the_group_is_link_local_multicast() {
        assert!(LAN_GROUP.is_multicast());
        assert_eq!(LAN_GROUP.segments()[0] & 0xff0f, 0xff02);
    }

    proptest! {
        #[test]
        fn any_bytes_parse_or_fail_without_panic(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            if let Ok(beacon) = Beacon::parse(&bytes) {
                prop_assert_eq!(Beacon::parse(&beacon.emit()), Ok(beacon));
            }
        }
    }
}
