//! `mycelium-dataplane`: runs the shards of one node.
//!
//! By default each shard runs the sealed engine: it reads the route snapshot
//! and key table that myceliumd publishes in the shared-memory directory.
//! `--engine passthrough` runs the I/O test engine instead (static peers,
//! **no encryption**), which exists only to test the I/O layer.

use std::net::{Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use mycelium_common::address::OverlayAddress;
use mycelium_common::shm::ShmDir as CommonShmDir;
use mycelium_common::time::Timestamp;
use mycelium_dataplane::config::{
    Config, MAX_BUSY_POLL_US, TunConfig, check_interface_name, check_mtu, check_overlay, parse_core_list,
    parse_static_peer,
};
use mycelium_dataplane::engine::passthrough::PassthroughEngine;
use mycelium_dataplane::engine::sealed::{SealedConfig, SealedEngine};
use mycelium_dataplane::io::node::{Node, resolve_cores};
use mycelium_dataplane::io::{shm, signals};
use mycelium_dataplane::sessions::SharedSessions;
use tracing::{error, info, warn};

/// The per-core packet engine of a mycelium node.
#[derive(Debug, Parser)]
#[command(name = "mycelium-dataplane", version)]
struct Args {
    /// UDP port of the node (every shard joins one SO_REUSEPORT group on it, IPv4 and IPv6).
    #[arg(long, default_value_t = 9651)]
    port: u16,
    /// CPUs to run one shard each on, e.g. `0,2-5` [default: every CPU the process may use].
    #[arg(long, value_parser = parse_cores)]
    cores: Option<CoreList>,
    /// Name of the TUN device.
    #[arg(long, default_value = "myc0")]
    tun_name: String,
    /// MTU of the TUN device. The default leaves room for the overlay's 64 bytes
    /// (routed header and tag) and an IPv6 + UDP underlay header in a 1500-byte path.
    #[arg(long, default_value_t = 1380)]
    mtu: u32,
    /// The node's overlay address (in 400::/7); the TUN gets its /64. Required unless --no-tun.
    #[arg(long)]
    address: Option<Ipv6Addr>,
    /// Instance name: keeps the shared-memory files of several nodes on one host apart.
    #[arg(long, default_value = "default")]
    instance: String,
    /// Shared-memory directory [default: /dev/shm/mycelium-<instance>].
    #[arg(long)]
    shm_dir: Option<PathBuf>,
    /// Which per-packet engine the shards run.
    #[arg(long, value_enum, default_value_t = EngineKind::Sealed)]
    engine: EngineKind,
    /// A static peer of the passthrough engine: OVERLAY_ADDRESS=IP:PORT (repeatable).
    #[arg(long = "static-peer", value_parser = parse_static_peer)]
    static_peers: Vec<(Ipv6Addr, SocketAddr)>,
    /// Relay only: no TUN device.
    #[arg(long)]
    no_tun: bool,
    /// Run without TUN and UDP offloads (no TSO/USO super-packets, UDP GSO or GRO):
    /// packet by packet, as on kernels that lack them.
    #[arg(long)]
    no_offload: bool,
    /// Leave the choice of receiving shard to the kernel's hash of the underlay
    /// address and port (all of one peer's traffic on one shard), instead of
    /// spreading DATA by its sending shard and node pair.
    #[arg(long)]
    no_steer: bool,
    /// Caps what the node forwards for others, in Mbit/s (shared max-min
    /// fairly between source /64s) [default: no cap].
    #[arg(long, value_parser = parse_mbps)]
    transit_limit_mbps: Option<u64>,
    /// Microseconds a shard keeps polling for packets after each batch before
    /// it sleeps (0: never poll). Polling saves the wake-ups that add tens of
    /// microseconds per hop to a round trip, at the price of a busy core for
    /// that long after the last packet.
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u64).range(0..=MAX_BUSY_POLL_US))]
    busy_poll_us: u64,
}

/// Mbit/s (a positive decimal, fractions allowed) as bits per second.
fn parse_mbps(s: &str) -> Result<u64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && (0.001..=1e7).contains(&v) => Ok((v * 1e6) as u64),
        _ => Err(format!("{s:?}: expected Mbit/s between 0.001 and 10000000")),
    }
}

