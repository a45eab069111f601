//! `mlab`: the namespace lab. Builds a mesh of real `myceliumd` nodes joined
//! by emulated links from a topology file, changes links live, shows the
//! routes, and tears it all down again; see `mycelium_tools::lab`.
//!
//! ```text
//! sudo mlab up tools/lab/demo.toml --name demo
//! sudo mlab status
//! sudo mlab exec a -- ping -6 -c 3 <address of b>
//! sudo mlab link a b --delay 80ms --loss 2%
//! sudo mlab link a b --down
//! sudo mlab down
//! sudo mlab demo
//! sudo mlab run latency --json report.json
//! sudo mlab run all --seed 7
//! ```

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use mycelium_tools::emu::Update;
use mycelium_tools::emu::settings::{
    GilbertJson, parse_duration, parse_gilbert, parse_probability, parse_rate, parse_size,
};
use mycelium_tools::lab::demo::DemoOptions;
use mycelium_tools::lab::scenario::{self, ScenarioOptions, Suite};
use mycelium_tools::lab::signals;
use mycelium_tools::lab::state::{self, State};
use mycelium_tools::lab::{Lab, LabStatus, Options, Topology};
use mycelium_tools::sim::Loss;

/// The namespace lab: real mycelium nodes over emulated links, on one machine.
#[derive(Debug, Parser)]
#[command(name = "mlab", version)]
struct Cli {
    /// Where state files and lab directories live.
    #[arg(long, global = true, value_name = "DIR", default_value = state::RUN_DIR)]
    run_dir: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Build the lab of a topology file and start its nodes.
    Up {
        /// The topology (TOML; see tools/lab/demo.toml).
        file: PathBuf,
        /// The lab's name (1-12 characters, a-z 0-9).
        #[arg(long, default_value = "lab")]
        name: String,
        /// Where myceliumd, mycelium-dataplane and mlab-emu are [default: next to mlab].
        #[arg(long, value_name = "DIR")]
        bin_dir: Option<PathBuf>,
    },
    /// Remove everything a lab made (also after a crash).
    Down {
        /// The lab [default: the only one].
        lab: Option<String>,
    },
    /// Run a command in a node's namespace; its exit code is mlab's.
    Exec {
        node: String,
        #[arg(long)]
        lab: Option<String>,
        #[arg(last = true, required = true)]
        command: Vec<String>,
    },
    /// Change a link live.
    Link(LinkArgs),
    /// Nodes, links with their counters, and each node's selected routes.
    Status {
        #[arg(long)]
        lab: Option<String>,
        /// One JSON document.
        #[arg(long)]
        json: bool,
    },
    /// The labs that have a state file.
    List,
    /// A guided tour in under 2 minutes: a 6-node mesh, its routes, a ping,
    /// a TCP stream that survives the cut of its best link; then tears down.
    Demo {
        /// The lab's name while it runs.
        #[arg(long, default_value = "demo")]
        name: String,
        /// Where myceliumd, mycelium-dataplane and mlab-emu are [default: next to mlab].
        #[arg(long, value_name = "DIR")]
        bin_dir: Option<PathBuf>,
        /// Another topology [default: the built-in one, tools/lab/demo.toml]; the
        /// stream runs from its first node to its last.
        #[arg(long, value_name = "FILE")]
        topology: Option<PathBuf>,
    },
    /// Run a scripted scenario on a lab of its own and report what the mesh
    /// did: latency, loss, bandwidth, multilink, geography, churn, or all.
    Run {
        scenario: String,
        /// Also write the reports (figures, checks, pass/fail) as JSON.
        #[arg(long, value_name = "FILE")]
        json: Option<PathBuf>,
        /// Seeds the random choices (churn's link changes).
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// How long churn changes links, in seconds.
        #[arg(long, default_value_t = 120)]
        churn_secs: u64,
        /// The lab's name while a scenario runs.
        #[arg(long, default_value = "scen")]
        name: String,
        /// Where myceliumd, mycelium-dataplane and mlab-emu are [default: next to mlab].
        #[arg(long, value_name = "DIR")]
        bin_dir: Option<PathBuf>,
    },
}

