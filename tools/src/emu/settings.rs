//! Settings in human units: the flags of `mlab-emu` (`10ms`, `0.5%`,
//! `100mbit`, `256kb`) and the JSON lines of its control socket.
//!
//! A control line changes only the fields it names, in one or both
//! directions:
//!
//! ```text
//! {"delay_ms":80,"loss":0.02}
//! {"direction":"a_to_b","up":false}
//! {"gilbert":{"p":0.01,"r":0.25,"k":0,"h":1},"rate_bps":5000000,"queue_bytes":65536}
//! {"rate_bps":null}                      (no rate limit)
//! ```

use std::time::Duration;

use serde::Deserialize;

use super::impairment::Impairment;
use crate::sim::Loss;

/// A setting that cannot be understood.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SettingsError {
    #[error("bad duration {0:?}: expected a number and a unit, e.g. 10ms, 1.5s, 250us")]
    Duration(String),
    #[error("bad rate {0:?}: expected e.g. 100mbit, 1gbit, 500kbit, 64000bit")]
    Rate(String),
    #[error("bad size {0:?}: expected e.g. 256kb, 1mb, 1500b")]
    Size(String),
    #[error("bad probability {0:?}: expected 0.5%, or a fraction 0.005, between 0 and 1")]
    Probability(String),
    #[error("bad Gilbert-Elliott model {0:?}: expected p,r[,h[,k]] as probabilities, e.g. 1%,25%,100%,0%")]
    Gilbert(String),
    #[error("bad control line: {0}")]
    Json(String),
}

fn split_unit(s: &str) -> Option<(f64, String)> {
    let s = s.trim();
    let end = s.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(s.len());
    let value: f64 = s[..end].parse().ok()?;
    (value.is_finite() && value >= 0.0).then(|| (value, s[end..].trim().to_ascii_lowercase()))
}

/// `10ms`, `1.5s`, `250us`, `0`.
pub fn parse_duration(s: &str) -> Result<Duration, SettingsError> {
    let err = || SettingsError::Duration(s.to_owned());
    let (v, unit) = split_unit(s).ok_or_else(err)?;
    let secs = match unit.as_str() {
        "s" => v,
        "ms" => v / 1e3,
        "us" => v / 1e6,
        "ns" => v / 1e9,
        "" if v == 0.0 => 0.0,
        _ => return Err(err()),
    };
    Duration::try_from_secs_f64(secs).map_err(|_| err())
}

/// Bits per second, tc-style: `bit`, `kbit`, `mbit`, `gbit` (powers of 1000).
pub fn parse_rate(s: &str) -> Result<u64, SettingsError> {
    let err = || SettingsError::Rate(s.to_owned());
    let (v, unit) = split_unit(s).ok_or_else(err)?;
    let mult = match unit.as_str() {
        "bit" | "" => 1.0,
        "kbit" => 1e3,
        "mbit" => 1e6,
        "gbit" => 1e9,
        _ => return Err(err()),
    };
    let bps = v * mult;
    if !(1.0..=1e13).contains(&bps) {
        return Err(err());
    }
    Ok(bps as u64)
}

/// Bytes, tc-style: `b`, `kb`, `mb` (powers of 1024).
pub fn parse_size(s: &str) -> Result<u64, SettingsError> {
    let err = || SettingsError::Size(s.to_owned());
    let (v, unit) = split_unit(s).ok_or_else(err)?;
    let mult = match unit.as_str() {
        "b" | "" => 1.0,
        "kb" | "k" => 1024.0,
        "mb" | "m" => 1024.0 * 1024.0,
        _ => return Err(err()),
    };
    let bytes = v * mult;
    if bytes > 1e12 {
        return Err(err());
    }
    Ok(bytes as u64)
}

/// `0.5%` or `0.005`.
pub fn parse_probability(s: &str) -> Result<f64, SettingsError> {
    let err = || SettingsError::Probability(s.to_owned());
    let t = s.trim();
    let p = match t.strip_suffix('%') {
        Some(pct) => pct.trim().parse::<f64>().map_err(|_| err())? / 100.0,
        None => t.parse::<f64>().map_err(|_| err())?,
    };
    check_probability(p).ok_or_else(err)
}

fn check_probability(p: f64) -> Option<f64> {
    (0.0..=1.0).contains(&p).then_some(p)
}

/// `p,r[,h[,k]]`: P(good -> bad), P(bad -> good), loss in the bad state
/// (default 100 %), loss in the good state (default 0 %).
pub fn parse_gilbert(s: &str) -> Result<Loss, SettingsError> {
    let parts: Vec<&str> = s.split(',').collect();
    let prob = |i: usize, default: f64| {
        parts.get(i).map_or(Ok(default), |x| parse_probability(x).map_err(|_| SettingsError::Gilbert(s.to_owned())))
    };
    if !(2..=4).contains(&parts.len()) {
        return Err(SettingsError::Gilbert(s.to_owned()));
    }
    Ok(Loss::GilbertElliott { p: prob(0, 0.0)?, r: prob(1, 0.0)?, h: prob(2, 1.0)?, k: prob(3, 0.0)? })
}

/// Which directions a control line changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Which {
    #[default]
    Both,
    AToB,
    BToA,
}

impl Which {
    pub fn includes_a_to_b(self) -> bool {
        self != Which::BToA
    }

