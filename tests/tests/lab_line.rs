//! The lab end to end, through the `mlab` command line: a 3-node line comes
//! up, pings end to end, a link taken down and up again takes effect, and
//! `mlab down` leaves no namespace, process, veth, shared memory or state
//! file; also after `mlab up` itself and a node were killed with SIGKILL.
//! A node's daemon killed through the library leaves its dataplane forwarding,
//! and one started again answers its API. Two links between the same nodes
//! are two links, and a route moves to the second when the first is cut.
//! Needs root and iproute2; without them it says so and passes.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use mycelium_tests::netns::privileged;
use mycelium_tests::node::binary;
use mycelium_tools::lab::Lab;
use mycelium_tools::lab::process::{alive, netns_exists};
use mycelium_tools::lab::state::State;

/// A run directory for one test, and its lab's name; tears down whatever
/// is left on drop (a failed test cleans up too).
struct Sandbox {
    run_dir: PathBuf,
    name: String,
}

impl Sandbox {
    fn new(tag: &str) -> Sandbox {
        let name = format!("{tag}{}", std::process::id() % 100_000);
        let run_dir = std::env::temp_dir().join(format!("mlab-test-{name}"));
        let _ = std::fs::remove_dir_all(&run_dir);
        Sandbox { run_dir, name }
    }

    fn mlab(&self, args: &[&str]) -> Output {
        Command::new(binary("mlab")).arg("--run-dir").arg(&self.run_dir).args(args).output().expect("run mlab")
    }

    fn mlab_ok(&self, args: &[&str]) -> String {
        let out = self.mlab(args);
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(out.status.success(), "mlab {}: {text}", args.join(" "));
        text
    }

    fn up_command(&self) -> Command {
        let mut c = Command::new(binary("mlab"));
        c.arg("--run-dir").arg(&self.run_dir);
        c.args(["up", topology().to_str().unwrap(), "--name", &self.name, "--bin-dir"]);
        c.arg(binary("myceliumd").parent().unwrap());
        c
    }

    fn state(&self) -> State {
        State::load(&self.run_dir, &self.name).expect("the lab's state file")
    }

    /// Asserts that nothing the lab made is left.
    fn assert_gone(&self, before: &State) {
        let state_file = self.run_dir.join(format!("{}.json", self.name));
        assert!(!state_file.exists(), "the state file is removed");
        assert!(!before.dir.exists(), "the lab directory is removed");
        for ns in &before.namespaces {
            assert!(!netns_exists(ns), "namespace {ns} is removed");
        }
        for p in &before.processes {
            assert!(!alive(p), "{} (pid {}) is stopped", p.role, p.pid);
        }
        for i in &before.instances {
            assert!(!Path::new(&format!("/dev/shm/mycelium-{i}")).exists(), "shared memory of {i} is removed");
        }
        let marker = format!("mlab-{}-", self.name);
        // Also the shared memory of a node whose start the state did not
        // record yet (mlab killed in between).
        let shm = std::fs::read_dir("/dev/shm").unwrap();
        let left: Vec<String> = shm
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|n| n.starts_with(&format!("mycelium-{marker}")))
            .collect();
        assert!(left.is_empty(), "shared memory of the lab is left: {left:?}");
        let links = Command::new("ip").args(["-o", "link"]).output().unwrap();
        assert!(!String::from_utf8_lossy(&links.stdout).contains(&marker), "no veth of the lab is left");
        assert!(stray_processes(&marker, &before.dir).is_empty(), "no process of the lab is left");
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        if let Ok(state) = State::load(&self.run_dir, &self.name) {
            let _ = mycelium_tools::lab::down::teardown(&state);
        }
        let _ = std::fs::remove_dir_all(&self.run_dir);
    }
}

fn topology() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tools/lab/line3.toml")
}

/// Live processes whose command line names the lab (its namespaces and
/// instances) or its directory.
fn stray_processes(marker: &str, dir: &Path) -> Vec<String> {
    let dir = dir.display().to_string();
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else { continue };
        let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else { continue };
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        if (cmdline.contains(marker) || cmdline.contains(&dir))
            && mycelium_tools::lab::process::start_time(pid).is_some()
        {
            found.push(format!("{pid}: {cmdline}"));
        }
    }
    found
}

