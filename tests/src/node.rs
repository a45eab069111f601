//! A real `myceliumd` in a network namespace, stopped (SIGTERM, then SIGKILL)
//! and cleaned up on drop.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::netns::{Netns, terminate};

/// A workspace binary next to the test executable (target/<profile>/NAME).
pub fn binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let dir = exe.parent().and_then(Path::parent).expect("target/<profile>/deps/<test>");
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is missing: build the workspace first (cargo test --workspace --all-targets)",
        path.display()
    );
    path
}

/// A running node.
#[derive(Debug)]
pub struct Node {
    child: Option<Child>,
    pub log: Arc<Mutex<Vec<String>>>,
    pub dir: tempfile_dir::Dir,
    pub instance: String,
    pub ns: String,
    tag: String,
}

/// A temporary directory removed on drop (no dependency needed for this).
pub mod tempfile_dir {
    use std::path::{Path, PathBuf};

    #[derive(Debug)]
    pub struct Dir(PathBuf);

    impl Dir {
        pub fn new(tag: &str) -> Dir {
            let path = std::env::temp_dir().join(format!("mycelium-test-{}-{tag}", std::process::id()));
            let _ = std::fs::remove_dir_all(&path);
            std::fs::create_dir_all(&path).expect("create test directory");
            Dir(path)
        }

        pub fn path(&self) -> &Path {
            &self.0
        }
    }

    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

impl Node {
    /// Starts `myceliumd` in `ns` with its key file at `<dir>/node.key`
    /// (created if absent, or written from `secret`), LAN discovery off
    /// (unless `args` says `--lan-discovery...`), and `args` appended. Waits
    /// up to 10 s for it to report it is running.
    pub fn start(ns: &Netns, tag: &str, secret: Option<[u8; 32]>, args: &[&str]) -> Node {
        let dir = tempfile_dir::Dir::new(tag);
        let key_file = dir.path().join("node.key");
        if let Some(secret) = secret {
            use std::os::unix::fs::OpenOptionsExt;
            let mut f = std::fs::OpenOptions::new().create_new(true).write(true).mode(0o600).open(&key_file).unwrap();
            std::io::Write::write_all(&mut f, &secret).unwrap();
        }
        let instance = format!("t{}{tag}", std::process::id());
        let mut node = Node {
            child: None,
            log: Arc::new(Mutex::new(Vec::new())),
            dir,
            instance,
            ns: ns.name.clone(),
            tag: tag.to_owned(),
        };
        node.respawn(ns, args);
        node
    }

    /// Starts `myceliumd` again with the same key, instance and TUN (after
    /// [`Node::kill`]): it adopts the dataplane that kept running. Its
    /// output is appended to the same log.
    pub fn respawn(&mut self, ns: &Netns, args: &[&str]) {
        assert!(self.child.is_none(), "the node is still running");
        let key_file = self.dir.path().join("node.key");
        let before = self.log.lock().unwrap().len();
        let lan_default: &[&str] =
            if args.iter().any(|a| a.starts_with("--lan-discovery")) { &[] } else { &["--lan-discovery=false"] };
        let mut child = ns
            .command(binary("myceliumd").to_str().unwrap())
            .env("MYCELIUM_DATAPLANE", binary("mycelium-dataplane"))
            .env("NO_COLOR", "1")
            .args(["--key-file", key_file.to_str().unwrap(), "--instance", &self.instance])
            .args(["--tun-name", &format!("myc{}{}", std::process::id() % 10_000, self.tag)])
            .args(lan_default)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn myceliumd");
        let (tx, rx) = std::sync::mpsc::channel();
        for stream in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let (sink, tx) = (Arc::clone(&self.log), tx.clone());
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    if line.contains("myceliumd running") {
                        let _ = tx.send(());
                    }
                    sink.lock().unwrap().push(line);
                }
            });
        }
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while rx.try_recv().is_err() {
            assert!(
                Instant::now() < deadline,
                "myceliumd did not start in 10 s:\n{}",
                self.log.lock().unwrap()[before..].join("\n")
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kills the daemon with SIGKILL (its dataplane, in its own process
    /// group, keeps running) and reaps it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// The dataplane's pid, from its pid file in the instance's shm directory.
    pub fn dataplane_pid(&self) -> Option<i32> {
        std::fs::read_to_string(format!("/dev/shm/mycelium-{}/dataplane.pid", self.instance)).ok()?.trim().parse().ok()
    }

    /// The instance's shared-memory directory.
    pub fn shm_dir(&self) -> PathBuf {
        PathBuf::from(format!("/dev/shm/mycelium-{}", self.instance))
    }

    /// Runs `mctl --json ARGS` in the node's namespace and returns its output.
    pub fn mctl_json(&self, args: &[&str]) -> String {
        let out = std::process::Command::new("ip")
            .args(["netns", "exec", &self.ns, binary("mctl").to_str().unwrap(), "--json"])
            .args(args)
            .output()
            .expect("run mctl");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Whether the daemon process is still alive (not exited).
    pub fn is_running(&mut self) -> bool {
        self.child.as_mut().is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// Everything it printed so far.
    pub fn log_text(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }

    /// The node's overlay address, from the line it prints at start.
    pub fn address(&self) -> String {
        let log = self.log_text();
        let line = log.lines().find(|l| l.starts_with("mycelium node ")).expect("the start-up line");
        line.split_whitespace().nth(2).expect("address").to_owned()
    }

    /// The node's public key, from the same line.
    pub fn public_key(&self) -> String {
        let log = self.log_text();
        let line = log.lines().find(|l| l.starts_with("mycelium node ")).expect("the start-up line");
        line.rsplit(' ').next().unwrap().trim_end_matches(')').to_owned()
    }

    /// Sends SIGTERM and waits up to 10 s; returns the exit code.
    pub fn stop(mut self) -> Option<i32> {
        self.terminate()
    }

    fn terminate(&mut self) -> Option<i32> {
        let mut child = self.child.take()?;
        terminate(&mut child, Duration::from_secs(10))
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let pid = self.dataplane_pid();
        self.terminate();
        // A dataplane left behind by a killed daemon is stopped here.
        if let Some(pid) = pid.filter(|&p| p > 1) {
            // Safety: kill(2) on the pid the dataplane wrote; at worst it already exited.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        let _ = std::fs::remove_dir_all(format!("/dev/shm/mycelium-{}", self.instance));
    }
}

/// `udp://KEY@IP:9651` for dialing `node` at `ip`.
pub fn peer_url(node: &Node, ip: &str) -> String {
    format!("udp://{}@{ip}:9651", node.public_key())
}

/// Pings `to` from `from` until it answers (the first packets start the
/// end-to-end handshake), at most `within`.
pub fn ping_until_reachable(from: &Netns, to: &str, within: Duration) -> String {
    let deadline = Instant::now() + within;
    loop {
        let out = from.command("ping").args(["-6", "-c", "3", "-i", "0.2", "-W", "1", to]).output().expect("run ping");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        if out.status.success() && !text.contains(" 0 received") {
            return text;
        }
        assert!(Instant::now() < deadline, "{to} not reachable within {within:?}:\n{text}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Waits up to `within` for `check` to hold, polling every 100 ms; returns how long it took.
pub fn wait_for(within: Duration, what: &str, mut check: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    while !check() {
        assert!(start.elapsed() < within, "{what}: not within {within:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
    start.elapsed()
}
