//! The two raw sources of settings, before validation: the TOML file
//! ([`FileConfig`], unknown keys refused) and the command line ([`Cli`]).
//! Every setting is optional in both; flags win over the file, the file
//! over the defaults ([`super::NodeConfig`] documents them).

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;

/// `position = { lat = 52.37, lon = 4.89 }`.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPosition {
    pub lat: f64,
    pub lon: f64,
}

/// The config file. Numbers are read wide and checked by validation, so
/// every range error names its key and value the same way.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub key_file: Option<PathBuf>,
    pub port: Option<i64>,
    pub peers: Option<Vec<String>>,
    /// Link class per peer: `"udp://HOST:PORT" = "fiber"`.
    pub peer_class: Option<BTreeMap<String, String>>,
    pub tun_name: Option<String>,
    pub cores: Option<String>,
    pub api_listen: Option<String>,
    pub metrics_listen: Option<String>,
    pub instance: Option<String>,
    pub no_tun: Option<bool>,
    pub transit_limit_mbps: Option<f64>,
    pub no_offload: Option<bool>,
    pub busy_poll_us: Option<i64>,
    pub no_steer: Option<bool>,
    pub lan_discovery: Option<bool>,
    pub target_peers: Option<i64>,
    pub position: Option<RawPosition>,
    pub log_level: Option<String>,
    pub log_format: Option<String>,
}

/// myceliumd's command line. Each flag overrides the config file's key of
/// the same name (`--peer` and `--peer-class`, when given, replace the
/// file's whole list).
#[derive(Debug, Clone, Default, PartialEq, clap::Parser)]
#[command(
    name = "myceliumd",
    version,
    about = "The mycelium mesh node: peering, routing, and the dataplane's supervisor"
)]
pub struct Cli {
    /// Configuration file (TOML); see control/node.example.toml.
    #[arg(long, short = 'c', value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// The node's secret key file (32 raw bytes, mode 0600; created if missing) [default: priv_key.bin].
    #[arg(long, value_name = "FILE")]
    pub key_file: Option<PathBuf>,
    /// UDP port for peers and the mesh [default: 9651].
    #[arg(long, value_name = "PORT")]
    pub port: Option<i64>,
    #[arg(long = "peer", value_name = "URL", help = "A static peer, udp://[KEY@]HOST:PORT (repeat for several)")]
    pub peers: Vec<String>,
    /// A static peer's link class, URL=CLASS (fiber, ethernet, wifi, cellular, satellite).
    #[arg(long = "peer-class", value_name = "URL=CLASS")]
    pub peer_class: Vec<String>,
    /// Name of the TUN device [default: mycelium].
    #[arg(long, value_name = "NAME")]
    pub tun_name: Option<String>,
    /// CPU cores for dataplane shards, e.g. "0,2-5" [default: all online cores].
    #[arg(long, value_name = "LIST")]
    pub cores: Option<String>,
    /// Admin API listen address [default: 127.0.0.1:8990].
    #[arg(long, value_name = "ADDR")]
    pub api_listen: Option<String>,
    /// Prometheus /metrics listen address [default: 127.0.0.1:9990].
    #[arg(long, value_name = "ADDR")]
    pub metrics_listen: Option<String>,
    #[arg(long, value_name = "NAME", help = "Names /dev/shm/mycelium-<instance> [default: the node's /64 in hex]")]
    pub instance: Option<String>,
    /// Run without a TUN device (a pure relay) [default: false].
    #[arg(long, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true", require_equals = true)]
    pub no_tun: Option<bool>,
    /// Cap on what the node forwards for others, Mbit/s, shared fairly between sources [default: no cap].
    #[arg(long, value_name = "MBPS")]
    pub transit_limit_mbps: Option<f64>,
    /// Run the dataplane without TUN and UDP offloads (TSO/USO, UDP GSO/GRO),
    /// packet by packet [default: false].
    #[arg(long, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true", require_equals = true)]
    pub no_offload: Option<bool>,
    /// Microseconds each dataplane shard keeps polling for packets after a
    /// batch before it sleeps: lower latency for a busy core [default: 0, never].
    #[arg(long, value_name = "US")]
    pub busy_poll_us: Option<i64>,
    /// Leave the dataplane's receiving shard to the kernel's hash of the
    /// underlay address and port (one shard per peer) instead of spreading
    /// DATA by sending shard and node pair [default: false].
    #[arg(long, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true", require_equals = true)]
    pub no_steer: Option<bool>,
    /// Find peers on the local link with multicast beacons [default: true].
    #[arg(long, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true", require_equals = true)]
    pub lan_discovery: Option<bool>,
    /// Links to keep, dialing learnt peers while below [default: 8].
    #[arg(long, value_name = "N")]
    pub target_peers: Option<i64>,
    /// This node's position, "LAT,LON" in degrees (a prior for link costs).
    #[arg(long, value_name = "LAT,LON")]
    pub position: Option<String>,
    /// Log level: error, warn, info, debug or trace [default: info].
    #[arg(long, value_name = "LEVEL")]
    pub log_level: Option<String>,
    /// Log format: text or json [default: text].
    #[arg(long, value_name = "FORMAT")]
    pub log_format: Option<String>,
}
