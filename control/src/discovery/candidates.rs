//! The bounded set of peers we learnt of (peer exchange, LAN beacons) and
//! may dial when the node has fewer links than its target.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};

use mycelium_common::identity::PublicKey;
use mycelium_common::time::Timestamp;

use crate::peer::LinkId;

/// Where a candidate came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Source {
    /// A neighbour of this node's previous run (read back from its last
    /// published snapshot after a restart): dialed at once, whatever the
    /// target, since it was a link a moment ago.
    Previous,
    /// A LAN beacon (dialed first: a neighbour on the link is the best peer).
    Lan,
    /// A neighbour's peer exchange.
    Exchange,
}

/// A peer we may dial.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub endpoint: SocketAddr,
    pub key: PublicKey,
    pub source: Source,
    pub learned_at: Timestamp,
    /// The link, once dialed.
    pub link: Option<LinkId>,
    /// Failed dial attempts.
    pub failures: u32,
}

/// Whether an endpoint another node told us about is worth dialing: a
/// unicast address other nodes can reach (not unspecified, loopback,
/// multicast, broadcast or link-local) and a port.
pub fn is_dialable(endpoint: &SocketAddr) -> bool {
    let ip_ok = match endpoint.ip() {
        IpAddr::V4(ip) => {
            !(ip.is_unspecified() || ip.is_loopback() || ip.is_multicast() || ip.is_broadcast() || ip.is_link_local())
        }
        IpAddr::V6(ip) => !(ip.is_unspecified() || ip.is_loopback() || ip.is_multicast() || ip.is_unicast_link_local()),
    };
    ip_ok && endpoint.port() != 0
}

/// The candidates, keyed by endpoint, at most `max`.
#[derive(Debug, Clone)]
pub struct Candidates {
    max: usize,
    by_endpoint: BTreeMap<SocketAddr, Candidate>,
}

impl Candidates {
    pub fn new(max: usize) -> Self {
        Candidates { max, by_endpoint: BTreeMap::new() }
    }

    pub fn len(&self) -> usize {
        self.by_endpoint.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_endpoint.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = &Candidate> {
        self.by_endpoint.values()
    }

    /// Adds (or refreshes) a candidate. When full, the oldest undialed one
    /// makes room; if every one is dialed, the new one is refused.
    pub fn learn(&mut self, now: Timestamp, endpoint: SocketAddr, key: PublicKey, source: Source) -> bool {
        if let Some(known) = self.by_endpoint.get_mut(&endpoint) {
            if known.link.is_none() {
                known.key = key;
                known.learned_at = now;
                known.source = known.source.min(source);
            }
            return true;
        }
        if self.by_endpoint.len() >= self.max {
            let oldest = self
                .by_endpoint
                .values()
                .filter(|c| c.link.is_none())
                .min_by_key(|c| (c.learned_at, c.endpoint))
                .map(|c| c.endpoint);
            match oldest {
                Some(endpoint) => self.by_endpoint.remove(&endpoint),
                None => return false,
            };
        }
        let candidate = Candidate { endpoint, key, source, learned_at: now, link: None, failures: 0 };
        self.by_endpoint.insert(endpoint, candidate);
        true
    }

    /// The next one to dial: undialed, LAN before exchange, oldest first.
    pub fn next_to_dial(&self) -> Option<&Candidate> {
        self.by_endpoint.values().filter(|c| c.link.is_none()).min_by_key(|c| (c.source, c.learned_at, c.endpoint))
    }

    pub fn get_mut(&mut self, endpoint: &SocketAddr) -> Option<&mut Candidate> {
        self.by_endpoint.get_mut(endpoint)
    }

    /// The candidate dialed as `link`.
    pub fn by_link_mut(&mut self, link: LinkId) -> Option<&mut Candidate> {
        self.by_endpoint.values_mut().find(|c| c.link == Some(link))
    }

    pub fn forget(&mut self, endpoint: &SocketAddr) {
        self.by_endpoint.remove(endpoint);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: u64) -> Timestamp {
        Timestamp::from_nanos(s * 1_000_000_000)
    }

    fn ep(i: u8) -> SocketAddr {
        SocketAddr::from(([198, 51, 100, i], 9651))
    }

    #[test]
    fn only_reachable_unicast_endpoints_with_a_port_are_dialable() {
        assert!(is_dialable(&ep(1)));
        assert!(is_dialable(&"[2001:db8::1]:9651".parse().unwrap()));
        for bad in ["0.0.0.0:1", "127.0.0.1:1", "224.0.0.1:1", "255.255.255.255:1", "169.254.1.1:1", "198.51.100.1:0"] {
            assert!(!is_dialable(&bad.parse().unwrap()), "{bad}");
        }
        for bad in ["[::]:1", "[::1]:1", "[ff02::1]:1", "[fe80::1]:1"] {
            assert!(!is_dialable(&bad.parse().unwrap()), "{bad}");
        }
    }

    #[test]
    fn the_set_is_bounded_and_evicts_the_oldest_undialed_candidate() {
        let key = PublicKey::from_bytes([1; 32]);
        let mut c = Candidates::new(3);
        for i in 0..3 {
            assert!(c.learn(at(u64::from(i)), ep(i), key, Source::Exchange));
        }
        c.get_mut(&ep(0)).unwrap().link = Some(LinkId(7));
        assert!(c.learn(at(10), ep(9), key, Source::Exchange));
        assert_eq!(c.len(), 3);
        assert!(c.get_mut(&ep(1)).is_none(), "ep 1 was the oldest undialed");
        assert!(c.get_mut(&ep(0)).is_some(), "dialed candidates stay");
        assert_eq!(c.next_to_dial().unwrap().endpoint, ep(2));
        assert!(c.learn(at(11), ep(20), key, Source::Lan));
        assert_eq!(c.next_to_dial().unwrap().endpoint, ep(20), "LAN first");
    }
}
