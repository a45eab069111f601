//! Building a lab: namespaces, veths, one emulator per link, and the
//! nodes with their config files. Every step is recorded in the state file
//! before the next one starts; [`build`] rolls everything back on error.
//!
//! Link `i` lives in its own namespace `mlab-<lab>-l<i>` holding its
//! emulator, with a veth to each node's namespace: node `a` has
//! `10.X.Y.1/30` (device `l<i>`) facing the emulator's `10.X.Y.2`, node
//! `b` has `10.X.Y.6/30` facing `10.X.Y.5` (X = 100 + i / 256, Y = i % 256).
//! A node dials the emulator's address on its side; the emulator relays to
//! the other node, so two links between the same nodes are two distinct
//! underlay paths.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use mycelium_common::identity::SecretKey;

use super::LabError;
use super::process::{alive, ip_in, run, spawn_in};
use super::state::{LinkState, NodeState, State};
use super::topology::{LinkSpec, Topology};
use crate::sim::Loss;

/// The UDP port every node and emulator uses.
pub const PORT: u16 = 9651;

/// How long a node may take to say it is running.
const NODE_START: Duration = Duration::from_secs(20);

/// The binaries a lab runs.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Binaries {
    pub myceliumd: PathBuf,
    pub dataplane: PathBuf,
    pub emulator: PathBuf,
}

impl Binaries {
    /// The binaries in `dir`, or (when `None`) next to this executable or
    /// one directory up (a test executable sits in `target/<profile>/deps`).
    pub fn find(dir: Option<&Path>) -> Result<Binaries, LabError> {
        let candidates: Vec<PathBuf> = match dir {
            Some(d) => vec![d.to_owned()],
            None => {
                let exe = std::env::current_exe().map_err(|e| LabError::io(Path::new("/proc/self/exe"), e))?;
                exe.ancestors().skip(1).take(2).map(Path::to_owned).collect()
            }
        };
        for d in &candidates {
            let b = Binaries {
                myceliumd: d.join("myceliumd"),
                dataplane: d.join("mycelium-dataplane"),
                emulator: d.join("mlab-emu"),
            };
            if [&b.myceliumd, &b.dataplane, &b.emulator].iter().all(|p| p.is_file()) {
                return Ok(b);
            }
        }
        let tried: Vec<String> = candidates.iter().map(|d| d.display().to_string()).collect();
        Err(LabError::Binaries(tried.join(", ")))
    }
}

/// Builds the lab described by `topo` into `state` (already created);
/// on error, everything made so far is removed and the error returned.
pub fn build(topo: &Topology, state: &mut State, bins: &Binaries) -> Result<(), LabError> {
    match build_steps(topo, state, bins) {
        Ok(()) => Ok(()),
        Err(e) => {
            let _ = super::down::teardown(state);
            Err(e)
        }
    }
}

fn build_steps(topo: &Topology, state: &mut State, bins: &Binaries) -> Result<(), LabError> {
    let lab = state.name.clone();
    let mut keys = Vec::new();
    for n in &topo.nodes {
        let netns = format!("mlab-{lab}-{}", n.name);
        add_netns(state, &netns)?;
        let key = SecretKey::generate().map_err(|e| LabError::Key(e.to_string()))?;
        let key_file = state.dir.join(format!("{}.key", n.name));
        key.save(&key_file).map_err(|e| LabError::Key(e.to_string()))?;
        let public = key.public_key();
        let api = format!("127.0.0.1:{}", 8990 + state.nodes.len());
        state.nodes.push(NodeState {
            name: n.name.clone(),
            netns,
            public_key: public.to_hex(),
            address: public.address().to_string(),
            subnet: public.address().subnet().to_string(),
            api,
            instance: format!("mlab-{lab}-{}", n.name),
            args: Vec::new(),
            config: state.dir.join(format!("{}.toml", n.name)),
            log: state.dir.join(format!("{}.log", n.name)),
        });
        keys.push(key_file);
        state.save()?;
    }
    for (i, l) in topo.links.iter().enumerate() {
        build_link(topo, state, bins, i, l)?;
    }
    for (i, n) in topo.nodes.iter().enumerate() {
        let config = node_config(state, i, &keys[i], n.position);
        let path = &state.nodes[i].config;
        std::fs::write(path, config).map_err(|e| LabError::io(path, e))?;
    }
    state.binaries = Some(bins.clone());
    let mut started = Vec::new();
    for (i, n) in topo.nodes.iter().enumerate() {
        state.nodes[i].args = n.args.clone();
        // Recorded before the daemon starts: if mlab dies between the two,
        // `down` still removes the shared memory the daemon made.
        state.instances.push(state.nodes[i].instance.clone());
        state.save()?;
        started.push(start_node(state, bins, i)?);
    }
    wait_for_nodes(state, &started)?;
    state.complete = true;
    state.save()
}

