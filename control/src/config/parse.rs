//! Parsers for the values that have a syntax of their own: core lists,
//! positions, link classes, names. Each returns the reason a value is
//! refused; the caller names the key.

use std::net::SocketAddr;

use mycelium_common::wire::tlv::GeoPosition;

use crate::link::LinkClass;

/// Highest CPU number accepted in a core list.
const MAX_CORE: usize = 4095;

/// `"0,2-5"` into sorted, distinct core numbers.
pub fn cores(s: &str) -> Result<Vec<usize>, String> {
    let mut out = Vec::new();
    for part in s.split(',') {
        let part = part.trim();
        let number = |n: &str| -> Result<usize, String> {
            match n.parse::<usize>() {
                Ok(v) if v <= MAX_CORE && n.bytes().all(|b| b.is_ascii_digit()) => Ok(v),
                Ok(_) if n.bytes().all(|b| b.is_ascii_digit()) => Err(format!("core {n} is above {MAX_CORE}")),
                _ if n.is_empty() => Err("empty entry: expected a list like \"0,2-5\"".into()),
                _ => Err(format!("{n:?} is not a core number: expected a list like \"0,2-5\"")),
            }
        };
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b) = (number(a)?, number(b)?);
                if a > b {
                    return Err(format!("range {a}-{b} runs backwards"));
                }
                out.extend(a..=b);
            }
            None => out.push(number(part)?),
        }
    }
    out.sort_unstable();
    out.dedup();
    Ok(out)
}

/// Latitude and longitude in degrees into a position.
pub fn position(lat: f64, lon: f64) -> Result<GeoPosition, String> {
    if !(-90.0..=90.0).contains(&lat) {
        return Err("latitude must be within -90..90 degrees".into());
    }
    if !(-180.0..=180.0).contains(&lon) {
        return Err("longitude must be within -180..180 degrees".into());
    }
    Ok(GeoPosition { lat_e7: (lat * 1e7).round() as i32, lon_e7: (lon * 1e7).round() as i32 })
}

/// `"LAT,LON"` (the command line's form).
pub fn position_pair(s: &str) -> Result<GeoPosition, String> {
    let (lat, lon) = s.split_once(',').ok_or("expected \"LAT,LON\" in degrees")?;
    let num = |v: &str| v.trim().parse::<f64>().map_err(|_| format!("{:?} is not a number", v.trim()));
    position(num(lat)?, num(lon)?)
}

/// A link class by name.
pub fn link_class(s: &str) -> Result<LinkClass, String> {
    Ok(match s {
        "fiber" => LinkClass::Fiber,
        "ethernet" => LinkClass::Ethernet,
        "wifi" => LinkClass::Wifi,
        "cellular" => LinkClass::Cellular,
        "satellite" => LinkClass::Satellite,
        _ => return Err("expected fiber, ethernet, wifi, cellular or satellite".into()),
    })
}

/// A listen address, `IP:PORT`.
pub fn listen(s: &str) -> Result<SocketAddr, String> {
    s.parse().map_err(|_| "expected IP:PORT, e.g. 127.0.0.1:8990 or [::1]:8990".into())
}

/// A TUN device name: 1 to 15 bytes, no '/', whitespace, ':' or '%'.
pub fn tun_name(s: &str) -> Result<(), String> {
    let ok = (1..=15).contains(&s.len())
        && s != "."
        && s != ".."
        && s.bytes().all(|b| b.is_ascii_graphic() && !matches!(b, b'/' | b':' | b'%'));
    if ok { Ok(()) } else { Err("an interface name is 1-15 printable characters without '/', ':' or '%'".into()) }
}

/// An instance name (a directory name under /dev/shm): letters, digits,
/// '-', '_' and '.', 1 to 64 bytes, not starting with '.'.
pub fn instance(s: &str) -> Result<(), String> {
    let ok = (1..=64).contains(&s.len())
        && !s.starts_with('.')
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if ok { Ok(()) } else { Err("1-64 letters, digits, '-', '_' or '.', not starting with '.'".into()) }
}
