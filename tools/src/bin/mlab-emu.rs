//! `mlab-emu`: a UDP relay that emulates a link (delay, jitter, loss, rate
//! limit with a bounded queue, up/down) between two peers; see
//! `mycelium_tools::emu`. Runs until SIGINT or SIGTERM.
//!
//! ```text
//! mlab-emu --listen-a 10.0.1.1:9000 --peer-a 10.0.1.2:9651 \
//!          --listen-b 10.0.2.1:9000 --peer-b 10.0.2.2:9651 \
//!          --delay 10ms --jitter 1ms --loss 0.5% --rate 100mbit --queue 256kb \
//!          --seed 7 --control /run/mlab/emu-ab.sock
//! ```

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use mycelium_tools::emu::control::ControlServer;
use mycelium_tools::emu::settings::{parse_duration, parse_gilbert, parse_probability, parse_rate, parse_size};
use mycelium_tools::emu::{Impairment, Relay, RelayConfig};
use mycelium_tools::lab::signals;
use mycelium_tools::sim::Loss;

/// Emulate a link between two UDP peers: datagrams from A's peer leave
/// through --listen-b to B's peer, and the other way round. Settings apply
/// to both directions; change them live through --control.
#[derive(Debug, Parser)]
#[command(name = "mlab-emu", version)]
struct Args {
    /// Address side A's peer sends to.
    #[arg(long)]
    listen_a: SocketAddr,
    /// Side A's peer; learnt from the latest datagram if not given.
    #[arg(long)]
    peer_a: Option<SocketAddr>,
    /// Address side B's peer sends to.
    #[arg(long)]
    listen_b: SocketAddr,
    /// Side B's peer; learnt from the latest datagram if not given.
    #[arg(long)]
    peer_b: Option<SocketAddr>,
    /// One-way delay, e.g. 10ms.
    #[arg(long, value_parser = parse_duration, default_value = "0")]
    delay: Duration,
    /// Uniform jitter around the delay (+-), e.g. 1ms. Order is kept.
    #[arg(long, value_parser = parse_duration, default_value = "0")]
    jitter: Duration,
    /// Random loss, e.g. 0.5% or 0.005.
    #[arg(long, value_parser = parse_probability, conflicts_with = "gilbert")]
    loss: Option<f64>,
    /// Bursty Gilbert-Elliott loss: p,r or p,r,h or p,r,h,k = P(good->bad), P(bad->good),
    /// loss when bad (default 100%), loss when good (default 0%).
    #[arg(long, value_parser = parse_gilbert)]
    gilbert: Option<Loss>,
    /// Rate limit, e.g. 100mbit; unlimited if not given.
    #[arg(long, value_parser = parse_rate)]
    rate: Option<u64>,
    /// Rate limiter queue (tail drop beyond it), e.g. 256kb.
    #[arg(long, value_parser = parse_size, default_value = "256kb")]
    queue: u64,
    /// Start with the link down.
    #[arg(long)]
    down: bool,
    /// Seed for loss and jitter (B-to-A uses seed + 1).
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Unix socket taking JSON lines such as {"delay_ms":80,"loss":0.02}.
    #[arg(long)]
    control: Option<PathBuf>,
    /// Largest datagram relayed, in bytes.
    #[arg(long, default_value_t = 2048, value_parser = clap::value_parser!(u32).range(1..=65536))]
    max_datagram: u32,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let loss = match (args.loss, args.gilbert) {
        (Some(p), _) if p > 0.0 => Loss::Random(p),
        (_, Some(ge)) => ge,
        _ => Loss::None,
    };
    let impairment = Impairment {
        delay: args.delay,
        jitter: args.jitter,
        loss,
        rate_bps: args.rate,
        queue_bytes: args.queue,
        up: !args.down,
    };
    let mut config = RelayConfig::new(args.listen_a, args.listen_b, impairment, args.seed);
    config.peer_a = args.peer_a;
    config.peer_b = args.peer_b;
    config.max_datagram = args.max_datagram as usize;
    // Signals are blocked before any thread starts, so that all threads
    // inherit the mask and only the sigwait below sees them.
    let signals = signals::block_exit_signals().context("cannot block SIGINT and SIGTERM")?;
    let relay =
        Arc::new(Relay::start(config).with_context(|| format!("cannot bind {} and {}", args.listen_a, args.listen_b))?);
    let control = match &args.control {
        Some(path) => Some(
            ControlServer::start(path, relay.clone())
                .with_context(|| format!("cannot listen on control socket {}", path.display()))?,
        ),
        None => None,
    };
    eprintln!("mlab-emu: relaying A {} <-> B {} with {impairment:?}", relay.local_a(), relay.local_b());
    signals::wait(&signals);
    drop(control);
    let stats = relay.stats();
    eprintln!("mlab-emu: stopping; A-to-B {:?}; B-to-A {:?}", stats[0], stats[1]);
    Ok(())
}
