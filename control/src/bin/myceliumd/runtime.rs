//! myceliumd's I/O shell: threads, clock, shared memory, the dataplane.
//!
//! One engine thread owns the [`NodeCore`] and reacts to [`Event`]s: punted
//! datagrams (from the punt channel's reader thread), operator commands
//! (from the admin API's threads) and timers. Every turn it also checks the
//! dataplane (supervisor, epoch, traffic counters), performs the node's
//! outputs (inject datagrams through a shard, publish snapshots and key
//! tables) and refreshes the status the servers read.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use mycelium_common::identity::{PublicKey, SecretKey};
use mycelium_common::keytable::KeyChannel;
use mycelium_common::shm::{KEYS, Publisher, ROUTES, ShmDir, Subscriber};
use mycelium_common::snapshot::RouteChannel;
use mycelium_common::time::Timestamp;
use mycelium_control::api::{self, ApiConfig};
use mycelium_control::config::NodeConfig;
use mycelium_control::daemon::punt::{PuntChannel, Punted};
use mycelium_control::daemon::supervisor::{DataplaneSpec, Supervisor, SupervisorEvent};
use mycelium_control::discovery::SystemResolver;
use mycelium_control::discovery::beacon::Beacon;
use mycelium_control::link::LinkConfig;
use mycelium_control::metrics::{self, MetricsConfig, ShmCounters};
use mycelium_control::node::{NodeCore, NodeSettings, Output};
use mycelium_control::peer::OsEntropy;
use mycelium_dataplane::io::shm::read_epoch;
use parking_lot::Mutex;
use tracing::{info, warn};

use crate::admin::{Admin, Command, Metrics, Shared};

/// What wakes the engine thread.
pub enum Event {
    Punt(Punted),
    Command(Command),
    /// A beacon heard on a LAN interface.
    Lan {
        from: SocketAddr,
        beacon: Beacon,
    },
}

/// How often the dataplane is checked and the status refreshed.
const HOUSEKEEPING: Duration = Duration::from_millis(100);

fn wall_ns() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64)
}

pub fn run(config: NodeConfig) -> anyhow::Result<()> {
    mycelium_dataplane::io::signals::block_shutdown_signals().context("blocking SIGINT/SIGTERM")?;
    let (secret, created) = SecretKey::load_or_generate(&config.key_file)?;
    let key = secret.public_key();
    let address = key.address();
    if created {
        info!(key_file = %config.key_file.display(), "created a new identity");
    }
    info!(%address, public_key = %key, "node identity");
    println!("mycelium node {address} (public key {key})");

    let instance = config.instance_name(&address);
    let shm = ShmDir::system(&instance)?;
    let shm_dir = shm.path().to_path_buf();
    let previous = previous_links(&shm);
    let mut publisher = Publisher::create(shm).context("opening the shared-memory directory")?;
    let punt = PuntChannel::bind(&shm_dir).context("binding the punt channel")?;

    let spec = dataplane_spec(&config, &address, &shm_dir, &instance)?;
    // An epoch left by a dataplane that died with no daemon watching is not
    // the new dataplane's: it must not be taken as a sign the new one runs.
    let epoch_before = read_epoch(&shm_dir).ok().flatten();
    let (mut supervisor, _) = Supervisor::start(spec)?;
    let stale_epoch = if supervisor.adopted() { None } else { epoch_before };

    let now = Timestamp::now();
    let settings = NodeSettings {
        discovery: config.discovery_config(),
        link: LinkConfig { local_position: config.position, ..LinkConfig::default() },
        static_classes: config.peers.iter().map(|p| p.class.clone()).collect(),
        ..NodeSettings::default()
    };
    let statics = config.peers.iter().map(|p| p.peer.clone()).collect();
    let mut node = NodeCore::new(
        secret,
        settings,
        statics,
        Box::new(OsEntropy::new()),
        Box::new(OsEntropy::new()),
        Box::new(SystemResolver),
        now,
        wall_ns(),
    );
    if !previous.is_empty() {
        info!(links = previous.len(), "dialing the neighbours of the previous run");
        node.restore_links(now, &previous);
    }
    if supervisor.adopted()
        && let Some(epoch) = epoch_before
    {
        let mut keys = Subscriber::<KeyChannel>::new(ShmDir::at(&shm_dir));
        if keys.poll().is_ok()
            && let Some(view) = keys.current()
        {
            node.import_sessions(now, epoch, &view);
        }
    }

    let (tx, rx) = mpsc::channel();
    let stop = Arc::new(AtomicBool::new(false));
    spawn_punt_reader(punt.try_clone()?, tx.clone(), Arc::clone(&stop));
    let dataplane_up = Arc::new(AtomicBool::new(false));
    if config.lan_discovery {
        let (tun, beacon) = (config.tun_name.clone(), node.beacon());
        crate::lan::spawn(config.port, tun, beacon, Arc::clone(&dataplane_up), tx.clone(), Arc::clone(&stop))
            .context("starting LAN discovery")?;
    }
    let shared = Arc::new(Shared {
        status: Mutex::new(node.status(now)),
        snapshot_built: Mutex::new(None),
        counters: ShmCounters::new(&shm_dir),
        commands: Mutex::new(tx),
        version: env!("CARGO_PKG_VERSION").to_owned(),
        shm_dir: shm_dir.clone(),
    });
    let api_config = ApiConfig { addr: config.api_listen, ..ApiConfig::default() };
    let _api = api::start(&api_config, Arc::new(Admin(Arc::clone(&shared))))
        .with_context(|| format!("admin API on {}", config.api_listen))?;
    let metrics_config = MetricsConfig { addr: config.metrics_listen, ..MetricsConfig::default() };
    let _metrics =
        metrics::start(&metrics_config, Arc::new(Metrics(Arc::clone(&shared))), Arc::new(ShmCounters::new(&shm_dir)))
            .with_context(|| format!("metrics on {}", config.metrics_listen))?;
    info!(api = %config.api_listen, metrics = %config.metrics_listen, "myceliumd running");

    let mut state = Loop {
        node,
        publisher: &mut publisher,
        punt,
        shared,
        epoch: stale_epoch,
        shm_dir: shm_dir.clone(),
        dataplane_up,
    };
    let result = state.run(&rx, &mut supervisor, &stop);
    stop.store(true, Ordering::SeqCst);
    info!("stopping the dataplane");
    supervisor.stop();
    drop(publisher);
    if let Err(e) = ShmDir::at(&shm_dir).remove() {
        warn!("removing {}: {e}", shm_dir.display());
    }
    result
}

