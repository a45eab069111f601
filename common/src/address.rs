//! Overlay addresses: the IPv6 address (in `400::/7`) and /64 subnet that a
//! node's public key owns.
//!
//! The scheme is the deployed mycelium network's, so a node that brings its
//! key file keeps its address: hash the 32-byte x25519 public key with BLAKE3
//! in XOF mode to 16 bytes, then replace the first byte with
//! `0x04 | (popcount(original first byte) % 2)`. The node owns the /64 that
//! contains the address.

use std::fmt;
use std::net::Ipv6Addr;
use std::str::FromStr;

use crate::identity::PublicKey;

/// The overlay's global prefix, `400::/7`.
pub const OVERLAY_PREFIX: Subnet = Subnet { prefix: [0x04, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], len: 7 };

/// A node's overlay address.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct OverlayAddress([u8; 16]);

impl OverlayAddress {
    /// The address a public key owns.
    pub fn from_public_key(key: &PublicKey) -> Self {
        let mut out = [0u8; 16];
        let mut hasher = blake3::Hasher::new();
        hasher.update(key.as_bytes());
        hasher.finalize_xof().fill(&mut out);
        out[0] = 0x04 | (out[0].count_ones() as u8 & 1);
        OverlayAddress(out)
    }

    /// Wraps raw bytes, refusing addresses outside `400::/7`.
    pub fn from_bytes(bytes: [u8; 16]) -> Result<Self, AddressError> {
        if OVERLAY_PREFIX.contains_bytes(&bytes) {
            Ok(OverlayAddress(bytes))
        } else {
            Err(AddressError::OutsideOverlay(Ipv6Addr::from(bytes)))
        }
    }

    /// The raw 16 bytes.
    pub const fn octets(&self) -> [u8; 16] {
        self.0
    }

    /// Borrows the raw 16 bytes.
    pub const fn as_bytes(&self) -> &[u8; 16] {
        &self.0
    }

    /// The /64 this address's owner may route for.
    pub fn subnet(&self) -> Subnet {
        Subnet::new(self.0, 64).expect("64 is a valid prefix length")
    }

    /// As a standard library address.
    pub fn ip(&self) -> Ipv6Addr {
        Ipv6Addr::from(self.0)
    }

    /// Whether `key` is the key that owns this address.
    pub fn is_owned_by(&self, key: &PublicKey) -> bool {
        OverlayAddress::from_public_key(key) == *self
    }
}

impl fmt::Display for OverlayAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.ip().fmt(f)
    }
}

impl fmt::Debug for OverlayAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "OverlayAddress({})", self.ip())
    }
}

impl FromStr for OverlayAddress {
    type Err = AddressError;
    fn from_str(s: &str) -> Result<Self, AddressError> {
        let ip: Ipv6Addr = s.parse().map_err(|_| AddressError::Syntax(s.to_owned()))?;
        OverlayAddress::from_bytes(ip.octets())
    }
}

/// An IPv6 prefix: the bits after `len` are always zero.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Subnet {
    prefix: [u8; 16],
    len: u8,
}

impl Subnet {
    /// A prefix of `len` bits; host bits of `addr` are cleared.
    pub fn new(addr: [u8; 16], len: u8) -> Result<Self, AddressError> {
        if len > 128 {
            return Err(AddressError::PrefixLength(len));
        }
        Ok(Subnet { prefix: mask(addr, len), len })
    }

    /// The network bytes (host bits zero).
    pub const fn prefix(&self) -> [u8; 16] {
        self.prefix
    }

    /// The prefix length in bits, 0..=128.
    pub const fn len(&self) -> u8 {
        self.len
    }

    /// Whether this is the zero-length prefix (the default route).
    pub const fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether `addr` lies inside this prefix.
    pub fn contains(&self, addr: Ipv6Addr) -> bool {
        self.contains_bytes(&addr.octets())
    }

    /// Whether raw address bytes lie inside this prefix.
    pub fn contains_bytes(&self, addr: &[u8; 16]) -> bool {
        mask(*addr, self.len) == self.prefix
    }

    /// Whether all of `other` lies inside this prefix.
    pub fn covers(&self, other: &Subnet) -> bool {
        other.len >= self.len && self.contains_bytes(&other.prefix)
    }
}

/// Clears every bit of `addr` after the first `len`.
pub fn mask(addr: [u8; 16], len: u8) -> [u8; 16] {
    let len = u32::from(len.min(128));
    let bits = u128::from_be_bytes(addr);
    let kept = if len == 0 { 0 } else { bits & (u128::MAX << (128 - len)) };
    kept.to_be_bytes()
}

impl fmt::Display for Subnet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", Ipv6Addr::from(self.prefix), self.len)
    }
}

