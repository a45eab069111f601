//! `mctl`: the operator's command-line tool. Each subcommand lives in its own
//! module; [`run`] dispatches, and [`exit_code`] maps an error to the exit
//! code scripts rely on.
//!
//! Most commands ask the daemon's admin API ([`client`], `--api`); `route`
//! and `counters` read the node's shared memory directly (`--instance`,
//! `--shm-dir`), so they work while the daemon is down and the dataplane
//! forwards on its last snapshot.

pub mod client;
pub mod counters;
pub mod graph;
pub mod key;
pub mod peer;
pub mod peers;
pub mod route;
pub mod routes;
pub mod shm;
pub mod status;
pub mod table;

use std::io::Write;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// Exit codes scripts can rely on.
pub mod exit {
    /// Success.
    pub const OK: i32 = 0;
    /// The command failed (bad input, unreadable file, the daemon said no).
    pub const FAILURE: i32 = 1;
    /// Usage error (clap's own code).
    pub const USAGE: i32 = 2;
    /// The node could not be reached: no admin API answering at `--api`, or
    /// (`route`, `counters`) no shared memory for the instance.
    pub const UNREACHABLE: i32 = 3;
}

const AFTER_HELP: &str = "\
Exit codes:
  0  success
  1  the command failed (bad input, the daemon refused, unreadable file)
  2  usage error
  3  the node could not be reached: no admin API at --api, or (route,
     counters) no shared memory for --instance; what could be read is
     still printed

The shared memory of a node and its API token are private to the user
myceliumd runs as: run `route`, `counters` and `peer` as that user (e.g.
sudo -u mycelium mctl ...).";

/// Inspect and manage a mycelium node.
#[derive(Debug, Parser)]
#[command(name = "mctl", version, about, after_help = AFTER_HELP)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

/// Options every command takes.
#[derive(Debug, Clone, Args)]
pub struct Global {
    /// Address of myceliumd's admin API (host:port or http://host:port).
    #[arg(long, global = true, value_name = "ADDR", default_value = "127.0.0.1:8990")]
    pub api: String,
    /// Print JSON instead of tables (one document on stdout).
    #[arg(long, global = true)]
    pub json: bool,
    /// The node instance whose shared memory to read (route, counters)
    /// [default: the only node on this host].
    #[arg(long, global = true, value_name = "NAME")]
    pub instance: Option<String>,
    /// The node's shared-memory directory [default: /dev/shm/mycelium-<instance>].
    #[arg(long, global = true, value_name = "DIR")]
    pub shm_dir: Option<PathBuf>,
    /// The admin API token, sent with changes (peer add/remove) when readable.
    #[arg(long, global = true, value_name = "FILE", default_value = "/var/lib/mycelium/api.token")]
    pub token_file: PathBuf,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// The node: identity, uptime, shards, snapshot, traffic totals.
    Status,
    /// Peers and their links (RTT, jitter, loss, bandwidth, class, cost).
    Peers,
    /// Add or remove a peer.
    #[command(subcommand)]
    Peer(peer::PeerCommand),
    /// Routes, selected and fallback, with what their metric is made of.
    Routes(routes::RoutesArgs),
    /// The route the dataplane uses for ADDRESS now (from shared memory),
    /// and the alternatives the daemon keeps and why they lost.
    Route(route::RouteArgs),
    /// Dataplane counters per shard, every drop reason (from shared memory).
    Counters(counters::CountersArgs),
    /// The mesh as this node sees it, as Graphviz DOT (or SVG).
    Graph(graph::GraphArgs),
    /// Create and inspect identity key files.
    #[command(subcommand)]
    Key(key::KeyCommand),
    /// Print shell completions for mctl.
    Completions {
        /// The shell to generate completions for.
        shell: clap_complete::Shell,
    },
}

/// Runs one parsed command, writing its output to `out`.
pub fn run(cli: Cli, out: &mut dyn Write) -> anyhow::Result<()> {
    let g = &cli.global;
    match cli.command {
        Command::Status => status::run(g, out),
        Command::Peers => peers::run(g, out),
        Command::Peer(cmd) => peer::run(g, cmd, out),
        Command::Routes(args) => routes::run(g, &args, out),
        Command::Route(args) => route::run(g, &args, out),
        Command::Counters(args) => counters::run(g, &args, out),
        Command::Graph(args) => graph::run(g, &args, out),
        Command::Key(cmd) => key::run(cmd, g.json, out),
        Command::Completions { shell } => {
            use clap::CommandFactory;
            clap_complete::generate(shell, &mut Cli::command(), "mctl", out);
            Ok(())
        }
    }
}

/// The exit code for a failed command.
pub fn exit_code(e: &anyhow::Error) -> i32 {
    let unreachable = e.chain().any(|c| c.is::<client::Unreachable>() || c.is::<shm::NoSharedMemory>());
    if unreachable { exit::UNREACHABLE } else { exit::FAILURE }
}

/// Writes `value` as one line of JSON.
pub(crate) fn print_json(out: &mut dyn Write, value: &impl serde::Serialize) -> anyhow::Result<()> {
    serde_json::to_writer_pretty(&mut *out, value)?;
    writeln!(out)?;
    Ok(())
}
