//! myceliumd's configuration: a TOML file plus command-line flags.
//!
//! Every setting has a default, a key in the file and a flag of the same
//! name; flags override the file, the file overrides the defaults. Unknown
//! keys are refused. Each invalid value is reported with its key and value,
//! e.g. `config: peers[2] = "udp://x": missing port`. The example file
//! `control/node.example.toml` documents every key.
//!
//! ```text
//! let cli = Cli::parse();
//! let config = NodeConfig::load(&cli)?;            // reads cli.config if given
//! let instance = config.instance_name(&secret.address());
//! ```
//! [`NodeConfig::from_sources`] is the pure part (file text in, config out).

mod parse;
mod raw;

#[cfg(test)]
mod tests;

use std::fmt;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

use mycelium_common::address::OverlayAddress;
use mycelium_common::wire::tlv::GeoPosition;

pub use raw::{Cli, FileConfig, RawPosition};

use crate::discovery::{DiscoveryConfig, StaticPeer};
use crate::link::LinkClass;

/// How logs are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// A static peer and, optionally, its link's class.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerSpec {
    pub peer: StaticPeer,
    pub class: Option<LinkClass>,
}

/// The validated configuration of one node.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeConfig {
    /// Secret key file (default `priv_key.bin`, the deployed mycelium's name).
    pub key_file: PathBuf,
    /// UDP port (default 9651).
    pub port: u16,
    /// Static peers (default none).
    pub peers: Vec<PeerSpec>,
    /// TUN device name (default `mycelium`).
    pub tun_name: String,
    /// Cores for dataplane shards; `None`: every online core (the default).
    pub cores: Option<Vec<usize>>,
    /// Admin API (default 127.0.0.1:8990).
    pub api_listen: SocketAddr,
    /// Prometheus metrics (default 127.0.0.1:9990).
    pub metrics_listen: SocketAddr,
    /// Shared-memory instance name; `None`: derived from the key ([`Self::instance_name`]).
    pub instance: Option<String>,
    /// No TUN device: relay only (default false).
    pub no_tun: bool,
    /// Cap on transit forwarding, Mbit/s (default none).
    pub transit_limit_mbps: Option<f64>,
    /// Run the dataplane without TUN and UDP offloads (default false).
    pub no_offload: bool,
    /// Microseconds each dataplane shard keeps polling after a batch before
    /// it sleeps (default 0: never polls).
    pub busy_poll_us: u64,
    /// Leave the dataplane's receiving shard to the kernel's underlay hash
    /// instead of steering DATA by sending shard and node pair (default false).
    pub no_steer: bool,
    /// LAN discovery beacons (default true).
    pub lan_discovery: bool,
    /// Links to keep (default 8).
    pub target_peers: usize,
    /// This node's position (default none).
    pub position: Option<GeoPosition>,
    /// `error`, `warn`, `info` (default), `debug` or `trace`.
    pub log_level: String,
    pub log_format: LogFormat,
}

impl Default for NodeConfig {
    fn default() -> Self {
        NodeConfig {
            key_file: PathBuf::from("priv_key.bin"),
            port: 9651,
            peers: Vec::new(),
            tun_name: "mycelium".into(),
            cores: None,
            api_listen: SocketAddr::from((Ipv4Addr::LOCALHOST, 8990)),
            metrics_listen: SocketAddr::from((Ipv4Addr::LOCALHOST, 9990)),
            instance: None,
            no_tun: false,
            transit_limit_mbps: None,
            no_offload: false,
            busy_poll_us: 0,
            no_steer: false,
            lan_discovery: true,
            target_peers: 8,
            position: None,
            log_level: "info".into(),
            log_format: LogFormat::Text,
        }
    }
}

/// Why the configuration was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("config: cannot read {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("config: {path}: {message}")]
    Syntax { path: PathBuf, message: String },
    #[error("config: {key} = {value}: {reason}")]
    Invalid { key: String, value: String, reason: String },
}

