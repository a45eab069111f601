//! `myceliumd`: the mycelium node daemon. Loads the config and identity,
//! starts (or adopts) the dataplane, and runs the node: peering, link
//! measurement, routing, end-to-end sessions, the admin API and `/metrics`.

mod admin;
mod lan;
mod runtime;

use std::process::ExitCode;

use clap::Parser;
use mycelium_control::config::{Cli, LogFormat, NodeConfig};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = match NodeConfig::load(&cli) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("myceliumd: {e}");
            return ExitCode::from(2);
        }
    };
    if let Err(e) = mycelium_control::logging::init(&config.log_level, config.log_format == LogFormat::Json) {
        eprintln!("myceliumd: logging: {e}");
        return ExitCode::from(2);
    }
    match runtime::run(config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("myceliumd: {e:#}");
            ExitCode::FAILURE
        }
    }
}