#[derive(Debug, clap::Args)]
struct LinkArgs {
    a: String,
    b: String,
    #[arg(long)]
    lab: Option<String>,
    /// Which of several links between A and B (from 0, in file order).
    #[arg(long, default_value_t = 0)]
    index: usize,
    #[arg(long, value_parser = parse_duration)]
    delay: Option<std::time::Duration>,
    #[arg(long, value_parser = parse_duration)]
    jitter: Option<std::time::Duration>,
    /// Random loss, e.g. 2% (0 for none).
    #[arg(long, value_parser = parse_probability)]
    loss: Option<f64>,
    /// Bursty Gilbert-Elliott loss instead: p,r[,h[,k]], e.g. 1%,25%.
    #[arg(long, value_parser = parse_gilbert, conflicts_with = "loss")]
    gilbert: Option<Loss>,
    /// Rate limit, e.g. 5mbit, or "none".
    #[arg(long)]
    rate: Option<String>,
    #[arg(long, value_parser = parse_size)]
    queue: Option<u64>,
    #[arg(long, conflicts_with = "up")]
    down: bool,
    #[arg(long)]
    up: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("mlab: {e:#}");
            if signals::interrupted() { ExitCode::from(130) } else { ExitCode::FAILURE }
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let run_dir = cli.run_dir;
    match cli.command {
        Command::Up { file, name, bin_dir } => {
            watch_signals(&run_dir, &name)?;
            let text = std::fs::read_to_string(&file).with_context(|| format!("cannot read {}", file.display()))?;
            let topo = Topology::parse(&text).with_context(|| file.display().to_string())?;
            let opts = Options { name, run_dir: run_dir.clone(), bin_dir };
            let lab = Lab::up(&topo, &opts)?;
            let state = lab.keep();
            println!("lab {} is up: {} nodes, {} links", state.name, state.nodes.len(), state.links.len());
            for n in &state.nodes {
                println!("  {:<8} {}  (log {})", n.name, n.address, n.log.display());
            }
            println!("state: {}; remove it all with: mlab down {}", state.path.display(), state.name);
        }
        Command::Down { lab } => {
            let name = pick(&run_dir, lab)?;
            let state = State::load(&run_dir, &name)?;
            let report = mycelium_tools::lab::down::teardown(&state)?;
            println!(
                "lab {name} is down: {} processes stopped, {} killed, {} strays, {} namespaces removed",
                report.stopped,
                report.killed.len(),
                report.strays,
                report.namespaces
            );
        }
        Command::Exec { node, lab, command } => {
            let lab = Lab::open(&run_dir, &pick(&run_dir, lab)?)?;
            let args: Vec<&str> = command.iter().map(String::as_str).collect();
            let status = lab.command(&node, args[0])?.args(&args[1..]).status().context("cannot run ip netns exec")?;
            return Ok(ExitCode::from(status.code().unwrap_or(128).clamp(0, 255) as u8));
        }
        Command::Link(args) => {
            let lab = Lab::open(&run_dir, &pick(&run_dir, args.lab.clone())?)?;
            let update = link_update(&args)?;
            let reply = lab.set_link(&args.a, &args.b, args.index, &update)?;
            let s = &reply["a_to_b"]["settings"];
            println!("link {}-{}#{}: {s}", args.a, args.b, args.index);
        }
        Command::Status { lab, json } => {
            let lab = Lab::open(&run_dir, &pick(&run_dir, lab)?)?;
            let status = LabStatus::gather(&lab);
            let mut out = std::io::stdout().lock();
            if json {
                serde_json::to_writer_pretty(&mut out, &status)?;
                println!();
            } else {
                status.print(&mut out)?;
            }
        }
        Command::List => {
            for name in state::list(&run_dir) {
                println!("{name}");
            }
        }
        Command::Demo { name, bin_dir, topology } => {
            watch_signals(&run_dir, &name)?;
            let opts = DemoOptions { lab: Options { name, run_dir, bin_dir }, topology };
            let summary = mycelium_tools::lab::demo::run(&opts, &mut std::io::stdout().lock())?;
            if summary.reroute_ms.is_none() {
                bail!("the route did not move off the cut link");
            }
        }
        Command::Run { scenario, json, seed, churn_secs, name, bin_dir } => {
            let names: Vec<&str> = if scenario == "all" { scenario::NAMES.to_vec() } else { vec![scenario.as_str()] };
            let mut opts = ScenarioOptions::new(Options { name, run_dir, bin_dir }, seed);
            opts.churn = std::time::Duration::from_secs(churn_secs);
            let mut reports = Vec::new();
            for n in names {
                reports.push(scenario::run(n, &opts, &mut std::io::stdout().lock())?);
            }
            let suite = Suite::new(reports);
            if suite.reports.len() > 1 {
                println!();
                for r in &suite.reports {
                    println!("{:<10} {}  {:6.1} s", r.scenario, if r.passed { "PASS" } else { "FAIL" }, r.secs);
                }
            }
            if let Some(path) = json {
                suite.write(&path).with_context(|| format!("cannot write {}", path.display()))?;
                println!("report: {}", path.display());
            }
            if !suite.passed {
                return Ok(ExitCode::FAILURE);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// On SIGINT or SIGTERM, asks the building (or the demo) to stop and roll
/// back; if it has not within 5 s, tears the lab down from its state file
/// here. Call before any thread starts.
fn watch_signals(run_dir: &Path, name: &str) -> anyhow::Result<()> {
    let set = signals::block_exit_signals().context("cannot block SIGINT and SIGTERM")?;
    let (run_dir, name) = (run_dir.to_owned(), name.to_owned());
    std::thread::spawn(move || {
        let sig = signals::wait(&set);
        eprintln!("mlab: signal {sig}: stopping and removing lab {name}");
        signals::interrupt();
        std::thread::sleep(Duration::from_secs(5));
        if let Ok(state) = State::load(&run_dir, &name) {
            let _ = mycelium_tools::lab::down::teardown(&state);
        }
        std::process::exit(130);
    });
    Ok(())
}

/// The lab named, or the only one.
fn pick(run_dir: &Path, lab: Option<String>) -> anyhow::Result<String> {
    if let Some(name) = lab {
        return Ok(name);
    }
    match state::list(run_dir).as_slice() {
        [one] => Ok(one.clone()),
        [] => bail!("no lab is up (no state file in {})", run_dir.display()),
        many => bail!("several labs are up ({}): name one", many.join(", ")),
    }
}

fn link_update(a: &LinkArgs) -> anyhow::Result<Update> {
    let mut u = Update {
        delay_ms: a.delay.map(|d| d.as_secs_f64() * 1e3),
        jitter_ms: a.jitter.map(|d| d.as_secs_f64() * 1e3),
        loss: a.loss,
        queue_bytes: a.queue,
        up: if a.down {
            Some(false)
        } else if a.up {
            Some(true)
        } else {
            None
        },
        ..Update::default()
    };
    if let Some(Loss::GilbertElliott { p, r, k, h }) = a.gilbert {
        u.gilbert = Some(GilbertJson { p, r, k, h });
    }
    if let Some(rate) = &a.rate {
        u.rate_bps = Some(if rate == "none" { None } else { Some(parse_rate(rate)?) });
    }
    if u == (Update::default()) {
        bail!("nothing to change: give --delay, --jitter, --loss, --gilbert, --rate, --queue, --down or --up");
    }
    Ok(u)
}
