//! Settings of one dataplane process, and the strict parsers behind its flags.
//!
//! Everything here is pure: the binary parses its flags into a [`Config`], and
//! `crate::io::node::run` checks it against the machine (allowed cores,
//! privileges, free port, free interface name).

use std::net::{Ipv6Addr, SocketAddr};
use std::path::PathBuf;

use thiserror::Error;

/// The most CPUs a core list may name (the size of the kernel's `cpu_set_t`).
pub const MAX_CORES: usize = libc::CPU_SETSIZE as usize;

/// The longest Linux interface name (IFNAMSIZ - 1).
pub const MAX_IFNAME_LEN: usize = 15;

/// Everything a dataplane process needs to start.
#[derive(Clone, Debug)]
pub struct Config {
    /// UDP port of the node, shared by every shard (SO_REUSEPORT).
    pub port: u16,
    /// CPUs to run one shard each on, sorted; `None`: every CPU the process may use.
    pub cores: Option<Vec<usize>>,
    /// The TUN device; `None` runs relay-only.
    pub tun: Option<TunConfig>,
    /// Directory of the shared-memory files (counters, punt sockets).
    pub shm_dir: PathBuf,
    /// Static peers of the passthrough engine: (overlay address, endpoint).
    pub static_peers: Vec<(Ipv6Addr, SocketAddr)>,
    /// The node's overlay address (also given to the engine in relay-only mode).
    pub address: Option<Ipv6Addr>,
    /// Cap on transit forwarding, bits per second for the whole node (`None`: none).
    pub transit_limit_bps: Option<u64>,
    /// Whether to ask for TUN and UDP offloads (TSO/USO super-packets from
    /// the TUN, UDP GSO and GRO); each is used only where the kernel grants it.
    pub offload: bool,
    /// How long a shard keeps polling for more work after a batch before it
    /// sleeps (zero: it always sleeps; see `io::shard` and its `wait` module).
    pub busy_poll: std::time::Duration,
    /// Whether to spread DATA over the receiving shards by its sending shard
    /// and node pair (a reuseport BPF program, `crate::io::steer`) instead
    /// of the kernel's underlay 4-tuple hash.
    pub steer: bool,
}

/// The longest busy-poll window a shard takes (10 ms), in microseconds.
pub const MAX_BUSY_POLL_US: u64 = 10_000;

/// The TUN device's settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TunConfig {
    /// Interface name.
    pub name: String,
    /// Interface MTU (the largest overlay packet).
    pub mtu: u32,
    /// The node's overlay address; the TUN gets it with prefix length 64.
    pub address: Ipv6Addr,
}

/// A flag value that does not parse.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum ConfigError {
    /// The core list is empty or has an empty element.
    #[error("core list {0:?}: empty element (expected e.g. 0,2-5)")]
    EmptyCoreElement(String),
    /// A core number is not a decimal number.
    #[error("core list: {0:?} is not a CPU number")]
    BadCoreNumber(String),
    /// A range runs backwards.
    #[error("core list: range {0}-{1} runs backwards")]
    BackwardRange(usize, usize),
    /// A core is past the kernel's limit.
    #[error("core list: CPU {0} is past the limit of {MAX_CORES}")]
    CoreTooLarge(usize),
    /// A core is named twice.
    #[error("core list: CPU {0} is named twice")]
    DuplicateCore(usize),
    /// A static peer is not ADDRESS=ENDPOINT.
    #[error(
        "static peer {0:?}: expected OVERLAY_ADDRESS=IP:PORT (e.g. 400::1=192.0.2.1:9651 or 400::1=[2001:db8::1]:9651)"
    )]
    BadStaticPeer(String),
    /// An interface name the kernel would refuse.
    #[error("interface name {0:?}: must be 1 to {MAX_IFNAME_LEN} bytes, without '/', ':', whitespace or NUL")]
    BadInterfaceName(String),
    /// An MTU outside what IPv6 and the buffers allow.
    #[error("MTU {0}: must be between 1280 (the IPv6 minimum) and 65535")]
    BadMtu(u32),
    /// An overlay address outside 400::/7.
    #[error("address {0}: overlay addresses are in 400::/7")]
    NotOverlay(Ipv6Addr),
}

/// Parses a core list such as `0,2-5` into sorted CPU numbers: decimal
/// numbers and inclusive ranges, comma-separated, no spaces, no duplicates.
pub fn parse_core_list(s: &str) -> Result<Vec<usize>, ConfigError> {
    let number = |n: &str| -> Result<usize, ConfigError> {
        if n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) {
            return Err(ConfigError::BadCoreNumber(n.to_string()));
        }
        let v: usize = n.parse().map_err(|_| ConfigError::CoreTooLarge(usize::MAX))?;
        if v >= MAX_CORES { Err(ConfigError::CoreTooLarge(v)) } else { Ok(v) }
    };
    let mut cores = Vec::new();
    for element in s.split(',') {
        if element.is_empty() {
            return Err(ConfigError::EmptyCoreElement(s.to_string()));
        }
        let (lo, hi) = match element.split_once('-') {
            Some((a, b)) => (number(a)?, number(b)?),
            None => {
                let n = number(element)?;
                (n, n)
            }
        };
        if lo > hi {
            return Err(ConfigError::BackwardRange(lo, hi));
        }
        cores.extend(lo..=hi);
    }
    cores.sort_unstable();
    if let Some(w) = cores.windows(2).find(|w| w[0] == w[1]) {
        return Err(ConfigError::DuplicateCore(w[0]));
    }
    Ok(cores)
}

