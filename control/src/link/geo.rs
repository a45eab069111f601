//! Geography as a prior: the great-circle distance between two positions and
//! the round-trip time light in fiber needs to cover it. No real path is
//! shorter, so that RTT is both the expected RTT before measurement and a
//! floor against which measurements are checked for plausibility.

use std::time::Duration;

use mycelium_common::wire::tlv::GeoPosition;

/// Mean Earth radius (IUGG), metres.
pub const EARTH_RADIUS_M: f64 = 6_371_008.8;

/// Speed of light in optical fiber (refractive index ~1.5), metres per second.
pub const FIBER_SPEED_M_PER_S: f64 = 2.0e8;

const E7: f64 = 10_000_000.0;

/// Whether a position is on the globe (latitude within +-90 degrees,
/// longitude within +-180 degrees). Positions from the wire that are not
/// are ignored.
pub fn is_valid(p: GeoPosition) -> bool {
    (-900_000_000..=900_000_000).contains(&p.lat_e7) && (-1_800_000_000..=1_800_000_000).contains(&p.lon_e7)
}

/// Great-circle distance in metres (haversine formula).
pub fn great_circle_m(a: GeoPosition, b: GeoPosition) -> f64 {
    let (lat1, lon1) = radians(a);
    let (lat2, lon2) = radians(b);
    let dlat = lat2 - lat1;
    let dlon = lon2 - lon1;
    let h = (dlat / 2.0).sin().powi(2) + lat1.cos() * lat2.cos() * (dlon / 2.0).sin().powi(2);
    2.0 * EARTH_RADIUS_M * h.sqrt().min(1.0).asin()
}

/// Round trip at the speed of light in fiber over the great circle, or
/// `None` when either position is invalid.
pub fn rtt_prior(a: GeoPosition, b: GeoPosition) -> Option<Duration> {
    if !is_valid(a) || !is_valid(b) {
        return None;
    }
    Some(Duration::from_secs_f64(2.0 * great_circle_m(a, b) / FIBER_SPEED_M_PER_S))
}

fn radians(p: GeoPosition) -> (f64, f64) {
    ((f64::from(p.lat_e7) / E7).to_radians(), (f64::from(p.lon_e7) / E7).to_radians())
}

/// A position from degrees, for configs and tests.
pub fn from_degrees(lat: f64, lon: f64) -> GeoPosition {
    GeoPosition { lat_e7: (lat * E7).round() as i32, lon_e7: (lon * E7).round() as i32 }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn paris() -> GeoPosition {
        from_degrees(48.8566, 2.3522)
    }

    pub(crate) fn new_york() -> GeoPosition {
        from_degrees(40.7128, -74.0060)
    }

    #[test]
    fn paris_to_new_york_is_about_5840_km_and_58_ms_round_trip() {
        let d = great_circle_m(paris(), new_york());
        assert!((5_800_000.0..5_880_000.0).contains(&d), "{d}");
        let rtt = rtt_prior(paris(), new_york()).unwrap();
        assert!((Duration::from_millis(57)..Duration::from_millis(59)).contains(&rtt), "{rtt:?}");
    }

    #[test]
    fn a_position_to_itself_is_zero_and_antipodes_are_half_the_globe() {
        assert_eq!(great_circle_m(paris(), paris()), 0.0);
        let d = great_circle_m(from_degrees(0.0, 0.0), from_degrees(0.0, 180.0));
        assert!((d - std::f64::consts::PI * EARTH_RADIUS_M).abs() < 1.0);
    }

    #[test]
    fn positions_off_the_globe_give_no_prior() {
        let bad = GeoPosition { lat_e7: i32::MAX, lon_e7: 0 };
        assert_eq!(rtt_prior(bad, paris()), None);
        assert_eq!(rtt_prior(paris(), GeoPosition { lat_e7: 0, lon_e7: i32::MIN }), None);
    }
}
