//! The lab's topology file (TOML): the nodes, and the links between them
//! with their emulated conditions. [`Topology::parse`] refuses unknown keys
//! and names the bad key and value in its error.
//!
//! ```toml
//! [[node]]
//! name = "a"                 # 1-8 characters: a-z, 0-9
//! lat = 52.37                # optional, with lon: the node's position
//! lon = 4.90
//! args = ["--log-level", "debug"]   # optional, appended to myceliumd's flags
//!
//! [[link]]
//! a = "a"
//! b = "b"
//! delay = "80ms"             # one way, each direction; default 0
//! jitter = "5ms"             # +- around the delay; default 0
//! loss = "2%"                # random loss; or gilbert = "1%,25%" (p,r[,h[,k]])
//! rate = "200mbit"           # default unlimited
//! queue = "256kb"            # the rate limiter's queue; default 256kb
//! class = "fiber"            # fiber, ethernet (default), wifi, cellular, satellite
//! dial = "a"                 # who dials: "a" (default), "b" or "both"
//! down = false               # start with the link down
//! ```
//!
//! A link's class is written into the config of the node(s) that dial it
//! (`peer_class`): a node knows the class of the links it dials, so give
//! `dial = "both"` where both ends should cost the link by its class.
//!
//! Several links may join the same two nodes: each is its own link, with
//! its own underlay addresses and emulator, and `mlab link A B --index N`
//! picks the N-th (from 0, in file order) between A and B.

use std::time::Duration;

use serde::Deserialize;

use crate::emu::Impairment;
use crate::emu::settings::{parse_duration, parse_gilbert, parse_probability, parse_rate, parse_size};
use crate::sim::Loss;

/// The link classes a node knows (`peer_class` in its config).
pub const CLASSES: [&str; 5] = ["fiber", "ethernet", "wifi", "cellular", "satellite"];

/// The most nodes and links one lab holds (addresses and names are
/// allotted from these ranges).
pub const MAX_NODES: usize = 250;
pub const MAX_LINKS: usize = 1000;

/// A topology file that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TopologyError {
    #[error("{0}")]
    Toml(String),
    #[error("{what}: bad {key} {value:?}: {why}")]
    Value { what: String, key: &'static str, value: String, why: String },
    #[error("{0}")]
    Structure(String),
}

/// Who dials a link: the other side accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Dial {
    #[default]
    A,
    B,
    Both,
}

impl Dial {
    pub fn a_dials(self) -> bool {
        self != Dial::B
    }

    pub fn b_dials(self) -> bool {
        self != Dial::A
    }
}

/// A node.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeSpec {
    pub name: String,
    /// Latitude and longitude in degrees.
    pub position: Option<(f64, f64)>,
    /// Extra `myceliumd` flags.
    pub args: Vec<String>,
}

/// A link between nodes `a` and `b` (indices into [`Topology::nodes`]).
#[derive(Debug, Clone, PartialEq)]
pub struct LinkSpec {
    pub a: usize,
    pub b: usize,
    /// The conditions, the same in both directions.
    pub impairment: Impairment,
    /// One of [`CLASSES`].
    pub class: String,
    pub dial: Dial,
}