/// Starts node `i`'s daemon (again) and records the process; returns
/// `(i, length of its log before)` for [`wait_for_nodes`].
pub fn start_node(state: &mut State, bins: &Binaries, i: usize) -> Result<(usize, usize), LabError> {
    let node = state.nodes[i].clone();
    let before = std::fs::metadata(&node.log).map_or(0, |m| m.len() as usize);
    let mut args = vec!["--config".to_owned(), node.config.display().to_string()];
    args.extend(node.args.iter().cloned());
    let env = [("MYCELIUM_DATAPLANE", bins.dataplane.as_path())];
    let role = format!("node {}", node.name);
    let proc = spawn_in(&node.netns, &role, &bins.myceliumd, &args, &env, &node.log)?;
    state.processes.retain(|p| p.role != role || alive(p));
    state.processes.push(proc);
    state.save()?;
    Ok((i, before))
}

fn add_netns(state: &mut State, netns: &str) -> Result<(), LabError> {
    if super::signals::interrupted() {
        return Err(LabError::Interrupted);
    }
    if super::process::netns_exists(netns) {
        return Err(LabError::Command {
            command: format!("ip netns add {netns}"),
            message: "a namespace of that name exists already (another lab, or a leftover: see `ip netns`)".into(),
        });
    }
    run("ip", &["netns", "add", netns])?;
    state.namespaces.push(netns.to_owned());
    state.save()?;
    ip_in(netns, &["link", "set", "lo", "up"])?;
    Ok(())
}

/// `10.X.Y.0/24` for link `i`: X = 100 + i / 256, Y = i % 256.
fn link_net(i: usize) -> String {
    format!("10.{}.{}", 100 + i / 256, i % 256)
}

