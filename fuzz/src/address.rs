//! Text parsers for addresses, prefixes and public keys on arbitrary UTF-8.
//!
//! Parsing must never panic, errors must display, and anything that parses
//! must display as text that parses back to the same value.

use std::fmt::{Debug, Display};
use std::net::Ipv6Addr;
use std::str::FromStr;

use mycelium_common::address::{OVERLAY_PREFIX, OverlayAddress, Subnet, mask};
use mycelium_common::identity::PublicKey;

/// `OverlayAddress`, `Subnet` and `PublicKey` `from_str`.
pub fn address_parse(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match text.parse::<OverlayAddress>() {
        Ok(address) => {
            assert!(OVERLAY_PREFIX.contains(address.ip()), "{address} is in 400::/7");
            assert_eq!(text.parse::<Ipv6Addr>(), Ok(address.ip()), "an overlay address is an IPv6 address");
            displays_and_parses_back(&address);
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
    match text.parse::<Subnet>() {
        Ok(subnet) => {
            assert!(subnet.len() <= 128);
            assert_eq!(mask(subnet.prefix(), subnet.len()), subnet.prefix(), "host bits are cleared");
            assert!(subnet.covers(&subnet));
            displays_and_parses_back(&subnet);
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
    match text.parse::<PublicKey>() {
        Ok(key) => {
            assert_eq!(text.trim().len(), 64, "a key is 64 hex digits");
            assert_eq!(key.to_hex(), text.trim().to_ascii_lowercase());
            displays_and_parses_back(&key);
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
}

fn displays_and_parses_back<T>(value: &T)
where
    T: FromStr + Display + Debug + PartialEq,
    T::Err: Debug,
{
    let text = value.to_string();
    let back: T = text.parse().unwrap_or_else(|e| panic!("{value:?} displays as {text:?}, which fails: {e:?}"));
    assert_eq!(&back, value, "{text:?} parses back to another value");
}
