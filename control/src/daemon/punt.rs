//! The daemon's end of the punt channel (see `mycelium_dataplane::io::punt`):
//! a Unix datagram socket `control.sock` in the shared-memory directory.
//! Shards send it control packets from the underlay and packets without a
//! route or session; the daemon sends shards the datagrams it wants sent from
//! the node's port ("inject").

use std::io;
use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::time::Duration;

use mycelium_dataplane::io::punt::{CONTROL_SOCKET, KIND_INJECT, PUNT_HEADER_LEN, decode_header, encode_header};

/// What a shard punted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Punted {
    /// A control packet (link handshake, CONTROL, routed handshake for us)
    /// that arrived from `from` on the underlay.
    Control { from: SocketAddr, packet: Vec<u8> },
    /// A packet from our TUN with no route to its destination.
    NoRoute { packet: Vec<u8> },
    /// A packet from our TUN with a route but no session.
    NoSession { packet: Vec<u8> },
}

/// Kinds the shards send (see the dataplane's `PuntKind`).
const KIND_CONTROL: u8 = 1;
const KIND_NO_ROUTE: u8 = 2;
const KIND_NO_SESSION: u8 = 4;

/// The daemon's punt socket.
#[derive(Debug)]
pub struct PuntChannel {
    socket: UnixDatagram,
    dir: PathBuf,
}

impl PuntChannel {
    /// Binds `control.sock` in `dir` (0600), replacing a stale one.
    pub fn bind(dir: &Path) -> io::Result<Self> {
        let path = dir.join(CONTROL_SOCKET);
        match std::fs::remove_file(&path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        let socket = UnixDatagram::bind(&path)?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
        Ok(PuntChannel { socket, dir: dir.to_path_buf() })
    }

    /// A second handle on the same socket (one thread receives, another sends).
    pub fn try_clone(&self) -> io::Result<Self> {
        Ok(PuntChannel { socket: self.socket.try_clone()?, dir: self.dir.clone() })
    }

    /// Waits up to `timeout` for one punted message. `Ok(None)` on timeout
    /// or on a message that does not parse (counted by the caller as none).
    pub fn recv(&self, buf: &mut [u8], timeout: Duration) -> io::Result<Option<Punted>> {
        self.socket.set_read_timeout(Some(timeout.max(Duration::from_millis(1))))?;
        let n = match self.socket.recv(buf) {
            Ok(n) => n,
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => return Ok(None),
            Err(e) => return Err(e),
        };
        Ok(parse(&buf[..n]))
    }

    /// Asks shard `shard` to send `datagram` to `to` from the node's port.
    /// A shard that is not running (dataplane restarting) is an error the
    /// caller logs; control traffic is retried by its protocols.
    pub fn inject(&self, shard: usize, to: SocketAddr, datagram: &[u8]) -> io::Result<()> {
        let header = encode_header(KIND_INJECT, 0, Some(to));
        let mut msg = Vec::with_capacity(PUNT_HEADER_LEN + datagram.len());
        msg.extend_from_slice(&header);
        msg.extend_from_slice(datagram);
        self.socket.send_to(&msg, mycelium_dataplane::io::punt::punt_path(&self.dir, shard)).map(|_| ())
    }
}

fn parse(msg: &[u8]) -> Option<Punted> {
    let (kind, from, _shard) = decode_header(msg)?;
    let packet = msg.get(PUNT_HEADER_LEN..)?.to_vec();
    match kind {
        KIND_CONTROL => Some(Punted::Control { from, packet }),
        KIND_NO_ROUTE => Some(Punted::NoRoute { packet }),
        KIND_NO_SESSION => Some(Punted::NoSession { packet }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn punted_messages_of_each_kind_parse_and_junk_does_not() {
        let from: SocketAddr = "192.0.2.1:9651".parse().unwrap();
        let mut msg = encode_header(KIND_CONTROL, 1, Some(from)).to_vec();
        msg.extend_from_slice(b"ctl");
        assert_eq!(parse(&msg), Some(Punted::Control { from, packet: b"ctl".to_vec() }));
        let mut msg = encode_header(KIND_NO_SESSION, 0, None).to_vec();
        msg.extend_from_slice(b"pkt");
        assert_eq!(parse(&msg), Some(Punted::NoSession { packet: b"pkt".to_vec() }));
        assert_eq!(parse(&msg[..10]), None);
        let msg = encode_header(99, 0, None);
        assert_eq!(parse(&msg), None);
    }

    #[test]
    fn a_shard_socket_receives_what_the_daemon_injects() {
        let dir = tempfile::tempdir().unwrap();
        let channel = PuntChannel::bind(dir.path()).unwrap();
        let shard = UnixDatagram::bind(mycelium_dataplane::io::punt::punt_path(dir.path(), 0)).unwrap();
        let to: SocketAddr = "[2001:db8::1]:9651".parse().unwrap();
        channel.inject(0, to, b"hello").unwrap();
        let mut buf = [0u8; 64];
        let n = shard.recv(&mut buf).unwrap();
        let (kind, endpoint, _) = decode_header(&buf[..n]).unwrap();
        assert_eq!((kind, endpoint, &buf[PUNT_HEADER_LEN..n]), (KIND_INJECT, to, &b"hello"[..]));
        // And it reads what a shard sends.
        let mut msg = encode_header(KIND_NO_ROUTE, 0, None).to_vec();
        msg.extend_from_slice(b"x");
        shard.send_to(&msg, dir.path().join(CONTROL_SOCKET)).unwrap();
        let got = channel.recv(&mut buf, Duration::from_secs(1)).unwrap();
        assert_eq!(got, Some(Punted::NoRoute { packet: b"x".to_vec() }));
        assert_eq!(channel.recv(&mut buf, Duration::from_millis(10)).unwrap(), None, "timeout is not an error");
    }
}
