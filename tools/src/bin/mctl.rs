//! `mctl`: see [`mycelium_tools::mctl`].

use clap::Parser;
use mycelium_tools::mctl::{Cli, exit, run};

fn main() {
    let cli = Cli::parse();
    let stdout = std::io::stdout();
    if let Err(e) = run(cli, &mut stdout.lock()) {
        eprintln!("mctl: {e:#}");
        std::process::exit(exit::FAILURE);
    }
}