    pub fn includes_b_to_a(self) -> bool {
        self != Which::AToB
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GilbertJson {
    pub p: f64,
    pub r: f64,
    #[serde(default = "one")]
    pub h: f64,
    #[serde(default)]
    pub k: f64,
}

fn one() -> f64 {
    1.0
}

/// One control line: only the fields present change.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Update {
    #[serde(default)]
    pub direction: Which,
    pub delay_ms: Option<f64>,
    pub jitter_ms: Option<f64>,
    /// Random loss, a fraction (0.02 is 2 %); 0 turns loss off.
    pub loss: Option<f64>,
    pub gilbert: Option<GilbertJson>,
    /// `null` removes the limit; absent leaves it as it is.
    #[serde(default, deserialize_with = "some_option")]
    pub rate_bps: Option<Option<u64>>,
    pub queue_bytes: Option<u64>,
    pub up: Option<bool>,
    /// Ask for counters; changes nothing.
    #[serde(default)]
    pub stats: bool,
}

fn some_option<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<u64>>, D::Error> {
    Option::<u64>::deserialize(d).map(Some)
}

impl Update {
    /// Parses and checks one JSON line.
    pub fn parse(line: &str) -> Result<Update, SettingsError> {
        let u: Update = serde_json::from_str(line).map_err(|e| SettingsError::Json(e.to_string()))?;
        let bad = |what: &str| Err(SettingsError::Json(format!("{what} out of range")));
        for (name, ms) in [("delay_ms", u.delay_ms), ("jitter_ms", u.jitter_ms)] {
            if ms.is_some_and(|v| !(0.0..=3_600_000.0).contains(&v)) {
                return bad(name);
            }
        }
        if u.loss.is_some_and(|p| check_probability(p).is_none()) {
            return bad("loss");
        }
        if let Some(g) = u.gilbert
            && [g.p, g.r, g.h, g.k].iter().any(|x| check_probability(*x).is_none())
        {
            return bad("gilbert");
        }
        if u.loss.is_some() && u.gilbert.is_some() {
            return Err(SettingsError::Json("give loss or gilbert, not both".into()));
        }
        if u.rate_bps == Some(Some(0)) {
            return bad("rate_bps");
        }
        Ok(u)
    }

    /// `base` with this line's changes.
    pub fn apply(&self, base: Impairment) -> Impairment {
        let mut s = base;
        if let Some(ms) = self.delay_ms {
            s.delay = Duration::from_secs_f64(ms / 1e3);
        }
        if let Some(ms) = self.jitter_ms {
            s.jitter = Duration::from_secs_f64(ms / 1e3);
        }
        if let Some(p) = self.loss {
            s.loss = if p == 0.0 { Loss::None } else { Loss::Random(p) };
        }
        if let Some(g) = self.gilbert {
            s.loss = Loss::GilbertElliott { p: g.p, r: g.r, k: g.k, h: g.h };
        }
        if let Some(rate) = self.rate_bps {
            s.rate_bps = rate;
        }
        if let Some(q) = self.queue_bytes {
            s.queue_bytes = q;
        }
        if let Some(up) = self.up {
            s.up = up;
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_parse_like_tc() {
        assert_eq!(parse_duration("10ms"), Ok(Duration::from_millis(10)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("250us"), Ok(Duration::from_micros(250)));
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        assert_eq!(parse_rate("100mbit"), Ok(100_000_000));
        assert_eq!(parse_rate("1gbit"), Ok(1_000_000_000));
        assert_eq!(parse_size("256kb"), Ok(262_144));
        assert_eq!(parse_size("1500b"), Ok(1500));
        assert_eq!(parse_probability("0.5%"), Ok(0.005));
        assert_eq!(parse_probability("0.02"), Ok(0.02));
        assert_eq!(parse_gilbert("1%,25%"), Ok(Loss::GilbertElliott { p: 0.01, r: 0.25, h: 1.0, k: 0.0 }));
    }

    #[test]
    fn bad_values_are_errors_not_panics() {
        for s in ["", "10", "ms", "-1ms", "10 parsecs", "1e400s", "nan"] {
            assert!(parse_duration(s).is_err(), "{s}");
        }
        assert!(parse_rate("0mbit").is_err());
        assert!(parse_rate("100mbps").is_err());
        assert!(parse_size("1tb").is_err());
        assert!(parse_probability("150%").is_err());
        assert!(parse_probability("-0.1").is_err());
        assert!(parse_gilbert("1%").is_err());
        assert!(parse_gilbert("1%,2%,3%,4%,5%").is_err());
    }

    #[test]
    fn a_control_line_changes_only_what_it_names() {
        let base = Impairment { delay: Duration::from_millis(5), rate_bps: Some(1_000_000), ..Impairment::default() };
        let u = Update::parse(r#"{"delay_ms":80,"loss":0.02}"#).unwrap();
        let s = u.apply(base);
        assert_eq!(s.delay, Duration::from_millis(80));
        assert_eq!(s.loss, Loss::Random(0.02));
        assert_eq!(s.rate_bps, Some(1_000_000));
        let s = Update::parse(r#"{"rate_bps":null,"up":false}"#).unwrap().apply(s);
        assert_eq!((s.rate_bps, s.up, s.delay), (None, false, Duration::from_millis(80)));
        let u = Update::parse(r#"{"direction":"b_to_a","gilbert":{"p":0.01,"r":0.2}}"#).unwrap();
        assert_eq!(u.direction, Which::BToA);
        assert_eq!(u.apply(s).loss, Loss::GilbertElliott { p: 0.01, r: 0.2, k: 0.0, h: 1.0 });
    }

    #[test]
    fn bad_control_lines_are_refused() {
        for line in [
            "",
            "{",
            r#"{"delay":80}"#,
            r#"{"loss":2}"#,
            r#"{"delay_ms":-1}"#,
            r#"{"rate_bps":0}"#,
            r#"{"direction":"sideways"}"#,
            r#"{"loss":0.1,"gilbert":{"p":0.1,"r":0.1}}"#,
        ] {
            assert!(Update::parse(line).is_err(), "{line}");
        }
    }
}