#[test]
fn a_line_comes_up_pings_end_to_end_follows_link_changes_and_goes_down_without_a_trace() {
    if !privileged() {
        return;
    }
    let sb = Sandbox::new("ln");
    let out = sb.up_command().output().expect("run mlab up");
    assert!(out.status.success(), "mlab up: {}", String::from_utf8_lossy(&out.stderr));
    let mut lab = Lab::open(&sb.run_dir, &sb.name).unwrap();
    let took = lab.ping_until_reachable("a", "c", Duration::from_secs(30)).unwrap();
    eprintln!("a reached c across the line in {} ms", took.as_millis());
    assert_eq!(lab.next_hop("a", "c").unwrap().map(|h| h.neighbour), Some("b".to_owned()));

    sb.mlab_ok(&["link", "a", "b", "--down", "--lab", &sb.name]);
    assert_eq!(lab.ping("a", "c", 3).unwrap().received, 0, "no answer over a link that is down");
    sb.mlab_ok(&["link", "a", "b", "--up", "--delay", "20ms", "--lab", &sb.name]);
    lab.ping_until_reachable("a", "c", Duration::from_secs(30)).unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    let rtt = loop {
        if let Some(rtt) = lab.ping("a", "c", 3).unwrap().avg_rtt_ms {
            break rtt;
        }
        assert!(Instant::now() < deadline, "c answers again within 15 s");
    };
    assert!(rtt >= 2.0 * (20.0 + 5.0), "the new 20 ms delay is in the round trip ({rtt} ms)");

    lab.kill_node("b").unwrap();
    assert!(!lab.node_running("b").unwrap());
    assert!(lab.ping("a", "c", 3).unwrap().received > 0, "b's dataplane forwards without its daemon");
    lab.start_node("b").unwrap();
    assert!(lab.node_running("b").unwrap());
    // The restarted daemon answers its API. (a reaches c again only about
    // 30 s later today: a control-plane matter, not waited for here.)
    assert!(lab.routes("b").is_ok(), "b's API answers after the restart");

    let exec = sb.mlab(&["exec", "b", "--lab", &sb.name, "--", "sh", "-c", "exit 7"]);
    assert_eq!(exec.status.code(), Some(7), "exec passes the exit code through");
    let status: serde_json::Value =
        serde_json::from_str(&sb.mlab_ok(&["status", "--json", "--lab", &sb.name])).unwrap();
    assert_eq!(status["nodes"].as_array().unwrap().len(), 3);
    assert!(status["nodes"].as_array().unwrap().iter().all(|n| n["running"] == true), "{status}");
    assert_eq!(status["links"][0]["emulator"]["a_to_b"]["settings"]["delay_ms"], 20.0);

    let before = sb.state();
    drop(lab);
    sb.mlab_ok(&["down", &sb.name]);
    sb.assert_gone(&before);
}

#[test]
fn down_cleans_up_after_mlab_and_a_node_were_killed() {
    if !privileged() {
        return;
    }
    let sb = Sandbox::new("kl");
    let mut up = sb.up_command().spawn().expect("start mlab up");
    // Kill mlab as soon as it has started its first node (it is then
    // waiting for them all to say they run).
    let deadline = Instant::now() + Duration::from_secs(20);
    let node = loop {
        let state = State::load(&sb.run_dir, &sb.name).ok();
        if let Some(p) = state.and_then(|s| s.processes.into_iter().find(|p| p.role.starts_with("node "))) {
            break p;
        }
        assert!(Instant::now() < deadline, "mlab up started no node within 20 s");
        std::thread::sleep(Duration::from_millis(5));
    };
    up.kill().unwrap();
    up.wait().unwrap();
    if alive(&node) {
        // Safety: kill(2) on the pid of a node this test's lab started, checked alive just before.
        unsafe { libc::kill(node.pid, libc::SIGKILL) };
    }
    std::thread::sleep(Duration::from_millis(300));
    let before = sb.state();
    assert!(!before.namespaces.is_empty());
    sb.mlab_ok(&["down", &sb.name]);
    sb.assert_gone(&before);
}

#[test]
fn two_links_between_the_same_nodes_are_two_links_and_traffic_moves_to_the_second_when_the_first_is_cut() {
    if !privileged() {
        return;
    }
    let sb = Sandbox::new("tw");
    let text = std::fs::read_to_string(topology().with_file_name("twolinks.toml")).unwrap();
    let topo = mycelium_tools::lab::Topology::parse(&text).unwrap();
    let opts = mycelium_tools::lab::Options {
        name: sb.name.clone(),
        run_dir: sb.run_dir.clone(),
        bin_dir: binary("myceliumd").parent().map(Path::to_owned),
    };
    let lab = Lab::up(&topo, &opts).unwrap();
    lab.ping_until_reachable("a", "b", Duration::from_secs(30)).unwrap();
    let before = lab.next_hop("a", "b").unwrap().expect("a route to b");
    eprintln!("a reaches b over link #{} ({})", before.index, before.class);
    lab.set_link("a", "b", before.index, &mycelium_tools::emu::Update { up: Some(false), ..Default::default() })
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let hop = lab.next_hop("a", "b").unwrap();
        if hop.as_ref().is_some_and(|h| h.index != before.index) {
            eprintln!("after the cut: over link #{}", hop.unwrap().index);
            break;
        }
        assert!(Instant::now() < deadline, "the route moves to the other link within 15 s");
        std::thread::sleep(Duration::from_millis(50));
    }
    lab.ping_until_reachable("a", "b", Duration::from_secs(10)).unwrap();
    let state = lab.state().clone();
    drop(lab);
    sb.assert_gone(&state);
}