/// A lab's nodes and links.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Topology {
    pub nodes: Vec<NodeSpec>,
    pub links: Vec<LinkSpec>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    node: Vec<RawNode>,
    #[serde(default)]
    link: Vec<RawLink>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNode {
    name: String,
    lat: Option<f64>,
    lon: Option<f64>,
    #[serde(default)]
    args: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLink {
    a: String,
    b: String,
    delay: Option<String>,
    jitter: Option<String>,
    loss: Option<String>,
    gilbert: Option<String>,
    rate: Option<String>,
    queue: Option<String>,
    class: Option<String>,
    dial: Option<String>,
    down: Option<bool>,
}

impl Topology {
    /// Reads a topology file's text.
    pub fn parse(text: &str) -> Result<Topology, TopologyError> {
        let raw: RawFile = toml::from_str(text).map_err(|e| TopologyError::Toml(e.to_string().trim().to_owned()))?;
        let mut topo = Topology::default();
        for n in raw.node {
            topo.nodes.push(node(n, &topo.nodes)?);
        }
        if topo.nodes.is_empty() {
            return Err(TopologyError::Structure("no [[node]]: a lab needs at least one node".into()));
        }
        if topo.nodes.len() > MAX_NODES {
            return Err(TopologyError::Structure(format!("{} nodes: at most {MAX_NODES}", topo.nodes.len())));
        }
        for (i, l) in raw.link.into_iter().enumerate() {
            let link = link(i, l, &topo.nodes)?;
            topo.links.push(link);
        }
        if topo.links.len() > MAX_LINKS {
            return Err(TopologyError::Structure(format!("{} links: at most {MAX_LINKS}", topo.links.len())));
        }
        Ok(topo)
    }

    /// The index of the node called `name`.
    pub fn node_index(&self, name: &str) -> Option<usize> {
        self.nodes.iter().position(|n| n.name == name)
    }

    /// The links between `x` and `y` (either way round), in file order.
    pub fn links_between(&self, x: usize, y: usize) -> Vec<usize> {
        let joins = |l: &LinkSpec| (l.a == x && l.b == y) || (l.a == y && l.b == x);
        self.links.iter().enumerate().filter(|(_, l)| joins(l)).map(|(i, _)| i).collect()
    }
}

fn node(n: RawNode, earlier: &[NodeSpec]) -> Result<NodeSpec, TopologyError> {
    let what = format!("node {:?}", n.name);
    let bad = |key, value: String, why: &str| TopologyError::Value { what: what.clone(), key, value, why: why.into() };
    if !valid_name(&n.name) {
        return Err(bad("name", n.name.clone(), "expected 1-8 characters, a-z and 0-9"));
    }
    if earlier.iter().any(|e| e.name == n.name) {
        return Err(bad("name", n.name.clone(), "a node of that name is already defined"));
    }
    let position = match (n.lat, n.lon) {
        (None, None) => None,
        (Some(lat), Some(lon)) => {
            if !(-90.0..=90.0).contains(&lat) {
                return Err(bad("lat", lat.to_string(), "expected degrees from -90 to 90"));
            }
            if !(-180.0..=180.0).contains(&lon) {
                return Err(bad("lon", lon.to_string(), "expected degrees from -180 to 180"));
            }
            Some((lat, lon))
        }
        (Some(lat), None) => return Err(bad("lat", lat.to_string(), "lat needs lon too")),
        (None, Some(lon)) => return Err(bad("lon", lon.to_string(), "lon needs lat too")),
    };
    Ok(NodeSpec { name: n.name, position, args: n.args })
}

/// Node names become parts of namespace and instance names.
pub fn valid_name(s: &str) -> bool {
    (1..=8).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

fn link(i: usize, l: RawLink, nodes: &[NodeSpec]) -> Result<LinkSpec, TopologyError> {
    let what = format!("link {i} ({}-{})", l.a, l.b);
    let bad =
        |key, value: &str, why: String| TopologyError::Value { what: what.clone(), key, value: value.into(), why };
    let find = |key, name: &str| {
        nodes.iter().position(|n| n.name == name).ok_or_else(|| bad(key, name, "no [[node]] has that name".into()))
    };
    let (a, b) = (find("a", &l.a)?, find("b", &l.b)?);
    if a == b {
        return Err(bad("b", &l.b, "a link joins two different nodes".into()));
    }
    let duration = |key, v: &Option<String>| -> Result<Duration, TopologyError> {
        v.as_deref().map_or(Ok(Duration::ZERO), |s| parse_duration(s).map_err(|e| bad(key, s, e.to_string())))
    };
    let mut imp = Impairment {
        delay: duration("delay", &l.delay)?,
        jitter: duration("jitter", &l.jitter)?,
        ..Default::default()
    };
    imp.loss = match (&l.loss, &l.gilbert) {
        (Some(_), Some(g)) => return Err(bad("gilbert", g, "give loss or gilbert, not both".into())),
        (Some(s), None) => match parse_probability(s).map_err(|e| bad("loss", s, e.to_string()))? {
            0.0 => Loss::None,
            p => Loss::Random(p),
        },
        (None, Some(s)) => parse_gilbert(s).map_err(|e| bad("gilbert", s, e.to_string()))?,
        (None, None) => Loss::None,
    };
    if let Some(s) = &l.rate {
        imp.rate_bps = Some(parse_rate(s).map_err(|e| bad("rate", s, e.to_string()))?);
    }
    if let Some(s) = &l.queue {
        imp.queue_bytes = parse_size(s).map_err(|e| bad("queue", s, e.to_string()))?;
    }
    imp.up = !l.down.unwrap_or(false);
    let class = l.class.unwrap_or_else(|| "ethernet".into());
    if !CLASSES.contains(&class.as_str()) {
        return Err(bad("class", &class, format!("expected one of {}", CLASSES.join(", "))));
    }
    let dial = match l.dial.as_deref() {
        None | Some("a") => Dial::A,
        Some("b") => Dial::B,
        Some("both") => Dial::Both,
        Some(other) => return Err(bad("dial", other, "expected \"a\", \"b\" or \"both\"".into())),
    };
    Ok(LinkSpec { a, b, impairment: imp, class, dial })
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
        [[node]]
        name = "a"
        lat = 52.37
        lon = 4.9
        args = ["--log-level", "debug"]

        [[node]]
        name = "b"

        [[link]]
        a = "a"
        b = "b"
        delay = "80ms"
        jitter = "5ms"
        loss = "2%"
        rate = "200mbit"
        queue = "64kb"
        class = "satellite"
        dial = "both"

        [[link]]
        a = "b"
        b = "a"
        gilbert = "1%,25%"
        down = true
    "#;

    fn error(text: &str) -> String {
        Topology::parse(text).expect_err("refused").to_string()
    }

    #[test]
    fn a_good_file_gives_every_setting_in_machine_units() {
        let t = Topology::parse(GOOD).unwrap();
        assert_eq!(t.nodes.len(), 2);
        assert_eq!(t.nodes[0].position, Some((52.37, 4.9)));
        assert_eq!(t.nodes[0].args, ["--log-level", "debug"]);
        assert_eq!(t.nodes[1].position, None);
        let l = &t.links[0];
        assert_eq!((l.a, l.b, l.dial, l.class.as_str()), (0, 1, Dial::Both, "satellite"));
        assert_eq!(l.impairment.delay, Duration::from_millis(80));
        assert_eq!(l.impairment.jitter, Duration::from_millis(5));
        assert_eq!(l.impairment.loss, Loss::Random(0.02));
        assert_eq!(l.impairment.rate_bps, Some(200_000_000));
        assert_eq!(l.impairment.queue_bytes, 64 * 1024);
        assert!(l.impairment.up);
        let l = &t.links[1];
        assert_eq!((l.a, l.b, l.dial, l.class.as_str()), (1, 0, Dial::A, "ethernet"));
        assert_eq!(l.impairment.loss, Loss::GilbertElliott { p: 0.01, r: 0.25, h: 1.0, k: 0.0 });
        assert!(!l.impairment.up);
    }

    #[test]
    fn two_links_between_the_same_nodes_are_two_links_found_either_way_round() {
        let t = Topology::parse(GOOD).unwrap();
        assert_eq!(t.links_between(0, 1), [0, 1]);
        assert_eq!(t.links_between(1, 0), [0, 1]);
        assert_eq!(t.node_index("b"), Some(1));
        assert_eq!(t.node_index("c"), None);
    }

    #[test]
    fn unknown_keys_are_refused_with_their_name() {
        let e = error("[[node]]\nname = \"a\"\ncolour = \"red\"\n");
        assert!(e.contains("colour"), "{e}");
        let e = error(
            "[[node]]\nname = \"a\"\n[[node]]\nname = \"b\"\n[[link]]\na = \"a\"\nb = \"b\"\nlatency = \"5ms\"\n",
        );
        assert!(e.contains("latency"), "{e}");
        let e = error("[lab]\nname = \"x\"\n");
        assert!(e.contains("lab"), "{e}");
    }

    #[test]
    fn bad_values_name_the_link_the_key_and_the_value() {
        let base = "[[node]]\nname = \"a\"\n[[node]]\nname = \"b\"\n[[link]]\na = \"a\"\nb = \"b\"\n";
        for (extra, key, value) in [
            ("delay = \"80 parsecs\"", "delay", "80 parsecs"),
            ("jitter = \"-1ms\"", "jitter", "-1ms"),
            ("loss = \"150%\"", "loss", "150%"),
            ("gilbert = \"1%\"", "gilbert", "1%"),
            ("rate = \"200mbps\"", "rate", "200mbps"),
            ("queue = \"1tb\"", "queue", "1tb"),
            ("class = \"pigeon\"", "class", "pigeon"),
            ("dial = \"sideways\"", "dial", "sideways"),
            ("loss = \"1%\"\ngilbert = \"1%,2%\"", "gilbert", "1%,2%"),
        ] {
            let e = error(&format!("{base}{extra}\n"));
            assert!(e.starts_with("link 0 (a-b): bad "), "{e}");
            assert!(e.contains(key) && e.contains(&format!("{value:?}")), "{extra}: {e}");
        }
    }

    #[test]
    fn links_must_join_two_defined_nodes() {
        let e = error("[[node]]\nname = \"a\"\n[[link]]\na = \"a\"\nb = \"zz\"\n");
        assert!(e.contains("bad b \"zz\": no [[node]]"), "{e}");
        let e = error("[[node]]\nname = \"a\"\n[[link]]\na = \"a\"\nb = \"a\"\n");
        assert!(e.contains("two different nodes"), "{e}");
    }

    #[test]
    fn bad_nodes_are_refused() {
        assert!(error("").contains("no [[node]]"));
        assert!(error("[[node]]\nname = \"Alpha\"\n").contains("bad name \"Alpha\""));
        assert!(error("[[node]]\nname = \"toolongname\"\n").contains("bad name"));
        assert!(error("[[node]]\nname = \"a\"\n[[node]]\nname = \"a\"\n").contains("already defined"));
        assert!(error("[[node]]\nname = \"a\"\nlat = 91.0\nlon = 0.0\n").contains("bad lat \"91\""));
        assert!(error("[[node]]\nname = \"a\"\nlat = 1.0\n").contains("lat needs lon"));
        assert!(error("[[node]]\nname = \"a\"\nlat = \"north\"\nlon = 0.0\n").contains("lat"));
    }
}
