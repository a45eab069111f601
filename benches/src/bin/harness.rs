//! `harness`: raw veth, our overlay and the alternatives (wireguard-go,
//! boringtun, Yggdrasil, Nebula), side by side in network namespaces.
//!
//! Run as root through `benches/harness/run.sh` (which builds the release
//! binaries first; `benches/harness/install-alternatives.sh` installs the
//! alternatives, and any that is missing is skipped with the reason).
//! Prints a Markdown table and JSON, and writes both under `--out`. Everything it creates is named after its pid and removed on
//! exit, on error, on a panic and on SIGINT/SIGTERM/SIGHUP; leftovers of
//! earlier runs that died harder are removed at start.

use std::path::PathBuf;
use std::process::{Command, ExitCode};

use anyhow::{Context, bail};
use clap::Parser;
use mycelium_benches::harness::alt::nebula::Nebula;
use mycelium_benches::harness::alt::wireguard::{Implementation, WireGuard};
use mycelium_benches::harness::alt::yggdrasil::{self, Yggdrasil};
use mycelium_benches::harness::node::MyceliumNode;
use mycelium_benches::harness::report::{Machine, Report};
use mycelium_benches::harness::tunnel::{MyceliumSealed, RawVeth, Tunnel};
use mycelium_benches::harness::{Plan, measure_line, netns};

/// The paths `--paths` can name, in the order they run (raw veth, the
/// baseline, always runs first).
const PATHS: [&str; 6] = ["sealed", "node", "wireguard-go", "boringtun", "yggdrasil", "nebula"];

/// Throughput, CPU and latency of raw veth, our overlay and the
/// alternatives, side by side.
#[derive(Debug, Parser)]
#[command(name = "harness")]
struct Args {
    /// The `mycelium-dataplane` binary [default: next to this one].
    #[arg(long)]
    dataplane: Option<PathBuf>,
    /// The `myceliumd` binary [default: next to this one].
    #[arg(long)]
    myceliumd: Option<PathBuf>,
    /// Paths to measure after raw veth: sealed (our dataplane alone, static
    /// routes), node (myceliumd + dataplane), wireguard-go, boringtun,
    /// yggdrasil, nebula.
    #[arg(long, value_delimiter = ',', default_values_t = PATHS.map(String::from))]
    paths: Vec<String>,
    /// Seconds per iperf3 run (TCP x1, TCP x4, UDP).
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=60))]
    seconds: u32,
    /// Offered UDP rate, Mbit/s (0: no UDP run).
    #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u32).range(0..=100_000))]
    udp_mbit: u32,
    /// Yggdrasil's TUN MTU (its default, 65535, lets the inner TCP send
    /// 64 KB segments; 1380 matches our overlay's TUN).
    #[arg(long, default_value_t = yggdrasil::DEFAULT_MTU, value_parser = clap::value_parser!(u32).range(1280..=65535))]
    yggdrasil_mtu: u32,
    /// UDP payload per datagram, bytes (fits every tunnel's MTU; Nebula's is 1300).
    #[arg(long, default_value_t = 1200, value_parser = clap::value_parser!(u32).range(16..=1400))]
    udp_len: u32,
    /// Line lengths to measure (2: two nodes; 3: one relay).
    #[arg(long, value_delimiter = ',', default_values_t = [2usize, 3])]
    nodes: Vec<usize>,
    /// Pings per RTT measurement.
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u32).range(1..=2000))]
    pings: u32,
    /// Milliseconds between pings (20: every hop's thread has gone idle
    /// before the next echo; 1: it is still awake).
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..=1000))]
    ping_interval_ms: u32,
    /// Shards (pinned threads, one per core) of each mycelium dataplane, on
    /// consecutive cores from `node * shards` round the machine; at most
    /// the number of CPUs.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=1024))]
    shards: u32,
    /// Directory for report.json, report.md and logs/ (what each node's
    /// agents printed, per topology and path).
    #[arg(long, default_value = "target/harness")]
    out: PathBuf,
}

fn main() -> ExitCode {
    // The release profile aborts on panic: clean up in the hook, before that.
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        default_hook(info);
        netns::sweep(true);
    }));
    if let Err(e) = handle_signals() {
        eprintln!("harness: {e:#}");
        return ExitCode::FAILURE;
    }
    let result = Args::try_parse().map_err(anyhow::Error::from).and_then(run);
    netns::sweep(true);
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("harness: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Blocks SIGINT, SIGTERM and SIGHUP in every thread and waits for them on
/// one of its own, which cleans up and exits. Must run before any other
/// thread starts (they inherit the mask).
fn handle_signals() -> anyhow::Result<()> {
    // Safety: sigset_t is plain data that sigemptyset initializes; the calls
    // only read and write that local set and this thread's signal mask.
    let set = unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
            libc::sigaddset(&mut set, sig);
        }
        if libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) != 0 {
            bail!("blocking signals: {}", std::io::Error::last_os_error());
        }
        set
    };
    std::thread::spawn(move || {
        let mut sig = 0;
        // Safety: `set` is an initialized signal set and `sig` a valid out-pointer.
        if unsafe { libc::sigwait(&set, &mut sig) } == 0 {
            eprintln!("harness: signal {sig}: cleaning up");
            netns::sweep(true);
            std::process::exit(128 + sig);
        }
    });
    Ok(())
}