fn invalid(key: impl fmt::Display, value: impl fmt::Debug, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid { key: key.to_string(), value: format!("{value:?}"), reason: reason.into() }
}

/// The longest busy-poll window accepted: the dataplane's own limit.
pub use mycelium_dataplane::config::MAX_BUSY_POLL_US;

/// The largest `target_peers` accepted (the peering layer's default peer limit).
pub const MAX_TARGET_PEERS: usize = 256;

impl NodeConfig {
    /// Reads the file named by `--config` (if any) and applies the flags.
    pub fn load(cli: &Cli) -> Result<NodeConfig, ConfigError> {
        let file = match &cli.config {
            Some(path) => Some((
                path.as_path(),
                std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.clone(), source })?,
            )),
            None => None,
        };
        NodeConfig::from_sources(file.as_ref().map(|(p, s)| (*p, s.as_str())), cli)
    }

    /// The pure part of [`load`](Self::load): file text (and its path, for
    /// messages), then the flags, over the defaults.
    pub fn from_sources(file: Option<(&Path, &str)>, cli: &Cli) -> Result<NodeConfig, ConfigError> {
        let file: FileConfig = match file {
            Some((path, text)) => toml::from_str(text)
                .map_err(|e| ConfigError::Syntax { path: path.to_owned(), message: e.to_string() })?,
            None => FileConfig::default(),
        };
        let mut config = NodeConfig::default();
        if let Some(v) = cli.key_file.clone().or(file.key_file) {
            config.key_file = v;
        }
        if let Some(v) = cli.port.or(file.port) {
            config.port =
                u16::try_from(v).ok().filter(|&p| p != 0).ok_or_else(|| invalid("port", v, "expected 1-65535"))?;
        }
        let peers = if cli.peers.is_empty() { file.peers.unwrap_or_default() } else { cli.peers.clone() };
        let classes = if cli.peer_class.is_empty() {
            file.peer_class.unwrap_or_default().into_iter().collect::<Vec<_>>()
        } else {
            let mut pairs = Vec::new();
            for (i, pair) in cli.peer_class.iter().enumerate() {
                let (url, class) = pair
                    .rsplit_once('=')
                    .ok_or_else(|| invalid(format!("peer_class[{i}]"), pair, "expected URL=CLASS"))?;
                pairs.push((url.to_owned(), class.to_owned()));
            }
            pairs
        };
        config.peers = peer_specs(&peers, &classes)?;
        if let Some(v) = cli.tun_name.clone().or(file.tun_name) {
            parse::tun_name(&v).map_err(|r| invalid("tun_name", &v, r))?;
            config.tun_name = v;
        }
        if let Some(v) = cli.cores.clone().or(file.cores) {
            config.cores = Some(parse::cores(&v).map_err(|r| invalid("cores", &v, r))?);
        }
        if let Some(v) = cli.api_listen.clone().or(file.api_listen) {
            config.api_listen = parse::listen(&v).map_err(|r| invalid("api_listen", &v, r))?;
        }
        if let Some(v) = cli.metrics_listen.clone().or(file.metrics_listen) {
            config.metrics_listen = parse::listen(&v).map_err(|r| invalid("metrics_listen", &v, r))?;
        }
        if let Some(v) = cli.instance.clone().or(file.instance) {
            parse::instance(&v).map_err(|r| invalid("instance", &v, r))?;
            config.instance = Some(v);
        }
        config.no_tun = cli.no_tun.or(file.no_tun).unwrap_or(config.no_tun);
        if let Some(v) = cli.transit_limit_mbps.or(file.transit_limit_mbps) {
            if !(v.is_finite() && (0.001..=1e7).contains(&v)) {
                return Err(invalid("transit_limit_mbps", v, "expected Mbit/s between 0.001 and 10000000"));
            }
            config.transit_limit_mbps = Some(v);
        }
        config.no_offload = cli.no_offload.or(file.no_offload).unwrap_or(config.no_offload);
        if let Some(v) = cli.busy_poll_us.or(file.busy_poll_us) {
            config.busy_poll_us = u64::try_from(v)
                .ok()
                .filter(|&us| us <= MAX_BUSY_POLL_US)
                .ok_or_else(|| invalid("busy_poll_us", v, format!("expected 0-{MAX_BUSY_POLL_US} microseconds")))?;
        }
        config.no_steer = cli.no_steer.or(file.no_steer).unwrap_or(config.no_steer);
        config.lan_discovery = cli.lan_discovery.or(file.lan_discovery).unwrap_or(config.lan_discovery);
        if let Some(v) = cli.target_peers.or(file.target_peers) {
            config.target_peers = usize::try_from(v)
                .ok()
                .filter(|&n| n <= MAX_TARGET_PEERS)
                .ok_or_else(|| invalid("target_peers", v, format!("expected 0-{MAX_TARGET_PEERS}")))?;
        }
        config.position = match (&cli.position, file.position) {
            (Some(v), _) => Some(parse::position_pair(v).map_err(|r| invalid("position", v, r))?),
            (None, Some(p)) => Some(
                parse::position(p.lat, p.lon)
                    .map_err(|r| invalid("position", format_args!("{{ lat = {:?}, lon = {:?} }}", p.lat, p.lon), r))?,
            ),
            (None, None) => None,
        };
        if let Some(v) = cli.log_level.clone().or(file.log_level) {
            if !["error", "warn", "info", "debug", "trace"].contains(&v.as_str()) {
                return Err(invalid("log_level", &v, "expected error, warn, info, debug or trace"));
            }
            config.log_level = v;
        }
        if let Some(v) = cli.log_format.clone().or(file.log_format) {
            config.log_format = match v.as_str() {
                "text" => LogFormat::Text,
                "json" => LogFormat::Json,
                _ => return Err(invalid("log_format", &v, "expected text or json")),
            };
        }
        Ok(config)
    }

    /// The shared-memory instance name: the configured one, or the node's
    /// /64 in hex (unique per key, so nodes in several namespaces of one
    /// host never share `/dev/shm/mycelium-<instance>`).
    pub fn instance_name(&self, address: &OverlayAddress) -> String {
        self.instance.clone().unwrap_or_else(|| hex::encode(&address.octets()[..8]))
    }

    /// The discovery settings this configuration implies.
    pub fn discovery_config(&self) -> DiscoveryConfig {
        DiscoveryConfig {
            port: self.port,
            target_peers: self.target_peers,
            lan: self.lan_discovery,
            ..DiscoveryConfig::default()
        }
    }
}

