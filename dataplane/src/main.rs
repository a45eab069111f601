//! `mycelium-dataplane`: runs the shards of one node.
//!
//! Until the sealed engine lands, it runs the passthrough test engine (static
//! peers, **no encryption**), which is enough to test the I/O layer end to end.

use std::net::{Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use mycelium_dataplane::config::{
    Config, TunConfig, check_interface_name, check_mtu, check_overlay, parse_core_list, parse_static_peer,
};
use mycelium_dataplane::engine::passthrough::PassthroughEngine;
use mycelium_dataplane::io::node::Node;
use mycelium_dataplane::io::{shm, signals};
use tracing::{error, warn};

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
    /// MTU of the TUN device.
    #[arg(long, default_value_t = 1400)]
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
    /// A static peer of the passthrough engine: OVERLAY_ADDRESS=IP:PORT (repeatable).
    #[arg(long = "static-peer", value_parser = parse_static_peer)]
    static_peers: Vec<(Ipv6Addr, SocketAddr)>,
    /// Relay only: no TUN device.
    #[arg(long)]
    no_tun: bool,
}

/// A parsed `--cores` value (a newtype, so clap takes it as one value).
#[derive(Debug, Clone)]
struct CoreList(Vec<usize>);

fn parse_cores(s: &str) -> Result<CoreList, mycelium_dataplane::config::ConfigError> {
    parse_core_list(s).map(CoreList)
}

fn config(args: Args) -> anyhow::Result<Config> {
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
    Ok(Config {
        port: args.port,
        cores: args.cores.map(|c| c.0),
        tun,
        shm_dir: args.shm_dir.unwrap_or_else(|| shm::default_dir(&args.instance)),
        static_peers: args.static_peers,
        address,
    })
}

fn run(config: Config) -> anyhow::Result<()> {
    warn!("running the passthrough test engine: packets are NOT encrypted");
    signals::block_shutdown_signals().context("blocking SIGINT/SIGTERM")?;
    let has_tun = config.tun.is_some();
    let node = Node::start(&config, |_| PassthroughEngine::new(config.address, has_tun, &config.static_peers))?;
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