/// Formats sorted CPU numbers back as a core list (`0,2-5`), for messages.
pub fn format_core_list(cores: &[usize]) -> String {
    let mut out = String::new();
    let mut i = 0;
    while i < cores.len() {
        let mut j = i;
        while j + 1 < cores.len() && cores[j + 1] == cores[j] + 1 {
            j += 1;
        }
        if !out.is_empty() {
            out.push(',');
        }
        if i == j {
            out.push_str(&cores[i].to_string());
        } else {
            out.push_str(&format!("{}-{}", cores[i], cores[j]));
        }
        i = j + 1;
    }
    out
}

/// Parses `OVERLAY_ADDRESS=IP:PORT`.
pub fn parse_static_peer(s: &str) -> Result<(Ipv6Addr, SocketAddr), ConfigError> {
    let bad = || ConfigError::BadStaticPeer(s.to_string());
    let (addr, endpoint) = s.split_once('=').ok_or_else(bad)?;
    let addr: Ipv6Addr = addr.parse().map_err(|_| bad())?;
    let endpoint: SocketAddr = endpoint.parse().map_err(|_| bad())?;
    if !is_overlay(&addr) {
        return Err(ConfigError::NotOverlay(addr));
    }
    Ok((addr, endpoint))
}

/// Checks an interface name the way the kernel's `dev_valid_name` does.
pub fn check_interface_name(name: &str) -> Result<(), ConfigError> {
    let ok = !name.is_empty()
        && name.len() <= MAX_IFNAME_LEN
        && name != "."
        && name != ".."
        && !name.bytes().any(|b| b == b'/' || b == b':' || b == 0 || b.is_ascii_whitespace());
    if ok { Ok(()) } else { Err(ConfigError::BadInterfaceName(name.to_string())) }
}

/// Checks a TUN MTU.
pub fn check_mtu(mtu: u32) -> Result<(), ConfigError> {
    if (1280..=65535).contains(&mtu) { Ok(()) } else { Err(ConfigError::BadMtu(mtu)) }
}

/// Whether an address is in the overlay range 400::/7.
pub fn is_overlay(addr: &Ipv6Addr) -> bool {
    addr.octets()[0] & 0xfe == 0x04
}

/// Checks an overlay address.
pub fn check_overlay(addr: Ipv6Addr) -> Result<Ipv6Addr, ConfigError> {
    if is_overlay(&addr) { Ok(addr) } else { Err(ConfigError::NotOverlay(addr)) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn core_lists_accept_numbers_and_ranges_in_any_order() {
        assert_eq!(parse_core_list("0").unwrap(), [0]);
        assert_eq!(parse_core_list("0,2-5").unwrap(), [0, 2, 3, 4, 5]);
        assert_eq!(parse_core_list("7,1-2").unwrap(), [1, 2, 7]);
        assert_eq!(parse_core_list("3-3").unwrap(), [3]);
    }

    #[test]
    fn core_lists_reject_anything_loose() {
        use ConfigError::*;
        assert_eq!(parse_core_list(""), Err(EmptyCoreElement(String::new())));
        assert_eq!(parse_core_list("1,"), Err(EmptyCoreElement("1,".into())));
        assert_eq!(parse_core_list(" 1"), Err(BadCoreNumber(" 1".into())));
        assert_eq!(parse_core_list("-1"), Err(BadCoreNumber(String::new())));
        assert_eq!(parse_core_list("1-"), Err(BadCoreNumber(String::new())));
        assert_eq!(parse_core_list("+1"), Err(BadCoreNumber("+1".into())));
        assert_eq!(parse_core_list("1-2-3"), Err(BadCoreNumber("2-3".into())));
        assert_eq!(parse_core_list("5-2"), Err(BackwardRange(5, 2)));
        assert_eq!(parse_core_list("0-3,2"), Err(DuplicateCore(2)));
        assert_eq!(parse_core_list("1024"), Err(CoreTooLarge(1024)));
        assert!(parse_core_list("99999999999999999999999").is_err());
    }

    #[test]
    fn core_lists_format_back_compactly() {
        assert_eq!(format_core_list(&[0, 2, 3, 4, 5, 9]), "0,2-5,9");
        assert_eq!(format_core_list(&[]), "");
    }

    #[test]
    fn static_peers_take_either_address_family() {
        let (a, e) = parse_static_peer("400::1=192.0.2.1:9651").unwrap();
        assert_eq!(a, "400::1".parse::<Ipv6Addr>().unwrap());
        assert_eq!(e, "192.0.2.1:9651".parse::<std::net::SocketAddr>().unwrap());
        let (_, e) = parse_static_peer("5ff:1::2=[2001:db8::1]:1").unwrap();
        assert_eq!(e, "[2001:db8::1]:1".parse::<std::net::SocketAddr>().unwrap());
        assert!(parse_static_peer("400::1").is_err());
        assert!(parse_static_peer("400::1=192.0.2.1").is_err());
        assert!(parse_static_peer("nope=192.0.2.1:1").is_err());
        assert_eq!(
            parse_static_peer("2001:db8::1=192.0.2.1:1"),
            Err(ConfigError::NotOverlay("2001:db8::1".parse().unwrap()))
        );
    }

    #[test]
    fn interface_names_follow_the_kernel_rules() {
        assert!(check_interface_name("myc0").is_ok());
        assert!(check_interface_name("a23456789012345").is_ok());
        for bad in ["", ".", "..", "a/b", "a b", "a:1", "a234567890123456"] {
            assert!(check_interface_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn mtus_and_overlay_addresses_are_bounded() {
        assert!(check_mtu(1279).is_err());
        assert!(check_mtu(1280).is_ok());
        assert!(check_mtu(65536).is_err());
        assert!(check_overlay("4ff::1".parse().unwrap()).is_ok());
        assert!(check_overlay("600::1".parse().unwrap()).is_err());
    }
}