/// Parses the peer list and attaches classes; a class for a peer that is
/// not in the list is an error (likely a typo).
fn peer_specs(peers: &[String], classes: &[(String, String)]) -> Result<Vec<PeerSpec>, ConfigError> {
    let mut specs = Vec::with_capacity(peers.len());
    for (i, url) in peers.iter().enumerate() {
        let peer: StaticPeer = url
            .parse()
            .map_err(|e: crate::discovery::PeerUrlError| invalid(format!("peers[{i}]"), url, e.to_string()))?;
        if specs.iter().any(|s: &PeerSpec| s.peer == peer) {
            return Err(invalid(format!("peers[{i}]"), url, "listed twice"));
        }
        specs.push(PeerSpec { peer, class: None });
    }
    for (url, class) in classes {
        let key = format!("peer_class.{url:?}");
        let class = parse::link_class(class).map_err(|r| invalid(&key, class, r))?;
        let peer: StaticPeer = url
            .parse()
            .map_err(|e: crate::discovery::PeerUrlError| invalid(&key, class.name(), format!("{url:?}: {e}")))?;
        let spec = specs
            .iter_mut()
            .find(|s| s.peer == peer)
            .ok_or_else(|| invalid(&key, class.name(), "not one of the peers"))?;
        spec.class = Some(class);
    }
    Ok(specs)
}