/// The engines a shard can run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum EngineKind {
    /// End-to-end sealed packets, routes and keys from myceliumd.
    Sealed,
    /// The I/O test engine: static peers, no encryption.
    Passthrough,
}

/// A parsed `--cores` value (a newtype, so clap takes it as one value).
#[derive(Debug, Clone)]
struct CoreList(Vec<usize>);

fn parse_cores(s: &str) -> Result<CoreList, mycelium_dataplane::config::ConfigError> {
    parse_core_list(s).map(CoreList)
}

fn config(args: Args) -> anyhow::Result<(Config, EngineKind)> {
    let engine = args.engine;
    if engine == EngineKind::Sealed && !args.static_peers.is_empty() {
        anyhow::bail!("--static-peer is for --engine passthrough; the sealed engine takes routes from myceliumd");
    }
    if args.instance.is_empty() || args.instance.contains('/') {
        anyhow::bail!("--instance {:?}: must be a non-empty name without '/'", args.instance);
    }
    let address = args.address.map(check_overlay).transpose()?;
    let tun = if args.no_tun {
        None
    } else {
        check_interface_name(&args.tun_name)?;
        check_mtu(args.mtu)?;
        let address = address.context("--address is required with a TUN (or pass --no-tun)")?;
        Some(TunConfig { name: args.tun_name, mtu: args.mtu, address })
    };
    if engine == EngineKind::Sealed && address.is_none() {
        anyhow::bail!("--address is required: the sealed engine needs the node's overlay address");
    }
    let config = Config {
        port: args.port,
        cores: args.cores.map(|c| c.0),
        tun,
        shm_dir: args.shm_dir.unwrap_or_else(|| shm::default_dir(&args.instance)),
        static_peers: args.static_peers,
        address,
        offload: !args.no_offload,
        busy_poll: std::time::Duration::from_micros(args.busy_poll_us),
        steer: !args.no_steer,
        transit_limit_bps: args.transit_limit_mbps,
    };
    Ok((config, engine))
}

fn run((config, engine): (Config, EngineKind)) -> anyhow::Result<()> {
    signals::block_shutdown_signals().context("blocking SIGINT/SIGTERM")?;
    let has_tun = config.tun.is_some();
    let node = match engine {
        EngineKind::Passthrough => {
            warn!("running the passthrough test engine: packets are NOT encrypted");
            Node::start(&config, |_| PassthroughEngine::new(config.address, has_tun, &config.static_peers))?
        }
        EngineKind::Sealed => {
            let address = config.address.context("--address is required")?;
            let local = OverlayAddress::from_bytes(address.octets())?;
            // The shard id goes into every nonce as one byte: more shards
            // than that would make two shards share a nonce space.
            let shards = resolve_cores(config.cores.as_deref())?.len();
            if shards > 256 {
                anyhow::bail!("{shards} shards: the sealed engine supports at most 256 (choose with --cores)");
            }
            let epoch = Timestamp::now().as_nanos();
            // Each shard forwards its share of the transit limit.
            let transit_limit_bps = config.transit_limit_bps.map(|bps| (bps / shards as u64).max(1));
            if let Some(bps) = config.transit_limit_bps {
                info!(bps, shards, "transit limited, shared fairly between sources");
            }
            let shared = SharedSessions::default();
            let dir = CommonShmDir::at(&config.shm_dir);
            let node = Node::start(&config, |index| {
                // The shard's position on the steering circle: distinct per shard.
                let shard = mycelium_dataplane::io::steer::shard_byte(index, shards);
                let sealed = SealedConfig { shard, local, has_tun, epoch, transit_limit_bps };
                SealedEngine::new(sealed, dir.clone(), shared.clone())
            })?;
            shm::write_epoch(&config.shm_dir, epoch)?;
            info!(epoch, %address, "sealed engine running; waiting for myceliumd's routes and keys");
            node
        }
    };
    node.run_until_signal();
    node.stop()?;
    Ok(())
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let result = config(Args::parse()).and_then(run);
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            error!("{e:#}");
            ExitCode::FAILURE
        }
    }
}
