//! Static peers from the config: `udp://HOST:PORT`, optionally with the
//! peer's public key as `udp://KEY@HOST:PORT`, and the resolver that turns
//! their host names into addresses.
//!
//! HOST is an IPv4 literal, a bracketed IPv6 literal (`[2001:db8::1]`), or
//! a DNS name. Parsing is strict: anything else is refused with an error
//! that says what is wrong. DNS names are re-resolved before every
//! reconnection attempt through a [`Resolver`] (injected, so tests are
//! deterministic; [`SystemResolver`] is the daemon's, and blocks).

use std::fmt;
use std::io;
use std::net::{IpAddr, Ipv6Addr, SocketAddr, ToSocketAddrs};
use std::str::FromStr;

use mycelium_common::identity::PublicKey;

/// Where a static peer is.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Host {
    Ip(IpAddr),
    Dns(String),
}

/// One configured peer.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct StaticPeer {
    pub host: Host,
    pub port: u16,
    /// The key it must answer with, if the config names one; otherwise it
    /// is learnt from the peer (a key query, see [`super::beacon`]).
    pub key: Option<PublicKey>,
}

/// Why a peer string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PeerUrlError {
    #[error("expected udp://HOST:PORT")]
    MissingScheme,
    #[error("scheme {0:?} is not supported: peers are udp://HOST:PORT")]
    Scheme(String),
    #[error("missing port")]
    MissingPort,
    #[error("bad port {0:?}: expected 1-65535")]
    Port(String),
    #[error("missing host")]
    MissingHost,
    #[error("bad IPv6 literal {0:?}")]
    Ipv6(String),
    #[error("IPv6 literals need brackets: udp://[{0}]:PORT")]
    UnbracketedIpv6(String),
    #[error("bad host name {0:?}: letters, digits, '-' and '.' only, labels of 1-63 characters")]
    HostName(String),
    #[error("bad key {0:?}: expected 64 hex digits")]
    Key(String),
    #[error("unexpected {0:?} after the port")]
    Trailing(String),
}

impl FromStr for StaticPeer {
    type Err = PeerUrlError;

    fn from_str(s: &str) -> Result<Self, PeerUrlError> {
        let (scheme, rest) = s.split_once("://").ok_or(PeerUrlError::MissingScheme)?;
        if scheme != "udp" {
            return Err(PeerUrlError::Scheme(scheme.to_owned()));
        }
        if let Some(at) = rest.find(['/', '?', '#']) {
            return Err(PeerUrlError::Trailing(rest[at..].to_owned()));
        }
        let (key, authority) = match rest.split_once('@') {
            Some((key, authority)) => {
                (Some(key.parse::<PublicKey>().map_err(|_| PeerUrlError::Key(key.to_owned()))?), authority)
            }
            None => (None, rest),
        };
        let (host, port) = if let Some(bracketed) = authority.strip_prefix('[') {
            let (literal, after) = bracketed.split_once(']').ok_or_else(|| PeerUrlError::Ipv6(authority.to_owned()))?;
            let ip = literal.parse::<Ipv6Addr>().map_err(|_| PeerUrlError::Ipv6(literal.to_owned()))?;
            let port = after.strip_prefix(':').ok_or(PeerUrlError::MissingPort)?;
            (Host::Ip(IpAddr::V6(ip)), port)
        } else {
            if authority.matches(':').count() > 1 {
                return Err(PeerUrlError::UnbracketedIpv6(authority.to_owned()));
            }
            let (host, port) = authority.split_once(':').ok_or(PeerUrlError::MissingPort)?;
            (parse_host(host)?, port)
        };
        let port = match port.parse::<u16>() {
            Ok(p) if p != 0 && port.bytes().all(|b| b.is_ascii_digit()) => p,
            _ if port.is_empty() => return Err(PeerUrlError::MissingPort),
            _ => return Err(PeerUrlError::Port(port.to_owned())),
        };
        Ok(StaticPeer { host, port, key })
    }
}