fn dataplane_spec(
    config: &NodeConfig,
    address: &mycelium_common::address::OverlayAddress,
    shm_dir: &std::path::Path,
    instance: &str,
) -> anyhow::Result<DataplaneSpec> {
    let binary = match std::env::var_os("MYCELIUM_DATAPLANE") {
        Some(path) => PathBuf::from(path),
        None => std::env::current_exe()?.with_file_name("mycelium-dataplane"),
    };
    let mut args = vec![
        "--engine".to_owned(),
        "sealed".to_owned(),
        "--port".to_owned(),
        config.port.to_string(),
        "--address".to_owned(),
        address.to_string(),
        "--instance".to_owned(),
        instance.to_owned(),
        "--shm-dir".to_owned(),
        shm_dir.display().to_string(),
    ];
    if config.no_tun {
        args.push("--no-tun".to_owned());
    } else {
        args.extend(["--tun-name".to_owned(), config.tun_name.clone()]);
    }
    if config.no_offload {
        args.push("--no-offload".to_owned());
    }
    if config.busy_poll_us > 0 {
        args.extend(["--busy-poll-us".to_owned(), config.busy_poll_us.to_string()]);
    }
    if config.no_steer {
        args.push("--no-steer".to_owned());
    }
    if let Some(cores) = &config.cores {
        let list: Vec<String> = cores.iter().map(usize::to_string).collect();
        args.extend(["--cores".to_owned(), list.join(",")]);
    }
    if let Some(mbps) = config.transit_limit_mbps {
        args.extend(["--transit-limit-mbps".to_owned(), mbps.to_string()]);
    }
    Ok(DataplaneSpec { binary, args, shm_dir: shm_dir.to_path_buf() })
}

/// The neighbours in the route snapshot a previous run of this instance
/// left in shared memory (none on a first start).
fn previous_links(shm: &ShmDir) -> Vec<(SocketAddr, PublicKey)> {
    let mut routes = Subscriber::<RouteChannel>::new(shm.clone());
    if routes.poll().is_err() {
        return Vec::new();
    }
    let Some(view) = routes.current() else { return Vec::new() };
    view.links().filter_map(|l| Some((l.underlay()?, PublicKey::from_bytes(*l.peer())))).collect()
}

fn spawn_punt_reader(punt: PuntChannel, tx: Sender<Event>, stop: Arc<AtomicBool>) {
    std::thread::Builder::new()
        .name("punt".to_owned())
        .spawn(move || {
            let mut buf = vec![0u8; 65_536];
            while !stop.load(Ordering::Relaxed) {
                match punt.recv(&mut buf, Duration::from_millis(200)) {
                    Ok(Some(p)) => {
                        if tx.send(Event::Punt(p)).is_err() {
                            return;
                        }
                    }
                    Ok(None) => {}
                    Err(e) => {
                        warn!("punt channel: {e}");
                        std::thread::sleep(Duration::from_millis(100));
                    }
                }
            }
        })
        .expect("spawning the punt reader thread");
}