fn build_link(topo: &Topology, state: &mut State, bins: &Binaries, i: usize, l: &LinkSpec) -> Result<(), LabError> {
    let netns = format!("mlab-{}-l{i}", state.name);
    add_netns(state, &netns)?;
    let net = link_net(i);
    let dev = format!("l{i}");
    let (a, b) = (state.nodes[l.a].clone(), state.nodes[l.b].clone());
    let index = topo.links_between(l.a, l.b).iter().position(|&j| j == i).unwrap_or(0);
    let link = LinkState {
        a: a.name.clone(),
        b: b.name.clone(),
        index,
        netns: netns.clone(),
        class: l.class.clone(),
        dial: l.dial,
        ip_a: format!("{net}.1"),
        ip_b: format!("{net}.6"),
        emu_a: format!("{net}.2:{PORT}"),
        emu_b: format!("{net}.5:{PORT}"),
        control: state.dir.join(format!("l{i}.sock")),
        dev_a: dev.clone(),
        dev_b: dev.clone(),
    };
    state.links.push(link.clone());
    state.save()?;
    for (side, node, node_ip, emu_ip) in [
        ("a", &a, format!("{net}.1/30"), format!("{net}.2/30")),
        ("b", &b, format!("{net}.6/30"), format!("{net}.5/30")),
    ] {
        ip_in(&netns, &["link", "add", "name", side, "type", "veth", "peer", "name", &dev, "netns", &node.netns])?;
        ip_in(&netns, &["addr", "add", &emu_ip, "dev", side])?;
        ip_in(&netns, &["link", "set", "dev", side, "up"])?;
        ip_in(&node.netns, &["addr", "add", &node_ip, "dev", &dev])?;
        ip_in(&node.netns, &["link", "set", "dev", &dev, "up"])?;
    }
    let mut args: Vec<String> = vec![
        "--listen-a".into(),
        link.emu_a.clone(),
        "--peer-a".into(),
        format!("{}:{PORT}", link.ip_a),
        "--listen-b".into(),
        link.emu_b.clone(),
        "--peer-b".into(),
        format!("{}:{PORT}", link.ip_b),
        "--seed".into(),
        i.to_string(),
        "--control".into(),
        link.control.display().to_string(),
    ];
    args.extend(emulator_flags(&l.impairment));
    let log = state.dir.join(format!("l{i}.log"));
    let proc = spawn_in(&netns, &format!("emulator {i}"), &bins.emulator, &args, &[], &log)?;
    state.processes.push(proc.clone());
    state.save()?;
    let deadline = Instant::now() + Duration::from_secs(5);
    while !link.control.exists() {
        if !alive(&proc) || Instant::now() > deadline {
            return Err(LabError::Start(format!("emulator {i} ({}-{})", a.name, b.name), log_tail(&log)));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    Ok(())
}

/// `mlab-emu` flags for `imp`.
pub fn emulator_flags(imp: &crate::emu::Impairment) -> Vec<String> {
    let mut f = vec![
        "--delay".into(),
        format!("{}us", imp.delay.as_micros()),
        "--jitter".into(),
        format!("{}us", imp.jitter.as_micros()),
        "--queue".into(),
        format!("{}b", imp.queue_bytes),
    ];
    match imp.loss {
        Loss::None => {}
        Loss::Random(p) => f.extend(["--loss".into(), p.to_string()]),
        Loss::GilbertElliott { p, r, k, h } => f.extend(["--gilbert".into(), format!("{p},{r},{h},{k}")]),
    }
    if let Some(rate) = imp.rate_bps {
        f.extend(["--rate".into(), format!("{rate}bit")]);
    }
    if !imp.up {
        f.push("--down".into());
    }
    f
}

/// Node `i`'s config file: its key, API port, instance, position, and a
/// static peer (with its class) for each link it dials. LAN discovery is
/// off and the peer target 0, so the mesh is exactly the topology's links.
fn node_config(state: &State, i: usize, key_file: &Path, position: Option<(f64, f64)>) -> String {
    let node = &state.nodes[i];
    let mut peers = Vec::new();
    for l in &state.links {
        if l.a == node.name && l.dial.a_dials() {
            peers.push((
                format!("udp://{}@{}", state.node(&l.b).map(|n| n.public_key.as_str()).unwrap_or(""), l.emu_a),
                &l.class,
            ));
        }
        if l.b == node.name && l.dial.b_dials() {
            peers.push((
                format!("udp://{}@{}", state.node(&l.a).map(|n| n.public_key.as_str()).unwrap_or(""), l.emu_b),
                &l.class,
            ));
        }
    }
    let mut t = toml::Table::new();
    t.insert("key_file".into(), key_file.display().to_string().into());
    t.insert("port".into(), i64::from(PORT).into());
    t.insert("instance".into(), node.instance.clone().into());
    t.insert("tun_name".into(), "mycelium".into());
    t.insert("api_listen".into(), node.api.clone().into());
    t.insert("metrics_listen".into(), format!("127.0.0.1:{}", 9990 + i).into());
    t.insert("lan_discovery".into(), false.into());
    t.insert("target_peers".into(), 0i64.into());
    if let Some((lat, lon)) = position {
        let mut p = toml::Table::new();
        p.insert("lat".into(), lat.into());
        p.insert("lon".into(), lon.into());
        t.insert("position".into(), p.into());
    }
    t.insert("peers".into(), peers.iter().map(|(url, _)| toml::Value::from(url.clone())).collect::<Vec<_>>().into());
    let classes: toml::Table =
        peers.iter().map(|(url, class)| (url.clone(), toml::Value::from(class.as_str()))).collect();
    t.insert("peer_class".into(), classes.into());
    format!("# Written by mlab for lab {:?}, node {:?}.\n{t}", state.name, node.name)
}

/// Waits until each node `i` of `started` has logged that it is running
/// after byte `offset` of its log.
pub fn wait_for_nodes(state: &State, started: &[(usize, usize)]) -> Result<(), LabError> {
    let deadline = Instant::now() + NODE_START;
    let mut waiting = started.to_vec();
    while !waiting.is_empty() {
        if super::signals::interrupted() {
            return Err(LabError::Interrupted);
        }
        waiting.retain(|&(i, offset)| {
            let log = std::fs::read(&state.nodes[i].log).unwrap_or_default();
            !String::from_utf8_lossy(log.get(offset..).unwrap_or_default()).contains("myceliumd running")
        });
        for &(i, _) in &waiting {
            let node = &state.nodes[i];
            let role = format!("node {}", node.name);
            let gone = !state.processes.iter().any(|p| p.role == role && alive(p));
            if gone || Instant::now() > deadline {
                let why = if gone { "exited" } else { "not running within 20 s" };
                return Err(LabError::Start(format!("node {} ({why})", node.name), log_tail(&node.log)));
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

/// The last lines of a log file.
pub fn log_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(15)..].join("\n")
}