fn parse_host(host: &str) -> Result<Host, PeerUrlError> {
    if host.is_empty() {
        return Err(PeerUrlError::MissingHost);
    }
    if let Ok(ip) = host.parse::<std::net::Ipv4Addr>() {
        return Ok(Host::Ip(IpAddr::V4(ip)));
    }
    let name = host.strip_suffix('.').unwrap_or(host);
    let label_ok = |l: &str| {
        (1..=63).contains(&l.len())
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    // A name of digits and dots only would be a mistyped IPv4 address.
    let numeric = name.bytes().all(|b| b.is_ascii_digit() || b == b'.');
    if name.len() > 253 || numeric || !name.split('.').all(label_ok) {
        return Err(PeerUrlError::HostName(host.to_owned()));
    }
    Ok(Host::Dns(name.to_ascii_lowercase()))
}

impl fmt::Display for StaticPeer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("udp://")?;
        if let Some(key) = &self.key {
            write!(f, "{key}@")?;
        }
        match &self.host {
            Host::Ip(IpAddr::V6(ip)) => write!(f, "[{ip}]:{}", self.port),
            Host::Ip(ip) => write!(f, "{ip}:{}", self.port),
            Host::Dns(name) => write!(f, "{name}:{}", self.port),
        }
    }
}

/// Turns a host name into addresses.
pub trait Resolver: fmt::Debug {
    fn resolve(&mut self, name: &str, port: u16) -> io::Result<Vec<SocketAddr>>;
}

/// The operating system's resolver (`getaddrinfo` through
/// [`ToSocketAddrs`]). Blocks: the daemon calls it off its event loop.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemResolver;

impl Resolver for SystemResolver {
    fn resolve(&mut self, name: &str, port: u16) -> io::Result<Vec<SocketAddr>> {
        Ok((name, port).to_socket_addrs()?.collect())
    }
}

impl StaticPeer {
    /// The address to dial now: the literal, or the first address the
    /// resolver returns (IPv6 first when it returns both, as getaddrinfo orders them).
    pub fn resolve(&self, resolver: &mut dyn Resolver) -> io::Result<SocketAddr> {
        match &self.host {
            Host::Ip(ip) => Ok(SocketAddr::new(*ip, self.port)),
            Host::Dns(name) => resolver
                .resolve(name, self.port)?
                .into_iter()
                .next()
                .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, format!("{name} has no addresses"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<StaticPeer, PeerUrlError> {
        s.parse()
    }

    #[test]
    fn good_peer_strings_parse_and_print_back() {
        let key = "11".repeat(32);
        let cases = [
            ("udp://192.0.2.1:9651", Host::Ip("192.0.2.1".parse().unwrap()), 9651, false),
            ("udp://[2001:db8::1]:1", Host::Ip("2001:db8::1".parse().unwrap()), 1, false),
            ("udp://Node-1.Example.org:65535", Host::Dns("node-1.example.org".into()), 65535, false),
            ("udp://localhost:9651", Host::Dns("localhost".into()), 9651, false),
        ];
        for (s, host, port, _) in cases {
            let peer = parse(s).unwrap();
            assert_eq!((peer.host.clone(), peer.port, peer.key), (host, port, None), "{s}");
            assert_eq!(parse(&peer.to_string()).unwrap(), peer);
        }
        let with_key = parse(&format!("udp://{key}@[::1]:9651")).unwrap();
        assert_eq!(with_key.key, Some(PublicKey::from_bytes([0x11; 32])));
        assert_eq!(with_key.to_string(), format!("udp://{key}@[::1]:9651"));
    }

    #[test]
    fn bad_peer_strings_say_what_is_wrong() {
        use PeerUrlError::*;
        let cases = [
            ("192.0.2.1:9651", MissingScheme),
            ("tcp://192.0.2.1:9651", Scheme("tcp".into())),
            ("udp://192.0.2.1", MissingPort),
            ("udp://192.0.2.1:", MissingPort),
            ("udp://x", MissingPort),
            ("udp://192.0.2.1:0", Port("0".into())),
            ("udp://192.0.2.1:65536", Port("65536".into())),
            ("udp://192.0.2.1:+80", Port("+80".into())),
            ("udp://:9651", MissingHost),
            ("udp://::1:9651", UnbracketedIpv6("::1:9651".into())),
            ("udp://[::g]:9651", Ipv6("::g".into())),
            ("udp://[::1]9651", MissingPort),
            ("udp://[::1:9651", Ipv6("[::1:9651".into())),
            ("udp://bad_name:9651", HostName("bad_name".into())),
            ("udp://-a.example:9651", HostName("-a.example".into())),
            ("udp://999.1.1.1:9651", HostName("999.1.1.1".into())),
            ("udp://abcd@host:9651", Key("abcd".into())),
            ("udp://host:9651/path", Trailing("/path".into())),
        ];
        for (s, expected) in cases {
            assert_eq!(parse(s), Err(expected), "{s}");
        }
        assert_eq!(parse("udp://x").unwrap_err().to_string(), "missing port");
    }
}
