//! `mctl`: the operator's command-line tool. Each subcommand lives in its own
//! module; `run` dispatches and returns the process exit code.

pub mod key;

use clap::{Parser, Subcommand};

/// Inspect and manage a mycelium node.
#[derive(Debug, Parser)]
#[command(name = "mctl", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create and inspect identity key files.
    #[command(subcommand)]
    Key(key::KeyCommand),
    /// Print shell completions for mctl.
    Completions {
        /// The shell to generate completions for.
        shell: clap_complete::Shell,
    },
}

/// Exit codes scripts can rely on.
pub mod exit {
    /// Success.
    pub const OK: i32 = 0;
    /// The command failed (bad input, unreadable file, daemon error).
    pub const FAILURE: i32 = 1;
    /// Usage error (clap's own code).
    pub const USAGE: i32 = 2;
}

/// Runs one parsed command, writing to `out`.
pub fn run(cli: Cli, out: &mut dyn std::io::Write) -> anyhow::Result<()> {
    match cli.command {
        Command::Key(cmd) => key::run(cmd, out),
        Command::Completions { shell } => {
            use clap::CommandFactory;
            clap_complete::generate(shell, &mut Cli::command(), "mctl", out);
            Ok(())
        }
    }
}