struct Loop<'a> {
    node: NodeCore,
    publisher: &'a mut Publisher,
    punt: PuntChannel,
    shared: Arc<Shared>,
    epoch: Option<u64>,
    shm_dir: PathBuf,
    /// Whether the dataplane runs (LAN sockets may share its port).
    dataplane_up: Arc<AtomicBool>,
}

impl Loop<'_> {
    fn run(&mut self, rx: &Receiver<Event>, supervisor: &mut Supervisor, stop: &AtomicBool) -> anyhow::Result<()> {
        let mut next_housekeeping = Instant::now();
        loop {
            if let Some(signal) = mycelium_dataplane::io::signals::wait_shutdown_signal(Duration::ZERO) {
                info!(signal, "shutting down");
                return Ok(());
            }
            if stop.load(Ordering::Relaxed) {
                return Ok(());
            }
            let now = Timestamp::now();
            let until_timer = self.node.poll_timeout().saturating_since(now);
            let wait = until_timer.min(HOUSEKEEPING).min(next_housekeeping.saturating_duration_since(Instant::now()));
            match rx.recv_timeout(wait) {
                Ok(event) => self.event(event),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return Ok(()),
            }
            let now = Timestamp::now();
            // The dataplane's counters first: after a stall of this daemon,
            // data that kept flowing must be seen before timers declare
            // links dead for their late hellos.
            if Instant::now() >= next_housekeeping {
                next_housekeeping = Instant::now() + HOUSEKEEPING;
                self.housekeeping(supervisor, now);
            }
            if self.node.poll_timeout() <= now {
                self.node.handle_timeout(now, wall_ns());
            }
            self.outputs(now);
        }
    }

    fn event(&mut self, event: Event) {
        match event {
            Event::Punt(p) => self.node.handle_punt(Timestamp::now(), wall_ns(), p),
            Event::Command(c) => self.command(c),
            Event::Lan { from, beacon } => self.node.handle_lan_beacon(Timestamp::now(), from, &beacon),
        }
    }

    fn command(&mut self, command: Command) {
        let now = Timestamp::now();
        match command {
            Command::AddPeer(url, reply) => {
                let _ = reply.send(self.node.add_peer(now, &url));
            }
            Command::RemovePeer(endpoint, reply) => {
                let parsed = endpoint.trim_start_matches("udp://").parse::<SocketAddr>();
                let result = match parsed {
                    Ok(addr) => self.node.remove_peer(now, addr),
                    Err(_) => Err(format!("{endpoint}: expected udp://IP:PORT")),
                };
                let _ = reply.send(result);
            }
        }
    }

    fn housekeeping(&mut self, supervisor: &mut Supervisor, now: Timestamp) {
        if let Some(SupervisorEvent::Exited { .. }) = supervisor.check() {
            self.dataplane_up.store(false, Ordering::Relaxed);
        }
        match read_epoch(&self.shm_dir) {
            Ok(Some(epoch)) if self.epoch != Some(epoch) => {
                info!(epoch, "dataplane epoch");
                self.epoch = Some(epoch);
                self.dataplane_up.store(true, Ordering::Relaxed);
                self.node.handle_epoch(now, wall_ns(), epoch);
            }
            Ok(_) => {}
            Err(e) => warn!("reading the dataplane epoch: {e}"),
        }
        if let Ok(links) = mycelium_dataplane::io::shm::read_link_counters(&self.shm_dir) {
            self.node.handle_link_traffic(now, links.into_iter().map(|(id, c)| (id, c.tx_bytes, c.rx_bytes)));
        }
        *self.shared.status.lock() = self.node.status(now);
    }

    fn outputs(&mut self, now: Timestamp) {
        while let Some(output) = self.node.poll_output() {
            match output {
                Output::Datagram { to, bytes } => {
                    if let Err(e) = self.punt.inject(0, to, &bytes) {
                        tracing::debug!(%to, "inject: {e}");
                    }
                }
                Output::Routes(snapshot) => match snapshot.to_bytes() {
                    Ok(bytes) => match self.publisher.publish(ROUTES, &bytes) {
                        Ok(_) => *self.shared.snapshot_built.lock() = Some(now),
                        Err(e) => warn!("publishing routes: {e}"),
                    },
                    Err(e) => warn!("serializing routes: {e}"),
                },
                Output::Keys(table) => {
                    if let Err(e) = self.publisher.publish(KEYS, &table.to_bytes()) {
                        warn!("publishing keys: {e}");
                    }
                }
            }
        }
    }
}
