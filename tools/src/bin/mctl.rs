//! `mctl`: see [`mycelium_tools::mctl`].

use clap::Parser;
use mycelium_tools::mctl::{Cli, exit_code, run};

fn main() {
    let cli = Cli::parse();
    let stdout = std::io::stdout();
    if let Err(e) = run(cli, &mut stdout.lock()) {
        eprintln!("mctl: {e:#}");
        std::process::exit(exit_code(&e));
    }
}