fn run(args: Args) -> anyhow::Result<()> {
    preflight()?;
    netns::sweep(false);
    if let Some(bad) = args.paths.iter().find(|p| !PATHS.contains(&p.as_str())) {
        bail!("unknown path {bad:?}; known: {}", PATHS.join(", "));
    }
    let beside = |name: &str| std::env::current_exe().map(|e| e.with_file_name(name));
    let dataplane = match args.dataplane {
        Some(p) => p,
        None => beside("mycelium-dataplane")?,
    };
    let dataplane = dataplane
        .canonicalize()
        .with_context(|| format!("{}: build it first (benches/harness/run.sh does)", dataplane.display()))?;
    let myceliumd = match args.myceliumd {
        Some(p) => p,
        None => beside("myceliumd")?,
    };
    let myceliumd = myceliumd.canonicalize().unwrap_or(myceliumd);
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let raw = RawVeth;
    let shards = args.shards as usize;
    if shards > cpus {
        bail!("--shards {shards}: this machine has {cpus} CPUs (one shard per core)");
    }
    let sealed = MyceliumSealed { binary: dataplane.clone(), cores: cpus, shards };
    let node = MyceliumNode { myceliumd, dataplane, cores: cpus, shards };
    let wireguard_go = WireGuard { implementation: Implementation::Go };
    let boringtun = WireGuard { implementation: Implementation::Boringtun };
    let ygg = Yggdrasil { mtu: args.yggdrasil_mtu };
    let all: [(&str, &dyn Tunnel); 6] = [
        ("sealed", &sealed),
        ("node", &node),
        ("wireguard-go", &wireguard_go),
        ("boringtun", &boringtun),
        ("yggdrasil", &ygg),
        ("nebula", &Nebula),
    ];
    let mut paths: Vec<&dyn Tunnel> = vec![&raw];
    paths.extend(all.iter().filter(|(name, _)| args.paths.iter().any(|p| p == name)).map(|(_, t)| *t));
    let plan = Plan {
        seconds: args.seconds,
        streams: vec![1, 4],
        pings: args.pings,
        ping_interval_ms: args.ping_interval_ms,
        udp_mbit_s: args.udp_mbit,
        udp_bytes: args.udp_len,
    };

    let load_before = loadavg();
    let date = output("date", &["-u", "+%Y-%m-%d %H:%M UTC"]).unwrap_or_default();
    let mut rows = Vec::new();
    let _ = std::fs::remove_dir_all(args.out.join("logs"));
    for &n in &args.nodes {
        let logs = args.out.join("logs");
        rows.extend(measure_line(n, &paths, &plan, Some(&logs), &|line| eprintln!("{line}"))?);
    }
    let machine = Machine {
        date,
        cpu_model: cpu_model(),
        cpus,
        kernel: output("uname", &["-r"]).unwrap_or_default(),
        load_before,
        load_after: loadavg(),
        command: std::env::args().collect::<Vec<_>>().join(" "),
        revision: output("git", &["describe", "--always", "--dirty"])
            .filter(|r| !r.is_empty())
            .unwrap_or("unknown".into()),
        seconds: args.seconds,
    };
    let report = Report::new(machine, rows);
    let markdown = report.markdown();
    let json = serde_json::to_string_pretty(&report)?;
    println!("{markdown}\n{json}");
    std::fs::create_dir_all(&args.out).with_context(|| format!("creating {}", args.out.display()))?;
    std::fs::write(args.out.join("report.md"), &markdown)?;
    std::fs::write(args.out.join("report.json"), json + "\n")?;
    eprintln!("wrote {0}/report.md and {0}/report.json", args.out.display());
    Ok(())
}

/// Root and the tools, or a clear message.
fn preflight() -> anyhow::Result<()> {
    // Safety: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        bail!("needs root (network namespaces)");
    }
    for (tool, arg, hint) in
        [("ip", "-V", "iproute2"), ("iperf3", "--version", "apt-get install -y iperf3"), ("ping", "-V", "iputils-ping")]
    {
        if !Command::new(tool).arg(arg).output().is_ok_and(|o| o.status.success()) {
            bail!("{tool} not found ({hint})");
        }
    }
    Ok(())
}

fn output(program: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(program).args(args).output().ok()?;
    Some(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

fn cpu_model() -> String {
    let info = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = info.lines().find_map(|l| l.strip_prefix("model name")).and_then(|l| l.split_once(':'));
    let flags = info.lines().find_map(|l| l.strip_prefix("flags")).unwrap_or_default();
    let has = |f: &str| flags.split_whitespace().any(|x| x == f);
    let features: Vec<&str> = ["aes", "vaes", "vpclmulqdq", "avx2", "avx512f"].into_iter().filter(|f| has(f)).collect();
    format!("{} ({})", model.map_or("unknown", |(_, m)| m.trim()), features.join(", "))
}