impl fmt::Debug for Subnet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Subnet({self})")
    }
}

impl FromStr for Subnet {
    type Err = AddressError;
    fn from_str(s: &str) -> Result<Self, AddressError> {
        let (ip, len) = s.split_once('/').ok_or_else(|| AddressError::Syntax(s.to_owned()))?;
        let ip: Ipv6Addr = ip.parse().map_err(|_| AddressError::Syntax(s.to_owned()))?;
        let len: u8 = len.parse().map_err(|_| AddressError::Syntax(s.to_owned()))?;
        Subnet::new(ip.octets(), len)
    }
}

/// Why an address or prefix was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddressError {
    #[error("{0} is not an overlay address (outside 400::/7)")]
    OutsideOverlay(Ipv6Addr),
    #[error("prefix length {0} is longer than 128")]
    PrefixLength(u8),
    #[error("{0:?} is not an IPv6 address or prefix")]
    Syntax(String),
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::SecretKey;
    use proptest::prelude::*;

    /// Vectors from the deployed mycelium implementation:
    /// secret key file bytes -> public key -> address.
    const VECTORS: [(&str, &str, &str); 4] = [
        (
            "0000000000000000000000000000000000000000000000000000000000000001",
            "fd3384e132ad02a56c78f45547ee40038dc79002b90d29ed90e08eee762ae715",
            "5f5:db79:2573:eebf:15e3:4ae0:bb2f:88e1",
        ),
        (
            "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f",
            "8f40c5adb68f25624ae5b214ea767a6ec94d829d3d7b5e1ad1ba6f3e2138285f",
            "430:9364:d8d8:84a9:dd60:de78:c767:d361",
        ),
        (
            "ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
            "847c0d2c375234f365e660955187a3735a0f7613d1609d3a6a4d8c53aeaa5a22",
            "569:215c:b0bf:ab7b:fe1b:f51d:b0c2:635a",
        ),
        (
            "d0731d54994a0151be1de5ed021a2e9e66102f148261caafa95534e79000d228",
            "12b41aad4b35ac230c07d871713de535a5e8c792c835b07e7ae10558f12a3c30",
            "594:30ff:2262:f6e7:ac1:962e:4849:7cc8",
        ),
    ];

    #[test]
    fn deployed_network_vectors_match() {
        for (secret, public, address) in VECTORS {
            let secret = SecretKey::from_bytes(hex::decode(secret).unwrap().try_into().unwrap());
            let public_key = secret.public_key();
            assert_eq!(public_key.to_hex(), public);
            let addr = OverlayAddress::from_public_key(&public_key);
            assert_eq!(addr.to_string(), address);
            assert_eq!(address.parse::<OverlayAddress>().unwrap(), addr);
            assert!(addr.is_owned_by(&public_key));
        }
    }

    #[test]
    fn subnet_is_the_enclosing_slash_64() {
        let addr: OverlayAddress = "5f5:db79:2573:eebf:15e3:4ae0:bb2f:88e1".parse().unwrap();
        assert_eq!(addr.subnet().to_string(), "5f5:db79:2573:eebf::/64");
        assert!(addr.subnet().contains(addr.ip()));
        assert!(!addr.subnet().contains("5f5:db79:2573:eec0::1".parse().unwrap()));
    }

    #[test]
    fn addresses_outside_the_overlay_are_refused() {
        assert!(matches!("fe80::1".parse::<OverlayAddress>(), Err(AddressError::OutsideOverlay(_))));
        assert!(matches!("not an address".parse::<OverlayAddress>(), Err(AddressError::Syntax(_))));
        assert_eq!(Subnet::new([0; 16], 129), Err(AddressError::PrefixLength(129)));
    }

    #[test]
    fn mask_edges() {
        let all = [0xff; 16];
        assert_eq!(mask(all, 0), [0; 16]);
        assert_eq!(mask(all, 128), all);
        assert_eq!(mask(all, 7)[0], 0xfe);
        assert_eq!(mask(all, 7)[1], 0);
    }

    proptest! {
        #[test]
        fn every_key_maps_into_the_overlay(key in any::<[u8; 32]>()) {
            let addr = OverlayAddress::from_public_key(&PublicKey::from_bytes(key));
            prop_assert!(OVERLAY_PREFIX.contains(addr.ip()));
            prop_assert!(addr.subnet().covers(&Subnet::new(addr.octets(), 128).unwrap()));
        }

        #[test]
        fn subnet_display_parses_back(addr in any::<[u8; 16]>(), len in 0u8..=128) {
            let s = Subnet::new(addr, len).unwrap();
            prop_assert_eq!(s.to_string().parse::<Subnet>().unwrap(), s);
        }
    }
}
